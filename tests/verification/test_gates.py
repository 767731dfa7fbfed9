"""What verification judges beyond one comparison (exporter/verification/gates.py), on hand-made
manifests, results and arrays: nothing here exports. The models that must fail or pass end to end are
tests/catalogue.py, run by test_catalogue.py."""

from __future__ import annotations

import numpy as np

from exporter import VerifyConfig
from exporter.artifacts.manifest import ArtifactEntry, Manifest
from exporter.verification import gates
from exporter.verification.compare import OutputComparison
from exporter.verification.inputs import Case
from exporter.verification.results import BatchResult, RuntimeResult, VerificationReport

FLOAT32 = VerifyConfig().tolerance("float32")
TRACER = "TracerWarning: Converting a tensor to a Python boolean might cause the trace to be incorrect"


def _manifest(*entries: ArtifactEntry) -> Manifest:
    return Manifest(
        model={"name": "m", "source": {"kind": "registry", "registry": "mlp"}},
        inputs=[{"name": "input", "shape": [1, 28, 28], "dtype": "float32"}],
        outputs=[{"name": "logits", "shape": ["batch", 10], "dtype": "float32"}],
        device="cpu",
        artifacts=list(entries),
        versions={},
    )


def _entry(fmt: str, path: str, warnings: list[str] | None = None, exporter: str | None = None) -> ArtifactEntry:
    details = {"warnings": warnings or []}
    if exporter:
        details["exporter"] = exporter
    return ArtifactEntry(fmt, path, "0" * 64, 1, details)


def _report() -> VerificationReport:
    return VerificationReport("dir", "m", "cpu", "uniform", 8, [1], {}, "fail")


# --- sweep and traced warnings ----------------------------------------------------------------------------


def test_the_sweep_adds_a_batch_past_100_unless_batch_sizes_were_given():
    plain = _manifest(_entry("onnx", "model.onnx"))
    assert gates.sweep(VerifyConfig(), plain, {}) == (Case(gates.LARGE_BATCH),)
    assert gates.sweep(VerifyConfig(batch_sizes=(1, 8)), plain, {}) == ()
    assert gates.sweep(VerifyConfig(), plain, {"seq": 16}) == (Case(gates.LARGE_BATCH, (("seq", 16),)),)


def test_a_trace_that_warned_widens_the_sweep_to_odd_batches_and_normal_draws():
    warned = _manifest(_entry("torchscript", "model.pt", [TRACER]))
    cases = gates.sweep(VerifyConfig(), warned, {})
    assert {c.batch for c in cases} == {gates.LARGE_BATCH, 3, 100, 1, 64} and {c.draw for c in cases} == {"", "normal"}
    assert gates.traced_warnings(warned) == [f"torchscript: {TRACER}"]
    other = _manifest(_entry("torchscript", "model.pt", ["UserWarning: something else entirely"]))
    assert gates.traced_warnings(other) == [] and len(gates.sweep(VerifyConfig(), other, {})) == 1


def test_only_a_legacy_onnx_trace_that_warned_needs_the_users_word():
    result = RuntimeResult("onnxruntime", "onnx", "model.onnx")
    legacy = _manifest(_entry("onnx", "model.onnx", [TRACER], exporter="legacy"))
    [reason] = gates.unacknowledged_trace(legacy, result, accepted=False)
    assert "--accept-tracer-warnings" in reason and "Converting a tensor" in reason
    assert gates.unacknowledged_trace(legacy, result, accepted=True) == []
    dynamo = _manifest(_entry("onnx", "model.onnx", [TRACER], exporter="dynamo"))
    assert gates.unacknowledged_trace(dynamo, result, accepted=False) == []
    quiet = _manifest(_entry("onnx", "model.onnx", [], exporter="legacy"))
    assert gates.unacknowledged_trace(quiet, result, accepted=False) == []


# --- the reference itself ------------------------------------------------------------------------------------


