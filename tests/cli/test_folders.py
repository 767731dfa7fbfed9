"""The commands on an artifact folder besides export and verify: bench, triton and trust. Their usage errors
answer with one line and exit 2 before torch is imported; trust names the key it signed with."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from exporter.artifacts import trust
from exporter.artifacts.manifest import ArtifactEntry, Manifest
from exporter.cli.commands import cli

HEAVY = ("torch", "onnx", "onnxruntime")


def _startup(args: list[str], cwd: Path) -> tuple[int, list[str], list[str]]:
    """Run the CLI in a fresh interpreter: its exit code, its stderr lines, and the heavy modules it imported."""
    code = (
        "import sys; from exporter.cli import cli\n"
        "try:\n"
        f"    cli.main({args!r}, prog_name='exporter')\n"
        "except SystemExit as e:\n"
        "    print('EXIT', e.code)\n"
        f"print('HEAVY', ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd)
    out = dict(line.split(" ", 1) for line in run.stdout.splitlines() if line.startswith(("EXIT ", "HEAVY ")))
    return int(out["EXIT"]), run.stderr.strip().splitlines(), [m for m in out["HEAVY"].split(",") if m]


def _unsigned_folder(root: Path) -> Path:
    """A folder with a manifest and one ONNX artifact, not signed (trust reads hashes only, never the model)."""
    folder = root / "downloaded"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"the bytes of a model")
    Manifest(
        model={"name": "net"},
        inputs=[{"name": "x", "shape": [1, 4], "dtype": "float32", "range": None, "dynamic_axes": {"0": "batch"}}],
        outputs=[{"name": "y", "shape": ["batch", 2], "dtype": "float32"}],
        device="cpu",
        artifacts=[ArtifactEntry.for_file(folder, "model.onnx", "onnx")],
        versions={},
    ).write(folder)
    return folder


# --- usage errors: exit 2, one line, no torch ------------------------------------------------------------


USAGE = {
    "bench-no-manifest": (["bench", "{tmp}"], "has no manifest.json"),
    "bench-unknown-runtime": (["bench", "{tmp}", "--runtime", "int8"], "no runtime 'int8'"),
    "bench-batch-0": (["bench", "{tmp}", "--batch-size", "0"], "Invalid value for '--batch-size'"),
    "bench-accuracy-samples-0": (["bench", "{tmp}", "--accuracy-samples", "0"], "'--accuracy-samples'"),
    "bench-device-gpu": (["bench", "{tmp}", "--device", "gpu"], "'gpu' is not auto, cpu, cuda or cuda:N"),
    "bench-seed-negative": (["bench", "{tmp}", "--seed", "-1"], "Invalid value for '--seed'"),
    "bench-json-nowhere": (["bench", "{tmp}", "--json", "/no/such/dir/b.json"], "cannot write a file there"),
    "triton-no-manifest": (["triton", "{tmp}", "{tmp}/repo"], "has no manifest.json"),
    "triton-batch-negative": (["triton", "{tmp}", "{tmp}/repo", "--max-batch-size", "-1"], "--max-batch-size"),
    "trust-no-manifest": (["trust", "{tmp}"], "has no manifest.json"),
    "trust-no-folder": (["trust"], "Missing argument 'ARTIFACT_DIR'"),
}


@pytest.mark.parametrize("name", sorted(USAGE))
def test_a_usage_error_is_exit_2_one_line_and_imports_no_torch(tmp_path, name):
    args, message = USAGE[name]
    code, stderr, heavy = _startup([a.format(tmp=tmp_path) for a in args], tmp_path)
    assert code == 2, stderr
    assert len(stderr) == 1 and stderr[0].startswith("error:") and message in stderr[0], stderr
    assert heavy == []
    assert not (tmp_path / "repo").exists()  # triton wrote nothing


def test_an_unknown_runtime_names_both_spellings_of_each(tmp_path):
    _, (line,), _ = _startup(["bench", str(tmp_path), "--runtime", "int8"], tmp_path)
    assert "onnxruntime-int8 (onnx-int8)" in line and "onnxruntime (onnx)" in line


def test_the_defaults_are_batch_1_64_and_1024_as_the_help_says():
    from exporter.config import BenchConfig

    assert BenchConfig().batch_sizes == (1, 64, 1024)
    help_text = " ".join(CliRunner().invoke(cli, ["bench", "--help"]).output.split())  # unwrapped
    assert "Default: 1, 64 and 1024." in help_text


# --- trust -----------------------------------------------------------------------------------------------


def test_trust_signs_the_folder_and_prints_the_key_id(tmp_path):
    folder = _unsigned_folder(tmp_path)
    assert Manifest.load(folder).refusal(False) is not None  # not signed: its code would not load
    result = CliRunner().invoke(cli, ["trust", str(folder)])
    assert result.exit_code == 0, result.output
    key = trust.key_id(trust.load_key())
    digest = Manifest.load(folder).digest
    lines = result.stdout.splitlines()
    assert lines[0] == f"signing {folder}: manifest sha256 {digest}, which binds:"
    assert lines[1].split() == ["file", "sha256", "size"]
    entry = Manifest.load(folder).artifacts[0]
    assert lines[2].split() == ["model.onnx", entry.sha256, "20", "B"]
    assert (
        lines[3]
        == f"signed {folder} with the key {key} in {trust.config_dir()}: its TorchScript and pt2 files will load"
    )
    assert lines[4].startswith("note: the signature binds these bytes, not this folder's name or age")
    assert Manifest.load(folder).refusal(False) is None


def test_trust_signs_only_the_digest_it_showed_and_refuses_a_manifest_changed_meanwhile(tmp_path):
    import json

    from exporter.artifacts.manifest import sign_folder
    from exporter.errors import FolderChangedError

    folder = _unsigned_folder(tmp_path)

    def swap_manifest(_signed) -> None:  # another process edits the folder between the check and the signing
        data = json.loads((folder / "manifest.json").read_text())
        data["model"]["name"] = "other"
        (folder / "manifest.json").write_text(json.dumps(data))

    with pytest.raises(FolderChangedError, match="changed while it was checked: nothing signed"):
        sign_folder(folder, before_signing=swap_manifest)
    assert Manifest.load(folder).signature is None
    signed = sign_folder(folder)  # the twin: unchanged, it is signed, and the digest is the one shown
    assert Manifest.load(folder).digest == signed.digest and Manifest.load(folder).refusal(False) is None


def test_trust_refuses_a_folder_whose_files_do_not_match_and_signs_nothing(tmp_path):
    folder = _unsigned_folder(tmp_path)
    (folder / "model.onnx").write_bytes(b"other bytes")
    result = CliRunner().invoke(cli, ["trust", str(folder)])
    assert result.exit_code == 1 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: model.onnx in ") and "refusing to sign it" in line
    assert Manifest.load(folder).refusal(False) is not None


# --- bench on a real folder --------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_bench_command_writes_json_and_refuses_a_bad_batch_size(mlp_export, tmp_path):
    out = tmp_path / "bench.json"
    folder = str(mlp_export.path)
    args = ["bench", folder, "--batch-size", "2", "--warmup", "1", "--min-time", "0", "--json", str(out)]
    args += ["--accuracy-samples", "16"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert {r["runtime"] for r in json.loads(out.read_text())["results"]} == {"eager", "torchscript", "onnxruntime"}
    assert "matmul peak" in result.output
    assert "at least 16 per batch size" in result.output  # --accuracy-samples 16, below
    bad = CliRunner().invoke(cli, ["bench", folder, "--batch-size", "0"])
    assert bad.exit_code == 2
    bad = CliRunner().invoke(cli, ["bench", folder, "--accuracy-samples", "0"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output


@pytest.mark.slow
def test_bench_on_cuda_without_cuda_is_one_line_and_exit_2(mlp_export):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA, so --device cuda is not an error here (tests/test_cuda.py runs it)")
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "bench", str(mlp_export.path), "--device", "cuda"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "no CUDA" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
