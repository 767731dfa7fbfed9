"""What an ONNX file must be before a runtime, or this tool, reads it further.

An ONNX file is data from wherever the folder came from. A runtime handed a malformed one may
crash, hang, allocate what a header claims, or answer with a page of C++; this check turns each
such file into one line (``ArtifactFileError``, exit 2) before any runtime sees it:

- it parses as a ModelProto (a truncated file does not; protobuf refuses nesting past 100 levels);
- graphs nest at most ``MAX_DEPTH`` deep (If, Loop, Scan bodies; functions' and training graphs);
- each graph's nodes form no cycle (an output feeding, through other nodes, its own node);
- no dimension is negative (a value's declared shape, a tensor's dims);
- no tensor declares more bytes than it holds (``dims`` of 4 TiB over 40 bytes of data).

Every tensor and graph counts, wherever it sits: graphs, node attributes, model-local functions'
nodes and attribute defaults (``FunctionProto.attribute_proto``), and ``training_info``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..errors import ArtifactFileError

MAX_DEPTH = 16  # exporters nest a few levels (an If in a Loop); protobuf stops at 100 messages, ~30 graphs

# bytes per element, as (numerator, denominator): int4 packs two elements per byte
_ELEMENT_BYTES = {
    1: (4, 1), 2: (1, 1), 3: (1, 1), 4: (2, 1), 5: (2, 1), 6: (4, 1), 7: (8, 1), 9: (1, 1), 10: (2, 1),
    11: (8, 1), 12: (4, 1), 13: (8, 1), 14: (8, 1), 15: (16, 1), 16: (2, 1), 17: (1, 1), 18: (1, 1),
    19: (1, 1), 20: (1, 1), 21: (1, 2), 22: (1, 2), 23: (1, 2),
}  # fmt: skip
_TYPED_FIELDS = ("float_data", "int32_data", "int64_data", "double_data", "uint64_data")
_MOST_BYTES_PER_TYPED_VALUE = 8  # an int64 or a double; complex128 takes two doubles per element


def parse(data: bytes, where: str):
    """The ModelProto in ``data``; ArtifactFileError (one line) when it is not one onnx can read."""
    import onnx

    try:
        return onnx.load_from_string(bytes(data))
    except Exception as error:  # DecodeError, RecursionError, ...: the bytes are not a model
        raise ArtifactFileError(
            f"{where}: not an ONNX model onnx can read ({type(error).__name__}: truncated, corrupt or nested "
            "too deep): refusing it; re-export the model"
        ) from None


def check(proto: Any, where: str, tensors: list[tuple[Any, int | None]] | None = None) -> None:
    """Refuse (ArtifactFileError) a model that is nested too deep, cyclic, negatively sized or that declares
    tensors larger than the bytes it holds. ``tensors``: every tensor of the model with the length of its
    external data, once its location was checked (None: it holds what its fields hold); default: every
    tensor (``tensors_in``), none external."""
    for graph, depth in graphs_of(proto):
        if depth > MAX_DEPTH:
            raise ArtifactFileError(f"{where}: its graphs nest {depth} deep (at most {MAX_DEPTH}): refusing it")
        _check_acyclic(graph, where)
        for value in [*graph.input, *graph.output, *graph.value_info]:
            _check_value(value, where)
    for tensor, external_length in tensors if tensors is not None else [(t, None) for t in tensors_in(proto)]:
        _check_tensor(tensor, where, external_length)


def graphs_of(proto: Any) -> Iterator[tuple[Any, int]]:
    """Every graph of the model with its nesting depth (the main graph: 1), without recursion."""
    stack: list[tuple[Any, int]] = [(proto.graph, 1)]
    for info in proto.training_info:
        stack += [(info.initialization, 1), (info.algorithm, 1)]
    attributes = [(a, 1) for function in proto.functions for a in _function_attributes(function)]
    while stack or attributes:
        if stack:
            graph, depth = stack.pop()
            yield graph, depth
            attributes += [(a, depth + 1) for node in graph.node for a in node.attribute]
            continue
        attribute, depth = attributes.pop()
        if attribute.HasField("g"):
            stack.append((attribute.g, depth))
        stack += [(g, depth) for g in attribute.graphs]


def tensors_in(proto: Any) -> list:
    """Every TensorProto of the model: initializers, sparse initializers, node attributes (TENSOR, TENSORS,
    SPARSE_TENSOR(S)) of every graph and function, functions' attribute defaults, and training graphs."""
    found: list = []
    attributes = [a for function in proto.functions for a in _function_attributes(function)]
    for graph, _ in graphs_of(proto):
        found += graph.initializer
        for sparse in graph.sparse_initializer:
            found += [sparse.values, sparse.indices]
        attributes += [a for node in graph.node for a in node.attribute]
    for attribute in attributes:
        if attribute.HasField("t"):
            found.append(attribute.t)
        found += attribute.tensors
        sparse = [attribute.sparse_tensor] if attribute.HasField("sparse_tensor") else []
        for item in [*sparse, *attribute.sparse_tensors]:
            found += [item.values, item.indices]
    return found


