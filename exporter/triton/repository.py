"""A Triton model repository on disk: each model folder staged beside its target, then moved into place.

Refuses a model path that is a symlink or a file, a non-empty model folder without ``force``,
and a source artifact folder inside the repository (replacing a model folder could delete it).
With ``force``, a model folder that already holds files keeps them: only what this tool writes
there, its version folder ``1/`` and ``config.pbtxt``, is replaced (the user's other versions,
``2/`` say, and their own files stay as they were).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from ..artifacts.atomic import discard, move_into_place, staging_folder
from ..artifacts.integrity import copy_checked
from ..artifacts.manifest import ArtifactEntry, write_text_atomic
from ..errors import ArtifactDirError, DiskFullError, ModelFolderExistsError, UsageError, disk_error
from ..paths import make_folder


class TritonModel(Protocol):
    """What this module needs of ``triton.TritonModel`` (imported by it, so not imported here)."""

    name: str
    format: str
    config_text: str
    file_name: str
    path: Path | None


VERSION = "1"  # the one version folder written per model


def check_source_outside(folder: Path, repository: Path) -> None:
    """Refuse a source folder inside REPOSITORY: replacing a model folder could delete the source itself."""
    source, target = folder.resolve(), repository.resolve()
    if source == target or target in source.parents:
        raise UsageError(
            f"{folder} lies inside the repository {repository}, where writing could replace it: "
            "copy the artifact folder elsewhere first, or write another repository"
        )


def write_models(repository: Path, models: list[TritonModel], folder: Path, checked: dict, force: bool) -> None:
    """Check every target, stage every model folder (or, over a folder that holds files, its version
    folder), then move each into place.

    ``checked``: format -> (entry, the checked bytes to write, or None to copy the entry's file).
    """
    in_place = {model.name: _check_target(repository / model.name, force) for model in models}
    _make_repository(repository)
    staged: list[tuple[TritonModel, Path]] = []
    try:
        for model in models:
            entry, data = checked[model.format]
            staged.append((model, _stage(repository, model, folder, entry, data, in_place[model.name])))
        for model, staging in staged:
            target = repository / model.name
            if in_place[model.name]:
                move_into_place(staging, target / VERSION)  # the user's other versions and files stay
                write_text_atomic(target / "config.pbtxt", model.config_text)
            else:
                move_into_place(staging, target)
            model.path = target
    except OSError as error:
        if disk_error(error) is not None:
            raise DiskFullError.from_os(error, str(repository)) from None
        raise ArtifactDirError(
            f"cannot write the Triton repository {repository} ({error.strerror}): choose a writable folder"
        ) from None
    finally:
        for _, staging in staged:
            discard(staging)


def _check_target(target: Path, force: bool) -> bool:
    """Refuse a model path that is a symlink or a file, or a non-empty folder without ``force``.

    Returns True when the folder holds files (and ``force`` was given): then only its version folder and
    config.pbtxt are replaced, and each must be what this tool writes there (a folder, a file), not a link.
    """
    if target.is_symlink():
        raise ArtifactDirError(f"{target} is a symlink: refusing to write through it or replace it")
    if not target.exists():
        return False
    if not target.is_dir():
        raise ArtifactDirError(f"{target} exists and is not a folder: move it away")
    try:
        occupied = any(target.iterdir())
    except OSError as error:
        raise ArtifactDirError(f"cannot read {target} ({error.strerror})") from None
    if not occupied:
        return False
    if not force:
        raise ModelFolderExistsError(
            f"{target} is not empty: pass --force to replace its version {VERSION}/ and config.pbtxt"
        )
    version, config = target / VERSION, target / "config.pbtxt"
    for path, kind, is_kind in ((version, "folder", Path.is_dir), (config, "file", Path.is_file)):
        if path.is_symlink() or (os.path.lexists(path) and not is_kind(path)):
            raise ArtifactDirError(f"{path} is not a {kind} this tool wrote (a link or another kind): move it away")
    return True


def _make_repository(repository: Path) -> None:
    make_folder(repository, "REPOSITORY")


def _stage(
    repository: Path, model: TritonModel, folder: Path, entry: ArtifactEntry, data: bytes | None, in_place: bool
) -> Path:
    """A hidden, complete copy of the model folder beside its target; with ``in_place``, of its version
    folder only, inside the model folder (its config.pbtxt is written when the version is in place).

    ``data``: the checked bytes to write (ONNX, inlined); None: copy ``entry`` from ``folder`` in
    chunks, hashing the bytes copied (a file changed since its check is refused, its copy removed).
    """
    if in_place:
        staging = staging_folder(repository / model.name, VERSION)
        version = staging
    else:
        staging = staging_folder(repository, model.name)
        version = staging / VERSION
    try:
        if not in_place:
            (staging / "config.pbtxt").write_text(model.config_text)
            version.mkdir()
        if data is not None:
            (version / model.file_name).write_bytes(data)
        else:
            copy_checked(folder, entry, version / model.file_name)
    except BaseException:
        discard(staging)
        raise
    return staging
