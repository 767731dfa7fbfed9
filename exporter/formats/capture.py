"""Keep exporters quiet, but keep what they warn about.

torch's exporters print progress to stdout, log through torch's own handlers and
raise DeprecationWarnings; none of that belongs on the user's terminal. TracerWarnings
do matter: they are how tracing says "this branch was frozen", so they are kept and
shown when verification fails.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator

_NOISE = ("deprecated", "DeprecationWarning", "FutureWarning")


@contextlib.contextmanager
def quiet_export(kept: list[str]) -> Iterator[None]:
    """Swallow exporter output; append the meaningful warning lines to ``kept``.

    Quiets torch's and onnxscript's loggers and the root logger (onnxruntime's quantiser
    logs its advice there) for the duration, and restores their levels afterwards.
    """
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in ("torch", "onnxscript", "onnx_ir")]
    loggers = [logging.getLogger(), *(logging.getLogger(n) for n in ("torch", "onnxscript", *names))]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with _fd_output(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        for w in caught:
            if issubclass(w.category, (DeprecationWarning, FutureWarning)):
                continue
            text = str(w.message).strip()
            entry = f"{w.category.__name__}: {text.splitlines()[0]}" if text else ""
            if entry and not any(n in text for n in _NOISE) and entry not in kept:
                kept.append(entry)


LAST_OUTPUT: list[str] = []  # what the last quiet_export caught on the process's stdout and stderr


@contextlib.contextmanager
def _fd_output() -> Iterator[None]:
    """Point file descriptors 1 and 2 at a temporary file: what C++ code and logging handlers bound to
    the real streams print (a guard traceback, the legacy exporter's IR dump) never reaches the
    terminal. The text is kept in LAST_OUTPUT, for a log the user can ask for."""
    import os
    import sys
    import tempfile

    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # no such descriptors (an embedding host): nothing to redirect
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            for stream in (sys.__stdout__, sys.__stderr__):
                with contextlib.suppress(Exception):
                    stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            LAST_OUTPUT[:] = [sink.read().decode(errors="replace")]
