"""Replacing an artifact folder: what export may replace, what the earlier folder held, and the swap.

Only nothing, an empty folder, or one of this tool's artifact folders (a manifest.json it can read)
is replaced; a user's folder, a file or a link at the target is refused and left untouched. The
swap itself is atomic.py's; a swap that fails says which folder could not be replaced and why.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..errors import ArtifactDirError, FolderSwapError, ManifestError, disk_error, first_line
from . import atomic
from .manifest import Manifest


def normal_rights(folder: Path) -> None:
    """Every file readable as the umask allows (onnx writes its external data 0600)."""
    rights = 0o666 & ~atomic.current_umask()
    for path in folder.iterdir():
        if path.is_file() and not path.is_symlink():
            path.chmod(rights)


def move_into_place(staging: Path, target: Path, describe: Callable[[Path], str]) -> str | None:
    """Swap the finished folder in; what the earlier folder at ``target`` held, in words from ``describe``
    (None: there was none)."""
    check_replaceable(target)  # again: the folder may have changed while the model was exported
    replaced = describe(target) if target.exists() else None
    try:
        atomic.move_into_place(staging, target)
    except OSError as error:
        if disk_error(error) is not None:
            raise
        raise FolderSwapError(atomic.swap_failure(error, staging, target)) from error
    return replaced


def check_replaceable(target: Path) -> None:
    """Refuse (ArtifactDirError, exit 2) anything at ``target`` export may not replace: only nothing, an empty
    folder, or one of this tool's artifact folders (a manifest.json it can read) is replaced; a user's folder,
    a file or a link is left untouched."""
    if not os.path.lexists(target):
        return
    if target.is_symlink() or not target.is_dir():
        raise ArtifactDirError(f"{target} exists and is not an artifact folder: move it or choose another --name")
    try:
        if not any(target.iterdir()):
            return
        Manifest.load(target)
    except ManifestError as error:
        raise ArtifactDirError(
            f"{target} exists and is not an artifact folder this tool wrote ({first_line(error)}): refusing to "
            "replace it; move it away or choose another --name"
        ) from None
    except OSError as error:
        raise ArtifactDirError(f"cannot read {target} ({error.strerror}): move it or choose another --name") from None
