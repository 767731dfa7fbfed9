"""Crash-safe folders: the target is never absent, and only folders this tool marked are ever removed.

Fault injection: every rename step of a swap is made to fail (an exception) or to end the
process (os._exit, as a kill would), with the Linux exchange and with the fallback; after each,
the target holds the old folder or the new one, once the next run's recovery step has run.
"""

from __future__ import annotations

import contextlib
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
