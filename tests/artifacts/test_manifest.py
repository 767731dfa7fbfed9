"""manifest.json: the keys other tools read, and paths that cannot leave the folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exporter.artifacts.manifest import Manifest
from exporter.errors import ManifestError

GOLDEN = Path(__file__).parent / "golden" / "manifest_keys.json"


@pytest.mark.slow
def test_manifest_keeps_the_contract_keys(mlp_export):
    data = json.loads((mlp_export.path / "manifest.json").read_text())
    golden = json.loads(GOLDEN.read_text())
    assert sorted(data) == golden["top"]
    for key in ("model", "versions", "verification", "judging"):
        assert set(golden[key]) <= set(data[key]), key
    assert set(golden["input"]) <= set(data["inputs"][0])
    assert set(golden["artifact"]) <= set(data["artifacts"][0])
    assert set(golden["output"]) <= set(data["outputs"][0])
    assert data["model"]["parameters"] == 669_706 and data["schema"] == 2
    assert data["inputs"] == [
        {"name": "input", "shape": [1, 28, 28], "dtype": "float32", "range": None, "dynamic_axes": {"0": "batch"}}
    ]
    assert data["outputs"] == [{"name": "logits", "shape": ["batch", 10], "dtype": "float32"}]
    assert data["judging"]["dynamic_ranges"] == {"batch": [1, 128]} and data["judging"]["nan_policy"] == "fail"


@pytest.mark.slow
def test_manifest_paths_are_relative_and_hashes_are_sha256(mlp_export):
    for artifact in mlp_export.manifest.artifacts:
        assert not Path(artifact.path).is_absolute() and len(artifact.sha256) == 64
        assert (mlp_export.path / artifact.path).stat().st_size == artifact.bytes


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ("[]", "JSON object"),
        ('{"model": {}}', "lacks"),
        (
            '{"model": {}, "input": {"name": "input", "dtype": "float32", "shape": [1, 28, 28]},'
            ' "outputs": [{"name": "logits"}], "device": "cpu",'
            ' "versions": {}, "artifacts": [{"format": "onnx", "path": "../../etc/passwd",'
            ' "sha256": "0", "bytes": 1}]}',
            "not a plain path",
        ),
    ],
    ids=["corrupt", "not-object", "missing-keys", "escaping-path"],
)
def test_broken_or_hostile_manifests_are_refused(tmp_path, content, message):
    (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(ManifestError, match=message):
        Manifest.load(tmp_path)


def test_a_folder_without_manifest_is_refused(tmp_path):
    with pytest.raises(ManifestError, match=r"no manifest\.json"):
        Manifest.load(tmp_path)


@pytest.mark.slow
def test_a_symlink_planted_as_the_report_is_replaced_not_followed(mlp_dir, tmp_path):
    from exporter import VerifyConfig, verify

    outside = tmp_path / "outside.txt"
    outside.write_text("untouched")
    (mlp_dir / "verification.json").unlink()
    (mlp_dir / "verification.json").symlink_to(outside)
    verify(mlp_dir, VerifyConfig(samples=64))
    assert outside.read_text() == "untouched"
    assert not (mlp_dir / "verification.json").is_symlink()
    assert not [p for p in mlp_dir.iterdir() if p.name.endswith(".tmp")]


def _rewrite(folder, change):
    data = json.loads((folder / "manifest.json").read_text())
    change(data)
    (folder / "manifest.json").write_text(json.dumps(data))


@pytest.mark.slow
@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["inputs"][0].update(shape="abc"), "shape is not a list of integers"),
        (lambda d: d["inputs"][0].update(shape=[1, -28, 28]), "needs positive sizes"),
        (lambda d: d["inputs"][0].update(shape=[1, 100000, 100000]), "more than this tool verifies"),
        (lambda d: d["inputs"][0].update(dtype="object"), "dtype 'object' is not one of"),
        (lambda d: d["inputs"][0].update(dtype="int64"), "needs the range"),
        (lambda d: d.update(inputs=[]), "inputs must be a non-empty list"),
        (lambda d: d.update(schema="abc"), "has schema 'abc'; this exporter reads schemas 1, 2"),
        (lambda d: d.update(schema=3), "has schema 3"),
        (lambda d: d.update(outputs=["logits"]), "outputs must be a non-empty list"),
        (lambda d: d["model"].update(seed=2**80), "model.seed must be an integer"),
        (lambda d: d["model"].update(weights="weights.pt"), "model.weights must be an object"),
        (lambda d: d["model"]["source"].update(kind="file", sha256=""), "needs the sha256 of its model file"),
    ],
    ids=["shape-text", "shape-negative", "shape-huge", "dtype-object", "int-without-range", "no-inputs",
         "schema-text", "schema-future", "outputs-strings", "seed-huge", "weights-string", "file-without-sha256"],
)  # fmt: skip
def test_manifest_fields_that_would_crash_later_are_usage_errors(mlp_dir, change, message):
    from exporter import verify

    _rewrite(mlp_dir, change)
    with pytest.raises(ManifestError, match=message):
        verify(mlp_dir)


def test_a_deeply_nested_manifest_is_refused(tmp_path):
    (tmp_path / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ManifestError, match="nested deeper"):
        Manifest.load(tmp_path)


@pytest.mark.slow
def test_a_manifest_without_a_runnable_artifact_fails_closed(mlp_dir):
    from exporter import VerifyConfig, verify

    _rewrite(mlp_dir, lambda d: d.update(artifacts=[{**d["artifacts"][0], "format": "onnx-data"}]))
    report = verify(mlp_dir, VerifyConfig(samples=64))
    assert not report.passed and any("nothing to compare" in f for f in report.failures)


@pytest.mark.slow
def test_a_manifest_naming_an_import_path_imports_nothing_without_source(mlp_dir):
    import subprocess
    import sys

    _rewrite(mlp_dir, lambda d: d["model"].update(source={"kind": "import", "import": "this:X"}))
    result = subprocess.run([sys.executable, "-m", "exporter", "verify", str(mlp_dir)], capture_output=True, text=True)
    assert result.returncode == 2 and "pass --source this:X" in result.stderr
    assert "Beautiful is better" not in result.stdout + result.stderr  # the module never ran


@pytest.mark.slow
def test_a_schema_1_folder_is_read_as_one_float_input_and_still_verifies(mlp_dir):
    from exporter import VerifyConfig, verify

    def to_schema_1(data):
        data["input"] = {**data.pop("inputs")[0], "dynamic_axes": {"input": {"0": "batch"}, "logits": {"0": "batch"}}}
        del data["input"]["range"]
        data["schema"] = 1
        for output in data["outputs"]:
            output.pop("dtype")
            output["shape"] = [1, 10]

    _rewrite(mlp_dir, to_schema_1)
    manifest = Manifest.load(mlp_dir)
    assert manifest.interface.inputs[0].shape == (1, 28, 28) and manifest.interface.inputs[0].axes == {0: "batch"}
    assert manifest.interface.outputs[0].shape == ("batch", 10)  # schema 1 made every axis 0 the batch
    assert verify(mlp_dir, VerifyConfig(trust=True), write=False).passed  # a hand-edited folder is untrusted
