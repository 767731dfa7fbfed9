"""Crash-safe folders: the target is never absent, and only folders this tool marked are ever removed.

Fault injection: every rename step of a swap is made to fail (an exception) or to end the
process (os._exit, as a kill would), with the Linux exchange and with the fallback; after each,
the target holds the old folder or the new one, once the next run's recovery step has run.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from exporter.artifacts import atomic
from exporter.artifacts.atomic import MARKER, move_into_place, recover, staging_folder


def _folders(parent: Path, name: str = "mlp") -> tuple[Path, Path]:
    """An old folder at parent/name and a finished staging folder holding the new one."""
    target = parent / name
    target.mkdir()
    (target / "which").write_text("old")
    staging = staging_folder(parent, name)
    (staging / "which").write_text("new")
    return target, staging


def _which(target: Path) -> str | None:
    return (target / "which").read_text() if (target / "which").exists() else None


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "fallback"])
def test_a_swap_puts_the_new_folder_in_place_and_leaves_nothing(tmp_path, exchange, monkeypatch):
    if not exchange:
        monkeypatch.setattr(atomic, "_exchange", lambda *_: False)
    target, staging = _folders(tmp_path)
    move_into_place(staging, target)
    assert _which(target) == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["mlp"]


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "fallback"])
@pytest.mark.parametrize("step", [0, 1, 2])
def test_a_failure_at_any_rename_leaves_the_old_or_the_new_folder(tmp_path, monkeypatch, exchange, step):
    calls = []
    real_rename, real_exchange = atomic._rename, atomic._exchange

    def counted(real):
        def call(*args):
            calls.append(args)
            if len(calls) - 1 == step:
                raise OSError(5, "injected failure")
            return real(*args)

        return call

    monkeypatch.setattr(atomic, "_rename", counted(real_rename))
    monkeypatch.setattr(atomic, "_exchange", counted(real_exchange) if exchange else lambda *_: False)
    target, staging = _folders(tmp_path)
    with contextlib.suppress(OSError):  # the injected failure, or none when the step is past the last rename
        move_into_place(staging, target)
    assert _which(target) in ("old", "new")


KILLER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from exporter import atomic
    parent, step, exchange = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
    calls = []
    def killing(real):
        def call(*args):
            calls.append(args)
            if len(calls) - 1 == step:
                os._exit(9)  # as kill -9 would: no cleanup, no finally
            return real(*args)
        return call
    atomic._rename = killing(atomic._rename)
    atomic._exchange = killing(atomic._exchange) if exchange else (lambda *_: False)
    target = parent / "mlp"
    staging = atomic.staging_folder(parent, "mlp")
    (staging / "which").write_text("new")
    atomic.move_into_place(staging, target)
    """
)


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "fallback"])
@pytest.mark.parametrize("step", [0, 1, 2])
def test_a_kill_at_any_rename_leaves_the_old_or_the_new_folder_after_recovery(tmp_path, exchange, step):
    target = tmp_path / "mlp"
    target.mkdir()
    (target / "which").write_text("old")
    subprocess.run([sys.executable, "-c", KILLER, str(tmp_path), str(step), "1" if exchange else "0"], check=False)
    if exchange:
        assert _which(target) in ("old", "new")  # one atomic step: never absent, even before recovery
    recover(tmp_path, "mlp")  # what the next export of that name does first
    assert _which(target) in ("old", "new")


def test_only_marked_staging_folders_are_swept_and_only_when_stale(tmp_path):
    day_ago = time.time() - 2 * atomic.STALE_AFTER_S
    users = [tmp_path / ".mlp.before-retraining.old", tmp_path / ".mlp.mine.partial", tmp_path / ".mlp.x.old"]
    for folder in users:
        folder.mkdir()
        (folder / "keep").write_text("the user's")
        os.utime(folder, (day_ago, day_ago))
    forged = tmp_path / ".mlp.abc.partial"  # a marker whose token is not the folder's own
    forged.mkdir()
    (forged / MARKER).write_text("def\n")
    os.utime(forged, (day_ago, day_ago))
    stale, fresh = staging_folder(tmp_path, "mlp").parent, staging_folder(tmp_path, "mlp").parent
    os.utime(stale, (day_ago, day_ago))
    staging_folder(tmp_path, "mlp")  # sweeps before it stages
    assert not stale.exists() and fresh.exists()
    assert all((folder / "keep").exists() for folder in users) and forged.exists()


