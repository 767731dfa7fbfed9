"""Hash each file of an artifact folder once, and hand back the bytes that were checked.

Every command that loads an artifact goes through here, so nothing is loaded before its
sha256 matches the manifest and the bytes loaded are the bytes hashed (a file changed
between check and load changes nothing). Paths are plain relative paths inside the
folder: ``member_path`` refuses absolute paths, ``..`` and symlinks, so a hostile
manifest cannot make the tool read outside the folder.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .errors import ArtifactDirError, ExporterError, ManifestError


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


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_relative(relpath: str, where: str = "manifest.json") -> None:
    """Refuse a path that could leave the folder: absolute, `..`, empty, or a drive/UNC form."""
    parts = Path(relpath).parts
    if (
        not relpath
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


def read_checked(folder: Path, entry: Entry, action: str = "load") -> bytes:
    """An artifact's bytes, read once and checked against its sha256 before anyone uses them.

    Raises ArtifactDirError (exit 2) when the file is missing or unreadable, ExporterError
    (exit 1) when it does not match the manifest; ``action`` names what was refused.
    """
    try:
        data = read_member(folder, entry.path)
    except (FileNotFoundError, IsADirectoryError):
        raise ArtifactDirError(
            f"{entry.path} is missing from {folder}, though its manifest lists it: re-export"
        ) from None
    except OSError as error:
        raise ArtifactDirError(f"{entry.path} in {folder} cannot be read ({error.strerror})") from None
    if sha256_bytes(data) != entry.sha256:
        raise ExporterError(
            f"{entry.path} does not match its sha256 in the manifest: refusing to {action} it; "
            f"run `exporter verify {folder}`"
        )
    return data


def read_member(folder: Path, relpath: str) -> bytes:
    """The bytes of a file inside the folder (see ``member_path``)."""
    path = member_path(folder, relpath)
    if not path.is_file():
        raise FileNotFoundError(relpath)
    return path.read_bytes()


def check_all(folder: Path, entries: Iterable[Entry]) -> tuple[dict[str, bytes], list[HashCheck]]:
    """Read each file once; the bytes of those whose sha256 matches, and every file's check."""
    blobs: dict[str, bytes] = {}
    checks: list[HashCheck] = []
    for entry in entries:
        try:
            data = read_member(folder, entry.path)
        except FileNotFoundError:
            checks.append(HashCheck(entry.path, entry.sha256, None, "missing"))
            continue
        except OSError as error:
            checks.append(HashCheck(entry.path, entry.sha256, None, error.strerror))
            continue
        check = HashCheck(entry.path, entry.sha256, sha256_bytes(data))
        checks.append(check)
        if check.ok:
            blobs[entry.path] = data
    return blobs, checks
