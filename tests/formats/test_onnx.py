"""ONNX (formats/onnx.py): the exporter choice, opsets, external data, and what an artifact folder's ONNX
file can make the tool read: its own hash-checked files, and nothing else.

Hostile ONNX external data hidden in a subgraph, hard links to outside files, and hashing
whose memory does not grow with the file. Every test but the opset check before export uses an
exported folder, so is slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from exporter import ExportConfig, TritonConfig, VerifyConfig, export, verify, write_repository
from exporter.errors import ManifestError, UsageError
from exporter.runners.onnxruntime import runtime_max_opset

from ..helpers import restamp

SECRET = np.arange(10, dtype=np.float32) + 1000.5  # bytes that must never reach any output


def hostile_onnx(location: str) -> onnx.ModelProto:
    """The mlp's interface; an If branch adds a constant whose external data is ``location``."""
    leak = TensorProto(name="leak", data_type=TensorProto.FLOAT, dims=[10], data_location=TensorProto.EXTERNAL)
    for key, value in (("location", location), ("offset", "0"), ("length", "40")):
        leak.external_data.add(key=key, value=value)
    branch = helper.make_graph(
        [helper.make_node("Constant", [], ["leaked"], value=leak)],
        "branch",
        [],
        [helper.make_tensor_value_info("leaked", TensorProto.FLOAT, [10])],
    )
    weight = helper.make_tensor("w", TensorProto.FLOAT, [784, 10], np.zeros(7840, np.float32))
    nodes = [
        helper.make_node("Constant", [], ["cond"], value=helper.make_tensor("c", TensorProto.BOOL, [], [True])),
        helper.make_node("If", ["cond"], ["bias"], then_branch=branch, else_branch=branch),
        helper.make_node("Flatten", ["input"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "w"], ["mm"]),
        helper.make_node("Add", ["mm", "bias"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "hostile",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.fixture
def cwd_with_secret(tmp_path, monkeypatch) -> Path:
    work = tmp_path / "cwd"
    work.mkdir()
    (work / "secret.bin").write_bytes(SECRET.tobytes())
    monkeypatch.chdir(work)
    return work


@pytest.mark.slow
@pytest.mark.usefixtures("cwd_with_secret")
def test_the_hostile_model_really_reads_the_current_folder():
    """The control: handed these bytes, ONNX Runtime resolves the location against the current folder."""
    import onnxruntime as ort

    session = ort.InferenceSession(hostile_onnx("secret.bin").SerializeToString(), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"input": np.zeros((1, 28, 28), np.float32)})
    assert np.array_equal(out[0], SECRET)


@pytest.mark.slow
@pytest.mark.usefixtures("cwd_with_secret")
def test_external_data_in_a_subgraph_is_refused_everywhere(mlp_dir, tmp_path):
    onnx.save(hostile_onnx("secret.bin"), str(mlp_dir / "model.onnx"))
    restamp(mlp_dir)
    with pytest.raises(ManifestError, match=r"secret\.bin"):
        verify(mlp_dir, VerifyConfig(samples=20, trust=True), write=False)
    with pytest.raises(ManifestError, match=r"secret\.bin"):
        write_repository(mlp_dir, tmp_path / "repo", TritonConfig(allow_unverified=True))
    assert not (tmp_path / "repo").exists()  # refused before anything was written
    secret_text = f"{SECRET[0]:.1f}"
    for args in (["predict", str(mlp_dir), "--input", "random", "--runtime", "onnx", "--json"],
                 ["verify", str(mlp_dir), "--save-outputs", str(tmp_path / "o.npz"), "--no-record"]):  # fmt: skip
        run = subprocess.run([sys.executable, "-m", "exporter", *args], capture_output=True, text=True)
        assert run.returncode == 2 and "secret.bin" in run.stderr, run.stderr
        assert secret_text not in run.stdout + run.stderr
    assert not (tmp_path / "o.npz").exists()


@pytest.mark.slow
def test_external_data_bound_by_the_manifest_still_loads(mlp_dir):
    """The positive twin: the same subgraph, its data in a file of the folder the manifest binds."""
    (mlp_dir / "leak.bin").write_bytes(np.zeros(10, np.float32).tobytes())
    onnx.save(hostile_onnx("leak.bin"), str(mlp_dir / "model.onnx"))
    data = json.loads((mlp_dir / "manifest.json").read_text())
    data["artifacts"].append({"format": "onnx-data", "path": "leak.bin", "sha256": "", "bytes": 0,
                              "details": {"of": "model.onnx"}})  # fmt: skip
    (mlp_dir / "manifest.json").write_text(json.dumps(data))
    restamp(mlp_dir)
    report = verify(mlp_dir, VerifyConfig(samples=20, trust=True), write=False)
    onnx_result = next(r for r in report.runtimes if r.runtime == "onnxruntime")
    assert onnx_result.error is None and onnx_result.batches  # loaded and run (its outputs differ: zero weights)


@pytest.mark.slow
def test_a_hard_link_to_an_outside_file_is_refused(mlp_dir, tmp_path):
    outside = tmp_path / "outside.onnx"
    outside.write_bytes((mlp_dir / "model.onnx").read_bytes())
    (mlp_dir / "model.onnx").unlink()
    os.link(outside, mlp_dir / "model.onnx")
    with pytest.raises(ManifestError, match="hard links"):
        verify(mlp_dir, VerifyConfig(samples=20), write=False)
    with pytest.raises(ManifestError, match="hard links"):
        write_repository(mlp_dir, tmp_path / "repo")
    outside.unlink()  # the same file with one name again: accepted
    assert verify(mlp_dir, VerifyConfig(samples=20), write=False).passed


# --- the exporter and its opset -----------------------------------------------------------------


@pytest.mark.slow
def test_the_legacy_onnx_exporter_is_recorded_and_verified(tmp_path):
    result = export("mlp", ExportConfig(out=tmp_path, device="cpu", formats=("onnx",), onnx_exporter="legacy"))
    assert result.passed and result.manifest.artifact("onnx").details["exporter"] == "legacy"


def test_an_opset_too_new_for_onnxruntime_is_refused_before_export(tmp_path):
    too_new = runtime_max_opset() + 1
    with pytest.raises(UsageError, match=f"--opset {too_new} is newer than onnxruntime"):
        export("mlp", ExportConfig(out=tmp_path, device="cpu", opset=too_new))
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_a_file_whose_opset_is_too_new_gives_a_clear_verification_failure(mlp_dir):
    path = mlp_dir / "model.onnx"
    proto = onnx.load(str(path))
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = runtime_max_opset() + 1
    onnx.save(proto, str(path))
    restamp(mlp_dir)
    report = verify(mlp_dir, VerifyConfig(samples=64))
    line = next(f for f in report.failures if f.startswith("onnxruntime:"))
    assert f"cannot load opset {runtime_max_opset() + 1}" in line and f"--opset {runtime_max_opset()}" in line


@pytest.mark.slow
def test_a_supported_opset_is_used(tmp_path):
    result = export("mlp", ExportConfig(out=tmp_path, device="cpu", formats=("onnx",), opset=18))
    assert result.passed and result.manifest.artifact("onnx").details["opset"] == 18


# --- external data ------------------------------------------------------------------------------


@pytest.fixture
def external(tmp_path):
    return export("mlp", ExportConfig(out=tmp_path, device="cpu", formats=("onnx",), external_data=True))


@pytest.mark.slow
def test_external_data_round_trip(external):
    assert external.passed, external.report.failures
    entries = {a.path: a.format for a in external.manifest.artifacts}
    assert entries == {"model.onnx": "onnx", "model.onnx.data": "onnx-data"}
    assert (external.path / "model.onnx").stat().st_size < 100_000  # the weights are beside it
    proto = onnx.load(str(external.path / "model.onnx"), load_external_data=False)
    locations = {e.value for t in proto.graph.initializer for e in t.external_data if e.key == "location"}
    assert locations == {"model.onnx.data"}
    assert verify(external.path, VerifyConfig(samples=64)).passed


@pytest.mark.slow
def test_a_changed_external_data_file_is_caught_by_its_hash(external):
    data = bytearray((external.path / "model.onnx.data").read_bytes())
    data[100] ^= 0xFF
    (external.path / "model.onnx.data").write_bytes(bytes(data))
    report = verify(external.path, VerifyConfig(samples=64))
    assert not report.passed and any("model.onnx.data: sha256" in f for f in report.failures)


@pytest.mark.slow
@pytest.mark.parametrize("location", ["../outside.data", "/etc/hostname", "sub/../../x.data"])
def test_external_data_pointing_outside_the_folder_is_refused(external, location):
    path = external.path / "model.onnx"
    proto = onnx.load(str(path), load_external_data=False)
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save(proto, str(path))
    restamp(external.path)
    with pytest.raises(ManifestError, match="not a file of this artifact folder"):
        verify(external.path, VerifyConfig(samples=64))
    cli = subprocess.run(
        [sys.executable, "-m", "exporter", "verify", str(external.path)], capture_output=True, text=True
    )
    assert cli.returncode == 2 and "refusing it" in cli.stderr and "Traceback" not in cli.stderr


@pytest.mark.slow
def test_external_data_behind_a_symlink_is_refused(external, tmp_path):
    target = tmp_path / "elsewhere.data"
    target.write_bytes((external.path / "model.onnx.data").read_bytes())
    (external.path / "model.onnx.data").unlink()
    (external.path / "model.onnx.data").symlink_to(target)
    with pytest.raises(ManifestError, match="symlink"):
        verify(external.path, VerifyConfig(samples=64))


@pytest.mark.slow
def test_external_data_is_loaded_from_a_private_copy_of_the_checked_files(external, monkeypatch):
    import onnxruntime

    seen = []
    real = onnxruntime.InferenceSession

    def spy(source, *args, **kwargs):
        if isinstance(source, str) and source.endswith("model.onnx"):
            seen.append((source, sorted(p.name for p in Path(source).parent.iterdir())))
        return real(source, *args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", spy)
    report = verify(external.path, VerifyConfig(samples=64))
    assert report.passed, report.failures
    model, beside = seen[0]
    assert not model.startswith(str(external.path))  # not the artifact folder itself
    assert beside == ["model.onnx", "model.onnx.data"]  # only the checked files, copied while hashed
    assert not Path(model).exists()  # removed with the session


@pytest.mark.slow
@pytest.mark.parametrize("forget", [True, False], ids=["forgotten", "kept-by-onnxscript"])
def test_the_exported_model_is_freed_once_export_returns(tmp_path, monkeypatch, forget):
    """onnxscript's rewrite rules keep their last graph, whose initializers are the model's own
    parameters: export lets it go (the twin, with that step skipped, shows the weights kept alive)."""
    import gc
    import weakref

    import torch

    from exporter.formats import ExportSpec
    from exporter.formats import onnx as onnx_format

    if not forget:
        monkeypatch.setattr(onnx_format, "forget_rewriter_graphs", lambda: None)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU()).eval()
    weight = weakref.ref(model[0].weight)
    spec = ExportSpec(input_names=("x",), output_names=("y",), dynamic=({0: "batch"},))
    onnx_format.export(model, (torch.rand(2, 3),), tmp_path / "model.onnx", spec)
    del model
    gc.collect()
    assert (weight() is None) is forget
    onnx_format.forget_rewriter_graphs()  # the next test starts clean either way
