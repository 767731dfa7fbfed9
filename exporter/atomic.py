"""All-or-nothing folders: build in a hidden staging folder beside the target, then swap it in.

An earlier folder at the target is kept until the new one is in place, so a failure at
any point leaves either the old folder or the new one, never a half-written mix.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path


def make_folder(path: Path, option: str) -> None:
    """Create ``path`` (and parents); ArtifactDirError naming ``option`` when it cannot be."""
    from .errors import ArtifactDirError

    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ArtifactDirError(f"{option} {path} exists and is not a folder: choose another") from None
    except OSError as error:
        raise ArtifactDirError(f"cannot write into {path} ({error.strerror}): choose a writable {option}") from None


def check_writable_file(path: Path, option: str) -> Path:
    """Refuse, before any work, an output file that cannot be written (ArtifactDirError, exit 2)."""
    from .errors import ArtifactDirError

    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir() or not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ArtifactDirError(f"{option} {path}: cannot write a file there (give a file in a writable folder)")
    return path


def check_creatable_folder(path: Path, option: str) -> None:
    """Refuse, before any work, a folder that neither exists as a folder nor can be created (exit 2)."""
    from .errors import ArtifactDirError

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


STALE_AFTER_S = 24 * 3600  # a staging folder this old was left by a killed run, not one in progress


def staging_folder(parent: Path, name: str) -> Path:
    """A fresh hidden folder ``parent/.NAME.XXXX.partial`` with the rights a normal folder gets.

    Staging folders of NAME left by a run that was killed (older than a day) are removed first.
    """
    now = time.time()
    for stale in [*parent.glob(f".{name}.*.partial"), *parent.glob(f".{name}.*.old")]:
        if stale.is_dir() and not stale.is_symlink() and now - stale.stat().st_mtime > STALE_AFTER_S:
            shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=parent))
    staging.chmod(0o777 & ~current_umask())  # mkdtemp makes it 0700
    return staging


def current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def move_into_place(staging: Path, target: Path) -> None:
    """Swap the finished ``staging`` folder in at ``target``; the earlier folder goes only afterwards."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.replace(target, old / "previous")
    try:
        os.replace(staging, target)
    except OSError:
        if old is not None:
            os.replace(old / "previous", target)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
