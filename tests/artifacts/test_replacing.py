import pytest

from exporter.artifacts import replacing
from exporter.artifacts.replacing import check_replaceable
from exporter.errors import FolderSwapError, UsageError


def test_an_empty_folder_at_the_target_is_no_users_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    check_replaceable(tmp_path / "empty")
    check_replaceable(tmp_path / "absent")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is not an artifact folder"):
        check_replaceable(tmp_path / "file")


def test_a_swap_that_fails_says_which_folder_and_keeps_the_old_one(tmp_path, monkeypatch):
    staging, target = tmp_path / "staging", tmp_path / "mlp"
    staging.mkdir()
    target.mkdir()

    def cross_device(*_):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(replacing.atomic, "move_into_place", cross_device)
    with pytest.raises(FolderSwapError, match=str(target)):
        replacing.move_into_place(staging, target, lambda _: "an earlier export")
    assert target.is_dir()
