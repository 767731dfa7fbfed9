"""Opening an artifact of a folder (runners/open.py): trust first, then a private hash-checked copy, then the load.

The folders are written here, in a few milliseconds: the small module's artifacts (``helpers``) and a
manifest that binds them by sha256, signed with this test session's key (conftest points the key at a
private folder) unless a test wants it unsigned or edited. Nothing is exported.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from exporter.artifacts import trust
from exporter.artifacts.manifest import ArtifactEntry, Manifest
from exporter.errors import (
    ArtifactFileError,
    ArtifactLoadError,
    ExporterError,
    ManifestError,
    UntrustedArtifactError,
    UsageError,
)
from exporter.formats import FORMATS, TABLE
from exporter.runners import open as opening
from exporter.runners import open_artifact, runner_for
from exporter.runners.onnxruntime import OnnxRuntimeRunner
from exporter.runners.torch import Pt2Runner, TorchScriptRunner

from ..helpers import restamp
from .helpers import CPU, OUTPUTS, SPECS, batch_feed, checked, interface_of, onnx_proto

RUNS_CODE = [f.name for f in TABLE if f.runs_code]  # torchscript, pt2


def _write_folder(root: Path, files: dict[str, bytes], *, signed: bool = True, side: dict | None = None) -> Path:
    """An artifact folder holding ``files`` (format -> bytes) and a manifest binding them.

    ``side``: more files (path -> bytes) bound as ONNX external data of model.onnx.
    """
    folder = root / "artifact"
    folder.mkdir()
    entries = []
    for fmt, data in files.items():
        (folder / FORMATS[fmt].file).write_bytes(data)
        entries.append(ArtifactEntry.for_file(folder, FORMATS[fmt].file, fmt))
    for path, data in (side or {}).items():
        (folder / path).write_bytes(data)
        entries.append(ArtifactEntry.for_file(folder, path, "onnx-data", of="model.onnx"))
    manifest = Manifest(
        model={"name": "two_layer", "source": {"kind": "registry", "registry": "mlp"}, "seed": 0},
        inputs=[SPECS[0].to_manifest()],
        outputs=[{"name": "logits", "shape": ["batch", 3], "dtype": "float32"}],
        device="cpu",
        artifacts=entries,
        versions={},
    )
    if signed:
        manifest.sign(trust.load_key(create=True))
    manifest.write(folder)
    return folder


def _edit_manifest(folder: Path) -> None:
    """Change one bound field after signing, as someone editing the folder would."""
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    data["model"]["name"] = "edited"
    path.write_text(json.dumps(data))


def _open(folder: Path, fmt: str, **options):
    manifest = Manifest.load(folder)
    return open_artifact(folder, manifest, manifest.artifact(fmt), CPU, **options)


def _expected(model: torch.nn.Module, feed: dict[str, np.ndarray]) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(feed["input"])).numpy()


@pytest.fixture
def loads(monkeypatch) -> list[str]:
    """Every path torch.jit.load and torch.export.load are asked to load (each still loads it)."""
    seen: list[str] = []
    real_jit, real_export = torch.jit.load, torch.export.load

    def jit_load(path, *args, **kwargs):
        seen.append(str(path))
        return real_jit(path, *args, **kwargs)

    def export_load(path, *args, **kwargs):
        seen.append(str(path))
        return real_export(path, *args, **kwargs)

    monkeypatch.setattr(torch.jit, "load", jit_load)
    monkeypatch.setattr(torch.export, "load", export_load)
    return seen


@pytest.fixture
def scratch(monkeypatch, tmp_path) -> Path:
    """The temporary folder open_artifact makes its private copies in, so a test can see what is left."""
    where = tmp_path / "tmp"
    where.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(where))
    return where


# --- trust --------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["unsigned", "edited"])
@pytest.mark.parametrize("fmt", RUNS_CODE)
def test_code_of_an_untrusted_folder_is_refused_before_any_byte_is_read(
    tmp_path, artifacts, loads, monkeypatch, fmt, how
):
    folder = _write_folder(tmp_path, {fmt: artifacts[fmt]}, signed=how == "edited")
    if how == "edited":
        _edit_manifest(folder)
    copied = []
    monkeypatch.setattr(opening, "private_copies", lambda *args, **kwargs: copied.append((args, kwargs)))
    with pytest.raises(UntrustedArtifactError) as caught, _open(folder, fmt):
        pass
    reason = {"unsigned": "its manifest carries no signature", "edited": "its manifest was changed after it was signed"}
    assert caught.value.reason == f"the folder is not trusted: {reason[how]}"
    assert str(caught.value).startswith(f"refusing to load {FORMATS[fmt].file}: ")
    assert "--trust-artifacts" in str(caught.value) and caught.value.exit_code == 2
    assert loads == [] and copied == []  # refused before the file was copied, let alone loaded


@pytest.mark.parametrize("how", ["signed", "trust"])
@pytest.mark.parametrize("fmt", RUNS_CODE)
def test_code_of_a_signed_folder_or_one_the_user_trusts_loads_once_and_runs(
    tmp_path, model, artifacts, loads, fmt, how
):
    folder = _write_folder(tmp_path, {fmt: artifacts[fmt]}, signed=how == "signed")
    feed = batch_feed(3)
    with _open(folder, fmt, trust=how == "trust") as runner:
        got = runner.infer(feed)["logits"]
    assert len(loads) == 1 and runner.runtime == FORMATS[fmt].runtime
    np.testing.assert_allclose(got, _expected(model, feed), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_onnx_is_data_and_loads_from_any_folder_trusted_or_not(tmp_path, model, artifacts, signed):
    folder = _write_folder(tmp_path, {"onnx": artifacts["onnx"]}, signed=signed)
    _edit_manifest(folder)  # not even a valid signature is needed: an ONNX file carries no code
    feed = batch_feed(2)
    with _open(folder, "onnx") as runner:
        np.testing.assert_allclose(runner.infer(feed)["logits"], _expected(model, feed), rtol=1e-5, atol=1e-6)


# --- the private copy ---------------------------------------------------------------------------


def _loaded_path(runner, loads: list[str]) -> Path:
    return runner.path if isinstance(runner, OnnxRuntimeRunner) else Path(loads[-1])


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_the_runtime_loads_a_private_copy_that_is_removed_after_the_with_block(
    tmp_path, artifacts, loads, scratch, fmt
):
    folder = _write_folder(tmp_path, {fmt: artifacts[fmt]})
    before = sorted(p.name for p in folder.iterdir())
    with _open(folder, fmt) as runner:
        path = _loaded_path(runner, loads)
        assert folder.resolve() not in path.resolve().parents  # not a file of the artifact folder
        assert scratch in path.parents and path.read_bytes() == artifacts[fmt]  # a copy of the checked bytes
        assert sorted(p.name for p in path.parent.iterdir()) == [FORMATS[fmt].file]  # alone in its own folder
        runner.infer(batch_feed(1))
    assert not path.exists() and not path.parent.exists() and list(scratch.iterdir()) == []
    assert not runner.is_active
    assert sorted(p.name for p in folder.iterdir()) == before  # the folder itself is left as it was


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_staged_files_of_exports_own_verification_load_in_place(tmp_path, artifacts, loads, scratch, fmt):
    folder = _write_folder(tmp_path, {fmt: artifacts[fmt]}, signed=False)  # staged: no signature needed either
    with _open(folder, fmt, staged=True) as runner:
        path = _loaded_path(runner, loads)
        runner.infer(batch_feed(1))
    assert path == folder / FORMATS[fmt].file and path.exists()  # the staging file itself, kept
    assert list(scratch.iterdir()) == []  # and no copy was made


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_file_changed_since_the_manifest_hashed_it_is_refused_and_its_copy_removed(tmp_path, artifacts, scratch, fmt):
    folder = _write_folder(tmp_path, {fmt: artifacts[fmt]})
    path = folder / FORMATS[fmt].file
    changed = bytearray(path.read_bytes())
    changed[len(changed) // 2] ^= 0xFF
    path.write_bytes(bytes(changed))
    with pytest.raises(ExporterError) as caught, _open(folder, fmt, trust=True):
        pass
    assert str(caught.value) == (
        f"{path.name} does not match its sha256 in the manifest: refusing to load it; run `exporter verify {folder}`"
    )
    assert not isinstance(caught.value, UsageError) and caught.value.exit_code == 1
    assert list(scratch.iterdir()) == []  # neither the copy nor its private folder is left


def test_a_refusal_names_the_action_it_refuses(tmp_path, artifacts, scratch):
    folder = _write_folder(tmp_path, {"onnx": artifacts["onnx"]})
    (folder / "model.onnx").write_bytes(artifacts["onnx"] + b"\0")
    with pytest.raises(ExporterError, match="refusing to benchmark it"), _open(folder, "onnx", action="benchmark"):
        pass
    assert list(scratch.iterdir()) == []


def test_onnx_garbage_with_a_restamped_sha256_is_refused_as_malformed_before_any_runtime(tmp_path, artifacts, scratch):
    """ONNX is data: a file that is no model is the folder's fault, a usage error (exit 2), not a load failure."""
    folder = _write_folder(tmp_path, {"onnx": artifacts["onnx"]})
    (folder / "model.onnx").write_bytes(b"not a model at all\n" * 8)
    restamp(folder)
    with pytest.raises(ArtifactFileError, match="not an ONNX model onnx can read") as caught, _open(folder, "onnx"):
        pass
    assert "\n" not in str(caught.value) and caught.value.exit_code == 2
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize("fmt", ["torchscript", "pt2"])
def test_garbage_with_a_restamped_sha256_passes_the_hash_and_fails_to_load_in_one_line(
    tmp_path, artifacts, scratch, fmt
):
    folder = _write_folder(tmp_path, {fmt: artifacts[fmt]})
    (folder / FORMATS[fmt].file).write_bytes(b"not a model at all\n" * 8)
    restamp(folder)  # the manifest now binds the garbage (and its signature no longer checks: trust=True)
    with pytest.raises(ArtifactLoadError, match=r"^could not be loaded: ") as caught, _open(folder, fmt, trust=True):
        pass
    assert "\n" not in str(caught.value) and caught.value.exit_code == 1
    assert caught.value.__cause__ is not None  # the runtime's own error, chained
    assert list(scratch.iterdir()) == []


