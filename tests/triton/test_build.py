"""triton: the model repository, checked with Triton's own ModelConfig schema against the artifacts."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from google.protobuf import text_format
from onnx import TensorProto, helper

from exporter.artifacts.integrity import sha256_file
from exporter.artifacts.manifest import ArtifactEntry, Manifest
from exporter.errors import (
    ArtifactDirError,
    ExporterError,
    ExportFailedError,
    ManifestError,
    UsageError,
)
from exporter.triton.build import TritonConfig, write_repository

from ..helpers import restamp
from .test_pbtxt import load_model_config_schema

# The ONNX types the seed models use, mapped here independently of exporter.triton.
ONNX_TO_TRITON = {TensorProto.FLOAT: "TYPE_FP32", TensorProto.INT64: "TYPE_INT64", TensorProto.FLOAT16: "TYPE_FP16"}
EXPECTED_FILES = [
    "mlp_onnx/1/model.onnx",
    "mlp_onnx/config.pbtxt",
    "mlp_torchscript/1/model.pt",
    "mlp_torchscript/config.pbtxt",
]


@pytest.fixture(scope="module")
def schema():
    """Triton's own ModelConfig message (see test_pbtxt.py)."""
    return load_model_config_schema()


@pytest.fixture(scope="module")
def repo(mlp_export, tmp_path_factory):
    """The seed export written once as a Triton repository (the artifact folder is only read)."""
    return write_repository(mlp_export.path, tmp_path_factory.mktemp("triton") / "models")


def parse(schema, folder: Path):
    return text_format.Parse((folder / "config.pbtxt").read_text(), schema.ModelConfig())


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def graph_dims(value) -> list[int | str]:
    return [d.dim_param if d.HasField("dim_param") else d.dim_value for d in value.type.tensor_type.shape.dim]


# for folders a test edits by hand: their verdict no longer matches, nor their signature
UNVERIFIED = TritonConfig(allow_unverified=True, allow_untrusted_code=True)


def edit_manifest(folder: Path, change) -> None:
    data = json.loads((folder / "manifest.json").read_text())
    change(data)
    (folder / "manifest.json").write_text(json.dumps(data))


# --- what is written ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_repository_holds_one_model_per_artifact_and_nothing_else(repo):
    assert files(repo.repository) == EXPECTED_FILES
    assert [m.name for m in repo.models] == ["mlp_onnx", "mlp_torchscript"]
    assert [m.path for m in repo.models] == [repo.repository / "mlp_onnx", repo.repository / "mlp_torchscript"]


@pytest.mark.slow
def test_model_files_are_byte_identical_to_the_hash_bound_artifacts(repo, mlp_export):
    for model, fmt in ((repo.models[0], "onnx"), (repo.models[1], "torchscript")):
        entry = mlp_export.manifest.artifact(fmt)
        copied = model.path / "1" / Path(entry.path).name
        assert copied.read_bytes() == (mlp_export.path / entry.path).read_bytes()
        assert sha256_file(copied) == entry.sha256


@pytest.mark.slow
@pytest.mark.parametrize("folder", ["mlp_onnx", "mlp_torchscript"])
def test_every_config_parses_with_tritons_schema_and_is_what_the_result_reports(repo, schema, folder):
    config = parse(schema, repo.repository / folder)
    model = next(m for m in repo.models if m.name == folder)
    assert config.name == folder  # Triton requires the config's name to equal its folder's
    assert (repo.repository / folder / "config.pbtxt").read_text() == model.config_text
    assert config.max_batch_size == 64 and config.HasField("dynamic_batching")
    assert model.source.sha256 in model.config_text


@pytest.mark.slow
def test_the_onnx_config_matches_the_onnx_graph_and_the_manifest(repo, schema, mlp_export):
    config = parse(schema, repo.repository / "mlp_onnx")
    graph = onnx.load(str(mlp_export.path / "model.onnx")).graph
    assert (config.platform, config.backend) == ("onnxruntime_onnx", "onnxruntime")
    for tensors, values in ((config.input, graph.input), (config.output, graph.output)):
        assert [t.name for t in tensors] == [v.name for v in values]
        for tensor, value in zip(tensors, values, strict=True):
            assert schema.DataType.Name(tensor.data_type) == ONNX_TO_TRITON[value.type.tensor_type.elem_type]
            dims = graph_dims(value)
            assert dims[0] == "batch" and list(tensor.dims) == dims[1:]  # the batch dim is Triton's, not in dims
    manifest = mlp_export.manifest
    assert [t.name for t in config.input] == [manifest.inputs[0]["name"]]
    assert [t.name for t in config.output] == [o["name"] for o in manifest.outputs]
    assert list(config.input[0].dims) == manifest.inputs[0]["shape"][1:] == [28, 28]
    assert list(config.output[0].dims) == manifest.outputs[0]["shape"][1:] == [10]


