"""Hash each file of an artifact folder, and hand back the bytes that were checked.

Every command that loads an artifact goes through here, so nothing is loaded before its
sha256 matches the manifest and the bytes loaded are the bytes hashed (a file changed
between check and load changes nothing). Paths are plain relative paths inside the
folder: ``member_path`` refuses absolute paths, ``..`` and symlinks, and ``open_member``
refuses a file with more than one hard link (another name, perhaps outside the folder,
for the same bytes), so a hostile manifest cannot make the tool read outside the folder.

Hashing streams over chunks: a file that is only hashed or copied is never held whole
(``hash_member``, ``copy_checked``); one that is loaded is read once, and its bytes kept
once (``read_checked``), or copied while hashed into a private folder and loaded from there by
path (``private_copies``: verify), so a runtime's own copy is the only one in memory.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from ..errors import ArtifactDirError, ExporterError, ManifestError

CHUNK = 1 << 20  # 1 MiB: memory for hashing, whatever the file's size


class Entry(Protocol):
    path: str
    sha256: str


@dataclass
class HashCheck:
    """One file's check: the sha256 the manifest expects, and what the file hashed to."""

    path: str
    expected: str
    actual: str | None  # None: the file could not be read
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.actual == self.expected


class HashingWriter:
    """A new file (``open(path, "xb")``) whose sha256 is taken over exactly the bytes written to it:
    a file this process writes is hashed as it is written, never read back to be hashed."""

    def __init__(self, path: Path) -> None:
        self.handle = open(path, "xb")  # noqa: SIM115 - closed by close()
        self._digest = hashlib.sha256()
        self.position = 0

    def write(self, data) -> int:
        self.handle.write(data)
        self._digest.update(data)
        self.position += len(data)
        return len(data)

    def flush(self) -> None:
        self.handle.flush()

    def close(self) -> str:
        """Close the file; its sha256."""
        self.handle.close()
        return self._digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return _hash_stream(handle)


def _hash_stream(handle: BinaryIO, copy_to: BinaryIO | None = None) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(CHUNK), b""):
        digest.update(block)
        if copy_to is not None:
            copy_to.write(block)
    return digest.hexdigest()


def check_relative(relpath: str, where: str = "manifest.json") -> None:
    """Refuse a path that could leave the folder: absolute, `..`, empty, a drive/UNC form or a NUL byte."""
    parts = Path(relpath).parts if "\0" not in relpath else ()
    if (
        not relpath
        or "\0" in relpath
        or os.path.isabs(relpath)
        or relpath.startswith(("\\", "/"))
        or ":" in relpath
        or ".." in parts
        or "\\" in relpath
    ):
        raise ManifestError(
            f"{where} names {relpath!r}, which is not a plain path inside the artifact folder: refusing it"
        )


def member_path(folder: Path, relpath: str) -> Path:
    """The path of ``relpath`` inside ``folder``, refusing symlinks and escapes."""
    check_relative(relpath)
    root = Path(folder).resolve()
    path = root / relpath
    current = root
    for part in Path(relpath).parts:
        current = current / part
        if current.is_symlink():
            raise ManifestError(f"{relpath!r} in {folder} is a symlink: refusing to follow it")
    if root not in path.resolve().parents:
        raise ManifestError(f"{relpath!r} resolves outside {folder}: refusing it")
    return path


def open_member(folder: Path, relpath: str) -> BinaryIO:
    """A file of the folder opened for reading: a regular file with one hard link, never a link.

    Raises FileNotFoundError when it is missing or not a regular file, ManifestError for a
    symlink, an escape or a second hard link (whose other name may lie outside the folder).
    """
    path = member_path(folder, relpath)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)  # a FIFO must not block
    try:
        fd = os.open(path, flags)
    except IsADirectoryError:
        raise FileNotFoundError(relpath) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise FileNotFoundError(relpath)
    if info.st_nlink > 1:
        os.close(fd)
        raise ManifestError(
            f"{relpath!r} in {folder} has {info.st_nlink} hard links, so another name (perhaps outside the folder) "
            "shares its bytes: refusing it; give it its own copy (cp) if you trust it"
        )
    return os.fdopen(fd, "rb")


def read_member(folder: Path, relpath: str) -> bytes:
    """The bytes of a file inside the folder (see ``open_member``)."""
    with open_member(folder, relpath) as handle:
        return handle.read()


