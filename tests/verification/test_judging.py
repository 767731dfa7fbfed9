"""The judging record: what export writes, and how verify takes it back or is told it was overridden."""

from __future__ import annotations

import pytest

from exporter.config import ExportConfig, VerifyConfig
from exporter.errors import InputSpecError, ManifestError, UsageError
from exporter.interface import InputSpec, Interface, parse_missing
from exporter.verification import judging

CLIP = Interface((InputSpec("x", (2, 32, 8), dynamic=((0, "batch"), (1, "frames"))),))


def test_default_ranges_reach_well_past_twice_the_example():
    assert judging.default_range("frames", 32) == (1, 128)
    assert judging.default_range("frames", 1) == (1, judging.DEFAULT_MAX_SIZE)
    assert judging.default_range("batch", 1) == (1, judging.DEFAULT_MAX_BATCH)
    assert judging.default_range("batch", 100) == (1, 400)


def test_size_ranges_fill_the_defaults_and_keep_what_was_declared():
    assert judging.size_ranges(CLIP, 2, {"frames": (8, 512)}) == {"batch": (1, 128), "frames": (8, 512)}


@pytest.mark.parametrize(
    "declared, message",
    [
        ({"seq": (1, 9)}, "no input has as a dynamic axis"),
        ({"frames": (40, 90)}, "leaves out the example's size 32"),
        ({"frames": (1, 10**12)}, "passes 1,048,576"),  # a hostile manifest's range
    ],
)
def test_a_range_of_no_axis_or_without_the_example_is_refused(declared, message):
    with pytest.raises(InputSpecError, match=message):
        judging.size_ranges(CLIP, 2, declared)


def test_export_config_takes_a_range_in_each_spelling():
    for dynamic in ({"x": {1: "frames:1..64"}}, {"x": {1: ("frames", 1, 64)}}, [("x", 1, "frames", (1, 64))]):
        config = ExportConfig(dynamic=dynamic)
        assert config.dynamic == (("x", 1, "frames"),) and config.dynamic_ranges == (("frames", 1, 64),)
    assert ExportConfig(dynamic=[("x", 0, "batch", (1, 9))]).dynamic_ranges == (("batch", 1, 9),)
    with pytest.raises(InputSpecError, match="two ranges"):
        ExportConfig(dynamic=[("x", 1, "t", (1, 9)), ("y", 1, "t", (1, 8))])
    with pytest.raises(UsageError, match="size range must be"):
        ExportConfig(dynamic=[("x", 1, "t", "wide")])


def test_the_record_holds_every_setting_that_judged():
    config = VerifyConfig(nan_policy="match", atol=1e-3, missing=(("x", ("nan",)),))
    record = judging.recorded(config, {"batch": (1, 128)})
    assert record == {
        "nan_policy": "match", "atol": 1e-3, "rtol": None, "input_range": None, "missing": {"x": ["nan"]},
        "dynamic_ranges": {"batch": [1, 128]},
    }  # fmt: skip


def test_verify_takes_what_it_is_not_given_from_the_record_and_says_so():
    record = judging.recorded(VerifyConfig(nan_policy="match", atol=1e-3), {"batch": (1, 128)})
    config, notes = judging.resolve(VerifyConfig(), record)
    assert config.nan_policy == "match" and config.atol == 1e-3
    assert notes == ["--nan-policy match as recorded at export", "--atol 0.001 as recorded at export"]


def test_a_setting_given_to_verify_overrides_the_record_and_says_so():
    record = judging.recorded(VerifyConfig(nan_policy="match"), {})
    config, notes = judging.resolve(VerifyConfig(nan_policy="fail"), record)
    assert config.nan_policy == "fail"
    assert notes == ["--nan-policy fail given to verify overrides the export's match"]


def test_without_a_record_the_defaults_hold_and_nothing_is_said():
    config, notes = judging.resolve(VerifyConfig(), None)
    assert config.nan_policy == "fail" and notes == []
    assert judging.resolve(VerifyConfig(), judging.recorded(VerifyConfig(), {}))[1] == []  # the defaults: silent


@pytest.mark.parametrize("record", [{"atol": "nan"}, {"atol": -1}, {"nan_policy": "sometimes"}, {"missing": {"x": 3}}])
def test_a_hostile_record_is_a_manifest_error_not_a_looser_verdict(record):
    with pytest.raises(ManifestError, match="judging holds a setting"):
        judging.resolve(VerifyConfig(), record)


def test_missing_values_name_a_float_input():
    judging.check_missing(VerifyConfig(missing=(("x", ("nan",)),)), CLIP)
    with pytest.raises(InputSpecError, match="names input 'y'"):
        judging.check_missing(VerifyConfig(missing=(("y", ("nan",)),)), CLIP)
    ids = Interface((InputSpec("ids", (1, 4), "int64", (0, 9)),))
    with pytest.raises(InputSpecError, match="only float inputs"):
        judging.check_missing(VerifyConfig(missing=(("ids", ("nan",)),)), ids)


@pytest.mark.parametrize("text, expected", [("x:nan", ("x", ("nan",))), ("x:inf,nan", ("x", ("nan", "inf")))])
def test_parse_missing_reads_an_input_and_its_kinds(text, expected):
    assert parse_missing(text) == expected


@pytest.mark.parametrize("text", ["x", "x:", "x:none", ":nan"])
def test_parse_missing_refuses_anything_else(text):
    with pytest.raises(InputSpecError, match="NAME:nan"):
        parse_missing(text)
