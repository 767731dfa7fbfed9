"""Paths the user names (``--out``, ``--json``, ``--save-inputs``): refused up front when they cannot be written.

Plain checks with no torch, so a config can refuse a bad path before any work starts.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ArtifactDirError


def make_folder(path: Path, option: str) -> None:
    """Create ``path`` (and parents); ArtifactDirError naming ``option`` when it cannot be."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ArtifactDirError(f"{option} {path} exists and is not a folder: choose another") from None
    except OSError as error:
        raise ArtifactDirError(f"cannot write into {path} ({error.strerror}): choose a writable {option}") from None


def check_writable_file(path: Path, option: str) -> Path:
    """Refuse, before any work, an output file that cannot be written (ArtifactDirError, exit 2)."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir() or not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ArtifactDirError(f"{option} {path}: cannot write a file there (give a file in a writable folder)")
    return path


def check_creatable_folder(path: Path, option: str) -> None:
    """Refuse, before any work, a folder that neither exists as a folder nor can be created (exit 2)."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise ArtifactDirError(f"{option} {path} exists and is not a folder: choose another")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ArtifactDirError(f"cannot write into {path}: choose a writable {option}")
        return
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise ArtifactDirError(f"cannot create {path} (in {ancestor}): choose a writable {option}")
