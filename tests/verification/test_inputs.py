"""Seeded inputs: reproducible, drawn per input spec, spread over batch sizes and dynamic axes, saved and replayed."""

from __future__ import annotations

import numpy as np
import pytest

from exporter.config import DEFAULT_SAMPLES, QUANTIZED_SAMPLES, VerifyConfig
from exporter.errors import InputSpecError
from exporter.interface import InputSpec
from exporter.verification.inputs import Case, InputSet

IMAGE = (InputSpec("input", (1, 28, 28)),)


def _one(groups, batch):
    """The single input's array of the case with this batch size (and no other dynamic axis)."""
    return groups[Case(batch)]["input"]


def test_generated_inputs_are_seeded_uniform_and_spread_over_batch_sizes():
    config = VerifyConfig(samples=300, batch_sizes=(1, 64))
    a = InputSet.generate(IMAGE, config, 1)
    b = InputSet.generate(IMAGE, config, 1)
    assert all(np.array_equal(a.groups[k]["input"], b.groups[k]["input"]) for k in a.groups)
    # every batch size runs ceil(300 / 65) = 5 batches
    assert _one(a.groups, 1).shape == (5, 28, 28) and _one(a.groups, 64).shape == (320, 28, 28)
    assert _one(a.groups, 1).dtype == np.float32 and _one(a.groups, 1).min() >= 0 and _one(a.groups, 1).max() < 1


def test_the_default_sample_count_grows_only_when_a_quantised_runtime_is_judged():
    fp32 = InputSet.generate(IMAGE, VerifyConfig(), 1)
    int8 = InputSet.generate(IMAGE, VerifyConfig(), 1, quantized=True)
    assert fp32.samples == 65 * 6  # ceil(384 / 65) batches of 1 and of 64
    assert int8.samples == 65 * 127  # ceil(8192 / 65)
    given = InputSet.generate(IMAGE, VerifyConfig(samples=130), 1, quantized=True)
    assert given.samples == 130  # an explicit --samples is kept as it is


def test_samples_for_resolves_the_default_and_keeps_a_given_count():
    assert VerifyConfig().samples_for(False) == DEFAULT_SAMPLES == 384
    assert VerifyConfig().samples_for(True) == QUANTIZED_SAMPLES == 8192
    assert VerifyConfig(samples=10).samples_for(True) == 10


def test_a_large_model_gets_one_batch_per_case_by_default_and_says_so():
    assert VerifyConfig().samples_for(False, large=True) == 1
    assert VerifyConfig().samples_for(True, large=True) == QUANTIZED_SAMPLES  # int8's gate still needs its samples
    assert VerifyConfig(samples=500).samples_for(False, large=True) == 500
    specs = (InputSpec("input", (1, 28, 28)),)
    feeds = InputSet.generate(specs, VerifyConfig(), 1, large=True)
    assert feeds.batch_sizes == [1, 64] and feeds.samples == 65  # every batch size, one whole batch each
    assert "one batch per case" in feeds.origin
    assert "one batch per case" not in InputSet.generate(specs, VerifyConfig(samples=500), 1, large=True).origin
    with pytest.raises(InputSpecError, match="--samples must be from 1"):
        VerifyConfig(samples=0)


def test_another_seed_gives_other_inputs():
    one = InputSet.generate(IMAGE, VerifyConfig(seed=1), 1)
    two = InputSet.generate(IMAGE, VerifyConfig(seed=2), 1)
    assert not np.array_equal(_one(one.groups, 64), _one(two.groups, 64))


def test_input_range_and_normal_distribution():
    vector = (InputSpec("input", (1, 4)),)
    ranged = InputSet.generate(vector, VerifyConfig(input_range=(-2.0, -1.0), batch_sizes=(8,)), 1)
    assert _one(ranged.groups, 8).min() >= -2 and _one(ranged.groups, 8).max() < -1
    normal = InputSet.generate(vector, VerifyConfig(distribution="normal", samples=4000), 1)
    assert abs(float(_one(normal.groups, 64).mean()) - 0.5) < 0.05


def test_each_input_is_drawn_as_its_spec_says_and_the_origin_says_what_was_drawn():
    specs = (
        InputSpec("ids", (1, 8), "int64", (3, 5), dynamic=((0, "batch"), (1, "seq"))),
        InputSpec("mask", (1, 8), "bool", dynamic=((0, "batch"), (1, "seq"))),
        InputSpec("scale", (1, 2), "float32", (10.0, 20.0)),
    )
    made = InputSet.generate(specs, VerifyConfig(samples=200), 1, {"seq": 8})
    for case, named in made.groups.items():
        seq = dict(case.sizes)["seq"]
        assert named["ids"].dtype == np.int64 and named["ids"].shape[1] == seq
        assert named["ids"].min() >= 3 and named["ids"].max() <= 5
        assert named["mask"].dtype == np.bool_ and named["scale"].min() >= 10 and named["scale"].max() < 20
    ids = np.concatenate([g["ids"].ravel() for g in made.groups.values()])
    assert set(np.unique(ids)) == {3, 4, 5}  # every id of the range, never all zeros
    mask = np.concatenate([g["mask"].ravel() for g in made.groups.values()])
    assert 0.4 < mask.mean() < 0.6
    assert {dict(c.sizes)["seq"] for c in made.groups} == {4, 8, 16}  # shorter and longer than the example
    assert "ids int64 (batch, seq) uniform integers in [3, 5]" in made.origin
    assert "mask bool (batch, seq) False/True" in made.origin and "[10, 20)" in made.origin


