"""The verification report, built by hand: its failures in the order a reader fixes them, its truth value,
the JSON contract (``to_dict``), the manifest's summary and the table people read (``render``)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from exporter.artifacts.integrity import HashCheck
from exporter.config import Tolerance
from exporter.notes import Note
from exporter.verification.compare import OutputComparison
from exporter.verification.parameters import ArtifactParameters, EagerParameter, ParameterReport
from exporter.verification.results import BatchResult, Divergence, RuntimeResult, VerificationReport

FLOAT32 = Tolerance.for_dtype("float32")
REFERENCE = np.linspace(-1, 1, 40, dtype=np.float32).reshape(4, 10)


def _output(name: str = "logits", delta: float = 0.0) -> OutputComparison:
    return OutputComparison.from_arrays(name, REFERENCE, REFERENCE + np.float32(delta), FLOAT32)


def _batch(batch_size: int = 1, delta: float = 0.0, **fields) -> BatchResult:
    return BatchResult(batch_size, 4 * batch_size, outputs=[_output(delta=delta)], **fields)


def _runtime(name: str = "onnxruntime", fmt: str = "onnx", batches=None, **fields) -> RuntimeResult:
    return RuntimeResult(name, fmt, f"model.{fmt}", batches=[_batch()] if batches is None else batches, **fields)


def _parameters(reasons: list[str] | None = None) -> ParameterReport:
    art = ArtifactParameters(
        "onnxruntime", total=10, matched=["fc.weight"], explanation="10 = 10", reasons=reasons or []
    )
    return ParameterReport(10, [EagerParameter("fc.weight", (2, 5), 10)], [], {"onnxruntime": art})


def _report(**fields) -> VerificationReport:
    base = {
        "artifact_dir": "artifacts/net",
        "model": "net",
        "device": "cpu",
        "inputs": "uniform in [0, 1), seed 0",
        "samples": 8,
        "batch_sizes": [1, 2],
        "tolerances": {"onnxruntime": {"logits": {"atol": 1e-5, "rtol": 1e-4}}},
        "nan_policy": "fail",
        "hashes": [HashCheck("model.onnx", "ab" * 32, "ab" * 32)],
        "reference": {"deterministic": True},
        "runtimes": [_runtime()],
        "parameters": _parameters(),
    }
    return VerificationReport(**{**base, **fields})


# --- passed, failures ------------------------------------------------------------------------------------


def test_a_report_without_failures_passes_and_is_true():
    report = _report()
    assert report.failures == [] and report.passed and bool(report)


def test_one_problem_anywhere_fails_it_and_makes_it_false():
    for report in (
        _report(problems=["the eager reference is nondeterministic"]),
        _report(hashes=[HashCheck("model.onnx", "ab" * 32, "cd" * 32)]),
        _report(runtimes=[_runtime(batches=[_batch(delta=0.5)])]),
        _report(parameters=_parameters(["fc.bias is never used by forward"])),
    ):
        assert report.failures and not report.passed and not report


def test_failures_come_in_the_order_a_reader_fixes_them():
    failing = _runtime(
        "torchscript",
        "torchscript",
        batches=[
            _batch(1, error="RuntimeError: boom"),
            _batch(2, shape_error="output 'logits' has shape (2, 9)"),
            _batch(3, delta=0.5, sizes={"seq": 16}),
        ],
        error="could not be loaded",
        reasons=["top-1 agreement 90.0% is below 99%"],
        notes=[Note.info("providers: CPU"), Note.warning("a trace froze the batch")],
    )
    report = _report(
        problems=["eager (the reference) raised at batch 4: boom"],
        hashes=[
            HashCheck("model.pt", "ab" * 32, None, "Permission denied"),
            HashCheck("model.onnx", "ab" * 32, "cd" * 32),
        ],
        runtimes=[failing],
        parameters=_parameters(["fc.bias is never used by forward"]),
    )
    failures = report.failures
    assert failures[:7] == [
        "eager (the reference) raised at batch 4: boom",
        "model.pt: cannot be read (Permission denied)",
        f"model.onnx: sha256 {'cd' * 32} does not match the manifest's {'ab' * 32}; the file was not loaded",
        "torchscript: could not be loaded",
        "torchscript: top-1 agreement 90.0% is below 99%",
        "torchscript at batch 1: raised RuntimeError: boom",
        "torchscript at batch 2: output 'logits' has shape (2, 9)",
    ]
    assert failures[7].startswith("torchscript at batch 3 (seq=16), logits: ")
    assert failures[-2:] == [
        "torchscript: note: a trace froze the batch",  # the warning of a failed runtime: the likely cause
        "onnxruntime parameters: fc.bias is never used by forward",
    ]
    assert not any("providers" in line for line in failures)  # an info note is no failure


def test_a_runtime_with_no_batches_or_a_batch_with_no_outputs_has_not_passed():
    assert _runtime().passed and _batch().passed
    assert not _runtime(batches=[]).passed
    assert not BatchResult(1, 1).passed
    assert not _runtime(batches=[_batch(), _batch(delta=0.5)]).passed


def test_a_batch_label_names_its_other_sizes_and_its_draw():
    assert _batch(2).label == "2"
    assert _batch(2, sizes={"seq": 16, "width": 8}).label == "2 (seq=16, width=8)"
    assert _batch(64, draw="normal").label == "64 (normal)"


# --- the JSON contract -----------------------------------------------------------------------------------


def test_to_dict_keeps_the_contract_keys_and_is_strict_json():
    runtime = _runtime(notes=[Note.note("ran on the CPU")], batches=[_batch(1), _batch(2, delta=0.5)])
    report = _report(runtimes=[runtime], record_notes=["the folder changed"])
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["passed"] is False and data["failures"] == report.failures
    assert "record_notes" not in data
    assert data["hashes"][0]["ok"] is True
    (rt,) = data["runtimes"]
    assert rt["passed"] is False and [b["passed"] for b in rt["batches"]] == [True, False]
    assert rt["notes"] == [{"level": "note", "text": "ran on the CPU"}]
    assert rt["batches"][1]["outputs"][0]["output"] == "logits"
    assert data["parameters"]["passed"] is True and data["parameters"]["artifacts"]["onnxruntime"]["passed"] is True
    assert {"artifact_dir", "model", "device", "samples", "batch_sizes", "tolerances", "nan_policy"} <= set(data)


def test_to_dict_without_parameters_says_none():
    assert _report(parameters=None).to_dict()["parameters"] is None


def test_the_summary_is_the_worst_diff_and_the_pooled_agreement_per_runtime():
    runtime = _runtime(batches=[_batch(1, delta=1e-6), _batch(2, delta=2e-6)])
    summary = _report(runtimes=[runtime], accuracy={"eager": 0.9, "onnxruntime": 0.9}).summary()
    assert set(summary) == {
        "passed",
        "samples",
        "batch_sizes",
        "tolerances",
        "runtimes",
        "parameters_passed",
        "failures",
        "accuracy",
    }
    row = summary["runtimes"]["onnxruntime"]
    assert row["passed"] is True and row["max_abs_diff"] == pytest.approx(2e-6, rel=0.1)
    assert row["top1_agreement"] == 1.0 and summary["failures"] == 0 and summary["parameters_passed"] is True
    assert "accuracy" not in _report().summary()  # only with labelled inputs


# --- render ----------------------------------------------------------------------------------------------


def test_a_pass_ends_with_the_passed_line_naming_every_runtime():
    text = _report(runtimes=[_runtime("torchscript", "torchscript"), _runtime()]).render()
    assert (
        text.splitlines()[-1] == "PASSED: eager, torchscript, onnxruntime agree on 8 samples, and the parameters match"
    )
    assert "FAILED" not in text and "reference: eager PyTorch, deterministic over two runs" in text


def test_a_failure_says_how_many_and_lists_each():
    text = _report(problems=["one"], hashes=[HashCheck("model.onnx", "ab" * 32, None, "gone")]).render()
    lines = text.splitlines()
    at = lines.index("FAILED: 2 problem(s)")
    assert lines[at + 1 : at + 3] == ["  - one", "  - model.onnx: cannot be read (gone)"]
    assert "PASSED" not in text and "files: 0/1 match their sha256 in the manifest" in text


def test_a_warning_is_shown_on_a_pass_and_listed_among_the_failures_on_a_failure():
    warned = [Note.warning("a trace froze the batch"), Note.info("providers: CPU")]
    passing = _report(runtimes=[_runtime(notes=warned)]).render()
    assert "warning: onnxruntime: a trace froze the batch" in passing
    assert "note: onnxruntime: providers: CPU" in passing
    failing = _report(runtimes=[_runtime(notes=warned, batches=[_batch(delta=0.5)])]).render()
    assert "warning: onnxruntime" not in failing
    assert "  - onnxruntime: note: a trace froze the batch" in failing
    assert "note: onnxruntime: providers: CPU" in failing  # info notes show either way


def test_the_table_has_a_row_per_runtime_and_batch_and_says_why_a_row_failed():
    batches = [
        _batch(1),
        _batch(2, delta=0.5),
        BatchResult(3, 3, error="boom"),
        BatchResult(4, 4, shape_error="(4, 9)"),
    ]
    runtimes = [_runtime(batches=batches), _runtime("pt2", "pt2", error="missing", batches=[])]
    report = _report(runtimes=runtimes, parameters=None)
    cells = [re.split(r"\s{2,}", line.strip()) for line in report.render().splitlines()]
    results = {(c[0], c[1]): c[-1] for c in cells if c[0] in ("onnxruntime", "pt2")}
    assert results == {
        ("onnxruntime", "1"): "pass",
        ("onnxruntime", "2"): "FAIL",
        ("onnxruntime", "3"): "FAIL (raised)",
        ("onnxruntime", "4"): "FAIL (shape)",
        ("pt2", "-"): "FAIL (not run)",
    }


def test_a_failing_output_shows_the_tolerance_it_needed_and_the_first_divergence():
    divergence = Divergence("fc", type="Linear", max_abs=0.5, max_rel=0.25, agreeing=3, line="net.py:12: self.fc(x)")
    text = _report(runtimes=[_runtime(batches=[_batch(delta=0.5)], first_divergence=divergence)]).render()
    assert "where and by how much:" in text and "onnxruntime: minimum required tolerance: atol" in text
    assert "  onnxruntime: first divergence: fc (Linear) max abs diff 0.5" in text
    assert "where and by how much" not in _report().render()


# --- Divergence.text ---------------------------------------------------------------------------------------


def test_a_divergence_names_the_module_its_diffs_the_modules_that_agree_and_the_line():
    full = Divergence("net.2", type="Linear", max_abs=0.49, max_rel=0.031, agreeing=2, line="net.py:12: self.fc(x)")
    assert full.text() == (
        "first divergence: net.2 (Linear) max abs diff 0.49, max rel diff 0.031; the 2 module(s) before it agree; "
        "called at net.py:12: self.fc(x)"
    )
    bare = Divergence("", type="Net", max_abs=1.0)
    assert bare.text() == "first divergence: (the model itself) (Net) max abs diff 1; the 0 module(s) before it agree"


def test_no_divergence_says_why_instead():
    assert Divergence.none("every module agrees: the difference is in the final outputs only", 5).text() == (
        "every module agrees: the difference is in the final outputs only"
    )
    assert Divergence.none("x", agreeing=5).agreeing == 5 and Divergence.none("x").module is None
