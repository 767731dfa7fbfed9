"""Turn an exporter's page-long failure into one paragraph: the step, the cause, the line, what to do."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import first_line

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CALL_SITE = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+), in \w+\n(?P<code>[^\n]+)')


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def explain_torch_export(error: BaseException, step: str, fallback: str) -> str:
    """Explain a torch.export failure (``step`` names it; ``fallback`` is the generic next step)."""
    root = error
    while root.__cause__ is not None:
        root = root.__cause__
    text = strip_ansi(str(error)) + "\n" + strip_ansi(str(root))
    kind = type(root).__name__
    where = ""
    match = _CALL_SITE.search(text)
    if match:
        code = match["code"].split("  #")[0].strip()
        where = f" (at {Path(match['file']).name}:{match['line']}: `{code}`)"
    if "DataDependent" in kind or "data-dependent" in text:
        hint = (
            f"forward branches on tensor values{where}, which torch.export cannot capture. "
            f"Use torch.where or torch.cond{fallback}"
        )
    elif "ConstraintViolation" in kind or "specialized" in text or "Constraints violated" in text:
        hint = (
            f"forward fixes the batch size{where} (int(x.shape[0]) or a reshape to a constant). "
            "Keep it symbolic: x.flatten(1), x.reshape(x.shape[0], -1)"
        )
    else:
        hint = f"{strip_ansi(first_line(root))}{where}.{fallback.replace(', or', '', 1)}"
    return f"{step} failed: {hint}"
