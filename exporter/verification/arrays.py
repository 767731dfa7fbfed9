""".npy and .npz files read as data: each array's header is checked against the bytes behind it
before anything is allocated, so a header that claims 31 TB is one line, not a MemoryError.

No pickles (``allow_pickle=False``), no object arrays, no complex numbers (a model's real input
would silently lose the imaginary part).
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import InputSpecError

MAX_ARRAY_BYTES = 8 * 1024**3  # 8 GiB: far above any input set this tool feeds, far below a hostile header


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz (by key) or an .npy (as ``{"inputs": array}``); InputSpecError otherwise."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                arrays = {}
                for info in archive.infolist():
                    key = info.filename.removesuffix(".npy")
                    with archive.open(info) as stream:
                        arrays[key] = _read(stream, info.file_size, f"{path}[{key}]")
                return arrays
        with open(path, "rb") as stream:
            return {"inputs": _read(stream, path.stat().st_size, str(path))}
    except InputSpecError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise InputSpecError(f"{path} is not a readable .npz/.npy file ({error})") from None


def _read(stream: BinaryIO, size: int, where: str) -> np.ndarray:
    from numpy.lib import format as npy

    version = npy.read_magic(stream)
    readers = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}
    if version not in readers:
        raise InputSpecError(f"{where} is an .npy of format version {version}, which this tool does not read")
    shape, fortran, dtype = readers[version](stream)  # the header only: nothing allocated yet
    header = stream.tell() if stream.seekable() else None
    if dtype.hasobject:
        raise InputSpecError(f"{where} holds Python objects, not numbers: refusing it")
    if dtype.kind == "c":
        raise InputSpecError(f"{where} holds complex numbers ({dtype}): give real-valued inputs")
    claimed = math.prod(shape) * dtype.itemsize
    available = size - header if header is not None else None
    if claimed > MAX_ARRAY_BYTES or (available is not None and claimed > available):
        raise InputSpecError(
            f"{where}'s header claims shape {shape} of {dtype} ({claimed:,} bytes), "
            f"{'more than the file holds' if available is not None and claimed > available else 'too large'}: "
            "refusing it"
        )
    data = np.frombuffer(stream.read(claimed), dtype=dtype)
    if data.size != math.prod(shape):
        raise InputSpecError(f"{where} is truncated: its header claims shape {shape}")
    return data.reshape(shape, order="F" if fortran else "C").copy()
