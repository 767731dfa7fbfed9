"""The served-input catalogue (tests/served.py): each broken model fails on its own probe over ten input
seeds, and passes with the probes off (the probe, nothing else, catches it); each sound one passes over
the same seeds. Then what the judging record does on re-verification."""

from __future__ import annotations

import json

import pytest

from exporter import ExportConfig, VerifyConfig, export, verify
from exporter.exporting import ExportResult
from exporter.interface import InputSpec

from ..conftest import ROOT
from ..served import CASES, Case

pytestmark = pytest.mark.slow  # every case exports a model

SERVED = ROOT / "tests" / "served.py"
SEEDS = range(10)


@pytest.fixture(scope="module")
def served_export(tmp_path_factory):
    done: dict[str, ExportResult] = {}

    def get(case: Case) -> ExportResult:
        if case.id not in done:
            given = {"input_shape": case.shape}
            if case.value_range is not None:
                given = {"inputs": (InputSpec("input", case.shape, value_range=case.value_range),)}
            config = ExportConfig(
                out=tmp_path_factory.mktemp(case.id), device="cpu", formats=case.formats, dynamic=case.dynamic,
                verify_config=VerifyConfig(samples=16, **case.verify), **given,
            )  # fmt: skip
            done[case.id] = export(f"{SERVED}:{case.model}", config)
        return done[case.id]

    return get


def _verify(result: ExportResult, case: Case, seed: int, **more):
    """One quick re-verification: a batch of 2 and the probes (the seeded cases are the catalogue's to judge)."""
    config = VerifyConfig(seed=seed, samples=2, batch_sizes=(2,), localize=False, **{**case.verify, **more})
    return verify(result.path, config, write=False)


@pytest.mark.parametrize("case", [c for c in CASES if c.expect == "fail"], ids=lambda c: c.id)
def test_a_broken_model_fails_on_its_own_probe_at_every_seed(served_export, case):
    result = served_export(case)
    for seed in SEEDS:
        report = _verify(result, case, seed)
        failures = "\n".join(report.failures)
        assert not report.passed and case.cause in failures, f"seed {seed}: {failures}"
    if case.probe and not case.rebuild:  # the probe is what catches it: with the probes off the seeded draws pass
        assert _verify(result, case, 0, probes=False).passed


@pytest.mark.parametrize("case", [c for c in CASES if c.expect == "pass"], ids=lambda c: c.id)
def test_a_sound_model_passes_at_every_seed(served_export, case):
    result = served_export(case)
    assert result.passed, result.report.failures
    for seed in SEEDS:
        report = _verify(result, case, seed)
        assert report.passed, f"seed {seed}: {report.failures}"


def test_the_clip_model_tries_each_size_and_lists_them(served_export):
    case = next(c for c in CASES if c.model == "ClipMean")
    report = served_export(case).report
    tried = report.sizes_tried["frames"]
    assert {1, 2, 3, 16, 32, 64, 128} <= set(tried), tried  # 128: the default maximum, 4x the example
    assert any(s % 2 and s > 3 for s in tried)  # an odd size past the small ones
    assert "sizes tried: batch 1, 2, 3" in report.render() and "; frames 1, 2, 3" in report.render()


def test_a_declared_range_is_recorded_and_its_maximum_tried(tmp_path):
    config = ExportConfig(
        out=tmp_path, device="cpu", input_shape=(1, 32, 8), formats=("torchscript",),
        dynamic=(("input", 1, "frames", (1, 200)),), verify_config=VerifyConfig(samples=16),
    )  # fmt: skip
    result = export(f"{SERVED}:ClipMean", config)
    assert result.passed, result.report.failures
    recorded = json.loads((result.path / "manifest.json").read_text())["judging"]["dynamic_ranges"]
    assert recorded == {"batch": [1, 128], "frames": [1, 200]}
    assert 200 in result.report.sizes_tried["frames"]


def test_a_constant_output_at_batch_one_is_called_constant_not_nondeterministic(served_export):
    result = served_export(next(c for c in CASES if c.model == "ConstantAtBatchOne"))
    report = verify(result.path, VerifyConfig(), write=False)  # 6 samples at batch 1, all the same output
    assert report.passed, report.failures
    assert report.reference["deterministic"] is True
    assert report.reference["constant_outputs"]["output"] == ["1"]
    assert "is constant at batch 1" in report.render()
    assert "nondeterministic" not in report.render()


def test_the_nan_policy_of_the_export_is_used_again_and_an_override_is_said(tmp_path):
    config = ExportConfig(
        out=tmp_path, device="cpu", input_shape=(1, 28, 28), formats=("onnx",),
        verify_config=VerifyConfig(nan_policy="match", samples=16),
    )  # fmt: skip
    result = export(f"{ROOT / 'tests' / 'catalogue.py'}:NanOutput", config)
    assert result.passed, result.report.failures
    again = verify(result.path, VerifyConfig(samples=16), write=False)
    assert again.passed and again.nan_policy == "match"
    assert "judging: --nan-policy match as recorded at export" in again.render()
    overridden = verify(result.path, VerifyConfig(samples=16, nan_policy="fail"), write=False)
    assert not overridden.passed
    assert "judging: --nan-policy fail given to verify overrides the export's match" in overridden.render()


def test_the_mlp_report_only_gains_lines_with_the_probes(mlp_export):
    """Every line of the report without probes is in the report with them, in order; the new ones say what
    the probes tried."""
    without = verify(mlp_export.path, VerifyConfig(probes=False), write=False).render().splitlines()
    probed = verify(mlp_export.path, VerifyConfig(), write=False)
    lines = iter(probed.render().splitlines())
    for line in without:
        assert any(line == other for other in lines), f"changed or missing: {line!r}"
    assert probed.passed and "probes (one batch each, beside the seeded draws):" in probed.render()
    assert "edge values tried: exact zeros in `input`, the range's ends in `input`" in probed.render()


def _oracle(report) -> list[dict]:
    return [o.float64_errors for r in report.runtimes for b in r.batches for o in b.outputs if o.float64_errors]


def test_a_runtime_closer_to_float64_than_eager_passes_and_the_report_shows_both_errors(served_export):
    case = next(c for c in CASES if c.model == "Latitudes")
    report = verify(served_export(case).path, VerifyConfig(localize=False), write=False)
    assert report.passed, report.failures
    errors = _oracle(report)
    assert errors and all(e["onnxruntime"] <= e["eager"] for e in errors)
    assert "as close to the float64 answer as eager is" in report.render()


def test_an_artifact_further_from_float64_than_eager_still_fails_with_both_errors(served_export):
    case = next(c for c in CASES if c.model == "LatitudesOffInTrace")
    report = verify(served_export(case).path, VerifyConfig(localize=False), write=False)
    assert not report.passed
    errors = _oracle(report)
    assert errors and all(e["torchscript"] > e["eager"] for e in errors)
