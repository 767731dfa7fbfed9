"""One module per artifact format. Each has ``FILE_NAME``, ``export(...)`` and ``runner(...)``.

The table below is plain data so the CLI can list formats without importing torch.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# format name -> (module in this package, runtime name used in reports)
FORMATS: dict[str, tuple[str, str]] = {
    "torchscript": ("torchscript", "torchscript"),
    "onnx": ("onnx", "onnxruntime"),
}
DATA_FORMATS = ("weights",)  # files bound by the manifest that no runtime runs


def module(fmt: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{FORMATS[fmt][0]}")


def runtime_name(fmt: str) -> str:
    return FORMATS[fmt][1] if fmt in FORMATS else fmt
