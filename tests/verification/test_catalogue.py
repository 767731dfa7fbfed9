"""The catalogue (tests/catalogue.py): every must-fail case fails for its own cause, every must-pass case
passes; then what particular cases must say besides: the refusal's one line, the notes, the accounting.

Each case is exported once for this module (`catalogue_export`) and the tests below share it; a test
that verifies a shared folder again does so with ``write=False``, so the folder stays as exported.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import Callable

import pytest
from torch import nn

from exporter import ExportConfig, VerifyConfig, export, verify
from exporter.errors import ExportFailedError
from exporter.exporting import ExportResult

from .. import catalogue
from ..catalogue import CASES, Case
from ..conftest import BROKEN

pytestmark = pytest.mark.slow  # every case exports a model of the catalogue

CatalogueExport = Callable[[Case], "ExportResult | ExportFailedError"]


@pytest.fixture(scope="module")
def catalogue_export(tmp_path_factory) -> CatalogueExport:
    """Export a case (verified, as `export` does by default) the first time it is asked for; the
    ExportResult, or the ExportFailedError when the exporter refused it."""
    done: dict[Case, ExportResult | ExportFailedError] = {}

    def get(case: Case) -> ExportResult | ExportFailedError:
        if case not in done:
            config = ExportConfig(
                out=tmp_path_factory.mktemp(case.id), device="cpu", input_shape=(1, 28, 28),
                onnx_exporter=case.onnx_exporter, **({"formats": case.formats} if case.formats else {}),
            )  # fmt: skip
            try:
                done[case] = export(f"{BROKEN}:{case.model}", config)
            except ExportFailedError as error:
                done[case] = error
        return done[case]

    return get


def _case(model: str, onnx_exporter: str = "dynamo") -> Case:
    return next(c for c in CASES if c.model == model and c.onnx_exporter == onnx_exporter)


def _result(catalogue_export: CatalogueExport, model: str, onnx_exporter: str = "dynamo") -> ExportResult:
    outcome = catalogue_export(_case(model, onnx_exporter))
    if isinstance(outcome, ExportFailedError):
        raise AssertionError(f"{model} was refused at export: {outcome}")
    return outcome


def _failures(result: ExportResult, start: str = "") -> list[str]:
    return [f for f in result.report.failures if f.startswith(start)]


# --- the table ------------------------------------------------------------------------------------


def test_the_table_names_every_model_of_the_catalogue_and_a_cause_for_each_failure():
    models = {
        name for name, value in vars(catalogue).items()
        if inspect.isclass(value) and issubclass(value, nn.Module) and not name.startswith("_")
    }  # fmt: skip
    assert {c.model for c in CASES} == models
    assert len({c.id for c in CASES}) == len(CASES)  # each (model, exporter) once: ids name one case
    assert all(c.expect in ("fail", "pass") for c in CASES)
    assert all(bool(c.cause) == (c.expect == "fail") for c in CASES)
    assert all(c.expect == "fail" for c in CASES if c.refused)


@pytest.mark.parametrize("case", [c for c in CASES if c.expect == "fail"], ids=lambda c: c.id)
def test_a_broken_model_fails_naming_its_own_cause(catalogue_export, case):
    outcome = catalogue_export(case)
    if case.refused:
        assert isinstance(outcome, ExportFailedError), f"{case.id} exported although the exporter must refuse it"
        assert case.cause in str(outcome), str(outcome)
        return
    assert not isinstance(outcome, ExportFailedError), str(outcome)
    failures = "\n".join(outcome.report.failures)
    assert outcome.passed is False and case.cause in failures, failures


@pytest.mark.parametrize("case", [c for c in CASES if c.expect == "pass"], ids=lambda c: c.id)
def test_a_sound_model_passes(catalogue_export, case):
    outcome = catalogue_export(case)
    assert not isinstance(outcome, ExportFailedError), str(outcome)
    assert outcome.passed, outcome.report.failures


# --- must fail: what each failure says besides its cause ------------------------------------------


def test_value_branch_is_refused_by_the_dynamo_exporter_with_the_line_and_a_next_step(catalogue_export):
    message = str(catalogue_export(_case("ValueBranch")))
    assert "branches on tensor values" in message and "catalogue.py:" in message
    assert "if x.mean() > 0.5:" in message and "--onnx-exporter legacy" in message
    assert "\n" not in message and "\x1b" not in message


def test_value_branch_export_failure_is_one_line_with_exit_1_from_the_cli(tmp_path):
    args = ["export", f"{BROKEN}:ValueBranch", "--input-shape", "1,28,28", "--device", "cpu", "--out", str(tmp_path),
            "--format", "onnx"]  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "exporter", *args], capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "branches on tensor values" in result.stderr
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_value_branch_traced_by_the_legacy_exporter_fails_on_the_logits_and_shows_the_tracer_warning(catalogue_export):
    result = _result(catalogue_export, "ValueBranch", "legacy")
    for runtime in ("torchscript", "onnxruntime"):
        assert any("differ beyond" in f for f in _failures(result, f"{runtime} at batch")), runtime
        assert any("Python boolean" in f for f in _failures(result, f"{runtime}: note")), runtime


@pytest.mark.parametrize("onnx_exporter", ["dynamo", "legacy"])
def test_a_frozen_batch_size_fails_at_every_other_batch_size_naming_the_size(catalogue_export, onnx_exporter):
    # A batch-1 example is exported at batch 2 (exporters specialise sizes 0 and 1), so the
    # frozen batch is 2 and both verified batch sizes, 1 and 64, must fail.
    result = _result(catalogue_export, "FrozenBatch", onnx_exporter)
    for runtime in result.report.runtimes:
        by_batch = {b.batch_size: b for b in runtime.batches}
        assert by_batch[1].error and by_batch[64].error, runtime.runtime
    torchscript = _failures(result, "torchscript at batch 64: raised")
    assert torchscript and "[2, 784]" in torchscript[0]  # the cause, not TorchScript's boilerplate line
    assert _failures(result, "onnxruntime at batch 64: raised")
    if onnx_exporter == "dynamo":  # the legacy exporter keeps the declared axis symbolic in the graph's inputs
        assert any("axis 0 (batch) is fixed to 2" in f for f in _failures(result, "onnxruntime: note"))


def test_nan_outputs_fail_with_their_position_and_pass_with_nan_policy_match(catalogue_export):
    result = _result(catalogue_export, "NanOutput")
    assert any("NaN/Inf value(s) in the reference output, first (NaN) at [" in f for f in result.report.failures)
    matched = verify(result.path, VerifyConfig(nan_policy="match", samples=64, source=BROKEN), write=False)
    assert matched.passed, matched.failures


def test_a_dropout_forced_on_is_reported_as_a_nondeterministic_reference(catalogue_export):
    result = _result(catalogue_export, "LiveDropout")
    assert result.report.reference["deterministic"] is False
    assert "the eager reference is nondeterministic" in result.report.failures[0]


def test_an_unused_parameter_fails_unless_allowed(catalogue_export):
    result = _result(catalogue_export, "UnusedParameter")
    onnx = result.report.parameters.artifacts["onnxruntime"]
    assert onnx.unused == ["extra.weight", "extra.bias"] and "never used by forward" in onnx.reasons[0]
    assert all(r.passed for r in result.report.runtimes)  # the logits agree: only the accounting fails
    allowed = verify(result.path, VerifyConfig(allow_unused=True, samples=64, source=BROKEN), write=False)
    assert allowed.passed and allowed.parameters.artifacts["onnxruntime"].total == 7_960


def test_a_legacy_trace_of_a_value_branch_fails_on_its_warning_and_on_the_values_it_froze(catalogue_export):
    result = _result(catalogue_export, "TinyNegated", "legacy")
    failures = "\n".join(result.report.failures)
    assert "legacy (tracing) ONNX exporter, which warned" in failures and "--accept-tracer-warnings" in failures
    assert "cosine similarity" in failures  # and the values show it: the other branch was frozen away
    assert any(b.draw == "normal" for r in result.report.runtimes for b in r.batches)  # the sweep widened
    accepted = verify(result.path, VerifyConfig(accept_tracer_warnings=True, source=BROKEN), write=False)
    rest = "\n".join(accepted.failures)  # accepting the warning drops that gate, and hides no fault
    assert not accepted.passed and "which warned" not in rest and "cosine similarity" in rest


def test_integer_outputs_are_recorded_as_int64_and_compared_exactly(catalogue_export):
    result = _result(catalogue_export, "IntegerIds")
    assert result.manifest.outputs[0]["dtype"] == "int64"
    assert "beyond atol 0 + rtol 0" in "\n".join(result.report.failures)


def test_a_branch_on_batch_sizes_past_100_is_caught_at_128_without_asking(catalogue_export):
    result = _result(catalogue_export, "LargeBatchBranch")
    assert 128 in result.report.batch_sizes  # tried by default, without --batch-size
    assert _failures(result, "torchscript at batch 128, output:")


def test_a_squeezed_output_breaks_the_declared_shape_naming_the_output(catalogue_export):
    failures = "\n".join(_result(catalogue_export, "SqueezedOutput").report.failures)
    assert "output 'output' has shape" in failures and "the manifest declares" in failures


def test_state_changed_by_every_forward_is_named_not_blamed_on_dropout(catalogue_export):
    failures = "\n".join(_result(catalogue_export, "RunningStatistic").report.failures)
    assert "forward changes the model's state on every call (seen differ" in failures
    assert "Dropout" not in failures


# --- must pass: what each pass accounts for ---------------------------------------------------------


@pytest.mark.parametrize("onnx_exporter", ["dynamo", "legacy"])
def test_tied_weights_are_counted_once(catalogue_export, onnx_exporter):
    params = _result(catalogue_export, "TiedWeights", onnx_exporter).report.parameters
    encoder = next(p for p in params.parameters if p.name == "encoder.weight")
    assert encoder.aliases == ["decoder.weight"] and params.eager_total == 32 * 784 + 784 * 10 + 10


@pytest.mark.parametrize("onnx_exporter", ["dynamo", "legacy"])
def test_a_batchnorm_fold_is_explained(catalogue_export, onnx_exporter):
    result = _result(catalogue_export, "ConvBatchNorm", onnx_exporter)
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


def test_normalisation_buffers_are_listed_and_dropout_in_eval_is_deterministic(catalogue_export):
    report = _result(catalogue_export, "NormalizedDropout").report
    assert {b["name"] for b in report.parameters.buffers} == {"mean", "std"}
    assert report.reference["deterministic"] is True


def test_a_model_that_clamps_its_weights_once_passes_on_later_verifies_too(catalogue_export):
    result = _result(catalogue_export, "IdempotentClamp")
    again = verify(result.path, VerifyConfig(source=BROKEN), write=False)
    assert again.passed, again.failures  # the digest was recorded before forward ran
    assert again.reference["changed_by_first_call"] == ["fc.weight"]
