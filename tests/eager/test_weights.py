"""Checkpoints: every common shape round-trips through export and verify; hostile files never run."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from exporter import ExportConfig, VerifyConfig, export, verify
from exporter.eager.weights import read_state_dict
from exporter.errors import CheckpointError
from exporter.models.mlp import NeuralNetwork


@pytest.fixture(scope="module")
def trained():
    """A state_dict unlike the seed's initialisation, as a trained model's would be."""
    torch.manual_seed(123)
    return {k: v.clone() for k, v in NeuralNetwork().state_dict().items()}


def _save(kind: str, state: dict, path):
    if kind == "state_dict":
        torch.save(state, path)
    elif kind == "dataparallel":
        torch.save({f"module.{k}": v for k, v in state.items()}, path)
    elif kind == "compiled":
        torch.save({f"_orig_mod.{k}": v for k, v in state.items()}, path)
    elif kind == "training-dict":
        torch.save({"epoch": 3, "model_state_dict": state, "optimizer": {"lr": 0.1}}, path)
    elif kind == "safetensors":
        save_file(state, str(path))


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind, suffix",
    [
        ("state_dict", ".pt"),
        ("dataparallel", ".pth"),
        ("compiled", ".pt"),
        ("training-dict", ".pt"),
        ("safetensors", ".safetensors"),
    ],
)
def test_checkpoint_forms_round_trip_through_export_and_verify(tmp_path, trained, kind, suffix):
    path = tmp_path / f"weights{suffix}"
    _save(kind, trained, path)
    result = export("mlp", ExportConfig(out=tmp_path / "out", device="cpu", weights=path, formats=("onnx",)))
    assert result.passed, result.report.failures
    record = result.manifest.model["weights"]
    assert record["original"]["sha256"] and record["path"] == "weights.pt"
    assert result.manifest.model["state_sha256"] != _seeded_state_sha256()
    report = verify(result.path, VerifyConfig(samples=64, weights=path))
    assert report.passed, report.failures


def _seeded_state_sha256() -> str:
    from exporter.eager.reference import state_sha256

    torch.manual_seed(0)
    return state_sha256(NeuralNetwork())


def test_prefixes_and_wrappers_are_reported(tmp_path, trained):
    _save("training-dict", {f"module.{k}": v for k, v in trained.items()}, tmp_path / "w.pt")
    _, info = read_state_dict(tmp_path / "w.pt")
    assert any("model_state_dict" in n for n in info["notes"]) and any("module." in n for n in info["notes"])


@pytest.mark.slow
def test_verify_refuses_a_weights_file_that_no_longer_matches(tmp_path, trained):
    path = tmp_path / "w.pt"
    _save("state_dict", trained, path)
    result = export("mlp", ExportConfig(out=tmp_path / "out", device="cpu", weights=path, verify=False))
    trained["linear_relu_stack.0.bias"][0] += 1
    _save("state_dict", trained, path)
    with pytest.raises(CheckpointError, match="does not match the file used at export"):
        verify(result.path, VerifyConfig(weights=path))


@pytest.mark.slow
def test_a_tampered_weights_copy_in_the_folder_is_never_loaded(tmp_path, trained):
    path = tmp_path / "w.pt"
    _save("state_dict", trained, path)
    result = export("mlp", ExportConfig(out=tmp_path / "out", device="cpu", weights=path, verify=False))
    _save("state_dict", {k: v + 1 for k, v in trained.items()}, result.path / "weights.pt")
    (result.path / "model.onnx").write_bytes(b"tampered too")
    report = verify(result.path)
    assert not report.passed
    failures = "\n".join(report.failures)
    assert "the eager reference cannot be rebuilt: weights.pt" in failures and "does not match its sha256" in failures
    assert "model.onnx: sha256" in failures  # every mismatch is listed, not only the first
    errors = {r.runtime: r.error for r in report.runtimes}  # each runtime listed, none run
    assert errors == {"torchscript": "not run: no eager reference", "onnxruntime": "not run: no eager reference"}


def test_strict_loading_lists_every_missing_unexpected_and_misshapen_key(tmp_path, trained):
    state = dict(trained)
    del state["linear_relu_stack.4.bias"]
    state["extra.weight"] = torch.zeros(2)
    state["linear_relu_stack.0.bias"] = torch.zeros(3)
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(CheckpointError) as caught:
        export("mlp", ExportConfig(out=tmp_path / "out", device="cpu", weights=tmp_path / "w.pt"))
    message = str(caught.value)
    assert "missing keys: linear_relu_stack.4.bias" in message and "unexpected keys: extra.weight" in message
    assert "linear_relu_stack.0.bias (3,) vs model (512,)" in message
    assert not (tmp_path / "out" / "mlp").exists()


class _Exploit:
    def __init__(self, sentinel):
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


def _hostile(kind: str, tmp_path):
    path = tmp_path / "weights.pt"
    sentinel = tmp_path / "pwned"
    if kind == "pickle-exploit-zip":
        torch.save({"weight": _Exploit(sentinel)}, path)
    elif kind == "pickle-exploit-raw":
        path.write_bytes(pickle.dumps(_Exploit(sentinel)))
    elif kind == "torchscript-archive":
        torch.jit.trace(NeuralNetwork().eval(), torch.rand(1, 28, 28)).save(str(path))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        torch.save(NeuralNetwork().state_dict(), path)
        path.write_bytes(path.read_bytes()[:5000])
    elif kind == "random-bytes":
        path.write_bytes(os.urandom(4096))
    elif kind == "bad-safetensors":
        path = tmp_path / "weights.safetensors"
        path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    elif kind == "missing":
        path = tmp_path / "nowhere.pt"
    return path, sentinel


HOSTILE = {
    "pickle-exploit-zip": "(posix.system), which only full unpickling could build",
    "pickle-exploit-raw": "full unpickling could run code, so it is never tried",
    "torchscript-archive": "TorchScript archive",
    "empty": "is empty",
    "truncated": "not a readable PyTorch checkpoint",
    "random-bytes": "not a",
    "bad-safetensors": "not a valid safetensors file",
    "missing": "does not exist",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_or_broken_weights_are_one_line_exit_2_and_run_nothing(tmp_path, kind):
    path, sentinel = _hostile(kind, tmp_path)
    args = ["export", "mlp", "--device", "cpu", "--out", str(tmp_path / "out"), "--weights", str(path)]
    result = subprocess.run([sys.executable, "-m", "exporter", *args], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert HOSTILE[kind] in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not sentinel.exists(), "the pickle's code ran"
    assert not (tmp_path / "out" / "mlp").exists()


@pytest.mark.parametrize("kind, suffix, mapped", [("safetensors", ".safetensors", True), ("state_dict", ".pt", False)])
def test_a_safetensors_file_is_hashed_as_a_stream_and_memory_mapped_never_read_whole(
    tmp_path, trained, monkeypatch, kind, suffix, mapped
):
    """The twin: a torch.save checkpoint is still read whole (its pickle is parsed from the checked bytes)."""
    import hashlib
    from pathlib import Path

    path = tmp_path / f"weights{suffix}"
    _save(kind, trained, path)
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    reads, real = [], Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self) or real(self))
    state, info = read_state_dict(path)
    assert info["sha256"] == expected and (reads == []) is mapped
    assert all(torch.equal(state[k], v) for k, v in trained.items())
