"""``inspect``: a model's structure and parameter table, as the seed article prints them; or an ONNX file's
inputs, outputs, opset and initializers (read as data: no runtime, no external data followed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .artifacts.manifest import Manifest
from .config import VerifyConfig
from .tables import joined, text_table


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
        return joined(self.lines())

    def lines(self) -> list[str]:
        lines = [*f"Model structure: {self.structure}".split("\n"), ""]  # print(model)'s own lines kept
        head = ("Layer", "Size", "Elements", "Values (first 4)")
        rows = [head] + [
            (r.name, str(list(r.shape)), f"{r.count:,}", ", ".join(f"{v:.4f}" for v in r.first_values))
            for r in self.parameters
        ]
        lines += text_table(rows)
        lines.append(f"Total parameters: {self.total:,}")
        if self.buffers:
            lines.append(f"Buffers (not parameters): {', '.join(b.name for b in self.buffers)}")
        return lines


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
        return joined(lines)  # names and the producer are the file's


@dataclass
class FolderInspection:
    """An artifact folder as it is: what it holds, what its model takes and returns, its verdict, its trust."""

    path: str
    model: dict[str, Any]  # the manifest's model section: name, source, seed, dtype, parameters
    device: str
    files: list[dict[str, Any]]  # format, path, bytes, sha256 of every file the manifest binds
    inputs: list[str]  # each input as the verifier draws it (InputSpec.describe)
    outputs: list[str]  # name dtype (shape)
    verification: dict[str, Any] | None  # the recorded verdict on this very manifest; None: none
    trust: str  # whether this machine's key signed it, and so whether its TorchScript and pt2 load
    versions: dict[str, str]
    eager: ModelInspection | None = None  # the rebuilt eager model; None: it could not be rebuilt (see note)
    note: str | None = None  # why the eager model was not rebuilt

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        data = asdict(self)
        data["eager"] = None if self.eager is None else self.eager.to_dict()
        return data

    def render(self) -> str:
        from .tables import human_size

        model = self.model
        lines = [
            f"Artifact folder {self.path}: {model.get('name')} ({model.get('dtype') or 'float32'}), exported on "
            f"{self.device} with exporter {self.versions.get('exporter', '?')}, torch {self.versions.get('torch', '?')}"
        ]
        rows = [("format", "file", "size", "sha256")]
        rows += [(f["format"], f["path"], human_size(f["bytes"]), f["sha256"][:16]) for f in self.files]
        lines += ["", *text_table(rows), ""]
        lines += [f"input: {text}" for text in self.inputs] + [f"output: {text}" for text in self.outputs]
        lines += [f"verification: {_verdict_text(self.verification)}", f"trust: {self.trust}"]
        if self.eager is not None:
            lines += ["", *self.eager.lines()]
        elif self.note:
            lines.append(f"eager model: {self.note}")
        return joined(lines)  # the model's name, inputs, outputs and files are the manifest's


def _verdict_text(verdict: dict[str, Any] | None) -> str:
    if verdict is None:
        return "none recorded for this manifest (never verified, or changed since): run `exporter verify DIR`"
    state = "passed" if verdict.get("passed") else f"FAILED ({verdict.get('failures')} problem(s))"
    tolerances = {
        f"atol {t.get('atol'):g}, rtol {t.get('rtol'):g}"
        for per_output in (verdict.get("tolerances") or {}).values()
        for t in per_output.values()
        if isinstance(t, dict) and isinstance(t.get("atol"), (int, float)) and isinstance(t.get("rtol"), (int, float))
    }
    sizes = ", ".join(map(str, verdict.get("batch_sizes") or []))
    text = f"{state} on {verdict.get('samples')} samples at batch {sizes}"
    if tolerances:
        text += f", tolerance {'; '.join(sorted(tolerances))}"
    relaxed = verdict.get("relaxed")
    return text + (f", judged under {', '.join(relaxed)}" if relaxed else "")


def inspect_folder(path: Path, manifest: Manifest, config: VerifyConfig | None = None) -> FolderInspection:
    """What an artifact folder holds, read from its manifest (nothing is loaded); and its eager model, rebuilt
    (a file-based export needs its --source)."""
    from .errors import UsageError

    interface = manifest.interface
    refusal = manifest.refusal(False)
    inspection = FolderInspection(
        path=str(path),
        model={k: v for k, v in manifest.model.items() if k != "weights"},
        device=manifest.device,
        files=[{"format": a.format, "path": a.path, "bytes": a.bytes, "sha256": a.sha256} for a in manifest.artifacts],
        inputs=[s.describe() for s in interface.inputs],
        outputs=[f"{o.name} {o.dtype} ({', '.join(map(str, o.shape))})" for o in interface.outputs],
        verification=manifest.verdict,
        trust="signed with this machine's key: its TorchScript and pt2 files load"
        if refusal is None
        else f"{refusal.removeprefix('the folder is ')}: TorchScript and pt2 load only with --trust-artifacts "
        "or after `exporter trust DIR`",
        versions=dict(manifest.versions),
    )
    try:
        inspection.eager = _eager_inspection(path, manifest, config)
    except UsageError as error:
        inspection.note = str(error)
    return inspection


def _eager_inspection(path: Path, manifest: Manifest, config: VerifyConfig | None) -> ModelInspection:
    import torch

    from .eager import reference

    model = reference.rebuild(path, manifest, config or VerifyConfig(device="cpu"), torch.device("cpu"))
    return _model_inspection(str(manifest.model.get("name")), model)


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
    from .formats import onnx_check

    # external data is listed, never read: its size is not checked here (verify checks it against its file)
    unread = 2**63
    tensors = [(t, unread if t.data_location == TensorProto.EXTERNAL else None) for t in onnx_check.tensors_in(proto)]
    onnx_check.check(proto, str(path), tensors)  # a cycle, a dimension of -10, 4 TiB declared: one line, exit 2

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
) -> ModelInspection | OnnxInspection | FolderInspection:
    """Inspect a model spec (built from ``seed``), an artifact folder (what it holds, its verdict, its trust
    and its eager model), or an .onnx file."""
    if str(target).endswith(".onnx") and Path(target).is_file():
        return inspect_onnx(target)
    from .eager.sources import resolve
    from .paths import check_shadowing

    check_shadowing()

    path = Path(target)
    manifest = Manifest.load(path) if path.is_dir() else None  # usage errors answer before torch is imported
    source = None if manifest is not None else resolve(str(target), input_shape, need_shape=False)
    import torch

    from .eager import reference

    if manifest is not None:
        return inspect_folder(path, manifest, config)
    return _model_inspection(source.name, reference.build(source, seed, torch.device("cpu")))


def _model_inspection(name: str, model) -> ModelInspection:
    def row(n: str, t) -> ParameterRow:
        return ParameterRow(n, tuple(t.shape), t.numel(), [float(v) for v in t.detach().flatten()[:4]])

    return ModelInspection(
        name=name,
        structure=str(model),
        parameters=[row(n, p) for n, p in model.named_parameters()],
        buffers=[row(n, b) for n, b in model.named_buffers()],
    )


def describe_folder(folder: Path) -> str:
    """An artifact folder in one phrase: ``an export of mlp in float16 (torchscript, onnx), verification passed``."""
    from . import formats
    from .errors import ManifestError

    try:
        manifest = Manifest.load(folder)
    except ManifestError:
        return "a folder without a readable manifest"
    runtimes = ", ".join(a.format for a in manifest.artifacts if a.format in formats.FORMATS)
    verdict = manifest.verdict
    state = "never verified" if verdict is None else "verification " + ("passed" if verdict.get("passed") else "FAILED")
    dtype = manifest.model.get("dtype") or "float32"
    return f"an export of {manifest.model.get('name')} in {dtype} ({runtimes}) from {manifest.device}, {state}"
