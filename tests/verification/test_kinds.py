"""Input kinds (interface.KINDS, drawn by verification/kinds.py): masks drawn as the padding masks
tokenizers make, ids within their table, position ids counting up; kinds inferred from conventional
names or declared."""

from __future__ import annotations

import pytest
import torch

from exporter import interface as kinds
from exporter.errors import InputSpecError
from exporter.interface import InputSpec, parse_kind, with_kinds
from exporter.verification.inputs import example
from exporter.verification.kinds import draw


def _mask(kind=kinds.PADDING_MASK, shape=(64, 12)):
    return draw(kind, torch.Generator().manual_seed(0), shape, "int64", (0, 1))


def test_a_padding_mask_is_ones_then_zeros_per_row_with_at_least_one_attended_and_varied_lengths():
    mask = _mask()
    lengths = mask.sum(1)
    assert lengths.min() >= 1 and lengths.max() == 12 and len(set(lengths.tolist())) > 5
    for row, length in zip(mask, lengths, strict=True):
        assert row[:length].eq(1).all() and row[length:].eq(0).all()


def test_a_left_padding_mask_is_zeros_then_ones():
    mask = _mask(kinds.LEFT_PADDING_MASK)
    assert mask[:, -1].eq(1).all()  # the last position is always attended
    assert torch.equal(mask.flip(-1).cumprod(-1), mask.flip(-1))  # a run of ones from the right


def test_uniform_draws_would_have_rows_with_nothing_attended_which_a_mask_kind_never_has():
    generator = torch.Generator().manual_seed(0)
    uniform = torch.randint(0, 2, (256, 4), generator=generator)
    assert uniform.sum(1).eq(0).any()  # softmax over nothing: the false alarm the kind removes
    assert _mask(shape=(256, 4)).sum(1).ge(1).all()


def test_position_ids_count_up_within_their_table():
    ids = draw(kinds.POSITION_IDS, torch.Generator().manual_seed(1), (8, 5), "int64", (0, 9))
    assert ids.min() >= 0 and ids.max() <= 9
    assert ids.diff(dim=1).eq(1).all()


def test_kinds_are_inferred_from_conventional_names_and_a_declared_kind_wins():
    specs = (InputSpec("input_ids", (1, 4), "int64", (0, 9)), InputSpec("attention_mask", (1, 4), "int64", (0, 1)))
    ids, mask = with_kinds(specs)
    assert (ids.kind, mask.kind) == (kinds.TOKEN_IDS, kinds.PADDING_MASK)
    _, declared = with_kinds(specs, [parse_kind("attention_mask:left-padding-mask")])
    assert declared.kind == kinds.LEFT_PADDING_MASK
    (plain,) = with_kinds((InputSpec("x", (1, 4)),))
    assert plain.kind is None
    with pytest.raises(InputSpecError, match="--input-kind names input 'mask'"):
        with_kinds(specs, [("mask", kinds.PLAIN)])


def test_an_unknown_kind_or_ids_that_are_floats_are_refused():
    with pytest.raises(InputSpecError, match="is not NAME:KIND"):
        parse_kind("attention_mask:spotty")
    with pytest.raises(InputSpecError, match="token-ids are integers, not float32"):
        InputSpec("ids", (1, 4), "float32", kind=kinds.TOKEN_IDS)
    with pytest.raises(InputSpecError, match="needs the range"):  # plain integers still need their range
        InputSpec("counts", (1, 4), "int64")


def test_the_export_example_and_the_report_follow_the_kind_and_the_manifest_records_it():
    spec = InputSpec("attention_mask", (6, 8), "int64", (0, 1), kind=kinds.PADDING_MASK)
    drawn = example((spec,), 0, torch.device("cpu"))["attention_mask"]
    assert drawn.sum(1).ge(1).all() and torch.equal(drawn.cumprod(1), drawn)
    assert "padding masks: per row ones then zeros" in spec.describe()
    assert InputSpec.from_manifest(spec.to_manifest()) == spec
    assert "kind" not in InputSpec("x", (1, 2)).to_manifest()  # a plain input's record is as before