def _function_attributes(function: Any) -> list:
    """A model-local function's node attributes and its attribute defaults (``attribute_proto``)."""
    return [*(a for node in function.node for a in node.attribute), *function.attribute_proto]


def _check_acyclic(graph: Any, where: str) -> None:
    """Kahn's algorithm over the edges between this graph's own nodes."""
    producer: dict[str, int] = {}
    for index, node in enumerate(graph.node):
        for name in node.output:
            if name:
                producer.setdefault(name, index)
    waiting = [0] * len(graph.node)
    users: list[list[int]] = [[] for _ in graph.node]
    for index, node in enumerate(graph.node):
        for source in {producer[name] for name in node.input if name in producer}:
            waiting[index] += 1
            users[source].append(index)
    ready = [i for i, count in enumerate(waiting) if count == 0]
    done = 0
    while ready:
        done += 1
        for user in users[ready.pop()]:
            waiting[user] -= 1
            if waiting[user] == 0:
                ready.append(user)
    if done != len(graph.node):
        stuck = next(graph.node[i].name or graph.node[i].op_type for i, count in enumerate(waiting) if count)
        raise ArtifactFileError(f"{where}: graph {graph.name!r} has a cycle (through node {stuck!r}): refusing it")


def _check_value(value: Any, where: str) -> None:
    if value.type.WhichOneof("value") != "tensor_type" or not value.type.tensor_type.HasField("shape"):
        return
    for dim in value.type.tensor_type.shape.dim:
        if dim.HasField("dim_value") and dim.dim_value < 0:
            raise ArtifactFileError(f"{where}: {value.name!r} declares a dimension of {dim.dim_value}: refusing it")


def _check_tensor(tensor: Any, where: str, external_length: int | None) -> None:
    elements = 1
    for dim in tensor.dims:
        if dim < 0:
            raise ArtifactFileError(f"{where}: tensor {tensor.name!r} declares a dimension of {dim}: refusing it")
        elements *= dim
    per = _ELEMENT_BYTES.get(tensor.data_type)
    if per is None or elements == 0:
        return  # strings, or a type this check does not size: the runtime's parser checks them
    declared = -(-elements * per[0] // per[1])
    if external_length is not None:
        held = external_length
    elif tensor.HasField("raw_data"):
        held = len(tensor.raw_data)
    else:
        held = _MOST_BYTES_PER_TYPED_VALUE * max(len(getattr(tensor, name)) for name in _TYPED_FIELDS)
    if declared > held:
        from ..tables import human_size

        raise ArtifactFileError(
            f"{where}: tensor {tensor.name!r} declares {human_size(declared)} ({list(tensor.dims)}) but holds "
            f"{human_size(held)}: refusing it"
        )