@pytest.mark.slow
def test_the_torchscript_config_uses_libtorch_names_by_position_and_the_manifest(repo, schema, mlp_export):
    config = parse(schema, repo.repository / "mlp_torchscript")
    onnx_config = parse(schema, repo.repository / "mlp_onnx")
    manifest = mlp_export.manifest
    assert (config.platform, config.backend) == ("pytorch_libtorch", "pytorch")
    assert [t.name for t in config.input] == ["input__0"] and [t.name for t in config.output] == ["logits__0"]
    assert schema.DataType.Name(config.input[0].data_type) == "TYPE_FP32" and manifest.inputs[0]["dtype"] == "float32"
    assert list(config.input[0].dims) == manifest.inputs[0]["shape"][1:]
    assert list(config.output[0].dims) == manifest.outputs[0]["shape"][1:]
    # Same model, two backends: only the names differ.
    for ours, theirs in ((config.input, onnx_config.input), (config.output, onnx_config.output)):
        assert [(t.data_type, list(t.dims)) for t in ours] == [(t.data_type, list(t.dims)) for t in theirs]
    assert "<name>__<index>" in repo.models[1].config_text  # the convention is documented in the config


@pytest.mark.slow
def test_the_render_lists_each_model_and_how_to_serve(repo):
    text = repo.render()
    assert "mlp_onnx" in text and "input__0 [28, 28] TYPE_FP32 -> logits__0 [10] TYPE_FP32" in text
    assert f"--model-repository={repo.repository.resolve()}" in text


def test_importing_the_module_does_not_import_torch_or_onnx():
    code = "import sys, exporter.triton; print(sorted({'torch', 'onnx', 'tritonclient'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- batching ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_max_batch_size_is_configurable(mlp_dir, tmp_path, schema):
    result = write_repository(mlp_dir, tmp_path / "repo", TritonConfig(max_batch_size=8, dynamic_batching=False))
    for model in result.models:
        config = parse(schema, model.path)
        assert config.max_batch_size == 8 and not config.HasField("dynamic_batching")


@pytest.mark.slow
def test_max_batch_size_zero_keeps_the_batch_dimension_in_dims(mlp_dir, tmp_path, schema):
    result = write_repository(mlp_dir, tmp_path / "repo", TritonConfig(max_batch_size=0))
    onnx_config, ts_config = (parse(schema, m.path) for m in result.models)
    assert onnx_config.max_batch_size == 0 and not onnx_config.HasField("dynamic_batching")
    assert list(onnx_config.input[0].dims) == [-1, 28, 28]  # the symbolic batch dim varies
    assert list(ts_config.input[0].dims) == [-1, 28, 28] and list(ts_config.output[0].dims) == [-1, 10]


@pytest.mark.slow
def test_a_batch_baked_into_the_artifacts_turns_batching_off_with_a_note(mlp_dir, tmp_path, schema):
    model = onnx.load(str(mlp_dir / "model.onnx"))
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 1  # as a trace that froze the batch size leaves it
    onnx.save(model, str(mlp_dir / "model.onnx"))
    restamp(mlp_dir)

    def no_dynamic_axes(data):
        data["inputs"][0]["dynamic_axes"] = {}
        data["outputs"][0]["shape"] = [1, 10]

    edit_manifest(mlp_dir, no_dynamic_axes)
    result = write_repository(mlp_dir, tmp_path / "repo", UNVERIFIED)
    onnx_config, ts_config = (parse(schema, m.path) for m in result.models)
    assert onnx_config.max_batch_size == 0 and list(onnx_config.input[0].dims) == [1, 28, 28]
    assert list(onnx_config.output[0].dims) == [1, 10] and not onnx_config.HasField("dynamic_batching")
    assert ts_config.max_batch_size == 0 and list(ts_config.input[0].dims) == [1, 28, 28]
    assert all(any("max_batch_size 0" in note for note in m.notes) for m in result.models)


