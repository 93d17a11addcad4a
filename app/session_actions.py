"""What the page may ask of the running launcher, through its control channel: quit the
whole session, or switch the model (only the LLM service restarts; conversations live in
the history store and are not touched)."""

from __future__ import annotations

from app.stack_status import StackInfo
from launcher.errors import ControlError
from launcher.paths import resolve_paths
from models.store import model_names

QUIT_REASON = "Quit in the app"
# Long enough for the page to render its "stopped" message before the app itself stops.
QUIT_DELAY_S = 1.5


def can_control(info: StackInfo) -> bool:
    return info.control is not None


def quit_session(info: StackInfo) -> None:
    client = info.control_client()
    if client is None:
        raise ControlError("this page was not started by `opea-chat launch`",
                           hint="stop the services the way you started them")
    try:
        client.shutdown(QUIT_REASON, after_s=QUIT_DELAY_S)
    finally:
        client.close()


def model_choices(current: str | None) -> list[str]:
    """The models in the models folder, the running one first."""
    names = model_names(resolve_paths().models_dir)
    if current in names:
        names.remove(current)
        names.insert(0, current)
    return names


def switch_model(info: StackInfo, model: str, timeout: float = 900.0) -> str:
    """Ask the launcher to restart the LLM with ``model``; returns the model's name."""
    client = info.control_client(timeout)
    if client is None:
        raise ControlError("this page was not started by `opea-chat launch`",
                           hint="restart it with --model instead")
    try:
        return client.switch_model(model, timeout=timeout).model
    finally:
        client.close()
