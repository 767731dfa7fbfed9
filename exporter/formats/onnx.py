"""ONNX through ``torch.onnx.export``, with a dynamic batch axis, checked before it is kept.

Two exporters: ``dynamo`` (torch's default since 2.9, built on torch.export) and
``legacy`` (TorchScript-based). The file is self-contained by default; with
``external_data`` (chosen automatically past protobuf's 2 GB limit) the weights go to
``model.onnx.data`` beside it, whose location inside the model is a plain file name. Either way
the weights go from the model to disk without a serialised copy in memory (``onnx_wire``). Every
file must pass ``onnx.checker.check_model(full_check=True)`` (strict shape inference
included) before it is kept. (Whether the installed onnxruntime loads the chosen opset is
the runner's question: ``runners.onnxruntime.check_opset``, asked before anything is exported.)
The rest of this module reads ONNX files as data: external data only from hash-checked
files of the folder (``check_external``, ``load_proto``), and the module scopes the dynamo
exporter records per node (what localisation maps to eager modules).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ExportFailedError, ManifestError, disk_error, first_line
from . import ExportSpec
from .capture import quiet_export
from .explain import bound_note, explain_torch_export, strip_ansi, suggested_bounds, user_line
from .onnx_wire import PROTOBUF_LIMIT, tensors_of

DATA_SUFFIX = ".data"  # external data goes to the ONNX file's name + DATA_SUFFIX
_AUTO_EXTERNAL = int(PROTOBUF_LIMIT * 0.9)  # leave room for the graph itself


def export(model: nn.Module, args: tuple[torch.Tensor, ...], path: Path, spec: ExportSpec) -> dict[str, Any]:
    """Export ``model`` to ``path``; returns details for the manifest. Raises ExportFailedError.

    torch.onnx writes the model with external data into a private work folder beside ``path``
    (so no serialised copy of the weights is held in memory); the small graph is checked there,
    then ``onnx_wire.write`` streams it into the artifact (self-contained, or a graph and one
    data file) and hashes what it writes. A layout it does not take falls back to onnx's own
    load and save.
    """
    onnx_exporter, external_data = spec.onnx_exporter, spec.external_data
    warned: list[str] = []
    kwargs: dict[str, Any] = dict(
        input_names=list(spec.input_names),
        output_names=list(spec.output_names),
        opset_version=spec.opset,
        external_data=True,
    )
    if onnx_exporter == "dynamo":
        # A positional tuple keys dynamic_shapes by position, as the args are passed.
        kwargs.update(dynamo=True, dynamic_shapes=spec.dynamic_shapes(), verbose=False)
    else:
        axes = dict(zip(spec.input_names, spec.dynamic, strict=True))
        axes.update({n: a for n, a in zip(spec.output_names, spec.output_dynamic, strict=False) if a})
        kwargs.update(dynamo=False, dynamic_axes=axes, do_constant_folding=True)
    weight_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    notes: list[str] = []
    if weight_bytes > _AUTO_EXTERNAL and not external_data:
        external_data = True
        notes.append(f"weights of {weight_bytes / 1e9:.1f} GB exceed protobuf's 2 GB limit: external data used")
    with tempfile.TemporaryDirectory(prefix=".onnx-export-", dir=path.parent) as work:
        raw = Path(work) / path.name
        try:
            with quiet_export(warned), torch.no_grad():
                try:
                    torch.onnx.export(model, args, str(raw), **kwargs)
                except Exception as error:
                    bounds = suggested_bounds(error) if onnx_exporter == "dynamo" else None
                    if bounds is None:
                        raise  # a guard such as cuDNN's batch <= 65535 keeps the axis dynamic within it
                    bounded = {**kwargs, "dynamic_shapes": spec.dynamic_shapes(bounds)}
                    torch.onnx.export(model, args, str(raw), **bounded)
                    warned.append(bound_note(bounds))
        except Exception as error:
            if disk_error(error) is not None:
                raise  # the disk, not the exporter: export() says so in one line
            raise ExportFailedError(_explain(error, onnx_exporter)) from error
        finally:
            forget_rewriter_graphs()
        details: dict[str, Any] = {"exporter": onnx_exporter, **({"notes": notes} if notes else {})}
        details = describe(raw, details, warned, spec)  # the small graph: checked without its weights in memory
        data_name = path.name + DATA_SUFFIX if external_data else None
        details["written"] = _write(raw, path, data_name)
    if data_name is not None:
        details["external_data"] = data_name
    return details


def forget_rewriter_graphs() -> None:
    """Let go of the graph onnxscript's rewrite rules keep from their last match.

    The dynamo exporter optimises the graph with onnxscript's module-level rewrite rules, and
    each rule's pattern matcher keeps the last graph it looked at (``_graph``, ``_match``): that
    graph's initializers are the eager model's own parameters, so without this the whole model
    (its weights) stays alive after export, and verification could never hold the weights once
    (measured at 1 GB: 1 GB still resident with the eager model gone). Each matcher sets these
    afresh before its next match.
    """
    import gc

    try:
        from onnxscript.rewriter._matcher import SimplePatternMatcher
    except ImportError:  # another onnxscript: nothing known to forget
        return
    for found in gc.get_objects():
        # by its type: isinstance would ask every object's __class__, and some (torch.distributed's
        # deprecated reduce_op) warn when asked
        if issubclass(type(found), SimplePatternMatcher):
            for name in ("_graph", "_match", "_current_node", "_tracer"):
                found.__dict__.pop(name, None)


def _write(raw: Path, path: Path, data_name: str | None) -> dict[str, str]:
    """The artifact from torch's output with external data; the sha256 of each file written."""
    from ..errors import WireError
    from .onnx_wire import write

    try:
        return write(raw, path, data_name)
    except WireError:  # a layout the streaming writer does not take: onnx's own loader and writer
        import onnx

        for leftover in (path, path.parent / (data_name or path.name + DATA_SUFFIX)):
            leftover.unlink(missing_ok=True)
        proto = onnx.load(str(raw))
        if data_name is None:
            onnx.save_model(proto, str(path))
        else:
            onnx.save_model(
                proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=data_name
            )
        return {}


