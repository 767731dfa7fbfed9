"""All-or-nothing folders: build in a hidden staging folder beside the target, then swap it in.

An earlier folder at the target is kept until the new one is in place, so a failure at
any point, a kill included, leaves either the old folder or the new one at the target,
never a half-written mix and never nothing. Only folders this tool made and marked as its
own are ever removed.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import glob
import os
import secrets
import shutil
import sys
import time
from pathlib import Path


STALE_AFTER_S = 24 * 3600  # a staging folder this old was left by a killed run, not one in progress
MARKER = ".exporter-staging"  # inside every staging container; its token is also in the container's name
NEW, PREVIOUS = "new", "previous"  # the folder being built; the old folder, between the two renames of the fallback


def staging_folder(parent: Path, name: str) -> Path:
    """A fresh folder to build NAME in, with the rights a normal folder gets: ``parent/.NAME.TOKEN.partial/new``.

    The container ``.NAME.TOKEN.partial`` holds a marker file naming TOKEN: only folders so
    marked are ever removed by this tool. First, a swap of NAME that a killed run left half
    done is completed (``recover``), and marked containers of NAME older than a day are removed.
    """
    recover(parent, name)
    token = secrets.token_hex(8)
    container = parent / f".{name}.{token}.partial"
    container.mkdir(mode=0o700)
    (container / MARKER).write_text(f"{token}\n")
    staging = container / NEW
    staging.mkdir()
    staging.chmod(0o777 & ~current_umask())
    return staging


def _marked_containers(parent: Path, name: str) -> list[Path]:
    """Containers of NAME this tool made: the token in the name matches the marker file inside."""
    found = []
    for path in parent.glob(f".{glob.escape(name)}.*.partial"):
        token = path.name[len(name) + 2 : -len(".partial")]
        marker = path / MARKER
        if path.is_symlink() or not path.is_dir() or marker.is_symlink() or not marker.is_file():
            continue
        try:
            if marker.read_text().strip() == token:
                found.append(path)
        except (OSError, UnicodeDecodeError):
            continue
    return found


def recover(parent: Path, name: str) -> None:
    """Finish what a killed run left: the old folder back at NAME if NAME is absent; stale containers removed."""
    target = parent / name
    now = time.time()
    for container in _marked_containers(parent, name):
        previous = container / PREVIOUS
        if not os.path.lexists(target) and previous.is_dir() and not previous.is_symlink():
            os.rename(previous, target)  # killed between the fallback's two renames: put the old folder back
        try:
            stale = now - container.stat().st_mtime > STALE_AFTER_S
        except OSError:
            continue
        if stale and not os.path.lexists(previous):
            shutil.rmtree(container, ignore_errors=True)


def discard(staging: Path) -> None:
    """Remove a staging folder and its marked container (whatever a failed run left in them).

    A container still holding the earlier folder (``previous``: a fallback swap whose undo failed too) keeps
    it: only the new folder goes, and the next ``staging_folder`` of that name puts the old one back.
    """
    container = staging.parent
    if staging.name == NEW and (container / MARKER).is_file():
        if os.path.lexists(container / PREVIOUS):
            shutil.rmtree(staging, ignore_errors=True)
        else:
            shutil.rmtree(container, ignore_errors=True)
    else:
        shutil.rmtree(staging, ignore_errors=True)


def current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def move_into_place(staging: Path, target: Path) -> None:
    """Swap the finished ``staging`` folder in at ``target``; the earlier folder goes only afterwards.

    ``target`` is never absent once it existed: on Linux the two folders are exchanged in one
    step (``renameat2(RENAME_EXCHANGE)``); elsewhere the old folder is renamed into the marked
    container, the new one into place, and a run killed between the two renames is repaired
    by the next ``staging_folder`` of that name (``recover``). The container goes last.
    """
    container = staging.parent
    if not os.path.lexists(target):
        _rename(staging, target)
    elif not _exchange(staging, target):
        previous = container / PREVIOUS
        _rename(target, previous)
        try:
            _rename(staging, target)
        except BaseException:
            _rename(previous, target)
            raise
    if (container / MARKER).is_file():  # the new folder is in place: the old one (exchanged, or previous) goes
        shutil.rmtree(container, ignore_errors=True)
    else:
        shutil.rmtree(staging, ignore_errors=True)


_WHY = {  # errno -> (why a folder cannot be renamed, what to do), for a swap that failed
    errno.EXDEV: (
        "it is on another filesystem than its parent folder (a mount point?)",
        "unmount it, or export under another --name or --out",
    ),
    errno.EACCES: (
        "permission denied: the folder or its parent is not writable by you",
        "make both writable (chmod u+w), or export under another --name or --out",
    ),
    errno.EPERM: (
        "the operation is not permitted (an immutable folder, or a sticky parent folder owned by someone else)",
        "export under another --name or --out",
    ),
    errno.EBUSY: (
        "it is in use (a mount point, or a process's working folder)",
        "free it, or export under another --name or --out",
    ),
}


def swap_failure(error: OSError, staging: Path, target: Path) -> str:
    """One line for a ``move_into_place`` that raised ``error``: what could not be replaced, why, where the
    earlier folder is now, and what to do. Call it before ``discard(staging)``."""
    why, fix = _WHY.get(error.errno, (error.strerror or str(error), "check the folder, then export again"))
    previous = staging.parent / PREVIOUS
    if os.path.lexists(target):
        where = "the earlier folder is untouched"
    elif os.path.lexists(previous):
        where = f"the earlier folder is kept in {previous}, and the next export of this name puts it back"
    else:
        where = "there was no earlier folder"
    return f"could not replace {target} with the new export: {why}; {where} and the new export was not kept: {fix}"


def _rename(source: Path, destination: Path) -> None:
    os.rename(source, destination)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where the platform cannot."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False  # the kernel or the filesystem has no exchange: use the fallback
    raise OSError(code, os.strerror(code), str(second))


@functools.lru_cache(maxsize=1)
def _renameat2():
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function
