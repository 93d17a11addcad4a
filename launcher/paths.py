"""Where opea-chat keeps its files.

By default the platform's own folders (platformdirs). ``OPEA_CHAT_HOME`` moves all of them
under one folder, which is how tests and portable installs isolate themselves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "opea-chat"
HOME_VARIABLE = "OPEA_CHAT_HOME"


@dataclass(frozen=True)
class Paths:
    config_dir: Path
    data_dir: Path
    models_dir: Path
    state_dir: Path
    log_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def lock_file(self) -> Path:
        """Held by the one launcher of this home (launcher/home_lock.py)."""
        return self.state_dir / "launch.lock"

    @property
    def session_file(self) -> Path:
        """What the running launcher started (PIDs, ports), for `stop` and `status`."""
        return self.state_dir / "session.json"


def resolve_paths(environ: dict[str, str] | None = None) -> Paths:
    env = os.environ if environ is None else environ
    home = env.get(HOME_VARIABLE)
    if home:
        root = Path(home).expanduser().resolve()
        return Paths(
            config_dir=root / "config",
            data_dir=root / "data",
            models_dir=root / "models",
            state_dir=root / "state",
            log_dir=root / "logs",
        )
    data_dir = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    return Paths(
        config_dir=Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
        data_dir=data_dir,
        models_dir=data_dir / "models",
        state_dir=Path(platformdirs.user_state_dir(APP_NAME, appauthor=False)),
        log_dir=Path(platformdirs.user_log_dir(APP_NAME, appauthor=False)),
    )
