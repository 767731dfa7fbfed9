"""``write_repository``: turn an artifact folder into a Triton Inference Server model repository.

For each servable artifact the folder holds, one Triton model::

    REPOSITORY/NAME_onnx/config.pbtxt          platform "onnxruntime_onnx"
    REPOSITORY/NAME_onnx/1/model.onnx
    REPOSITORY/NAME_torchscript/config.pbtxt   platform "pytorch_libtorch"
    REPOSITORY/NAME_torchscript/1/model.pt

Every artifact is read once and its sha256 checked against the manifest before anything is
written; the checked bytes are what lands in the repository. Names, data types and dims come
from the artifact itself: the ONNX graph for the ONNX model; for TorchScript, which records no
tensor metadata, the manifest, with the ``<name>__<index>`` names Triton's libtorch backend
matches by position (``input__0`` is forward's first argument, ``logits__0`` its first output).
With ``max_batch_size > 0`` the batch dimension is left out of ``dims``, as Triton requires.

Each model folder is written into a hidden staging folder beside it and renamed into place
only when complete. A non-empty model folder is replaced only with ``force``. config.pbtxt is
protobuf text format for Triton's ``inference.ModelConfig``, written here directly so serving
needs no ``tritonclient`` (the tests parse it with tritonclient's ``model_config_pb2``).
onnx is imported inside the functions that need it, so importing this module is cheap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import formats
from ..artifacts.integrity import check_member, read_checked
from ..artifacts.manifest import ArtifactEntry, Manifest
from ..config import TritonConfig
from ..errors import (
    ArtifactDirError,
    ExportFailedError,
    ManifestError,
    UnverifiedFolderError,
    UsageError,
)
from ..tables import joined
from .pbtxt import ONNX_TYPES, TORCH_TYPES, TensorConfig, comment, describe, quote, tensor, tensor_block
from .repository import VERSION, check_source_outside, write_models

__all__ = ["VERSION", "TritonModel", "TritonResult", "write_repository"]

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # no leading dot: hidden names are staging folders

# format -> (platform, backend, file name Triton looks for in the version folder), from the format table
BACKENDS: dict[str, tuple[str, str, str]] = {f.name: (*f.triton, f.file) for f in formats.TABLE if f.triton}


@dataclass
class TritonModel:
    """One model of the repository: what config.pbtxt says, and where it was written."""

    name: str  # the folder name, which Triton requires to equal the config's name
    format: str  # the artifact format it serves: "onnx" or "torchscript"
    source: ArtifactEntry  # the artifact it was copied from
    max_batch_size: int
    inputs: list[TensorConfig]
    outputs: list[TensorConfig]
    dynamic_batching: bool
    notes: list[str] = field(default_factory=list)
    path: Path | None = None  # REPOSITORY/NAME_FORMAT once written

    @property
    def platform(self) -> str:
        return BACKENDS[self.format][0]

    @property
    def backend(self) -> str:
        return BACKENDS[self.format][1]

    @property
    def file_name(self) -> str:
        return BACKENDS[self.format][2]

    @property
    def config_text(self) -> str:
        """config.pbtxt: protobuf text format for ``inference.ModelConfig``."""
        lines = [
            f"# Written by `exporter triton` from {comment(self.source.path)} (sha256 {self.source.sha256}).",
            *(f"# {comment(note)}" for note in self.notes),
            f"name: {quote(self.name)}",
            f"platform: {quote(self.platform)}",
            f"backend: {quote(self.backend)}",
            f"max_batch_size: {self.max_batch_size}",
            *tensor_block("input", self.inputs),
            *tensor_block("output", self.outputs),
        ]
        if self.dynamic_batching:
            lines.append("dynamic_batching { }")
        return "\n".join(lines) + "\n"


@dataclass
class TritonResult:
    repository: Path
    models: list[TritonModel]

    def render(self) -> str:
        """What `exporter triton` prints: one line per model, its notes, and how to serve the repository."""
        lines = [f"Triton model repository {self.repository}:"]
        width = max(len(m.name) for m in self.models)
        for model in self.models:
            ins = ", ".join(describe(t) for t in model.inputs)
            outs = ", ".join(describe(t) for t in model.outputs)
            lines.append(
                f"  {model.name.ljust(width)}  {model.platform:<16}  max_batch_size {model.max_batch_size}  "
                f"{ins} -> {outs}"
            )
            lines += [f"    note: {note}" for note in model.notes]
        lines.append(f"serve it with: tritonserver --model-repository={self.repository.resolve()}")
        return joined(lines)  # tensor names are the artifacts'


def write_repository(
    artifact_dir: str | Path, repository: str | Path, config: TritonConfig | None = None
) -> TritonResult:
    """Write ARTIFACT_DIR's ONNX and TorchScript artifacts as Triton models into REPOSITORY.

    Returns the models written, with their config text. Raises ManifestError (exit 2) for a
    missing, corrupt or hostile manifest; ArtifactDirError (exit 2) when an artifact is missing,
    REPOSITORY cannot be written or a model path there is a file or a symlink;
    ModelFolderExistsError (exit 2) when a model folder is not empty and ``force`` is False;
    UsageError (exit 2) for a bad ``max_batch_size``; ExporterError (exit 1) when an artifact
    does not match its sha256; ExportFailedError (exit 1) when a tensor has a type Triton cannot
    serve. Nothing is written unless every artifact passed its hash check and every model folder
    may be written.
    """
    config = config or TritonConfig()  # checked when it was made
    folder = Path(artifact_dir)
    manifest = Manifest.load(folder)
    name = _model_name(manifest)
    check_source_outside(folder, Path(repository))
    notes = _verdict_notes(folder, manifest, config.allow_unverified)
    checked = _checked_artifacts(folder, manifest)  # what verify would refuse, refused first
    code_notes = _code_notes(manifest, config.allow_untrusted_code)
    onnx_types: dict[str, str] = {}
    models = []
    if "onnx" in checked:
        onnx_model = _onnx_model(f"{name}_onnx", *checked["onnx"], config)
        onnx_types = {t.name: t.data_type for t in onnx_model.outputs}
        models.append(onnx_model)
    if "torchscript" in checked:
        models.append(
            _torchscript_model(f"{name}_torchscript", checked["torchscript"][0], manifest, config, onnx_types)
        )
        models[-1].notes += code_notes
    for model in models:
        model.notes += notes
    repository = Path(repository)
    write_models(repository, models, folder, checked, config.force)
    return TritonResult(repository, models)


def _verdict_notes(folder: Path, manifest: Manifest, allow_unverified: bool) -> list[str]:
    """Nothing when a passed verification of this very manifest, signed with this user's key, is on record; else
    refuse, or a note (override)."""
    verdict = manifest.signed_verdict
    if verdict is not None and verdict.get("passed") is True:
        return []
    if verdict is not None:
        why = "its recorded verification FAILED"
    elif manifest.verdict is not None:
        why = "its recorded verification is not signed with your key (recorded elsewhere, or written by hand)"
    else:
        why = "no recorded verification names this manifest (never verified, or the folder changed since)"
    if not allow_unverified:
        raise UnverifiedFolderError(
            f"{folder}: {why}: run `exporter verify {folder}`, or pass --allow-unverified to write it anyway"
        )
    return [f"written with --allow-unverified: {why}"]


def _code_notes(manifest: Manifest, allow_untrusted_code: bool) -> list[str]:
    """Nothing for a signed folder, or one without TorchScript; else refuse its TorchScript (a Triton server that
    loads it runs the code it carries), or, with ``allow_untrusted_code``, a warning in its config."""
    entry = manifest.artifact("torchscript")
    refusal = manifest.refusal(False)
    if entry is None or refusal is None:
        return []
    if not allow_untrusted_code:
        raise UsageError(
            f"refusing to write {entry.path} into a Triton repository: {refusal}, and a Triton server that loads "
            "it runs the code it carries: sign the folder with `exporter trust DIR` if you trust where it came "
            "from, or pass --allow-untrusted-code to write it with a warning"
        )
    return [f"WARNING: written with --allow-untrusted-code: {refusal}; serving it runs the code it carries"]


def _model_name(manifest: Manifest) -> str:
    """The manifest's model name, which must be a plain folder name: it names folders in REPOSITORY."""
    name = manifest.model.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ManifestError(
            f"the manifest's model name {name!r} is not a plain folder name (letters, digits, _ . -): refusing it"
        )
    return name


