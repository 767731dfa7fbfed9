"""What a model takes and returns (eager/probing.py): specs from example values, inputs in forward's
order, the example the exporters see, and the outputs' names, dtypes and dynamic axes, found by
running forward. Small modules only; nothing is exported."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from exporter.eager.probing import by_name, describe_outputs, export_example, in_forward_order, specs_from_values
from exporter.errors import InputSpecError
from exporter.interface import InputSpec, OutputSpec


class _Pair(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(12, 1)  # ids index it: their range is its vocabulary, [0, 11]

    def forward(self, image, ids):  # (B, 3, 8, 8) float, (B, S) int64
        return image.mean((1, 2, 3)) + self.embed(ids).sum((1, 2))


class _Counts(nn.Module):
    def forward(self, image, ids):  # ids used as numbers: no table tells their range
        return image.mean((1, 2, 3)) + ids.float().sum(1)


class _Optional(nn.Module):
    def forward(self, x, scale=None, shift=None):
        return x * (1 if scale is None else scale) + (0 if shift is None else shift)


class _Star(nn.Module):
    def forward(self, *tensors):
        return sum(tensors)


class _Sequence(nn.Module):
    """(B, S, 4) -> a tuple: (B, 4) summed over the sequence, (B, S) per position, and a fixed (4,)."""

    def forward(self, x):
        return x.sum(1), x.mean(2), x.new_ones(4)


# --- specs_from_values --------------------------------------------------------------------------


def test_a_tensor_is_one_input_named_input():
    specs, named = specs_from_values(torch.rand(2, 3, 8, 8), _Pair())
    assert specs == (InputSpec("input", (2, 3, 8, 8), "float32"),)
    assert list(named) == ["input"] and named["input"].shape == (2, 3, 8, 8)


def test_a_tuple_is_named_after_forwards_parameters_and_integers_take_their_embeddings_range():
    ids = torch.tensor([[3, 9, 4], [7, 0, 5]])
    specs, named = specs_from_values((torch.rand(2, 3, 8, 8), ids), _Pair())
    assert [(s.name, s.shape, s.dtype, s.value_range) for s in specs] == [
        ("image", (2, 3, 8, 8), "float32", None),  # floats: the default range
        ("ids", (2, 3), "int64", (0.0, 11.0)),  # integers: the vocabulary they index, never the example's [0, 9]
    ]
    assert named["ids"] is ids


def test_integers_no_embedding_takes_need_their_range_declared():
    ids = torch.tensor([[3, 9, 4]])
    with pytest.raises(InputSpecError, match="declare it"):
        specs_from_values((torch.rand(1, 3, 8, 8), ids), _Counts())
    declared = (InputSpec("ids", (1, 3), "int64", (0, 99)),)
    assert specs_from_values((torch.rand(1, 3, 8, 8), ids), _Counts(), declared)[0][1].value_range == (0.0, 99.0)


def test_a_dict_is_named_by_its_keys_in_its_order():
    specs, named = specs_from_values(
        {"ids": torch.ones(1, 4, dtype=torch.int32), "image": torch.rand(1, 3, 8, 8)}, _Pair()
    )
    assert [s.name for s in specs] == ["ids", "image"] and list(named) == ["ids", "image"]
    assert specs[0].dtype == "int32" and specs[0].value_range == (0.0, 11.0)


def test_a_bool_input_takes_no_range():
    (spec,), _ = specs_from_values(torch.tensor([[True, False]]), _Pair())
    assert spec.dtype == "bool" and spec.value_range is None


@pytest.mark.parametrize(
    "values, message",
    [
        ((torch.rand(1), torch.rand(1), torch.rand(1)), "forward takes 2 input(s), but 3 example values were given"),
        ((torch.rand(1, 3), 4), "example input 'ids' is a int, not a tensor"),
        ({"image": [1.0, 2.0]}, "example input 'image' is a list, not a tensor"),
        ("an image", "example inputs must be a tensor, a tuple or a dict of tensors, not str"),
    ],
    ids=["too-many", "a-number", "a-list", "a-string"],
)
def test_example_values_that_are_not_tensors_or_too_many_are_refused(values, message):
    with pytest.raises(InputSpecError) as caught:
        specs_from_values(values, _Pair())
    assert str(caught.value) == message and caught.value.exit_code == 2


# --- in_forward_order ---------------------------------------------------------------------------

IMAGE, IDS = InputSpec("image", (1, 3, 8, 8)), InputSpec("ids", (1, 5), "int64", (0, 99))


def test_inputs_are_put_in_forwards_order_whatever_order_they_were_given_in():
    assert in_forward_order(_Pair(), (IDS, IMAGE), registered=False) == (IMAGE, IDS)
    assert in_forward_order(_Pair(), (IMAGE, IDS), registered=False) == (IMAGE, IDS)


def test_one_input_named_input_is_the_shorthand_and_passes_first():
    shorthand = (InputSpec("input", (1, 4)),)
    assert in_forward_order(_Optional(), shorthand, registered=False) == shorthand


def test_a_registered_models_single_input_keeps_its_name():
    specs = (InputSpec("pixels", (1, 28, 28)),)
    assert in_forward_order(_Pair(), specs, registered=True) == specs
    with pytest.raises(InputSpecError, match="forward has no parameter 'pixels'"):  # the same, not registered
        in_forward_order(_Pair(), specs, registered=False)


def test_an_input_forward_does_not_take_is_refused_naming_its_inputs():
    extra = InputSpec("mask", (1, 5))
    with pytest.raises(InputSpecError) as caught:
        in_forward_order(_Pair(), (IMAGE, IDS, extra), registered=False)
    assert str(caught.value) == "forward has no parameter 'mask': its inputs are image, ids"


def test_forward_taking_star_args_takes_any_name_after_its_own():
    specs = (InputSpec("a", (1, 2)), InputSpec("b", (1, 2)))
    assert in_forward_order(_Star(), specs, registered=False) == specs


def test_a_missing_input_forward_needs_is_refused_with_the_option_to_give_it():
    with pytest.raises(InputSpecError) as caught:
        in_forward_order(_Pair(), (IMAGE,), registered=False)
    assert str(caught.value) == (
        "forward takes 'ids' too (its inputs are image, ids): give every one with "
        "--input NAME:SHAPE[:DTYPE[:LOW..HIGH]], e.g. --input ids:1,8"
    )


def test_parameters_with_defaults_may_be_left_out_or_skipped_over_and_keep_their_defaults():
    x, shift = InputSpec("x", (1, 4)), InputSpec("shift", (1, 4))
    assert in_forward_order(_Optional(), (x,), registered=False) == (x,)  # scale and shift keep their defaults
    assert in_forward_order(_Optional(), (shift, x), registered=False) == (x, shift)  # scale keeps its default
    keyed = by_name(_Optional(), ("x", "shift"))
    value, shift_value = torch.rand(1, 4), torch.full((1, 4), 3.0)
    # by position, shift would land in scale's place (x * 3); by name it is added and scale stays 1
    assert torch.equal(keyed(value, shift_value), _Optional()(value, shift=shift_value))
    assert not torch.equal(keyed(value, shift_value), _Optional()(value, shift_value))


def test_by_name_shares_the_models_parameters_and_keeps_their_names():
    model = _Pair()
    keyed = by_name(model, ("ids", "image"))
    assert [n for n, _ in keyed.named_parameters()] == ["embed.weight"]
    assert keyed.embed.weight is model.embed.weight and isinstance(keyed, _Pair)
    ids, image = torch.tensor([[1, 2]]), torch.rand(1, 3, 8, 8)
    assert torch.equal(keyed(ids, image), model(image, ids))
    assert by_name(model, ("image", "ids")) is model  # already forward's order: the model itself


def test_a_required_parameter_that_is_not_a_tensor_is_never_suggested_as_an_input():
    class Mode(nn.Module):
        def forward(self, x: torch.Tensor, mode: str):
            return x if mode == "same" else -x

    with pytest.raises(InputSpecError) as caught:
        in_forward_order(Mode(), (InputSpec("x", (1, 4)),), registered=False)
    assert "'mode' has no default and is not a tensor" in str(caught.value) and "--input" not in str(caught.value)


# --- export_example -----------------------------------------------------------------------------


def test_every_dynamic_axis_of_size_one_is_repeated_to_two_and_others_are_kept():
    spec = InputSpec("x", (1, 1, 1), dynamic=((0, "batch"), (1, "seq")))  # axis 2 is fixed at 1
    x = torch.rand(1, 1, 1)
    (arg,) = export_example({"x": x}, (spec,))
    assert arg.shape == (2, 2, 1)  # torch.export would specialise a dynamic size of 1 to a constant
    assert torch.equal(arg, x.expand(2, 2, 1))  # the example's own values, repeated


def test_an_example_without_size_one_dynamic_axes_is_passed_as_it_is():
    specs = (InputSpec("image", (3, 3, 8, 8)), InputSpec("ids", (3, 5), "int64", (0, 9), ((0, "batch"), (1, "seq"))))
    example = {"image": torch.rand(3, 3, 8, 8), "ids": torch.randint(0, 9, (3, 5))}
    args = export_example(example, specs)
    assert args[0] is example["image"] and args[1] is example["ids"]  # in the specs' order, untouched


# --- describe_outputs ---------------------------------------------------------------------------

SEQ = InputSpec("x", (2, 3, 4), dynamic=((0, "batch"), (1, "seq")))


def test_an_output_axis_that_follows_an_input_axis_is_named_by_its_label():
    example = {"x": torch.rand(2, 3, 4)}
    outputs = describe_outputs(_Sequence(), example, (SEQ,), None, "output")
    assert outputs == (
        OutputSpec("output_0", ("batch", 4), "float32"),  # the sequence summed away: only the batch moves it
        OutputSpec("output_1", ("batch", "seq"), "float32"),
        OutputSpec("output_2", (4,), "float32"),  # no input axis moves it
    )


def test_an_axis_not_declared_dynamic_stays_a_number_even_where_it_would_move():
    fixed_seq = InputSpec("x", (2, 3, 4))  # only the batch dynamic
    outputs = describe_outputs(_Sequence(), {"x": torch.rand(2, 3, 4)}, (fixed_seq,), None, "output")
    assert [o.shape for o in outputs] == [("batch", 4), ("batch", 3), (4,)]


def test_outputs_take_the_names_given_or_a_single_outputs_default():
    example = {"x": torch.rand(2, 3, 4)}
    named = describe_outputs(_Sequence(), example, (SEQ,), ("sums", "means", "ones"), "output")
    assert [o.name for o in named] == ["sums", "means", "ones"]
    (single,) = describe_outputs(nn.Identity(), example, (SEQ,), None, "logits")  # one tensor: the default name
    assert single == OutputSpec("logits", ("batch", "seq", 4), "float32")
    with pytest.raises(InputSpecError, match=r"--output-names gives 2 name\(s\), but forward returns 3 output\(s\)"):
        describe_outputs(_Sequence(), example, (SEQ,), ("a", "b"), "output")


class _Squeezed(nn.Module):
    def forward(self, x):  # (B, S, 4) -> squeezed: at S=1 the rank changes
        return x.mean(2).squeeze(1)


class _OnlyThree(nn.Module):
    def forward(self, x):
        if x.shape[1] != 3:
            raise ValueError("needs a sequence of 3")
        return x.sum(2)


def test_a_rank_that_moves_or_a_forward_that_refuses_other_sizes_leaves_the_shape_concrete():
    one = InputSpec("x", (2, 1, 4), dynamic=((0, "batch"), (1, "seq")))
    (squeezed,) = describe_outputs(_Squeezed(), {"x": torch.rand(2, 1, 4)}, (one,), None, "output")
    assert squeezed.shape == ("batch",)  # resizing seq to 2 changes the rank: seq is not named, verify says why
    (refused,) = describe_outputs(_OnlyThree(), {"x": torch.rand(2, 3, 4)}, (SEQ,), None, "output")
    assert refused.shape == ("batch", 3)  # the run with a longer seq failed: seq is not named (the batch is)


def test_an_output_axis_that_grows_by_a_multiple_of_an_input_axis_gets_a_label_of_its_own():
    (flat,) = describe_outputs(nn.Flatten(), {"x": torch.rand(2, 3, 4)}, (SEQ,), None, "output")
    # 3 x 4: seq moves it, but it is not seq long: dynamic (verify does not assume its size), not frozen at 12
    assert flat.shape == ("batch", "seq_derived")


def test_an_output_axis_that_equals_an_input_axis_is_named_after_it_and_a_fixed_one_stays_fixed():
    outputs = describe_outputs(_Sequence(), {"x": torch.rand(2, 3, 4)}, (SEQ,), None, "output")
    assert [o.shape for o in outputs] == [("batch", 4), ("batch", "seq"), (4,)]


@pytest.mark.parametrize(
    "module, got",
    [(lambda: _Returns(3), "int"), (lambda: _Returns((torch.ones(1), "text")), "str"), (lambda: _Returns(()), "none")],
    ids=["a-number", "a-string-among-tensors", "nothing"],
)
def test_forward_returning_anything_but_tensors_is_refused(module, got):
    with pytest.raises(InputSpecError) as caught:
        describe_outputs(module(), {"x": torch.rand(2, 3, 4)}, (SEQ,), None, "output")
    assert str(caught.value) == f"forward must return tensors (in a tuple, list or dict), got {got}"


class _Returns(nn.Module):
    def __init__(self, value) -> None:
        super().__init__()
        self.value = value

    def forward(self, x):  # noqa: ARG002
        return self.value
