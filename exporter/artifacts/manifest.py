"""manifest.json: the contract that binds an artifact folder's files by sha256.

Other tools read this file, so its top-level keys are stable:
``model``, ``input``, ``outputs``, ``device``, ``artifacts``, ``versions``, ``schema``,
``signature`` (``trust``: what makes a folder's TorchScript and pt2 loadable) and
``verification`` (the last recorded result, naming the ``manifest_sha256`` it judged).
Every path in it is a plain relative path inside the folder; ``member_path`` refuses
anything else (absolute paths, ``..``, symlinks) so a hostile manifest cannot make the
tool read or write outside the folder. Files are read once, hashed, and the same bytes
are handed to the runtime (``integrity``), so nothing is loaded before its hash is checked.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import trust
from ..errors import ManifestError
from .integrity import check_relative, sha256_file
from ..interface import InputSpec, Interface, OutputSpec

MANIFEST_NAME = "manifest.json"
REPORT_NAME = "verification.json"
SCHEMA = 2  # bumped when a key changes meaning. 2: "inputs" (a list) replaced "input"; outputs have dtypes
READABLE_SCHEMAS = (1, 2)  # schema 1 folders are read as one float input
_MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # a real manifest is a few KB; refuse a hostile giant
REQUIRED_KEYS = ("model", "inputs", "outputs", "device", "artifacts", "versions")


@dataclass
class ArtifactEntry:
    """One file of the folder: its format, where it is, and what it must hash to."""

    format: str  # "torchscript", "onnx", ...
    path: str  # relative to the artifact folder
    sha256: str
    bytes: int
    details: dict[str, Any] = field(default_factory=dict)  # per-format notes (opset, exporter, warnings)

    @classmethod
    def for_file(cls, folder: Path, relpath: str, fmt: str, sha256: str | None = None, **details: Any) -> ArtifactEntry:
        """The entry of a file in ``folder``; ``sha256``: its digest taken while this process wrote it
        (``integrity.HashingWriter``), else the file is hashed here."""
        path = folder / relpath
        return cls(fmt, relpath, sha256 or sha256_file(path), path.stat().st_size, dict(details))


@dataclass
class Manifest:
    model: dict[str, Any]  # name, source, seed, dtype, parameters, state_sha256, weights
    inputs: list[dict[str, Any]]  # [{name, shape, dtype, range, dynamic_axes}] in forward's order
    outputs: list[dict[str, Any]]  # [{name, shape (dynamic axes by label), dtype}], flattened in order
    device: str
    artifacts: list[ArtifactEntry]
    versions: dict[str, str]
    verification: dict[str, Any] | None = None  # summary of the last verification
    schema: int = SCHEMA
    signature: dict[str, Any] | None = None  # trust.sign() over the binding part; None: unsigned
    judging: dict[str, Any] | None = None  # what judged the export, used again by verify (verification/judging.py);
    # None: a folder of an exporter that recorded none
    raw: dict[str, Any] | None = field(default=None, repr=False, compare=False)  # as read from disk

    @property
    def binding_data(self) -> dict[str, Any]:
        """The manifest as JSON states it: as read from disk, or as it will be written."""
        return self.raw if self.raw is not None else json.loads(json.dumps(self.to_dict()))

    @property
    def digest(self) -> str:
        """sha256 of the binding part (all but verification and signature): what a verdict names."""
        return trust.binding_sha256(self.binding_data)

    def refusal(self, trusted: bool) -> str | None:
        """None when this folder's TorchScript and pt2 may be loaded; else why not (``trust.refusal``)."""
        return trust.refusal(self.binding_data, trusted)

    @property
    def verdict(self) -> dict[str, Any] | None:
        """The recorded verification, only when it names this manifest; None otherwise."""
        found = self.verification
        if isinstance(found, dict) and found.get("manifest_sha256") == self.digest:
            return found
        return None

    @property
    def signed_verdict(self) -> dict[str, Any] | None:
        """The recorded verification, only when it names this manifest and this user's key signed it (a verdict
        anyone could write, with a plain sha256 anyone can compute, is not believed); None otherwise."""
        found = self.verdict
        return found if found is not None and trust.verdict_checks(found) else None

    def sign(self, key: bytes) -> None:
        self.raw = None
        self.signature = trust.sign(self.binding_data, key)

    def artifact(self, fmt: str) -> ArtifactEntry | None:
        return next((a for a in self.artifacts if a.format == fmt), None)

    @property
    def interface(self) -> Interface:
        """The inputs every runner of this folder is fed, and the outputs it returns (checked at load)."""
        inputs = tuple(InputSpec.from_manifest(i) for i in self.inputs)
        outputs = tuple(
            OutputSpec(str(o["name"]), tuple(o.get("shape") or ()), str(o.get("dtype", "float32")))
            for o in self.outputs
        )
        return Interface(inputs, outputs)

    @property
    def export_batch(self) -> int:
        """The batch size of the example the artifacts were exported from."""
        return int(self.inputs[0]["shape"][0])

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(str(o["name"]) for o in self.outputs)

    def side_entries(self, entry: ArtifactEntry) -> list[ArtifactEntry]:
        """The files ``entry`` needs beside it (ONNX external data): their entries name it in ``details["of"]``."""
        return [a for a in self.artifacts if a.details.get("of") == entry.path]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["raw"]
        data["artifacts"] = [asdict(a) for a in self.artifacts]
        if data["signature"] is None:
            del data["signature"]
        if data["judging"] is None:
            del data["judging"]
        return data

    def write(self, folder: Path) -> Path:
        """Write manifest.json into ``folder`` atomically (see ``write_text_atomic``)."""
        path = Path(folder) / MANIFEST_NAME
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, folder: Path) -> Manifest:
        """Read and validate ``folder/manifest.json``; raises ManifestError with what is wrong."""
        folder = Path(folder)
        if not folder.is_dir():
            raise ManifestError(f"{folder} is not an artifact folder: run `exporter export MODEL` to create one")
        path = folder / MANIFEST_NAME
        if path.is_symlink() or not path.is_file():
            raise ManifestError(f"{folder} has no {MANIFEST_NAME}: it was not written by `exporter export`")
        if path.stat().st_size > _MAX_MANIFEST_BYTES:
            raise ManifestError(f"{path} is larger than any manifest this tool writes: refusing to read it")
        try:
            data = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ManifestError(f"{path} is not valid JSON ({error}): re-export the model") from None
        except ValueError:  # an integer of more digits than Python converts (4,300): no manifest writes one
            raise ManifestError(f"{path} holds a number longer than any manifest this tool writes: refusing it") from None
        except RecursionError:
            raise ManifestError(f"{path} is nested deeper than any manifest this tool writes: refusing it") from None
        return cls.from_dict(data, where=str(path))

    @classmethod
    def from_dict(cls, data: Any, where: str = MANIFEST_NAME) -> Manifest:
        if not isinstance(data, dict):
            raise ManifestError(f"{where} must hold a JSON object")
        schema = data.get("schema", 1)
        if type(schema) is not int or schema not in READABLE_SCHEMAS:
            raise ManifestError(
                f"{where} has schema {schema!r}; this exporter reads schemas {', '.join(map(str, READABLE_SCHEMAS))}: "
                "re-export, or use the exporter version that wrote it"
            )
        if schema == 1 and isinstance(data.get("input"), dict):  # one input, and every axis 0 was the batch
            outputs = data.get("outputs")
            if isinstance(outputs, list) and all(isinstance(o, dict) and o.get("shape") for o in outputs):
                outputs = [{**o, "shape": ["batch", *o["shape"][1:]]} for o in outputs]
            data = {**data, "inputs": [{**data["input"], "dynamic_axes": {"0": "batch"}}], "outputs": outputs}
        missing = [k for k in REQUIRED_KEYS if k not in data]
        if missing:
            raise ManifestError(f"{where} lacks {', '.join(missing)}: re-export the model")
        problems = []
        for key, kind in (("model", dict), ("inputs", list), ("outputs", list), ("device", str), ("versions", dict)):
            if not isinstance(data[key], kind):
                problems.append(f"{key} must be a {kind.__name__}")
        if not isinstance(data["artifacts"], list) or not data["artifacts"]:
            problems.append("artifacts must be a non-empty list")
        if data.get("signature") is not None and not isinstance(data["signature"], dict):
            problems.append("signature must be an object")
        if data.get("judging") is not None and not isinstance(data["judging"], dict):
            problems.append("judging must be an object")
        problems += _field_problems(data)
        if problems:
            raise ManifestError(f"{where}: {'; '.join(problems)}")
        artifacts = [_artifact_entry(item, where) for item in data["artifacts"]]
        manifest = cls(
            model=data["model"],
            inputs=data["inputs"],
            outputs=data["outputs"],
            device=data["device"],
            artifacts=artifacts,
            versions=dict(data["versions"]),
            verification=data.get("verification"),
            schema=SCHEMA,
            signature=data.get("signature"),
            judging=data.get("judging"),
            raw=data,
        )
        manifest.interface  # noqa: B018 -- every input parses, or ManifestError names what is wrong
        return manifest


