"""Progress on stderr for long commands: one line rewritten in place on a terminal.

The API functions take ``progress: Callable[[str], None] | None`` and call it before or after each
step; the commands pass ``on_terminal(quiet)``: a ProgressLine when stderr is a terminal, else None.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TextIO


class ProgressLine:
    """Writes progress messages to ``stream``: one line rewritten in place on a terminal,
    one line per message elsewhere (a log). ``close()`` clears the terminal line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.width = 0

    def __call__(self, message: str) -> None:
        from .tables import printable

        message = printable(message)  # a step can name the folder's model or files
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


Progress = Callable[[str], None]


def _stderr() -> TextIO:
    return sys.stderr  # looked up at each call: click's test runner and pytest swap it


@contextlib.contextmanager
def on_terminal(quiet: bool = False, stream: TextIO | None = None) -> Iterator[Progress | None]:
    """What the commands pass as ``progress``: a ProgressLine on ``stream`` (stderr) when it is a terminal
    and not ``quiet``, cleared at the end; None otherwise, so a log or a pipe gets nothing."""
    stream = stream or _stderr()
    if quiet or not bool(getattr(stream, "isatty", lambda: False)()):
        yield None
        return
    line = ProgressLine(stream)
    try:
        yield line
    finally:
        line.close()


class _Feeds(Protocol):
    groups: dict

    def count(self, case: Any) -> int: ...

    def batches(self, case: Any) -> Iterator[dict]: ...


@dataclass
class TellingFeeds:
    """An input set that tells ``progress`` the step, the batch and the samples done after every batch it hands out."""

    feeds: _Feeds
    progress: Progress
    step: str  # "verify: onnxruntime"

    @property
    def groups(self) -> dict:
        return self.feeds.groups

    def count(self, case: Any) -> int:
        return self.feeds.count(case)

    def batches(self, case: Any) -> Iterator[dict]:
        total, done = self.feeds.count(case), 0
        for batch in self.feeds.batches(case):
            yield batch
            done += len(next(iter(batch.values()), ()))
            self.progress(f"{self.step}, batch {case.label}: {done}/{total} samples")


def telling(feeds: Any, progress: Progress | None, step: str) -> Any:
    """``feeds`` itself without ``progress``, else a TellingFeeds over it."""
    return feeds if progress is None else TellingFeeds(feeds, progress, step)
