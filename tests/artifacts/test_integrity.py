"""integrity: each file hashed once and the checked bytes handed back; paths that cannot leave the folder."""

from __future__ import annotations

import errno
import hashlib
import os
import tracemalloc
from pathlib import Path

import pytest

from exporter.artifacts.integrity import (
    CheckedFile,
    HashCheck,
    HashingWriter,
    check_all,
    check_member,
    check_relative,
    hash_member,
    member_path,
    private_copies,
    read_checked,
    read_member,
    sha256_bytes,
    sha256_file,
)
from exporter.artifacts.manifest import ArtifactEntry
from exporter.errors import ArtifactDirError, ExporterError, ManifestError, UsageError


def _entry(path: str, data: bytes) -> ArtifactEntry:
    """A manifest entry that expects ``data`` at ``path``."""
    return ArtifactEntry("onnx", path, hashlib.sha256(data).hexdigest(), len(data))


@pytest.fixture
def unreadable(monkeypatch):
    """Make reading files of the given names fail as a permission error would (the tests run as root,
    where chmod 000 does not stop a read)."""
    import os

    names: set[str] = set()
    real_open = os.open

    def refusing(path, flags, *args, **kwargs):
        if Path(path).name in names:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing)
    return names


# --- sha256 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 3, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3 * (1 << 20) + 7])
def test_sha256_file_equals_sha256_bytes_of_the_same_content(tmp_path, size):
    data = bytes(i % 251 for i in range(size))  # sizes around the 1 MiB block sha256_file reads
    (tmp_path / "blob").write_bytes(data)
    assert sha256_file(tmp_path / "blob") == sha256_bytes(data) == hashlib.sha256(data).hexdigest()


