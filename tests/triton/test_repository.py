"""The repository on disk, with stand-in models: every target checked before anything is written, each model
folder staged and moved into place, nothing staged left behind on a failure, and the refusals (a non-empty
folder without force, a symlink or a file at a model path, a source folder inside the repository)."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from exporter.artifacts.manifest import ArtifactEntry
from exporter.errors import ArtifactDirError, DiskFullError, ExporterError, ModelFolderExistsError, UsageError
from exporter.triton import repository as repo_module
from exporter.triton.repository import VERSION, check_source_outside, write_models


@dataclass
class _Model:
    """What write_models needs of a Triton model."""

    name: str
    format: str
    file_name: str
    config_text: str = 'name: "x"\n'
    path: Path | None = None


@pytest.fixture
def source(tmp_path) -> Path:
    """An artifact folder with an ONNX file (written from checked bytes) and a TorchScript file (copied)."""
    folder = tmp_path / "artifacts" / "net"
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"onnx bytes")
    (folder / "model.pt").write_bytes(b"torchscript bytes")
    return folder


def _models() -> list[_Model]:
    return [
        _Model("net_onnx", "onnx", "model.onnx", 'name: "net_onnx"\n'),
        _Model("net_torchscript", "torchscript", "model.pt", 'name: "net_torchscript"\n'),
    ]


def _checked(source: Path) -> dict:
    return {
        "onnx": (ArtifactEntry.for_file(source, "model.onnx", "onnx"), b"onnx bytes (inlined)"),
        "torchscript": (ArtifactEntry.for_file(source, "model.pt", "torchscript"), None),  # None: copied
    }


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _hidden(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".")) if root.exists() else []


def _write(repository: Path, source: Path, force: bool = False, models: list[_Model] | None = None) -> list[_Model]:
    models = _models() if models is None else models
    write_models(repository, models, source, _checked(source), force)
    return models


# --- what is written ---------------------------------------------------------------------------------


def test_each_model_folder_holds_its_config_and_its_file_and_nothing_else(tmp_path, source):
    repository = tmp_path / "repo"
    models = _write(repository, source)
    assert _files(repository) == {
        "net_onnx/1/model.onnx": b"onnx bytes (inlined)",  # the checked bytes given
        "net_onnx/config.pbtxt": b'name: "net_onnx"\n',
        "net_torchscript/1/model.pt": b"torchscript bytes",  # copied from the folder
        "net_torchscript/config.pbtxt": b'name: "net_torchscript"\n',
    }
    assert [m.path for m in models] == [repository / "net_onnx", repository / "net_torchscript"]
    assert VERSION == "1" and _hidden(repository) == []


def test_an_empty_model_folder_and_other_models_in_the_repository_are_fine(tmp_path, source):
    repository = tmp_path / "repo"
    (repository / "net_onnx").mkdir(parents=True)
    (repository / "other_model").mkdir()
    (repository / "other_model" / "config.pbtxt").write_text('name: "other_model"\n')
    _write(repository, source)
    assert (repository / "other_model" / "config.pbtxt").read_text() == 'name: "other_model"\n'
    assert set(_files(repository)) == {
        "net_onnx/1/model.onnx",
        "net_onnx/config.pbtxt",
        "net_torchscript/1/model.pt",
        "net_torchscript/config.pbtxt",
        "other_model/config.pbtxt",
    }


# --- refusals ----------------------------------------------------------------------------------------


def test_a_non_empty_model_folder_is_refused_without_force_and_nothing_is_written(tmp_path, source):
    repository = tmp_path / "repo"
    (repository / "net_torchscript").mkdir(parents=True)
    (repository / "net_torchscript" / "mine.txt").write_text("keep me")
    with pytest.raises(ModelFolderExistsError, match="net_torchscript is not empty: pass --force") as caught:
        _write(repository, source)
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)
    assert _files(repository) == {"net_torchscript/mine.txt": b"keep me"}  # not even the other model
    assert _hidden(repository) == []


def test_with_force_only_the_tools_version_and_config_are_replaced_the_users_files_stay(tmp_path, source):
    repository = tmp_path / "repo"
    _write(repository, source)
    model = repository / "net_torchscript"
    (model / "1" / "stale.txt").write_text("the tool's old version goes whole")
    (model / "config.pbtxt").write_text("old config")
    (model / "2").mkdir()
    (model / "2" / "model.pt").write_bytes(b"the user's own version 2")
    (model / "NOTES.txt").write_bytes(b"the user's notes\n")
    _write(repository, source, force=True)
    assert _files(model) == {
        "1/model.pt": b"torchscript bytes",
        "2/model.pt": b"the user's own version 2",
        "NOTES.txt": b"the user's notes\n",
        "config.pbtxt": b'name: "net_torchscript"\n',
    }
    assert _hidden(repository) == [] and _hidden(model) == []


def test_with_force_a_folder_of_the_users_files_alone_gets_version_1_beside_them(tmp_path, source):
    repository = tmp_path / "repo"
    model = repository / "net_onnx"
    (model / "2").mkdir(parents=True)
    (model / "2" / "model.onnx").write_bytes(b"v2")
    _write(repository, source, force=True)
    assert _files(model) == {
        "1/model.onnx": b"onnx bytes (inlined)",
        "2/model.onnx": b"v2",
        "config.pbtxt": b'name: "net_onnx"\n',
    }
    assert _hidden(model) == []


@pytest.mark.parametrize("planted", ["1", "config.pbtxt"])
def test_with_force_a_link_planted_at_the_tools_own_paths_is_refused_and_nothing_is_written(tmp_path, source, planted):
    repository, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    elsewhere.mkdir()
    sentinel = elsewhere / "SENTINEL"
    model = repository / "net_torchscript"
    model.mkdir(parents=True)
    (model / "NOTES.txt").write_text("mine")
    (model / planted).symlink_to(sentinel if planted == "config.pbtxt" else elsewhere)
    with pytest.raises(ArtifactDirError, match=r"is not a (folder|file) this tool wrote") as caught:
        _write(repository, source, force=True)
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)
    assert not sentinel.exists() and list(elsewhere.iterdir()) == []
    assert not (repository / "net_onnx").exists() and _hidden(model) == []


def test_a_symlink_at_a_model_path_is_refused_even_with_force(tmp_path, source):
    repository, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    repository.mkdir()
    elsewhere.mkdir()
    (repository / "net_onnx").symlink_to(elsewhere)
    with pytest.raises(ArtifactDirError, match="net_onnx is a symlink: refusing to write through it") as caught:
        _write(repository, source, force=True)
    assert caught.value.exit_code == 2
    assert list(elsewhere.iterdir()) == [] and not (repository / "net_torchscript").exists()


def test_a_dangling_symlink_at_a_model_path_is_refused_too(tmp_path, source):
    repository = tmp_path / "repo"
    repository.mkdir()
    (repository / "net_onnx").symlink_to(tmp_path / "nowhere")
    with pytest.raises(ArtifactDirError, match="is a symlink"):
        _write(repository, source)
    assert not (tmp_path / "nowhere").exists()


def test_a_file_at_a_model_path_is_refused_even_with_force(tmp_path, source):
    repository = tmp_path / "repo"
    repository.mkdir()
    (repository / "net_onnx").write_text("a file")
    with pytest.raises(ArtifactDirError, match="net_onnx exists and is not a folder: move it away"):
        _write(repository, source, force=True)
    assert (repository / "net_onnx").read_text() == "a file"


def test_an_unwritable_repository_is_one_line_and_exit_2(tmp_path, source):
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(ArtifactDirError, match="REPOSITORY") as caught:
        _write(tmp_path / "a_file" / "repo", source)
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)
    with pytest.raises(ArtifactDirError, match="not a folder"):
        _write(tmp_path / "a_file", source)


def test_a_source_folder_inside_the_repository_is_refused(tmp_path, source):
    with pytest.raises(UsageError, match=r"lies inside the repository .* copy the artifact folder elsewhere"):
        check_source_outside(source, tmp_path / "artifacts")  # the source is a model folder's neighbour
    with pytest.raises(UsageError, match="lies inside the repository"):
        check_source_outside(source, source)
    (tmp_path / "link").symlink_to(tmp_path / "artifacts")
    with pytest.raises(UsageError, match="lies inside the repository"):
        check_source_outside(tmp_path / "link" / "net", tmp_path / "artifacts")  # through a link, all the same


def test_a_source_folder_beside_the_repository_or_holding_it_is_fine(tmp_path, source):
    check_source_outside(source, tmp_path / "triton")
    check_source_outside(source, source / "triton")  # writing below the source replaces nothing of it
    check_source_outside(source, tmp_path / "artifacts" / "net2")


# --- failures leave nothing staged -------------------------------------------------------------------


def test_a_file_changed_since_its_check_is_refused_and_nothing_is_left(tmp_path, source):
    checked = _checked(source)
    (source / "model.pt").write_bytes(b"changed after the check")
    repository = tmp_path / "repo"
    with pytest.raises(ExporterError, match=r"model\.pt does not match its sha256"):
        write_models(repository, _models(), source, checked, False)
    assert _files(repository) == {} and _hidden(repository) == []  # the first model's staging went too


def test_an_os_error_while_staging_leaves_nothing_and_is_one_line(tmp_path, source, monkeypatch):
    def copy_fails(*_args, **_kwargs):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(repo_module, "copy_checked", copy_fails)
    repository = tmp_path / "repo"
    with pytest.raises(
        ArtifactDirError, match=r"cannot write the Triton repository .* choose a writable folder"
    ) as caught:
        _write(repository, source)
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)
    assert _files(repository) == {} and _hidden(repository) == []


def test_an_os_error_while_moving_into_place_leaves_no_staging(tmp_path, source, monkeypatch):
    moved = []
    real = repo_module.move_into_place

    def second_move_fails(staging: Path, target: Path) -> None:
        if moved:
            raise OSError(errno.EIO, "Input/output error")
        real(staging, target)
        moved.append(target)

    monkeypatch.setattr(repo_module, "move_into_place", second_move_fails)
    repository = tmp_path / "repo"
    with pytest.raises(ArtifactDirError, match="cannot write the Triton repository"):
        _write(repository, source)
    assert moved == [repository / "net_onnx"] and _hidden(repository) == []
    assert not (repository / "net_torchscript").exists()


def test_a_full_disk_while_staging_is_a_disk_full_error_and_leaves_nothing(tmp_path, source, monkeypatch):
    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "repo" / "model.pt"))

    monkeypatch.setattr(repo_module, "copy_checked", full)
    repository = tmp_path / "repo"
    with pytest.raises(DiskFullError, match="the disk is full writing") as caught:
        _write(repository, source)
    assert caught.value.exit_code == 1 and _files(repository) == {} and _hidden(repository) == []


def test_staging_is_beside_its_target_and_marked_as_this_tools(tmp_path, source, monkeypatch):
    seen = []
    real = repo_module.move_into_place

    def spy(staging: Path, target: Path) -> None:
        seen.append((staging.parent.parent, staging.parent.name, sorted(os.listdir(staging))))
        real(staging, target)

    monkeypatch.setattr(repo_module, "move_into_place", spy)
    repository = tmp_path / "repo"
    _write(repository, source)
    for parent, container, content in seen:
        assert parent == repository and container.startswith(".net_") and container.endswith(".partial")
        assert content == ["1", "config.pbtxt"]  # complete before it is moved
