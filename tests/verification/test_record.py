"""A recorded verification names the manifest it judged; it is written only into that folder,
and bench, triton and predict believe it only when it names the manifest they read."""

from __future__ import annotations

import json
import shutil

import pytest

from exporter import TritonConfig, VerifyConfig, predict, verify, write_repository
from exporter.artifacts.manifest import Manifest
from exporter.errors import UnverifiedFolderError
from exporter.verification import run as verification_module

pytestmark = pytest.mark.slow  # each test uses an exported folder


def test_the_recorded_verdict_names_the_manifest_it_judged(mlp_export):
    manifest = Manifest.load(mlp_export.path)
    assert manifest.verification["manifest_sha256"] == manifest.digest
    assert manifest.verdict is manifest.verification


def test_a_folder_replaced_during_verification_gets_no_verdict(mlp_dir, tmp_path, monkeypatch):
    """An `export --no-verify` that swaps the folder in meanwhile: its artifacts were never verified."""
    unverified = tmp_path / "unverified"
    shutil.copytree(mlp_dir, unverified)
    data = json.loads((unverified / "manifest.json").read_text())
    del data["verification"]
    (unverified / "manifest.json").write_text(json.dumps(data))
    (unverified / "verification.json").unlink()
    real = verification_module.check_all

    def swap_then_check(folder, entries):
        checks = real(folder, entries)
        shutil.move(mlp_dir, tmp_path / "gone")
        shutil.copytree(unverified, mlp_dir)  # same manifest bytes: only the folder's identity tells them apart
        return checks

    monkeypatch.setattr(verification_module, "check_all", swap_then_check)
    report = verify(mlp_dir, VerifyConfig(samples=20))
    assert report.passed and any("nothing recorded" in note for note in report.record_notes)
    assert "verification" not in json.loads((mlp_dir / "manifest.json").read_text())
    assert not (mlp_dir / "verification.json").exists()


def test_a_manifest_changed_during_verification_gets_no_verdict(mlp_dir, monkeypatch):
    real = verification_module.check_all

    def edit_then_check(folder, entries):
        data = json.loads((folder / "manifest.json").read_text())
        data["model"]["name"] = "edited"
        (folder / "manifest.json").write_text(json.dumps(data))
        return real(folder, entries)

    monkeypatch.setattr(verification_module, "check_all", edit_then_check)
    before = (mlp_dir / "verification.json").read_bytes()
    report = verify(mlp_dir, VerifyConfig(samples=20))
    assert any("nothing recorded" in note for note in report.record_notes)
    assert (mlp_dir / "verification.json").read_bytes() == before
    monkeypatch.undo()
    assert not verify(mlp_dir, VerifyConfig(samples=20)).record_notes  # unchanged: recorded


def _stale_verdict(folder) -> None:
    data = json.loads((folder / "manifest.json").read_text())
    data["verification"]["manifest_sha256"] = "0" * 64  # a verdict on some other manifest
    (folder / "manifest.json").write_text(json.dumps(data))


def test_triton_refuses_a_folder_without_a_matching_passed_verdict(mlp_dir, tmp_path):
    _stale_verdict(mlp_dir)
    with pytest.raises(UnverifiedFolderError, match="--allow-unverified"):
        write_repository(mlp_dir, tmp_path / "repo")
    assert not (tmp_path / "repo").exists()
    result = write_repository(mlp_dir, tmp_path / "repo", TritonConfig(allow_unverified=True))
    assert all(any("--allow-unverified" in n for n in m.notes) for m in result.models)


def test_triton_refuses_a_failed_verdict_and_writes_a_passed_one(mlp_dir, tmp_path):
    assert write_repository(mlp_dir, tmp_path / "ok").models  # the positive twin
    data = json.loads((mlp_dir / "manifest.json").read_text())
    data["verification"]["passed"] = False  # by hand: a verdict no key signed is not believed, either way
    (mlp_dir / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(UnverifiedFolderError, match="not signed with your key"):
        write_repository(mlp_dir, tmp_path / "repo")
    from exporter.artifacts import trust

    data["verification"] = trust.sign_verdict(data["verification"])  # as a failing verify records it
    (mlp_dir / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(UnverifiedFolderError, match="FAILED"):
        write_repository(mlp_dir, tmp_path / "repo")


def test_a_forged_passed_verdict_on_an_unsigned_folder_is_not_believed(mlp_dir, tmp_path):
    """An attacker's folder: model.pt changed (a sentinel-writing forward would do), hashes restamped, the
    manifest unsigned, and a "passed" verdict naming the manifest's plain sha256, which anyone can compute."""
    from exporter.artifacts import trust
    from exporter.artifacts.manifest import Manifest
    from exporter.errors import UsageError

    from ..helpers import restamp

    with open(mlp_dir / "model.pt", "ab") as handle:
        handle.write(b"\0")
    restamp(mlp_dir)
    data = json.loads((mlp_dir / "manifest.json").read_text())
    data.pop("signature")
    data["verification"] = {"passed": True, "manifest_sha256": trust.binding_sha256(data)}
    (mlp_dir / "manifest.json").write_text(json.dumps(data))
    manifest = Manifest.load(mlp_dir)
    assert manifest.verdict is not None and manifest.signed_verdict is None
    with pytest.raises(UnverifiedFolderError, match="not signed with your key"):
        write_repository(mlp_dir, tmp_path / "repo")
    with pytest.raises(UsageError, match=r"refusing to write model\.pt into a Triton repository: the folder is not"):
        write_repository(mlp_dir, tmp_path / "repo", TritonConfig(allow_unverified=True))
    assert not (tmp_path / "repo").exists()
    result = write_repository(
        mlp_dir, tmp_path / "repo", TritonConfig(allow_unverified=True, allow_untrusted_code=True)
    )
    torchscript = next(m for m in result.models if m.format == "torchscript")
    assert "WARNING: written with --allow-untrusted-code" in torchscript.config_text


def test_triton_refuses_a_source_folder_inside_the_repository(mlp_dir):
    from exporter.errors import UsageError

    repo = mlp_dir.parent
    before = sorted(p.name for p in mlp_dir.iterdir())
    with pytest.raises(UsageError, match="inside the repository"):
        write_repository(repo / "mlp", repo, TritonConfig(force=True))
    assert sorted(p.name for p in mlp_dir.iterdir()) == before  # manifest, model.pt, report: all still there


def test_bench_and_predict_read_only_a_matching_verdict(mlp_dir):
    assert not any("verification" in n for n in predict(mlp_dir, "random").notes)
    _stale_verdict(mlp_dir)
    assert Manifest.load(mlp_dir).verdict is None
    assert any("no recorded verification matches" in n for n in predict(mlp_dir, "random").notes)
