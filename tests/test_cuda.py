"""The CUDA path: export, verify and bench on a GPU, and what TF32 would do to a float32 verdict.

Every test here needs a CUDA device and is skipped, saying so, on a machine without one (CI has
none). benchmarks/cuda_check.sh runs them on a GPU machine together with the CLI's CUDA path.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from exporter import ExportConfig, VerifyConfig, export, verify
from exporter.benchmarking import BenchConfig, bench
from exporter.interface import parse_input

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.slow,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device: this machine has none"),
]

FAST = BenchConfig(batch_sizes=(1, 8), warmup=1, warmup_s=0, repeats=2, min_time_s=0, peak_runs=1, accuracy_samples=16)


@pytest.fixture(scope="module")
def cnn_on_cuda(tmp_path_factory):
    out = tmp_path_factory.mktemp("cuda")
    return export("cnn", ExportConfig(out=out, device="cuda", formats=("torchscript", "onnx", "pt2")))


def test_the_cnn_exports_and_verifies_on_cuda_in_every_runtime(cnn_on_cuda):
    assert cnn_on_cuda.passed, cnn_on_cuda.report.failures
    assert cnn_on_cuda.manifest.device.startswith("cuda")
    runtimes = {r.runtime for r in cnn_on_cuda.report.runtimes}
    assert {"torchscript", "onnxruntime", "pt2"} <= runtimes


def test_a_cuda_export_verifies_on_the_cpu_too(cnn_on_cuda):
    report = verify(cnn_on_cuda.path, VerifyConfig(device="cpu"), write=False)
    assert report.device == "cpu"
    failed = {r.runtime: r.error or r.reasons for r in report.runtimes if not r.passed}
    # TorchScript traced on CUDA may keep the device in its graph; whatever fails must say why, never pass wrongly
    assert report.passed or all(failed.values()), failed


def test_verification_turns_tf32_off_and_restores_it(cnn_on_cuda):
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        report = verify(cnn_on_cuda.path, VerifyConfig(), write=False)
        assert report.passed, report.failures
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_tf32_is_a_difference_the_float32_gates_would_see():
    """Why verification turns it off: a TF32 matmul differs from float32 by far more than float32 noise."""
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(512, 512, generator=generator).cuda() for _ in range(2))
    saved = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = False
        exact = (a @ b).double()
        torch.backends.cuda.matmul.allow_tf32 = True
        fast = (a @ b).double()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
    reference = a.double() @ b.double()
    rms = reference.pow(2).mean().sqrt()
    assert (exact - reference).abs().max() / rms < 1e-5
    assert (fast - reference).abs().max() / rms > 1e-4  # past the 1e-3 x RMS gate's comfort: why it is off


def test_half_precision_and_integer_inputs_verify_on_cuda(tmp_path):
    half = export("mlp", ExportConfig(out=tmp_path, name="mlp16", device="cuda", dtype="float16"))
    assert half.passed, half.report.failures
    tagger = export(
        "models/examples.py:Tagger",
        ExportConfig(
            out=tmp_path, device="cuda", inputs=(parse_input("ids:1,32:int64:0..999"),), dynamic=(("ids", 1, "seq"),)
        ),
    )
    assert tagger.passed, tagger.report.failures


def test_a_broken_export_fails_on_cuda_for_its_cause(tmp_path):
    from .catalogue import LargeBatchBranch  # behaves differently from batch 100: a trace freezes it

    result = export(
        LargeBatchBranch(), ExportConfig(out=tmp_path, device="cuda", formats=("torchscript",)),
        example_inputs=torch.rand(2, 28, 28),
    )  # fmt: skip
    assert result.passed is False
    assert "torchscript at batch 128" in "\n".join(result.report.failures), result.report.failures


def test_bench_runs_every_runtime_on_cuda(cnn_on_cuda):
    report = bench(cnn_on_cuda.path, BenchConfig(**{**FAST.__dict__, "device": "cuda"}))
    assert report.device.startswith("cuda") and report.versions.get("gpu")
    rows = {(r.runtime, r.batch_size): r for r in report.results}
    for runtime in ("eager", "torchscript", "pt2", "onnxruntime"):
        for batch in (1, 8):
            row = rows[(runtime, batch)]
            assert row.error is None and row.latency_ms_p50 > 0, (runtime, batch, row.error)
    assert all(np.isfinite(r.max_abs_diff) for r in report.results if r.runtime != "eager" and r.max_abs_diff)
    assert report.peak.gflops_per_s > 1000  # a GPU's float32 matmul: thousands of GFLOP/s
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():  # the row says where it really ran
        assert "onnxruntime: onnxruntime has no CUDA provider here (install onnxruntime-gpu): it ran on the CPU" in (
            report.notes
        )
        assert "no CUDA provider" in report.render()


def test_bench_on_the_cpu_stays_on_the_cpu_on_a_cuda_machine(cnn_on_cuda):
    report = bench(cnn_on_cuda.path, BenchConfig(**{**FAST.__dict__, "runtimes": ("onnxruntime",)}))
    assert report.device == "cpu" and "gpu" not in report.versions
