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
    """Swallow exporter output; append the meaningful warning lines to ``kept``."""
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in ("torch", "onnxscript", "onnx_ir")]
    loggers = [logging.getLogger(n) for n in ("torch", "onnxscript", *names)]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    sink = io.StringIO()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        for w in caught if "caught" in locals() else []:
            if issubclass(w.category, (DeprecationWarning, FutureWarning)):
                continue
            line = str(w.message).strip().splitlines()[0] if str(w.message).strip() else ""
            if line and not any(n in line for n in _NOISE) and line not in kept:
                kept.append(f"{w.category.__name__}: {line}")
