"""run_eager: the reference run on every case and checked before anything is blamed on the artifacts
(deterministic, keeping its own state, raising nowhere, keeping its declared shapes); against_float32."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from exporter.config import VerifyConfig
from exporter.interface import InputSpec, Interface, OutputSpec
from exporter.verification.expected import against_float32, run_eager
from exporter.verification.inputs import Case, InputSet
from exporter.verification.results import VerificationReport

CPU = torch.device("cpu")
INTERFACE = Interface(inputs=(InputSpec("x", (1, 4)),), outputs=(OutputSpec("y", ("batch", 3)),))
ONE, FOUR = Case(1), Case(4)


def _feeds() -> InputSet:
    """Two cases by hand: 3 batches of 1 and 2 batches of 4."""
    rng = np.random.default_rng(0)
    return InputSet({ONE: {"x": rng.random((3, 4), np.float32)}, FOUR: {"x": rng.random((8, 4), np.float32)}}, "hand")


def _report() -> VerificationReport:
    return VerificationReport("folder", "net", "cpu", "hand", 11, [1, 4], {}, "fail")


def _linear() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(4, 3).eval()


def _run(model: nn.Module, interface: Interface = INTERFACE, feeds: InputSet | None = None):
    report = _report()
    feeds = feeds or _feeds()
    return run_eager(model, CPU, interface, feeds, report, VerifyConfig()), report, feeds


class _Counting(nn.Module):
    """Counts its calls in a buffer: its state changes on every call, its output does not."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.register_buffer("calls", torch.zeros(1))

    def forward(self, x):
        self.calls += 1
        return self.fc(x)


class _ClampsOnce(nn.Module):
    """Clamps its own weight in place: the first call changes it, later calls find it clamped already."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        with torch.no_grad():
            self.fc.weight.clamp_(-0.1, 0.1)
        return self.fc(x)


class _RaisesAtFour(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        if x.shape[0] == 4:
            raise ValueError("batch 4 is not supported\nsecond line of the message")
        return self.fc(x)


# --- a sound reference -------------------------------------------------------------------------------


def test_a_sound_reference_is_deterministic_and_gives_every_case():
    model = _linear()
    expected, report, feeds = _run(model)
    assert report.problems == [] and report.reference["deterministic"] is True
    assert report.reference["max_abs_diff_between_runs"] == 0.0 and "mutated_by_forward" not in report.reference
    assert list(expected) == [ONE, FOUR]
    for case in (ONE, FOUR):
        with torch.no_grad():
            want = model(torch.from_numpy(feeds.groups[case]["x"])).numpy()
        assert np.array_equal(expected[case]["y"], want)
    assert report.reference["seconds"] > 0


# --- what is reported instead of blamed on the artifacts ------------------------------------------------


def test_dropout_left_on_is_reported_as_nondeterministic():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.5)).train()  # not eval(): dropout on
    interface = Interface(inputs=INTERFACE.inputs, outputs=(OutputSpec("y", ("batch", 16)),))
    _, report, _ = _run(model, interface)
    assert report.reference["deterministic"] is False and report.reference["max_abs_diff_between_runs"] > 0
    (problem,) = report.problems
    assert problem.startswith("the eager reference is nondeterministic: two runs on the same inputs differ")


def test_a_buffer_changed_on_every_call_is_reported_as_a_state_change_by_name():
    _, report, _ = _run(_Counting().eval())
    assert report.reference["mutated_by_forward"] == ["calls"]
    (problem,) = report.problems
    assert problem.startswith("forward changes the model's state on every call (calls differ after each run)")
    assert "nondeterministic" not in problem  # the cause is named, not the symptom


def test_a_change_made_by_the_first_call_only_is_a_note_not_a_problem():
    _, report, _ = _run(_ClampsOnce().eval())
    assert report.problems == [] and report.reference["deterministic"] is True
    assert report.reference["changed_by_first_call"] == ["fc.weight"]


def test_a_reference_that_raises_at_one_batch_size_lists_that_line_once_and_keeps_the_others():
    expected, report, _ = _run(_RaisesAtFour().eval())
    assert list(expected) == [ONE]
    assert report.problems == ["eager (the reference) raised at batch 4: batch 4 is not supported"]
    assert report.reference["deterministic"] is True  # the cases it ran, it ran twice alike


def test_an_output_that_breaks_its_declared_shape_is_reported():
    interface = Interface(inputs=INTERFACE.inputs, outputs=(OutputSpec("y", ("batch", 5)),))
    _, report, _ = _run(_linear(), interface)
    (problem,) = report.problems
    assert problem.startswith("eager (the reference) at batch 1: output 'y' has shape (3, 3) over 3 samples")
    assert "the manifest declares (3, 5)" in problem


def test_labels_for_more_classes_than_the_model_has_are_refused():
    from exporter.errors import InputSpecError

    feeds = _feeds()
    feeds.labels = {ONE: np.array([0, 1, 7]), FOUR: np.zeros(8, np.int64)}  # class 7 of 3
    with pytest.raises(InputSpecError, match="label 7 is not a class of output 'y' \\(0 to 2\\)"):
        _run(_linear(), feeds=feeds)
    feeds.labels = {ONE: np.array([0, 1, 2]), FOUR: np.zeros(8, np.int64)}
    _run(_linear(), feeds=feeds)


# --- against_float32 ---------------------------------------------------------------------------------


def test_against_float32_is_each_runtimes_max_abs_diff_from_the_upcast_model():
    model = _linear().half()
    interface = Interface(inputs=(InputSpec("x", (1, 4), "float16"),), outputs=(OutputSpec("y", ("batch", 3)),))
    x = np.random.default_rng(1).random((4, 4)).astype(np.float16)
    feeds = InputSet({FOUR: {"x": x}}, "hand")
    with torch.no_grad():
        full = copy.deepcopy(model).float()(torch.from_numpy(x.astype(np.float32))).numpy()  # half weights, upcast
        half = model(torch.from_numpy(x)).numpy()
    outputs = {
        "eager": {FOUR: {"y": half}},
        "exact": {FOUR: {"y": full.copy()}},
        "off": {FOUR: {"y": full + 0.25}},
        "other-case": {ONE: {"y": full[:1]}},  # no upcast run at this case: nothing to say
    }
    diffs = against_float32(model, CPU, interface, feeds, outputs)
    assert diffs["exact"] == 0.0 and diffs["off"] == pytest.approx(0.25, abs=1e-6)
    assert diffs["eager"] == pytest.approx(float(np.max(np.abs(half.astype(np.float64) - full))), abs=1e-7)
    assert 0 < diffs["eager"] < 0.01 and diffs["other-case"] is None
    assert next(model.parameters()).dtype == torch.float16  # the model itself is left in half precision
