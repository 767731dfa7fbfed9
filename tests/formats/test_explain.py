"""Explaining a torch.export failure (formats/explain.py): the bounds torch suggests, the note an export
records for them, one paragraph naming the step and the user's line, and the user's frame of a stack.

The errors are synthetic: their text is what torch.export writes, so nothing is exported here.
"""

from __future__ import annotations

import pytest

from exporter.formats.explain import bound_note, explain_torch_export, strip_ansi, suggested_bounds, user_line

FALLBACK = ", or leave pt2 out of --format"
USER_FRAME = 'File "/home/me/project/net.py", line 12, in forward\n    if x.sum() > 0:  # the branch\n'
TORCH_FRAME = (
    'File "/venv/lib/python3.11/site-packages/torch/nn/modules/linear.py", line 134, in forward\n'
    "    return F.linear(input, self.weight, self.bias)\n"
)


class GuardOnDataDependentSymNode(RuntimeError):
    """Named as torch's own: the explanation reads the kind of the root cause from its class name."""


class ConstraintViolationError(RuntimeError):
    pass


# --- suggested_bounds and bound_note ------------------------------------------------------------


def test_only_bounds_are_taken_from_torchs_suggested_fixes():
    bounded = RuntimeError(
        "Constraints violated (batch)!\nSuggested fixes:\n  batch = Dim('batch', max=65535)\n\nThe error"
    )
    assert suggested_bounds(bounded) == {"batch": (None, 65535)}
    both = RuntimeError("x\nSuggested fixes:\n  seq = Dim('seq', min=3, max=512)\n  batch = Dim('batch', max=9)\n")
    assert suggested_bounds(both) == {"seq": (3, 512), "batch": (None, 9)}
    frozen = RuntimeError("x\nSuggested fixes:\n  batch = 4\n")  # a constant is a real failure, never a bound
    assert suggested_bounds(frozen) is None
    mixed = RuntimeError("x\nSuggested fixes:\n  batch = Dim('batch', max=9)\n  seq = 32\n")
    assert suggested_bounds(mixed) is None
    assert suggested_bounds(RuntimeError("no suggestion at all")) is None
    wrapped = RuntimeError("outer")
    wrapped.__cause__ = bounded
    assert suggested_bounds(wrapped) == {"batch": (None, 65535)}


def test_a_suggestion_behind_ansi_colours_is_still_read():
    coloured = RuntimeError("x\nSuggested fixes:\n  \x1b[1mbatch = Dim('batch', max=9)\x1b[0m\n")
    assert suggested_bounds(coloured) == {"batch": (None, 9)}


def test_a_dim_under_another_label_or_without_a_bound_is_no_bound():
    assert suggested_bounds(RuntimeError("x\nSuggested fixes:\n  batch = Dim('seq', max=9)\n")) is None
    assert suggested_bounds(RuntimeError("x\nSuggested fixes:\n  batch = Dim('batch')\n")) is None


@pytest.mark.parametrize(
    "bounds, text",
    [
        ({"batch": (None, 65535)}, "batch <= 65535"),
        ({"seq": (3, 512), "batch": (None, 9)}, "batch <= 9, seq >= 3 and seq <= 512"),  # sorted by label
        ({"seq": (2, None)}, "seq >= 2"),
    ],
    ids=["upper", "two-labels", "lower"],
)
def test_the_bound_note_states_each_bound_and_why_other_sizes_fail(bounds, text):
    assert bound_note(bounds) == (
        f"ExportWarning: the program holds only for {text}: forward, or a kernel it calls on this device "
        "(cuDNN limits a convolution's batch to 65535), guards it; other sizes will fail"
    )


# --- explain_torch_export -----------------------------------------------------------------------


def _wrapped(root: BaseException) -> RuntimeError:
    """``root`` as torch.export raises it: the cause of a wrapping error whose text holds the stack."""
    outer = RuntimeError("Failed while tracing\n" + USER_FRAME + TORCH_FRAME)
    outer.__cause__ = root
    return outer


def test_a_branch_on_tensor_values_names_the_step_the_users_line_and_the_fix():
    error = _wrapped(GuardOnDataDependentSymNode("Could not guard on data-dependent expression u0 > 0"))
    assert explain_torch_export(error, "torch.export", FALLBACK) == (
        "torch.export failed: forward branches on tensor values (at net.py:12: `if x.sum() > 0:`), which "
        "torch.export cannot capture. Use torch.where or torch.cond, or leave pt2 out of --format"
    )


def test_a_frozen_batch_says_to_keep_it_symbolic():
    error = _wrapped(ConstraintViolationError("Constraints violated (batch)! batch was specialized to 4"))
    message = explain_torch_export(error, "ONNX export (dynamo exporter, torch.export step)", FALLBACK)
    assert message.startswith("ONNX export (dynamo exporter, torch.export step) failed: forward fixes the batch size")
    assert "(at net.py:12: `if x.sum() > 0:`)" in message and "x.reshape(x.shape[0], -1)" in message


def test_a_range_guard_torch_could_not_bound_points_to_the_guard():
    error = RuntimeError("Not all values of batch in the specified range satisfy the generated guard 4 <= batch")
    message = explain_torch_export(error, "torch.export", FALLBACK)
    assert message == (
        "torch.export failed: forward limits a dynamic size to a range that torch.export could not turn into a "
        "bound: check the guard in the message (TORCH_LOGS=+dynamic)"
    )  # no call site in the text: no "(at ...)"


def test_any_other_failure_gives_the_roots_first_line_without_colours_and_the_next_step():
    error = _wrapped(NotImplementedError("\x1b[31maten::weird_op\x1b[0m has no meta kernel\nand a page more"))
    assert explain_torch_export(error, "torch.export", FALLBACK) == (
        "torch.export failed: aten::weird_op has no meta kernel (at net.py:12: `if x.sum() > 0:`). "
        "leave pt2 out of --format"
    )


# --- strip_ansi and user_line -------------------------------------------------------------------


def test_strip_ansi_removes_colour_codes_and_keeps_the_text():
    assert strip_ansi("\x1b[1;31merror\x1b[0m: \x1b[4mbatch\x1b[0m") == "error: batch"
    assert strip_ansi("plain [text] stays") == "plain [text] stays"


def test_user_line_is_the_innermost_frame_outside_torch_without_its_comment():
    helper = 'File "/home/me/project/layers.py", line 30, in block\n    return self.fc(x)\n'
    trace = USER_FRAME + helper + TORCH_FRAME  # outermost first, as a traceback
    assert user_line(trace) == "layers.py:30: return self.fc(x)"
    assert user_line(USER_FRAME + TORCH_FRAME) == "net.py:12: if x.sum() > 0:"  # the comment left out


@pytest.mark.parametrize(
    "trace",
    [None, "", TORCH_FRAME, TORCH_FRAME.replace("/", "\\")],
    ids=["none", "empty", "torch-only", "torch-on-windows"],
)
def test_user_line_is_empty_when_every_frame_is_torchs_or_there_is_none(trace):
    assert user_line(trace) == ""
