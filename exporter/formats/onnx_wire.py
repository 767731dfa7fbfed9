"""ONNX files at the protobuf wire level, for models whose weights should never be held twice.

Two jobs that ``onnx.load`` / ``onnx.save`` would do by holding every weight in memory, once as
the parsed model and once more as serialised bytes:

- ``write``: turn a model that torch.onnx wrote with external data (a small graph file and its
  weights beside it) into the artifact: one self-contained file, or a graph file and one data file
  with a plain name, streaming each weight from disk to disk in chunks and hashing what is written.
  A self-contained file is the small graph's own bytes followed by a second occurrence of the
  graph field holding only the initializers: protobuf merges repeated occurrences of a message
  field (repeated fields append), so every reader (onnx, ONNX Runtime) sees one graph.
- ``initializers``: the top-level initializers of a file as ``FileTensor`` objects, each a name,
  a dtype, a shape and where its bytes lie in the file: compared in chunks, never loaded whole.

Only what these jobs need of the wire format is here: varints, length-delimited fields, and the
few fields of ModelProto (graph = 7), GraphProto (initializer = 5) and TensorProto (dims = 1,
data_type = 2, name = 8, raw_data = 9, data_location = 14) that locate a weight. Anything else a
tensor holds (typed data fields, external data) makes its reader fall back to onnx's own parser.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts.integrity import HashingWriter
from ..errors import WireError

PROTOBUF_LIMIT = 2 * 1024**3  # a single protobuf cannot exceed 2 GB
CHUNK = 16 << 20  # bytes per read or write while streaming a weight
ALIGN = 4096  # external data offsets are page-aligned, so ONNX Runtime can map them
INLINE_BELOW = 1024  # tensors under 1 KB stay in the graph file (shape inference reads them)

GRAPH, INITIALIZER = 7, 5  # ModelProto.graph, GraphProto.initializer
DIMS, DATA_TYPE, TENSOR_NAME, RAW_DATA, EXTERNAL_DATA, DATA_LOCATION = 1, 2, 8, 9, 13, 14
VARINT, I64, LEN, I32 = 0, 1, 2, 5


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def field_key(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def _read_varint(buf, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise WireError("a varint runs past its message")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(buf, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, value or payload start, payload end) for each field in buf[start:end].

    For a varint the third item is its value and the fourth the position after it; for a
    length-delimited field they are its payload's start and end.
    """
    for field, wire, a, b, _ in spans(buf, start, end):
        yield field, wire, a, b


def spans(buf, start: int, end: int) -> Iterator[tuple[int, int, int, int, int]]:
    """As ``fields``, with where each field begins (its key) as a fifth item; fixed-width fields too."""
    pos = start
    while pos < end:
        begin = pos
        key, pos = _read_varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if wire == VARINT:
            value, pos = _read_varint(buf, pos, end)
            yield field, wire, value, pos, begin
        elif wire == LEN:
            length, pos = _read_varint(buf, pos, end)
            if pos + length > end:
                raise WireError(f"field {field} runs past its message")
            yield field, wire, pos, pos + length, begin
            pos += length
        elif wire in (I64, I32):
            pos += 8 if wire == I64 else 4
            yield field, wire, pos, pos, begin
        else:
            raise WireError(f"wire type {wire} is not one protobuf writes")
        if pos > end:
            raise WireError("a field runs past its message")


