"""The command line: ``exporter`` and its commands, a thin click layer over the Python API."""

from __future__ import annotations

from .commands import cli, main

__all__ = ["cli", "main"]