def test_sha256_is_the_standard_digest_and_one_changed_byte_changes_it(tmp_path):
    assert sha256_bytes(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # FIPS 180-2
    (tmp_path / "blob").write_bytes(b"abd")
    assert sha256_file(tmp_path / "blob") != sha256_bytes(b"abc")


# --- check_all ------------------------------------------------------------------------------------


def test_check_all_records_every_file_and_which_match(tmp_path, unreadable):
    (tmp_path / "good.onnx").write_bytes(b"good")
    (tmp_path / "changed.pt").write_bytes(b"changed after export")
    (tmp_path / "locked.pt2").write_bytes(b"locked")
    (tmp_path / "folder.onnx").mkdir()  # a folder where the manifest names a file
    unreadable.add("locked.pt2")
    entries = [
        _entry("good.onnx", b"good"),
        _entry("changed.pt", b"as exported"),
        _entry("missing.onnx", b"never written"),
        _entry("locked.pt2", b"locked"),
        _entry("folder.onnx", b"a file"),
    ]
    checks = check_all(tmp_path, entries)
    assert [c.path for c in checks] == [e.path for e in entries]  # every file, in the manifest's order
    by_path = {c.path: c for c in checks}
    assert by_path["good.onnx"] == HashCheck("good.onnx", entries[0].sha256, entries[0].sha256)
    assert by_path["good.onnx"].ok
    changed = by_path["changed.pt"]
    assert not changed.ok and changed.actual == sha256_bytes(b"changed after export") and changed.error is None
    assert (by_path["missing.onnx"].actual, by_path["missing.onnx"].error) == (None, "missing")
    assert (by_path["locked.pt2"].actual, by_path["locked.pt2"].error) == (None, "Permission denied")
    assert (by_path["folder.onnx"].actual, by_path["folder.onnx"].error) == (None, "missing")
    assert [c.ok for c in checks] == [True, False, False, False, False]


def test_check_all_opens_each_file_once_and_keeps_none(tmp_path, monkeypatch):
    import os

    for name in ("a.onnx", "b.pt"):
        (tmp_path / name).write_bytes(name.encode())
    opened: list[str] = []
    real_open = os.open
    monkeypatch.setattr(
        os, "open", lambda path, flags, *a: opened.append(Path(path).name) or real_open(path, flags, *a)
    )
    checks = check_all(tmp_path, [_entry("a.onnx", b"a.onnx"), _entry("b.pt", b"b.pt")])
    assert sorted(opened) == ["a.onnx", "b.pt"] and all(c.ok for c in checks)
    assert all(isinstance(c, HashCheck) for c in checks)  # checks only: a runtime reads its own file later


def test_check_all_refuses_a_manifest_path_that_leaves_the_folder(tmp_path):
    (tmp_path / "inside").mkdir()
    (tmp_path / "secret").write_bytes(b"outside")
    with pytest.raises(ManifestError, match="not a plain path"):
        check_all(tmp_path / "inside", [_entry("../secret", b"outside")])


# --- read_checked ---------------------------------------------------------------------------------


def test_read_checked_hands_back_the_bytes_that_match(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"weights")
    assert read_checked(tmp_path, _entry("model.pt", b"weights")) == b"weights"


@pytest.mark.parametrize("make", [lambda _p: None, lambda p: (p / "model.pt").mkdir()], ids=["absent", "a-folder"])
def test_read_checked_calls_a_missing_file_a_usage_error(tmp_path, make):
    make(tmp_path)
    with pytest.raises(ArtifactDirError, match=r"^model\.pt is missing from .*: re-export$") as caught:
        read_checked(tmp_path, _entry("model.pt", b"weights"))
    assert caught.value.exit_code == 2


def test_read_checked_calls_an_unreadable_file_a_usage_error(tmp_path, unreadable):
    (tmp_path / "model.pt").write_bytes(b"weights")
    unreadable.add("model.pt")
    with pytest.raises(ArtifactDirError, match=r"cannot be read to load it \(Permission denied\)"):
        read_checked(tmp_path, _entry("model.pt", b"weights"))


def test_read_checked_calls_a_mismatch_a_failure_not_a_usage_error(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"tampered")
    with pytest.raises(ExporterError) as caught:
        read_checked(tmp_path, _entry("model.pt", b"weights"), action="benchmark")
    assert not isinstance(caught.value, UsageError) and caught.value.exit_code == 1
    message = str(caught.value)
    assert message.startswith("model.pt does not match its sha256 in the manifest: refusing to benchmark it")
    assert f"run `exporter verify {tmp_path}`" in message and "\n" not in message


# --- paths ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["/etc/passwd", "../x.onnx", "a/../../x", "", "C:\\x", "a\\..\\b", "\\\\host\\x"])
def test_paths_that_could_leave_the_folder_are_refused(bad):
    with pytest.raises(ManifestError, match="not a plain path inside the artifact folder"):
        check_relative(bad)


@pytest.mark.parametrize("good", ["model.onnx", "sub/model.onnx.data", "a.b/c"])
def test_plain_relative_paths_are_accepted(good):
    check_relative(good)


def test_a_plain_member_path_is_accepted_inside_the_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "model.onnx").write_bytes(b"x")
    assert member_path(tmp_path, "sub/model.onnx") == tmp_path.resolve() / "sub" / "model.onnx"
    assert read_member(tmp_path, "sub/model.onnx") == b"x"


@pytest.mark.parametrize("inside", [False, True], ids=["to-outside", "to-inside"])
def test_a_symlink_member_is_refused_wherever_it_points(tmp_path, inside):
    folder = tmp_path / "art"
    folder.mkdir()
    (folder / "real.onnx").write_text("bytes")
    (tmp_path / "secret").write_text("bytes")
    (folder / "model.onnx").symlink_to(folder / "real.onnx" if inside else tmp_path / "secret")
    with pytest.raises(ManifestError, match="is a symlink: refusing to follow it"):
        member_path(folder, "model.onnx")
    assert read_member(folder, "real.onnx") == b"bytes"  # the file itself is fine


