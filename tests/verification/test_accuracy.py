"""Labelled inputs: accuracy per runtime, the int8 accuracy-drop gate, and labels that are refused."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from exporter.cli.commands import cli
from exporter.config import Tolerance
from exporter.errors import InputSpecError, UsageError
from exporter.interface import InputSpec
from exporter.verification.accuracy import AccuracyGate, accuracies, check_labels, correct, gate
from exporter.verification.inputs import Case, InputSet

SPEC = (InputSpec("input", (1, 28, 28)),)


def _logits(classes: list[int], width: int = 4) -> np.ndarray:
    out = np.zeros((len(classes), width), dtype=np.float32)
    out[np.arange(len(classes)), classes] = 1.0
    return out


def test_accuracy_is_the_share_of_samples_whose_argmax_is_the_label():
    labels = {Case(2): np.array([0, 1]), Case(1): np.array([3])}
    outputs = {
        "eager": {Case(2): {"logits": _logits([0, 1])}, Case(1): {"logits": _logits([3])}},  # 3 of 3
        "onnxruntime-int8": {Case(2): {"logits": _logits([0, 2])}, Case(1): {"logits": _logits([0])}},  # 1 of 3
        "pt2": {Case(2): {"logits": _logits([0, 1])}},  # raised at batch 1: no accuracy, not a made-up one
    }
    assert accuracies(outputs, labels, "logits") == {"eager": 1.0, "onnxruntime-int8": 1 / 3, "pt2": None}
    assert correct(outputs["onnxruntime-int8"], labels, "logits") == 1


@pytest.mark.parametrize(
    ("eager", "runtime", "max_drop", "passed"),
    [
        (90, 89, 0.01, True),  # exactly one point on 100 samples: the bound itself passes
        (90, 89, 0.0099, False),  # just under it fails
        (90, 90, 0.0, True),
        (90, 91, 0.0, True),  # better than eager
        (90, 85, 0.05, True),
        (90, 84, 0.05, False),
    ],
)
def test_the_accuracy_drop_gate_judges_on_the_right_side_of_its_threshold(eager, runtime, max_drop, passed):
    line, reason = AccuracyGate(max_drop, 100).judge(eager, runtime)
    assert (reason is None) == passed
    assert line.startswith(f"accuracy drop {eager - runtime:.2f} points") and "(labelled data, 100 samples)" in line
    if not passed:
        assert "--max-accuracy-drop" in reason and f"{runtime:.2f}%" in reason


def test_an_unmeasured_accuracy_fails_the_gate():
    assert AccuracyGate(0.5, 100).judge(90, None)[1] is not None


def test_the_gated_tolerance_drops_the_agreement_bar_and_the_element_verdict_only_when_gated():
    tolerance = Tolerance(0.01, 0.05, min_agreement=0.99)
    assert gate(tolerance, False) == tolerance
    gated = gate(tolerance, True)
    assert gated.min_agreement is None and not gated.elementwise and (gated.atol, gated.rtol) == (0.01, 0.05)


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_labels_are_split_into_the_same_batches_as_their_samples(tmp_path):
    images = np.random.default_rng(0).random((70, 28, 28), dtype=np.float32)
    labels = np.arange(70) % 10
    feeds = InputSet.load(_npz(tmp_path / "t.npz", inputs=images, labels=labels), SPEC, None)
    assert list(feeds.groups) == [Case(6), Case(64)] and "labelled" in feeds.origin
    assert np.array_equal(feeds.labels[Case(64)], labels[:64]) and np.array_equal(feeds.labels[Case(6)], labels[64:])
    assert np.array_equal(feeds.groups[Case(64)]["input"], images[:64])


def test_a_file_without_labels_has_none(tmp_path):
    feeds = InputSet.load(_npz(tmp_path / "t.npz", inputs=np.zeros((3, 28, 28), np.float32)), SPEC, None)
    assert feeds.labels is None


def test_labels_of_a_model_with_several_inputs_go_beside_one_array_per_input(tmp_path):
    specs = (InputSpec("image", (1, 4)), InputSpec("ids", (1, 2), "int64", (0, 9)))
    path = _npz(tmp_path / "t.npz", image=np.zeros((5, 4), np.float32), ids=np.ones((5, 2), np.int64), labels=[1] * 5)
    assert np.array_equal(InputSet.load(path, specs, None).labels[Case(5)], [1] * 5)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.arange(5), "5 labels for 6 samples"),
        (np.zeros(6, np.float32), "integer class indices"),
        (np.zeros((6, 1), np.int64), "1-D"),
    ],
    ids=["wrong-count", "not-integers", "not-1d"],
)
def test_bad_labels_are_refused(tmp_path, labels, message):
    path = _npz(tmp_path / "t.npz", inputs=np.zeros((6, 28, 28), np.float32), labels=labels)
    with pytest.raises(InputSpecError, match=message):
        InputSet.load(path, SPEC, None)


def test_labels_beside_a_saved_set_are_refused(tmp_path):
    path = _npz(tmp_path / "t.npz", batch_1=np.zeros((1, 28, 28), np.float32), labels=[0])
    with pytest.raises(InputSpecError, match="not a saved set"):
        InputSet.load(path, SPEC, None)


def test_labels_must_be_classes_of_the_first_output():
    labels = {Case(3): np.array([0, 9, 2])}
    check_labels(labels, ("batch", 10), "logits", "t.npz")  # 0..9: every one a class
    with pytest.raises(InputSpecError, match=r"label 10 is not a class of output 'logits' \(0 to 9\)"):
        check_labels({Case(2): np.array([10, 1])}, ("batch", 10), "logits", "t.npz")
    with pytest.raises(InputSpecError, match="label -1"):
        check_labels({Case(1): np.array([-1])}, ("batch", 10), "logits", "t.npz")
    with pytest.raises(InputSpecError, match="shape"):
        check_labels(labels, ("batch", 3, 10), "logits", "t.npz")


def test_the_accuracy_gate_needs_labelled_inputs():
    result = CliRunner().invoke(cli, ["verify", "/no/such/folder", "--max-accuracy-drop", "0.005"])
    assert result.exit_code == 2 and "--max-accuracy-drop needs labelled data" in result.output
    with pytest.raises(UsageError, match="from 0 to 1"):
        from exporter.config import VerifyConfig

        VerifyConfig(inputs_path="t.npz", max_accuracy_drop=1.5)
