"""Which artifact folders may have their code loaded: an HMAC over the manifest, with a local key.

Loading a TorchScript (``torch.jit.load``) or pt2 (``torch.export.load``) file runs code the
file carries; PyTorch has no safe mode for either (``torch.export.load`` unpickles with
``weights_only=False``). ONNX files are data. So a folder's TorchScript and pt2 files are
loaded only when the folder is *trusted*: its manifest carries a signature this machine
made, or the user said so (``--trust-artifacts``, ``trust=True``).

The signature is HMAC-SHA256 over the manifest's binding part (every key but the recorded
``verification``, which ``verify`` rewrites, and the signature itself) as canonical JSON.
The manifest binds every file by sha256, so the signature binds the files too. The key is
32 random bytes in the user's config folder (``$EXPORTER_CONFIG_DIR``, else
``$XDG_CONFIG_HOME/exporter``, else ``~/.config/exporter``), file ``signing-key`` (0600, in a
0700 folder), made by the first export. A folder from another machine, an edited manifest or
a missing signature all read as untrusted; ``exporter trust DIR`` signs a folder once its
user has decided to trust it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ArtifactDirError, ManifestError

SCHEME = "hmac-sha256"
KEY_FILE = "signing-key"
UNBOUND_KEYS = ("verification", "signature")  # rewritten after signing: not part of the binding
_DOMAIN = b"exporter manifest v1\n"  # a signature over anything else can never be replayed as one over a manifest
TRUST_OPTION = "--trust-artifacts"


def config_dir() -> Path:
    """Where the signing key lives: $EXPORTER_CONFIG_DIR, $XDG_CONFIG_HOME/exporter or ~/.config/exporter."""
    if os.environ.get("EXPORTER_CONFIG_DIR"):
        return Path(os.environ["EXPORTER_CONFIG_DIR"])
    if os.environ.get("XDG_CONFIG_HOME"):
        return Path(os.environ["XDG_CONFIG_HOME"]) / "exporter"
    return Path.home() / ".config" / "exporter"


def binding(data: dict[str, Any]) -> bytes:
    """The manifest's binding part as canonical JSON (sorted keys, no spaces, no NaN)."""
    part = {k: v for k, v in data.items() if k not in UNBOUND_KEYS}
    try:
        return json.dumps(part, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError) as error:
        raise ManifestError(f"manifest.json holds a value JSON cannot state exactly ({error}): re-export") from None


