"""Paths the user names (``--out``, ``--json``, ``--save-inputs``): refused up front when they cannot be written;
and the current folder, when a folder in it stands in for a package torch imports.

Plain checks with no torch, so a config can refuse a bad path before any work starts.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ArtifactDirError, UsageError


def make_folder(path: Path, option: str) -> None:
    """Create ``path`` (and parents); ArtifactDirError naming ``option`` when it cannot be."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ArtifactDirError(f"{option} {path} exists and is not a folder: choose another") from None
    except OSError as error:
        raise ArtifactDirError(f"cannot write into {path} ({error.strerror}): choose a writable {option}") from None


def check_writable_file(path: Path, option: str) -> Path:
    """Refuse, before any work, an output file that cannot be written (ArtifactDirError, exit 2)."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir() or not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ArtifactDirError(f"{option} {path}: cannot write a file there (give a file in a writable folder)")
    return path


def check_creatable_folder(path: Path, option: str) -> None:
    """Refuse, before any work, a folder that neither exists as a folder nor can be created (exit 2)."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise ArtifactDirError(f"{option} {path} exists and is not a folder: choose another")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ArtifactDirError(f"cannot write into {path}: choose a writable {option}")
        return
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise ArtifactDirError(f"cannot create {path} (in {ancestor}): choose a writable {option}")


# Packages torch imports by name when it finds them on sys.path (triton is optional: torch imports it as soon
# as find_spec sees one). Where the current folder is on sys.path (python -c, pytest, a notebook), a folder
# of that name there is found first: a Triton model repository called triton/ makes torch fail deep inside
# with "module 'triton' has no attribute 'language'".
TORCH_IMPORTS = ("triton", "numpy", "sympy", "networkx", "jinja2", "filelock", "fsspec", "onnx", "onnxscript")


def check_shadowing() -> None:
    """UsageError when a folder in the current folder stands in for a package torch imports."""
    import importlib.util
    import sys

    here = Path.cwd().resolve()
    if not any(Path(entry or ".").resolve() == here for entry in sys.path):
        return  # the current folder is not on sys.path (the exporter command itself): nothing stands in
    for name in TORCH_IMPORTS:
        folder = here / name
        if not folder.is_dir():
            continue
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        found = [] if spec is None else list(spec.submodule_search_locations or [])
        if any(Path(location).resolve() == folder for location in found):
            raise UsageError(
                f"the folder {name}/ in the current folder stands in for the Python package {name!r}, which torch "
                f"imports: rename the folder (a Triton model repository: model_repository/) or run from another folder"
            )
