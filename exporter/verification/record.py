"""The verdict kept in the folder: verification.json and the manifest's summary, only where it belongs.

A verdict is written only while the folder is still the one verified (the same device and inode
as when verification began) and still holds the manifest that was judged; otherwise it is a note
of the report, not a failed check.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..artifacts import trust
from ..artifacts.manifest import REPORT_NAME, Manifest, write_text_atomic
from ..errors import FolderChangedError, ManifestError, UsageError

if TYPE_CHECKING:
    from .results import VerificationReport


def identity(folder: Path) -> tuple[int, int]:
    info = os.stat(folder)
    return info.st_dev, info.st_ino


def write_report(
    folder: Path, manifest: Manifest, report: VerificationReport, folder_identity: tuple[int, int] | None = None
) -> None:
    """verification.json beside the manifest, and the summary in the manifest, naming the manifest judged.

    Raises FolderChangedError when ``folder`` is no longer the folder verified (``folder_identity``: its
    device and inode when verification began) or no longer holds that manifest.
    """
    try:
        current = Manifest.load(folder)
        same = current.digest == manifest.digest and (folder_identity is None or identity(folder) == folder_identity)
    except (ManifestError, OSError):
        same = False
    if not same:
        raise FolderChangedError(f"{folder} was replaced or its manifest changed while it was verified")
    text = json.dumps(report.to_dict(), indent=2) + "\n"
    write_text_atomic(folder / REPORT_NAME, text)  # inside the folder: never through a planted symlink
    current.verification = trust.sign_verdict({**report.summary(), "manifest_sha256": manifest.digest})
    current.write(folder)
    manifest.verification = current.verification


def record(
    folder: Path, manifest: Manifest, report: VerificationReport, folder_identity: tuple[int, int] | None
) -> None:
    """``write_report``, where a folder that cannot be written or was replaced is a note, not a failed check."""
    try:
        write_report(folder, manifest, report, folder_identity)
    except FolderChangedError as error:
        report.record_notes.append(f"{error}: nothing recorded; run `exporter verify {folder}` again")
    except OSError as error:
        report.record_notes.append(f"could not record the result in {folder} ({error.strerror})")


def save_outputs(path: Path, outputs: dict[str, dict[Any, dict[str, np.ndarray]]]) -> None:
    """Every runtime's outputs as one .npz: ``RUNTIME__batch_LABEL__OUTPUT`` arrays."""
    arrays = {
        f"{rt}__batch_{case.label.replace(' ', '')}__{name}": v
        for rt, per in outputs.items()
        for case, outs in per.items()
        for name, v in outs.items()
    }
    try:
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)
    except OSError as error:
        raise UsageError(f"cannot write outputs to {path}: {error.strerror}") from None
