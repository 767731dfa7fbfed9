"""interface: named inputs (validated as they are made), the --input/--dynamic/--input-shape parsers, the
manifest's form of an input, and forward's outputs flattened and named."""

from __future__ import annotations

import pytest

from exporter.errors import InputSpecError, ManifestError
from exporter.interface import (
    MAX_EXPORT_BATCH,
    MAX_SAMPLE_ELEMENTS,
    InputSpec,
    Interface,
    OutputSpec,
    cast_floats,
    flatten,
    output_names,
    parse_dynamic,
    parse_input,
    parse_shape,
    with_dynamic,
)

# --- InputSpec ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"name": "1st"}, "must be an identifier"),
        ({"name": "my-input"}, "must be an identifier"),
        ({"name": ""}, "must be an identifier"),
        ({"shape": ()}, "needs positive sizes"),
        ({"shape": (1, 0)}, "needs positive sizes"),
        ({"shape": (1, -3)}, "needs positive sizes"),
        ({"shape": (1, True)}, "needs positive sizes"),
        ({"shape": (1, 2.0)}, "needs positive sizes"),
        ({"shape": (MAX_EXPORT_BATCH + 1, 4)}, "more than this tool exports"),
        ({"shape": (1, MAX_SAMPLE_ELEMENTS + 1)}, "more than this tool verifies"),
        ({"dtype": "complex64"}, "is not one of"),
        ({"dtype": "int64"}, "needs the range its values come from"),
        ({"dtype": "uint8"}, "needs the range"),
        ({"value_range": (2.0, 1.0)}, "LOW <= HIGH"),
        ({"value_range": (0.0, float("inf"))}, "must be finite"),
        ({"value_range": (1.0, 1.0)}, "a float range needs LOW < HIGH"),
        ({"dynamic": ((3, "seq"),)}, "has no axis 3"),
        ({"dynamic": ((1, "my seq"),)}, "must be an identifier"),
    ],
    ids=lambda v: v if isinstance(v, str) else ",".join(f"{k}={v!r}" for k, v in v.items()),
)
def test_an_input_spec_refuses_what_cannot_be_fed(fields, message):
    with pytest.raises(InputSpecError, match=message) as caught:
        InputSpec(**{"name": "x", "shape": (1, 4), **fields})
    assert caught.value.exit_code == 2


def test_the_integer_range_error_shows_the_option_to_write():
    with pytest.raises(InputSpecError, match=r"--input ids:1,32:int64:0\.\.999"):
        InputSpec("ids", (1, 32), "int64")


@pytest.mark.parametrize(
    "spec",
    [
        InputSpec("x", (1, 4)),
        InputSpec("_x2", (MAX_EXPORT_BATCH, 1)),
        InputSpec("ids", (1, 32), "int64", (0, 999)),
        InputSpec("const", (1, 1), "int8", (5, 5)),  # an integer range may hold one value
        InputSpec("mask", (1, 8), "bool"),  # bool needs no range
        InputSpec("x", (2, 5, 4), "float16", (-1.0, 1.0), ((0, "batch"), (1, "seq"))),
        InputSpec("x", (1, 4), dynamic=()),  # no dynamic axis at all
    ],
    ids=repr,
)
def test_an_input_spec_takes_what_can_be_fed(spec):
    assert spec.batch == spec.shape[0] and spec.axes == dict(spec.dynamic)


def test_low_high_is_the_range_given_else_0_1_and_0_1_for_bool():
    assert InputSpec("x", (1, 4)).low_high == (0.0, 1.0)
    assert InputSpec("x", (1, 4), value_range=(-2.0, 2.0)).low_high == (-2.0, 2.0)
    assert InputSpec("m", (1, 4), "bool").low_high == (0, 1)


def test_describe_says_what_is_drawn_with_dynamic_axes_by_label():
    ids = InputSpec("ids", (1, 32), "int64", (0, 999), ((0, "batch"), (1, "seq")))
    assert ids.describe() == "ids int64 (batch, seq) uniform integers in [0, 999]"
    assert InputSpec("x", (1, 3), dynamic=()).describe() == "x float32 (1, 3) uniform in [0, 1)"
    assert InputSpec("m", (1, 2), "bool").describe() == "m bool (batch, 2) False/True, half each"


# --- the manifest's form -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        InputSpec("x", (1, 28, 28)),
        InputSpec("ids", (4, 32), "int64", (0, 999), ((0, "batch"), (1, "seq"))),
        InputSpec("x", (1, 4), dynamic=()),
    ],
    ids=["float", "ids-with-seq", "static"],
)
def test_an_input_spec_round_trips_through_the_manifest(spec):
    data = spec.to_manifest()
    assert set(data) == {"name", "shape", "dtype", "range", "dynamic_axes"}
    assert InputSpec.from_manifest(data) == spec


