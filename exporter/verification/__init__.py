"""Verification: every artifact of a folder against the eager model, on the same inputs."""

from __future__ import annotations

from .run import verify

__all__ = ["verify"]
