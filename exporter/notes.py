"""Notes: what a step says besides its result, each with a level, so no reader sorts them by their words.

- ``info``: a routine fact about the run (the execution providers ONNX Runtime used);
- ``note``: worth a reader's attention, not a failure (a runtime ran on the CPU for want of a CUDA
  provider; an int8 pass on few samples);
- ``warning``: what an exporter warned about (a trace froze a value): shown on a pass, and listed with
  the failures when its runtime fails, since it is then the likely cause.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

INFO, NOTE, WARNING = "info", "note", "warning"
LEVELS = (INFO, NOTE, WARNING)


@dataclass(frozen=True)
class Note:
    level: str  # one of LEVELS
    text: str

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"a note's level is one of {', '.join(LEVELS)}, not {self.level!r}")

    def __str__(self) -> str:
        return self.text

    @classmethod
    def info(cls, text: str) -> Note:
        return cls(INFO, text)

    @classmethod
    def note(cls, text: str) -> Note:
        return cls(NOTE, text)

    @classmethod
    def warning(cls, text: str) -> Note:
        return cls(WARNING, text)

    def prefixed(self, prefix: str) -> Note:
        """The same note about one part of a whole (``logits: ...``)."""
        return Note(self.level, f"{prefix}: {self.text}")

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "text": self.text}


def recorded(details: dict[str, Any]) -> list[Note]:
    """The notes an export recorded in an artifact's manifest entry: its ``warnings`` and its ``notes``."""
    warnings = [Note.warning(str(text)) for text in details.get("warnings") or []]
    return warnings + [Note.note(str(text)) for text in details.get("notes") or []]
