"""Where an artifact first departs from eager: the first module whose output differs.

Eager runs one batch with a forward hook on every module, recording each module's output in
the order modules finish (a child before its parent). The artifact runs the same batch with
its intermediate values exposed, mapped to module paths by what the exporter recorded:

- ONNX (dynamo exporter): each node's ``pkg.torch.onnx.name_scopes`` metadata names the
  modules it belongs to; a module's output is the first output of the last node in its scope.
  Those tensors become extra graph outputs of an in-memory copy of the hash-checked bytes,
  run in ONNX Runtime; the artifact folder is never written.
- pt2: each graph node's ``nn_module_stack``; ``program.module()`` runs under a
  ``torch.fx.Interpreter`` that keeps the last node of each module.

Modules are compared in eager's finishing order with the runtime's tolerance; the first that
differs is reported with how much and the line of the user's code that leads to it (from the
artifact's recorded stack trace). Every module that finished before it agrees, so its inputs,
where they come from modules, agree too; a divergence in functional code between modules is
reported at the next module that consumes it (or the model itself). TorchScript keeps no map
from its operations to modules, int8 changes every layer by design, and the legacy ONNX
exporter writes no module names: those say they cannot be opened up instead of guessing.
"""

from __future__ import annotations

import ast
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import formats, runners
from ..artifacts.integrity import read_checked
from ..artifacts.manifest import Manifest
from ..config import VerifyConfig
from ..errors import first_line
from .compare import OutputComparison
from .inputs import InputSet
from .results import VerificationReport

TORCHSCRIPT_WHY = "TorchScript keeps no map from its operations to the eager modules"
INT8_WHY = "int8 changes every layer by design, so the first layer that differs would say nothing"


def localize_runtimes(
    report: VerificationReport,
    folder: Path,
    manifest: Manifest,
    checked: set[str],
    model: nn.Module,
    device: torch.device,
    feeds: InputSet,
    config: VerifyConfig,
) -> None:
    """Set ``first_divergence`` on each runtime that ran and failed (every one that ran when
    ``config.localize`` is True), on the first batch of its first failing batch size."""
    entries = {a.path: a for a in manifest.artifacts}
    interface = manifest.interface
    for result in report.runtimes:
        if result.error or not result.batches or (config.localize is None and result.passed):
            continue
        failing = next((b for b in result.batches if not b.passed), result.batches[0])
        start = time.perf_counter()
        try:
            case = next(c for c in feeds.groups if c.batch == failing.batch_size and dict(c.sizes) == failing.sizes)
            feed = next(iter(feeds.batches(case)))
            found = _localize(
                entries[result.artifact], folder, manifest, checked, model, device, interface, feed, config
            )
        except Exception as error:  # an artifact that cannot be run this way: say so, never guess
            found = {"module": None, "note": f"cannot be opened up: {first_line(error)}"}
        found["batch"] = failing.label
        found["seconds"] = round(time.perf_counter() - start, 3)
        result.first_divergence = found


def _localize(entry, folder, manifest, checked, model, device, interface, feed, config) -> dict[str, Any]:
    fmt = formats.FORMATS[entry.format]
    if fmt.quantized:
        return {"module": None, "note": f"cannot be opened up: {INT8_WHY}"}
    if fmt.engine == "torch.jit":
        return {"module": None, "note": f"cannot be opened up: {TORCHSCRIPT_WHY}"}
    sidecars = [a for a in manifest.artifacts if a.path in manifest.side_files(entry)]
    if any(e.path not in checked for e in (entry, *sidecars)):
        return {"module": None, "note": "cannot be opened up: a file it needs failed the hash check"}
    files = {e.path: read_checked(folder, e) for e in (entry, *sidecars)}
    data = files[entry.path]
    if fmt.engine == "onnxruntime":
        got, lines = _onnx_values(data, files, device, feed)
    else:
        got, lines = _pt2_values(data, device, interface, feed)
    expected = _eager_values(model, device, interface, feed)
    agreeing = 0
    for path, kind, want in expected:
        have = got.get(path)
        if have is None or have.shape != want.shape:
            continue  # not mapped, or a module whose last node is not its output: not compared
        cmp = OutputComparison.from_arrays(path, want, have, config.tolerance(str(want.dtype)))
        if cmp.passed:
            agreeing += 1
            continue
        return {
            "module": path,
            "type": kind,
            "max_abs": cmp.max_abs_diff,
            "max_rel": cmp.max_rel_diff,
            "line": lines.get(path),
            "agreeing": agreeing,
            "reason": cmp.reasons[0] if cmp.reasons else None,
        }
    return {
        "module": None,
        "note": f"no divergence found: the {agreeing} module output(s) compared agree with eager "
        "(a difference arising outside modules, or at other inputs, is not located)",
        "agreeing": agreeing,
    }


