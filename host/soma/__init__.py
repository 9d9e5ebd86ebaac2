"""Soma host tools: the `soma` CLI and its libraries."""

from soma_protocol.constants import VERSION

__version__ = VERSION  # pyproject.toml's, generated into soma_protocol.constants and the firmware