def test_an_integer_input_without_a_range_is_refused_not_drawn_as_zeros():
    with pytest.raises(InputSpecError, match=r"needs the range.*--input ids:1,32:int64:0\.\.999"):
        InputSpec("ids", (1, 32), "int64")


def test_saved_inputs_replay_exactly(tmp_path):
    original = InputSet.generate(IMAGE, VerifyConfig(samples=70), 1)
    original.save(tmp_path / "in.npz")
    assert sorted(np.load(tmp_path / "in.npz")) == ["batch_1", "batch_64"]  # the single-input form is unchanged
    replay = InputSet.load(tmp_path / "in.npz", IMAGE, None)
    assert list(replay.groups) == list(original.groups)
    assert all(np.array_equal(replay.groups[k]["input"], original.groups[k]["input"]) for k in original.groups)


def test_saved_named_inputs_with_a_dynamic_axis_replay_exactly(tmp_path):
    specs = (
        InputSpec("ids", (1, 8), "int64", (0, 9), dynamic=((0, "batch"), (1, "seq"))),
        InputSpec("x", (1, 3)),
    )
    original = InputSet.generate(specs, VerifyConfig(samples=40), 1, {"seq": 8})
    original.save(tmp_path / "in.npz")
    replay = InputSet.load(tmp_path / "in.npz", specs, None)
    assert set(replay.groups) == set(original.groups)
    for case in original.groups:
        for name in ("ids", "x"):
            assert np.array_equal(replay.groups[case][name], original.groups[case][name])


def test_a_single_array_is_split_into_batches(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((100, 28, 28), dtype=np.float64))
    loaded = InputSet.load(tmp_path / "x.npy", IMAGE, 64)
    assert {k.batch: len(v["input"]) for k, v in loaded.groups.items()} == {36: 36, 64: 64}
    assert _one(loaded.groups, 64).dtype == np.float32


def test_an_npz_with_one_array_per_input_is_split_into_batches(tmp_path):
    specs = (InputSpec("a", (1, 2)), InputSpec("b", (1, 3), "int64", (0, 9)))
    np.savez(tmp_path / "x.npz", a=np.zeros((5, 2)), b=np.ones((5, 3), dtype=np.int32))
    loaded = InputSet.load(tmp_path / "x.npz", specs, 2)
    assert {k.batch: (len(v["a"]), v["b"].dtype) for k, v in loaded.groups.items()} == {
        2: (4, "int64"),
        1: (1, "int64"),
    }
    np.savez(tmp_path / "y.npz", a=np.zeros((5, 2)), b=np.ones((4, 3), dtype=np.int32))
    with pytest.raises(InputSpecError, match="the same number of samples"):
        InputSet.load(tmp_path / "y.npz", specs, 2)
    np.savez(tmp_path / "z.npz", a=np.zeros((5, 2)), b=np.full((5, 3), 0.5))
    with pytest.raises(InputSpecError, match="is int64: give integers"):
        InputSet.load(tmp_path / "z.npz", specs, 2)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: np.save(p / "x.npy", np.zeros((3, 27, 28))), "must have shape"),
        (lambda p: (p / "x.npy").write_text("hello"), "not a readable"),
        (lambda _p: None, "does not exist"),
        (lambda p: np.save(p / "x.npy", np.zeros((3, 28, 28), dtype=np.complex64)), "complex numbers"),
    ],
    ids=["wrong-shape", "not-numpy", "missing", "complex"],
)
def test_bad_input_files_are_usage_errors(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(InputSpecError, match=message):
        InputSet.load(tmp_path / "x.npy", IMAGE, None)


def test_a_pickled_object_array_is_refused(tmp_path):
    np.save(tmp_path / "x.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputSpecError):
        InputSet.load(tmp_path / "x.npy", IMAGE, None)


def test_first_batches_keeps_one_whole_batch_of_each_case_and_nothing_after_it():
    feeds = InputSet.generate(IMAGE, VerifyConfig(samples=300), 1)
    first = feeds.first_batches()
    assert first.batch_sizes == feeds.batch_sizes and first.origin == feeds.origin
    for case in feeds.groups:
        assert first.count(case) == case.batch
        assert np.array_equal(first.groups[case]["input"], feeds.groups[case]["input"][: case.batch])
    assert first.samples < feeds.samples  # the later batches are not run again


def test_a_large_models_batch_past_100_stands_for_64_unless_samples_or_batch_sizes_are_given():
    specs, past = (InputSpec("input", (1, 28, 28)),), (Case(128, ()),)
    feeds = InputSet.generate(specs, VerifyConfig(), 1, sweep=past, large=True)
    assert feeds.batch_sizes == [1, 128] and feeds.samples == 129 and "stands for 64" in feeds.origin
    assert InputSet.generate(specs, VerifyConfig(), 64, sweep=past, large=True).batch_sizes == [1, 64, 128]
    assert InputSet.generate(specs, VerifyConfig(), 1, sweep=past).batch_sizes == [1, 64, 128]  # not large
    given = InputSet.generate(specs, VerifyConfig(samples=500), 1, sweep=past, large=True)
    assert given.batch_sizes == [1, 64, 128] and "stands for" not in given.origin
    assert InputSet.generate(specs, VerifyConfig(batch_sizes=(1, 64)), 1, large=True).batch_sizes == [1, 64]
    asked = InputSet.generate(specs, VerifyConfig(batch_sizes=(1, 8)), 1, large=True)  # --batch-size: no sweep
    assert asked.batch_sizes == [1, 8] and "stands for" not in asked.origin and "one batch per case" in asked.origin
