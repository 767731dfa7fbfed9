"""A full disk or a file-size limit mid-export: one line naming the path and the free space, exit 1,
nothing left behind, and nothing blamed on an exporter."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest

from exporter import ExportConfig, export
from exporter.errors import DiskFullError


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir()) if out.exists() else []


@pytest.mark.slow  # each exports the seed model until the disk "fills"
@pytest.mark.parametrize("where", ["torchscript", "onnx", "manifest"])
def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, where):
    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out" / "x"))

    if where == "torchscript":  # torch's writer runs in a forked child: it fails there, on a disk with no room
        import shutil
        from collections import namedtuple

        import torch

        monkeypatch.setattr(torch.jit.ScriptModule, "save", full)
        monkeypatch.setattr("exporter.formats.forked_write.shutil.disk_usage", lambda _p: namedtuple("u", "free")(0))
        # the up-front check saw room (eager.footprint): the disk fills while torch writes
        monkeypatch.setattr("exporter.eager.footprint.free_disk", lambda _folder: 10**12)
        assert shutil.disk_usage  # the real one, for everyone else
    elif where == "onnx":
        import torch

        monkeypatch.setattr(torch.onnx, "export", full)  # inside torch.onnx.export, as on a real disk
    else:
        monkeypatch.setattr("exporter.artifacts.manifest.write_text_atomic", full)
    out = tmp_path / "out"
    with pytest.raises(DiskFullError) as raised:
        export("mlp", ExportConfig(out=out, device="cpu", verify=False))
    message = str(raised.value)
    assert "disk is full" in message and "free in" in message and str(out) in message
    assert "--onnx-exporter" not in message and "export failed" not in message
    assert _leftovers(out) == []  # no .partial, no half folder


@pytest.mark.slow
def test_an_export_past_a_file_size_limit_exits_1_with_one_line(tmp_path):
    out = tmp_path / "out"
    limit = 1 << 20  # the mlp's files are 2.7 MB each
    script = (
        "import resource, sys; "
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
        "from exporter.cli import main; sys.argv = ['exporter'] + sys.argv[1:]; main()"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, "export", "mlp", "--device", "cpu", "--out", str(out)],
        capture_output=True,
        text=True,
    )  # main() ignores SIGXFSZ itself, so the write fails with EFBIG instead of killing the process
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1, run.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: the file-size limit"), lines
    assert "free in" in lines[0] and "Traceback" not in run.stderr and "legacy" not in run.stderr
    assert _leftovers(out) == []
