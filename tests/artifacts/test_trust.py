"""Trust: TorchScript and pt2 (code) load only from folders signed with this machine's key, or with --trust-artifacts.

Each hostile folder is built here: a TorchScript whose forward creates a sentinel file, a pt2
whose pickled sample inputs would run a command. Untrusted, neither payload runs and the
verification fails with one line naming --trust-artifacts; trusted, the payload does run
(which proves the hostile file is real, and why the gate exists).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch

from exporter import ExportConfig, VerifyConfig, export, predict, verify
from exporter.artifacts.manifest import Manifest, sign_folder
from exporter.artifacts.trust import KEY_FILE, check, config_dir, key_id, load_key
from exporter.errors import ExporterError, UsageError

from ..helpers import restamp

pytestmark = pytest.mark.slow  # each test uses an exported folder

HOSTILE_TS = textwrap.dedent(
    """
    import torch
    from torch import nn


    class Payload(nn.Module):
        def __init__(self, sentinel: str):
            super().__init__()
            self.sentinel = sentinel
            self.weight = nn.Parameter(torch.zeros(10, 784))

        def forward(self, x):
            mapped = torch.from_file(self.sentinel, shared=True, size=4, dtype=torch.uint8)  # creates the file
            return x.flatten(1) @ self.weight.t() + mapped[:1].float() * 0
    """
)


def plant_torchscript(folder: Path, sentinel: Path, tmp_path: Path) -> None:
    """Replace model.pt with a TorchScript program that creates ``sentinel`` when it runs; re-stamp the hashes."""
    (tmp_path / "hostile_ts.py").write_text(HOSTILE_TS)
    sys.path.insert(0, str(tmp_path))
    try:
        from hostile_ts import Payload
    finally:
        sys.path.remove(str(tmp_path))
    torch.jit.save(torch.jit.script(Payload(str(sentinel))), str(folder / "model.pt"))
    restamp(folder)


def resign_with_other_key(folder: Path) -> None:
    from exporter.artifacts.trust import sign

    data = json.loads((folder / "manifest.json").read_text())
    data["signature"] = sign(data, os.urandom(32))
    (folder / "manifest.json").write_text(json.dumps(data))


def test_the_first_export_makes_a_private_key_and_signs_the_folder(mlp_export):
    path = config_dir() / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    data = json.loads((mlp_export.path / "manifest.json").read_text())
    assert data["signature"]["key_id"] == key_id(load_key())
    assert check(data).trusted
    data["model"]["seed"] = 1  # any change to the binding part breaks it
    assert not check(data).trusted
    data["model"]["seed"] = 0
    data["verification"] = {"passed": True}  # the recorded verification is not bound: verify rewrites it
    assert check(data).trusted


def test_a_key_readable_by_others_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPORTER_CONFIG_DIR", str(tmp_path / "cfg"))
    key = load_key(create=True)
    assert load_key() == key
    (tmp_path / "cfg" / KEY_FILE).chmod(0o644)
    with pytest.raises(UsageError, match="chmod 600"):
        load_key()


def _key_at(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cfg"
    monkeypatch.setenv("EXPORTER_CONFIG_DIR", str(folder))
    return folder


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_fifo_or_a_folder_at_the_keys_path_is_one_line_and_hangs_no_command(tmp_path, monkeypatch, kind):
    folder = _key_at(tmp_path, monkeypatch)
    folder.mkdir(mode=0o700)
    (os.mkfifo if kind == "fifo" else os.mkdir)(folder / KEY_FILE)
    for create in (False, True):
        with pytest.raises(UsageError, match=f"is a {kind.replace('fifo', 'FIFO')}, not a regular file: remove it") as caught:
            load_key(create=create)
        assert str(folder / KEY_FILE) in str(caught.value) and "\n" not in str(caught.value)
    # every command opens the key: a FIFO there must not hang one (a timeout, not a hang, fails this test)
    run = subprocess.run(
        [sys.executable, "-m", "exporter", "export", "mlp", "--out", str(tmp_path / "out"), "--no-verify"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env={**os.environ, "EXPORTER_CONFIG_DIR": str(folder)},
    )  # fmt: skip
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "not a regular file" in run.stderr
    assert not (tmp_path / "out" / "mlp").exists()


def test_a_key_owned_by_another_user_is_refused(tmp_path, monkeypatch):
    _key_at(tmp_path, monkeypatch)
    load_key(create=True)
    real = os.getuid()
    monkeypatch.setattr(os, "geteuid", lambda: real + 4242)  # as though the files were another user's
    with pytest.raises(UsageError, match="owned by another user .*EXPORTER_CONFIG_DIR"):
        load_key()


@pytest.mark.parametrize("mode", [0o770, 0o777, 0o722])
def test_a_key_in_a_folder_others_can_write_is_refused_and_its_twin_loads(tmp_path, monkeypatch, mode):
    folder = _key_at(tmp_path, monkeypatch)
    key = load_key(create=True)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and load_key() == key  # the twin: a private folder
    folder.chmod(mode)
    with pytest.raises(UsageError, match=f"folder {folder} is writable by others.*chmod 700"):
        load_key()
    folder.chmod(0o700)
    assert load_key() == key


def test_a_new_key_is_not_made_in_a_folder_others_can_write(tmp_path, monkeypatch):
    folder = _key_at(tmp_path, monkeypatch)
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    with pytest.raises(UsageError, match="writable by others"):
        load_key(create=True)
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("how", ["unsigned", "other-key", "edited"])
def test_an_untrusted_torchscript_never_runs_and_verification_fails(mlp_dir, tmp_path, how):
    sentinel = tmp_path / "sentinel"
    plant_torchscript(mlp_dir, sentinel, tmp_path)  # re-stamped: the manifest changed, its signature no longer checks
    data = json.loads((mlp_dir / "manifest.json").read_text())
    if how == "unsigned":
        del data["signature"]
        (mlp_dir / "manifest.json").write_text(json.dumps(data))
    elif how == "other-key":
        resign_with_other_key(mlp_dir)
    report = verify(mlp_dir, VerifyConfig(samples=20), write=False)
    assert not sentinel.exists()
    assert not report.passed and "PASSED" not in report.render()
    assert any("--trust-artifacts" in line for line in report.failures)
    assert report.failures[0].startswith("torchscript not loaded")
    onnx = next(r for r in report.runtimes if r.runtime == "onnxruntime")
    assert onnx.passed  # data, not code: still run and compared


def test_the_same_torchscript_runs_once_trusted(mlp_dir, tmp_path):
    sentinel = tmp_path / "sentinel"
    plant_torchscript(mlp_dir, sentinel, tmp_path)
    verify(mlp_dir, VerifyConfig(samples=20, trust=True), write=False)
    assert sentinel.exists()  # the payload is real: this is what the gate keeps from running


def test_the_cli_fails_closed_with_one_line_naming_the_option(mlp_dir, tmp_path):
    sentinel = tmp_path / "sentinel"
    plant_torchscript(mlp_dir, sentinel, tmp_path)
    run = subprocess.run(
        [sys.executable, "-m", "exporter", "verify", str(mlp_dir), "--samples", "20", "--no-record"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1 and not sentinel.exists()
    assert "FAILED" in run.stdout and "PASSED" not in run.stdout
    assert "--trust-artifacts" in run.stdout and "Traceback" not in run.stderr


def test_predict_and_bench_skip_untrusted_code_and_say_so(mlp_dir, tmp_path):
    from exporter.benchmarking import BenchConfig, bench

    sentinel = tmp_path / "sentinel"
    plant_torchscript(mlp_dir, sentinel, tmp_path)
    result = predict(mlp_dir, "random")
    assert set(result.classes) == {"eager", "onnxruntime"}
    assert any("--trust-artifacts" in note for note in result.notes)
    with pytest.raises(UsageError, match="--trust-artifacts"):
        predict(mlp_dir, "random", "torchscript")
    config = BenchConfig(
        batch_sizes=(1,), warmup=0, warmup_s=0, repeats=1, min_time_s=0, peak_runs=1, accuracy_samples=2
    )
    report = bench(mlp_dir, config)
    assert not sentinel.exists()
    assert "--trust-artifacts" in report.result("torchscript", 1).error
    assert report.result("onnxruntime", 1).error is None


def test_exporter_trust_signs_a_folder_after_its_hashes_check(mlp_dir):
    resign_with_other_key(mlp_dir)
    assert Manifest.load(mlp_dir).refusal(False)
    run = subprocess.run([sys.executable, "-m", "exporter", "trust", str(mlp_dir)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert Manifest.load(mlp_dir).refusal(False) is None
    assert verify(mlp_dir, VerifyConfig(samples=20), write=False).passed
    (mlp_dir / "model.onnx").write_bytes(b"changed")  # a file that no longer matches is never signed
    with pytest.raises(ExporterError, match="refusing to sign"):
        sign_folder(mlp_dir)


def _evil_pickle(sentinel: Path) -> bytes:
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {sentinel}",))

    buffer = io.BytesIO()
    torch.save(Evil(), buffer)
    return buffer.getvalue()


@pytest.mark.slow
def test_an_untrusted_pt2_never_reaches_torch_export_load(tmp_path):
    result = export("mlp", ExportConfig(out=tmp_path / "out", device="cpu", formats=("pt2", "onnx"), verify=False))
    folder, sentinel = result.path, tmp_path / "sentinel"
    archive = folder / "model.pt2"
    with zipfile.ZipFile(archive) as source:
        members = [(info, source.read(info)) for info in source.infolist()]
    with zipfile.ZipFile(archive, "w") as target:
        for info, data in members:
            target.writestr(info, _evil_pickle(sentinel) if info.filename.endswith("sample_inputs/model.pt") else data)
    restamp(folder)  # what an attacker who edits the folder does; the signature no longer checks
    report = verify(folder, VerifyConfig(samples=20), write=False)
    assert not sentinel.exists() and not report.passed
    assert any("pt2 not loaded" in line and "--trust-artifacts" in line for line in report.failures)
    # torch.export.load unpickles with weights_only=False: trusted, the payload runs. Hence the gate.
    verify(folder, VerifyConfig(samples=20, trust=True), write=False)
    assert sentinel.exists()


def test_copying_a_folder_keeps_it_trusted_but_another_machine_does_not(mlp_dir, tmp_path, monkeypatch):
    copy = tmp_path / "copy"
    shutil.copytree(mlp_dir, copy)
    assert Manifest.load(copy).refusal(False) is None
    monkeypatch.setenv("EXPORTER_CONFIG_DIR", str(tmp_path / "elsewhere"))
    assert "no signing key" in Manifest.load(copy).refusal(False)
