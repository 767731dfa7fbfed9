"""What an artifact folder can make the tool read: its own hash-checked files, and nothing else.

Hostile ONNX external data hidden in a subgraph, hard links to outside files, and hashing
whose memory does not grow with the file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from exporter import TritonConfig, VerifyConfig, verify, write_repository
from exporter.artifacts.integrity import hash_member, read_member, sha256_file
from exporter.errors import ManifestError

from ..helpers import restamp

pytestmark = pytest.mark.slow  # each test uses an exported folder

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


@pytest.mark.usefixtures("cwd_with_secret")
def test_the_hostile_model_really_reads_the_current_folder():
    """The control: handed these bytes, ONNX Runtime resolves the location against the current folder."""
    import onnxruntime as ort

    session = ort.InferenceSession(hostile_onnx("secret.bin").SerializeToString(), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"input": np.zeros((1, 28, 28), np.float32)})
    assert np.array_equal(out[0], SECRET)


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


def test_hashing_memory_does_not_grow_with_the_file(tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as handle:
        for _ in range(48):
            handle.write(os.urandom(1 << 20))
    tracemalloc.start()
    try:
        digest = hash_member(tmp_path, "big.bin")
        hashed_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        read_member(tmp_path, "big.bin")  # the control: reading the file whole is seen by this measure
        read_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert digest == sha256_file(big)
    assert hashed_peak < 4 << 20 and read_peak > 40 << 20