# --- ONNX external data -------------------------------------------------------------------------


def _external(model: torch.nn.Module, tmp_path: Path) -> tuple[bytes, bytes]:
    """The model's ONNX file with every weight in model.onnx.data: (graph bytes, data bytes)."""
    where = tmp_path / "made"
    where.mkdir()
    onnx.save_model(
        onnx_proto(model), str(where / "model.onnx"), save_as_external_data=True, location="model.onnx.data",
        size_threshold=0,
    )  # fmt: skip
    return (where / "model.onnx").read_bytes(), (where / "model.onnx.data").read_bytes()


def test_onnx_external_data_bound_by_the_manifest_is_copied_beside_the_graph_and_loads(tmp_path, model, scratch):
    graph, data = _external(model, tmp_path)
    folder = _write_folder(tmp_path, {"onnx": graph}, side={"model.onnx.data": data})
    feed = batch_feed(4)
    with _open(folder, "onnx") as runner:
        assert sorted(p.name for p in runner.path.parent.iterdir()) == ["model.onnx", "model.onnx.data"]
        got = runner.infer(feed)["logits"]
    np.testing.assert_allclose(got, _expected(model, feed), rtol=1e-5, atol=1e-6)
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize("location", ["../outside.data", "/etc/hostname", "sub/../model.onnx.data", "unbound.data"])
def test_onnx_external_data_pointing_anywhere_but_a_bound_file_is_refused(tmp_path, model, scratch, location):
    graph, data = _external(model, tmp_path)
    folder = _write_folder(tmp_path, {"onnx": graph}, side={"model.onnx.data": data})
    (tmp_path / "outside.data").write_bytes(data)  # the lure: the same bytes, outside the folder
    (folder / "unbound.data").write_bytes(data)  # in the folder, but bound by nothing
    proto = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save(proto, str(folder / "model.onnx"))
    restamp(folder)
    refused = "which is not a file of this artifact folder bound by its manifest: refusing it"
    with pytest.raises(ManifestError, match=refused) as caught, _open(folder, "onnx"):
        pass
    assert caught.value.exit_code == 2  # a usage error, raised as it is, not wrapped as a load failure
    assert list(scratch.iterdir()) == []


# --- runner_for ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", TABLE, ids=lambda f: f.name)
def test_runner_for_picks_the_runner_of_each_format_and_it_matches_eager(model, artifacts, spec):
    runner = runner_for(spec.name, checked(artifacts[spec.name]), {}, CPU, interface_of(SPECS, OUTPUTS))
    expected_class = {"onnxruntime": OnnxRuntimeRunner, "torch.jit": TorchScriptRunner, "torch.export": Pt2Runner}
    assert type(runner) is expected_class[spec.engine] and runner.runtime == spec.runtime
    assert not runner.is_active  # nothing is loaded before the block
    with runner:
        got = runner.infer(batch_feed(5))["logits"]
    with torch.no_grad():
        expected = model(torch.from_numpy(batch_feed(5)["input"])).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["tflite", "onnxruntime", "eager"])
def test_runner_for_takes_format_names_only(artifacts, name):
    with pytest.raises(KeyError):
        runner_for(name, checked(artifacts["onnx"]), {}, CPU, interface_of(SPECS, OUTPUTS))