def _artifact_entry(item: Any, where: str) -> ArtifactEntry:
    """One ``artifacts`` item, checked: a plain relative path, a whole number of bytes; ManifestError otherwise."""
    try:
        if type(item["bytes"]) is not int or item["bytes"] < 0 or not isinstance(item["path"], str):
            raise ValueError(item["bytes"])
        entry = ArtifactEntry(
            format=str(item["format"]),
            path=item["path"],
            sha256=str(item["sha256"]),
            bytes=item["bytes"],
            details=dict(item.get("details") or {}),
        )
    except (KeyError, TypeError, ValueError):
        raise ManifestError(
            f"{where}: each artifact needs format, path, sha256 and bytes (a whole number): re-export"
        ) from None
    check_relative(entry.path, where)
    return entry


_MAX_SEED = 2**63 - 1


def _field_problems(data: dict[str, Any]) -> list[str]:
    """What is wrong with the fields verify, predict and inspect rely on (empty when sound)."""
    problems = []
    if not data["inputs"] or not all(isinstance(i, dict) for i in data["inputs"]):
        problems.append("inputs must be a non-empty list of {name, shape, dtype}")
    outputs = data["outputs"]
    if not outputs or not all(isinstance(o, dict) and isinstance(o.get("name"), str) and o["name"] for o in outputs):
        problems.append("outputs must be a non-empty list of {name, shape}")
    model = data["model"] if isinstance(data["model"], dict) else {}
    seed = model.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= _MAX_SEED:
        problems.append("model.seed must be an integer from 0 to 2**63-1")
    if model.get("weights") is not None and not isinstance(model.get("weights"), dict):
        problems.append("model.weights must be an object or null")
    return problems


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``path`` through a fresh temp file and a rename.

    A reader never sees half a file, and a symlink planted at ``path`` (or at a predictable
    temp name) is replaced, never followed, so a hostile folder cannot redirect the write.
    """
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class SignedFolder:
    """What ``sign_folder`` signed: the manifest's digest, the files it binds, and the key."""

    folder: Path
    digest: str  # sha256 of the manifest's binding part: what the signature covers
    files: list[tuple[str, str, int]]  # (path, sha256, bytes) of every file the manifest binds
    key_id: str