# --- a swap that fails: the user's line, and the earlier folder byte for byte -------------------------


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file and folder under ``folder``: its bytes (folders: empty) and its mode."""
    found = {}
    for path in sorted(folder.rglob("*")):
        content = b"" if path.is_dir() else path.read_bytes()
        found[str(path.relative_to(folder))] = (content, path.stat().st_mode)
    return found


def _rich_old_folder(parent: Path) -> Path:
    target = parent / "mlp"
    (target / "sub").mkdir(parents=True)
    (target / "manifest.json").write_bytes(b'{"old": true}\n')
    (target / "model.onnx").write_bytes(bytes(range(256)) * 40)
    (target / "sub" / "notes.txt").write_text("the user's\n")
    (target / "sub" / "notes.txt").chmod(0o600)
    return target


FAULTS = {  # name -> (the exchange's fault, the fallback renames' faults by call, what the line says)
    "exchange-EXDEV": (errno.EXDEV, {}, "on another filesystem than its parent folder"),
    "aside-EACCES": (None, {0: errno.EACCES}, "permission denied"),
    "into-place-EXDEV": (None, {1: errno.EXDEV}, "on another filesystem than its parent folder"),
    "into-place-EBUSY": (None, {1: errno.EBUSY}, "it is in use"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_failed_swap_says_which_folder_why_and_what_to_do_and_the_old_folder_is_byte_for_byte(
    tmp_path, monkeypatch, fault
):
    exchange_errno, rename_errnos, why = FAULTS[fault]
    calls = []
    real_rename = atomic._rename

    def rename(source, destination):
        calls.append(source)
        code = rename_errnos.get(len(calls) - 1)
        if code is not None:
            raise OSError(code, os.strerror(code), str(source))
        real_rename(source, destination)

    def exchange(first, second):
        raise OSError(exchange_errno, os.strerror(exchange_errno), str(second))

    monkeypatch.setattr(atomic, "_rename", rename)
    monkeypatch.setattr(atomic, "_exchange", exchange if exchange_errno else lambda *_: False)
    target = _rich_old_folder(tmp_path)
    before = _snapshot(target)
    staging = staging_folder(tmp_path, "mlp")
    (staging / "model.onnx").write_bytes(b"new")
    with pytest.raises(OSError) as caught:
        move_into_place(staging, target)
    line = atomic.swap_failure(caught.value, staging, target)
    atomic.discard(staging)  # what export does next
    assert line.startswith(f"could not replace {target} with the new export: ") and why in line
    assert "the earlier folder is untouched" in line and "--name" in line and "\n" not in line
    assert _snapshot(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlp"]


def test_a_swap_whose_undo_fails_too_keeps_the_old_folder_and_the_next_run_puts_it_back(tmp_path, monkeypatch):
    """The fallback moved the old folder aside, the new one could not go in, nor the old one back."""
    calls = []

    def rename(source, destination):
        calls.append(source)
        if len(calls) > 1:
            raise OSError(errno.EACCES, "Permission denied", str(source))
        os.rename(source, destination)

    monkeypatch.setattr(atomic, "_rename", rename)
    monkeypatch.setattr(atomic, "_exchange", lambda *_: False)
    target = _rich_old_folder(tmp_path)
    before = _snapshot(target)
    staging = staging_folder(tmp_path, "mlp")
    with pytest.raises(OSError) as caught:
        move_into_place(staging, target)
    line = atomic.swap_failure(caught.value, staging, target)
    atomic.discard(staging)
    assert f"the earlier folder is kept in {staging.parent / 'previous'}" in line
    assert _snapshot(staging.parent / "previous") == before  # discard kept it
    monkeypatch.setattr(atomic, "_rename", os.rename)
    recover(tmp_path, "mlp")
    assert _snapshot(target) == before


def test_a_swap_that_works_needs_no_line_and_discard_removes_the_whole_container(tmp_path):
    target = _rich_old_folder(tmp_path)
    staging = staging_folder(tmp_path, "mlp")
    (staging / "which").write_text("new")
    move_into_place(staging, target)
    assert _which(target) == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["mlp"]
