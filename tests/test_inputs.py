"""Seeded inputs: reproducible, spread over batch sizes, saved and replayed."""

from __future__ import annotations

import numpy as np
import pytest

from exporter.config import DEFAULT_SAMPLES, QUANTIZED_SAMPLES, VerifyConfig
from exporter.errors import InputSpecError
from exporter.inputs import InputSet, default_batch_sizes


def test_default_batch_sizes_cover_one_the_export_batch_and_64():
    assert default_batch_sizes(1) == (1, 64)
    assert default_batch_sizes(8) == (1, 8, 64)


def test_generated_inputs_are_seeded_uniform_and_spread_over_batch_sizes():
    config = VerifyConfig(samples=300, batch_sizes=(1, 64))
    a = InputSet.generate((28, 28), "float32", config, 1)
    b = InputSet.generate((28, 28), "float32", config, 1)
    assert all(np.array_equal(a.groups[k], b.groups[k]) for k in a.groups)
    # every batch size runs ceil(300 / 65) = 5 batches
    assert a.groups[1].shape == (5, 28, 28) and a.groups[64].shape == (320, 28, 28)
    assert a.groups[1].dtype == np.float32 and a.groups[1].min() >= 0 and a.groups[1].max() < 1


def test_the_default_sample_count_grows_only_when_a_quantised_runtime_is_judged():
    fp32 = InputSet.generate((28, 28), "float32", VerifyConfig(), 1)
    int8 = InputSet.generate((28, 28), "float32", VerifyConfig(), 1, quantized=True)
    assert fp32.samples == 65 * 6  # ceil(384 / 65) batches of 1 and of 64
    assert int8.samples == 65 * 127  # ceil(8192 / 65)
    given = InputSet.generate((28, 28), "float32", VerifyConfig(samples=130), 1, quantized=True)
    assert given.samples == 130  # an explicit --samples is kept as it is


def test_samples_for_resolves_the_default_and_keeps_a_given_count():
    assert VerifyConfig().samples_for(False) == DEFAULT_SAMPLES == 384
    assert VerifyConfig().samples_for(True) == QUANTIZED_SAMPLES == 8192
    assert VerifyConfig(samples=10).samples_for(True) == 10
    with pytest.raises(InputSpecError, match="--samples must be from 1"):
        VerifyConfig(samples=0)


def test_another_seed_gives_other_inputs():
    one = InputSet.generate((28, 28), "float32", VerifyConfig(seed=1), 1)
    two = InputSet.generate((28, 28), "float32", VerifyConfig(seed=2), 1)
    assert not np.array_equal(one.groups[64], two.groups[64])


def test_input_range_and_normal_distribution():
    ranged = InputSet.generate((4,), "float32", VerifyConfig(input_range=(-2.0, -1.0), batch_sizes=(8,)), 1)
    assert ranged.groups[8].min() >= -2 and ranged.groups[8].max() < -1
    normal = InputSet.generate((4,), "float32", VerifyConfig(distribution="normal", samples=4000), 1)
    assert abs(float(normal.groups[64].mean()) - 0.5) < 0.05


def test_saved_inputs_replay_exactly(tmp_path):
    original = InputSet.generate((28, 28), "float32", VerifyConfig(samples=70), 1)
    original.save(tmp_path / "in.npz")
    replay = InputSet.load(tmp_path / "in.npz", (28, 28), "float32", None)
    assert list(replay.groups) == list(original.groups)
    assert all(np.array_equal(replay.groups[k], original.groups[k]) for k in original.groups)


def test_a_single_array_is_split_into_batches(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((100, 28, 28), dtype=np.float64))
    loaded = InputSet.load(tmp_path / "x.npy", (28, 28), "float32", 64)
    assert {k: len(v) for k, v in loaded.groups.items()} == {36: 36, 64: 64}
    assert loaded.groups[64].dtype == np.float32


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: np.save(p / "x.npy", np.zeros((3, 27, 28))), "must have shape"),
        (lambda p: (p / "x.npy").write_text("hello"), "not a readable"),
        (lambda _p: None, "does not exist"),
    ],
    ids=["wrong-shape", "not-numpy", "missing"],
)
def test_bad_input_files_are_usage_errors(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(InputSpecError, match=message):
        InputSet.load(tmp_path / "x.npy", (28, 28), "float32", None)


def test_a_pickled_object_array_is_refused(tmp_path):
    np.save(tmp_path / "x.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputSpecError):
        InputSet.load(tmp_path / "x.npy", (28, 28), "float32", None)
