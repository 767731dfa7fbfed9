"""``inspect``: a model's structure and parameter table, as the seed article prints them; or an ONNX file's
inputs, outputs, opset and initializers (read as data: no runtime, no external data followed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .artifacts.manifest import Manifest
from .config import VerifyConfig
from .tables import text_table


@dataclass
class ParameterRow:
    name: str
    shape: tuple[int, ...]
    count: int
    first_values: list[float]  # the first values of the tensor, flattened


@dataclass
class ModelInspection:
    name: str
    structure: str  # print(model)
    parameters: list[ParameterRow]
    buffers: list[ParameterRow] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(r.count for r in self.parameters)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {**asdict(self), "total": self.total}

    def render(self) -> str:
        lines = [f"Model structure: {self.structure}", ""]
        head = ("Layer", "Size", "Elements", "Values (first 4)")
        rows = [head] + [
            (r.name, str(list(r.shape)), f"{r.count:,}", ", ".join(f"{v:.4f}" for v in r.first_values))
            for r in self.parameters
        ]
        lines += text_table(rows)
        lines.append(f"Total parameters: {self.total:,}")
        if self.buffers:
            lines.append(f"Buffers (not parameters): {', '.join(b.name for b in self.buffers)}")
        return "\n".join(lines)


@dataclass
class OnnxInspection:
    path: str
    opset: int | None
    producer: str
    inputs: list[dict[str, Any]]  # name, dtype, shape (symbolic dims by name)
    outputs: list[dict[str, Any]]
    initializers: list[ParameterRow]
    nodes: int

    @property
    def total(self) -> int:
        return sum(r.count for r in self.initializers)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {**asdict(self), "total": self.total}

    def render(self) -> str:
        lines = [f"ONNX file {self.path}: opset {self.opset}, {self.nodes} nodes, produced by {self.producer}"]
        rows = [("", "name", "dtype", "shape")]
        rows += [("input", v["name"], v["dtype"], str(v["shape"])) for v in self.inputs]
        rows += [("output", v["name"], v["dtype"], str(v["shape"])) for v in self.outputs]
        lines += text_table(rows)
        lines.append("")
        rows = [("Initializer", "Size", "Elements", "Values (first 4)")]
        rows += [
            (r.name, str(list(r.shape)), f"{r.count:,}", ", ".join(f"{v:.4f}" for v in r.first_values))
            for r in self.initializers
        ]
        lines += text_table(rows)
        lines.append(f"Total initializer elements: {self.total:,}")
        return "\n".join(lines)


def inspect_onnx(path: str | Path) -> OnnxInspection:
    """An ONNX file's interface and initializers. External data is listed by size, never read."""
    import numpy as np
    import onnx
    from onnx import TensorProto, numpy_helper

    from .errors import InputSpecError, first_line

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as error:
        raise InputSpecError(f"{path} is not an ONNX file onnx can read ({first_line(error)})") from None

    def value(v: Any) -> dict[str, Any]:
        tensor_type = v.type.tensor_type
        dims = [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in tensor_type.shape.dim]
        return {"name": v.name, "dtype": TensorProto.DataType.Name(tensor_type.elem_type).lower(), "shape": dims}

    rows = []
    for init in proto.graph.initializer:
        count = int(np.prod(init.dims)) if init.dims else 1
        if init.data_location == TensorProto.EXTERNAL:
            first: list[float] = []  # in a side file: not read
        else:
            first = [float(x) for x in numpy_helper.to_array(init).ravel()[:4]]
        rows.append(ParameterRow(init.name, tuple(init.dims), count, first))
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    initializers = {i.name for i in proto.graph.initializer}
    return OnnxInspection(
        path=str(path),
        opset=opset,
        producer=f"{proto.producer_name} {proto.producer_version}".strip() or "unknown",
        inputs=[value(v) for v in proto.graph.input if v.name not in initializers],
        outputs=[value(v) for v in proto.graph.output],
        initializers=rows,
        nodes=len(proto.graph.node),
    )


def inspect(
    target: str | Path,
    *,
    input_shape: tuple[int, ...] | None = None,
    seed: int = 0,
    config: VerifyConfig | None = None,
) -> ModelInspection | OnnxInspection:
    """Inspect a model spec (built from ``seed``), an artifact folder's eager model, or an .onnx file."""
    if str(target).endswith(".onnx") and Path(target).is_file():
        return inspect_onnx(target)
    from .eager.sources import resolve

    path = Path(target)
    manifest = Manifest.load(path) if path.is_dir() else None  # usage errors answer before torch is imported
    source = None if manifest is not None else resolve(str(target), input_shape, need_shape=False)
    import torch

    from .eager import reference

    if manifest is not None:
        model = reference.rebuild(path, manifest, config or VerifyConfig(device="cpu"), torch.device("cpu"))
        name = str(manifest.model.get("name"))
    else:
        model = reference.build(source, seed, torch.device("cpu"))
        name = source.name

    def row(n: str, t: torch.Tensor) -> ParameterRow:
        return ParameterRow(n, tuple(t.shape), t.numel(), [float(v) for v in t.detach().flatten()[:4]])

    return ModelInspection(
        name=name,
        structure=str(model),
        parameters=[row(n, p) for n, p in model.named_parameters()],
        buffers=[row(n, b) for n, b in model.named_buffers()],
    )
