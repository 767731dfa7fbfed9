"""The probes: which sizes and edge values they choose, what they feed, and the budget they keep."""

from __future__ import annotations

import numpy as np
import pytest

from exporter.config import VerifyConfig
from exporter.interface import InputSpec
from exporter.verification import probes
from exporter.verification.inputs import Case, InputSet

IMAGE = InputSpec("x", (1, 28, 28))
CLIP = InputSpec("x", (1, 32, 8), dynamic=((0, "batch"), (1, "frames")))


def test_size_candidates_take_the_small_the_odd_the_long_and_the_maximum():
    sizes = probes.size_candidates(32, 1, 200, np.random.default_rng(0))
    assert sizes[:4] == [1, 2, 3, 37]  # 37: the first prime past the example
    assert 15 in sizes  # below half
    assert 73 in sizes and 200 in sizes  # a prime well past twice the example (64 + 32/4), and the maximum
    assert len(sizes) == len(set(sizes)) and all(1 <= s <= 200 for s in sizes)


def test_size_candidates_stay_inside_a_declared_range():
    sizes = probes.size_candidates(32, 16, 48, np.random.default_rng(0))
    assert min(sizes) == 16 and max(sizes) == 48 and 1 not in sizes


@pytest.mark.parametrize(
    "spec, kinds",
    [
        (IMAGE, ["zeros", "ends", "constant", "repeated"]),
        (InputSpec("x", (1, 4), value_range=(1.0, 2.0)), ["ends", "constant", "repeated"]),  # no zero in range
        (InputSpec("ids", (1, 4), "int64", (0, 99)), ["ends"]),
        (InputSpec("mask", (1, 4), "bool"), ["constant"]),
    ],
)
def test_each_input_kind_gets_the_value_probes_that_mean_something_for_it(spec, kinds):
    assert probes.value_kinds(spec) == kinds


def test_declared_missing_values_add_their_probes():
    assert probes.value_kinds(IMAGE, ("nan", "inf"))[-2:] == ["nan", "inf"]


@pytest.mark.parametrize("seed", range(10))
def test_edge_values_hold_what_each_probe_names(seed):
    rng = np.random.default_rng(seed)
    base = rng.uniform(-1, 1, (4, 6, 5)).astype(np.float32)
    zeros = probes.edge_values("zeros", IMAGE, base, (-1, 1), rng)
    assert np.all(zeros[0] == 0) and not np.signbit(zeros[0]).any() and np.signbit(zeros[1]).all()
    assert (zeros[2:] == 0).any() and (zeros[2:] != 0).any()
    ends = probes.edge_values("ends", IMAGE, base, (-1, 1), rng)
    assert np.all(ends[0] == -1) and np.all(ends[1] == 1) and set(np.unique(ends)) <= {-1, 1}
    constant = probes.edge_values("constant", IMAGE, base, (-1, 1), rng)
    assert all(len(np.unique(row)) == 1 for row in constant)
    assert len(np.unique(probes.edge_values("repeated", IMAGE, base, (-1, 1), rng))) <= 3
    missing = probes.edge_values("nan", IMAGE, base, (-1, 1), rng)
    assert all(np.isnan(row).any() for row in missing) and np.isfinite(missing).any()
    assert np.isinf(probes.edge_values("inf", IMAGE, base, (-1, 1), rng)).any()
    assert np.array_equal(base, base.copy())  # the seeded values are left as they were


def test_an_unknown_probe_is_refused():
    with pytest.raises(ValueError, match="no value probe"):
        probes.edge_values("fuzz", IMAGE, np.zeros((4, 2)), (0, 1), np.random.default_rng(0))


def test_the_plan_keeps_its_budget_and_lists_what_it_left_out():
    ranges = {"batch": (1, 4096), "frames": (1, 4096)}
    plan = probes.plan((CLIP,), {"batch": 1, "frames": 32}, ranges, {"batch": {1}, "frames": {32}}, {}, 0, 0)
    cost = sum(b if label == "batch" else b * s / 32 for label, s, b in plan.sizes) + 4 * len(plan.values)
    assert cost <= probes.PROBE_MIN_BUDGET
    assert ("batch", 2, 2) in plan.sizes and ("frames", 1, 2) in plan.sizes  # the small ones come first
    assert any(what.startswith("batch 4096") for what in plan.skipped)
    assert len(plan.values) == 4  # every edge value of the float input fits


def test_probes_are_drawn_after_the_seeded_cases_and_counted_apart():
    config = VerifyConfig(samples=8)
    ranges = {"batch": (1, 128), "frames": (1, 128)}
    plain = InputSet.generate((CLIP,), config, 1, {"frames": 32})
    probed = InputSet.generate((CLIP,), config, 1, {"frames": 32}, ranges=ranges)
    for case, arrays in plain.groups.items():  # the same seeded samples with or without probes
        assert np.array_equal(arrays["x"], probed.groups[case]["x"])
    assert probed.samples == plain.samples and probed.batch_sizes == plain.batch_sizes
    assert probed.probe_samples > 0
    assert {1, 2, 3, 128} <= set(probed.sizes_tried()["frames"])
    zeros = next(c for c in probed.groups if c.probe == "zeros.x")
    assert zeros.label == "4 (frames=32, exact zeros in `x`)"
    assert np.all(probed.groups[zeros]["x"][0] == 0)


def test_probes_are_off_when_asked():
    ranges = {"batch": (1, 128)}
    found = InputSet.generate((IMAGE,), VerifyConfig(samples=8, probes=False), 1, ranges=ranges)
    assert not any(case.probe for case in found.groups) and found.plan is None


def test_a_saved_set_with_probes_replays_as_the_same_cases(tmp_path):
    ranges = {"batch": (1, 128)}
    made = InputSet.generate((IMAGE,), VerifyConfig(samples=8), 1, ranges=ranges)
    made.save(tmp_path / "set.npz")
    loaded = InputSet.load(tmp_path / "set.npz", (IMAGE,), None)
    assert set(loaded.groups) == set(made.groups)
    assert Case(4, (), "", "zeros.x") in loaded.groups


def test_a_padding_mask_gets_no_value_probe_but_a_plain_integer_input_does():
    from exporter.interface import LEFT_PADDING_MASK, PADDING_MASK

    for kind in (PADDING_MASK, LEFT_PADDING_MASK):
        assert probes.value_kinds(InputSpec("attention_mask", (1, 8), "int64", (0, 1), kind=kind)) == []
    assert probes.value_kinds(InputSpec("attention_mask", (1, 8), "int64", (0, 1))) == ["ends"]  # declared plain
