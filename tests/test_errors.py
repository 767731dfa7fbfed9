"""errors: one root, exit codes by kind, one-line messages (``first_line``), and the disk-full error found
behind whatever wrapped it."""

from __future__ import annotations

import errno
import inspect
import shutil
from collections import namedtuple

import pytest

from exporter import errors
from exporter.errors import (
    DiskFullError,
    ExporterError,
    UntrustedArtifactError,
    UsageError,
    disk_error,
    first_line,
)

# --- exit codes --------------------------------------------------------------------------------------

USAGE = (  # the user can fix it: exit 2
    "UsageError",
    "ModelNotFoundError",
    "InputSpecError",
    "DeviceError",
    "ArtifactDirError",
    "ManifestError",
    "CheckpointError",
    "ArtifactFileError",
    "WireError",
    "ModelFolderExistsError",
    "UntrustedArtifactError",
    "FleetError",
    "ExtraMissingError",
    "TooBigError",  # the machine cannot hold the export: found before it starts
)
FAILURE = (  # a step could not be carried out: exit 1
    "ExporterError",
    "ReferenceUnavailable",
    "ArtifactLoadError",
    "ExportFailedError",
    "FolderChangedError",
    "UnverifiedFolderError",
    "DiskFullError",
    "FolderSwapError",
)


@pytest.mark.parametrize("name", USAGE)
def test_usage_errors_exit_2(name):
    cls = getattr(errors, name)
    assert issubclass(cls, UsageError) and cls.exit_code == 2


@pytest.mark.parametrize("name", FAILURE)
def test_failures_exit_1_and_are_not_usage_errors(name):
    cls = getattr(errors, name)
    assert issubclass(cls, ExporterError) and not issubclass(cls, UsageError) and cls.exit_code == 1


def test_every_error_class_is_one_of_the_two_kinds():
    found = {n for n, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, ExporterError)}
    assert found == set(USAGE) | set(FAILURE)
    assert not issubclass(errors.CannotOpenUp, ExporterError)  # an internal signal, never shown as an error
    # raised from a signal handler anywhere: it must pass every `except Exception` on its way to the CLI
    assert not issubclass(errors.CommandTimeout, Exception) and errors.CommandTimeout.exit_code == 1


def test_a_wire_error_is_a_value_error_too():
    assert issubclass(errors.WireError, ValueError) and issubclass(errors.WireError, errors.ArtifactFileError)
    assert not issubclass(errors.ManifestError, ValueError)


def test_an_untrusted_artifact_names_the_file_the_reason_and_both_ways_out():
    error = UntrustedArtifactError("model.pt", "the folder is not trusted: its manifest is not signed")
    message = str(error)
    assert message.startswith("refusing to load model.pt: the folder is not trusted: its manifest is not signed;")
    assert "--trust-artifacts" in message and "exporter trust DIR" in message and "\n" not in message
    assert (error.path, error.reason) == ("model.pt", "the folder is not trusted: its manifest is not signed")
    assert error.exit_code == 2


# --- first_line --------------------------------------------------------------------------------------


def test_first_line_is_the_first_non_empty_line_stripped():
    assert first_line(ValueError("\n\n   shape mismatch  \nat line 3\n")) == "shape mismatch"
    assert first_line(ValueError("one line")) == "one line"


def test_first_line_of_an_empty_message_is_the_class_name():
    assert first_line(KeyboardInterrupt()) == "KeyboardInterrupt"
    assert first_line(RuntimeError("  \n ")) == "RuntimeError"


def test_a_torchscript_interpreter_error_gives_its_last_line_the_cause():
    message = (
        "The following operation failed in the TorchScript interpreter.\n"
        "Traceback of TorchScript (most recent call last):\n"
        '  File "code/__torch__.py", line 12, in forward\n'
        "RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x3 and 4x5)\n"
    )
    assert first_line(RuntimeError(message)) == "RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x3 and 4x5)"
    # Another error whose last line is a cause keeps its first line: only the interpreter's boilerplate is skipped.
    other = "export failed\nRuntimeError: the detail"
    assert first_line(RuntimeError(other)) == "export failed"


