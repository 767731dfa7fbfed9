"""The command line: help everywhere, no torch at start-up, one-line errors with stable exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from exporter.cli.commands import cli


def _run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "exporter", *args], capture_output=True, text=True, cwd=cwd, env=env)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["models"],
        ["export", "nope"],
        ["verify", "--help"],
        ["verify", "/no/such/folder"],
        ["inspect", "nosuch"],
        ["predict", "mlp", "--input", "no-such.png"],
        ["predict", "/no/such/folder", "--input", "random"],
        ["export", "mlp", "--out", "/etc/hostname/artifacts"],
        ["bench", "/no/such/folder"],
    ],
    ids=" ".join,
)
def test_startup_commands_never_import_torch_onnx_or_onnxruntime(args):
    code = (
        "import sys; from exporter.cli import cli\n"
        f"try: cli.main({args!r}, prog_name='exporter')\n"
        "except SystemExit: pass\n"
        "heavy = [m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert "HEAVY []" in out, out


def test_models_lists_the_seed_network():
    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == 0 and "mlp" in result.output and "1x28x28" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["export", "no-such-model"], "unknown model 'no-such-model'"),
        (["export", "missing.py:Net", "--input-shape", "1,28,28"], "does not exist"),
        (["export", "os.path:join", "--input-shape", "1,28,28"], "not a class"),
        (["export", "json:JSONDecoder", "--input-shape", "1,28,28", "--device", "cpu"], "not an nn.Module"),
        (["export", "nosuchpkg.mod:Net", "--input-shape", "1,28,28", "--device", "cpu"], "cannot import module"),
        (["export", "mlp", "--out", "/etc/hostname/artifacts"], "choose a writable --out"),
        (["export", "mlp", "--device", "gpu"], "'gpu' is not auto, cpu, cuda"),
        (["export", "mlp", "--input-shape", "1,x,28"], "not a list of integers"),
        (["export", "mlp", "--input-shape", "28"], "batch dimension"),
        (["export", "pkg.mod:Net"], "--input-shape"),
        (["export", "mlp", "--format", "tflite"], "tflite"),
        (["verify", "does/not/exist"], "not an artifact folder"),
        (["export"], "Missing argument"),
        (["frobnicate"], "No such command"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_usage_errors_are_one_line_and_exit_2(args, message):
    result = _run(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_missing_cuda_is_a_usage_error():
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA, so --device cuda is not an error here")
    result = _run("export", "mlp", "--device", "cuda")
    assert result.returncode == 2 and "no CUDA" in result.stderr and "Traceback" not in result.stderr


def test_unwritable_output_folder_is_a_usage_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = _run("export", "mlp", "--device", "cpu", "--out", str(blocker))
    assert result.returncode == 2 and "not a folder" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_verify_prints_the_table_and_exits_0(mlp_dir):
    result = CliRunner().invoke(cli, ["verify", str(mlp_dir), "--samples", "130"])
    assert result.exit_code == 0, result.output
    assert "torchscript" in result.output and "onnxruntime" in result.output and "PASSED" in result.output
    report = json.loads((mlp_dir / "verification.json").read_text())
    assert report["passed"] is True and report["samples"] >= 130


@pytest.mark.slow
def test_verify_json_to_stdout_and_elsewhere(mlp_dir, tmp_path):
    result = CliRunner().invoke(cli, ["verify", str(mlp_dir), "--samples", "64", "--json", "-"])
    assert result.exit_code == 0 and json.loads(result.output)["passed"] is True
    target = tmp_path / "report.json"
    result = CliRunner().invoke(cli, ["verify", str(mlp_dir), "--samples", "64", "--json", str(target)])
    assert result.exit_code == 0 and json.loads(target.read_text())["passed"] is True


@pytest.mark.slow
def test_verify_no_record_leaves_the_folder_as_it_was_and_a_plain_verify_does_not(mlp_dir, tmp_path):
    before = {name: (mlp_dir / name).read_bytes() for name in ("manifest.json", "verification.json")}
    target = tmp_path / "quick.json"
    args = ["verify", str(mlp_dir), "--samples", "64", "--atol", "0", "--rtol", "0", "--no-record"]
    result = CliRunner().invoke(cli, [*args, "--json", str(target)])
    assert result.exit_code == 1  # ONNX Runtime is not bit-identical: a failed quick check ...
    assert json.loads(target.read_text())["passed"] is False  # ... reported where asked ...
    assert {name: (mlp_dir / name).read_bytes() for name in before} == before  # ... and recorded nowhere
    result = CliRunner().invoke(cli, args[:-1])
    assert result.exit_code == 1
    assert json.loads((mlp_dir / "manifest.json").read_text())["verification"]["passed"] is False


@pytest.mark.slow
def test_verify_exits_1_when_an_artifact_is_tampered(mlp_dir):
    data = bytearray((mlp_dir / "model.pt").read_bytes())
    data[-100] ^= 0xFF
    (mlp_dir / "model.pt").write_bytes(bytes(data))
    result = _run("verify", str(mlp_dir), "--samples", "64")
    assert result.returncode == 1
    assert "model.pt: sha256" in result.stdout and "FAILED" in result.stdout and "Traceback" not in result.stderr


def test_inspect_prints_the_parameter_table_and_total():
    result = CliRunner().invoke(cli, ["inspect", "mlp"])
    assert result.exit_code == 0
    assert "linear_relu_stack.0.weight" in result.output and "[512, 784]" in result.output
    assert "Total parameters: 669,706" in result.output


@pytest.mark.slow
def test_inspect_an_artifact_folder_rebuilds_the_same_weights(mlp_dir):
    spec = CliRunner().invoke(cli, ["inspect", "mlp", "--json"])
    folder = CliRunner().invoke(cli, ["inspect", str(mlp_dir), "--json"])
    assert folder.exit_code == 0, folder.output
    assert json.loads(folder.output)["eager"]["parameters"] == json.loads(spec.output)["parameters"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra, message",
    [
        (["--atol", "nan"], "--atol must be a finite number"),
        (["--rtol", "inf"], "--rtol must be finite"),
        (["--samples", "100000000000"], "--samples must be from 1"),
        (["--input-range", "0,nan"], "finite LOW < HIGH"),
        (["--json", "/no/such/dir/report.json"], "cannot write a file there"),
        (["--save-outputs", "/"], "cannot write a file there"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_verify_option_values_that_would_fail_open_or_late_are_usage_errors(mlp_dir, extra, message):
    result = _run("verify", str(mlp_dir), *extra)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_verify_with_empty_inputs_is_a_usage_error(mlp_dir, tmp_path):
    import numpy as np

    np.save(tmp_path / "empty.npy", np.zeros((0, 28, 28), dtype=np.float32))
    result = _run("verify", str(mlp_dir), "--inputs", str(tmp_path / "empty.npy"))
    assert result.returncode == 2 and "holds no samples" in result.stderr


@pytest.mark.parametrize(
    ("extra", "config", "message"),
    [
        (["--task", "poetry"], {"model_type": "bert", "vocab_size": 9}, "--task 'poetry' is not one of base"),
        ([], {"model_type": "bert", "vocab_size": 9}, "names no architectures: give the model's task with --task"),
        (["--input-kind", "ids:spotty"], {"model_type": "bert"}, "--input-kind 'ids:spotty' is not NAME:KIND"),
    ],
    ids=["unknown-task", "no-architectures", "unknown-kind"],
)
def test_a_saved_folder_mistake_is_one_line_and_exit_2_before_torch(tmp_path, extra, config, message):
    folder = tmp_path / "saved"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    result = _run("export", str(folder), "--out", str(tmp_path / "out"), *extra)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()
