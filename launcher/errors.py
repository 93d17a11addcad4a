"""The launcher's own errors: settings, ports, the machine, and starting services.

They share the base ``opea.errors.OpeaChatError`` with the other packages' errors (see
there); ``launcher.cli`` is the one place that maps any of them to a message and exit code.
"""

from __future__ import annotations

from models.errors import ModelError
from opea.errors import OpeaChatError

# Settings and input -------------------------------------------------------------------


class ConfigError(OpeaChatError):
    """A setting (config.toml, OPEA_CHAT_* variable or flag) has a bad name or value."""

    exit_code = 2


class PortInUseError(OpeaChatError):
    """A port the user asked for is taken by another program."""


class NotEnoughMemoryError(ModelError):
    """The model needs more memory (GPU or RAM) than the machine has free.

    A model error (the model does not fit), found by the launcher's checks of the machine."""


class DiskSpaceError(OpeaChatError):
    """A download (model or images) would not fit on the disk it goes to."""


# The machine: Docker, GPUs, images -----------------------------------------------------


class DockerUnavailableError(OpeaChatError):
    """The Docker engine cannot be reached."""


class GpuUnavailableError(OpeaChatError):
    """A service needs an NVIDIA GPU that Docker cannot give it."""


class ImageError(OpeaChatError):
    """A container image is missing, cannot be pulled, or the pull was refused."""


class CleanupError(OpeaChatError):
    """Something opea-chat started could not be removed at the end."""


class ControlError(OpeaChatError):
    """The running launcher did not answer, or refused, a control request."""


class RecordError(OpeaChatError):
    """A record (session file, status report, control reply) is not what it must be."""


class SessionFileError(RecordError):
    """The session file is damaged or was written by another version of opea-chat."""


# Starting and running services --------------------------------------------------------


class ServiceStartError(OpeaChatError):
    """A service did not become healthy: it exited, or its start timed out."""

    def __init__(self, service: str, message: str, *, hint: str | None = None,
                 details: str | None = None):
        super().__init__(message, hint=hint, details=details)
        self.service = service


class ServiceExitedError(ServiceStartError):
    """A service's process or container ended while it was starting or running."""


class StartTimeoutError(ServiceStartError):
    """A service was still not healthy when its start timeout ran out."""


class Interrupted(OpeaChatError):
    """The user asked to stop (Ctrl+C, SIGTERM, SIGHUP) before the stack was ready."""

    exit_code = 130
