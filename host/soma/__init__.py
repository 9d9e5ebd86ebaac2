"""Soma host tools: the `soma` CLI and its libraries."""

__version__ = "0.1.0"
