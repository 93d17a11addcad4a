"""Desktop life: shortcuts, a launch with no terminal, Quit from the app, idle shutdown and
switching the model from the app. Real launches, real Chromium, real desktop-file-validate."""

from __future__ import annotations

import os
import plistlib
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from streamlit.testing.v1 import AppTest

from app.server import PAGE_SCRIPT
from launcher import shortcut
from launcher.paths import resolve_paths
from launcher.ports import is_port_free, pick_free_port
from launcher.session_file import read_session
from tests.browser import ChatPage, chromium, screenshot
from tests.launched import Launched


def cli(home: Path, *args: str, env: dict[str, str] | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "launcher", *args], capture_output=True,
                          text=True, timeout=timeout, check=False,
                          env={**os.environ, "OPEA_CHAT_HOME": str(home), **(env or {})})


def browser_recorder(tmp_path: Path) -> tuple[Path, Path]:
    opened = tmp_path / "opened.txt"
    script = tmp_path / "browser.sh"
    script.write_text(f'#!/bin/sh\necho "$1" >> {opened}\n')
    script.chmod(0o755)
    return script, opened


def wait_for_file(path: Path, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)
    return path.read_text()


def session_processes(home: Path) -> list[int]:
    """Live processes started for this home (they alone carry it in their environment)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("OPEA_CHAT_HOME") == str(home) and \
                    process.status() != psutil.STATUS_ZOMBIE and process.pid != os.getpid():
                found.append(process.pid)
        except psutil.Error:
            pass
    return found


@pytest.fixture
def desktop_home(home_with_model: Path, tmp_path: Path) -> Path:
    """A user's home with XDG folders, so shortcuts land in the test's folders."""
    user = tmp_path / "user"
    (user / ".config").mkdir(parents=True)
    (user / ".config" / "user-dirs.dirs").write_text('XDG_DESKTOP_DIR="$HOME/Desktop"\n')
    return user


def test_linux_shortcuts_validate_and_remove_deletes_exactly_them(
        home_with_model: Path, desktop_home: Path) -> None:
    env = {"HOME": str(desktop_home), "XDG_DATA_HOME": str(desktop_home / ".local" / "share"),
           "XDG_CONFIG_HOME": str(desktop_home / ".config")}
    apps = desktop_home / ".local" / "share" / "applications"
    apps.mkdir(parents=True)
    (apps / "other.desktop").write_text("[Desktop Entry]\n")  # someone else's: must stay
    installed = cli(home_with_model, "shortcut", "install", "--menu", "--desktop", env=env)
    assert installed.returncode == 0, installed.stderr
    menu_entry = apps / "opea-chat.desktop"
    desktop_entry = desktop_home / "Desktop" / "opea-chat.desktop"
    for entry in (menu_entry, desktop_entry):
        check = subprocess.run(["desktop-file-validate", str(entry)], capture_output=True,
                               text=True, check=False)
        assert check.returncode == 0 and check.stdout == "", check.stdout
    assert os.access(desktop_entry, os.X_OK)
    text = menu_entry.read_text()
    exec_line = next(line for line in text.splitlines() if line.startswith("Exec="))
    command = shlex.split(exec_line.removeprefix("Exec="))
    assert command[:2] == ["env", f"OPEA_CHAT_HOME={home_with_model}"]
    assert Path(command[2]).is_absolute() and Path(command[2]).exists()
    assert command[3:] == ["launch", "--background"]
    icon = Path(next(line for line in text.splitlines() if line.startswith("Icon="))[5:])
    assert icon.read_bytes().startswith(b"<svg")

    removed = cli(home_with_model, "shortcut", "remove", env=env)
    assert removed.returncode == 0
    assert not menu_entry.exists() and not desktop_entry.exists() and not icon.exists()
    assert (apps / "other.desktop").exists()
    assert not (desktop_home / "Desktop").exists()  # install made it, remove took it away
    again = cli(home_with_model, "shortcut", "remove", env=env)
    assert again.stdout == "No shortcut was installed.\n"


def test_macos_and_windows_shortcuts_by_content(tmp_path: Path) -> None:
    command = ["/opt/opea chat/bin/opea-chat", "launch", "--background"]
    files = {f.path.name: f for f in shortcut.macos_files(command, {"OPEA_CHAT_HOME": "/h"},
                                                          tmp_path / "Applications")}
    info = plistlib.loads(files["Info.plist"].content)
    assert info["CFBundleExecutable"] == "opea-chat" and info["CFBundlePackageType"] == "APPL"
    script = files["opea-chat"]
    assert script.executable and script.path.parent.name == "MacOS"
    assert script.content.decode().splitlines() == [
        "#!/bin/sh", "export OPEA_CHAT_HOME=/h",
        "exec '/opt/opea chat/bin/opea-chat' launch --background"]

    win = shortcut.windows_files([r"C:\Program Files\opea\opea-chat.exe", "launch",
                                  "--background"], {}, tmp_path / "Desktop",
                                 tmp_path / "Start", tmp_path / "data")
    by_name = {(f.path.parent.name, f.path.name): f.content.decode(errors="replace")
               for f in win}
    batch = by_name[("data", "opea-chat.bat")]
    assert batch == ('@echo off\r\nstart "" /b "C:\\Program Files\\opea\\opea-chat.exe" '
                     'launch --background\r\n')
    for folder in ("Desktop", "Start"):
        url = by_name[(folder, "opea-chat.url")]
        assert url.startswith("[InternetShortcut]\r\nURL=file:///")
        assert url.rstrip().endswith("IconIndex=0") and "opea-chat.ico" in url


@pytest.mark.integration
def test_a_desktop_launch_runs_detached_and_quits_from_the_app(
        home_with_model: Path, desktop_home: Path, tmp_path: Path) -> None:
    env = {"HOME": str(desktop_home), "XDG_DATA_HOME": str(desktop_home / ".local" / "share"),
           "XDG_CONFIG_HOME": str(desktop_home / ".config")}
    assert cli(home_with_model, "shortcut", "install", env=env).returncode == 0
    entry = desktop_home / ".local" / "share" / "applications" / "opea-chat.desktop"
    exec_line = next(line for line in entry.read_text().splitlines()
                     if line.startswith("Exec="))
    browser, opened = browser_recorder(tmp_path)
    # As a desktop runs it: no terminal, and whatever started it goes away at once.
    started = subprocess.run(
        shlex.split(exec_line.removeprefix("Exec=")), capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=300, check=False,
        env={**os.environ, "BROWSER": str(browser), **{f"OPEA_CHAT_{n}_PORT": str(
            pick_free_port()) for n in ("LLM", "MEGASERVICE", "APP")}})
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        app_url = re.search(r"^Ready: (\S+)$", started.stdout, re.MULTILINE)
        assert app_url, started.stdout
        record = read_session(home_with_model / "state" / "session.json")
        assert record is not None
        launcher = psutil.Process(record.launcher_pid)
        assert launcher.is_running() and launcher.terminal() is None  # detached
        assert wait_for_file(opened).split() == [app_url.group(1)]
        assert "Ready:" in (home_with_model / "logs" / "launcher.log").read_text()
        ports = [int(url.rsplit(":", 1)[1]) for url in record.urls.values()]

        with chromium() as browser_app:
            page = ChatPage(browser_app.new_page(), app_url.group(1)).open()
            page.ask_to_quit().get_by_role("button", name="Quit", exact=True).click()
            page.page.get_by_text("opea-chat has stopped").wait_for(timeout=30_000)
            screenshot(page.page, "20-quit")
        launcher.wait(60)
        assert "Stopping (Quit in the app)" in \
            (home_with_model / "logs" / "launcher.log").read_text()
        assert session_processes(home_with_model) == []
        assert [port for port in ports if not is_port_free(port)] == []
        assert not (home_with_model / "state" / "session.json").exists()
    finally:
        cli(home_with_model, "stop")
        cli(home_with_model, "shortcut", "remove", env=env)


@pytest.mark.integration
def test_a_detached_launch_stopped_from_another_shell(home_with_model: Path) -> None:
    ports = {f"OPEA_CHAT_{n}_PORT": str(pick_free_port()) for n in ("LLM", "MEGASERVICE", "APP")}
    stale = home_with_model / "state" / "error.html"  # an earlier launch's failure
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text("<h1>opea-chat could not start</h1>")
    started = cli(home_with_model, "launch", "--background", "--no-browser", env=ports)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert not stale.exists()  # a successful launch removes the stale failure page
        assert re.search(r"^Starting in the background \(launcher PID \d+, log: .*launcher\.log\)",
                         started.stdout, re.MULTILINE)
        assert cli(home_with_model, "status").returncode == 0
        stopped = cli(home_with_model, "stop")
        assert stopped.returncode == 0 and "Stopped." in stopped.stdout
        assert session_processes(home_with_model) == []
        assert all(is_port_free(int(port)) for port in ports.values())
    finally:
        cli(home_with_model, "stop")


@pytest.mark.integration
def test_a_detached_launch_that_fails_says_so_on_the_desktop(home: Path,
                                                             tmp_path: Path) -> None:
    browser, opened = browser_recorder(tmp_path)
    result = cli(home, "launch", "--background", "--model", "/nowhere/model.gguf",
                 env={"BROWSER": str(browser)})
    assert result.returncode == 1
    assert "Error: no model file at /nowhere/model.gguf" in result.stdout
    page = home / "state" / "error.html"
    assert wait_for_file(opened).split() == [page.as_uri()]
    html = page.read_text()
    assert "opea-chat could not start" in html and "no model file at /nowhere/model.gguf" in html
    assert session_processes(home) == []


@pytest.mark.integration
def test_idle_timeout_stops_only_when_no_tab_is_open(home_with_model: Path) -> None:
    launched = Launched(["--no-browser", "--idle-timeout", "0.05"], home_with_model)  # 3 s
    try:
        launched.expect(r"^Ready: ")
        app_port = int(launched.session()["urls"]["app"].rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", app_port)):  # a tab, as the launcher sees it
            time.sleep(6)
            assert launched.process.poll() is None, launched.output
        assert launched.wait(timeout=60) == 0
        assert "Stopping (no browser tab for 0.05 min)" in launched.output
        assert launched.survivors() == []
    finally:
        launched.cleanup()


@pytest.mark.integration
def test_switching_the_model_in_the_app_keeps_the_conversations(
        home_with_model: Path, smollm2: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(smollm2, home_with_model / "models" / "second.gguf")
    launched = Launched(["--no-browser"], home_with_model)
    try:
        launched.expect(r"^Ready: ")
        before = {s["name"]: s["pid"] for s in launched.session()["services"]}
        monkeypatch.setenv("OPEA_CHAT_HOME", str(home_with_model))
        monkeypatch.setenv("OPEA_CHAT_MEGASERVICE_URL", launched.session()["urls"]["megaservice"])
        page = AppTest.from_file(str(PAGE_SCRIPT), default_timeout=300).run()
        page.chat_input[0].set_value("Name a colour.").run()
        assert page.chat_message[1].markdown[0].value.strip()
        # By their keys: the model may retitle the conversation meanwhile (app.titles).
        conversations = [b.key for b in page.sidebar.button if (b.key or "").startswith("open-")]

        page.sidebar.selectbox(key="switch_to").set_value("second").run()
        page.sidebar.button(key="switch").click().run()
        assert not page.exception and not page.error, [e.value for e in page.error]
        assert [s.value for s in page.success] == ["Now answering with second."]
        assert [b.key for b in page.sidebar.button
                if (b.key or "").startswith("open-")] == conversations
        after = {s["name"]: s["pid"] for s in launched.session()["services"]}
        assert after["llm"] != before["llm"]
        assert (after["megaservice"], after["app"]) == (before["megaservice"], before["app"])
        switched = read_session(resolve_paths().session_file)
        assert switched is not None and switched.model.name == "second"
        page.chat_input[0].set_value("Say hello.").run()
        assert page.chat_message[-1].markdown[0].value.strip()
    finally:
        launched.cleanup()