def test_a_long_line_is_cut_to_the_limit_with_an_ellipsis():
    assert first_line(ValueError("x" * 500)) == "x" * 237 + "..."
    assert len(first_line(ValueError("y" * 100), limit=40)) == 40
    assert first_line(ValueError("z" * 240)) == "z" * 240  # at the limit: whole


# --- disk_error --------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(errors.DISK_ERRNOS))
def test_an_out_of_space_os_error_is_found_itself(code):
    error = OSError(code, "no room")
    assert disk_error(error) is error


@pytest.mark.parametrize("code", [errno.EACCES, errno.ENOENT, errno.EIO, None])
def test_other_os_errors_are_not_disk_errors(code):
    assert disk_error(OSError(code, "other") if code else OSError("no errno")) is None
    assert disk_error(None) is None and disk_error(ValueError("full")) is None


def _raised(make):
    try:
        make()
    except Exception as error:
        return error
    raise AssertionError("nothing raised")


def test_a_disk_error_is_found_behind_an_explicit_cause():
    full = OSError(errno.ENOSPC, "No space left on device")

    def wrapped():
        try:
            raise full
        except OSError as error:
            raise RuntimeError("torch.onnx.export failed") from error

    outer = _raised(wrapped)
    assert outer.__cause__ is full and disk_error(outer) is full


def test_a_disk_error_is_found_behind_an_implicit_context_several_levels_down():
    quota = OSError(getattr(errno, "EDQUOT", errno.ENOSPC), "Disk quota exceeded")

    def nested():
        try:
            try:
                raise quota
            except OSError:
                raise ValueError("while writing the manifest")  # noqa: B904 (the implicit context is the point)
        except ValueError:
            raise RuntimeError("export failed")  # noqa: B904

    outer = _raised(nested)
    assert outer.__cause__ is None and disk_error(outer) is quota


def test_a_chain_that_loops_ends_without_a_disk_error():
    first, second = RuntimeError("a"), RuntimeError("b")
    first.__cause__, second.__cause__ = second, first  # a cycle: the walk must stop
    assert disk_error(first) is None


# --- DiskFullError.from_os ---------------------------------------------------------------------------


def _free(monkeypatch, free: int | None) -> None:
    def usage(_path):
        if free is None:
            raise OSError(errno.ENOENT, "gone")
        return namedtuple("usage", "total used free")(0, 0, free)

    monkeypatch.setattr(shutil, "disk_usage", usage)


def test_a_full_disk_names_the_file_and_the_free_space_where_it_was_written(monkeypatch):
    _free(monkeypatch, 1_500_000)
    error = OSError(errno.ENOSPC, "No space left on device", "/out/mlp/model.onnx")
    full = DiskFullError.from_os(error, "/out")
    assert str(full) == (
        "the disk is full writing /out/mlp/model.onnx (1.50 MB free in /out): nothing was kept; "
        "free some space or write elsewhere"
    )
    assert full.exit_code == 1 and not isinstance(full, UsageError)


def test_without_a_file_name_the_folder_is_named_and_unknown_free_space_said(monkeypatch):
    _free(monkeypatch, None)
    message = str(DiskFullError.from_os(OSError(errno.ENOSPC, "No space left on device"), "/out"))
    assert message.startswith("the disk is full writing /out (unknown free in /out)")


@pytest.mark.parametrize(
    "code, cause",
    [
        (errno.EFBIG, "the file-size limit (ulimit -f) was reached"),
        (getattr(errno, "EDQUOT", errno.ENOSPC), "the disk quota is used up"),
        (errno.ENOSPC, "the disk is full"),
    ],
    ids=["efbig", "edquot", "enospc"],
)
def test_each_cause_is_named_as_what_it_is(monkeypatch, code, cause):
    if code == errno.ENOSPC and cause != "the disk is full":
        pytest.skip("no EDQUOT on this platform")
    _free(monkeypatch, 512)
    message = str(DiskFullError.from_os(OSError(code, "x", "/out/f"), "/out"))
    assert message.startswith(f"{cause} writing /out/f (512 B free in /out)")
