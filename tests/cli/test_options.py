"""What the commands share: errors become one line and an exit code, parsers become usage errors, --json goes
where asked, the comparison options make a VerifyConfig, and every command's help has an example."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from exporter.cli.commands import cli
from exporter.cli.options import (
    ExporterGroup,
    check_json_target,
    comparison_options,
    device_option,
    emit,
    json_option,
    parsed,
    seed_option,
    verify_config,
)
from exporter.config import VerifyConfig, parse_range
from exporter.errors import ArtifactDirError, ExportFailedError, InputSpecError, UsageError
from exporter.interface import parse_shape


@click.group(cls=ExporterGroup)
def tool() -> None:
    """A group like the real one, with commands that fail in each way."""


@tool.command("ok")
def _ok() -> None:
    click.echo("done")


@tool.command("usage")
def _usage() -> None:
    raise InputSpecError("the shape is wrong\nand a second line nobody needs")


@tool.command("failed")
def _failed() -> None:
    raise ExportFailedError("torch.onnx.export failed: an operator is missing")


@tool.command("bug")
def _bug() -> None:
    raise KeyError("a bug")


@tool.command("abort")
def _abort() -> None:
    raise click.Abort()


@tool.command("needs")
@click.argument("thing")
def _needs(thing: str) -> None:
    click.echo(thing)


def _invoke(*args: str):
    return CliRunner().invoke(tool, list(args), prog_name="tool")


# --- ExporterGroup -----------------------------------------------------------------------------------


def test_a_command_that_succeeds_exits_0():
    result = _invoke("ok")
    assert result.exit_code == 0 and result.stdout == "done\n" and result.stderr == ""


def test_a_usage_error_is_its_first_line_and_exit_2():
    result = _invoke("usage")
    assert result.exit_code == 2 and result.stderr == "error: the shape is wrong\n"


def test_an_exporter_failure_is_one_line_and_exit_1():
    result = _invoke("failed")
    assert result.exit_code == 1 and result.stderr == "error: torch.onnx.export failed: an operator is missing\n"


def test_any_other_exception_is_an_internal_error_exit_1_without_a_traceback(monkeypatch):
    monkeypatch.delenv("EXPORTER_DEBUG", raising=False)
    result = _invoke("bug")
    assert result.exit_code == 1
    assert result.stderr == "error: internal error: KeyError: 'a bug' (set EXPORTER_DEBUG=1 for the traceback)\n"
    assert "Traceback" not in result.output


def test_exporter_debug_lets_the_bug_through(monkeypatch):
    monkeypatch.setenv("EXPORTER_DEBUG", "1")
    result = _invoke("bug")
    assert isinstance(result.exception, KeyError) and "internal error" not in result.output
    monkeypatch.setenv("EXPORTER_DEBUG", "1")
    assert _invoke("usage").exit_code == 2  # a user's mistake is still one line


def test_clicks_own_usage_errors_point_to_the_help_and_exit_2():
    result = _invoke("needs")
    assert result.exit_code == 2
    assert result.stderr == "error: Missing argument 'THING'. (see 'tool needs --help')\n"
    unknown = _invoke("frobnicate")
    assert unknown.exit_code == 2 and unknown.stderr.startswith("error: No such command 'frobnicate'.")


def test_an_abort_exits_130():
    result = _invoke("abort")
    assert result.exit_code == 130 and result.stderr == "error: aborted (Ctrl-C): nothing half-written was kept\n"


# --- parsed ------------------------------------------------------------------------------------------


@click.command()
@click.option("--range", "value_range", callback=parsed(parse_range))
@click.option("--shape", callback=parsed(parse_shape))
def _parsing(value_range, shape) -> None:
    click.echo(json.dumps({"range": value_range, "shape": shape}))


def test_a_parsed_option_gives_the_parsers_value_and_none_when_absent():
    result = CliRunner().invoke(_parsing, ["--range", "0,2", "--shape", "1,28,28"])
    assert result.exit_code == 0 and json.loads(result.output) == {"range": [0.0, 2.0], "shape": [1, 28, 28]}
    assert json.loads(CliRunner().invoke(_parsing, []).output) == {"range": None, "shape": None}


def test_a_parsers_error_is_a_usage_error_saying_why():
    result = CliRunner().invoke(_parsing, ["--range", "2,0"])
    assert result.exit_code == 2 and "Invalid value for '--range'" in result.output
    assert "'2,0': give finite LOW < HIGH" in result.output


# --- emit and --json ---------------------------------------------------------------------------------


class _Result:
    def to_dict(self) -> dict:
        return {"passed": True, "runtimes": ["onnxruntime"]}

    def render(self) -> str:
        return "the table"


def test_without_json_only_the_table_is_printed(capsys):
    emit(_Result(), None)
    assert capsys.readouterr().out == "the table\n"


def test_json_dash_prints_only_the_json(capsys):
    emit(_Result(), "-")
    out = capsys.readouterr().out
    assert json.loads(out) == {"passed": True, "runtimes": ["onnxruntime"]} and "the table" not in out


def test_json_to_a_path_writes_the_file_and_keeps_the_table_on_stdout(tmp_path, capsys):
    emit(_Result(), str(tmp_path / "report.json"))
    assert capsys.readouterr().out == "the table\n"
    text = (tmp_path / "report.json").read_text()
    assert text.endswith("}\n") and json.loads(text)["passed"] is True


def test_json_to_a_path_that_cannot_be_written_is_a_usage_error(tmp_path):
    with pytest.raises(ArtifactDirError, match="cannot write the JSON report to") as caught:
        emit(_Result(), str(tmp_path / "missing" / "report.json"))
    assert caught.value.exit_code == 2


def test_an_unwritable_json_target_is_refused_before_any_work(tmp_path):
    check_json_target(None)
    check_json_target("-")
    check_json_target(str(tmp_path / "report.json"))
    with pytest.raises(ArtifactDirError, match=r"--json .* cannot write a file there"):
        check_json_target(str(tmp_path / "missing" / "report.json"))


@click.command()
@json_option("the results")
def _reporting(json_path) -> None:
    click.echo(repr(json_path))


def test_json_alone_means_stdout():
    assert CliRunner().invoke(_reporting, ["--json"]).output == "'-'\n"
    assert CliRunner().invoke(_reporting, ["--json", "r.json"]).output == "'r.json'\n"
    assert CliRunner().invoke(_reporting, []).output == "None\n"


# --- the comparison options, --seed, --device --------------------------------------------------------

made: list[VerifyConfig] = []


@click.command()
@comparison_options
@seed_option("Seeds it.")
@device_option("Where.")
def _comparing(**kw) -> None:
    made.append(verify_config(**kw))


def _config(*args: str):
    made.clear()
    result = CliRunner().invoke(_comparing, list(args))
    return result, (made[0] if made else None)


def test_no_comparison_options_is_the_default_verify_config():
    result, config = _config()
    assert result.exit_code == 0 and config == VerifyConfig()


def test_every_comparison_option_reaches_the_verify_config():
    result, config = _config(
        *("--samples", "10", "--batch-size", "2", "--batch-size", "8", "--atol", "1e-3", "--rtol", "0"),
        *("--distribution", "normal", "--input-range", "-1,1", "--nan-policy", "match", "--allow-unused"),
        *("--accept-tracer-warnings", "--min-agreement", "0.9", "--no-localize", "--seed", "7", "--device", "cpu"),
        *("--missing", "x:nan", "--missing", "y:inf,nan", "--no-probes"),
    )
    assert result.exit_code == 0, result.output
    assert config == VerifyConfig(
        missing=(("x", ("nan",)), ("y", ("nan", "inf"))),
        probes=False,
        seed=7,
        samples=10,
        batch_sizes=(2, 8),
        atol=1e-3,
        rtol=0.0,
        distribution="normal",
        input_range=(-1.0, 1.0),
        nan_policy="match",
        allow_unused=True,
        accept_tracer_warnings=True,
        min_agreement=0.9,
        localize=False,
        device="cpu",
    )


@pytest.mark.parametrize(
    "args, option",
    [
        (["--samples", "0"], "--samples"),
        (["--batch-size", "0"], "--batch-size"),
        (["--atol", "-1"], "--atol"),
        (["--min-agreement", "1.5"], "--min-agreement"),
        (["--distribution", "gaussian"], "--distribution"),
        (["--input-range", "1,0"], "--input-range"),
        (["--nan-policy", "ignore"], "--nan-policy"),
        (["--missing", "x:none"], "--missing"),
        (["--missing", "x"], "--missing"),
        (["--seed", str(2**63)], "--seed"),
        (["--seed", "-1"], "--seed"),
        (["--device", "gpu"], "--device"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_a_bad_comparison_option_is_a_usage_error_naming_it(args, option):
    result, config = _config(*args)
    assert result.exit_code == 2 and option in result.output and config is None


def test_the_largest_seed_torch_takes_is_taken():
    assert _config("--seed", str(2**63 - 1))[1].seed == 2**63 - 1


def test_a_config_error_behind_the_options_is_a_usage_error_too():
    with pytest.raises(UsageError, match="--max-accuracy-drop needs labelled data"):
        verify_config(**{**_defaults(), "max_accuracy_drop": 0.01})


def _defaults() -> dict:
    names = ("samples", "batch_sizes", "distribution", "input_range", "atol", "rtol", "nan_policy")
    names += ("allow_unused", "accept_tracer_warnings", "min_agreement")
    base = {name: None for name in names}
    return {**base, "batch_sizes": (), "distribution": "uniform", "nan_policy": "fail", "min_agreement": 0.99}


# --- help (a meta test over every command) -----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(cli.commands), ids=str)
def test_every_command_has_help_with_an_example(name):
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output and cli.commands[name].help
