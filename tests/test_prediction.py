"""predict: Softmax then argmax per runtime, on images, arrays and random input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from exporter.cli.commands import cli
from exporter.prediction import predict


@pytest.fixture
def digit(tmp_path):
    """An RGB image of the wrong size, as a user's photo of a digit would be."""
    pixels = np.zeros((64, 48, 3), dtype=np.uint8)
    pixels[10:54, 20:28] = 255  # a bright vertical stroke, like a "1"
    path = tmp_path / "digit.png"
    Image.fromarray(pixels).save(path)
    return path


@pytest.mark.slow
def test_an_image_is_converted_and_every_runtime_agrees(mlp_dir, digit):
    result = predict(mlp_dir, str(digit))
    assert set(result.classes) == {"eager", "torchscript", "onnxruntime"} and result.agree  # keyed by runtime
    notes = " ".join(result.input_notes)
    assert "converted RGB to grayscale" in notes and "resized to 28x28" in notes and "[0, 1]" in notes
    for probabilities in result.probabilities.values():
        assert probabilities.shape == (1, 10) and probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert int(result.classes["onnxruntime"][0]) == int(np.argmax(result.probabilities["onnxruntime"][0]))


@pytest.mark.slow
def test_an_npy_batch_gives_a_list_per_runtime_in_json(mlp_dir, tmp_path):
    np.save(tmp_path / "batch.npy", np.random.default_rng(0).random((3, 28, 28)))
    result = CliRunner().invoke(cli, ["predict", str(mlp_dir), "--input", str(tmp_path / "batch.npy"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data["predictions"]) == {"eager", "torchscript", "onnxruntime"} and data["agree"] is True
    onnx = data["predictions"]["onnxruntime"]
    assert len(onnx) == 3 and len(onnx[0]["probabilities"]) == 10


@pytest.mark.slow
@pytest.mark.parametrize("name", ["onnx", "onnxruntime"])  # a format name or its runtime name
def test_a_single_runtime_and_the_json_contract(mlp_dir, name):
    result = CliRunner().invoke(cli, ["predict", str(mlp_dir), "--input", "random", "--runtime", name, "--json"])
    data = json.loads(result.output)["predictions"]
    assert list(data) == ["onnxruntime"] and isinstance(data["onnxruntime"]["class"], int)  # keyed by runtime
    assert len(data["onnxruntime"]["probabilities"]) == 10


@pytest.mark.slow
def test_predict_json_to_a_file_keeps_the_table_on_stdout(mlp_dir, tmp_path):
    target = tmp_path / "p.json"
    result = CliRunner().invoke(cli, ["predict", str(mlp_dir), "--input", "random", "--json", str(target)])
    assert result.exit_code == 0 and "predicted" in result.output
    assert set(json.loads(target.read_text())["predictions"]) == {"eager", "torchscript", "onnxruntime"}


def test_a_registered_model_name_predicts_with_eager_only():
    result = CliRunner().invoke(cli, ["predict", "mlp", "--input", "random"])
    assert result.exit_code == 0 and "predicted" in result.output and "eager" in result.output


@pytest.mark.slow
def test_the_table_shows_runtimes_side_by_side(mlp_dir, digit):
    result = CliRunner().invoke(cli, ["predict", str(mlp_dir), "--input", str(digit)])
    assert result.exit_code == 0
    assert "eager" in result.output and "torchscript" in result.output and "runtimes agree: yes" in result.output


@pytest.mark.slow
@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: (p / "x.txt").write_text("hello") and p / "x.txt", "not an image"),
        (lambda p: np.save(p / "x.npy", np.zeros((28, 28, 3))) or p / "x.npy", "has shape (28, 28, 3)"),
        (lambda p: p / "missing.png", "does not exist"),
    ],
    ids=["text-file", "wrong-shape-array", "missing-file"],
)
def test_bad_input_is_one_line_and_exit_2(mlp_dir, tmp_path, make, message):
    path = make(tmp_path)
    args = ["predict", str(mlp_dir), "--input", str(path)]
    result = subprocess.run([sys.executable, "-m", "exporter", *args], capture_output=True, text=True)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_tampered_artifact_is_not_loaded(mlp_dir):
    (mlp_dir / "model.onnx").write_bytes(b"not the exported file")
    result = CliRunner().invoke(cli, ["predict", str(mlp_dir), "--input", "random", "--runtime", "onnx"])
    assert result.exit_code == 1 and "refusing to load it" in result.output
