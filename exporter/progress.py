"""Progress on stderr for long commands: one line rewritten in place on a terminal, a line per step elsewhere."""

from __future__ import annotations

import sys
from typing import TextIO


class ProgressLine:
    """Writes progress messages to ``stream``: one line rewritten in place on a terminal,
    one line per message elsewhere (a log). ``close()`` clears the terminal line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.width = 0

    def __call__(self, message: str) -> None:
        if self.tty:
            self.stream.write("\r" + message.ljust(self.width))
            self.width = len(message)
        else:
            self.stream.write(message + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0
