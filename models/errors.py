"""The errors of models: finding, reading, checking and fetching model files."""

from __future__ import annotations

from opea.errors import OpeaChatError


class ModelError(OpeaChatError):
    """The model asked for cannot be found, fetched or served."""
