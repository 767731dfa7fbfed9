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


def select(artifacts: list, wanted: tuple[str, ...]) -> list:
    """The runnable artifacts (manifest entries with ``.format``) named by ``wanted``, in order.

    ``wanted`` holds runtime or format names ("onnxruntime" or "onnx"; "eager" is always
    there); empty: every runnable artifact. UsageError naming both spellings for an unknown one.
    """
    runnable = [a for a in artifacts if a.format in FORMATS]
    if not wanted:
        return runnable
    known = {a.format for a in runnable} | {runtime_name(a.format) for a in runnable} | {"eager"}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        from ..errors import UsageError

        have = ", ".join(
            runtime_name(a.format) if runtime_name(a.format) == a.format else f"{runtime_name(a.format)} ({a.format})"
            for a in runnable
        )
        raise UsageError(f"this folder has no runtime {', '.join(map(repr, unknown))}: it has eager, {have}")
    return [a for a in runnable if a.format in wanted or runtime_name(a.format) in wanted]


def module(fmt: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{FORMATS[fmt][0]}")


def runtime_name(fmt: str) -> str:
    return FORMATS[fmt][1] if fmt in FORMATS else fmt
