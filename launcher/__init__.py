"""The opea-chat launcher: command line, settings and the orchestration of the OPEA stack."""

__version__ = "0.1.0"