# --- replacing a model folder (the refusals: test_repository.py) ------------------------------------


@pytest.mark.slow
def test_force_replaces_the_tools_files_and_keeps_the_users_version_2_and_notes(mlp_dir, tmp_path, schema):
    repository = tmp_path / "repo"
    write_repository(mlp_dir, repository)
    model = repository / "mlp_torchscript"
    (model / "1" / "stale.txt").write_text("old")
    (model / "2").mkdir()
    (model / "2" / "model.pt").write_bytes(b"the user's version 2")
    (model / "NOTES.txt").write_bytes(b"keep me\n")
    result = write_repository(mlp_dir, repository, TritonConfig(max_batch_size=4, force=True))
    mine = {"mlp_torchscript/2/model.pt", "mlp_torchscript/NOTES.txt"}
    assert files(repository) == sorted([*EXPECTED_FILES, *mine])  # the stale file went with the old version 1/
    assert (model / "2" / "model.pt").read_bytes() == b"the user's version 2"
    assert (model / "NOTES.txt").read_bytes() == b"keep me\n"
    assert all(parse(schema, m.path).max_batch_size == 4 for m in result.models)
    assert not [p for p in repository.rglob(".*")]


# --- hash checks and hostile manifests ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("tampered", ["model.onnx", "model.pt"])
def test_a_tampered_artifact_is_refused_and_nothing_is_written(mlp_dir, tmp_path, tampered):
    with open(mlp_dir / tampered, "ab") as handle:
        handle.write(b"\0")
    repository = tmp_path / "repo"
    with pytest.raises(ExporterError, match=re.escape(f"{tampered} does not match its sha256")) as caught:
        write_repository(mlp_dir, repository)
    assert not isinstance(caught.value, UsageError) and caught.value.exit_code == 1
    assert "exporter verify" in str(caught.value) and "\n" not in str(caught.value)
    assert not repository.exists()


@pytest.mark.slow
def test_a_missing_artifact_is_a_usage_error(mlp_dir, tmp_path):
    (mlp_dir / "model.pt").unlink()
    with pytest.raises(ArtifactDirError, match=r"model\.pt"):
        write_repository(mlp_dir, tmp_path / "repo")
    assert not (tmp_path / "repo").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["../escaped", "a/b", "", None])
def test_a_model_name_that_could_leave_the_repository_is_refused(mlp_dir, tmp_path, name):
    edit_manifest(mlp_dir, lambda data: data["model"].update(name=name))
    with pytest.raises(ManifestError):
        write_repository(mlp_dir, tmp_path / "repo")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlp"]


@pytest.mark.slow
def test_a_failed_verification_is_noted_in_every_config(mlp_dir, tmp_path, repo):
    assert not any("FAILED" in m.config_text for m in repo.models)

    def failed(data):  # as a failing `exporter verify` of this very manifest records it: signed
        from exporter.artifacts import trust

        data["verification"] = trust.sign_verdict({**data["verification"], "passed": False})

    edit_manifest(mlp_dir, failed)
    with pytest.raises(ExporterError, match="recorded verification FAILED"):
        write_repository(mlp_dir, tmp_path / "repo")
    result = write_repository(mlp_dir, tmp_path / "repo", UNVERIFIED)
    assert [m.name for m in result.models] == ["mlp_onnx", "mlp_torchscript"]  # written when the user says so
    assert all("recorded verification FAILED" in m.config_text for m in result.models)


def test_a_folder_without_a_manifest_is_refused(tmp_path):
    with pytest.raises(ManifestError):
        write_repository(tmp_path, tmp_path / "repo")


# --- one format, other dtypes and shapes --------------------------------------------------------------


@pytest.mark.slow
def test_an_onnx_only_folder_gives_only_the_onnx_model(mlp_dir, tmp_path):
    edit_manifest(mlp_dir, lambda data: data.update(artifacts=[a for a in data["artifacts"] if a["format"] == "onnx"]))
    result = write_repository(mlp_dir, tmp_path / "repo", UNVERIFIED)
    assert [m.name for m in result.models] == ["mlp_onnx"] and files(tmp_path / "repo") == EXPECTED_FILES[:2]


