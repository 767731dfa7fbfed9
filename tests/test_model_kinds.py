"""The models teams ship (models/examples.py): several named inputs, token ids with a dynamic sequence
length, tuple and dict outputs, recurrent and transformer layers from a batch-1 example, half precision.

Each kind has a sound model that must pass and a broken one that must fail for its real cause.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from exporter import ExportConfig, VerifyConfig, export, verify
from exporter.errors import InputSpecError
from exporter.interface import InputSpec
from exporter.testing import assert_exports_match

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parent.parent / "models" / "examples.py"
ALL = ("torchscript", "onnx", "pt2")
QUICK = VerifyConfig(samples=64)


def _export(tmp_path, cls: str, formats=ALL, **options):
    config = ExportConfig(out=tmp_path, device="cpu", formats=formats, verify_config=QUICK, **options)
    return export(f"{EXAMPLES}:{cls}", config)


def _failures(result, prefix: str) -> list[str]:
    return [f for f in result.report.failures if f.startswith(prefix)]


# --- several named inputs ---------------------------------------------------------------------------


def test_two_named_inputs_pass_in_forwards_order_whatever_order_they_are_given(tmp_path):
    given = (InputSpec("features", (1, 8)), InputSpec("image", (1, 3, 32, 32)))  # not forward's order
    result = _export(tmp_path, "TwoInputs", inputs=given)
    assert result.passed, result.report.failures
    assert [i["name"] for i in result.manifest.inputs] == ["image", "features"]  # forward(image, features)
    import onnx

    graph = onnx.load(str(result.path / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["image", "features"]
    assert "image float32 (batch, 3, 32, 32)" in result.report.inputs  # the report says what was drawn


def test_a_missing_input_is_a_usage_error_naming_the_parameter(tmp_path):
    with pytest.raises(InputSpecError, match="forward takes 'features' too"):
        _export(tmp_path, "TwoInputs", inputs=(InputSpec("image", (1, 3, 32, 32)),))
    assert not any(tmp_path.iterdir())  # no half-written folder


# --- token ids and a dynamic sequence length ---------------------------------------------------------


def test_token_ids_with_a_dynamic_sequence_pass_at_shorter_and_longer_lengths(tmp_path):
    ids = InputSpec("ids", (1, 32), "int64", (0, 999))
    result = _export(tmp_path, "Tagger", inputs=(ids,), dynamic=(("ids", 1, "seq"),))
    assert result.passed, result.report.failures
    lengths = {b.sizes["seq"] for r in result.report.runtimes for b in r.batches if not b.probe}
    assert lengths == {16, 32, 64}  # the seeded cases; the probes try 1, 2, 3 and more besides
    assert {1, 2, 3} <= {b.sizes.get("seq", 32) for r in result.report.runtimes for b in r.batches if b.probe}
    assert result.manifest.inputs[0]["dynamic_axes"] == {"0": "batch", "1": "seq"}
    assert "uniform integers in [0, 999]" in result.report.inputs


def test_a_model_that_freezes_its_sequence_length_fails_naming_the_axis(tmp_path):
    ids = InputSpec("ids", (1, 32), "int64", (0, 999))
    result = _export(
        tmp_path, "FrozenLength", formats=("torchscript", "onnx"), inputs=(ids,), dynamic=(("ids", 1, "seq"),),
        onnx_exporter="legacy",
    )  # fmt: skip
    assert result.passed is False
    for runtime in ("torchscript", "onnxruntime"):
        failing = {f.split(":")[0] for f in _failures(result, f"{runtime} at batch")}
        assert {f"{runtime} at batch 2 (seq=16), output", f"{runtime} at batch 2 (seq=64), output"} <= failing
        frozen = f"{runtime}: seq is frozen to 32: it passes only where seq is 32 (the export example's)"
        assert any(f.startswith(frozen) for f in result.report.failures), runtime


def test_an_integer_input_without_a_range_is_refused_from_the_cli():
    run = subprocess.run(
        [sys.executable, "-m", "exporter", "export", f"{EXAMPLES}:Tagger", "--input", "ids:1,32:int64"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "needs the range" in run.stderr and "Traceback" not in run.stderr


# --- tuple and dict outputs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls, names", [("TupleOutputs", ["output_0", "output_1"]), ("DictOutputs", ["logits", "embedding"])]
)
def test_tuple_and_dict_outputs_are_compared_one_by_one(tmp_path, cls, names):
    result = _export(tmp_path, cls, input_shape=(1, 12))
    assert result.passed, result.report.failures
    assert [o["name"] for o in result.manifest.outputs] == names
    assert [o["shape"] for o in result.manifest.outputs] == [["batch", 3], ["batch", 6]]
    compared = {o.output for r in result.report.runtimes for b in r.batches for o in b.outputs}
    assert compared == set(names)


def test_a_wrong_second_output_fails_naming_that_output(tmp_path):
    result = _export(tmp_path, "WrongSecondOutput", formats=("torchscript",), input_shape=(1, 12))
    assert result.passed is False
    failing = _failures(result, "torchscript at batch")
    assert failing and all(", output_1:" in f for f in failing)  # the first output is sound


def test_output_names_can_be_given_and_a_wrong_count_is_refused(tmp_path):
    result = _export(tmp_path, "TupleOutputs", input_shape=(1, 12), output_names=("logits", "features"))
    assert [o["name"] for o in result.manifest.outputs] == ["logits", "features"] and result.passed
    with pytest.raises(InputSpecError, match="gives 1 name"):
        _export(tmp_path / "b", "TupleOutputs", input_shape=(1, 12), output_names=("logits",))


# --- recurrent and transformer layers from a batch-1 example -----------------------------------------


@pytest.mark.parametrize("cls, width", [("Recurrent", 8), ("GatedRecurrent", 8), ("Encoder", 16)])
def test_recurrent_and_transformer_layers_exported_from_batch_1_stay_dynamic(tmp_path, cls, width):
    result = _export(tmp_path, cls, input_shape=(1, 5, width))
    assert result.passed, result.report.failures
    batches = {b.batch_size for r in result.report.runtimes for b in r.batches}
    assert {1, 64, 128} <= batches  # the batch is dynamic: every batch size passes, past 100 too


# --- half precision -----------------------------------------------------------------------------------


def test_float16_round_trips_and_re_verifies_from_the_cli(tmp_path):
    result = export("mlp", ExportConfig(out=tmp_path, device="cpu", formats=ALL, dtype="float16", verify_config=QUICK))
    assert result.passed, result.report.failures
    assert result.manifest.inputs[0]["dtype"] == "float16" and result.manifest.model["dtype"] == "float16"
    assert result.report.tolerances["onnxruntime"]["logits"] == {
        "atol": 1e-3,
        "rtol": 1e-3,
        "max_diff_per_rms": 1e-2,
        "min_cosine": 0.999,
        "top1_near_ties_only": True,
    }
    against = result.report.reference["against_float32"]  # what half precision costs, runtime by runtime
    assert set(against) == {"eager", "torchscript", "onnxruntime", "pt2"} and 0 < against["eager"] < 1e-2
    run = subprocess.run(
        [sys.executable, "-m", "exporter", "verify", str(result.path), "--samples", "64"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr


def test_bfloat16_runs_where_a_kernel_exists_and_onnx_runtime_says_plainly_where_none_does(tmp_path):
    result = export("mlp", ExportConfig(out=tmp_path, device="cpu", formats=ALL, dtype="bfloat16", verify_config=QUICK))
    by_runtime = {r.runtime: r for r in result.report.runtimes}
    assert by_runtime["torchscript"].passed and by_runtime["pt2"].passed
    error = by_runtime["onnxruntime"].error
    assert error and "onnxruntime" in error and "has no kernel for this model" in error and "Gemm" in error
    assert result.report.failures == [f"onnxruntime: {error}"]  # nothing else went wrong, nothing crashed


def test_a_changed_half_precision_weight_fails(tmp_path):
    result = export(
        "mlp", ExportConfig(out=tmp_path, device="cpu", formats=("onnx",), dtype="float16", verify_config=QUICK)
    )
    from .helpers import change_onnx_weight, restamp

    change_onnx_weight(result.path, delta=0.5)
    restamp(result.path)
    report = verify(result.path, QUICK, write=False)
    assert not report.passed and any("differ beyond" in f for f in report.failures)


# --- the Python API -------------------------------------------------------------------------------------


def test_the_api_takes_a_tuple_or_a_dict_of_example_inputs_and_dynamic_axes():
    sys.path.insert(0, str(EXAMPLES.parent))
    try:
        from examples import Tagger, TwoInputs
    finally:
        sys.path.remove(str(EXAMPLES.parent))
    report = assert_exports_match(TwoInputs().eval(), (torch.rand(1, 3, 32, 32), torch.rand(1, 8)), samples=64)
    assert report.passed
    ids = torch.randint(0, 1000, (1, 24))
    report = assert_exports_match(Tagger().eval(), {"ids": ids}, dynamic={"ids": {1: "seq"}}, samples=64)
    assert {b.sizes["seq"] for r in report.runtimes for b in r.batches if not b.probe} == {12, 24, 48}
    assert "uniform integers in [" in report.inputs  # drawn within the example's own range, never all zeros


# --- predict, inspect and sources for these models ------------------------------------------------------


def test_predict_reads_an_rgb_image_for_a_three_channel_input_and_an_npz_for_two_inputs(tmp_path):
    import numpy as np
    from PIL import Image

    from exporter.prediction import predict

    colour = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten(), torch.nn.Linear(2 * 6 * 6, 4))
    folder = export(
        colour.eval(), ExportConfig(out=tmp_path, device="cpu", verify=False), example_inputs=torch.rand(1, 3, 8, 8)
    ).path
    Image.fromarray(np.full((16, 16, 3), 200, dtype=np.uint8)).save(tmp_path / "photo.png")
    result = predict(folder, str(tmp_path / "photo.png"), "onnxruntime")  # a Sequential has no eager to rebuild
    assert list(result.classes) == ["onnxruntime"] and "resized to 8x8" in " ".join(result.input_notes)
    assert "grayscale" not in " ".join(result.input_notes)  # RGB stays RGB for a (3, H, W) input

    two = _export(
        tmp_path / "two", "TwoInputs", inputs=(InputSpec("image", (1, 3, 32, 32)), InputSpec("features", (1, 8)))
    )
    source = f"{EXAMPLES}:TwoInputs"
    with pytest.raises(InputSpecError, match="takes 2 inputs"):
        predict(two.path, str(tmp_path / "photo.png"), config=VerifyConfig(source=source))
    np.savez(tmp_path / "both.npz", image=np.zeros((2, 3, 32, 32), np.float32), features=np.ones((2, 8), np.float32))
    result = predict(two.path, str(tmp_path / "both.npz"), config=VerifyConfig(source=source))
    assert result.agree and len(result.classes["onnxruntime"]) == 2


def test_verify_source_takes_the_file_py_class_spelling_and_refuses_another_class(tmp_path):
    result = _export(tmp_path, "TupleOutputs", formats=("onnx",), input_shape=(1, 12))
    assert verify(result.path, VerifyConfig(samples=16, source=f"{EXAMPLES}:TupleOutputs"), write=False).passed
    from exporter.errors import UsageError

    with pytest.raises(UsageError, match="exported from class TupleOutputs"):
        verify(result.path, VerifyConfig(samples=16, source=f"{EXAMPLES}:DictOutputs"), write=False)


def test_a_model_file_may_import_a_module_beside_it(tmp_path):
    (tmp_path / "layers.py").write_text("import torch\n\ndef block():\n    return torch.nn.Linear(4, 2)\n")
    (tmp_path / "net.py").write_text(
        "import torch\nfrom layers import block\n\n\nclass Net(torch.nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.fc = block()\n\n"
        "    def forward(self, x):\n        return self.fc(x)\n"
    )
    result = export(
        f"{tmp_path / 'net.py'}:Net",
        ExportConfig(out=tmp_path / "out", device="cpu", input_shape=(1, 4), verify_config=QUICK),
    )
    assert result.passed, result.report.failures
    assert str(tmp_path) not in sys.path  # the folder was on the path only while the file loaded


def test_inspect_reads_an_onnx_files_interface(tmp_path):
    from exporter.inspection import inspect

    ids = InputSpec("ids", (1, 32), "int64", (0, 999))
    result = _export(tmp_path, "Tagger", formats=("onnx",), inputs=(ids,), dynamic=(("ids", 1, "seq"),))
    found = inspect(result.path / "model.onnx")
    assert found.inputs == [{"name": "ids", "dtype": "int64", "shape": ["batch", "seq"]}]
    assert found.outputs[0]["shape"] == ["batch", 5] and found.total >= 16_085
    with pytest.raises(InputSpecError, match="not an ONNX file"):
        (tmp_path / "junk.onnx").write_text("not protobuf")
        inspect(tmp_path / "junk.onnx")
