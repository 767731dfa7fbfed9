"""The whole-output gates on arrays (scale, cosine, top-1, constant references, exact integers), and
exporters' C-level output kept off the terminal; nothing here exports. The models that must fail or
pass end to end are tests/catalogue.py, run by test_catalogue.py."""

from __future__ import annotations

import numpy as np

from exporter import VerifyConfig
from exporter.config import Tolerance
from exporter.verification.compare import OutputComparison

FLOAT32 = VerifyConfig().tolerance("float32")


# --- the gates, on arrays -------------------------------------------------------------------------------


def test_small_outputs_are_judged_against_their_own_scale():
    rng = np.random.default_rng(0)
    e = (rng.random((64, 10)) * 1e-6).astype(np.float32)  # logits well below float32's atol of 1e-5
    sound = OutputComparison.from_arrays("logits", e, e + np.float32(1e-12), FLOAT32)
    assert sound.passed, sound.reasons
    for name, broken in (("negated", -e), ("zeros", np.zeros_like(e)), ("scaled", e * np.float32(1.2))):
        cmp = OutputComparison.from_arrays("logits", e, broken, FLOAT32)
        assert not cmp.passed and any("x the reference's RMS" in r for r in cmp.reasons), name
        assert cmp.mismatched_elements == 0  # the element rule alone would have passed it


def test_cosine_and_top1_are_gates_for_float_outputs():
    rng = np.random.default_rng(1)
    e = rng.normal(size=(200, 10)).astype(np.float32)
    swapped = e.copy()
    swapped[:, [0, 1]] = swapped[:, [1, 0]]  # same values, other classes
    loose = Tolerance(atol=10.0, rtol=0.0, min_cosine=0.9999)  # elements pass: only cosine can judge
    assert OutputComparison.from_arrays("logits", e, swapped, loose).reasons == [
        f"cosine similarity {OutputComparison.from_arrays('logits', e, swapped, loose).cosine_similarity:.6f} "
        "is below 0.9999"
    ]
    top1 = Tolerance(atol=1e-5, rtol=0.0, top1=True)  # near ties within 1e-5 of the maximum are forgiven
    cmp = OutputComparison.from_arrays("logits", e, swapped, top1)
    assert any("top-1 class differs on" in r and "not near ties" in r for r in cmp.reasons)
    near = e.copy()
    near[:, 1] = near[:, 0] - 1e-7  # a near tie in the reference: a flip there is noise, not a fault
    flipped = near.copy()
    flipped[:, 1] += 2e-7
    assert OutputComparison.from_arrays("logits", near, flipped, FLOAT32).passed


def test_a_constant_reference_fails_closed_and_integers_compare_exactly():
    constant = np.zeros((8, 10), np.float32)
    cmp = OutputComparison.from_arrays("logits", constant, constant.copy(), FLOAT32)
    assert not cmp.passed and "constant (0 everywhere, 80 values): there is nothing to judge" in cmp.reasons[0]
    ids = np.arange(100, dtype=np.int64) * 100_000
    exact = VerifyConfig(atol=1.0, rtol=1.0).tolerance("int64")  # a tolerance given by hand is ignored for ids
    assert OutputComparison.from_arrays("ids", ids, ids.copy(), exact).passed
    off = ids.copy()
    off[7] += 5
    assert not OutputComparison.from_arrays("ids", ids, off, exact).passed


def test_tolerances_given_by_hand_replace_the_whole_output_gates():
    given = VerifyConfig(atol=1e-3).tolerance("float32")
    assert given.scale is None and given.min_cosine is None and given.top1
    assert VerifyConfig().tolerance("float32").scale == 1e-3


# --- one paragraph, never a dump --------------------------------------------------------------------------


def test_what_exporters_print_at_the_c_level_is_kept_off_the_terminal(capfd):
    import os

    from exporter.formats.capture import LAST_OUTPUT, quiet_export

    kept: list[str] = []
    with quiet_export(kept):
        os.write(2, b"graph(%x : Float(1, 784)):\n  %1 = aten::linear(...)\n")  # as the legacy exporter dumps IR
        os.write(1, b"guard failed at ...\n")
    out, err = capfd.readouterr()
    assert "graph(" not in err and "guard failed" not in out
    assert "aten::linear" in LAST_OUTPUT[0] and "guard failed" in LAST_OUTPUT[0]  # kept for a log, not lost
    os.write(2, b"after\n")
    assert "after" in capfd.readouterr().err  # and the terminal is back afterwards
