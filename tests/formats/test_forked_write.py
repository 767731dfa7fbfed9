"""forked_write: torch's C++ writer runs in a forked child, so its abort on a failed write never takes
the exporter down; the parent names the cause (a file-size limit, a full disk) as an OSError."""

from __future__ import annotations

import errno
import os
from collections import namedtuple
from pathlib import Path

import pytest

from exporter.formats import forked_write

pytestmark = pytest.mark.skipif(not forked_write.available(), reason="needs os.fork (POSIX)")


def test_the_child_writes_the_file(tmp_path):
    target = tmp_path / "model.pt"
    forked_write.write(target, lambda name: Path(name).write_bytes(b"weights"))
    assert target.read_bytes() == b"weights"


def test_a_child_that_raises_is_an_os_error_not_a_crash(tmp_path):
    def fails(_name):
        raise RuntimeError("writer failed")

    with pytest.raises(OSError) as raised:
        forked_write.write(tmp_path / "model.pt", fails)
    assert raised.value.errno == errno.EIO and raised.value.filename == str(tmp_path / "model.pt")


def test_a_child_that_aborts_says_nothing_on_the_terminal(tmp_path, capfd):
    def aborts(name):
        Path(name).write_bytes(b"half")
        os.write(2, b"terminate called after throwing an instance of 'c10::Error'\n")
        os.abort()  # what torch's zip writer does when a write fails

    with pytest.raises(OSError):
        forked_write.write(tmp_path / "model.pt", aborts)
    captured = capfd.readouterr()
    assert "terminate" not in captured.err and "c10" not in captured.out + captured.err
    assert not list(tmp_path.glob("core*"))  # no core file left behind


def test_a_full_disk_is_named_as_one(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(forked_write.shutil, "disk_usage", lambda _path: usage(100, 100, 0))

    def fails(_name):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as raised:
        forked_write.write(tmp_path / "model.pt", fails)
    assert raised.value.errno == errno.ENOSPC
