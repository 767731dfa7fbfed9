"""Progress: told through the callback in order, shown on a terminal only, silenced by --quiet."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from click.testing import CliRunner

from exporter import ExportConfig, VerifyConfig, export, progress, verify
from exporter.cli.commands import cli
from exporter.prediction import predict
from exporter.verification.inputs import Case, InputSet


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_terminal_writes_to_a_terminal_and_clears_its_line():
    stream = FakeTerminal()
    with progress.on_terminal(stream=stream) as say:
        say("verify: eager, batch 1: 1/6 samples")
    assert "verify: eager" in stream.getvalue() and stream.getvalue().endswith("\r")


@pytest.mark.parametrize(("stream", "quiet"), [(io.StringIO(), False), (FakeTerminal(), True)], ids=["pipe", "quiet"])
def test_on_terminal_is_silent_elsewhere_and_with_quiet(stream, quiet):
    with progress.on_terminal(quiet, stream) as say:
        assert say is None
    assert stream.getvalue() == ""


def test_telling_feeds_report_each_batch_with_the_samples_done():
    feeds = InputSet({Case(2): {"x": np.zeros((4, 3))}, Case(1): {"x": np.zeros((1, 3))}}, "test")
    seen: list[str] = []
    told = progress.telling(feeds, seen.append, "verify: pt2")
    assert [len(b["x"]) for case in told.groups for b in told.batches(case)] == [2, 2, 1]
    assert seen == [
        "verify: pt2, batch 2: 2/4 samples",
        "verify: pt2, batch 2: 4/4 samples",
        "verify: pt2, batch 1: 1/1 samples",
    ]
    assert progress.telling(feeds, None, "verify: pt2") is feeds


def _order(seen: list[str], pattern: str) -> list[str]:
    """The distinct matches of ``pattern`` in the order they first appear."""
    found: list[str] = []
    for message in seen:
        match = re.match(pattern, message)
        if match and match[0] not in found:
            found.append(match[0])
    return found


@pytest.mark.slow
def test_export_tells_each_format_then_each_runtime_and_case_of_its_verification(tmp_path):
    seen: list[str] = []
    config = ExportConfig(
        out=tmp_path,
        device="cpu",
        formats=("torchscript", "onnx"),
        verify_config=VerifyConfig(samples=9, batch_sizes=(1, 8), probes=False),  # the probes: test_probes,
    )
    assert export("mlp", config, progress=seen.append).passed
    assert seen[:2] == ["export mlp: torchscript (1/2)", "export mlp: onnx (2/2)"]
    steps = _order(seen[2:], r"verify: [\w-]+( again)?, batch \d+")
    assert steps == [
        f"verify: {runtime}, batch {b}"
        for runtime in ("eager", "eager again", "torchscript", "onnxruntime")
        for b in (1, 8)
    ]
    assert "verify: onnxruntime, batch 8: 8/8 samples" in seen


@pytest.mark.slow
def test_verify_and_predict_tell_each_runtime_in_order(mlp_dir):
    seen: list[str] = []
    verify(mlp_dir, VerifyConfig(samples=3, batch_sizes=(1, 2)), write=False, progress=seen.append)
    assert _order(seen, r"verify: [\w-]+( again)?") == [
        "verify: eager",
        "verify: eager again",
        "verify: torchscript",
        "verify: onnxruntime",
    ]
    seen.clear()
    predict(mlp_dir, "random", progress=seen.append)
    assert seen == [
        f"predict: {rt} on 1 sample(s) ({i}/3)" for i, rt in enumerate(("eager", "torchscript", "onnxruntime"), 1)
    ]


@pytest.mark.slow
def test_the_commands_show_progress_on_a_terminal_only_and_quiet_silences_it(mlp_dir, monkeypatch):
    terminal = FakeTerminal()
    monkeypatch.setattr(progress, "_stderr", lambda: terminal)
    args = ["verify", str(mlp_dir), "--samples", "3", "--no-record"]
    assert CliRunner().invoke(cli, [*args, "--quiet"]).exit_code == 0
    assert terminal.getvalue() == ""
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0 and "verify: onnxruntime, batch" in terminal.getvalue()
    assert "verify:" not in result.stderr  # click's own stderr is no terminal: nothing goes there
    monkeypatch.undo()
    result = CliRunner().invoke(cli, ["predict", str(mlp_dir), "--input", "random"])
    assert result.exit_code == 0 and "predict:" not in result.output


def test_progress_line_rewrites_one_line_on_a_terminal_and_clears_it():
    stream = FakeTerminal()
    line = progress.ProgressLine(stream)
    line("bench mlp: eager at batch 1 (1/2)")
    line("bench mlp: pt2 (2/2)")
    line.close()
    text = stream.getvalue()
    assert "\n" not in text and text.count("\r") == 4 and text.endswith("\r")


def test_progress_line_writes_whole_lines_elsewhere():
    stream = io.StringIO()
    line = progress.ProgressLine(stream)
    line("one")
    line("two")
    line.close()
    assert stream.getvalue() == "one\ntwo\n"


def test_a_progress_message_naming_a_hostile_file_adds_no_line_and_no_escape():
    stream = io.StringIO()
    progress.ProgressLine(stream)("verify: model.onnx\nPASSED: forged\x1b[2K")
    assert stream.getvalue() == "verify: model.onnx\\nPASSED: forged\\x1b[2K\n"
