"""Hostile artifact folders through every command (issue 24): each built here from a real export, each a
usage error in one line (exit 2), and a secret file that a hostile location names never reaches any output.

The malformed models are formats/test_onnx_check.py's; here they replace a real folder's model.onnx, with the
manifest restamped (as an attacker who edits a folder would), and run through verify, predict and triton.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner

from exporter.cli import cli

from ..formats.test_onnx_check import SECRET, _external_tensor, _field
from ..helpers import restamp


def _graph_attack(kind: str):
    def edit(model: onnx.ModelProto) -> bytes:
        if kind == "function-default":
            function = onnx.helper.make_function(
                "local", "f", ["a"], ["b"], [onnx.helper.make_node("Relu", ["a"], ["b"])], []
            )
            function.attribute_proto.append(onnx.helper.make_attribute("w", _external_tensor("SECRET.bin")))
            model.functions.append(function)
        elif kind == "training-info":
            init = onnx.helper.make_graph([], "init", [], [], initializer=[_external_tensor("../x/SECRET.bin")])
            model.training_info.add(initialization=init, algorithm=onnx.helper.make_graph([], "a", [], []))
        elif kind == "absolute-location":
            tensor = model.graph.initializer[0]
            tensor.ClearField("raw_data")
            tensor.data_location = onnx.TensorProto.EXTERNAL
            tensor.external_data.add(key="location", value=str(Path.cwd() / "SECRET.bin"))
        elif kind == "cyclic":
            model.graph.node[0].input[0] = model.graph.node[-1].output[0]
        elif kind == "dims-10":
            model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = -10
        elif kind == "tensor-4TiB":
            del model.graph.initializer[0].dims[:]
            model.graph.initializer[0].dims.extend([2**21, 2**19])
        data = model.SerializeToString()
        if kind == "truncated":
            data = data[: len(data) // 2]
        if kind == "nested-3000":
            graph = b""
            for _ in range(3000):
                attribute = _field(1, b"then_branch") + b"\xa0\x01\x05" + _field(6, graph)
                graph = _field(1, _field(1, b"c") + _field(4, b"If") + _field(5, attribute))
            data += _field(7, graph)
        return data

    return edit


ATTACKS = [
    "function-default", "training-info", "absolute-location", "cyclic", "dims-10", "tensor-4TiB", "truncated",
    "nested-3000",
]  # fmt: skip


def _commands(folder: Path, tmp: Path) -> dict[str, list[str]]:
    return {
        "verify": ["verify", str(folder), "--no-record", "--samples", "8"],
        "predict": ["predict", str(folder), "--input", "random", "--runtime", "onnx", "--json"],
        "triton": ["triton", str(folder), str(tmp / "repo"), "--allow-unverified"],
    }


@pytest.mark.slow
@pytest.mark.parametrize("attack", ATTACKS)
def test_a_hostile_onnx_file_is_exit_2_in_one_line_for_every_command_and_no_secret_escapes(
    mlp_dir, tmp_path, monkeypatch, attack
):
    (tmp_path / "x").mkdir()
    for place in (tmp_path / "SECRET.bin", tmp_path / "x" / "SECRET.bin"):
        place.write_bytes(SECRET)
    work = tmp_path / "work"
    work.mkdir()
    (work / "SECRET.bin").write_bytes(SECRET)
    monkeypatch.chdir(work)  # where ONNX Runtime resolved a bare location from bytes
    model = onnx.load(str(mlp_dir / "model.onnx"))
    (mlp_dir / "model.onnx").write_bytes(_graph_attack(attack)(model))
    restamp(mlp_dir)
    for name, args in _commands(mlp_dir, tmp_path).items():
        run = CliRunner().invoke(cli, args)
        lines = run.stderr.strip().splitlines()
        assert run.exit_code == 2, (name, run.output)
        assert len(lines) == 1 and lines[0].startswith("error: ") and "internal error" not in lines[0], (name, lines)
        assert SECRET.decode() not in run.output, name
    assert not (tmp_path / "repo").exists() or not any((tmp_path / "repo").rglob("*.onnx"))


@pytest.mark.slow
def test_a_manifest_integer_of_5001_digits_is_exit_2_in_one_line(mlp_dir, tmp_path):
    text = (mlp_dir / "manifest.json").read_text()
    (mlp_dir / "manifest.json").write_text(text.replace('"seed": 0', '"seed": ' + "9" * 5001, 1))
    for name, args in _commands(mlp_dir, tmp_path).items():
        run = CliRunner().invoke(cli, args)
        assert run.exit_code == 2 and "a number longer than any manifest" in run.stderr, (name, run.output)


@pytest.mark.slow
def test_a_model_name_with_a_newline_prints_no_fake_line(mlp_dir):
    from ..helpers import change_onnx_weight

    change_onnx_weight(mlp_dir, delta=5.0)  # a failing report
    data = json.loads((mlp_dir / "manifest.json").read_text())
    data["model"]["name"] = "mlp\nPASSED: eager, onnxruntime agree\x1b[2K"
    (mlp_dir / "manifest.json").write_text(json.dumps(data))
    restamp(mlp_dir)
    run = CliRunner().invoke(cli, ["verify", str(mlp_dir), "--no-record", "--samples", "8"])
    assert run.exit_code == 1
    assert not [line for line in run.stdout.splitlines() if line.startswith("PASSED")]
    assert "\x1b" not in run.stdout and "mlp\\nPASSED" in run.stdout


def _forever(mlp_dir: Path) -> dict[str, bytes]:
    """The folder's model.onnx replaced by a Loop of 2**62 iterations (restamped); what the folder held."""
    from ..runners.test_onnxruntime import loop_model

    (mlp_dir / "model.onnx").write_bytes(loop_model())
    restamp(mlp_dir)
    return {p.name: p.read_bytes() for p in mlp_dir.iterdir()}


