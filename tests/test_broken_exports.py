"""Broken exports must fail for the right reason; sound ones must pass (models in broken_models.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from exporter import ExportConfig, VerifyConfig, export, verify
from exporter.errors import ExportFailedError

from .conftest import BROKEN

pytestmark = pytest.mark.slow  # every test exports a model of broken_models.py


def _export(tmp_path, cls: str, onnx_exporter: str = "dynamo"):
    config = ExportConfig(out=tmp_path, device="cpu", input_shape=(1, 28, 28), onnx_exporter=onnx_exporter)
    return export(f"{BROKEN}:{cls}", config)


def _failures(result, start: str) -> list[str]:
    return [f for f in result.report.failures if f.startswith(start)]


# --- must fail --------------------------------------------------------------------------


def test_value_branch_is_refused_by_the_dynamo_exporter_with_the_line_and_a_next_step(tmp_path):
    with pytest.raises(ExportFailedError) as caught:
        _export(tmp_path, "ValueBranch")
    message = str(caught.value)
    assert "branches on tensor values" in message and "broken_models.py:" in message
    assert "if x.mean() > 0.5:" in message and "--onnx-exporter legacy" in message
    assert "\n" not in message and "\x1b" not in message


def test_value_branch_export_failure_is_one_line_with_exit_1_from_the_cli(tmp_path):
    args = ["export", f"{BROKEN}:ValueBranch", "--input-shape", "1,28,28", "--device", "cpu", "--out", str(tmp_path)]
    result = subprocess.run([sys.executable, "-m", "exporter", *args], capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "branches on tensor values" in result.stderr
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_value_branch_traced_by_the_legacy_exporter_fails_on_the_logits_and_shows_the_tracer_warning(tmp_path):
    result = _export(tmp_path, "ValueBranch", "legacy")
    assert result.passed is False
    for runtime in ("torchscript", "onnxruntime"):
        assert any("differ beyond" in f for f in _failures(result, f"{runtime} at batch")), runtime
        assert any("Python boolean" in f for f in _failures(result, f"{runtime}: note")), runtime


@pytest.mark.parametrize("onnx_exporter", ["dynamo", "legacy"])
def test_a_frozen_batch_size_fails_at_every_other_batch_size_naming_the_size(tmp_path, onnx_exporter):
    # A batch-1 example is exported at batch 2 (exporters specialise sizes 0 and 1), so the
    # frozen batch is 2 and both verified batch sizes, 1 and 64, must fail.
    result = _export(tmp_path, "FrozenBatch", onnx_exporter)
    assert result.passed is False
    for runtime in result.report.runtimes:
        by_batch = {b.batch_size: b for b in runtime.batches}
        assert by_batch[1].error and by_batch[64].error, runtime.runtime
    torchscript = _failures(result, "torchscript at batch 64: raised")
    assert torchscript and "[2, 784]" in torchscript[0]  # the cause, not TorchScript's boilerplate line
    assert _failures(result, "onnxruntime at batch 64: raised")
    if onnx_exporter == "dynamo":  # the legacy exporter keeps the declared axis symbolic in the graph's inputs
        assert any("axis 0 (batch) is fixed to 2" in f for f in _failures(result, "onnxruntime: note"))


def test_nan_outputs_fail_with_their_position(tmp_path):
    result = _export(tmp_path, "NanOutput")
    assert result.passed is False
    assert any("NaN/Inf value(s) in the reference output, first (NaN) at [" in f for f in result.report.failures)


def test_nan_outputs_at_matching_positions_pass_with_nan_policy_match(tmp_path):
    result = _export(tmp_path, "NanOutput")
    assert verify(result.path, VerifyConfig(nan_policy="match", samples=64, source=BROKEN)).passed


def test_a_dropout_forced_on_is_reported_as_a_nondeterministic_reference(tmp_path):
    result = _export(tmp_path, "LiveDropout")
    assert result.passed is False and result.report.reference["deterministic"] is False
    assert "the eager reference is nondeterministic" in result.report.failures[0]


def test_an_unused_parameter_fails_unless_allowed(tmp_path):
    result = _export(tmp_path, "UnusedParameter")
    assert result.passed is False
    onnx = result.report.parameters.artifacts["onnxruntime"]
    assert onnx.unused == ["extra.weight", "extra.bias"] and "never used by forward" in onnx.reasons[0]
    assert all(r.passed for r in result.report.runtimes)  # the logits agree: only the accounting fails
    allowed = verify(result.path, VerifyConfig(allow_unused=True, samples=64, source=BROKEN))
    assert allowed.passed and allowed.parameters.artifacts["onnxruntime"].total == 7_960


# --- must pass ----------------------------------------------------------------------------


@pytest.mark.parametrize("onnx_exporter", ["dynamo", "legacy"])
def test_tied_weights_pass_and_are_counted_once(tmp_path, onnx_exporter):
    result = _export(tmp_path, "TiedWeights", onnx_exporter)
    assert result.passed, result.report.failures
    params = result.report.parameters
    encoder = next(p for p in params.parameters if p.name == "encoder.weight")
    assert encoder.aliases == ["decoder.weight"] and params.eager_total == 32 * 784 + 784 * 10 + 10


@pytest.mark.parametrize("onnx_exporter", ["dynamo", "legacy"])
def test_conv_batchnorm_passes_and_a_fold_is_explained(tmp_path, onnx_exporter):
    result = _export(tmp_path, "ConvBatchNorm", onnx_exporter)
    assert result.passed, result.report.failures
    onnx = result.report.parameters.artifacts["onnxruntime"]
    assert onnx.total == result.report.parameters.eager_total
    assert [b["name"] for b in result.report.parameters.buffers][:2] == ["bn.running_mean", "bn.running_var"]
    # Both exporters fold the BatchNorm in eval mode: legacy into new initializers (the BN and conv
    # parameters have no tensor of their own), dynamo into the conv's own tensors (values rewritten).
    if onnx_exporter == "legacy":
        assert {"bn.weight", "bn.bias"} <= set(onnx.folded) and not onnx.rewritten
    else:
        assert onnx.rewritten and {a["name"] for a in onnx.altered} == {"conv.weight", "conv.bias"}
    assert "fold" in onnx.explanation and onnx.passed


def test_normalisation_buffers_and_dropout_in_eval_pass(tmp_path):
    result = _export(tmp_path, "NormalizedDropout")
    assert result.passed, result.report.failures
    assert {b["name"] for b in result.report.parameters.buffers} == {"mean", "std"}
    assert result.report.reference["deterministic"] is True
