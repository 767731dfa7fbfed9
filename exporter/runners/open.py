"""``open_artifact``: the one way a command loads an artifact of a folder for a runtime.

1. trust: a format whose loading runs code (TorchScript, pt2) is refused unless the folder is
   trusted (``UntrustedArtifactError``), before any byte of it is read;
2. integrity: the artifact and the files it needs beside it (ONNX external data) are copied while
   hashed into a fresh private folder of this process, which holds nothing else; a file that does
   not match the manifest is refused (``artifacts.integrity``), and no runtime ever reads the
   artifact folder itself, which could change between the check and the load. Export's own
   verification (``staged``) loads its staging files in place: they were hashed as written;
3. load: the runtime's runner over the checked copy (an ONNX file's external data is checked to
   name only those copies), activated; a runtime that cannot load it raises ``ArtifactLoadError``
   with its first line.

On leaving, the runner is deactivated and the private copies removed.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..artifacts.integrity import CheckedFile, private_copies
from ..errors import ArtifactLoadError, UntrustedArtifactError, UsageError, first_line
from .base import Runner

if TYPE_CHECKING:
    import torch

    from ..artifacts.manifest import ArtifactEntry, Manifest
    from ..interface import Interface


@contextlib.contextmanager
def open_artifact(
    folder: Path,
    manifest: Manifest,
    entry: ArtifactEntry,
    device: torch.device,
    *,
    trust: bool = False,
    staged: bool = False,
    threads: int | None = None,
    lean: bool = False,
    intermediates: bool = False,
    action: str = "load",
) -> Iterator[Runner]:
    """The active runner of ``entry`` (a runnable artifact of ``manifest``), over checked private copies.

    ``trust``: the user's word that the folder's code may run (``--trust-artifacts``); otherwise its
    signature must check. ``threads``, ``lean``, ``intermediates``: as ``runner_for``. ``action``
    names what a refusal refuses ("load", "benchmark"). Raises UntrustedArtifactError (exit 2),
    ArtifactDirError or ManifestError (exit 2: a missing, linked or hostile file), ExporterError
    (exit 1: a file that does not match its sha256) and ArtifactLoadError (exit 1).
    """
    from ..formats import FORMATS

    refusal = None if trust or staged else manifest.refusal(False)
    if refusal and FORMATS[entry.format].runs_code:
        raise UntrustedArtifactError(entry.path, refusal)
    entries = [entry, *manifest.side_entries(entry)]
    with contextlib.ExitStack() as stack:
        if staged:
            files = {e.path: CheckedFile(Path(folder) / e.path, own=True) for e in entries}
        else:
            private = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="exporter-load-")))
            files = private_copies(Path(folder), entries, private, action)
        try:
            runner = runner_for(
                entry.format, files[entry.path], files, device, manifest.interface,
                threads=threads, lean=lean, intermediates=intermediates,
            )  # fmt: skip
            runner.activate()
        except UsageError:
            raise
        except Exception as error:
            raise ArtifactLoadError(f"could not be loaded: {first_line(error)}") from error
        stack.callback(runner.deactivate)
        yield runner


def runner_for(
    fmt: str,
    file: CheckedFile,
    files: dict[str, CheckedFile],
    device: torch.device,
    interface: Interface,
    *,
    threads: int | None = None,
    lean: bool = False,
    intermediates: bool = False,
) -> Runner:
    """The runner of an artifact of format ``fmt`` over a checked file, loaded by path when activated.

    ``files``: the folder's checked files the artifact may need (ONNX external data is taken only
    from them). ``threads``: ONNX Runtime's tuned settings with that many threads (bench); None
    for its defaults. ``lean``: ONNX Runtime without weight prepacking (a large model's
    verification). ``intermediates``: ready for ``module_outputs`` (localisation).
    """
    from ..formats import FORMATS

    fmt_spec = FORMATS[fmt]
    if fmt_spec.engine == "onnxruntime":
        from . import onnxruntime

        return onnxruntime.runner(fmt_spec.runtime, file, files, device, interface, threads, lean, intermediates)
    from . import torch as torch_runners

    load = torch_runners.torchscript if fmt_spec.engine == "torch.jit" else torch_runners.pt2
    return load(fmt_spec.runtime, file, device, interface)