def describe(path: Path, details: dict[str, Any], warned: list[str], spec: ExportSpec) -> dict[str, Any]:
    """Check the file, and record its opset, its warnings and every dynamic axis it froze."""
    import onnx

    check(path)
    proto = onnx.load(str(path), load_external_data=False)
    graph_inputs = {i.name: i for i in proto.graph.input}
    for name, axes in zip(spec.input_names, spec.dynamic, strict=True):
        dims = graph_inputs[name].type.tensor_type.shape.dim if name in graph_inputs else []
        for axis, label in axes.items():
            if axis < len(dims) and dims[axis].HasField("dim_value"):
                warned.append(
                    f"ExportWarning: input {name!r} axis {axis} ({label}) is fixed to {dims[axis].dim_value} in the "
                    f"ONNX file: forward specialised it (int(x.shape[{axis}]) or a constant reshape?), so other "
                    f"{label} sizes will fail"
                )
    return {**details, "opset": opset_of(proto), "warnings": warned}


def opset_of(proto) -> int | None:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)


def check(path: Path) -> None:
    """``onnx.checker`` with full_check (it runs strict shape inference too)."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as error:
        if disk_error(error) is not None:
            raise
        raise ExportFailedError(
            f"the exported ONNX file fails onnx.checker: {first_line(error)}. Try another --opset or --onnx-exporter"
        ) from error


def _explain(error: BaseException, onnx_exporter: str) -> str:
    if onnx_exporter == "dynamo":
        return explain_torch_export(
            error, "ONNX export (dynamo exporter, torch.export step)",
            ", or --onnx-exporter legacy, which freezes the path the example takes (a value branch is then "
            "decided once, for every input; verification asks you to --accept-tracer-warnings when the trace warns)",
        )  # fmt: skip
    root = error
    while root.__cause__ is not None:
        root = root.__cause__
    return (
        f"ONNX export (legacy exporter) failed: {strip_ansi(first_line(root))}. "
        "Try --onnx-exporter dynamo or another --opset"
    )


def load_proto(data: bytes, files: dict[str, bytes], where: str = "model.onnx"):
    """The model from hash-checked bytes, its external data taken only from hash-checked files.

    Every tensor counts, subgraphs included (``tensors_of``). An external data location must be
    a plain file name that the manifest lists (and so was hash-checked); anything else (an
    absolute path, ``..``, a file the manifest does not bind, a symlink) is refused with
    ManifestError. The result holds no external reference, so no runtime resolves one against
    a directory (the current one included).
    """
    from onnx import TensorProto

    from . import onnx_check

    proto = onnx_check.parse(data, where)
    sizes = {name: len(blob) for name, blob in files.items()}
    check_proto(proto, where, sizes)
    for tensor in tensors_of(proto):
        place = external_place(tensor, sizes)
        if place is None:
            continue
        location, offset, length = place
        tensor.raw_data = bytes(files[location][offset : offset + length])
        del tensor.external_data[:]
        tensor.data_location = TensorProto.DEFAULT
    return proto


def external_place(tensor, sizes: Mapping[str, int]) -> tuple[str, int, int] | None:
    """Where a tensor's external data lies (location, offset, length), None when it has none.

    ManifestError unless the location is a plain name among ``sizes`` (checked files, by their
    size) and the range lies inside that file; a tensor listing external data it does not use
    is refused too.
    """
    from onnx import TensorProto

    if tensor.data_location != TensorProto.EXTERNAL:
        if len(tensor.external_data):
            raise ManifestError(f"the ONNX tensor {tensor.name!r} lists external data it does not use: refusing it")
        return None
    info = {entry.key: entry.value for entry in tensor.external_data}
    location = info.get("location", "")
    if location not in sizes or "/" in location or "\\" in location or location in ("", ".", ".."):
        raise ManifestError(
            f"the ONNX file's external data for {tensor.name!r} points to {location!r}, which is not a file "
            "of this artifact folder bound by its manifest: refusing it"
        )
    size = sizes[location]
    try:
        offset, length = int(info.get("offset", 0)), int(info.get("length", size))
    except ValueError:
        offset = length = -1
    if offset < 0 or length < 0 or offset + length > size:
        raise ManifestError(f"the ONNX file's external data for {tensor.name!r} lies outside {location}")
    return location, offset, length


def check_external(path: Path, sidecars: Mapping[str, Path]) -> None:
    """Refuse a model file that is malformed or hostile (``onnx_check``: ArtifactFileError) or whose tensors
    name external data anywhere but ``sidecars`` (ManifestError); both exit 2.

    For a private copy loaded by path: ONNX Runtime resolves each location against the copy's
    folder, which holds only the checked files. The graph is parsed without its external data
    and let go before any session exists.
    """
    from . import onnx_check

    proto = onnx_check.parse(Path(path).read_bytes(), Path(path).name)
    sizes = {name: file.stat().st_size for name, file in sidecars.items()}
    check_proto(proto, Path(path).name, sizes)


def check_proto(proto, where: str, sizes: Mapping[str, int]) -> None:
    """Every tensor's external data inside a checked file (``external_place``), then the model's structure
    (``onnx_check.check``): nesting, cycles, negative dimensions, tensors larger than what they hold."""
    from . import onnx_check

    tensors = []
    for tensor in tensors_of(proto):
        place = external_place(tensor, sizes)
        tensors.append((tensor, None if place is None else place[2]))
    onnx_check.check(proto, where, tensors)


def inline_bytes(data: bytes, files: dict[str, bytes], where: str = "model.onnx") -> bytes:
    """Model bytes with external data inlined (the form ONNX Runtime can load from memory); a model
    with no external data comes back byte for byte (its layout, as onnx_wire wrote it, kept)."""
    from onnx import TensorProto

    from . import onnx_check

    proto = onnx_check.parse(data, where)
    check_proto(proto, where, {name: len(blob) for name, blob in files.items()})
    if not any(t.data_location == TensorProto.EXTERNAL or len(t.external_data) for t in tensors_of(proto)):
        return bytes(data)
    del proto
    return load_proto(data, files, where).SerializeToString()


def module_scopes(proto) -> dict[str, tuple[str, str]]:
    """Per eager module path, the tensor the last node in its scope writes and the user's line that leads
    there, from the dynamo exporter's node metadata (``pkg.torch.onnx.name_scopes``, ``stack_trace``).
    Empty when the nodes carry no module names (the legacy exporter, or a rewritten file)."""
    found: dict[str, tuple[str, str]] = {}
    for node in proto.graph.node:
        meta = {p.key: p.value for p in node.metadata_props}
        scopes = _scope_list(meta.get("pkg.torch.onnx.name_scopes"))
        if not scopes or not node.output:
            continue
        for path in scopes[:-1]:  # the last entry names the operation itself
            found[path] = (node.output[0], user_line(meta.get("pkg.torch.onnx.stack_trace")))
    return found


def _scope_list(text: str | None) -> list[str]:
    """``"['', 'linear_relu_stack', ...]"`` as a list of strings; [] for anything else (the file is data)."""
    import ast

    if not text or len(text) > 100_000:
        return []
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return []
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else []
