"""The ONNX Runtime runner, its session settings and the opset probe.

A session loads a checked file by path: a private copy made while hashing (``runners.open``), or
export's own staging file; never the artifact folder itself, and never bytes (ONNX Runtime would
resolve a tensor's external data against the current folder). Two settings:

- default (verify, predict): ONNX Runtime's defaults, fatal-only logging;
- tuned (bench): see ``tuned_settings``, with IO binding in ``prepare``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from ..artifacts.integrity import CheckedFile
from ..errors import CannotOpenUp, UsageError
from ..formats import onnx as onnx_file
from ..interface import Interface
from ..notes import Note
from .base import Feed, Runner


def tuned_settings(threads: int) -> dict[str, Any]:
    """The session settings ``bench`` uses, as recorded in its report (and why, in comments).

    - graph optimisation ORT_ENABLE_ALL: fuses Gemm+Relu (FusedGemm) and lays out convolutions
      for the CPU's vector width (NCHWc); the file on disk stays portable, only the session changes;
    - intra-op threads = ``threads``: the same cores torch is given, so the comparison is fair;
    - inter-op threads 1 and sequential execution: these models are one chain of operators, so
      there is nothing to run side by side, and a second pool would only compete for the cores;
    - spinning workers (ORT's default, set explicitly): a worker waits for the next operator by
      spinning instead of sleeping, which saves the wake-up at small batches; it costs CPU time
      while a run is in progress, which a server sharing its cores may not want;
    - IO binding: the input is bound in place and outputs go into arrays allocated once per batch
      size, so a call does not allocate or copy its outputs (the feed is rebound on every call).
    """
    return {
        "providers": ["CPUExecutionProvider"],
        "graph_optimization_level": "ORT_ENABLE_ALL",
        "intra_op_num_threads": threads,
        "inter_op_num_threads": 1,
        "execution_mode": "ORT_SEQUENTIAL",
        "session.intra_op.allow_spinning": "1",
        "io_binding": True,
    }


@dataclass
class OnnxRuntimeRunner(Runner):
    path: Path = Path()  # a checked private file (or export's own staging file): what the session loads
    device: Any = None  # torch.device the rest of the run uses; picks the execution provider
    threads: int | None = None  # None: ONNX Runtime's defaults; a number: ``tuned_settings(threads)``
    external: dict[str, Path] = field(default_factory=dict)  # the file's external data, by location: checked files
    lean: bool = False  # verification of a large model: weight prepacking off, so no second copy of them
    intermediates: bool = False  # also expose each eager module's output (localisation): a session of its own
    session: Any = None
    scopes: dict[str, tuple[str, str]] = field(default_factory=dict)  # module path -> (tensor, user's line)

    def _activate(self) -> None:
        from ..formats.onnx_view import external_view

        view = external_view(self.path)  # ONNX Runtime reads the weights in place (onnx_view)
        made = [view] if view is not None else []
        try:
            graph = view or self.path
            if self.intermediates:
                graph = self._with_module_outputs(graph)
                made.append(graph)
            self.session = session(str(graph), self.device, self.threads, lean=self.lean)
        finally:
            for path in made:
                path.unlink(missing_ok=True)  # read once the session exists
        if self.lean:
            self.notes.append(
                Note.note(
                    "weight prepacking off (session.disable_prepacking): a large model's weights are used where "
                    "they were read, not copied again; bench times ONNX Runtime with it on"
                )
            )
        used = self.session.get_providers()
        self.notes.append(Note.info(f"execution providers: {', '.join(used)}"))
        if getattr(self.device, "type", "cpu") == "cuda" and "CUDAExecutionProvider" not in used:
            missing = "onnxruntime has no CUDA provider here (install onnxruntime-gpu): it ran on the CPU"
            self.notes.append(Note.note(missing))

    def _with_module_outputs(self, graph: Path) -> Path:
        """A copy of the graph (weights still external, in the checked file) whose outputs include the last
        tensor each eager module's scope writes, from the dynamo exporter's ``name_scopes`` metadata."""
        import tempfile

        import onnx

        proto = onnx.load(str(graph), load_external_data=False)
        self.scopes = onnx_file.module_scopes(proto)
        if not self.scopes:
            raise CannotOpenUp(
                "its nodes carry no module names (pkg.torch.onnx.name_scopes): exported with the legacy exporter, "
                "or rewritten after export"
            )
        present = {o.name for o in proto.graph.output}
        for name in dict.fromkeys(tensor for tensor, _ in self.scopes.values()):
            if name not in present:
                proto.graph.output.append(onnx.ValueInfoProto(name=name))
        handle, name = tempfile.mkstemp(prefix=".scopes-", suffix=".onnx", dir=self.path.parent)
        with open(handle, "wb") as out:
            out.write(proto.SerializeToString())
        return Path(name)

    def _deactivate(self) -> None:
        self.session = None

    def _infer(self, feed: Feed) -> dict[str, np.ndarray]:
        values = stoppable_run(self.session, list(self.output_names), self._ort_feed(feed))
        return self._named(values)

    def _module_outputs(self, feed: Feed) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        if not self.intermediates:
            raise RuntimeError("module outputs need a runner opened with intermediates=True")
        names = [o.name for o in self.session.get_outputs()]
        values = dict(zip(names, stoppable_run(self.session, names, self._ort_feed(feed)), strict=True))
        found = {path: values[tensor] for path, (tensor, _) in self.scopes.items()}
        return found, {path: line for path, (_, line) in self.scopes.items() if line}

    def _ort_feed(self, feed: Feed) -> Feed:
        """Each input as ONNX Runtime takes it: bfloat16 through ml_dtypes (it is carried as float32)."""
        converted = dict(feed)
        for spec in self.inputs:
            if spec.dtype == "bfloat16":
                import ml_dtypes

                converted[spec.name] = feed[spec.name].astype(ml_dtypes.bfloat16)
        return converted

    def _prepare(self, feed: Feed) -> Callable[[], dict[str, np.ndarray]]:
        # One plain run learns the output shapes at this batch size; later calls write into
        # arrays allocated here, once, through IO binding. ``call`` returns (and so keeps alive)
        # those arrays: ORT holds only their addresses, and writing into a freed one would crash.
        first = self._infer(feed)
        outputs = {name: np.empty_like(value) for name, value in first.items()}
        binding = self.session.io_binding()
        for name, array in outputs.items():
            binding.bind_output(name, "cpu", 0, array.dtype, list(array.shape), array.ctypes.data)

        bound = self._ort_feed(feed)

        def call() -> dict[str, np.ndarray]:
            for name, value in bound.items():
                binding.bind_cpu_input(name, value)
            self.session.run_with_iobinding(binding)
            return outputs

        return call

    def _tensors(self) -> Mapping[str, np.ndarray]:
        """The initializers, read from disk as they are compared (``onnx_wire.FileTensor``)."""
        from ..formats.onnx_wire import initializers

        return initializers(self.path, self.external)

    def declared_shapes(self) -> dict[str, list[int | None]]:
        return {o.name: [d if isinstance(d, int) else None for d in o.shape] for o in self.session.get_outputs()}

    def settings(self) -> dict[str, Any]:
        if self.threads is None:
            return {"providers": self.session.get_providers() if self.session else [], "defaults": True}
        return tuned_settings(self.threads)


def stoppable_run(session: ort.InferenceSession, names: list[str], feed: Feed) -> list:
    """``session.run``, stoppable: Ctrl-C (or ``--timeout``'s alarm) ends it at once.

    ONNX Runtime runs in C++ and never returns to Python until it is done, so a signal would wait
    for it (an ONNX ``Loop`` of 2**62 iterations: forever). The run goes on a worker thread while this
    one waits, interruptibly; on KeyboardInterrupt or any other exception raised here it sets
    ``RunOptions.terminate``, which ONNX Runtime checks between operators (a Loop between iterations),
    waits for the worker to end, and re-raises.
    """
    import threading

    options = ort.RunOptions()
    done: dict[str, Any] = {}

    def work() -> None:
        try:
            done["values"] = session.run(names, feed, options)
        except BaseException as error:  # handed to the waiting thread
            done["error"] = error

    worker = threading.Thread(target=work, name="onnxruntime-run", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.05)
    except BaseException:
        options.terminate = True
        worker.join(30.0)  # ONNX Runtime checks between operators: at once, unless the machine is very busy
        raise
    if "error" in done:
        raise done["error"]
    return done["values"]


def runner(
    runtime: str,
    file: CheckedFile,
    files: dict[str, CheckedFile],
    device: torch.device,
    interface: Interface,
    threads: int | None = None,
    lean: bool = False,
    intermediates: bool = False,
) -> OnnxRuntimeRunner:
    """A runner over a checked file; ``files``: the folder's checked files (its external data among them).

    Raises ManifestError (a usage error) at once when any tensor names external data anywhere but
    a checked file of the folder.
    """
    sidecars = {name: f.path for name, f in files.items() if f.path != file.path}
    if not file.own:  # a file of this process's own making was laid out by it: nothing to refuse
        onnx_file.check_external(file.path, sidecars)
    return OnnxRuntimeRunner(
        runtime, interface, path=file.path, device=device, threads=threads, external=sidecars, lean=lean,
        intermediates=intermediates,
    )  # fmt: skip


def session(
    path: str, device: torch.device | None, threads: int | None = None, lean: bool = False
) -> ort.InferenceSession:
    """An ONNX Runtime session; ``threads`` set: the tuned settings, on the CPU. ``lean``: weight
    prepacking off, which would otherwise hold a packed copy of every weight beside the one read."""
    providers: list[Any] = ["CPUExecutionProvider"]
    on_cuda = threads is None and device is not None and device.type == "cuda"
    if on_cuda and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
    options = ort.SessionOptions()
    options.log_severity_level = 4  # fatal only: run errors come back as exceptions, reported once
    ort.set_default_logger_severity(4)
    if lean:
        options.add_session_config_entry("session.disable_prepacking", "1")
    if threads is not None:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    try:
        return ort.InferenceSession(path, sess_options=options, providers=providers)
    except Exception as error:
        import onnx

        if "NOT_IMPLEMENTED" in str(error):  # no kernel for an op at this dtype (bfloat16 on the CPU, say)
            raise RuntimeError(
                f"onnxruntime {ort.__version__} on {', '.join(p if isinstance(p, str) else p[0] for p in providers)} "
                f"has no kernel for this model ({_missing_kernel(error)}): it cannot run it here; export "
                "float16 or float32 for ONNX Runtime, or use a provider that has the kernel"
            ) from error

        proto = onnx.load(path, load_external_data=False)
        opset = onnx_file.opset_of(proto)
        if opset is not None and opset > runtime_max_opset():
            raise RuntimeError(
                f"onnxruntime {ort.__version__} cannot load opset {opset} (it loads up to opset "
                f"{runtime_max_opset()}): export with --opset {runtime_max_opset()} or upgrade onnxruntime"
            ) from error
        raise


@functools.lru_cache(maxsize=1)
def runtime_max_opset() -> int:
    """The newest ai.onnx opset the installed onnxruntime loads, probed with a one-node model."""
    import onnx
    from onnx import TensorProto, helper

    def loads(version: int) -> bool:
        graph = helper.make_graph(
            [helper.make_node("Identity", ["x"], ["y"])], "probe",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        )  # fmt: skip
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", version)])
        model.ir_version = 8  # an IR version every supported runtime reads
        try:
            ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
            return True
        except Exception:
            return False

    version = onnx.defs.onnx_opset_version() + 4
    while version > 7 and not loads(version):
        version -= 1
    return version


def check_opset(opset: int) -> None:
    """Refuse an opset the installed onnxruntime cannot load, before exporting anything."""
    newest = runtime_max_opset()
    if opset > newest:
        raise UsageError(
            f"--opset {opset} is newer than onnxruntime {ort.__version__} can load (up to opset {newest}): "
            f"choose {newest} or lower, or upgrade onnxruntime"
        )


def _missing_kernel(error: Exception) -> str:
    """``Gemm(13) node with name 'node_linear'`` out of ORT's NOT_IMPLEMENTED message, else its first line."""
    import re

    match = re.search(r"implementation for (\S+\(\d+\)) node", str(error))
    return f"no implementation for {match[1]}" if match else str(error).splitlines()[0][:200]
