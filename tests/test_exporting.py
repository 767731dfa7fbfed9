"""export: the files it writes, all-or-nothing writing, and what the manifest records."""

from __future__ import annotations

import errno
import json
import os
import shutil

import onnx
import pytest
import torch

from exporter import ExportConfig, export, models
from exporter.errors import ExportFailedError, UsageError

from .conftest import BROKEN


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(models.REGISTRY), ids=str)
def test_every_registered_model_exports_and_verifies(tmp_path, name):
    result = export(name, ExportConfig(out=tmp_path, device="cpu"))
    assert result.passed, result.report.failures
    params = result.report.parameters
    assert all(a.total == params.eager_total for a in params.artifacts.values())
    assert result.manifest.model["parameters"] == params.eager_total


@pytest.mark.slow
def test_export_writes_both_artifacts_the_manifest_and_the_report(mlp_export):
    names = sorted(p.name for p in mlp_export.path.iterdir())
    assert names == ["manifest.json", "model.onnx", "model.pt", "verification.json"]
    assert not [p for p in mlp_export.path.parent.iterdir() if p.name.startswith(".")]
    assert mlp_export.passed and mlp_export.manifest.verification["passed"] is True


@pytest.mark.slow
def test_onnx_file_is_self_contained_checked_and_has_a_dynamic_batch(mlp_export):
    path = mlp_export.path / "model.onnx"
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["input"] and [o.name for o in model.graph.output] == ["logits"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert all(not i.HasField("data_location") or i.data_location == 0 for i in model.graph.initializer)


@pytest.mark.slow
def test_torchscript_file_loads_and_runs_other_batch_sizes(mlp_export):
    module = torch.jit.load(str(mlp_export.path / "model.pt"))
    assert module(torch.rand(5, 28, 28)).shape == (5, 10)
    assert sum(p.numel() for p in module.parameters()) == 669_706


@pytest.mark.slow
def test_the_same_seed_gives_the_same_weights_and_another_seed_does_not(tmp_path, mlp_export):
    again = export("mlp", ExportConfig(out=tmp_path, device="cpu", formats=("torchscript",), verify=False))
    other = export("mlp", ExportConfig(out=tmp_path, name="other", device="cpu", seed=1, formats=("torchscript",)))
    assert again.manifest.model["state_sha256"] == mlp_export.manifest.model["state_sha256"]
    assert other.manifest.model["state_sha256"] != mlp_export.manifest.model["state_sha256"]
    assert again.report is None and again.manifest.verification is None
    assert [a.format for a in other.manifest.artifacts] == ["torchscript"] and other.passed


@pytest.mark.slow
def test_a_failed_export_keeps_the_earlier_folder_and_leaves_nothing_half_written(tmp_path, mlp_export):
    shutil.copytree(mlp_export.path, tmp_path / "mlp")
    before = (tmp_path / "mlp" / "manifest.json").read_text()
    config = ExportConfig(out=tmp_path, name="mlp", device="cpu", input_shape=(1, 28, 28), formats=("onnx",))
    with pytest.raises(ExportFailedError, match="branches on tensor values"):
        export(f"{BROKEN}:ValueBranch", config)
    assert (tmp_path / "mlp" / "manifest.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlp"]


@pytest.mark.slow
def test_a_successful_export_replaces_the_earlier_artifact_folder(tmp_path, mlp_export):
    shutil.copytree(mlp_export.path, tmp_path / "mlp")
    (tmp_path / "mlp" / "stale.txt").write_text("old")
    result = export("mlp", ExportConfig(out=tmp_path, device="cpu", formats=("torchscript",), verify=False))
    assert not (tmp_path / "mlp" / "stale.txt").exists() and (tmp_path / "mlp" / "model.pt").exists()
    assert not (tmp_path / "mlp" / "model.onnx").exists() and result.replaced.startswith("an export of mlp")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlp"]


def _users_folder(target, manifest: str | None) -> dict:
    """A folder of the user's own at ``target``: their files, and what stands at manifest.json."""
    (target / "notes").mkdir(parents=True)
    (target / "index.md").write_bytes(b"# the user's docs\n")
    (target / "notes" / "a.txt").write_bytes(b"SECRET-user-bytes")
    if manifest == "corrupt":
        (target / "manifest.json").write_bytes(b'{"schema": 2, "model": ')
    elif manifest == "link":
        (target / "manifest.json").symlink_to(target / "index.md")
    elif manifest == "deep":
        (target / "manifest.json").write_text("[" * 3000 + "]" * 3000)
    return _snapshot(target)


@pytest.mark.parametrize("manifest", [None, "corrupt", "link", "deep"], ids=str)
def test_export_refuses_to_replace_a_folder_that_is_not_its_own_and_leaves_it_untouched(tmp_path, manifest):
    from click.testing import CliRunner

    from exporter.cli import cli

    target = tmp_path / "out" / "docs"
    before = _users_folder(target, manifest)
    args = ["export", "mlp", "--name", "docs", "--no-verify", "--format", "torchscript", "--out", str(tmp_path / "out")]
    run = CliRunner().invoke(cli, args)
    lines = run.stderr.strip().splitlines()
    assert run.exit_code == 2 and len(lines) == 1, run.output
    assert f"{target} exists and is not an artifact folder" in lines[0] and "--name" in lines[0]
    assert "SECRET" not in run.output
    assert _snapshot(target) == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["docs"]  # no staging made


@pytest.mark.slow
def test_a_failed_verification_keeps_the_artifacts_marked_failed(tmp_path):
    config = ExportConfig(out=tmp_path, device="cpu", input_shape=(1, 28, 28))
    result = export(f"{BROKEN}:UnusedParameter", config)
    assert result.passed is False
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert manifest["verification"]["passed"] is False and (result.path / "model.onnx").exists()


@pytest.mark.slow
def test_a_model_file_is_recorded_with_its_sha256(tmp_path):
    result = export(f"{BROKEN}:TiedWeights", ExportConfig(out=tmp_path, device="cpu", input_shape=(1, 28, 28)))
    source = result.manifest.model["source"]
    assert source["kind"] == "file" and source["class_name"] == "TiedWeights" and len(source["sha256"]) == 64
    assert result.path.name == "TiedWeights"


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", ""], ids=repr)
def test_names_that_are_not_plain_folder_names_are_refused(tmp_path, name):
    with pytest.raises(UsageError):
        export("mlp", ExportConfig(out=tmp_path, name=name or None, device="cpu", formats=()))


@pytest.mark.slow
def test_an_nn_module_instance_exports_with_its_own_weights(tmp_path):
    from exporter.models.mlp import NeuralNetwork

    model = NeuralNetwork()
    result = export(model, ExportConfig(out=tmp_path, device="cpu"), example_input=torch.rand(2, 28, 28))
    assert result.passed, result.report.failures
    assert result.manifest.artifact("weights") is not None and result.manifest.inputs[0]["shape"] == [2, 28, 28]
    assert model.training  # the caller's model is not switched to eval or moved


@pytest.mark.slow
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device: this machine has none")
def test_export_and_verify_on_cuda(tmp_path):
    result = export("mlp", ExportConfig(out=tmp_path, device="cuda"))
    assert result.manifest.device.startswith("cuda") and result.passed, result.report.failures


@pytest.mark.slow
def test_staging_folders_left_by_a_killed_run_are_cleaned_but_fresh_ones_and_the_users_kept(tmp_path):
    import os
    import time

    from exporter.artifacts.atomic import staging_folder

    stale, fresh = staging_folder(tmp_path, "mlp").parent, staging_folder(tmp_path, "mlp").parent
    users = tmp_path / ".mlp.before-retraining.old"
    users.mkdir()
    day_ago = time.time() - 2 * 24 * 3600
    for folder in (stale, users):
        os.utime(folder, (day_ago, day_ago))
    export("mlp", ExportConfig(out=tmp_path, device="cpu", formats=("torchscript",), verify=False))
    assert not stale.exists() and fresh.exists()  # a fresh one may belong to a run in progress
    assert users.exists()  # not marked as this tool's: never removed


# --- issue 28: the swap's own errors, and a seed the folder cannot take -------------------------------


def _snapshot(folder) -> dict:
    """Each path under ``folder``: its bytes (a folder's: empty; a link's: its target) and its mode."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            found[str(path.relative_to(folder))] = (os.readlink(path).encode(), "link")
        else:
            found[str(path.relative_to(folder))] = (b"" if path.is_dir() else path.read_bytes(), path.stat().st_mode)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("code", [errno.EXDEV, errno.EACCES], ids=["EXDEV", "EACCES"])
def test_a_swap_that_fails_is_one_line_exit_1_and_the_earlier_folder_stays_byte_for_byte(
    tmp_path, mlp_export, monkeypatch, code
):
    from click.testing import CliRunner

    from exporter.artifacts import atomic
    from exporter.cli import cli

    shutil.copytree(mlp_export.path, tmp_path / "mlp")
    before = _snapshot(tmp_path / "mlp")

    def fails(source, _destination):  # EXDEV: OUT/mlp a mount point; EACCES: moving the old folder aside
        raise OSError(code, os.strerror(code), str(source))

    monkeypatch.setattr(atomic, "_exchange", lambda *_: False)
    monkeypatch.setattr(atomic, "_rename", fails)
    args = ["export", "mlp", "--no-verify", "--format", "torchscript", "--device", "cpu", "--out", str(tmp_path)]
    run = CliRunner().invoke(cli, args)
    lines = run.stderr.strip().splitlines()
    assert run.exit_code == 1 and len(lines) == 1, run.output
    assert lines[0].startswith(f"error: could not replace {tmp_path / 'mlp'} with the new export: ")
    assert "internal error" not in lines[0] and "the earlier folder is untouched" in lines[0]
    assert ("another filesystem" if code == errno.EXDEV else "permission denied") in lines[0]
    assert _snapshot(tmp_path / "mlp") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlp"]  # no staging left


def test_a_seed_the_folder_cannot_take_is_refused_up_front_with_its_range(tmp_path):
    from click.testing import CliRunner

    from exporter.cli import cli

    for seed in ("-1", str(2**63)):
        args = ["export", "mlp", "--no-verify", "--seed", seed, "--out", str(tmp_path)]
        run = CliRunner().invoke(cli, args)
        assert run.exit_code == 2 and "0<=x<=9223372036854775807" in run.stderr, run.output
        assert list(tmp_path.iterdir()) == []  # nothing written
    with pytest.raises(UsageError, match="from 0 to 2\\*\\*63-1"):
        export("mlp", ExportConfig(out=tmp_path, seed=-1, verify=False))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_the_largest_seed_writes_a_folder_that_verifies(tmp_path):
    from exporter import VerifyConfig, verify

    config = ExportConfig(out=tmp_path, device="cpu", formats=("onnx",), seed=2**63 - 1, verify=False)
    result = export("mlp", config)
    assert verify(result.path, VerifyConfig(samples=8), write=False).passed


class _NoTracing(torch.nn.Module):
    """A model TorchScript cannot trace (it refuses while being traced) but torch.export can."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing():
            raise RuntimeError("this forward cannot be traced")
        return self.linear(x)


@pytest.mark.slow
def test_a_default_format_that_cannot_be_built_is_left_out_and_the_rest_verify(tmp_path):
    result = export(_NoTracing(), ExportConfig(out=tmp_path, device="cpu"), example_inputs=torch.rand(2, 4))
    assert result.passed, result.report.failures
    assert [a.format for a in result.manifest.artifacts if a.format != "weights"] == ["onnx"]
    why = result.manifest.model["formats_left_out"]["torchscript"]
    assert "this forward cannot be traced" in why
    assert not (result.path / "model.pt").exists()
    assert "left out torchscript: TorchScript tracing failed" in result.render()
    saved = json.loads((result.path / "manifest.json").read_text())
    assert "torchscript" in saved["model"]["formats_left_out"]


@pytest.mark.slow
def test_an_explicit_format_list_stays_strict(tmp_path):
    config = ExportConfig(out=tmp_path, device="cpu", formats=("torchscript", "onnx"))
    with pytest.raises(ExportFailedError, match="this forward cannot be traced"):
        export(_NoTracing(), config, example_inputs=torch.rand(2, 4))
    assert not any(tmp_path.iterdir())  # nothing written, not even the ONNX file that could be built


_KEYWORDS = '''
import torch


class Shifted(torch.nn.Module):
    """forward's second parameter is optional and not declared: the declared shift must not land in it."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)

    def forward(self, x, scale=None, shift=None):
        y = self.linear(x)
        return y * (1 if scale is None else scale) + (0 if shift is None else shift)
'''


@pytest.mark.slow
def test_declared_inputs_reach_forward_by_name_in_every_runtime_and_in_a_later_verify(tmp_path):
    from exporter import verify
    from exporter.interface import InputSpec

    model_file = tmp_path / "shifted.py"
    model_file.write_text(_KEYWORDS)
    inputs = (InputSpec("shift", (2, 4), value_range=(5.0, 6.0)), InputSpec("x", (2, 4)))
    result = export(f"{model_file}:Shifted", ExportConfig(out=tmp_path / "out", device="cpu", inputs=inputs))
    assert result.passed, result.report.failures
    assert [i["name"] for i in result.manifest.inputs] == ["x", "shift"]  # forward's order
    onnx_model = onnx.load(result.path / "model.onnx")
    assert [i.name for i in onnx_model.graph.input] == ["x", "shift"]
    traced = torch.jit.load(result.path / "model.pt")
    x, shift = torch.rand(1, 4), torch.full((1, 4), 5.5)
    # shift is added (not multiplied, as it would be in scale's place): the output moves by exactly shift
    assert torch.allclose(traced(x, shift) - traced(x, torch.zeros(1, 4)), shift)
    again = verify(result.path)  # the model rebuilt from its file, called by name again
    assert again.passed, again.failures


@pytest.mark.slow
def test_a_parameter_reached_only_through_an_eval_mode_cache_is_no_false_alarm(tmp_path):
    from .verification.test_parameters import CachedBiases

    result = export(CachedBiases(), ExportConfig(out=tmp_path, device="cpu"), example_inputs=torch.rand(2, 4))
    assert result.passed, result.report.failures  # timm LeViT's pattern: "biases never used by forward" before


@pytest.mark.slow
def test_with_the_defaults_a_value_branch_leaves_onnx_out_and_the_traced_file_still_fails(tmp_path):
    result = export(f"{BROKEN}:ValueBranch", ExportConfig(out=tmp_path, device="cpu", input_shape=(1, 28, 28)))
    assert "branches on tensor values" in result.manifest.model["formats_left_out"]["onnx"]
    assert result.passed is False  # the trace froze the branch: left out or not, no broken export passes
