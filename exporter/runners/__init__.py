"""Every runtime is a Runner with one interface: ``with runner: runner.infer(batch)``."""

from __future__ import annotations

from .base import Runner

__all__ = ["Runner"]