def binding_sha256(data: dict[str, Any]) -> str:
    """The sha256 of the binding part: what a recorded verification names as the manifest it judged."""
    return hashlib.sha256(binding(data)).hexdigest()


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def load_key(create: bool = False) -> bytes | None:
    """This user's signing key; None when there is none and ``create`` is False.

    The key is opened without blocking and without following a link, then checked before one byte is
    read: a regular file (a FIFO would hang every command; a folder is no key), owned by this user,
    readable by no one else, in a folder owned by this user that no one else can write (who can write
    the folder can swap the key). Raises ArtifactDirError (exit 2), one line naming the path and the fix,
    when any of that fails, or the key cannot be made or read.
    """
    folder = config_dir()
    path = folder / KEY_FILE
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        if not create:
            return None
        _check_folder(folder, must_exist=False)
        return _create_key(folder, path)
    except OSError as error:
        raise ArtifactDirError(f"cannot read the signing key {path} ({error.strerror}): fix it or remove it") from None
    try:
        _check_key_file(path, os.fstat(fd))  # before a byte is read, and before a folder is wrapped as a file
        _check_folder(folder, must_exist=True)
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as handle:
        text = handle.read(200).decode("ascii", "replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ArtifactDirError(f"the signing key {path} is not 64 hex digits: remove it, and the next export makes one")
    return key


def _check_key_file(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a FIFO" if stat.S_ISFIFO(info.st_mode) else "not a file"
        raise ArtifactDirError(
            f"the signing key {path} is {kind}, not a regular file: remove it, and the next export makes a key"
        )
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise ArtifactDirError(
            f"the signing key {path} is owned by another user (uid {info.st_uid}): remove it, or set "
            "EXPORTER_CONFIG_DIR to a folder of your own"
        )
    if info.st_mode & 0o077:
        raise ArtifactDirError(f"the signing key {path} is readable by others: run chmod 600 {path}")


def _check_folder(folder: Path, must_exist: bool) -> None:
    """The key's folder: owned by this user and writable by no one else (absent is fine before it is made)."""
    try:
        info = os.stat(folder)
    except FileNotFoundError:
        if must_exist:
            raise
        return
    except OSError as error:
        raise ArtifactDirError(f"cannot read the signing key's folder {folder} ({error.strerror})") from None
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise ArtifactDirError(
            f"the signing key's folder {folder} is owned by another user (uid {info.st_uid}): set "
            "EXPORTER_CONFIG_DIR to a folder of your own"
        )
    if info.st_mode & 0o022:
        raise ArtifactDirError(
            f"the signing key's folder {folder} is writable by others, who could replace the key: run chmod 700 {folder}"
        )


def _create_key(folder: Path, path: Path) -> bytes:
    """32 random bytes, written to a temp file and linked into place (two first exports agree on one key)."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        temp = folder / f".{KEY_FILE}.{secrets.token_hex(8)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            temp.unlink(missing_ok=True)
    except OSError as error:
        raise ArtifactDirError(
            f"cannot create the signing key in {folder} ({error.strerror}): set EXPORTER_CONFIG_DIR to a private, "
            "writable folder"
        ) from None
    key = load_key(create=False)
    assert key is not None
    return key


def sign(data: dict[str, Any], key: bytes) -> dict[str, str]:
    """The ``signature`` entry for a manifest's dict."""
    value = hmac.new(key, _DOMAIN + binding(data), hashlib.sha256).hexdigest()
    return {"scheme": SCHEME, "key_id": key_id(key), "value": value}


_VERDICT_DOMAIN = b"exporter verdict v1\n"  # a verdict's signature can never pass for a manifest's, or back


def _verdict_bytes(verdict: dict[str, Any]) -> bytes:
    part = {k: v for k, v in verdict.items() if k != "signature"}
    try:
        return _VERDICT_DOMAIN + json.dumps(part, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError):
        return b""


def sign_verdict(verdict: dict[str, Any]) -> dict[str, Any]:
    """``verdict`` (a recorded verification naming its ``manifest_sha256``) with a ``signature`` made with this
    user's key: it says *this user's* verify judged *that* manifest so. Unsigned when there is no key."""
    key = load_key(create=False)
    unsigned = {k: v for k, v in verdict.items() if k != "signature"}
    if key is None:
        return unsigned
    value = hmac.new(key, _verdict_bytes(unsigned), hashlib.sha256).hexdigest()
    return {**unsigned, "signature": {"scheme": SCHEME, "key_id": key_id(key), "value": value}}


def verdict_checks(verdict: dict[str, Any]) -> bool:
    """Whether a recorded verdict carries a signature this user's key made over exactly these values."""
    signature = verdict.get("signature")
    if not isinstance(signature, dict) or signature.get("scheme") != SCHEME:
        return False
    key = load_key(create=False)
    if key is None or signature.get("key_id") != key_id(key):
        return False
    body = _verdict_bytes(verdict)
    expected = hmac.new(key, body, hashlib.sha256).hexdigest()
    return bool(body) and hmac.compare_digest(str(signature.get("value", "")), expected)


@dataclass(frozen=True)
class TrustCheck:
    """Whether a manifest's signature checks with this machine's key, and if not, why (one clause)."""

    trusted: bool
    reason: str = ""


def check(data: dict[str, Any]) -> TrustCheck:
    """Check a manifest's (raw, as read) dict against this machine's key. Never raises for a bad signature."""
    signature = data.get("signature")
    if signature is None:
        return TrustCheck(False, "its manifest carries no signature")
    if not isinstance(signature, dict) or signature.get("scheme") != SCHEME:
        return TrustCheck(False, "its manifest's signature is not one this tool makes")
    key = load_key(create=False)
    if key is None:
        return TrustCheck(False, f"this machine has no signing key ({config_dir() / KEY_FILE}) to check it with")
    if signature.get("key_id") != key_id(key):
        return TrustCheck(False, f"it was signed with another key ({str(signature.get('key_id'))[:16]!r})")
    expected = sign(data, key)["value"]
    if not hmac.compare_digest(str(signature.get("value", "")), expected):
        return TrustCheck(False, "its manifest was changed after it was signed")
    return TrustCheck(True)


def refusal(data: dict[str, Any], trust: bool) -> str | None:
    """None when the folder's code may be loaded; else why not, as one clause for a report."""
    if trust:
        return None
    result = check(data)
    return None if result.trusted else f"the folder is not trusted: {result.reason}"


def advice(runtimes: list[str], reason: str) -> str:
    """The one line a report gives for the runtimes it did not load."""
    return (
        f"{', '.join(runtimes)} not loaded ({reason}): loading TorchScript or pt2 runs the code they carry; "
        f"pass {TRUST_OPTION} if you trust where this folder came from, or `exporter trust DIR` to sign it"
    )
