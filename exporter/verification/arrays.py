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
MAX_TOTAL_BYTES = 8 * 1024**3  # every array of one file together: three 1.25 GB members of a 16 MB .npz add up
_CHUNK = 1024**2  # an array is read into its own memory this much at a time: no second copy of it


def array_keys(path: Path) -> list[str] | None:
    """The keys of an .npz from the archive's directory alone (no member is read); None for an .npy."""
    path = Path(path)
    try:
        if not zipfile.is_zipfile(path):
            return None
        with zipfile.ZipFile(path) as archive:
            return [info.filename.removesuffix(".npy") for info in archive.infolist()]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise InputSpecError(f"{path} is not a readable .npz/.npy file ({error})") from None


def read_arrays(path: Path, keys: list[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays of an .npz (by key; ``keys``: only those) or an .npy (as ``{"inputs": array}``).

    Every header is checked first (its claim against the bytes behind it, and all claims together against
    MAX_TOTAL_BYTES), then each array is read straight into its own memory. InputSpecError otherwise.
    """
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                members = [i for i in archive.infolist() if keys is None or i.filename.removesuffix(".npy") in keys]
                claims = []
                for info in members:
                    with archive.open(info) as stream:
                        where = f"{path}[{info.filename.removesuffix('.npy')}]"
                        claims.append(_header(stream, info.file_size, where)[3])
                _check_total(claims, path)
                arrays = {}
                for info in members:
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


def _check_total(claims: list[int], path: Path) -> None:
    total = sum(claims)
    if total > MAX_TOTAL_BYTES:
        raise InputSpecError(
            f"{path}'s arrays claim {total:,} bytes together, more than the {MAX_TOTAL_BYTES:,} this tool reads "
            "from one file: refusing it; give fewer samples"
        )


def _header(stream: BinaryIO, size: int, where: str) -> tuple:
    """An .npy header, checked: (shape, fortran order, dtype, bytes claimed). Nothing is allocated."""
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
    return shape, fortran, dtype, claimed


def _read(stream: BinaryIO, size: int, where: str) -> np.ndarray:
    shape, fortran, dtype, claimed = _header(stream, size, where)
    flat = np.empty(math.prod(shape), dtype=dtype)  # the array's own memory, filled in chunks: no copy of it
    buffer = memoryview(flat.view(np.uint8))  # any byte order: the bytes land as the file holds them
    filled = 0
    while filled < claimed:
        chunk = stream.read(min(_CHUNK, claimed - filled))
        if not chunk:
            raise InputSpecError(f"{where} is truncated: its header claims shape {shape}")
        buffer[filled : filled + len(chunk)] = chunk
        filled += len(chunk)
    return flat.reshape(shape, order="F" if fortran else "C")
