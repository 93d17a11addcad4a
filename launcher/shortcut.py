"""`opea-chat shortcut install|remove`: start opea-chat from the desktop, no terminal needed.

Linux: a freedesktop ``.desktop`` entry in the applications menu (and on the desktop with
``--desktop``); macOS: an app bundle in ~/Applications; Windows: a ``.bat`` launcher and
``.url`` shortcuts on the desktop and in the Start menu (a ``.lnk`` needs COM, which plain
Python does not have). Every shortcut runs ``opea-chat launch --background`` by absolute
path, with this home's ``OPEA_CHAT_HOME`` if one is set. What ``install`` wrote is listed
in the state folder, and ``remove`` deletes exactly that.
"""

from __future__ import annotations

import contextlib
import json
import os
import plistlib
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

import platformdirs

from launcher import __version__
from launcher.errors import ConfigError
from launcher.paths import HOME_VARIABLE, Paths

ASSETS = Path(__file__).resolve().parent / "assets"
APP_ID = "opea-chat"


@dataclass(frozen=True)
class ShortcutFile:
    path: Path
    content: bytes
    executable: bool = False


def launch_command() -> list[str]:
    """The launcher by absolute path, as a desktop will run it."""
    script = Path(sys.executable).parent / ("opea-chat.exe" if os.name == "nt" else "opea-chat")
    base = [str(script)] if script.exists() else [sys.executable, "-m", "launcher"]
    return [*base, "launch", "--background"]


def _environment() -> dict[str, str]:
    home = os.environ.get(HOME_VARIABLE)
    return {HOME_VARIABLE: str(Path(home).expanduser().resolve())} if home else {}


def desktop_entry(command: list[str], environment: dict[str, str], icon: Path) -> str:
    """A freedesktop Desktop Entry (validated by desktop-file-validate in the tests)."""
    exec_line = " ".join(
        [*(["env", *(f"{k}={shlex.quote(v)}" for k, v in environment.items())]
           if environment else []),
         *(_desktop_quote(part) for part in command)])
    return "\n".join([
        "[Desktop Entry]",
        "Type=Application",
        "Version=1.4",
        "Name=opea-chat",
        "GenericName=Local LLM chat",
        "Comment=Chat with a local LLM through an OPEA ChatQnA stack",
        f"Exec={exec_line}",
        f"Icon={icon}",
        "Terminal=false",
        "Categories=Utility;",
        "Keywords=LLM;chat;OPEA;AI;",
        "StartupNotify=false",
        "",
    ])