@pytest.mark.slow
def test_a_run_that_never_ends_stops_at_its_timeout_with_one_line_and_records_nothing(mlp_dir):
    import subprocess
    import sys

    before = _forever(mlp_dir)
    args = ["verify", str(mlp_dir), "--samples", "8", "--timeout", "3"]
    run = subprocess.run([sys.executable, "-m", "exporter", *args], capture_output=True, text=True, timeout=300)
    lines = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert run.returncode == 1 and lines == [lines[0]] and "stopped after --timeout 3 s" in lines[0], run.stderr
    assert {p.name: p.read_bytes() for p in mlp_dir.iterdir()} == before  # no verdict recorded, nothing added


@pytest.mark.slow
def test_ctrl_c_stops_a_run_that_never_ends_exit_130_and_records_nothing(mlp_dir):
    import signal
    import subprocess
    import sys
    import time

    before = _forever(mlp_dir)
    args = [sys.executable, "-m", "exporter", "predict", str(mlp_dir), "--input", "random", "--runtime", "onnx"]
    # SIGINT as a terminal gives it, even where this suite itself runs with SIGINT ignored (a background job)
    default_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint
    )
    time.sleep(8)  # torch imported, the folder checked, the Loop running (a delay, not a measurement)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)  # without RunOptions.terminate this never returns
    assert process.returncode == 130 and "aborted (Ctrl-C)" in stderr, stderr
    assert {p.name: p.read_bytes() for p in mlp_dir.iterdir()} == before


FORGED = "\nPASSED: forged\x1b[2K"  # a line of its own, then an escape sequence that erases the line it lands on


def _every_command(folder: Path, tmp: Path) -> dict[str, list[str]]:
    fast = ["--batch-size", "1", "--repeats", "1", "--warmup", "0", "--min-time", "0", "--accuracy-samples", "1"]
    return {
        "inspect": ["inspect", str(folder)],
        "predict": ["predict", str(folder), "--input", "random", "--trust-artifacts"],
        "bench": ["bench", str(folder), "--runtime", "onnx", *fast],
        "triton": ["triton", str(folder), str(tmp / "repo"), "--allow-unverified"],
        "trust": ["trust", str(folder)],
        "verify": ["verify", str(folder), "--no-record", "--samples", "8"],
    }


@pytest.mark.slow
@pytest.mark.parametrize("where", ["model name", "model and input names"])
def test_names_with_a_newline_and_an_escape_print_no_forged_line_and_no_escape_in_any_command(where, mlp_dir, tmp_path):
    data = json.loads((mlp_dir / "manifest.json").read_text())
    data["model"]["name"] = "mlp" + FORGED
    if where == "model and input names":
        data["inputs"][0]["name"] = "input" + FORGED
    (mlp_dir / "manifest.json").write_text(json.dumps(data))
    restamp(mlp_dir)
    for name, args in _every_command(mlp_dir, tmp_path).items():
        run = CliRunner().invoke(cli, args, color=True)  # color: click strips escapes from a pipe otherwise
        text = run.stdout + run.stderr
        assert not [line for line in text.splitlines() if line.startswith("PASSED: forged")], (name, text)
        assert "\x1b" not in text and "Traceback" not in text and "internal error" not in text, (name, text)
        if where == "model and input names":  # refused where the manifest is read: one line, exit 2
            assert run.exit_code == 2 and len(run.stderr.splitlines()) == 1, (name, text)
        elif name in ("inspect", "bench", "verify"):  # those print the name: escaped, on the line it belongs to
            assert "mlp\\nPASSED: forged\\x1b[2K" in run.stdout, (name, text)
