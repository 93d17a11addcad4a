"""What a user sees from the command line when the input is wrong: one clear line, a
non-zero exit, and nothing started."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from launcher.cli import main
from launcher.ports import pick_free_port


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_nothing_started(home: Path) -> None:
    assert psutil.Process().children(recursive=True) == []
    assert not (home / "state" / "session.json").exists()
    assert not (home / "logs").exists()


def test_unknown_model_lists_the_models_found(home_with_model: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "launch", "--no-browser", "--model", "mistral-7b")
    assert code == 1
    assert err == ("Error: unknown model 'mistral-7b'; models found: smollm2-135m; "
                   "or give the path of a .gguf file\n")
    assert "Traceback" not in out + err
    assert_nothing_started(home_with_model)


def test_a_model_file_that_is_not_gguf_is_refused_before_anything_starts(
        home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model\n")
    code, _, err = run_cli(capsys, "launch", "--no-browser", "--model", str(notes))
    assert code == 1
    assert err.startswith(f"Error: {notes} is not a GGUF model")
    assert err.count("\n") == 1
    assert_nothing_started(home)


def test_an_explicit_port_that_is_taken_is_named_with_its_setting(
        home_with_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = pick_free_port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        code, _, err = run_cli(capsys, "launch", "--no-browser", "--app-port", str(port))
    assert code == 1
    assert err == (f"Error: port {port} for the app service is already in use (app_port, from "
                   f"flag --app-port); stop what uses it, or choose another port with "
                   f"--app-port\n")
    assert_nothing_started(home_with_model)


def test_a_broken_config_file_is_exit_2_with_its_path(home: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text("app_port = 'eighty'\n")
    code, _, err = run_cli(capsys, "launch", "--no-browser")
    assert code == 2
    assert err == (f"Error: {home}/config/config.toml: app_port must be a whole number, "
                   "not 'eighty'\n")
    assert_nothing_started(home)


def test_debug_shows_the_traceback(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "--debug", "launch", "--model", "/nowhere/x.gguf")
    assert code == 1
    assert "Traceback (most recent call last)" in err
    assert err.rstrip().endswith("Error: no model file at /nowhere/x.gguf; "
                                 "check the path given to --model")


def test_help_works_whatever_the_configuration(home: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text("this is = not toml [")
    with pytest.raises(SystemExit) as done:
        main(["launch", "--help"])
    assert done.value.code == 0
    assert "--model NAME|PATH" in capsys.readouterr().out


def test_models_list_shows_pulled_and_pullable_models(
        home_with_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "models", "list", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [(r["name"], r["pulled"]) for r in rows] == [("smollm2-135m", True),
                                                        ("all-minilm-l6-v2", False)]
    assert rows[0]["path"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")


def test_models_list_on_a_fresh_home_offers_the_catalogue(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "models", "list")
    assert code == 0
    assert "not pulled: opea-chat models pull smollm2-135m" in out


def test_models_pull_of_an_unknown_name(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "models", "pull", "gpt-5")
    assert code == 1
    assert err == ("Error: unknown model 'gpt-5'; models that can be pulled: smollm2-135m, "
                   "hf:OWNER/REPO[:FILE], or the path of a model\n")


def opea_chat(*args: str, stdout: int = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    """The real command line, in its own process."""
    return subprocess.run([sys.executable, "-m", "launcher", *args], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=120, check=False)


def test_user_mistakes_are_one_line_errors_not_internal_errors(home: Path) -> None:
    compose = opea_chat("export", "compose", "-o", "/nonexistent-dir/x.yaml")
    assert (compose.returncode, compose.stderr) == (
        2, "Error: cannot write /nonexistent-dir/x.yaml: No such file or directory; choose a "
           "file in a folder you can write to with -o\n")
    assert not Path("/nonexistent-dir").exists()
    logs = opea_chat("logs", "-n", "-5")
    assert (logs.returncode, logs.stdout, logs.stderr) == (
        2, "", "Error: -n takes a number of lines, 0 or more, not -5; e.g. "
               "`opea-chat logs -n 100`\n")
    (home / "config" / "config.toml").mkdir(parents=True)
    for args in (("export", "compose"), ("launch", "--no-browser")):
        broken = opea_chat(*args)
        assert (broken.returncode, broken.stderr) == (
            2, f"Error: {home}/config/config.toml is a folder, not a file; move it away; the "
               "settings file is a TOML text file\n")
    assert not (home / "state" / "session.json").exists()


@pytest.mark.parametrize("args", [("status",), ("models", "list"), ("status", "--json")])
def test_a_reader_that_leaves_the_pipe_ends_the_command_quietly(home: Path,
                                                                args: tuple[str, ...]) -> None:
    """`opea-chat status | head -1`: the reader is gone before the command writes."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = opea_chat(*args, stdout=write_end)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, "")  # as `yes | head -1` ends
    # Through a shell, as a user types it: the first lines, nothing on stderr.
    shell = subprocess.run(["bash", "-o", "pipefail", "-c",
                            f"{sys.executable} -m launcher models list | head -2"],
                           capture_output=True, text=True, timeout=120, check=False)
    assert shell.returncode in (0, 141) and shell.stderr == ""
    assert len(shell.stdout.splitlines()) == 2
