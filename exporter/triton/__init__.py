"""A Triton Inference Server model repository from an artifact folder (``exporter triton``)."""

from __future__ import annotations

from .build import TritonModel, TritonResult, write_repository
from .repository import VERSION

__all__ = ["VERSION", "TritonModel", "TritonResult", "write_repository"]
