"""Let a C++ writer that cannot survive a write error write a file anyway: in a forked child.

``torch.jit.save`` to a path is fast, but its C++ zip writer aborts the whole process when a
write fails (a full disk, a file-size limit): the error is thrown from a destructor. Saving to a
file object instead makes torch build the whole file in memory first (``save_to_buffer``): about
ten times slower than to a path at 1 GB, and the weights a second time. So a forked child (which
shares the model's memory, copy-on-write, and only reads it) saves to the path; if it dies, the
parent finds out why from the disk and raises the OSError a Python write would have raised.
The child's own output (torch's abort message) never reaches the terminal.
"""

from __future__ import annotations

import errno
import faulthandler
import os
import resource
import shutil
from collections.abc import Callable
from pathlib import Path


def available() -> bool:
    return hasattr(os, "fork") and hasattr(os, "waitpid")


def write(path: Path, save: Callable[[str], None]) -> None:
    """Run ``save(str(path))`` in a forked child; raise an OSError (ENOSPC, EFBIG, or EIO) if it failed."""
    pid = os.fork()
    if pid == 0:  # the child: write, and leave without running the parent's cleanup
        code = 1
        try:
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # an abort leaves no core file ...
            faulthandler.disable()  # ... and no Python traceback on the stderr faulthandler kept
            quiet = os.open(os.devnull, os.O_WRONLY)
            os.dup2(quiet, 1)
            os.dup2(quiet, 2)
            save(str(path))
            code = 0
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 0:
        return
    raise _why(path)


def _why(path: Path) -> OSError:
    """The likely cause of a failed write of ``path``: a file-size limit, a full disk, or unknown (EIO)."""
    size = path.stat().st_size if path.exists() else 0
    limit, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if limit != resource.RLIM_INFINITY and size >= limit - (1 << 20):
        return OSError(errno.EFBIG, os.strerror(errno.EFBIG), str(path))
    if shutil.disk_usage(path.parent).free < (16 << 20):
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return OSError(errno.EIO, "torch's writer stopped before the file was complete", str(path))
