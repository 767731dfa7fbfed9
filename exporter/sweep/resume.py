"""Resume: an entry already exported and verified from the same source, weights and settings is not run again.

The sweep keeps one record per entry in ``OUT/.sweep/NAME.json`` (written atomically once the folder is
in place): the entry's digest and the digest of the manifest it produced. An entry is skipped when its
record names a passed run with the digest it has now, and ``OUT/NAME`` still holds that manifest with a
passing verdict recorded for it. The entry digest covers what decides the export: the fields as written
(after defaults), the bytes of the model's code (its file, its module's file, or every file of a saved
folder), of every file it names (weights, inputs), and the versions of exporter, torch and the runtimes,
so a torch upgrade re-exports the fleet.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
from pathlib import Path
from typing import Any

from ..artifacts.integrity import sha256_bytes, sha256_file
from ..artifacts.manifest import Manifest, write_text_atomic
from ..errors import ExporterError
from .fleet import Entry

RECORDS = ".sweep"  # OUT/.sweep/: the sweep's records, logs and work folders (hidden: not an artifact folder)
VERSIONED = ("exporter", "torch", "onnx", "onnxruntime", "onnxscript")


def record_path(out: Path, name: str) -> Path:
    return Path(out) / RECORDS / f"{name}.json"


def entry_digest(entry: Entry) -> str:
    """sha256 of what decides the entry's export: its fields, its code's and files' bytes, the versions."""
    files = {str(path): _file_digest(path) for path in entry.files}
    data = {
        "model": entry.model,
        "options": list(entry.options),
        "settings": [[k, v] for k, v in entry.settings],
        "code": _code_digest(entry.model),
        "files": files,
        "versions": {name: _version(name) for name in VERSIONED},
    }
    return sha256_bytes(json.dumps(data, sort_keys=True, default=str).encode())


def passed_before(out: Path, entry: Entry, digest: str) -> bool:
    """True when OUT/NAME holds a passing verdict of the manifest this entry, with this digest, produced."""
    path = record_path(out, entry.name)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict) or record.get("digest") != digest or record.get("status") != "passed":
        return False
    try:
        manifest = Manifest.load(Path(out) / entry.name)
    except ExporterError:
        return False
    verdict = manifest.verdict  # None unless the recorded verification names this very manifest
    return bool(verdict and verdict.get("passed") is True and record.get("manifest_sha256") == manifest.digest)


def write_record(out: Path, entry: Entry, digest: str, status: str, row: dict[str, Any]) -> None:
    """Keep the entry's outcome (and, when it passed, the manifest it made) for the next run."""
    manifest_sha256 = None
    if status == "passed":
        try:
            manifest_sha256 = Manifest.load(Path(out) / entry.name).digest
        except ExporterError:
            status = "failed"  # the folder is not what passed: never skip on it
    path = record_path(out, entry.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"digest": digest, "status": status, "manifest_sha256": manifest_sha256, "row": row}
    write_text_atomic(path, json.dumps(record, indent=2) + "\n")


def _file_digest(path: Path) -> str | None:
    """A named file's sha256 (streamed), or every file's of a folder; None when it is absent (export refuses it)."""
    try:
        if path.is_dir():
            return _folder_digest(path)
        return sha256_file(path)
    except OSError:
        return None


def _folder_digest(folder: Path) -> str:
    parts = [
        f"{p.relative_to(folder).as_posix()}\0{sha256_file(p)}"
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    ]
    return sha256_bytes("\n".join(parts).encode())


def _code_digest(model: str) -> str | None:
    """The bytes of the model's code: a file.py, a saved folder, or the file of the module a class lives in."""
    location, sep, _ = model.rpartition(":")
    if sep and location.endswith(".py"):
        return _file_digest(Path(location))
    if Path(model).is_dir():
        return _folder_digest(Path(model))
    from .. import models

    registered = models.REGISTRY.get(model)
    module = (registered.target if registered else model).partition(":")[0]
    try:
        spec = importlib.util.find_spec(module)  # imports the parent packages only, not the module itself
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None)
    return _file_digest(Path(origin)) if origin and Path(origin).is_file() else None


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
