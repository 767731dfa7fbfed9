"""When verification fails, where and by how much: the required tolerance and the first divergence."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from exporter import ExportConfig, VerifyConfig, export, verify
from exporter.artifacts.manifest import Manifest
from exporter.cli.commands import cli
from exporter.eager import reference
from exporter.verification import tolerance

from ..helpers import change_onnx_weight, restamp

pytestmark = pytest.mark.slow  # every test verifies an exported folder

BROKEN_LAYER = "linear_relu_stack.2"


@pytest.fixture(scope="module")
def three_formats(tmp_path_factory):
    """The seed network in TorchScript, ONNX and pt2 (unverified: the tests verify it)."""
    out = tmp_path_factory.mktemp("localize")
    return export("mlp", ExportConfig(out=out, device="cpu", formats=("torchscript", "onnx", "pt2"), verify=False)).path


@pytest.fixture
def broken_onnx(mlp_dir):
    """The mlp folder with one weight of linear_relu_stack.2 changed in model.onnx, hashes restamped."""
    change_onnx_weight(mlp_dir, f"{BROKEN_LAYER}.weight")
    restamp(mlp_dir)  # the signature no longer checks: the tests pass trust=True to run TorchScript
    return mlp_dir


def _runtime(report, name):
    return next(r for r in report.runtimes if r.runtime == name)


def _needed(report, name):
    return tolerance.pooled(
        [o.required_tolerance for b in _runtime(report, name).batches for o in b.outputs if o.required_tolerance]
    )


def test_the_required_atol_makes_the_same_verification_pass_and_nine_tenths_of_it_fails(broken_onnx):
    config = VerifyConfig(samples=64, trust=True, localize=False)
    report = verify(broken_onnx, config, write=False)
    need = _needed(report, "onnxruntime")
    assert not _runtime(report, "onnxruntime").passed and need["atol"] > 0
    # the mlp ends in a ReLU: logits that are exactly 0 in eager differ here, so no rtol alone passes
    assert need["rtol"] is None and "no rtol alone can pass" in need["why"]
    enough = verify(broken_onnx, VerifyConfig(samples=64, trust=True, localize=False, atol=need["atol"]), write=False)
    assert _runtime(enough, "onnxruntime").passed
    short = VerifyConfig(samples=64, trust=True, localize=False, atol=0.9 * need["atol"])
    assert not _runtime(verify(broken_onnx, short, write=False), "onnxruntime").passed


def test_a_changed_onnx_weight_is_localised_to_its_layer(broken_onnx):
    report = verify(broken_onnx, VerifyConfig(samples=64, trust=True), write=False)
    found = _runtime(report, "onnxruntime").first_divergence
    assert found.module == BROKEN_LAYER and found.type == "Linear" and found.max_abs > 1e-3
    assert found.agreeing == 3  # flatten, linear_relu_stack.0 and .1 agree
    assert "mlp.py:" in found.line
    assert _runtime(report, "torchscript").first_divergence is None  # it passed: nothing to localise
    text = report.render()
    assert f"onnxruntime: first divergence: {BROKEN_LAYER} (Linear) max abs diff" in text
    assert "onnxruntime: minimum required tolerance: atol" in text


def test_the_json_report_carries_both_for_the_failing_runtime_only(broken_onnx):
    data = verify(broken_onnx, VerifyConfig(samples=64, trust=True), write=False).to_dict()
    ort = next(r for r in data["runtimes"] if r["runtime"] == "onnxruntime")
    ts = next(r for r in data["runtimes"] if r["runtime"] == "torchscript")
    assert ort["first_divergence"]["module"] == BROKEN_LAYER and ts["first_divergence"] is None
    needed = [o["required_tolerance"] for b in ort["batches"] if not b.get("probe") for o in b["outputs"]]
    assert all(set(n) >= {"atol", "rtol", "reference_stats"} for n in needed)
    assert all(o["required_tolerance"] is None for b in ts["batches"] for o in b["outputs"])


def test_no_localize_skips_it(broken_onnx):
    report = verify(broken_onnx, VerifyConfig(samples=64, trust=True, localize=False), write=False)
    assert not report.passed and _runtime(report, "onnxruntime").first_divergence is None


def test_an_untrusted_folder_loads_no_code_to_localise(broken_onnx):
    report = verify(broken_onnx, VerifyConfig(samples=64, localize=True), write=False)
    assert _runtime(report, "torchscript").error and _runtime(report, "torchscript").first_divergence is None
    assert _runtime(report, "onnxruntime").first_divergence.module == BROKEN_LAYER  # ONNX runs no code


def test_a_layer_that_differs_is_localised_in_onnx_and_pt2_and_torchscript_says_it_cannot_be_opened(three_formats):
    # The eager reference with one bias of linear_relu_stack.2 moved: every artifact now differs there.
    model = reference.rebuild(three_formats, Manifest.load(three_formats), VerifyConfig(), torch.device("cpu"), [])
    with torch.no_grad():
        model.get_submodule(BROKEN_LAYER).bias[0] += 0.5
    report = verify(three_formats, VerifyConfig(samples=64), model=model, write=False)
    for name in ("onnxruntime", "pt2"):
        found = _runtime(report, name).first_divergence
        assert found.module == BROKEN_LAYER and found.max_abs == pytest.approx(0.5, rel=1e-3), name
    assert _runtime(report, "torchscript").first_divergence.note.startswith("cannot be opened up: TorchScript")


def test_a_sound_model_has_no_divergence_even_when_asked(three_formats):
    report = verify(three_formats, VerifyConfig(samples=64, localize=True), write=False)
    assert report.passed
    for name in ("onnxruntime", "pt2"):
        found = _runtime(report, name).first_divergence
        assert found.module is None and found.note.startswith("no divergence found") and found.agreeing > 5
    assert all(o.required_tolerance is None for r in report.runtimes for b in r.batches for o in b.outputs)
    default = verify(three_formats, VerifyConfig(samples=64), write=False)
    assert all(r.first_divergence is None for r in default.runtimes)  # passing: not localised by default


def test_the_cli_localizes_on_request(three_formats):
    result = CliRunner().invoke(cli, ["verify", str(three_formats), "--samples", "64", "--no-record", "--localize"])
    assert result.exit_code == 0, result.output
    assert "pt2: no divergence found" in result.output
    result = CliRunner().invoke(
        cli, ["verify", str(three_formats), "--samples", "64", "--no-record", "--no-localize", "--json", "-"]
    )
    assert result.exit_code == 0 and all(r["first_divergence"] is None for r in json.loads(result.output)["runtimes"])
