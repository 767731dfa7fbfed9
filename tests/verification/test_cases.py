from exporter.interface import InputSpec
from exporter.verification.cases import Case, default_batch_sizes, default_cases


def test_default_batch_sizes_cover_one_the_export_batch_and_64():
    assert default_batch_sizes(1) == (1, 64)
    assert default_batch_sizes(8) == (1, 8, 64)


def test_default_cases_vary_every_other_dynamic_axis_shorter_and_longer():
    cases = default_cases((1, 64), {"seq": 32})
    assert cases[:2] == [Case(1, (("seq", 32),)), Case(64, (("seq", 32),))]
    assert {c.sizes for c in cases[2:]} == {(("seq", 16),), (("seq", 64),)}
    assert default_cases((1, 64), {}) == [Case(1), Case(64)]  # the seed's cases: batch only


def test_a_case_resizes_only_the_dynamic_axes_it_names():
    spec = InputSpec("ids", (2, 16), "int64", (0, 99), dynamic=((0, "batch"), (1, "seq")))
    assert Case(3, (("seq", 5),)).shape(spec) == (3, 5)
    assert Case(3).shape(spec) == (3, 16)  # no size for seq: the example's
    fixed = InputSpec("x", (2, 16), dynamic=())  # no dynamic axes: nothing resized
    assert Case(3, (("seq", 5),)).shape(fixed) == (2, 16)


def test_a_case_label_names_its_sizes_and_probe():
    assert Case(4).label == "4"
    assert Case(2, (("seq", 7),)).label == "2 (seq=7)"
    assert "in `x`" in Case(1, probe="zeros.x").label and Case(1, probe="size").value_probe is None