def _eager_values(model: nn.Module, device, interface, feed) -> list[tuple[str, str, np.ndarray]]:
    """(path, class name, output) of every module call, in the order modules finish; a module
    called twice keeps its place of the first call and the output of the last."""
    order: dict[str, tuple[str, np.ndarray]] = {}

    def hook(path: str):
        def record(module: nn.Module, _args: Any, output: Any) -> None:
            value = output[0] if isinstance(output, (tuple, list)) and output else output
            if torch.is_tensor(value):
                order[path] = (type(module).__name__, runners.base.to_numpy(value).copy())

        return record

    handles = [m.register_forward_hook(hook(path)) for path, m in model.named_modules()]
    try:
        with runners.eager(model, device, interface.inputs, interface.output_names) as eager:
            eager.infer(feed)
    finally:
        for handle in handles:
            handle.remove()
    return [(path, kind, value) for path, (kind, value) in order.items()]


def _onnx_values(data: bytes, files, device, feed) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    import onnx

    from ..formats import onnx as onnx_file
    from ..runners import onnxruntime as ort_runner

    model, workdir = onnx_file.loadable(data, files)
    if workdir is not None:
        workdir.cleanup()
        raise RuntimeError("past 2 GB an in-memory copy with extra outputs cannot be made")
    proto = onnx.load_from_string(model)
    last: dict[str, str] = {}  # module path -> the tensor its scope's last node writes
    lines: dict[str, str] = {}
    for node in proto.graph.node:
        meta = {p.key: p.value for p in node.metadata_props}
        scopes = meta.get("pkg.torch.onnx.name_scopes")
        if not scopes or not node.output:
            continue
        for path in ast.literal_eval(scopes)[:-1]:  # the last entry names the operation itself
            last[path] = node.output[0]
            lines[path] = _user_line(meta.get("pkg.torch.onnx.stack_trace"))
    if not last:
        raise RuntimeError(
            "its nodes carry no module names (pkg.torch.onnx.name_scopes): exported with the legacy exporter, "
            "or rewritten after export"
        )
    present = {o.name for o in proto.graph.output}
    for name in dict.fromkeys(last.values()):
        if name not in present:
            proto.graph.output.append(onnx.ValueInfoProto(name=name))
    session = ort_runner.session(proto.SerializeToString(), device)
    names = [o.name for o in session.get_outputs()]
    values = dict(zip(names, session.run(names, feed), strict=True))
    return {path: values[name] for path, name in last.items()}, {p: line for p, line in lines.items() if line}


def _pt2_values(data: bytes, device, interface, feed) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    from ..runners.torch import load_pt2

    program = load_pt2(data)
    graph_module = program.module().to(device)
    last: dict[str, str] = {}  # module path -> the name of its last node
    lines: dict[str, str] = {}
    for node in graph_module.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        if node.op != "call_function" or not stack:
            continue
        for path, _kind in stack.values():
            last[path] = node.name
            lines[path] = _user_line(node.meta.get("stack_trace"))
    if not last:
        raise RuntimeError("its graph nodes carry no nn_module_stack")
    wanted = set(last.values())
    recorded: dict[str, np.ndarray] = {}

    class _Recorder(torch.fx.Interpreter):
        def run_node(self, node: torch.fx.Node) -> Any:
            value = super().run_node(node)
            if node.name in wanted and torch.is_tensor(value):
                recorded[node.name] = runners.base.to_numpy(value).copy()
            return value

    args = [torch.from_numpy(np.array(feed[s.name], copy=True)).to(device) for s in interface.inputs]
    with torch.no_grad():
        _Recorder(graph_module).run(*args)
    found = {path: recorded[name] for path, name in last.items() if name in recorded}
    return found, {p: line for p, line in lines.items() if line}


_FRAME = re.compile(r'File "([^"]+)", line (\d+), in \S+\n\s*(.*)')


def _user_line(trace: str | None) -> str:
    """The innermost frame of the recorded stack that is not inside torch: the user's line."""
    frames = _FRAME.findall(trace or "")
    mine = [f for f in frames if "/torch/" not in f[0].replace("\\", "/")]
    if not mine:
        return ""
    file, line, code = mine[-1]
    code = code.split("  #")[0].strip()  # the code, without its comment
    return f"{Path(file).name}:{line}: {code}"
