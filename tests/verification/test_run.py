"""verify: passes sound artifacts, fails tampered ones, and says why."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from exporter import VerifyConfig, verify
from exporter.errors import UsageError

from ..conftest import BROKEN
from ..helpers import change_onnx_weight, restamp

pytestmark = pytest.mark.slow  # every test verifies an exported folder


def test_a_fresh_export_passes_at_1_64_and_one_batch_past_100(mlp_dir):
    report = verify(mlp_dir, VerifyConfig(samples=200))
    assert report.passed, report.failures
    assert report.batch_sizes == [1, 64, 128]
    assert {r.runtime for r in report.runtimes} == {"torchscript", "onnxruntime"}
    assert all(len([b for b in r.batches if not b.probe]) == 3 and r.passed for r in report.runtimes)
    given = verify(mlp_dir, VerifyConfig(samples=200, batch_sizes=(1, 64)), write=False)
    assert given.batch_sizes == [1, 64]  # --batch-size given: exactly those
    assert report.parameters.eager_total == 669_706
    assert {k: a.total for k, a in report.parameters.artifacts.items()} == {
        "torchscript": 669_706,
        "onnxruntime": 669_706,
    }
    assert report.reference["deterministic"] is True


def test_a_changed_onnx_weight_with_a_stale_hash_is_not_loaded(mlp_dir):
    change_onnx_weight(mlp_dir)
    report = verify(mlp_dir, VerifyConfig(samples=64))
    assert not report.passed
    ort = next(r for r in report.runtimes if r.runtime == "onnxruntime")
    assert ort.error and not ort.batches  # never loaded
    assert any("model.onnx: sha256" in f and "not loaded" in f for f in report.failures)
    assert next(r for r in report.runtimes if r.runtime == "torchscript").passed


def test_a_changed_onnx_weight_with_a_restamped_hash_fails_on_the_logits(mlp_dir):
    change_onnx_weight(mlp_dir)
    restamp(mlp_dir)
    report = verify(mlp_dir, VerifyConfig(samples=64))
    assert not report.passed and all(h.ok for h in report.hashes)
    assert any(f.startswith("onnxruntime at batch") and "differ beyond" in f for f in report.failures)
    assert any("linear_relu_stack.2.weight in the artifact differs" in f for f in report.failures)


def test_a_missing_artifact_is_a_failure(mlp_dir):
    (mlp_dir / "model.pt").unlink()
    report = verify(mlp_dir, VerifyConfig(samples=64))
    assert not report.passed and any("model.pt" in f and "cannot be read (missing)" in f for f in report.failures)


def test_tolerances_are_live_a_zero_tolerance_fails_onnxruntime(mlp_dir):
    report = verify(mlp_dir, VerifyConfig(samples=64, atol=0.0, rtol=0.0))
    assert not report.passed
    assert report.tolerances["onnxruntime"] == {"logits": {"atol": 0.0, "rtol": 0.0, "top1_near_ties_only": True}}
    assert any(f.startswith("onnxruntime") for f in report.failures)


def test_inputs_and_outputs_are_saved_and_replayed(mlp_dir, tmp_path):
    config = VerifyConfig(samples=66, save_inputs=tmp_path / "in.npz", save_outputs=tmp_path / "out.npz")
    first = verify(mlp_dir, config)
    outputs = np.load(tmp_path / "out.npz")
    assert {"eager__batch_1__logits", "onnxruntime__batch_64__logits", "torchscript__batch_1__logits"} <= set(outputs)
    replay = verify(mlp_dir, VerifyConfig(inputs_path=tmp_path / "in.npz"))
    assert replay.passed and replay.samples == first.samples and replay.inputs.startswith("file")


def test_the_users_own_inputs_can_be_verified(mlp_dir, tmp_path):
    np.save(tmp_path / "images.npy", np.random.default_rng(0).random((10, 28, 28)))
    report = verify(mlp_dir, VerifyConfig(inputs_path=tmp_path / "images.npy"))
    assert report.passed and report.samples == 10


def test_a_manifest_whose_model_no_longer_matches_fails(mlp_dir):
    data = json.loads((mlp_dir / "manifest.json").read_text())
    data["model"]["seed"] = 7  # verify rebuilds other weights than were exported
    (mlp_dir / "manifest.json").write_text(json.dumps(data))
    report = verify(mlp_dir, VerifyConfig(samples=64))
    assert not report.passed and any("not the one exported" in f for f in report.failures)


def test_verify_on_cuda_without_cuda_is_a_usage_error(mlp_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(UsageError, match="CUDA"):
        verify(mlp_dir, VerifyConfig(device="cuda"))


def test_a_file_model_runs_from_its_own_signed_folder_while_unchanged_else_needs_its_source(tmp_path):
    from exporter import ExportConfig, export

    copy = tmp_path / "net.py"
    copy.write_text(BROKEN.read_text())
    result = export(f"{copy}:TiedWeights", ExportConfig(out=tmp_path / "out", device="cpu", input_shape=(1, 28, 28)))
    assert verify(result.path, VerifyConfig(samples=64)).passed  # signed with this user's key: its file runs
    assert verify(result.path, VerifyConfig(source=copy, samples=64)).passed
    unsigned = tmp_path / "unsigned"
    shutil.copytree(result.path, unsigned)
    data = json.loads((unsigned / "manifest.json").read_text())
    del data["signature"]
    (unsigned / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(UsageError, match="pass --source FILE"):  # from elsewhere: the file it names never runs
        verify(unsigned, write=False)
    copy.write_text(copy.read_text() + "\nprint('changed')\n")
    with pytest.raises(UsageError, match="has changed since this artifact was exported"):
        verify(result.path)
    with pytest.raises(UsageError, match="refusing to run it"):
        verify(result.path, VerifyConfig(source=copy, samples=64))


@pytest.mark.slow
def test_runtimes_load_private_copies_never_the_folder_itself(mlp_dir, monkeypatch):
    import onnxruntime
    import torch

    loaded: list[str] = []
    real_jit, real_session = torch.jit.load, onnxruntime.InferenceSession

    def jit_load(source, *args, **kwargs):
        loaded.append(str(source))
        return real_jit(source, *args, **kwargs)

    def session(source, *args, **kwargs):
        loaded.append(str(source))
        return real_session(source, *args, **kwargs)

    monkeypatch.setattr(torch.jit, "load", jit_load)
    monkeypatch.setattr(onnxruntime, "InferenceSession", session)
    report = verify(mlp_dir, VerifyConfig(samples=8), write=False)
    assert report.passed, report.failures
    # ONNX Runtime opens a small view of the copy that reads its weights in place (onnx_view.external_view)
    ours = [p for p in loaded if p.endswith(("model.pt", "model.onnx")) or "/.view-" in p]
    assert len(ours) == 2 and not any(p.startswith(str(mlp_dir)) for p in ours), loaded
    assert all("exporter-load-" in p for p in ours)  # a folder of this process, removed afterwards
    assert not any(Path(p).exists() for p in ours)


@pytest.mark.slow
def test_a_file_changed_after_its_hash_check_is_still_judged_by_its_checked_copy(mlp_dir, monkeypatch):
    """The copy is made while hashing: a change to the folder after that cannot reach the runtime."""
    from exporter.artifacts import integrity

    real = integrity.private_copies

    def then_tamper(folder, entries, into, action="load"):
        copies = real(folder, entries, into, action)
        for entry in entries:
            (folder / entry.path).write_bytes(b"swapped after the check")
        return copies

    monkeypatch.setattr("exporter.runners.open.private_copies", then_tamper)
    report = verify(mlp_dir, VerifyConfig(samples=8), write=False)
    assert report.passed, report.failures  # judged on the checked bytes


def test_the_manifest_records_flops_and_a_costly_model_gets_one_batch_per_case(mlp_dir, monkeypatch):
    manifest = json.loads((mlp_dir / "manifest.json").read_text())
    assert manifest["model"]["flops_per_sample"] == 2 * (784 * 512 + 512 * 512 + 512 * 10)
    assert verify(mlp_dir, VerifyConfig(), write=False).samples > 65  # the seed: the default budget
    monkeypatch.setattr("exporter.verification.run.HEAVY_FLOPS_PER_SAMPLE", 1_000_000)
    costly = verify(mlp_dir, VerifyConfig(), write=False)
    assert costly.passed and costly.samples == 1 + 128 and costly.batch_sizes == [1, 128]  # each once
    assert "the batch past 100 stands for 64" in costly.inputs
    assert "one batch per case" in costly.inputs
    given = verify(mlp_dir, VerifyConfig(samples=200), write=False)  # --samples still rules (in whole batches)
    assert given.samples > 193 and "one batch per case" not in given.inputs


def test_eager_runs_again_only_the_first_batch_of_each_case(mlp_dir):
    seen: list[str] = []
    report = verify(mlp_dir, VerifyConfig(samples=200), write=False, progress=seen.append)
    assert report.passed and report.reference["deterministic"] is True

    def totals(runtime):  # seeded batch size -> samples run, from the last progress line of each case
        found = (re.fullmatch(rf"verify: {runtime}, batch (\d+): \d+/(\d+) samples", s) for s in seen)
        return {int(m[1]): int(m[2]) for m in found if m and int(m[1]) in (1, 64, 128)}  # not the probes' sizes

    assert totals("eager") == {1: 4, 64: 256, 128: 128} and report.samples == 388
    assert totals("eager again") == {1: 1, 64: 64, 128: 128}  # one batch of each, not every sample again


def test_a_large_model_is_verified_without_onnx_runtime_weight_prepacking_and_says_so(mlp_dir, monkeypatch):
    def ort_notes(report):
        return next(r for r in report.runtimes if r.runtime == "onnxruntime").notes

    normal = verify(mlp_dir, VerifyConfig(samples=8), write=False)
    assert not any("prepacking" in n.text for n in ort_notes(normal))
    monkeypatch.setattr("exporter.verification.run.LARGE_MODEL_PARAMETERS", 1000)
    lean = verify(mlp_dir, VerifyConfig(samples=8), write=False)
    assert lean.passed and any("weight prepacking off" in n.text for n in ort_notes(lean))


def test_a_reference_that_raises_only_when_run_again_fails_and_says_so(mlp_dir):
    from exporter.models.mlp import NeuralNetwork

    model, calls = NeuralNetwork().eval(), []
    plain = model.forward

    def flaky(x):
        calls.append(len(x))
        if len(calls) > 4:  # the first run is 2 batches of 1 and 2 of 4; the second run raises
            raise RuntimeError("state ran out")
        return plain(x)

    model.forward = flaky
    report = verify(mlp_dir, VerifyConfig(samples=10, batch_sizes=(1, 4)), model=model, write=False)
    assert not report.passed and calls[:4] == [1, 1, 4, 4]
    assert "eager (the reference, run again) raised at batch 1: state ran out" in report.failures
    assert report.reference["deterministic"] is None  # not judged: nothing to compare, and not blamed on randomness
    assert not any("nondeterministic" in f for f in report.failures)


# --- the weights held once ------------------------------------------------------------------------


def _watch_loads(monkeypatch, alive) -> list[bool]:
    """Whether ``alive()`` (the eager model still exists) held at each runtime load."""
    import gc

    from exporter import runners

    real, seen = runners.open_artifact, []

    def open_artifact(*args, **kwargs):
        gc.collect()
        seen.append(alive())
        return real(*args, **kwargs)

    monkeypatch.setattr(runners, "open_artifact", open_artifact)
    return seen


def test_the_rebuilt_eager_model_is_let_go_before_any_runtime_loads(mlp_dir, monkeypatch):
    import weakref

    from exporter.eager import reference

    built, real = [], reference.rebuild

    def rebuild(*args, **kwargs):
        model = real(*args, **kwargs)
        built.append(weakref.ref(model))
        return model

    monkeypatch.setattr(reference, "rebuild", rebuild)
    seen = _watch_loads(monkeypatch, lambda: built[0]() is not None)
    report = verify(mlp_dir, VerifyConfig(samples=8), write=False)
    assert report.passed, report.failures
    assert seen == [False, False] and len(built) == 1  # both runtimes loaded after it was freed; not rebuilt


def test_a_model_the_caller_passes_stays_theirs_while_the_runtimes_load(mlp_dir, monkeypatch):
    """The twin: the same probe sees a model that is still held (the caller keeps it)."""
    import weakref

    from exporter.artifacts.manifest import Manifest
    from exporter.eager import reference

    model = reference.rebuild(mlp_dir, Manifest.load(mlp_dir), VerifyConfig(), reference.resolve_device("cpu"))
    ref = weakref.ref(model)
    seen = _watch_loads(monkeypatch, lambda: ref() is not None)
    assert verify(mlp_dir, VerifyConfig(samples=8), model=model, write=False).passed
    assert seen == [True, True]


def test_export_lets_its_eager_model_go_before_verification_loads_a_runtime(tmp_path, monkeypatch):
    import weakref

    from exporter import ExportConfig, export, exporting

    built, real = [], exporting._eager

    def eager(*args, **kwargs):
        model, record = real(*args, **kwargs)
        built.append(weakref.ref(model))
        return model, record

    monkeypatch.setattr(exporting, "_eager", eager)
    seen = _watch_loads(monkeypatch, lambda: built[0]() is not None)
    result = export("mlp", ExportConfig(out=tmp_path, device="cpu", verify_config=VerifyConfig(samples=8)))
    assert result.passed and seen == [False, False] and len(built) == 1


def test_a_failing_runtime_is_still_localised_from_the_eager_model_built_again(mlp_dir, monkeypatch):
    """Localising needs eager after the runtimes have gone: it is rebuilt then, and only then."""
    from exporter.eager import reference

    calls, real = [], reference.rebuild
    monkeypatch.setattr(reference, "rebuild", lambda *a, **k: calls.append(a) or real(*a, **k))
    assert verify(mlp_dir, VerifyConfig(samples=8), write=False).passed and len(calls) == 1  # nothing to localise
    change_onnx_weight(mlp_dir)
    restamp(mlp_dir)
    report = verify(mlp_dir, VerifyConfig(samples=8), write=False)
    ort = next(r for r in report.runtimes if r.runtime == "onnxruntime")
    assert not report.passed and ort.first_divergence.module == "linear_relu_stack.2"
    assert len(calls) == 3  # once before the runtimes, once after them for the failing one


def test_the_report_is_the_same_whether_eager_is_held_throughout_or_let_go(mlp_dir, monkeypatch):
    """Line for line: the caller's model (held all along, every value kept) against the rebuilt one let
    go with no eager value kept (every tensor judged by its digest)."""
    from exporter.artifacts.manifest import Manifest
    from exporter.eager import reference
    from exporter.verification import parameters

    model = reference.rebuild(mlp_dir, Manifest.load(mlp_dir), VerifyConfig(), reference.resolve_device("cpu"))
    held = verify(mlp_dir, VerifyConfig(samples=64), model=model, write=False).render()
    monkeypatch.setattr(parameters, "KEEP_VALUES_BYTES", 0)
    let_go = verify(mlp_dir, VerifyConfig(samples=64), write=False).render()
    assert let_go.splitlines() == held.splitlines()