def _checked_artifacts(folder: Path, manifest: Manifest) -> dict[str, tuple[ArtifactEntry, bytes | None]]:
    """Each servable artifact, hash-checked, in BACKENDS order: ONNX's bytes (its graph is read, its
    external data inlined); None for TorchScript, which is only copied (streamed, and checked again as it is).

    Raises ArtifactDirError when there is none or a file is missing, ExporterError on a hash mismatch.
    """
    found: dict[str, tuple[ArtifactEntry, bytes | None]] = {}
    for fmt in BACKENDS:
        entry = manifest.artifact(fmt)
        if entry is None:
            continue
        if fmt == "onnx":
            data = _inline_external_data(folder, manifest, entry, read_checked(folder, entry, "copy"))
            found[fmt] = (entry, data)
            continue
        check_member(folder, entry, "copy")  # streamed; the copy is checked again as it is made
        found[fmt] = (entry, None)
    if not found:
        raise ArtifactDirError(f"{folder} holds no ONNX or TorchScript artifact: export one with --format")
    return found


def _inline_external_data(folder: Path, manifest: Manifest, entry: ArtifactEntry, data: bytes) -> bytes:
    """An ONNX file with external data becomes one self-contained model.onnx for Triton.

    The side files must be bound by the manifest and pass their hash check; the model's data
    locations must name them (see formats.onnx.load_proto), or the artifact is refused.
    """
    sidecars = manifest.side_entries(entry)
    files = {side.path: read_checked(folder, side, "copy") for side in sidecars}
    from ..formats.onnx import inline_bytes

    return inline_bytes(
        data, files, entry.path
    )  # always: a location no checked file binds (in a subgraph, say) is refused


