"""One root for every error the toolkit raises on purpose.

Each message is one line that says what failed and what to do next. The CLI turns
an ``ExporterError`` into that line on stderr and ``exit_code``, never a traceback:
2 for a mistake in what the user asked for (``UsageError``), 1 for a step that could
not be carried out (``ExportFailedError``). A failed verification is not an error: it
is a report whose ``passed`` is False (exit 1 from the CLI).
"""

from __future__ import annotations

import errno


class ExporterError(Exception):
    """Root of the toolkit's errors. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class UsageError(ExporterError):
    """Something the user asked for cannot be done as asked; they can fix it."""

    exit_code = 2


class ModelNotFoundError(UsageError):
    """An unknown model name, a bad import path or a model file that cannot be loaded."""


class InputSpecError(UsageError):
    """A bad ``--input-shape``, input file or input option."""


class DeviceError(UsageError):
    """The requested device does not exist here (``--device cuda`` without CUDA, say)."""


class ArtifactDirError(UsageError):
    """The artifact folder cannot be written, or does not hold a usable manifest."""


class ManifestError(ArtifactDirError):
    """manifest.json is missing, corrupt, or names a path outside its folder."""


class CheckpointError(UsageError):
    """A weights file that is missing, broken, hostile or does not fit the model."""


class ArtifactFileError(ArtifactDirError):
    """An artifact file is malformed or hostile (an ONNX file that does not parse, external data outside
    the folder): refused before any runtime sees it."""


class WireError(ArtifactFileError, ValueError):
    """The bytes of an ONNX file are not the protobuf the wire reader expects (truncated or hostile).

    A ValueError too: export's own writer falls back to onnx's loader on it."""


class ModelFolderExistsError(UsageError):
    """A Triton model folder already holds files and ``--force`` was not given (exit 2)."""


class FleetError(UsageError):
    """A sweep's fleet file that cannot be run as written: one line naming the file, the entry and the field."""


class ExtraMissingError(UsageError):
    """An optional extra (``pip install 'exporter[ray]'``) that the asked-for feature needs is not installed."""


class ReferenceUnavailable(ExporterError):
    """The eager reference cannot be rebuilt (its weights file failed its hash check): exit 1."""


class UntrustedArtifactError(UsageError):
    """An artifact whose loading runs code (TorchScript, pt2) in a folder that is not trusted (exit 2)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason  # reason: "the folder is not trusted: its manifest ..."
        super().__init__(
            f"refusing to load {path}: {reason}; loading it runs the code it carries: pass --trust-artifacts "
            "if you trust where the folder came from, or sign it with `exporter trust DIR`"
        )


class ArtifactLoadError(ExporterError):
    """A runtime could not load a hash-checked artifact (exit 1): a fault of the artifact or the runtime."""


class CannotOpenUp(RuntimeError):
    """Not a user's error: a runtime whose intermediate values cannot be mapped to the eager model's
    modules, so localisation says so instead of guessing."""


class ExportFailedError(ExporterError):
    """An exporter could not turn the model into an artifact (exit 1)."""


class CommandTimeout(BaseException):
    """The command ran past its ``--timeout`` and was stopped (exit 1); nothing half-written is kept.

    Outside the ExporterError root on purpose, as KeyboardInterrupt is: raised from a signal handler at any
    point, it must pass every ``except Exception`` and ``except ExporterError`` (a runtime's "not run" among
    them) on its way to the CLI, which prints its one line."""

    exit_code = 1


class FolderSwapError(ExporterError):
    """The finished folder could not be swapped in for the earlier one (exit 1); the message says whether the
    earlier folder is untouched, why the swap failed, and what to do."""


class FolderChangedError(ExporterError):
    """The folder no longer holds the manifest that was verified: the verdict is not recorded."""


class UnverifiedFolderError(ExporterError):
    """The folder has no passed verification of its manifest on record, and the caller did not override (exit 1)."""


class DiskFullError(ExporterError):
    """The disk (or a file-size limit) ran out while writing: nothing is left half-written (exit 1)."""

    @classmethod
    def from_os(cls, error: OSError, where: str) -> DiskFullError:
        """One line naming the file, the free space where it was written, and what to do."""
        import shutil

        from .tables import human_size

        path = error.filename or where
        try:
            free = human_size(shutil.disk_usage(where).free)
        except OSError:
            free = "unknown"
        if error.errno == errno.EFBIG:
            cause = "the file-size limit (ulimit -f) was reached"
        else:
            cause = "the disk is full" if error.errno == errno.ENOSPC else "the disk quota is used up"
        return cls(
            f"{cause} writing {path} ({free} free in {where}): nothing was kept; free some space or write elsewhere"
        )


class TooBigError(UsageError):
    """The machine's free memory or disk cannot hold the export, found before it starts (exit 2)."""


DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)})


def disk_error(error: BaseException | None) -> OSError | None:
    """The out-of-space OSError (ENOSPC, EFBIG, EDQUOT) behind ``error``, following its causes; else None."""
    seen = 0
    while error is not None and seen < 20:
        if isinstance(error, OSError) and error.errno in DISK_ERRNOS:
            return error
        error = error.__cause__ or error.__context__
        seen += 1
    return None


def first_line(error: BaseException, limit: int = 240) -> str:
    """The line of an exception's message that says what went wrong, for one-line reports.

    That is the first non-empty line, except for TorchScript interpreter errors, whose
    first line is boilerplate and whose last line ("RuntimeError: ...") is the cause.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    line = lines[-1] if lines[0].startswith("The following operation failed in the TorchScript") else lines[0]
    return line if len(line) <= limit else line[: limit - 3] + "..."
