"""Plain-text tables: the one column layout every human report uses."""

from __future__ import annotations

from collections.abc import Sequence


def human_size(size: int | None) -> str:
    """Bytes as a reader takes them in: "2.69 MB", "678.9 KB", "512 B"; "-" for None."""
    if size is None:
        return "-"
    if size >= 1e6:
        return f"{size / 1e6:.2f} MB"
    return f"{size / 1e3:.1f} KB" if size >= 1e3 else f"{size} B"


def printable(text: object) -> str:
    """``text`` with every character a terminal would act on escaped (a newline as ``\\n``, an escape
    sequence's ESC as ``\\x1b``, a right-to-left override as ``\\u202e``): a name read from a file can
    then add no line and change no colour of a report it is printed in."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def joined(lines: Sequence[str]) -> str:
    """``lines`` one a line, each ``printable``: a name from a folder in any of them adds no line (a forged
    ``PASSED:``) and sends no escape sequence to the terminal. Each item must be one line already."""
    return "\n".join(printable(line) for line in lines)


def text_table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns two spaces apart, one line per row (the first row is the header); each cell
    ``printable``, so a name from a file stays in its cell."""
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