def test_a_reference_that_agrees_with_itself_is_deterministic():
    values = {Case(2): {"logits": np.arange(20, dtype=np.float32).reshape(2, 10)}}
    report = _report()
    gates.check_determinism(
        values, {Case(2): {"logits": values[Case(2)]["logits"].copy()}}, {"logits": FLOAT32}, report, []
    )
    assert report.reference["deterministic"] is True and report.reference["max_abs_diff_between_runs"] == 0
    assert report.problems == []


def test_a_reference_that_differs_from_itself_is_nondeterministic_with_its_difference():
    first = {Case(2): {"logits": np.ones((2, 10), np.float32)}}
    again = {Case(2): {"logits": np.full((2, 10), 1.5, np.float32)}}
    report = _report()
    gates.check_determinism(first, again, {"logits": FLOAT32}, report, [])
    assert report.reference["deterministic"] is False
    assert "nondeterministic" in report.problems[0] and "max abs diff 0.5" in report.problems[0]


def test_a_reference_that_changes_its_own_state_is_named_so_not_nondeterministic():
    first = {Case(2): {"logits": np.ones((2, 10), np.float32)}}
    again = {Case(2): {"logits": np.full((2, 10), 2.0, np.float32)}}
    report = _report()
    gates.check_determinism(first, again, {"logits": FLOAT32}, report, ["bn.running_mean"])
    assert "changes the model's state on every call (bn.running_mean" in report.problems[0]
    assert "nondeterministic" not in report.problems[0]


def test_no_second_run_says_nothing_about_determinism():
    report = _report()
    gates.check_determinism({}, {}, {"logits": FLOAT32}, report, [])
    assert report.reference["deterministic"] is None and report.problems == []


# --- shapes and frozen axes ---------------------------------------------------------------------------------


def test_an_output_keeping_its_declared_shape_passes_and_one_that_breaks_it_is_named():
    outs = {"logits": np.zeros((6, 10), np.float32)}
    declared = {"logits": ("batch", 10)}
    assert gates.shape_mismatch(outs, declared, {}, Case(3), samples=6) is None
    wrong = {"logits": np.zeros((6, 9), np.float32)}
    assert "the manifest declares (6, 10)" in gates.shape_mismatch(wrong, declared, {}, Case(3), samples=6)
    own = {"logits": [4, 10]}  # the artifact's own declaration: a batch frozen to 4
    assert "the artifact itself declares (4, 10)" in gates.shape_mismatch(outs, declared, own, Case(3), samples=6)


def _batches(*spec: tuple[int, int, bool]) -> list[BatchResult]:
    """(batch, seq, passed) triples as batch results: a passing comparison each, or an error."""
    values = np.arange(20, dtype=np.float32).reshape(2, 10)
    same = OutputComparison.from_arrays("logits", values, values.copy(), FLOAT32)
    return [
        BatchResult(b, b, {"seq": s}, outputs=[same] if ok else [], error=None if ok else "differs")
        for b, s, ok in spec
    ]


def test_an_axis_that_passes_only_at_the_examples_size_is_named_frozen():
    result = RuntimeResult("onnxruntime", "onnx", "model.onnx")
    result.batches = _batches((2, 32, True), (2, 16, False), (2, 64, False))
    [reason] = gates.frozen_axes(result, {"seq": 32, "batch": 2})
    assert reason.startswith("seq is frozen to 32") and "fails at seq 16, 64" in reason


def test_failures_at_the_examples_size_too_name_no_frozen_axis():
    result = RuntimeResult("onnxruntime", "onnx", "model.onnx")
    result.batches = _batches((2, 32, False), (2, 16, False))
    assert gates.frozen_axes(result, {"seq": 32, "batch": 2}) == []
    result.batches = _batches((2, 32, True), (2, 16, True))
    assert gates.frozen_axes(result, {"seq": 32, "batch": 2}) == []
