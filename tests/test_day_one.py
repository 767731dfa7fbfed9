"""What a new user meets on day one: mistakes answered as mistakes, verdicts that say how they were judged,
folders that say what they hold and what they replaced, and an API that takes what torch users write.

Each friction found on a fresh clone is a test here, with its negative twin.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from exporter import ExportConfig, VerifyConfig, export, verify
from exporter.benchmarking.results import BenchResult
from exporter.benchmarking.run import implausible
from exporter.config import DEFAULT_MIN_AGREEMENT
from exporter.eager.probing import first_run, specs_from_values
from exporter.errors import InputSpecError, UsageError
from exporter.interface import InputSpec, canonical_dtype
from exporter.paths import check_shadowing

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "models" / "examples.py"


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "exporter", *args], capture_output=True, text=True, cwd=cwd)


# --- a wrong input is the user's mistake: exit 2, naming the input and what the layer takes -----------------


class ConvThenLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, 2)

    def forward(self, image):  # (B, 3, H, W) -> (B, 2)
        return self.head(self.conv(image).mean(dim=(2, 3)))


class Embedder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 4)

    def forward(self, ids):  # (B, T) int64 -> (B, 4)
        return self.embed(ids).mean(1)


def test_the_first_run_names_each_input_and_what_the_layer_that_refused_it_takes():
    model = ConvThenLinear().eval()
    spec = (InputSpec("image", (1, 3, 32)),)
    with pytest.raises(InputSpecError) as caught:
        first_run(model, {"image": torch.rand(1, 3, 32)}, spec)
    message = str(caught.value)
    assert "image float32 (1, 3, 32)" in message and "conv (Conv2d), takes (N, 3, H, W)" in message
    assert "\n" not in message
    # the twin: the declared shape runs, and its output is returned for what follows
    assert first_run(model, {"image": torch.rand(1, 3, 8, 8)}, (InputSpec("image", (1, 3, 8, 8)),)).shape == (1, 2)


def test_a_float_tensor_into_an_embedding_is_told_to_give_integer_ids():
    with pytest.raises(InputSpecError, match=r"embed \(Embedding\), takes integer ids in \[0, 49\]"):
        first_run(Embedder().eval(), {"ids": torch.rand(1, 6)}, (InputSpec("ids", (1, 6)),))
    ids = torch.randint(0, 50, (1, 6))
    assert first_run(Embedder().eval(), {"ids": ids}, (InputSpec("ids", (1, 6), "int64", (0, 49)),)).shape == (1, 4)


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        [f"{EXAMPLES}:TwoInputs", "--input", "image:1,3,32", "--input", "features:1,8"],
        ["mlp", "--input-shape", "1,28"],
        [f"{EXAMPLES}:Tagger", "--input", "ids:1,32:float32"],
    ],
    ids=["conv-missing-axis", "mlp-short-row", "float-into-embedding"],
)
def test_a_wrong_shape_or_dtype_is_exit_2_one_line_and_nothing_written(args, tmp_path):
    result = _cli("export", *args, "--out", str(tmp_path / "out"), "--device", "cpu")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: forward cannot run on the declared inputs")
    assert result.stderr.count("\n") == 1 and "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert not any((tmp_path / "out").iterdir())  # no folder, not even a staging one


# --- the API takes what torch users write ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "dtype"),
    [("long", "int64"), ("int", "int32"), ("half", "float16"), ("fp16", "float16"), ("bf16", "bfloat16"),
     ("float", "float32"), ("torch.double", "float64"), ("float32", "float32")],
)  # fmt: skip
def test_dtype_aliases_mean_what_torch_means(alias, dtype):
    assert canonical_dtype(alias) == dtype
    assert InputSpec("x", (1, 4), alias, (0, 9) if dtype.startswith("int") else None).dtype == dtype


def test_an_unknown_dtype_is_still_refused_and_the_aliases_listed():
    with pytest.raises(InputSpecError, match="or float, fp32, half"):
        InputSpec("x", (1, 4), "float128")
    assert ExportConfig(dtype="half").dtype == "float16"
    with pytest.raises(UsageError, match="--dtype must be one of"):
        ExportConfig(dtype="int8")


def test_export_config_takes_dynamic_as_export_does():
    assert ExportConfig(dynamic={"ids": {1: "seq"}}).dynamic == (("ids", 1, "seq"),)
    assert ExportConfig(dynamic=(("ids", 1, "seq"),)).dynamic == (("ids", 1, "seq"),)
    with pytest.raises(UsageError, match="not \\(input, axis, label\\)"):
        ExportConfig(dynamic=("ids",))
    with pytest.raises(UsageError, match="map each input"):
        ExportConfig(dynamic={"ids": 1})


def test_an_integer_example_takes_its_embeddings_vocabulary_never_its_own_values():
    ids = torch.tensor([[12, 13, 14]])  # a dozen ids would narrow every later draw to [12, 14]
    specs, _ = specs_from_values({"ids": ids}, Embedder())
    assert specs[0].value_range == (0.0, 49.0)
    declared = (InputSpec("ids", (1, 3), "int64", (0, 9)),)
    assert specs_from_values({"ids": ids}, Embedder(), declared)[0][0].value_range == (0.0, 9.0)


def test_an_integer_example_with_no_range_to_find_asks_for_one():
    class Counts(nn.Module):
        def forward(self, counts):
            return counts.float() * 2

    with pytest.raises(InputSpecError, match=r"declare it, ExportConfig\(inputs="):
        specs_from_values({"counts": torch.tensor([[1, 2]])}, Counts())


# --- a verdict under a loosened rule says so -------------------------------------------------------------------


def test_the_relaxed_rules_are_named_with_their_ratio_to_the_default():
    rules = VerifyConfig(atol=0.227, nan_policy="match", allow_unused=True).relaxed()
    assert rules[0] == "--atol 0.227 (22,700x the float32 default 1e-05; the whole-output gates off)"
    assert rules[1:] == ["--nan-policy match", "--allow-unused"]
    assert VerifyConfig().relaxed() == []  # the defaults relax nothing
    assert VerifyConfig(atol=1e-6).relaxed() == []  # a stricter tolerance is no relaxation
    assert VerifyConfig(min_agreement=DEFAULT_MIN_AGREEMENT - 0.1).relaxed()[0].startswith("--min-agreement 0.89")


@pytest.mark.slow
def test_a_pass_under_a_hand_set_tolerance_says_so_in_its_last_line(mlp_dir):
    loose = verify(mlp_dir, VerifyConfig(samples=16, atol=0.227), write=False)
    last = loose.render().rstrip().splitlines()[-1]
    assert last.startswith("PASSED") and "judged under --atol 0.227 (22,700x the float32 default" in last
    plain = verify(mlp_dir, VerifyConfig(samples=16), write=False).render().rstrip().splitlines()[-1]
    assert plain.startswith("PASSED") and "judged under" not in plain
    assert loose.to_dict()["relaxed"] and not verify(mlp_dir, VerifyConfig(samples=16), write=False).relaxed


@pytest.mark.slow
def test_a_failure_names_its_cause_right_after_the_header(mlp_dir):
    from .helpers import change_onnx_weight, restamp

    change_onnx_weight(mlp_dir)
    restamp(mlp_dir)
    lines = verify(mlp_dir, VerifyConfig(samples=16, trust=True), write=False).render().splitlines()
    first = lines.index("") + 1
    assert lines[first].startswith("FAILED:") and lines[first + 1].startswith("  - onnxruntime")
    assert (
        lines.index(
            "runtime      batch  samples  max_abs   max_rel   mean_abs  p99_abs   cosine    top1    ties  result"
        )
        > first
    )


# --- a folder says what it holds, and what it replaced ------------------------------------------------------


@pytest.mark.slow
def test_export_says_what_it_replaced_and_a_new_folder_replaced_nothing(tmp_path):
    config = ExportConfig(out=tmp_path, device="cpu", formats=("onnx",), verify=False)
    first = export("mlp", ExportConfig(**{**config.__dict__, "dtype": "float16"}))
    assert first.replaced is None and "replaced" not in first.render()
    second = export("mlp", config)
    assert second.replaced == "an export of mlp in float16 (onnx) from cpu, never verified"
    assert f"replaced the earlier {second.path}: an export of mlp in float16" in second.render()
    assert second.to_dict()["replaced"] == second.replaced


@pytest.mark.slow
def test_inspect_shows_the_folder_its_verdict_and_its_trust(mlp_dir):
    from exporter import inspect

    shown = inspect(mlp_dir)
    text = shown.render()
    assert "model.onnx" in text and "2.69 MB" in text and "input: input float32 (batch, 28, 28)" in text
    assert "verification: passed on 518 samples at batch 1, 64, 128, tolerance atol 1e-05, rtol 0.0001" in text
    assert "trust: signed with this machine's key" in text and "Total parameters: 669,706" in text
    data = json.loads((mlp_dir / "manifest.json").read_text())
    data["model"]["name"] = "edited"  # the signature no longer checks, and the verdict names another manifest
    (mlp_dir / "manifest.json").write_text(json.dumps(data))
    text = inspect(mlp_dir).render()
    assert "trust: not trusted: its manifest was changed after it was signed" in text
    assert "verification: none recorded for this manifest" in text


# --- a folder the user signed remembers its model file: tests/verification/test_run.py,
# test_a_file_model_runs_from_its_own_signed_folder_while_unchanged_else_needs_its_source


# --- a folder that stands in for a package torch imports -----------------------------------------------------


def test_a_triton_folder_in_the_current_folder_is_named_before_torch_fails_inside(tmp_path, monkeypatch):
    (tmp_path / "model_repository").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    check_shadowing()  # a Triton repository named as Triton names it stands in for nothing
    (tmp_path / "triton").mkdir()
    with pytest.raises(UsageError, match=r"the folder triton/ in the current folder stands in for .*'triton'"):
        check_shadowing()
    monkeypatch.syspath_prepend("/")  # still on sys.path: still refused
    with pytest.raises(UsageError):
        check_shadowing()


def test_the_api_refuses_a_shadowing_folder_before_importing_torch(tmp_path):
    (tmp_path / "triton").mkdir()
    code = (
        "import sys, exporter\n"
        "try:\n    exporter.verify('nowhere')\nexcept exporter.UsageError as e:\n    print(e)\n"
        "print('torch' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert "stands in for the Python package 'triton'" in run.stdout and run.stdout.split()[-1] == "False"
    shutil.rmtree(tmp_path / "triton")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert "is not an artifact folder" in run.stdout  # the next mistake, once the folder is gone


# --- bench checks its own numbers ----------------------------------------------------------------------------


def _row(**fields) -> BenchResult:
    return BenchResult(**{"runtime": "onnxruntime", "format": "onnx", "batch_size": 1, **fields})


def test_bench_flags_what_cannot_be_and_leaves_plausible_rows_alone():
    assert implausible(_row(peak_fraction=1.25, latency_ms_p50=1.0, latency_ms_p99=1.5, speedup_vs_eager=2.0)) == {
        "peak": "125% of the peak"
    }
    assert implausible(_row(format="onnx-int8", runtime="onnxruntime-int8", peak_fraction=3.0)) == {}  # int8 may
    assert implausible(_row(latency_ms_p50=0.12, latency_ms_p99=18.0))["tail"] == "p99 150x p50"
    assert implausible(_row(speedup_vs_eager=1 / 267))["slow"] == "267x slower than eager"
    assert implausible(_row(peak_fraction=0.8, latency_ms_p50=1.0, latency_ms_p99=3.0, speedup_vs_eager=0.5)) == {}


@pytest.mark.slow
def test_the_bench_table_fits_100_columns(mlp_export):
    from exporter.benchmarking import BenchConfig, bench

    report = bench(mlp_export.path, BenchConfig(batch_sizes=(1, 7), warmup=1, repeats=2, min_time_s=0.01))
    lines = report.render().splitlines()
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)
    assert any(line.startswith("batch 7:") for line in lines)
    assert all(row.warmup_calls >= 1 for row in report.results)