# ---------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class FileTensor:
    """An initializer's raw bytes in a file: read in chunks to compare, never held whole."""

    path: Path
    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    offset: int
    nbytes: int

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __array__(self, dtype=None, copy=None):  # numpy's protocol: a full read, for small tensors
        return self.read().astype(dtype) if dtype is not None else self.read()

    def read(self) -> np.ndarray:
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read(self.nbytes)
        return np.frombuffer(data, dtype=self.dtype).reshape(self.shape)

    def difference(self, reference: np.ndarray) -> float | None:
        """None when every element equals ``reference``'s (same dtype and size), else the max abs difference.

        Streams the file in CHUNK-sized reads into one reusable buffer: memory does not grow with
        the tensor. As ``np.array_equal``: a NaN equals nothing, so a NaN makes the tensor differ.
        """
        flat = np.ascontiguousarray(reference).reshape(-1)
        if flat.dtype != self.dtype or flat.size != self.size:
            raise ValueError(f"{self.name}: {flat.dtype} x {flat.size} is not {self.dtype} x {self.size}")
        step = max(1, CHUNK // max(1, self.dtype.itemsize))
        buffer = np.empty(min(step, max(1, flat.size)), dtype=self.dtype)
        differs, worst = False, 0.0
        with open(self.path, "rb", buffering=0) as handle:
            handle.seek(self.offset)
            for start in range(0, flat.size, step):
                part = buffer[: min(step, flat.size - start)]
                view = memoryview(part).cast("B")
                got = 0
                while got < len(view):
                    read = handle.readinto(view[got:])
                    if not read:
                        raise WireError(f"{self.path.name} ends inside tensor {self.name!r}")
                    got += read
                expected = flat[start : start + part.size]
                if not np.array_equal(part, expected):
                    differs = True
                    worst = max(worst, float(np.max(np.abs(part.astype(np.float64) - expected.astype(np.float64)))))
        return worst if differs else None


def initializers(path: Path, external: Mapping[str, Path] | None = None) -> Mapping[str, Any]:
    """The top-level initializers of the ONNX file at ``path``, by name.

    A tensor whose bytes are a plain ``raw_data`` field of a numpy dtype, or lie in external data
    named in ``external`` (location -> the checked file), is a FileTensor (its bytes stay on
    disk); any other (typed data fields, bfloat16, strings) is parsed by onnx from its own small
    slice of the file and made an array. Raises WireError for a malformed file or external data
    anywhere but ``external``.
    """
    import mmap

    found: dict[str, Any] = {}
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            return found
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            for field, wire, start, end in fields(buf, 0, size):
                if field != GRAPH or wire != LEN:
                    continue
                for inner, inner_wire, t_start, t_end in fields(buf, start, end):
                    if inner == INITIALIZER and inner_wire == LEN:
                        name, tensor = _tensor(path, buf, t_start, t_end, external or {})
                        found[name] = tensor
    return found


def _tensor(path: Path, buf, start: int, end: int, external: Mapping[str, Path]) -> tuple[str, Any]:
    from onnx import TensorProto, helper, numpy_helper

    dims: list[int] = []
    data_type = 0
    name = ""
    raw: tuple[int, int] | None = None
    where: dict[str, str] = {}  # external_data entries
    located = False  # data_location EXTERNAL
    plain = True  # only dims, data_type, name and raw_data (or external data): the bytes are the tensor
    for field, wire, a, b in fields(buf, start, end):
        if field == DIMS and wire == VARINT:
            dims.append(a)
        elif field == DIMS and wire == LEN:  # packed dims
            pos = a
            while pos < b:
                value, pos = _read_varint(buf, pos, b)
                dims.append(value)
        elif field == DATA_TYPE and wire == VARINT:
            data_type = a
        elif field == TENSOR_NAME and wire == LEN:
            name = bytes(buf[a:b]).decode("utf-8", "replace")
        elif field == RAW_DATA and wire == LEN:
            raw = (a, b - a)
        elif field == DATA_LOCATION and wire == VARINT and a in (TensorProto.DEFAULT, TensorProto.EXTERNAL):
            located = a == TensorProto.EXTERNAL
        elif field == EXTERNAL_DATA and wire == LEN:
            entry = {k: bytes(buf[x:y]).decode("utf-8", "replace") for k, w, x, y in fields(buf, a, b) if w == LEN}
            where[entry.get(1, "")] = entry.get(2, "")
        else:
            plain = False
    if located or where:
        source = external.get(where.get("location", ""))
        if not located or raw is not None or source is None:
            raise WireError(f"the ONNX tensor {name!r} has external data outside the files given: refusing it")
        try:
            offset = int(where.get("offset", "0"))
            length = int(where["length"]) if "length" in where else source.stat().st_size - offset
        except ValueError:
            raise WireError(f"the ONNX tensor {name!r} has a malformed external data offset or length") from None
        if offset < 0 or length < 0 or offset + length > source.stat().st_size:
            raise WireError(f"the ONNX tensor {name!r} has external data outside {source.name}")
        path, raw = source, (offset, length)
    dtype = None
    if plain and raw is not None:
        try:
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(data_type)).newbyteorder("<")
        except (KeyError, TypeError, ValueError):
            dtype = None
    shape = tuple(int(d) for d in dims)
    if dtype is not None and dtype.kind in "biufc" and dtype.itemsize * int(np.prod(shape, dtype=np.int64)) == raw[1]:
        return name, FileTensor(Path(path), name, dtype, shape, raw[0], raw[1])
    if located:
        raise WireError(f"the ONNX tensor {name!r} is stored in a form this reader does not take from external data")
    proto = TensorProto()
    proto.ParseFromString(bytes(buf[start:end]))
    return proto.name, numpy_helper.to_array(proto)


# ---------------------------------------------------------------------------------------- writing


def _copy(source: Path, offset: int, length: int, out: HashingWriter) -> None:
    with open(source, "rb") as handle:
        handle.seek(offset)
        left = length
        while left:
            block = handle.read(min(CHUNK, left))
            if not block:
                raise WireError(f"{source.name} ends before the tensor data it should hold")
            out.write(block)
            left -= len(block)


