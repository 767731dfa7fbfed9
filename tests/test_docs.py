"""Docs that cannot drift from the code: docs/reference.md's option tables are what docs/options.py
writes from click, every command and option has help, docs/python-api.md names every public name
of ``exporter``, and its example runs."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

import exporter
from exporter.cli.commands import cli

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "reference.md"
PYTHON_API = ROOT / "docs" / "python-api.md"
RUN_BLOCK = re.compile(r"<!-- run: python -->\n```python\n(.*?)```", re.S)


def _load_options_script():
    spec = importlib.util.spec_from_file_location("docs_options", ROOT / "docs" / "options.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


OPTIONS = _load_options_script()


def _undocumented(command: click.Command) -> list[str]:
    """What ``command`` lacks: an "Example" line in its help, help on each option."""
    problems = []
    if not any(line.strip().startswith("Example") for line in (command.help or "").splitlines()):
        problems.append(f"{command.name}: its help has no Example line")
    for param in command.params:
        if isinstance(param, click.Option) and not (param.help or "").strip():
            problems.append(f"{command.name} {param.opts[0]}: no help")
    return problems


def _unlisted(text: str) -> list[str]:
    """The names of ``exporter.__all__`` that ``text`` never shows as `name`."""
    return [name for name in exporter.__all__ if f"`{name}`" not in text]


def _bare(name: str, *, help_text: str | None, docstring: str) -> click.Command:
    @click.command(name, help=docstring)
    @click.option("--level", type=click.Choice(["low", "high"]), default="low", show_default=True, help=help_text)
    def command(level: str) -> None:
        pass

    return command


def test_the_reference_option_tables_are_what_docs_options_py_writes():
    diff = OPTIONS.check()
    assert not diff, (
        f"docs/reference.md's option tables differ from --help: run .venv/bin/python docs/options.py\n{diff}"
    )


def test_a_stale_option_table_is_caught_with_a_diff_and_rewritten(tmp_path, capsys):
    stale = tmp_path / "reference.md"
    text = REFERENCE.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `--batch-size B` | Batch size to verify"))
    stale.write_text(text.replace(row, "| `--batch-size B` | repeatable; default 1, the export batch and 64 |"))

    diff = OPTIONS.check(stale)
    assert "-| `--batch-size B` | repeatable; default 1, the export batch and 64 |" in diff
    assert f"+{row}" in diff
    assert OPTIONS.main(["--check"], path=stale) == 1
    assert "run .venv/bin/python docs/options.py" in capsys.readouterr().out
    assert OPTIONS.main([], path=stale) == 0
    assert OPTIONS.check(stale) == "" and stale.read_text() == text


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (
            lambda t: re.sub(r"<!-- options: trust -->\n.*?<!-- /options -->", "", t, flags=re.S),
            "no <!-- options: trust",
        ),
        (lambda t: t + "\n<!-- options: trust -->\n<!-- /options -->\n", "more than one <!-- options: trust"),
        (lambda t: t + "\n<!-- options: nosuch -->\n<!-- /options -->\n", "<!-- options: nosuch --> names no command"),
    ],
    ids=["missing", "twice", "unknown"],
)
def test_every_command_has_exactly_one_block_and_every_block_a_command(tmp_path, edit, problem):
    broken = tmp_path / "reference.md"
    broken.write_text(edit(REFERENCE.read_text()))
    with pytest.raises(ValueError, match=re.escape(problem)):
        OPTIONS.check(broken)
    assert OPTIONS.main(["--check"], path=broken) == 1


def test_every_option_of_every_command_has_a_row_in_its_block():
    blocks = {match[2]: match[0] for match in OPTIONS.BLOCK.finditer(REFERENCE.read_text())}
    assert set(blocks) == set(cli.commands)
    for name, command in cli.commands.items():
        for param in command.params:
            if isinstance(param, click.Option):
                flag = max(param.opts, key=len)
                assert f"| `{flag}" in blocks[name] or f", {flag}" in blocks[name], f"{name} {flag} is undocumented"


def test_a_row_is_click_own_help_record_with_pipes_escaped():
    group = click.Group("tool", commands=[_bare("pick", help_text="Which one (a|b).", docstring="Pick.")])
    assert OPTIONS.table(group, "pick").splitlines() == [
        "| option | meaning |",
        "| --- | --- |",
        r"| `--level [low\|high]` | Which one (a\|b). [default: low] |",
    ]
    assert OPTIONS.table(click.Group("tool", commands=[click.Command("bare")]), "bare") == "No options but `--help`.\n"


@pytest.mark.parametrize("name", [None, *sorted(cli.commands)], ids=lambda n: n or "exporter")
def test_every_command_has_help_with_an_example_and_every_option_has_help(name):
    command = cli if name is None else cli.commands[name]
    assert _undocumented(command) == []


def test_a_command_without_an_example_or_an_option_without_help_is_caught():
    command = _bare("bad", help_text=None, docstring="Does things.\n\n  bad --level high")
    assert _undocumented(command) == ["bad: its help has no Example line", "bad --level: no help"]


def test_the_batch_size_help_names_the_batches_verify_runs():
    from exporter.verification import gates, inputs

    option = next(p for p in cli.commands["verify"].params if p.name == "batch_sizes")
    assert inputs.default_batch_sizes(1) == (1, inputs.DEFAULT_LARGE_BATCH)
    assert f"1, the export batch and {inputs.DEFAULT_LARGE_BATCH}" in option.help
    assert f"one batch of {gates.LARGE_BATCH}" in option.help


def test_the_input_range_help_says_what_the_inputs_are_drawn_from():
    import torch

    from exporter.config import VerifyConfig
    from exporter.interface import InputSpec
    from exporter.verification import inputs

    option = next(p for p in cli.commands["verify"].params if p.name == "input_range")
    assert "std (HIGH-LOW)/4, so ~95 % fall inside" in option.help
    assert "Integer and bool inputs keep their own range" in option.help
    normal = inputs.draw(torch.Generator().manual_seed(0), (100_000,), "float32", "normal", (2.0, 10.0))
    assert abs(float(normal.mean()) - 6.0) < 0.05 and abs(float(normal.std()) - 2.0) < 0.05
    assert 0.94 < float(((normal >= 2.0) & (normal < 10.0)).float().mean()) < 0.96
    config = VerifyConfig(input_range=(100.0, 200.0))
    floats = inputs.sample(torch.Generator().manual_seed(0), InputSpec("x", (1, 8)), (1000, 8), config)
    ids = inputs.sample(torch.Generator().manual_seed(0), InputSpec("ids", (1, 8), "int64", (0, 9)), (1000, 8), config)
    assert floats.min() >= 100.0 and floats.max() < 200.0
    assert ids.min() == 0 and ids.max() == 9


def test_python_api_lists_every_public_name():
    assert _unlisted(PYTHON_API.read_text()) == []


def test_a_public_name_missing_from_python_api_is_caught():
    text = PYTHON_API.read_text().replace("`write_repository`", "write_repository")
    assert _unlisted(text) == ["write_repository"]


def _run_in(folder: Path, code: str) -> subprocess.CompletedProcess:
    (folder / "example.py").write_text(code)
    return subprocess.run([sys.executable, "example.py"], cwd=folder, capture_output=True, text=True)


@pytest.mark.slow
def test_the_python_api_example_runs_in_a_fresh_folder(tmp_path):
    blocks = RUN_BLOCK.findall(PYTHON_API.read_text())
    assert len(blocks) == 1, "docs/python-api.md lost its <!-- run: python --> example"
    result = _run_in(tmp_path, blocks[0])
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "artifacts/mlp True" in result.stdout
    assert (tmp_path / "artifacts" / "mlp" / "manifest.json").is_file()
    assert (tmp_path / "artifacts" / "NeuralNetwork" / "weights.pt").is_file()


def test_a_failing_example_fails_the_runner(tmp_path):
    result = _run_in(tmp_path, "from exporter import ExportConfig\nExportConfig(device='tpu')\n")
    assert result.returncode != 0 and "is not auto, cpu, cuda or cuda:N" in result.stderr