@pytest.mark.slow
@pytest.mark.parametrize("dtype, triton_type", [("float32", "TYPE_FP32"), ("int64", "TYPE_INT64")])
def test_a_torchscript_only_folder_takes_output_dtypes_from_the_manifest(mlp_dir, tmp_path, schema, dtype, triton_type):
    keep = [a for a in json.loads((mlp_dir / "manifest.json").read_text())["artifacts"] if a["format"] != "onnx"]

    def torchscript_only(data):
        data.update(artifacts=keep)
        data["outputs"][0]["dtype"] = dtype

    edit_manifest(mlp_dir, torchscript_only)
    result = write_repository(mlp_dir, tmp_path / "repo", UNVERIFIED)
    (model,) = result.models
    assert schema.DataType.Name(parse(schema, model.path).output[0].data_type) == triton_type


def tiny_onnx_folder(root: Path, output_type: int = TensorProto.FLOAT) -> Path:
    """An artifact folder around a hand-made graph: int64 (batch, 4) in, one value per sample out."""
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["ids"], ["as_float"], to=output_type),
            helper.make_node("ReduceSum", ["as_float"], ["score"], keepdims=0),
        ],
        "tiny",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 4])],
        [helper.make_tensor_value_info("score", output_type, ["batch"])],
    )
    folder = root / "tiny"
    folder.mkdir()
    onnx.save(helper.make_model(graph), str(folder / "model.onnx"))
    Manifest(
        model={"name": "tiny"},
        inputs=[{"name": "ids", "shape": [1, 4], "dtype": "int64", "range": [0, 9], "dynamic_axes": {"0": "batch"}}],
        outputs=[{"name": "score", "shape": ["batch"], "dtype": "float32"}],
        device="cpu",
        artifacts=[ArtifactEntry.for_file(folder, "model.onnx", "onnx")],
        versions={},
    ).write(folder)
    return folder


def test_int64_inputs_and_one_value_per_sample_outputs(tmp_path, schema):
    result = write_repository(tiny_onnx_folder(tmp_path), tmp_path / "repo", UNVERIFIED)
    config = parse(schema, result.models[0].path)
    assert schema.DataType.Name(config.input[0].data_type) == "TYPE_INT64" and list(config.input[0].dims) == [4]
    score = config.output[0]
    # Triton refuses empty dims: one value per sample is dims [1] reshaped to [].
    assert list(score.dims) == [1] and score.HasField("reshape") and list(score.reshape.shape) == []
    assert not config.input[0].HasField("reshape")


def test_a_type_triton_cannot_serve_is_refused(tmp_path):
    folder = tiny_onnx_folder(tmp_path, output_type=TensorProto.COMPLEX64)
    with pytest.raises(ExportFailedError, match="COMPLEX64"):
        write_repository(folder, tmp_path / "repo", UNVERIFIED)
    assert not (tmp_path / "repo").exists()


@pytest.mark.slow
def test_onnx_external_data_is_inlined_into_one_servable_file(tmp_path):
    import numpy as np
    import onnxruntime as ort

    from exporter import ExportConfig, export

    result = export("mlp", ExportConfig(out=tmp_path / "a", device="cpu", formats=("onnx",), external_data=True))
    written = write_repository(result.path, tmp_path / "repo")
    model_file = tmp_path / "repo" / "mlp_onnx" / "1" / "model.onnx"
    assert [m.name for m in written.models] == ["mlp_onnx"]
    assert sorted(p.name for p in model_file.parent.iterdir()) == ["model.onnx"]  # no side file needed
    x = np.random.default_rng(0).random((3, 28, 28), dtype=np.float32)
    served = ort.InferenceSession(str(model_file)).run(None, {"input": x})[0]
    original = ort.InferenceSession(str(result.path / "model.onnx")).run(None, {"input": x})[0]
    assert np.array_equal(served, original)


@pytest.mark.slow
def test_a_tampered_external_data_file_is_refused(tmp_path):
    from exporter import ExportConfig, export

    result = export("mlp", ExportConfig(out=tmp_path / "a", device="cpu", formats=("onnx",), external_data=True))
    (result.path / "model.onnx.data").write_bytes(b"\0" * 64)
    with pytest.raises(ExporterError, match=r"model\.onnx\.data does not match its sha256"):
        write_repository(result.path, tmp_path / "repo")
    assert not (tmp_path / "repo").exists() or not any((tmp_path / "repo").iterdir())
