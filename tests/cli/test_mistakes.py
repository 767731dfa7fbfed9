"""Every user or manifest mistake is exit 2 and one line starting with `error:`, run through the real CLI.

`internal error` is kept for bugs: none of these may reach it, nor print a traceback.
"""

# ruff: noqa: ARG005, E501  (a table: every case takes the folder and a scratch path, and reads best one per line)
from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # each test uses an exported folder


def _folder(src: Path, root: Path, edit) -> str:
    target = root / "edited"
    shutil.copytree(src, target)
    data = json.loads((target / "manifest.json").read_text())
    edit(data)
    (target / "manifest.json").write_text(json.dumps(data).replace('"@HUGE@"', "1e999"))
    return str(target)


def _npy_claiming(path: Path, shape: tuple[int, ...]) -> str:
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}"
    header += " " * (117 - len(header)) + "\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
    return str(path)


def _big_png(path: Path) -> str:
    from PIL import Image

    Image.new("1", (20000, 20000)).save(path)
    return str(path)


MISTAKES = {
    "seed-2**64": lambda d, t: ["export", "mlp", "--seed", str(2**64), "--out", str(t)],
    "seed-negative": lambda d, t: ["export", "mlp", "--seed", "-1", "--out", str(t)],
    "device-huge-index": lambda d, t: ["export", "mlp", "--device", "cuda:99999999999999999999"],
    "input-shape-huge": lambda d, t: ["export", "mlp", "--input-shape", "1,100000,100000", "--out", str(t)],
    "npz-batch_0": lambda d, t: ["verify", d, "--no-record", "--inputs", _npz(t / "b.npz", batch_0=np.zeros((1, 28, 28)))],
    "npz-complex": lambda d, t: ["verify", d, "--no-record", "--inputs", _npz(t / "c.npz", batch_1=np.zeros((1, 28, 28), complex))],
    "npy-31TB-header": lambda d, t: ["predict", d, "--input", _npy_claiming(t / "x.npy", (10**10, 28, 28))],
    "npy-31TB-inputs": lambda d, t: ["verify", d, "--no-record", "--inputs", _npy_claiming(t / "x.npy", (10**10, 28, 28))],
    "png-20000x20000": lambda d, t: ["predict", d, "--input", _big_png(t / "big.png")],
    "bytes-1e999": lambda d, t: ["verify", _folder(Path(d), t, lambda m: m["artifacts"][0].update(bytes="@HUGE@"))],
    "schema-abc": lambda d, t: ["verify", _folder(Path(d), t, lambda m: m.update(schema="abc"))],
    "versions-list": lambda d, t: ["verify", _folder(Path(d), t, lambda m: m.update(versions=["torch"]))],
    "batch-10**12": lambda d, t: ["verify", _folder(Path(d), t, lambda m: m["inputs"][0]["shape"].__setitem__(0, 10**12))],
    "dtype-complex64": lambda d, t: ["verify", _folder(Path(d), t, lambda m: m["inputs"][0].update(dtype="complex64"))],
    "input-no-name": lambda d, t: ["predict", _folder(Path(d), t, lambda m: m["inputs"][0].pop("name")), "--input", "random"],
    "input-no-dtype": lambda d, t: ["predict", _folder(Path(d), t, lambda m: m["inputs"][0].pop("dtype")), "--input", "random"],
    "nul-in-a-path": lambda d, t: ["verify", _folder(Path(d), t, lambda m: m["artifacts"][0].update(path="model\0.pt"))],
    "model-file-exits": lambda d, t: ["export", _exits(t), "--input-shape", "1,28,28", "--out", str(t)],
}  # fmt: skip


def _npz(path: Path, **arrays) -> str:
    np.savez(path, **arrays)
    return str(path)


def _exits(root: Path) -> str:
    (root / "net.py").write_text("import sys\nsys.exit(0)\n")
    return f"{root / 'net.py'}:Net"


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_a_mistake_is_exit_2_and_one_line(mlp_dir, tmp_path, name):
    args = MISTAKES[name](str(mlp_dir), tmp_path)
    run = subprocess.run([sys.executable, "-m", "exporter", *args], capture_output=True, text=True, cwd=tmp_path)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2, run.stderr[-1500:]
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    assert "Traceback" not in run.stderr and "internal error" not in run.stderr
    assert ".partial" not in run.stderr  # the hidden staging folder is never named
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_the_same_commands_without_the_mistake_succeed(mlp_dir, tmp_path):
    """The positive twin of the table above: a valid seed, inputs and manifest go through."""
    np.savez(tmp_path / "ok.npz", batch_1=np.zeros((1, 28, 28), np.float32))
    for args in (
        ["verify", str(mlp_dir), "--no-record", "--samples", "20", "--inputs", str(tmp_path / "ok.npz")],
        ["predict", str(mlp_dir), "--input", "random", "--seed", str(2**63 - 1)],
    ):
        run = subprocess.run([sys.executable, "-m", "exporter", *args], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr


def test_float64_weights_are_cast_with_a_note_and_integer_weights_refused(tmp_path):
    import torch

    from exporter import ExportConfig, export
    from exporter.errors import CheckpointError
    from exporter.models.mlp import NeuralNetwork

    state = NeuralNetwork().state_dict()
    torch.save({k: v.double() for k, v in state.items()}, tmp_path / "f64.pt")
    result = export("mlp", ExportConfig(out=tmp_path / "a", device="cpu", formats=("onnx",), verify=False,
                                        weights=tmp_path / "f64.pt"))  # fmt: skip
    assert "weights: cast float64 to float32" in result.render()
    torch.save({k: v.long() for k, v in state.items()}, tmp_path / "i64.pt")
    with pytest.raises(CheckpointError, match="integer values"):
        export("mlp", ExportConfig(out=tmp_path / "b", device="cpu", formats=("onnx",), weights=tmp_path / "i64.pt"))
