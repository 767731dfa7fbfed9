"""A view of a checked ONNX file that ONNX Runtime reads its weights through, in place.

ONNX Runtime handed a self-contained file parses it whole and then copies every weight out of
the parse: twice the weights at once. The view is a small graph file beside the checked file
whose large initializers are external data pointing at their own bytes in that file, so the
runtime reads each weight once, straight into its tensor. Built on the wire reader and writer
of ``onnx_wire``; the caller removes the view once the session exists.
"""

from __future__ import annotations

import os
from pathlib import Path

from .onnx_wire import (
    DATA_LOCATION,
    EXTERNAL_DATA,
    GRAPH,
    INITIALIZER,
    INLINE_BELOW,
    LEN,
    RAW_DATA,
    VARINT,
    field_key,
    spans,
    varint,
)


def external_view(path: Path) -> Path | None:
    """A small graph file beside ``path`` whose large initializers are external data in ``path`` itself.

    Each initializer of 1 KB or more stored as ``raw_data`` becomes a reference to those very
    bytes of ``path`` (location: its file name, the offset of its raw_data payload), so ONNX
    Runtime reads the weights straight from the file into its tensors instead of parsing the
    whole file first and copying every weight out of the parse (twice the weights at once). Every
    other byte is copied from ``path`` as it is: the same graph, the same weights. Returns None
    when ``path`` has no such initializer (nothing to gain). The caller removes the view once
    the session exists.
    """
    import mmap

    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            return None
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            moved = 0
            out = bytearray()
            for field, wire, a, b, begin in spans(buf, 0, size):
                if field != GRAPH or wire != LEN:
                    out += buf[begin:b]
                    continue
                graph = bytearray()
                for inner, inner_wire, t_start, t_end, t_begin in spans(buf, a, b):
                    initializer = inner == INITIALIZER and inner_wire == LEN
                    tensor = _as_external(buf, t_start, t_end, path.name) if initializer else None
                    if tensor is None:
                        graph += buf[t_begin:t_end]
                    else:
                        graph += field_key(INITIALIZER, LEN) + varint(len(tensor)) + tensor
                        moved += 1
                out += field_key(GRAPH, LEN) + varint(len(graph)) + graph
    if not moved:
        return None
    import tempfile

    # A fresh name (O_EXCL): never a file the folder already holds, such as a checked sidecar.
    handle, name = tempfile.mkstemp(prefix=".view-", suffix=".onnx", dir=path.parent)
    with os.fdopen(handle, "wb") as view:
        view.write(out)
    return Path(name)


def _as_external(buf, start: int, end: int, location: str) -> bytes | None:
    """A TensorProto's bytes with its raw_data (1 KB or more) referred to as external data in ``location``."""
    raw = None
    kept = bytearray()
    for field, wire, a, b, begin in spans(buf, start, end):
        if field in (EXTERNAL_DATA, DATA_LOCATION):
            return None  # already external, or a layout to leave alone
        if field == RAW_DATA and wire == LEN:
            raw = (a, b - a)
        else:
            kept += buf[begin:b]
    if raw is None or raw[1] < INLINE_BELOW:
        return None
    for key, value in (("location", location), ("offset", str(raw[0])), ("length", str(raw[1]))):
        k, v = key.encode(), value.encode()  # protobuf lengths count bytes, not characters
        entry = field_key(1, LEN) + varint(len(k)) + k + field_key(2, LEN) + varint(len(v)) + v
        kept += field_key(EXTERNAL_DATA, LEN) + varint(len(entry)) + entry
    kept += field_key(DATA_LOCATION, VARINT) + varint(1)  # TensorProto.EXTERNAL
    return bytes(kept)
