"""Small modules and their artifacts, made in the test process, for the runner tests.

Nothing here exports a registered model: the artifacts are made from small modules
(TorchScript by tracing, pt2 by torch.export, ONNX as a hand-written graph holding the
module's own weights), once for the package (``conftest``), in about a second. A feed is a
dict of arrays by input name (``runners.Feed``), checked against the runner's ``InputSpec``s.
"""

from __future__ import annotations

import atexit
import io
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from exporter.artifacts.integrity import CheckedFile
from exporter.formats import FORMATS
from exporter.interface import InputSpec, Interface, OutputSpec
from exporter.runners import Feed, Runner, eager, runner_for

SPECS = (InputSpec("input", (2, 3, 4)),)  # float32, the batch (axis 0) dynamic
OUTPUTS = ("logits",)
CPU = torch.device("cpu")
RUNTIMES = ("eager", *FORMATS)  # eager, then every format of the table
SEQ_SPECS = (InputSpec("x", (2, 5, 4), dynamic=((0, "batch"), (1, "seq"))), InputSpec("y", (2, 4)))
FIXED_SPECS = (InputSpec("x", (2, 5, 4)), InputSpec("y", (2, 4)))  # only the batch dynamic


class TwoLayer(nn.Module):
    """Two Linear layers and a buffer, so ``tensors()`` has parameters and a buffer to return."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.full((1,), 0.5))
        self.fc1 = nn.Linear(12, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):  # (B, 3, 4) -> (B, 3)
        return self.fc2(torch.relu(self.fc1(x.flatten(1) * self.scale)))


class TwoOutputs(nn.Module):
    def forward(self, x):  # (B, 3, 4) -> (B, 4), (B,)
        return x.sum(1), x.flatten(1).amax(1)


class DictOutputs(nn.Module):
    def forward(self, x):  # (B, 3, 4) -> {"sums": (B, 4), "extra": ((B,), [(B, 4), (B, 3)])}
        return {"sums": x.sum(1), "extra": (x.flatten(1).amax(1), [x[:, 0], x.mean(2)])}


class NestedOutputs(nn.Module):
    def forward(self, x):  # (B, 3, 4) -> ((B, 4), ((B,), [(B, 4), (B, 3)]))
        return x.sum(1), (x.flatten(1).amax(1), [x[:, 0], x.mean(2)])


def four_outputs(x: np.ndarray) -> list[np.ndarray]:
    """What DictOutputs and NestedOutputs return, flattened in order, computed in numpy."""
    return [x.sum(1), x.reshape(len(x), -1).max(1), x[:, 0], x.mean(2)]


class Weighted(nn.Module):
    """Two named inputs: a sequence ``x`` (B, S, 4) weighted by ``y`` (B, 4), summed over the sequence."""

    def forward(self, x, y):  # -> (B, 4)
        return (x * y.unsqueeze(1)).sum(1)


class InPlace(nn.Module):
    """Changes its input in place, then uses it."""

    def forward(self, x):  # (B, 3, 4) -> (B, 3, 4)
        x.add_(1)
        return x * 2


class Seen(nn.Module):
    """Records the dtype of each input forward is given; returns it doubled."""

    def __init__(self) -> None:
        super().__init__()
        self.dtypes: list[torch.dtype] = []

    def forward(self, x):
        self.dtypes.append(x.dtype)
        return x * 2


def torchscript_bytes(model: nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(model, torch.rand(2, 3, 4)), buffer)
    return buffer.getvalue()


def traced_bytes(module: nn.Module) -> bytes:
    """TorchScript of a module that returns a list or a dict (``strict=False``)."""
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(module, torch.rand(2, 3, 4), strict=False), buffer)
    return buffer.getvalue()


def pt2_bytes(model: nn.Module) -> bytes:
    program = torch.export.export(model, (torch.rand(2, 3, 4),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def onnx_proto(model: nn.Module, opset: int = 17, scopes: dict[str, str] | None = None) -> onnx.ModelProto:
    """The module as a hand-written ONNX graph whose initializers carry its state_dict names.

    ``scopes``: for some nodes (by output tensor: ``hidden``, ``logits``, ...), the module path
    the dynamo exporter would record in ``pkg.torch.onnx.name_scopes``, and a stack trace naming
    ``net.py:7`` as the user's line.
    """
    weights = [numpy_helper.from_array(t.detach().numpy(), name) for name, t in model.state_dict().items()]
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], axis=1),
        helper.make_node("Mul", ["flat", "scale"], ["scaled"]),
        helper.make_node("Gemm", ["scaled", "fc1.weight", "fc1.bias"], ["hidden"], transB=1),
        helper.make_node("Relu", ["hidden"], ["active"]),
        helper.make_node("Gemm", ["active", "fc2.weight", "fc2.bias"], ["logits"], transB=1),
    ]
    for node in nodes:
        if scopes and node.output[0] in scopes:
            path = scopes[node.output[0]]
            node.metadata_props.add(key="pkg.torch.onnx.name_scopes", value=str(["", path, node.output[0]]))
            trace = f'File "/home/me/net.py", line 7, in forward\n    return self.{path}(x)  # {path}'
            node.metadata_props.add(key="pkg.torch.onnx.stack_trace", value=trace)
    graph = helper.make_graph(
        nodes, "two_layer",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        initializer=weights,
    )  # fmt: skip
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = 8  # an IR version every supported onnxruntime reads
    if opset <= onnx.defs.onnx_opset_version():  # the checker knows no newer opset
        onnx.checker.check_model(proto, full_check=True)
    return proto


def onnx_bytes(model: nn.Module, opset: int = 17, scopes: dict[str, str] | None = None) -> bytes:
    return onnx_proto(model, opset, scopes).SerializeToString()


def onnx_weighted_bytes() -> bytes:
    """Weighted as an ONNX graph whose ``x`` has a dynamic ``seq`` axis."""
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    nodes = [
        helper.make_node("Unsqueeze", ["y", "axes"], ["y1"]),
        helper.make_node("Mul", ["x", "y1"], ["product"]),
        helper.make_node("ReduceSum", ["product", "axes"], ["weighted"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "weighted",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 4]),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("weighted", TensorProto.FLOAT, ["batch", 4])],
        initializer=[axes],
    )  # fmt: skip
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


_SCRATCH = Path(tempfile.mkdtemp(prefix="exporter-test-runners-"))
atexit.register(shutil.rmtree, _SCRATCH, True)


def checked(data: bytes) -> CheckedFile:
    """``data`` as a checked file of its own (runners load artifacts by path, never from bytes)."""
    path = Path(tempfile.mkdtemp(dir=_SCRATCH)) / "artifact"
    path.write_bytes(data)
    return CheckedFile(path)


def interface_of(specs: tuple[InputSpec, ...], outputs: tuple[str, ...]) -> Interface:
    return Interface(tuple(specs), tuple(OutputSpec(name) for name in outputs))


def artifact_bytes(model: nn.Module) -> dict[str, bytes]:
    """The bytes of each format. onnx-int8 runs through the same runner as onnx: fp32 bytes do for it."""
    fp32 = onnx_bytes(model)
    return {"torchscript": torchscript_bytes(model), "onnx": fp32, "pt2": pt2_bytes(model), "onnx-int8": fp32}


def make_runner(name: str, model: nn.Module, artifacts: dict[str, bytes], threads: int | None = None) -> Runner:
    if name == "eager":
        return eager(model, CPU, interface_of(SPECS, OUTPUTS))
    return runner_for(name, checked(artifacts[name]), {}, CPU, interface_of(SPECS, OUTPUTS), threads=threads)


def weighted_runner(name: str, onnx_data: bytes, specs: tuple[InputSpec, ...] = SEQ_SPECS) -> Runner:
    if name == "eager":
        return eager(Weighted(), CPU, interface_of(specs, ("weighted",)))
    return runner_for(name, checked(onnx_data), {}, CPU, interface_of(specs, ("weighted",)))


def runtime_of(name: str) -> str:
    return "eager" if name == "eager" else FORMATS[name].runtime


def random_array(shape: tuple[int, ...], seed: int = 0, dtype: str = "float32") -> np.ndarray:
    return np.random.default_rng(seed).random(shape).astype(dtype)


def batch_feed(batch: int, seed: int = 0, dtype: str = "float32") -> Feed:
    return {"input": random_array((batch, 3, 4), seed, dtype)}
