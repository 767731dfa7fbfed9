"""read_arrays: .npy and .npz read as data, each header checked against the bytes behind it before anything is
allocated; no pickles, no object arrays, no complex numbers."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from exporter.errors import InputSpecError
from exporter.verification.arrays import read_arrays


def _npy_claiming(path: Path, shape: tuple[int, ...], descr: str = "<f4", body: bytes = b"") -> Path:
    """An .npy (format 1.0) whose header claims ``shape`` of ``descr``, followed by ``body`` only."""
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    header += " " * (117 - len(header)) + "\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + body)
    return path


# --- what is read ------------------------------------------------------------------------------------


def test_an_npy_is_one_array_named_inputs(tmp_path):
    data = np.random.default_rng(0).random((3, 28, 28), dtype=np.float32)
    np.save(tmp_path / "x.npy", data)
    arrays = read_arrays(tmp_path / "x.npy")
    assert list(arrays) == ["inputs"] and arrays["inputs"].dtype == np.float32
    assert np.array_equal(arrays["inputs"], data)


def test_an_npz_is_its_arrays_by_key_compressed_or_not(tmp_path):
    ids, mask = np.arange(12, dtype=np.int64).reshape(3, 4), np.eye(3, dtype=bool)
    np.savez(tmp_path / "plain.npz", ids=ids, mask=mask)
    np.savez_compressed(tmp_path / "small.npz", ids=ids, mask=mask)
    for name in ("plain.npz", "small.npz"):
        arrays = read_arrays(tmp_path / name)
        assert list(arrays) == ["ids", "mask"]
        assert np.array_equal(arrays["ids"], ids) and np.array_equal(arrays["mask"], mask)


def test_a_fortran_ordered_array_keeps_its_values(tmp_path):
    data = np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3))
    np.save(tmp_path / "f.npy", data)
    assert np.array_equal(read_arrays(tmp_path / "f.npy")["inputs"], data)


def test_an_array_read_is_writable_not_a_view_of_the_files_bytes(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros(4, np.float32))
    got = read_arrays(tmp_path / "x.npy")["inputs"]
    assert got.flags.writeable
    got[0] = 1
    assert read_arrays(tmp_path / "x.npy")["inputs"][0] == 0


def test_an_empty_array_is_read(tmp_path):
    np.save(tmp_path / "empty.npy", np.zeros((0, 28, 28), np.float32))
    assert read_arrays(tmp_path / "empty.npy")["inputs"].shape == (0, 28, 28)  # refusing it is the caller's


# --- what is refused ---------------------------------------------------------------------------------


def test_a_pickled_object_array_is_refused_and_never_unpickled(tmp_path):
    np.save(tmp_path / "x.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputSpecError, match="holds Python objects, not numbers: refusing it") as caught:
        read_arrays(tmp_path / "x.npy")
    assert caught.value.exit_code == 2


def test_an_object_array_inside_an_npz_is_refused_naming_its_key(tmp_path):
    np.savez(tmp_path / "x.npz", good=np.zeros(2), evil=np.array([None], dtype=object))
    with pytest.raises(InputSpecError, match=r"x\.npz\[evil\] holds Python objects"):
        read_arrays(tmp_path / "x.npz")


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_complex_numbers_are_refused(tmp_path, dtype):
    np.save(tmp_path / "x.npy", np.zeros(3, dtype))
    with pytest.raises(InputSpecError, match="holds complex numbers"):
        read_arrays(tmp_path / "x.npy")


def test_a_header_claiming_more_bytes_than_the_file_holds_is_refused_before_allocating(tmp_path):
    path = _npy_claiming(tmp_path / "x.npy", (10**10, 28, 28))  # 31 TB claimed, none there
    with pytest.raises(
        InputSpecError, match=r"claims shape \(10000000000, 28, 28\) of float32 .*more than the file holds"
    ):
        read_arrays(path)


def test_a_header_claiming_more_than_an_npz_member_holds_is_refused(tmp_path):
    member = _npy_claiming(tmp_path / "inputs.npy", (1000, 1000), body=b"\0" * 64)
    with zipfile.ZipFile(tmp_path / "x.npz", "w") as archive:
        archive.write(member, "inputs.npy")
    with pytest.raises(InputSpecError, match=r"x\.npz\[inputs\]'s header claims .*more than the file holds"):
        read_arrays(tmp_path / "x.npz")


def test_a_header_matching_its_bytes_is_read(tmp_path):
    path = _npy_claiming(tmp_path / "x.npy", (2, 2), body=np.arange(4, dtype="<f4").tobytes())
    assert np.array_equal(read_arrays(path)["inputs"], np.arange(4, dtype=np.float32).reshape(2, 2))


def test_a_truncated_file_is_refused(tmp_path):
    np.save(tmp_path / "x.npy", np.ones((4, 28, 28), np.float32))
    data = (tmp_path / "x.npy").read_bytes()
    (tmp_path / "x.npy").write_bytes(data[:-100])
    with pytest.raises(InputSpecError, match="more than the file holds"):
        read_arrays(tmp_path / "x.npy")


def test_a_format_version_this_tool_does_not_read_is_refused(tmp_path):
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }"
    header += b" " * (123 - len(header)) + b"\n"
    (tmp_path / "x.npy").write_bytes(b"\x93NUMPY\x03\x00" + struct.pack("<I", len(header)) + header + b"\0" * 4)
    with pytest.raises(InputSpecError, match=r"format version \(3, 0\)"):
        read_arrays(tmp_path / "x.npy")


@pytest.mark.parametrize(
    "content", [b"", b"hello, not numpy", b"PK\x03\x04 a broken zip"], ids=["empty", "text", "broken-zip"]
)
def test_a_file_that_is_no_npy_or_npz_is_one_line(tmp_path, content):
    (tmp_path / "x.npy").write_bytes(content)
    with pytest.raises(InputSpecError, match=r"is not a readable \.npz/\.npy file") as caught:
        read_arrays(tmp_path / "x.npy")
    assert "\n" not in str(caught.value)


def test_a_missing_file_is_a_usage_error(tmp_path):
    with pytest.raises(InputSpecError, match="is not a readable"):
        read_arrays(tmp_path / "missing.npz")


# --- issue 24: keys before members, a total cap, no copies ------------------------------------------


def _counting(monkeypatch) -> list[str]:
    from exporter.verification import arrays

    read: list[str] = []
    real_header = arrays._header

    def header(stream, size, where):
        read.append(where)
        return real_header(stream, size, where)

    monkeypatch.setattr(arrays, "_header", header)
    return read


def test_an_npz_whose_keys_no_layout_takes_is_refused_before_any_member_is_read(tmp_path, monkeypatch):
    from exporter.interface import InputSpec
    from exporter.verification.inputs import InputSet

    np.savez_compressed(tmp_path / "x.npz", a=np.zeros((3, 1000)), b=np.zeros((3, 1000)), c=np.zeros((3, 1000)))
    read = _counting(monkeypatch)
    spec = InputSpec("input", (1, 1000), "float32")
    with pytest.raises(InputSpecError, match="holds a, b, c: give one array per input"):
        InputSet.load(tmp_path / "x.npz", (spec,), None)
    assert read == []  # refused from the archive's directory alone
    np.savez(tmp_path / "y.npz", input=np.zeros((3, 1000), np.float32), unrelated=np.zeros(10**6, np.uint8))
    loaded = InputSet.load(tmp_path / "y.npz", (spec,), None)  # the twin: the input's member only is read
    assert loaded.samples == 3 and read == [f"{tmp_path / 'y.npz'}[input]"] * 2  # its header, then its data


def test_arrays_that_together_pass_the_total_cap_are_refused_before_any_is_read(tmp_path, monkeypatch):
    from exporter.verification import arrays

    np.savez(tmp_path / "x.npz", a=np.zeros(400, np.uint8), b=np.zeros(400, np.uint8), c=np.zeros(400, np.uint8))
    monkeypatch.setattr(arrays, "MAX_TOTAL_BYTES", 1000)  # each member (400) passes, the three (1,200) do not
    reads = []
    monkeypatch.setattr(arrays, "_read", lambda *args: reads.append(args))
    with pytest.raises(InputSpecError, match="claim 1,200 bytes together, more than the 1,000"):
        read_arrays(tmp_path / "x.npz")
    assert reads == []
    monkeypatch.undo()
    assert sorted(read_arrays(tmp_path / "x.npz")) == ["a", "b", "c"]


def test_a_member_is_read_into_its_own_memory_without_a_second_copy(tmp_path):
    import tracemalloc

    size = 64 * 1024**2
    np.savez(tmp_path / "x.npz", big=np.ones(size // 4, np.float32))
    tracemalloc.start()
    try:
        (array,) = read_arrays(tmp_path / "x.npz").values()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert array.nbytes == size and array.flags.writeable and float(array[-1]) == 1.0
    assert peak < 1.25 * size, f"peak {peak / size:.2f}x the array"  # a read then a copy was 2x


@pytest.mark.parametrize("dtype", [">f4", "<i8", "bool"])
def test_any_byte_order_reads_as_written(tmp_path, dtype):
    data = (np.arange(24) % 2).astype(dtype).reshape(2, 3, 4)
    np.save(tmp_path / "x.npy", data)
    (read,) = read_arrays(tmp_path / "x.npy").values()
    assert read.dtype == np.dtype(dtype) and np.array_equal(read, data)