def sign_folder(artifact_dir: str | Path, before_signing: Any = None) -> SignedFolder:
    """Sign ``artifact_dir``'s manifest with this machine's key (made if missing).

    For a folder from elsewhere, once its user has decided to trust it: afterwards verify,
    predict and bench load its TorchScript and pt2 files. Every file must first match its
    sha256 in the manifest (ExporterError, exit 1, otherwise), so what is signed is what is there.
    Only the digest that was checked is signed: a manifest changed between the check and the
    signing is refused (FolderChangedError, exit 1). ``before_signing(SignedFolder)``: told what is
    about to be signed (the CLI prints it). The recorded verdict is left unsigned: trusting where a
    folder came from is not having verified it.
    """
    from ..errors import ExporterError, FolderChangedError
    from .integrity import check_all

    folder = Path(artifact_dir)
    manifest = Manifest.load(folder)
    bad = [h.path for h in check_all(folder, manifest.artifacts) if not h.ok]
    if bad:
        raise ExporterError(
            f"{', '.join(bad)} in {folder} do not match their sha256 in the manifest: refusing to sign it; re-export"
        )
    key = trust.load_key(create=True)
    assert key is not None
    files = [(a.path, a.sha256, a.bytes) for a in manifest.artifacts]
    signed = SignedFolder(folder, manifest.digest, files, trust.key_id(key))
    if before_signing is not None:
        before_signing(signed)
    current = Manifest.load(folder)
    if current.digest != signed.digest:
        raise FolderChangedError(f"{folder}'s manifest changed while it was checked: nothing signed; run it again")
    current.sign(key)
    current.write(folder)
    return signed