def _external(tensor, folder: Path) -> tuple[Path, int, int]:
    """Where an external tensor's bytes lie: a plain file of ``folder``, its offset and length."""
    info = {entry.key: entry.value for entry in tensor.external_data}
    location = info.get("location", "")
    if not location or "/" in location or "\\" in location or location in (".", ".."):
        raise WireError(f"tensor {tensor.name!r} has external data at {location!r}, not a file beside the model")
    source = folder / location
    offset = int(info.get("offset", 0))
    length = int(info["length"]) if "length" in info else source.stat().st_size - offset
    return source, offset, length


def tensors_of(proto) -> list:
    """Every TensorProto in the model, wherever it sits (``onnx_check.tensors_in``): initializers, sparse
    initializers, node attributes, subgraphs, model-local functions' nodes and attribute defaults, and
    training_info. Any of them may carry external data."""
    from .onnx_check import tensors_in

    return tensors_in(proto)


def write(source: Path, target: Path, data_name: str | None = None) -> dict[str, str]:
    """Write the model at ``source`` (external data beside it) as ``target``; the sha256 of each file written.

    ``data_name`` None: one self-contained file (ValueError when it would pass protobuf's 2 GB
    limit). Else the weights of 1 KB and more go to ``target.parent / data_name``, each at a
    page-aligned offset, and smaller tensors into the graph file. Only the graph's top-level
    initializers may be external (what torch.onnx writes); any other external tensor is a
    WireError, for the caller to fall back to onnx's own loader.
    """
    import onnx
    from onnx import TensorProto

    proto = onnx.load(str(source), load_external_data=False)
    folder = source.parent
    moved = [t for t in proto.graph.initializer if t.data_location == TensorProto.EXTERNAL]
    if sum(t.data_location == TensorProto.EXTERNAL for t in tensors_of(proto)) != len(moved):
        raise WireError("a tensor outside the graph's initializers has external data")
    places = [_external(t, folder) for t in moved]
    if data_name is None:
        return _self_contained(proto, moved, places, target)
    return _with_data_file(proto, moved, places, target, data_name)


def _self_contained(proto, moved: list, places: list[tuple[Path, int, int]], target: Path) -> dict[str, str]:
    """One file: the small graph's own bytes, then a second occurrence of the graph field holding the moved
    initializers, each one's bytes streamed from ``places`` (protobuf merges the two occurrences)."""
    from onnx import TensorProto

    keep = [t for t in proto.graph.initializer if t.data_location != TensorProto.EXTERNAL]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(keep)
    head = proto.SerializeToString()
    headers = []
    for tensor in moved:
        bare = TensorProto()
        bare.CopyFrom(tensor)
        del bare.external_data[:]
        bare.ClearField("data_location")
        headers.append(bare.SerializeToString())
    messages = [
        len(h) + len(field_key(RAW_DATA, LEN)) + len(varint(n)) + n
        for h, (_, _, n) in zip(headers, places, strict=True)
    ]
    graph_tail = sum(len(field_key(INITIALIZER, LEN)) + len(varint(m)) + m for m in messages)
    total = len(head) + len(field_key(GRAPH, LEN)) + len(varint(graph_tail)) + graph_tail
    if total >= PROTOBUF_LIMIT:
        raise ValueError(f"{total / 1e9:.2f} GB is past protobuf's 2 GB limit for one file")
    out = HashingWriter(target)
    try:
        out.write(head)
        if moved:
            out.write(field_key(GRAPH, LEN) + varint(graph_tail))
            for header, message, (path, offset, length) in zip(headers, messages, places, strict=True):
                out.write(field_key(INITIALIZER, LEN) + varint(message) + header)
                out.write(field_key(RAW_DATA, LEN) + varint(length))
                _copy(path, offset, length, out)
    finally:
        digest = out.close()
    return {target.name: digest}


def _with_data_file(
    proto, moved: list, places: list[tuple[Path, int, int]], target: Path, data_name: str
) -> dict[str, str]:
    """A graph file and one data file: each weight of 1 KB or more at a page-aligned offset in the data file,
    smaller ones back in the graph."""
    from onnx import TensorProto

    written: dict[str, str] = {}
    data = HashingWriter(target.parent / data_name)
    try:
        for tensor, (path, offset, length) in zip(moved, places, strict=True):
            del tensor.external_data[:]
            if length < INLINE_BELOW:
                with open(path, "rb") as handle:
                    handle.seek(offset)
                    tensor.raw_data = handle.read(length)
                tensor.ClearField("data_location")
                continue
            pad = -data.position % ALIGN
            if pad:
                data.write(b"\0" * pad)
            start = data.position
            _copy(path, offset, length, data)
            for key, value in (("location", data_name), ("offset", str(start)), ("length", str(length))):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, value
            tensor.data_location = TensorProto.EXTERNAL
    finally:
        written[data_name] = data.close()
    out = HashingWriter(target)
    try:
        out.write(proto.SerializeToString())
    finally:
        written[target.name] = out.close()
    return written