def test_a_symlinked_folder_on_the_way_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "model.onnx").write_text("bytes")
    folder = tmp_path / "art"
    folder.mkdir()
    (folder / "sub").symlink_to(outside)
    with pytest.raises(ManifestError, match=r"'sub/model\.onnx' in .* is a symlink"):
        read_member(folder, "sub/model.onnx")


# --- hashing while writing, private copies ---------------------------------------------------------


def test_a_hashing_writer_digests_exactly_the_bytes_it_wrote(tmp_path):
    out = HashingWriter(tmp_path / "model.pt")
    for block in (b"head", b"", b"weights" * 1000):
        out.write(block)
    digest = out.close()
    assert digest == sha256_file(tmp_path / "model.pt") == sha256_bytes(b"head" + b"weights" * 1000)


def test_a_hashing_writer_never_overwrites_a_file(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"earlier")
    with pytest.raises(FileExistsError):
        HashingWriter(tmp_path / "model.pt")
    assert (tmp_path / "model.pt").read_bytes() == b"earlier"


def test_private_copies_are_the_checked_bytes_in_a_folder_of_their_own(tmp_path):
    folder, into = tmp_path / "artifact", tmp_path / "private"
    folder.mkdir(), into.mkdir()
    (folder / "model.onnx").write_bytes(b"graph")
    (folder / "model.onnx.data").write_bytes(b"weights")
    entries = [_entry("model.onnx", b"graph"), _entry("model.onnx.data", b"weights")]
    copies = private_copies(folder, entries, into)
    assert copies == {e.path: CheckedFile(into / e.path) for e in entries}
    (folder / "model.onnx.data").write_bytes(b"changed after the check")  # the copy is what a runtime loads
    assert copies["model.onnx.data"].path.read_bytes() == b"weights"


def test_a_private_copy_that_does_not_match_is_refused_and_removed(tmp_path):
    folder, into = tmp_path / "artifact", tmp_path / "private"
    folder.mkdir(), into.mkdir()
    (folder / "model.pt").write_bytes(b"tampered")
    with pytest.raises(ExporterError, match="does not match its sha256") as raised:
        private_copies(folder, [_entry("model.pt", b"weights")], into)
    assert not isinstance(raised.value, UsageError)  # a failed check (exit 1), not a usage error
    assert list(into.iterdir()) == []


def test_a_private_copy_that_cannot_be_written_says_where_to_make_room(tmp_path, monkeypatch):
    folder, into = tmp_path / "artifact", tmp_path / "private"
    folder.mkdir(), into.mkdir()
    (folder / "model.pt").write_bytes(b"weights")

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("exporter.artifacts.integrity.copy_checked", full)
    with pytest.raises(ArtifactDirError, match=r"No space left on device.*set TMPDIR"):
        private_copies(folder, [_entry("model.pt", b"weights")], into)


@pytest.mark.slow
def test_hashing_memory_does_not_grow_with_the_file(tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as handle:
        for _ in range(48):
            handle.write(os.urandom(1 << 20))
    tracemalloc.start()
    try:
        digest = hash_member(tmp_path, "big.bin")
        hashed_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        read_member(tmp_path, "big.bin")  # the control: reading the file whole is seen by this measure
        read_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert digest == sha256_file(big)
    assert hashed_peak < 4 << 20 and read_peak > 40 << 20


def test_check_member_streams_the_check_and_refuses_as_read_checked_does(tmp_path):
    from exporter.artifacts.integrity import check_member

    (tmp_path / "model.onnx").write_bytes(b"weights")
    entry = ArtifactEntry("onnx", "model.onnx", sha256_bytes(b"weights"), 7)
    check_member(tmp_path, entry)  # matches: nothing raised, nothing returned
    (tmp_path / "model.onnx").write_bytes(b"changed")
    with pytest.raises(ExporterError, match="does not match its sha256"):
        check_member(tmp_path, entry, "benchmark")
    (tmp_path / "model.onnx").unlink()
    with pytest.raises(ArtifactDirError, match="is missing from"):
        check_member(tmp_path, entry)
