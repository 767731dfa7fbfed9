"""exporter: export PyTorch models to TorchScript and ONNX, and prove the artifacts match eager.

The API under the CLI::

    from exporter import ExportConfig, VerifyConfig, export, verify

    result = export("mlp", ExportConfig(out="artifacts", device="cpu"))
    report = verify(result.path, VerifyConfig(samples=1000))
    assert report.passed, report.failures

Attributes are imported lazily, so ``import exporter`` (and ``exporter --help``)
does not import torch.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "export": ("exporting", "export"),
    "ExportResult": ("exporting", "ExportResult"),
    "verify": ("verification", "verify"),
    "VerificationReport": ("verification.results", "VerificationReport"),
    "inspect": ("inspection", "inspect"),
    "predict": ("prediction", "predict"),
    "bench": ("benchmarking", "bench"),
    "write_repository": ("triton", "write_repository"),
    "ExportConfig": ("config", "ExportConfig"),
    "VerifyConfig": ("config", "VerifyConfig"),
    "BenchConfig": ("config", "BenchConfig"),
    "TritonConfig": ("config", "TritonConfig"),
    "Tolerance": ("config", "Tolerance"),
    "ExporterError": ("errors", "ExporterError"),
    "UsageError": ("errors", "UsageError"),
    "ExportFailedError": ("errors", "ExportFailedError"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'exporter' has no attribute {name!r}")
    import importlib

    module_name, attr = _LAZY[name]
    return getattr(importlib.import_module(f".{module_name}", __name__), attr)