def hash_member(folder: Path, relpath: str) -> str:
    """The sha256 of a file inside the folder, streamed: memory does not grow with the file."""
    with open_member(folder, relpath) as handle:
        return _hash_stream(handle)


def _refuse(folder: Path, entry: Entry, action: str, error: OSError) -> ExporterError:
    if isinstance(error, (FileNotFoundError, IsADirectoryError)):
        return ArtifactDirError(f"{entry.path} is missing from {folder}, though its manifest lists it: re-export")
    return ArtifactDirError(f"{entry.path} in {folder} cannot be read to {action} it ({error.strerror})")


def _mismatch(folder: Path, entry: Entry, action: str) -> ExporterError:
    return ExporterError(
        f"{entry.path} does not match its sha256 in the manifest: refusing to {action} it; "
        f"run `exporter verify {folder}`"
    )


def read_checked(folder: Path, entry: Entry, action: str = "load") -> bytes:
    """An artifact's bytes, read once and checked against its sha256 before anyone uses them.

    Raises ArtifactDirError (exit 2) when the file is missing or unreadable, ManifestError
    (exit 2) for a link, ExporterError (exit 1) when it does not match the manifest;
    ``action`` names what was refused.
    """
    try:
        data = read_member(folder, entry.path)
    except OSError as error:
        raise _refuse(folder, entry, action, error) from None
    if sha256_bytes(data) != entry.sha256:
        raise _mismatch(folder, entry, action)
    return data


def check_member(folder: Path, entry: Entry, action: str = "load") -> None:
    """Refuse, as ``read_checked`` does, a file that is missing, unreadable, a link or not the manifest's;
    streamed: nothing is held."""
    try:
        digest = hash_member(folder, entry.path)
    except OSError as error:
        raise _refuse(folder, entry, action, error) from None
    if digest != entry.sha256:
        raise _mismatch(folder, entry, action)


def copy_checked(folder: Path, entry: Entry, target: Path, action: str = "copy") -> None:
    """Copy an artifact to ``target`` in chunks, hashing what is copied; the copy is removed on a mismatch."""
    try:
        with open_member(folder, entry.path) as source, open(target, "xb") as out:
            digest = _hash_stream(source, copy_to=out)
    except FileNotFoundError as error:
        raise _refuse(folder, entry, action, error) from None
    if digest != entry.sha256:
        Path(target).unlink(missing_ok=True)
        raise _mismatch(folder, entry, action)


@dataclass(frozen=True)
class CheckedFile:
    """A file whose bytes matched the manifest and that nobody else can change while it is used:
    a private copy made while hashing (``private_copies``), or, with ``own``, a file this process
    wrote and hashed into its own staging folder (export's verification). Runtimes load it by
    path, so its bytes are never held in memory beside the runtime's own copy."""

    path: Path
    own: bool = False  # written by this process: its ONNX external data was laid out by onnx_wire


def private_copies(folder: Path, entries: Iterable[Entry], into: Path, action: str = "load") -> dict[str, CheckedFile]:
    """Copy each entry into ``into`` (a private folder of this process) while hashing it; the copies by path.

    Raises as ``read_checked`` does (a missing or unreadable file, a link, a mismatch); a
    mismatching copy is removed. Memory does not grow with the files: they are streamed.
    """
    copies: dict[str, CheckedFile] = {}
    for entry in entries:
        target = into / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            copy_checked(folder, entry, target, action)
        except OSError as error:
            raise ArtifactDirError(
                f"cannot copy {entry.path} from {folder} into a private folder to {action} it ({error.strerror}): "
                "set TMPDIR to a folder with room for the largest artifact"
            ) from None
        copies[entry.path] = CheckedFile(target)
    return copies


def check_all(folder: Path, entries: Iterable[Entry]) -> list[HashCheck]:
    """Every file's check, streamed: nothing is held; a runtime reads its own file through ``read_checked``."""
    checks: list[HashCheck] = []
    for entry in entries:
        try:
            checks.append(HashCheck(entry.path, entry.sha256, hash_member(folder, entry.path)))
        except FileNotFoundError:
            checks.append(HashCheck(entry.path, entry.sha256, None, "missing"))
        except OSError as error:
            checks.append(HashCheck(entry.path, entry.sha256, None, error.strerror))
    return checks
