"""Fixtures of the runner tests: the small model and its artifacts, made once for the package."""

from __future__ import annotations

import pytest
import torch

from .helpers import TwoLayer, artifact_bytes, onnx_weighted_bytes


@pytest.fixture(scope="package")
def model() -> TwoLayer:
    torch.manual_seed(0)
    return TwoLayer().eval()


@pytest.fixture(scope="package")
def artifacts(model) -> dict[str, bytes]:
    return artifact_bytes(model)


@pytest.fixture(scope="package")
def weighted_onnx() -> bytes:
    return onnx_weighted_bytes()
