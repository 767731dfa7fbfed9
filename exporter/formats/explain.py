"""Turn an exporter's page-long failure into one paragraph: the step, the cause, the line, what to do."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import first_line

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CALL_SITE = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+), in \w+\n(?P<code>[^\n]+)')
_FIX = re.compile(r"^\s*(?P<label>\w+) = (?P<value>.+?)\s*$")
_BOUNDED_DIM = re.compile(r"^Dim\('(?P<label>\w+)'(?:, min=(?P<min>\d+))?(?:, max=(?P<max>\d+))?\)$")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def suggested_bounds(error: BaseException) -> dict[str, tuple[int | None, int | None]] | None:
    """The (min, max) torch.export suggests for each dynamic axis, when every fix it suggests is a bound.

    A guard such as cuDNN's ``batch <= 65535`` on CUDA, or ``torch._check(x.shape[0] <= 1000)``,
    makes torch.export refuse an unbounded Dim and suggest ``batch = Dim('batch', max=65535)``: the
    axis stays dynamic within the bound. None when any suggested fix is not a bound (``batch = 4``:
    forward made the axis a constant, which is a real failure) or torch suggested nothing.
    """
    text = ""
    while error is not None and not text:
        found = strip_ansi(str(error))
        text = found if "Suggested fixes:" in found else ""
        error = error.__cause__ or error.__context__
    if not text:
        return None
    bounds: dict[str, tuple[int | None, int | None]] = {}
    for line in text.split("Suggested fixes:", 1)[1].lstrip("\n").splitlines():
        fix = _FIX.match(line)
        if fix is None:
            break  # the end of the suggestions
        dim = _BOUNDED_DIM.match(fix["value"])
        if dim is None or dim["label"] != fix["label"] or (dim["min"] is None and dim["max"] is None):
            return None
        bounds[fix["label"]] = (
            None if dim["min"] is None else int(dim["min"]),
            None if dim["max"] is None else int(dim["max"]),
        )
    return bounds or None


def bound_note(bounds: dict[str, tuple[int | None, int | None]]) -> str:
    """The warning recorded when an export keeps an axis dynamic within torch's suggested bounds."""
    parts = []
    for label, (low, high) in sorted(bounds.items()):
        parts.append(
            " and ".join(
                p for p in (low is not None and f"{label} >= {low}", high is not None and f"{label} <= {high}") if p
            )
        )
    return (
        f"ExportWarning: the program holds only for {', '.join(parts)}: forward, or a kernel it calls on this "
        "device (cuDNN limits a convolution's batch to 65535), guards it; other sizes will fail"
    )


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
    elif "in the specified range satisfy the generated guard" in text:
        hint = (
            f"forward limits a dynamic size to a range{where} that torch.export could not turn into a bound: "
            "check the guard in the message (TORCH_LOGS=+dynamic)"
        )
    elif "ConstraintViolation" in kind or "specialized" in text or "Constraints violated" in text:
        hint = (
            f"forward fixes the batch size{where} (int(x.shape[0]) or a reshape to a constant). "
            "Keep it symbolic: x.flatten(1), x.reshape(x.shape[0], -1)"
        )
    else:
        hint = f"{strip_ansi(first_line(root))}{where}.{fallback.replace(', or', '', 1)}"
    return f"{step} failed: {hint}"


_FRAME = re.compile(r'File "([^"]+)", line (\d+), in \S+\n\s*(.*)')


def user_line(trace: str | None) -> str:
    """The innermost frame of a recorded stack that is not inside torch: the user's line (``net.py:12: code``)."""
    frames = _FRAME.findall(trace or "")
    mine = [f for f in frames if "/torch/" not in f[0].replace("\\", "/")]
    if not mine:
        return ""
    file, line, code = mine[-1]
    code = code.split("  #")[0].strip()  # the code, without its comment
    return f"{Path(file).name}:{line}: {code}"