def test_a_manifest_entry_without_dynamic_axes_has_the_batch_dynamic_and_an_empty_one_none():
    data = {"name": "x", "shape": [1, 4], "dtype": "float32"}
    assert InputSpec.from_manifest(data).dynamic == ((0, "batch"),)  # schema 1 folders record none
    assert InputSpec.from_manifest({**data, "dynamic_axes": {}}).dynamic == ()


@pytest.mark.parametrize(
    "data, message",
    [
        (["x", [1, 4]], "an input needs name, shape"),
        ({"shape": [1, 4], "dtype": "float32"}, "an input needs name, shape"),
        ({"name": "x", "dtype": "float32"}, "an input needs name, shape"),
        ({"name": "x", "shape": [1, 4]}, "an input needs name, shape"),
        ({"name": "x", "shape": "1,4", "dtype": "float32"}, "shape is not a list of integers"),
        ({"name": "x", "shape": [1, True], "dtype": "float32"}, "shape is not a list of integers"),
        ({"name": "x", "shape": [1, 4], "dtype": "float32", "range": [0]}, "an input needs name, shape"),
        ({"name": "x", "shape": [1, 4], "dtype": "float32", "dynamic_axes": {"a": "b"}}, "an input needs"),
        ({"name": "x", "shape": [1, 4], "dtype": "complex64"}, "is not one of"),
        ({"name": "x", "shape": [10**12, 4], "dtype": "float32"}, "more than this tool exports"),
    ],
    ids=["list", "no-name", "no-shape", "no-dtype", "shape-text", "shape-bool", "range", "axes", "dtype", "batch"],
)
def test_a_bad_manifest_entry_is_a_manifest_error_naming_the_file(data, message):
    with pytest.raises(ManifestError, match=message) as caught:
        InputSpec.from_manifest(data, where="folder/manifest.json")
    assert str(caught.value).startswith("folder/manifest.json: ") and caught.value.exit_code == 2


def test_an_output_spec_records_its_name_shape_and_dtype():
    assert OutputSpec("logits", ("batch", 10)).to_manifest() == {
        "name": "logits",
        "shape": ["batch", 10],
        "dtype": "float32",
    }


# --- parsers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("x:1,28,28", InputSpec("x", (1, 28, 28))),
        ("x:1x4", InputSpec("x", (1, 4))),
        ("x:2,4:", InputSpec("x", (2, 4))),  # an empty dtype is float32
        ("ids:1,32:int64:0..999", InputSpec("ids", (1, 32), "int64", (0, 999))),
        ("x:1,4:float16:-1.5..2e1", InputSpec("x", (1, 4), "float16", (-1.5, 20.0))),
        ("mask:1,8:bool", InputSpec("mask", (1, 8), "bool")),
    ],
)
def test_parse_input_reads_name_shape_dtype_and_range(text, expected):
    assert parse_input(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("x", "is not NAME:SHAPE"),
        ("x:1,4:float32:0..1:extra", "is not NAME:SHAPE"),
        ("x:1,a", "not a list of integers"),
        ("x:1,4:float32:0-1", "the range must be LOW..HIGH"),
        ("x:1,4:float32:a..b", "the range must be LOW..HIGH"),
        ("x:1,4:float32:1.2.3..4", "the range must be LOW..HIGH"),
        ("ids:1,32:int64", "needs the range"),
        ("x:1,4:float64x", "is not one of"),
        ("2x:1,4", "must be an identifier"),
    ],
)
def test_parse_input_refuses_anything_else(text, message):
    with pytest.raises(InputSpecError, match=message):
        parse_input(text)


@pytest.mark.parametrize(
    "text, expected", [("ids:1:seq", ("ids", 1, "seq")), ("ids:2", ("ids", 2, "ids_2")), ("x:10:t", ("x", 10, "t"))]
)
def test_parse_dynamic_reads_name_axis_and_label(text, expected):
    assert parse_dynamic(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [("ids:1:seq:1..512", ("ids", 1, "seq", (1, 512))), ("x:0:batch:2..9", ("x", 0, "batch", (2, 9))),
     ("x:0::1..9", ("x", 0, "batch", (1, 9))), ("ids:1::4..4", ("ids", 1, "ids_1", (4, 4)))],
)  # fmt: skip
def test_parse_dynamic_reads_the_size_range_it_is_served_at(text, expected):
    assert parse_dynamic(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("ids", "is not NAME:AXIS"),
        ("ids:a:seq", "is not NAME:AXIS"),
        ("ids:-1", "is not NAME:AXIS"),
        ("ids:1:seq:1..4:more", "is not NAME:AXIS"),
        ("ids:1:seq:more", "the size range must be MIN..MAX"),
        ("ids:1:seq:0..4", "1 <= MIN <= MAX"),
        ("ids:1:seq:9..4", "1 <= MIN <= MAX"),
        ("ids:1:seq:1..99999999", "1 <= MIN <= MAX"),
        ("ids:0:batch", "axis 0 is the batch"),
        ("ids:0:seq:1..4", "axis 0 is the batch"),
    ],
)
def test_parse_dynamic_refuses_anything_else(text, message):
    with pytest.raises(InputSpecError, match=message):
        parse_dynamic(text)


