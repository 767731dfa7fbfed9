"""paths: a folder or file the user names is refused up front, naming the option, when it cannot be written."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from exporter.errors import ArtifactDirError
from exporter.paths import check_creatable_folder, check_writable_file, make_folder


@pytest.fixture
def read_only(tmp_path):
    """A folder this process may not write into (skipped where chmod binds nobody, as for root)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    if os.access(folder, os.W_OK):
        folder.chmod(0o700)
        pytest.skip("this user may write anywhere (root): a read-only folder cannot be made")
    yield folder
    folder.chmod(0o700)


@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "a_file"
    path.write_text("in the way")
    return path


# --- make_folder -------------------------------------------------------------------------------------


def test_make_folder_creates_the_folder_and_its_parents_and_takes_one_that_exists(tmp_path):
    target = tmp_path / "a" / "b" / "c"
    make_folder(target, "--out")
    assert target.is_dir()
    make_folder(target, "--out")  # again: already there, fine
    assert target.is_dir()


def test_make_folder_refuses_a_file_in_the_way(a_file):
    with pytest.raises(ArtifactDirError, match=re.escape(f"--out {a_file} exists and is not a folder")) as caught:
        make_folder(a_file, "--out")
    assert caught.value.exit_code == 2 and a_file.read_text() == "in the way"


def test_make_folder_refuses_a_file_as_a_parent(a_file):
    with pytest.raises(ArtifactDirError, match="choose a writable REPOSITORY"):
        make_folder(a_file / "repo", "REPOSITORY")


def test_make_folder_refuses_a_read_only_folder(read_only):
    with pytest.raises(ArtifactDirError, match=r"cannot write into .* choose a writable --out"):
        make_folder(read_only / "new", "--out")
    assert not (read_only / "new").exists()


# --- check_writable_file -----------------------------------------------------------------------------


def test_a_new_file_in_a_writable_folder_is_taken_and_not_created(tmp_path):
    assert check_writable_file(tmp_path / "report.json", "--json") == tmp_path / "report.json"
    assert not (tmp_path / "report.json").exists()
    (tmp_path / "old.json").write_text("{}")
    assert check_writable_file(str(tmp_path / "old.json"), "--json") == tmp_path / "old.json"  # overwritten later


def test_a_bare_file_name_is_a_file_in_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert check_writable_file(Path("report.json"), "--json") == Path("report.json")


@pytest.mark.parametrize(
    "where",
    [lambda t, _f: t, lambda t, _f: t / "missing" / "report.json", lambda _t, f: f / "report.json"],
    ids=["a-folder", "a-missing-parent", "a-file-as-parent"],
)
def test_a_file_that_cannot_be_written_there_is_refused_naming_the_option(tmp_path, a_file, where):
    path = where(tmp_path, a_file)
    with pytest.raises(
        ArtifactDirError, match=re.escape(f"--save-outputs {path}: cannot write a file there")
    ) as caught:
        check_writable_file(path, "--save-outputs")
    assert caught.value.exit_code == 2


def test_a_file_in_a_read_only_folder_is_refused(read_only):
    with pytest.raises(ArtifactDirError, match="cannot write a file there"):
        check_writable_file(read_only / "report.json", "--json")


# --- check_creatable_folder --------------------------------------------------------------------------


def test_an_existing_folder_or_one_that_can_be_made_is_taken_and_nothing_is_made(tmp_path):
    check_creatable_folder(tmp_path, "--out")
    check_creatable_folder(tmp_path / "x" / "y" / "z", "--out")
    assert list(tmp_path.iterdir()) == []  # checked only: export makes it later


def test_a_relative_folder_is_judged_from_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    check_creatable_folder(Path("artifacts"), "--out")
    assert not (tmp_path / "artifacts").exists()


def test_a_file_in_the_way_is_refused(a_file):
    with pytest.raises(ArtifactDirError, match=re.escape(f"--out {a_file} exists and is not a folder")):
        check_creatable_folder(a_file, "--out")


def test_a_folder_under_a_file_is_refused_naming_the_file(a_file):
    with pytest.raises(
        ArtifactDirError, match=f"cannot create .* {re.escape(f'(in {a_file}): choose a writable --out')}"
    ):
        check_creatable_folder(a_file / "sub" / "deeper", "--out")


def test_a_read_only_folder_or_a_folder_under_one_is_refused(read_only):
    with pytest.raises(ArtifactDirError, match=r"cannot write into .* choose a writable --out"):
        check_creatable_folder(read_only, "--out")
    with pytest.raises(ArtifactDirError, match=f"cannot create .* {re.escape(f'(in {read_only})')}"):
        check_creatable_folder(read_only / "new", "--out")
