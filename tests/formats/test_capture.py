"""Keeping exporters quiet (formats/capture.py): what they print, log and warn stays off the terminal,
except the warnings that matter, which are kept as one line each; what reached the process's
stdout and stderr is kept in LAST_OUTPUT for a log."""

from __future__ import annotations

import logging
import os
import sys
import warnings

import pytest

from exporter.formats.capture import LAST_OUTPUT, quiet_export


class TracerWarning(Warning):
    """Named as torch.jit's: the category's name is what the kept line starts with."""


def _warn(text: str, category: type[Warning]) -> None:
    warnings.warn(text, category, stacklevel=2)  # as an exporter would warn from inside its own code


# --- warnings -----------------------------------------------------------------------------------


def test_a_meaningful_warning_is_kept_as_its_category_and_first_line():
    kept: list[str] = []
    with quiet_export(kept):
        _warn("Converting a tensor to a Python boolean\nmight cause the trace to be incorrect", TracerWarning)
        _warn("the batch axis was specialised", UserWarning)
    assert kept == [
        "TracerWarning: Converting a tensor to a Python boolean",
        "UserWarning: the batch axis was specialised",
    ]


def test_deprecations_future_warnings_and_their_wording_are_dropped():
    kept: list[str] = []
    with quiet_export(kept):
        _warn("old API", DeprecationWarning)
        _warn("will change", FutureWarning)
        _warn("this argument is deprecated and will be removed", UserWarning)  # noise, whatever its class
        _warn("   ", UserWarning)  # nothing to say
        _warn("a real one", UserWarning)
    assert kept == ["UserWarning: a real one"]


def test_a_warning_already_kept_is_not_kept_twice_and_earlier_entries_stay():
    kept = ["TracerWarning: from the first export"]
    with quiet_export(kept):
        for _ in range(3):
            _warn("the same thing", UserWarning)
    assert kept == ["TracerWarning: from the first export", "UserWarning: the same thing"]


def test_warnings_are_caught_even_when_a_filter_would_hide_them_and_the_filters_come_back():
    before = list(warnings.filters)
    kept: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ignoring = list(warnings.filters)
        with quiet_export(kept):
            _warn("seen despite the filter", UserWarning)
        assert warnings.filters == ignoring
    assert kept == ["UserWarning: seen despite the filter"] and warnings.filters == before


def test_what_was_warned_before_a_failure_is_kept_and_the_failure_raised():
    kept: list[str] = []
    with pytest.raises(RuntimeError, match="export failed"), quiet_export(kept):
        _warn("the cause, probably", UserWarning)
        raise RuntimeError("export failed")
    assert kept == ["UserWarning: the cause, probably"]


# --- loggers ------------------------------------------------------------------------------------


@pytest.fixture
def loggers():
    """torch's, onnxscript's, one of their children and the root logger, at known levels; put back afterwards."""
    names = ["", "torch", "onnxscript", "torch.onnx._internal.test_capture"]
    found = [logging.getLogger(name) for name in names]
    saved = [lg.level for lg in found]
    levels = [logging.WARNING, logging.INFO, logging.DEBUG, logging.NOTSET]
    for lg, level in zip(found, levels, strict=True):
        lg.setLevel(level)
    yield dict(zip(names, zip(found, levels, strict=True), strict=True))
    for lg, level in zip(found, saved, strict=True):
        lg.setLevel(level)


def test_exporter_loggers_are_quiet_inside_and_at_their_own_levels_afterwards(loggers):
    with quiet_export([]):
        inside = {name: lg.level for name, (lg, _) in loggers.items()}
    assert inside == dict.fromkeys(loggers, logging.ERROR)
    assert {name: lg.level for name, (lg, _) in loggers.items()} == {n: level for n, (_, level) in loggers.items()}


def test_logger_levels_come_back_when_the_export_fails(loggers):
    with pytest.raises(ValueError, match="boom"), quiet_export([]):
        raise ValueError("boom")
    assert {name: lg.level for name, (lg, _) in loggers.items()} == {n: level for n, (_, level) in loggers.items()}


def test_another_librarys_logger_is_left_alone(loggers):  # noqa: ARG001 - the known levels around it
    other = logging.getLogger("urllib3.test_capture")
    other.setLevel(logging.INFO)
    try:
        with quiet_export([]):
            assert other.level == logging.INFO
    finally:
        other.setLevel(logging.NOTSET)


# --- output -------------------------------------------------------------------------------------


def test_prints_to_stdout_and_stderr_never_reach_the_terminal(capfd):
    with quiet_export([]):
        print("exporting graph ...")
        print("a progress bar", file=sys.stderr)
    assert capfd.readouterr() == ("", "")
    print("after")
    assert capfd.readouterr().out == "after\n"  # and the streams are back afterwards


def test_output_at_the_file_descriptor_level_is_kept_in_last_output_not_shown(capfd):
    with quiet_export([]):
        os.write(1, b"C++ says: guard failed at x.size(0)\n")
        os.write(2, b"graph(%x : Float(1, 784)):\n")
    out, err = capfd.readouterr()
    assert "guard failed" not in out and "graph(" not in err
    assert "guard failed at x.size(0)" in LAST_OUTPUT[0] and "graph(%x" in LAST_OUTPUT[0]
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"


def test_last_output_holds_only_the_last_export(capfd):  # noqa: ARG001 - keeps the writes off the terminal
    with quiet_export([]):
        os.write(1, b"first export\n")
    with quiet_export([]):
        os.write(1, b"second export\n")
    assert len(LAST_OUTPUT) == 1 and "second export" in LAST_OUTPUT[0] and "first export" not in LAST_OUTPUT[0]
