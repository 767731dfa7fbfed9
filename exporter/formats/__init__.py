"""The one table of artifact formats. Everything that names a format derives from ``TABLE``.

Each format has one module in this package that exports it and describes the file it wrote;
the runner that loads and runs it lives in ``exporter.runners`` (formats never import
runners). The table is plain data, so the CLI lists choices without importing torch.

Each artifact kind has one name per role: ``name`` is what ``--format`` and the manifest
say; ``runtime`` is what every report and every JSON output keys results by; ``label`` is
what a reader knows it as (bench's table).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Format:
    name: str  # --format and the manifest's "format"
    file: str  # the file it writes in the artifact folder
    runtime: str  # the key of its results in every report and JSON output
    label: str  # what a reader knows it as
    module: str  # the module of this package that exports it
    engine: str  # what runs it: "torch.jit", "torch.export" or "onnxruntime"
    default: bool = False  # written when --format is not given
    quantized: bool = False  # verified under the quantisation policy, not the fp32 tolerance
    triton: tuple[str, str] | None = None  # Triton (platform, backend) that serves it; None: not served

    @property
    def runs_code(self) -> bool:
        """Loading it runs code the file carries (torch.jit.load, torch.export.load): only from trusted folders."""
        return self.engine in ("torch.jit", "torch.export")


EAGER = "eager"  # the reference runtime: the eager PyTorch model itself
EAGER_LABEL = "PyTorch"

TABLE: tuple[Format, ...] = (  # in the order `export` writes them
    Format(
        "torchscript", "model.pt", "torchscript", "TorchScript", "torchscript", "torch.jit",
        default=True, triton=("pytorch_libtorch", "pytorch"),
    ),
    Format(
        "onnx", "model.onnx", "onnxruntime", "ONNX", "onnx", "onnxruntime",
        default=True, triton=("onnxruntime_onnx", "onnxruntime"),
    ),
    Format("pt2", "model.pt2", "pt2", "torch.export", "pt2", "torch.export"),
    Format("onnx-int8", "model.int8.onnx", "onnxruntime-int8", "ONNX int8", "onnx_int8", "onnxruntime", quantized=True),
)  # fmt: skip
FORMATS: dict[str, Format] = {f.name: f for f in TABLE}
NAMES: tuple[str, ...] = tuple(FORMATS)
DEFAULTS: tuple[str, ...] = tuple(f.name for f in TABLE if f.default)
RUNTIMES: tuple[str, ...] = (EAGER, *(f.runtime for f in TABLE))

# Files the manifest binds that no runtime runs: the eager weights, and ONNX external data
# (whose entry names the ONNX file it belongs to in ``details["of"]``).
WEIGHTS = "weights"
ONNX_DATA = "onnx-data"
SIDE_FILES: tuple[str, ...] = (WEIGHTS, ONNX_DATA)


@dataclass(frozen=True)
class ExportSpec:
    """What every format's ``export(model, args, path, spec)`` is told; each reads what it needs.

    ``args`` are forward's positional arguments, already enlarged so no dynamic axis has size
    0 or 1 (``probing.export_example``).
    """

    input_names: tuple[str, ...]  # in forward's order
    output_names: tuple[str, ...]  # flattened, in order
    dynamic: tuple[dict[int, str], ...]  # per input: axis -> label ("batch", "seq", ...)
    output_dynamic: tuple[dict[int, str], ...] = ()  # per output: axis -> label (the legacy ONNX exporter's)
    opset: int | None = None  # ONNX: None for the exporter's default
    onnx_exporter: str = "dynamo"  # ONNX: "dynamo" (torch.export based) or "legacy" (TorchScript based)
    external_data: bool = False  # ONNX: weights in a side file (automatic past protobuf's 2 GB limit)

    def dynamic_shapes(self, bounds: dict[str, tuple[int | None, int | None]] | None = None) -> tuple[dict, ...]:
        """torch.export's ``dynamic_shapes``: one ``Dim`` per label, shared by every axis that has it;
        ``bounds``: (min, max) for some labels, as torch.export suggests them (``_explain.suggested_bounds``)."""
        import torch

        bounds = bounds or {}
        dims = {}
        for label in (label for axes in self.dynamic for label in axes.values()):
            if "+" in label:  # a sum (the mask of the past and new tokens): torch.export finds it from its parts
                dims[label] = torch.export.Dim.DYNAMIC
                continue
            low, high = bounds.get(label, (None, None))
            limits = {k: v for k, v in (("min", low), ("max", high)) if v is not None}
            dims[label] = torch.export.Dim(label, **limits)
        return tuple({axis: dims[label] for axis, label in axes.items()} for axes in self.dynamic)


def get(name: str) -> Format | None:
    """The format named ``name`` (its format or its runtime name), or None."""
    return FORMATS.get(name) or next((f for f in TABLE if f.runtime == name), None)


def runtime_name(name: str) -> str:
    """The runtime name of a format (``onnx`` -> ``onnxruntime``); other names unchanged."""
    found = FORMATS.get(name)
    return found.runtime if found else name


def label(name: str) -> str:
    found = get(name)
    return found.label if found else EAGER_LABEL if name == EAGER else name


def exporter_module(name: str) -> ModuleType:
    """The module that exports format ``name`` (imports torch)."""
    return importlib.import_module(f"{__name__}.{FORMATS[name].module}")


def spellings(chosen: list[Format] | tuple[Format, ...] = TABLE) -> str:
    """Runtime names with their format names where they differ: ``onnxruntime (onnx)``."""
    return ", ".join(f.runtime if f.runtime == f.name else f"{f.runtime} ({f.name})" for f in chosen)


def select(artifacts: list, wanted: tuple[str, ...]) -> list:
    """The runnable artifacts (manifest entries with ``.format``) named by ``wanted``, in order.

    ``wanted`` holds runtime or format names ("onnxruntime" or "onnx"; "eager" is always
    there); empty: every runnable artifact. UsageError naming both spellings for an unknown one.
    """
    runnable = [a for a in artifacts if a.format in FORMATS]
    if not wanted:
        return runnable
    known = {a.format for a in runnable} | {runtime_name(a.format) for a in runnable} | {EAGER}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        from ..errors import UsageError

        have = spellings([FORMATS[a.format] for a in runnable])
        raise UsageError(f"this folder has no runtime {', '.join(map(repr, unknown))}: it has {EAGER}, {have}")
    return [a for a in runnable if a.format in wanted or runtime_name(a.format) in wanted]