def _desktop_quote(argument: str) -> str:
    """Quoting per the Desktop Entry spec's Exec key (reserved characters in quotes)."""
    if argument and not any(c in argument for c in " \t\n\"'\\><~|&;$*?#()`%"):
        return argument
    escaped = argument.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`")
    return '"' + escaped.replace("$", "\\$").replace("%", "%%") + '"'


def linux_files(command: list[str], environment: dict[str, str], menu_dir: Path,
                desktop_dir: Path | None, icon_dir: Path) -> list[ShortcutFile]:
    icon = icon_dir / f"{APP_ID}.svg"
    entry = desktop_entry(command, environment, icon).encode()
    files = [ShortcutFile(icon, (ASSETS / "opea-chat.svg").read_bytes()),
             ShortcutFile(menu_dir / f"{APP_ID}.desktop", entry)]
    if desktop_dir is not None:
        # Desktops only start entries on the desktop that are executable (trusted).
        files.append(ShortcutFile(desktop_dir / f"{APP_ID}.desktop", entry, executable=True))
    return files


def macos_files(command: list[str], environment: dict[str, str],
                applications_dir: Path) -> list[ShortcutFile]:
    bundle = applications_dir / "opea-chat.app" / "Contents"
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in environment.items())
    script = (f"#!/bin/sh\n{exports}exec {shlex.join(command)}\n").encode()
    info = plistlib.dumps({
        "CFBundleName": "opea-chat",
        "CFBundleDisplayName": "opea-chat",
        "CFBundleIdentifier": "org.opea-chat.launcher",
        "CFBundleExecutable": APP_ID,
        "CFBundleIconFile": "opea-chat.png",
        "CFBundlePackageType": "APPL",
        "CFBundleShortVersionString": __version__,
        "LSUIElement": True,
    })
    return [ShortcutFile(bundle / "Info.plist", info),
            ShortcutFile(bundle / "MacOS" / APP_ID, script, executable=True),
            ShortcutFile(bundle / "Resources" / "opea-chat.png",
                         (ASSETS / "opea-chat.png").read_bytes())]


def windows_files(command: list[str], environment: dict[str, str], desktop_dir: Path | None,
                  start_menu_dir: Path | None, data_dir: Path) -> list[ShortcutFile]:
    sets = "".join(f'set "{k}={v}"\r\n' for k, v in environment.items())
    quoted = " ".join(f'"{part}"' if " " in part else part for part in command)
    batch = data_dir / "opea-chat.bat"
    icon = data_dir / "opea-chat.ico"
    # `start /b` detaches from the console window the .bat opens.
    files = [ShortcutFile(batch, f"@echo off\r\n{sets}start \"\" /b {quoted}\r\n".encode()),
             ShortcutFile(icon, (ASSETS / "opea-chat.ico").read_bytes())]
    url = (f"[InternetShortcut]\r\nURL=file:///{PureWindowsPath(batch).as_posix()}\r\n"
           f"IconFile={PureWindowsPath(icon)}\r\nIconIndex=0\r\n").encode()
    for folder in (desktop_dir, start_menu_dir):
        if folder is not None:
            files.append(ShortcutFile(folder / "opea-chat.url", url))
    return files


def _xdg_desktop() -> Path:
    try:
        found = subprocess.run(["xdg-user-dir", "DESKTOP"], capture_output=True, text=True,
                               timeout=3, check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        found = ""
    return Path(found) if found else Path(platformdirs.user_desktop_dir())


def planned_files(paths: Paths, desktop: bool, menu: bool,
                  platform: str = sys.platform) -> list[ShortcutFile]:
    command, environment = launch_command(), _environment()
    if platform.startswith("linux"):
        data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
        files = linux_files(command, environment, data_home / "applications",
                            _xdg_desktop() if desktop else None,
                            data_home / "icons" / "hicolor" / "scalable" / "apps")
        return files if menu else [f for f in files if f.path.parent.name != "applications"]
    if platform == "darwin":
        return macos_files(command, environment, Path.home() / "Applications")
    if platform == "win32":
        start_menu = Path(os.environ.get("APPDATA", Path.home())) / "Microsoft" / "Windows" / \
            "Start Menu" / "Programs"
        return windows_files(command, environment, _xdg_desktop() if desktop else None,
                             start_menu if menu else None, paths.data_dir)
    raise ConfigError(f"shortcuts are not supported on {platform}")


def _manifest(paths: Paths) -> Path:
    return paths.state_dir / "shortcuts.json"


def install(paths: Paths, desktop: bool, menu: bool, platform: str = sys.platform
            ) -> list[Path]:
    if not desktop and not menu:
        raise ConfigError("nothing to install", hint="use --menu, --desktop or both")
    remove(paths)  # a re-install replaces the earlier one, leaving nothing stale
    files = planned_files(paths, desktop, menu, platform)
    created_dirs: list[Path] = []
    for file in files:
        missing = [d for d in reversed(file.path.parents) if not d.exists()]
        file.path.parent.mkdir(parents=True, exist_ok=True)
        created_dirs += missing
        file.path.write_bytes(file.content)
        file.path.chmod(0o755 if file.executable else 0o644)
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    _manifest(paths).write_text(json.dumps(
        {"files": [str(f.path) for f in files], "dirs": [str(d) for d in created_dirs]},
        indent=2))
    _refresh_menu(files)
    return [f.path for f in files]


def _refresh_menu(files: list[ShortcutFile] | list[Path]) -> None:
    """Let the desktop's menu cache know (only the applications folder has one)."""
    paths = [f.path if isinstance(f, ShortcutFile) else f for f in files]
    if shutil.which("update-desktop-database"):
        for folder in {p.parent for p in paths if p.parent.name == "applications"}:
            if folder.is_dir():
                subprocess.run(["update-desktop-database", str(folder)], capture_output=True,
                               check=False, timeout=10)


def remove(paths: Paths) -> list[Path]:
    """Delete the files install wrote, then the folders it created (if left empty)."""
    manifest = _manifest(paths)
    try:
        listed = json.loads(manifest.read_text())
    except (FileNotFoundError, ValueError):
        return []
    removed = []
    for path in map(Path, listed["files"]):
        if path.is_file() or path.is_symlink():
            path.unlink()
            removed.append(path)
    for folder in sorted(map(Path, listed["dirs"]), key=lambda d: len(d.parts), reverse=True):
        with contextlib.suppress(OSError):  # not empty: something else lives there now
            folder.rmdir()
    manifest.unlink()
    _refresh_menu(removed)
    return removed