@pytest.mark.parametrize(
    "text, expected", [("1,28,28", (1, 28, 28)), (" 2 , 3 ", (2, 3)), ("1x3x32x32", (1, 3, 32, 32))]
)
def test_parse_shape_reads_integers_batch_first(text, expected):
    assert parse_shape(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("1,x,28", "not a list of integers"),
        ("", "not a list of integers"),
        ("28", "needs a batch dimension"),
        ("1,0", "positive sizes"),
        ("1,-2", "positive sizes"),
        ("1,100000,100000", "larger than this tool exports"),
        (f"{MAX_EXPORT_BATCH + 1},4", "larger than this tool exports"),
    ],
)
def test_parse_shape_refuses_anything_else(text, message):
    with pytest.raises(InputSpecError, match=message):
        parse_shape(text)


def test_parse_shape_takes_one_dimension_only_when_asked():
    assert parse_shape("7", minimum_dims=1) == (7,)
    with pytest.raises(InputSpecError):
        parse_shape("7")


# --- with_dynamic and cast_floats ----------------------------------------------------------------------


def test_with_dynamic_adds_axes_to_the_inputs_named_and_keeps_the_batch():
    ids, image = InputSpec("ids", (1, 32), "int64", (0, 9)), InputSpec("image", (1, 3, 8, 8))
    got = with_dynamic((ids, image), [("ids", 1, "seq"), ("image", 3, "width"), ("image", 2, "height")])
    assert got[0].dynamic == ((0, "batch"), (1, "seq"))
    assert got[1].dynamic == ((0, "batch"), (2, "height"), (3, "width"))  # sorted by axis
    assert with_dynamic((ids,), []) == (ids,)


def test_with_dynamic_naming_an_unknown_input_lists_the_inputs():
    specs = (InputSpec("ids", (1, 32), "int64", (0, 9)), InputSpec("mask", (1, 32), "bool"))
    with pytest.raises(InputSpecError, match="--dynamic names input 'tokens', but the inputs are ids, mask"):
        with_dynamic(specs, [("tokens", 1, "seq")])


def test_with_dynamic_refuses_an_axis_the_input_does_not_have():
    with pytest.raises(InputSpecError, match="has no axis 2"):
        with_dynamic((InputSpec("x", (1, 4)),), [("x", 2, "seq")])


def test_cast_floats_changes_only_float_inputs():
    specs = (InputSpec("x", (1, 4)), InputSpec("ids", (1, 2), "int64", (0, 9)), InputSpec("m", (1, 2), "bool"))
    cast = cast_floats(specs, "bfloat16")
    assert [s.dtype for s in cast] == ["bfloat16", "int64", "bool"]
    assert cast_floats(specs, None) is specs


# --- outputs -----------------------------------------------------------------------------------------


def test_flatten_gives_every_leaf_in_order_with_dotted_paths():
    assert flatten("t") == [("", "t")]
    assert flatten(("a", "b")) == [("0", "a"), ("1", "b")]
    assert flatten({"logits": "l", "aux": ["x", ("y", "z")]}) == [
        ("logits", "l"),
        ("aux.0", "x"),
        ("aux.1.0", "y"),
        ("aux.1.1", "z"),
    ]
    assert flatten([]) == [] and flatten({}) == []


@pytest.mark.parametrize(
    "value, names",
    [
        ("tensor", ("output",)),
        (("a", "b"), ("output_0", "output_1")),
        (["a", ("b", "c")], ("output_0", "output_1.0", "output_1.1")),
        ({"logits": "l", "embedding": "e"}, ("logits", "embedding")),
        ({"logits": "l", "aux": ("x", "y")}, ("logits", "aux.0", "aux.1")),
        (("only",), ("output_0",)),  # a one-tuple is still a tuple
    ],
    ids=["tensor", "tuple", "nested", "dict", "nested-dict", "one-tuple"],
)
def test_output_names_are_the_paths_of_forwards_outputs(value, names):
    assert output_names(value) == names


def test_a_single_output_takes_the_name_given():
    assert output_names("tensor", single="logits") == ("logits",)
    assert output_names(("tensor",), single="logits") == ("output_0",)


def test_an_interface_names_its_inputs_outputs_and_labels_other_than_the_batch():
    interface = Interface(
        inputs=(
            InputSpec("ids", (2, 16), "int64", (0, 9), ((0, "batch"), (1, "seq"))),
            InputSpec("mask", (2, 16), "bool", dynamic=((0, "batch"), (1, "seq"))),
            InputSpec("image", (2, 3, 8, 8), dynamic=((0, "batch"), (3, "width"))),
        ),
        outputs=(OutputSpec("logits", ("batch", 10)), OutputSpec("aux.0")),
    )
    assert interface.input_names == ("ids", "mask", "image")
    assert interface.output_names == ("logits", "aux.0")
    assert interface.labels == {"seq": 16, "width": 8}  # each label once, with its size in the example
    assert Interface(inputs=(InputSpec("x", (4, 3)),)).labels == {}
