"""notes: a level on every note, so readers sort them by level and never by their words."""

from __future__ import annotations

import pytest

from exporter.notes import INFO, LEVELS, NOTE, WARNING, Note, recorded


def test_the_three_levels_and_their_constructors():
    assert LEVELS == ("info", "note", "warning") == (INFO, NOTE, WARNING)
    assert Note.info("providers: CPU") == Note("info", "providers: CPU")
    assert Note.note("ran on the CPU") == Note("note", "ran on the CPU")
    assert Note.warning("a trace froze a value") == Note("warning", "a trace froze a value")
    assert Note.info("same words") != Note.warning("same words")  # the level, not the text, tells them apart


@pytest.mark.parametrize("level", ["Warning", "error", "debug", "", None])
def test_a_level_outside_the_three_is_refused(level):
    with pytest.raises(ValueError, match="a note's level is one of info, note, warning"):
        Note(level, "text")


def test_a_note_reads_as_its_text_and_serialises_with_its_level():
    note = Note.warning("the trace might be incorrect")
    assert str(note) == "the trace might be incorrect" and f"{note}" == note.text
    assert note.to_dict() == {"level": "warning", "text": "the trace might be incorrect"}


def test_prefixed_names_the_part_and_keeps_the_level():
    note = Note.note("ran on the CPU").prefixed("logits")
    assert note == Note("note", "logits: ran on the CPU")
    assert Note.warning("froze").prefixed("aux.0").level == WARNING


def test_recorded_gives_an_entrys_warnings_then_its_notes():
    details = {"warnings": ["TracerWarning: froze the batch"], "notes": ["weights: cast float64 to float32", 3]}
    assert recorded(details) == [
        Note.warning("TracerWarning: froze the batch"),
        Note.note("weights: cast float64 to float32"),
        Note.note("3"),  # written by hand into a manifest: kept, as text
    ]


@pytest.mark.parametrize("details", [{}, {"warnings": None, "notes": None}, {"warnings": [], "notes": []}, {"x": 1}])
def test_recorded_of_an_entry_without_any_is_empty(details):
    assert recorded(details) == []
