"""The end-to-end example: train on real digits, export in every format, verify on the labelled test set."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from exporter import ExportConfig, VerifyConfig, export, verify
from exporter.cli.commands import cli
from exporter.formats import NAMES as FORMATS

ROOT = Path(__file__).resolve().parent.parent
RUNTIMES = {"eager", "torchscript", "onnxruntime", "pt2", "onnxruntime-int8"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The mlp trained on a reduced budget (10 epochs, about 1 s of training), exported in every format."""
    out = tmp_path_factory.mktemp("digits")
    script = [sys.executable, str(ROOT / "examples" / "train_digits.py"), "--out", str(out), "--model", "mlp"]
    done = subprocess.run([*script, "--epochs", "10", "--seconds", "300"], capture_output=True, text=True, check=True)
    config = ExportConfig(out=out, device="cpu", formats=FORMATS, weights=out / "mlp.safetensors", verify=False)
    return out, export("mlp", config).path, done.stdout


def _eager_classes(out: Path, images: np.ndarray) -> np.ndarray:
    """The trained mlp's classes, computed here by hand from the weights file."""
    state = load_file(out / "mlp.safetensors")
    x = torch.from_numpy(images).flatten(1)
    for i in (0, 2, 4):
        x = torch.relu(x @ state[f"linear_relu_stack.{i}.weight"].T + state[f"linear_relu_stack.{i}.bias"])
    return x.argmax(1).numpy()


@pytest.mark.slow
def test_the_trained_mlp_is_well_above_chance(trained):
    out, _, printed = trained
    accuracy = float(re.search(r"mlp: .* test accuracy ([\d.]+)%", printed)[1])
    assert accuracy > 80, printed  # chance is 10 %
    data = np.load(out / "test.npz")
    assert data["inputs"].shape == (359, 28, 28) and data["inputs"].dtype == np.float32
    assert data["inputs"].min() >= 0 and data["inputs"].max() <= 1 and set(data["labels"]) == set(range(10))


@pytest.mark.slow
def test_labelled_verification_passes_with_each_runtimes_accuracy(trained):
    out, folder, _ = trained
    args = ["verify", str(folder), "--inputs", str(out / "test.npz"), "--max-accuracy-drop", "0.02", "--no-record"]
    result = CliRunner().invoke(cli, [*args, "--json", "-"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["accuracy"]) == RUNTIMES
    data = np.load(out / "test.npz")
    by_hand = float((_eager_classes(out, data["inputs"]) == data["labels"]).mean())
    assert report["accuracy"]["eager"] == pytest.approx(by_hand, abs=1e-12) and by_hand > 0.8
    assert report["gates"]["onnxruntime-int8"].startswith("accuracy drop")
    text = CliRunner().invoke(cli, args).stdout
    assert "int8 gate: accuracy drop" in text and "accuracy on 359 labelled samples" in text


@pytest.mark.slow
def test_predict_on_a_test_image_gives_its_label(trained, tmp_path):
    out, folder, _ = trained
    data = np.load(out / "test.npz")
    right = np.flatnonzero(_eager_classes(out, data["inputs"]) == data["labels"])[0]
    np.save(tmp_path / "digit.npy", data["inputs"][right])
    result = CliRunner().invoke(cli, ["predict", str(folder), "--input", str(tmp_path / "digit.npy"), "--json", "-"])
    assert result.exit_code == 0, result.output
    predictions = json.loads(result.stdout)["predictions"]
    assert set(predictions) == RUNTIMES
    assert {p["class"] for p in predictions.values()} == {int(data["labels"][right])}


@pytest.mark.slow
def test_the_int8_accuracy_gate_passes_at_its_threshold_and_fails_just_below(trained, tmp_path):
    """Labels set to eager's own classes: eager scores 100 %, and int8 exactly its top-1 agreement with eager,
    so the drop is a known count of samples. The images are two test digits overlaid, ambiguous enough that
    int8 changes a few classes (7 of 2,048 with the fully trained mlp; none on uniform noise)."""
    out, folder, _ = trained
    digits = np.load(out / "test.npz")["inputs"]
    pick = np.random.default_rng(0).integers(0, len(digits), (2, 2048))
    images = (0.5 * digits[pick[0]] + 0.5 * digits[pick[1]]).astype(np.float32)
    np.save(tmp_path / "random.npy", images)
    base = VerifyConfig(inputs_path=tmp_path / "random.npy", save_outputs=tmp_path / "out.npz", device="cpu")
    verify(folder, base, write=False)
    saved = np.load(tmp_path / "out.npz")
    eager, int8 = (saved[f"{rt}__batch_64__logits"].argmax(1) for rt in ("eager", "onnxruntime-int8"))
    flips = int((eager != int8).sum())
    assert flips > 0
    np.savez(tmp_path / "labelled.npz", inputs=images, labels=eager)
    labelled = replace(base, inputs_path=tmp_path / "labelled.npz", save_outputs=None)

    at = verify(folder, replace(labelled, max_accuracy_drop=flips / 2048), write=False)
    assert at.accuracy["eager"] == 1.0 and at.accuracy["onnxruntime-int8"] == 1 - flips / 2048
    assert at.passed, at.failures
    below = verify(folder, replace(labelled, max_accuracy_drop=(flips - 0.5) / 2048), write=False)
    assert not below.passed
    assert [f for f in below.failures if "--max-accuracy-drop allows" in f and f.startswith("onnxruntime-int8")]


@pytest.mark.slow
def test_labels_outside_the_models_classes_are_one_line_and_exit_2(trained, tmp_path):
    _, folder, _ = trained
    np.savez(tmp_path / "bad.npz", inputs=np.zeros((4, 28, 28), np.float32), labels=np.array([0, 1, 2, 10]))
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "verify", str(folder), "--inputs", str(tmp_path / "bad.npz"), "--no-record"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "label 10 is not a class of output 'logits' (0 to 9)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
