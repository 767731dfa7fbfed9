"""One module per artifact format. Each has ``FILE_NAME``, ``export(...)`` and ``runner(...)``.

The table below is plain data so the CLI can list formats without importing torch.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# format name -> (module in this package, runtime name used in reports), in the order written
FORMATS: dict[str, tuple[str, str]] = {
    "torchscript": ("torchscript", "torchscript"),
    "onnx": ("onnx", "onnxruntime"),
    "pt2": ("pt2", "pt2"),
    "onnx-int8": ("onnx_int8", "onnxruntime-int8"),
}
QUANTIZED = ("onnx-int8",)  # verified under the quantisation policy, not the fp32 tolerance
DATA_FORMATS = ("weights", "onnx-data")  # files bound by the manifest that no runtime runs


def module(fmt: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{FORMATS[fmt][0]}")


def runtime_name(fmt: str) -> str:
    return FORMATS[fmt][1] if fmt in FORMATS else fmt
