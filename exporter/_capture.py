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
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
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
