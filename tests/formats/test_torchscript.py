"""TorchScript (formats/torchscript.py): ``torch.jit.trace`` then save, hashed as written; what tracing
warns about is kept, and a model tracing cannot take fails the export in one line."""

from __future__ import annotations

import errno
import hashlib

import pytest
import torch
from torch import nn

from exporter.errors import ExportFailedError
from exporter.formats import ExportSpec, forked_write, torchscript

SPEC = ExportSpec(input_names=("x",), output_names=("logits",), dynamic=({0: "batch"},))


class _Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 3)

    def forward(self, x):  # (B, 6) -> (B, 3)
        return self.fc(x)


class _Branches(nn.Module):
    def forward(self, x):  # (B, 6): tracing keeps only the branch the example takes
        if x.sum() > 0:
            return x * 2
        return -x


class _ReturnsANumber(nn.Module):
    def forward(self, x):
        return int(x.shape[0])


def _export(model: nn.Module, path, example: torch.Tensor | None = None) -> dict:
    return torchscript.export(model, (torch.rand(2, 6) if example is None else example,), path, SPEC)


# --- the format's export ------------------------------------------------------------------------


def test_torchscript_is_traced_saved_and_hashed_as_written(tmp_path):
    torch.manual_seed(0)
    model = _Small().eval()
    path = tmp_path / "model.pt"
    details = _export(model, path)
    assert details == {
        "method": "torch.jit.trace",
        "warnings": [],
        "written": {"model.pt": hashlib.sha256(path.read_bytes()).hexdigest()},
    }
    loaded = torch.jit.load(str(path))
    for batch in (1, 7):  # the trace holds for other batch sizes
        x = torch.rand(batch, 6)
        torch.testing.assert_close(loaded(x), model(x))


def test_a_branch_frozen_by_tracing_is_kept_as_a_tracer_warning(tmp_path):
    details = _export(_Branches(), tmp_path / "model.pt", example=torch.ones(2, 6))
    assert len(details["warnings"]) == 1
    assert details["warnings"][0].startswith("TracerWarning: Converting a tensor to a Python boolean")
    frozen = torch.jit.load(str(tmp_path / "model.pt"))
    x = -torch.ones(1, 6)  # the other branch's input: the file still doubles it, the warning's point
    torch.testing.assert_close(frozen(x), x * 2)
    assert not torch.equal(frozen(x), _Branches()(x))


def test_a_forward_tracing_cannot_take_fails_the_export_in_one_line(tmp_path):
    with pytest.raises(ExportFailedError) as caught:
        _export(_ReturnsANumber(), tmp_path / "model.pt")
    message = str(caught.value)
    assert message.startswith("TorchScript tracing failed: ") and "\n" not in message
    assert message.endswith("or leave TorchScript out with --format onnx")
    assert not (tmp_path / "model.pt").exists()


def test_a_save_that_fails_is_an_export_failure_but_a_full_disk_is_raised_as_it_is(tmp_path, monkeypatch):
    def broken(_traced, _path):
        raise RuntimeError("serializer exploded\nmore detail")

    monkeypatch.setattr(torchscript, "_save", broken)
    with pytest.raises(ExportFailedError, match=r"^TorchScript could not be saved: serializer exploded$"):
        _export(_Small(), tmp_path / "model.pt")

    def full(_traced, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(torchscript, "_save", full)
    with pytest.raises(OSError) as caught:  # export() turns it into DiskFullError, naming the free space
        _export(_Small(), tmp_path / "model.pt")
    assert caught.value.errno == errno.ENOSPC and not isinstance(caught.value, ExportFailedError)


# --- where it is written ------------------------------------------------------------------------


@pytest.mark.skipif(not forked_write.available(), reason="needs os.fork (POSIX)")
def test_torchscript_is_saved_in_process_once_cuda_is_initialised(tmp_path, monkeypatch):
    traced = torch.jit.trace(torch.nn.Linear(4, 2).eval(), torch.rand(1, 4))
    forked = []
    monkeypatch.setattr(forked_write, "write", lambda path, save: (forked.append(path), save(str(path))))
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)  # a CUDA context cannot cross fork
    digest = torchscript._save(traced, tmp_path / "model.pt")
    assert not forked and digest == hashlib.sha256((tmp_path / "model.pt").read_bytes()).hexdigest()
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    torchscript._save(traced, tmp_path / "again.pt")
    assert len(forked) == 1  # without CUDA: the forked child writes it