# --- ONNX: everything from the graph ---------------------------------------------------------------


def _onnx_model(name: str, entry: ArtifactEntry, data: bytes, config: TritonConfig) -> TritonModel:
    import onnx

    try:
        graph = onnx.load_from_string(data).graph
    except Exception as error:
        raise ExportFailedError(f"{entry.path} is not a readable ONNX model ({type(error).__name__})") from None
    initializers = {init.name for init in graph.initializer}  # older IRs list weights as inputs too
    values = [("input", v) for v in graph.input if v.name not in initializers] + [("output", v) for v in graph.output]
    shapes = {v.name: _onnx_shape(v, entry.path) for _, v in values}
    notes: list[str] = []
    fixed = [n for n, shape in shapes.items() if not shape or shape[0] is not None]
    batched = config.max_batch_size > 0 and not fixed
    if config.max_batch_size > 0 and fixed:
        notes.append(
            f"the ONNX graph fixes the first dimension of {', '.join(fixed)}: max_batch_size 0 (Triton will not "
            "batch) and dims keep every dimension; re-export with a dynamic batch axis to let Triton batch"
        )
    tensors: dict[str, list[TensorConfig]] = {"input": [], "output": []}
    for kind, value in values:
        dims = [-1 if d is None else d for d in shapes[value.name]]
        data_type = _onnx_type(value, entry.path)
        tensors[kind].append(tensor(value.name, data_type, dims, batched))
    max_batch = config.max_batch_size if batched else 0
    return TritonModel(
        name, "onnx", entry, max_batch, tensors["input"], tensors["output"], config.dynamic_batching and batched, notes
    )


def _onnx_shape(value: Any, where: str) -> list[int | None]:
    """The value's dims, None where symbolic or unknown; raises ExportFailedError without a known rank."""
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type" or not value.type.tensor_type.HasField("shape"):
        raise ExportFailedError(
            f"{where}: {value.name!r} is not a tensor of known rank, which a Triton config needs: re-export the model"
        )
    return [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]


def _onnx_type(value: Any, where: str) -> str:
    import onnx

    elem = value.type.tensor_type.elem_type
    type_name = onnx.TensorProto.DataType.Name(elem) if elem in onnx.TensorProto.DataType.values() else str(elem)
    if type_name not in ONNX_TYPES:
        raise ExportFailedError(f"{where}: {value.name!r} has ONNX type {type_name}, which Triton cannot serve")
    return ONNX_TYPES[type_name]


# --- TorchScript: names by position, shapes and dtypes from the manifest ----------------------------


def _torchscript_model(
    name: str, entry: ArtifactEntry, manifest: Manifest, config: TritonConfig, onnx_types: dict[str, str]
) -> TritonModel:
    """Triton's libtorch backend cannot read names from TorchScript: it takes ``<name>__<index>`` by position.

    Dims come from the manifest's interface: dynamic axes (by label) are -1; when the batch is
    Triton's, it leaves dims.
    """
    interface = manifest.interface
    inputs_dims = [[-1 if i in s.axes else d for i, d in enumerate(s.shape)] for s in interface.inputs]  # -1: any
    outputs_dims = [[-1 if isinstance(d, str) else d for d in o.shape] for o in interface.outputs]
    baked = [s.name for s in interface.inputs if s.axes.get(0) != "batch"]
    baked += [o.name for o in interface.outputs if not o.shape or o.shape[0] != "batch"]
    batched = config.max_batch_size > 0 and not baked
    first_in, first_out = interface.inputs[0].name, interface.outputs[0].name
    notes = [
        "names follow the <name>__<index> convention Triton's libtorch backend matches by position: "
        f"{first_in}__0 is forward's first argument, {first_out}__0 its first output"
    ]
    if config.max_batch_size > 0 and baked:
        notes.append(
            f"the manifest records no dynamic batch axis for {', '.join(baked)}: max_batch_size 0 (Triton will not "
            "batch) and dims keep every dimension"
        )
    inputs = [
        tensor(f"{s.name}__{i}", _torch_type(s.dtype, s.name), dims, batched)
        for i, (s, dims) in enumerate(zip(interface.inputs, inputs_dims, strict=True))
    ]
    outs = []
    for index, (out, dims) in enumerate(zip(interface.outputs, outputs_dims, strict=True)):
        data_type = onnx_types.get(out.name) or _torch_type(out.dtype, out.name)
        outs.append(tensor(f"{out.name}__{index}", data_type, dims, batched))
    max_batch = config.max_batch_size if batched else 0
    return TritonModel(name, "torchscript", entry, max_batch, inputs, outs, config.dynamic_batching and batched, notes)


def _torch_type(dtype: Any, name: str) -> str:
    if dtype not in TORCH_TYPES:
        raise ExportFailedError(f"{name!r} has dtype {dtype!r}, which this tool cannot map to a Triton data type")
    return TORCH_TYPES[dtype]
