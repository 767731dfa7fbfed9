"""The ONNX Runtime runner (runners/onnxruntime.py): its session, providers, settings and opset probe,
IO binding in ``prepare``, and ``module_outputs`` from the dynamo exporter's ``name_scopes``.

The ONNX files are hand-written graphs (``helpers.onnx_proto``) holding the small module's weights.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from exporter.errors import CannotOpenUp, UsageError
from exporter.notes import NOTE, Note
from exporter.runners import eager, runner_for
from exporter.runners.onnxruntime import check_opset, runtime_max_opset, session, tuned_settings

from .helpers import (
    CPU,
    OUTPUTS,
    SPECS,
    batch_feed,
    checked,
    interface_of,
    make_runner,
    onnx_bytes,
)

# --- prepare ------------------------------------------------------------------------------------


def test_the_onnx_prepare_writes_into_the_same_output_arrays_on_every_call(model, artifacts):
    feed = batch_feed(4)
    with make_runner("onnx", model, artifacts, threads=1) as runner:
        call = runner.prepare(feed)
        buffer = call()["logits"]
        before = buffer.copy()
        assert call()["logits"] is buffer  # no new array per call
        feed["input"] *= 2  # the feed is rebound on every call, so the next call reads the new values ...
        after = call()["logits"]
        assert after is buffer and not np.array_equal(buffer, before)  # ... into the same array
        np.testing.assert_array_equal(buffer, runner.infer(feed)["logits"])
        other = runner.prepare(batch_feed(2))()["logits"]  # another prepared feed has arrays of its own
    assert other is not buffer and other.shape == (2, 3) and buffer.shape == (4, 3)


# --- providers ----------------------------------------------------------------------------------


def test_the_onnx_runner_notes_its_providers_and_a_missing_cuda_provider(model, artifacts):
    with make_runner("onnx", model, artifacts) as runner:
        assert runner.notes == [Note.info("execution providers: CPUExecutionProvider")]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has a CUDA provider")
    asked = runner_for("onnx", checked(artifacts["onnx"]), {}, torch.device("cuda"), interface_of(SPECS, OUTPUTS))
    with asked:
        pass
    assert any(
        "no CUDA provider here" in n.text and "it ran on the CPU" in n.text and n.level == NOTE for n in asked.notes
    )


# --- settings and opsets ------------------------------------------------------------------------


@pytest.mark.parametrize("threads", [1, 2])
def test_the_tuned_onnx_runner_reports_tuned_settings_and_its_session_uses_them(model, artifacts, threads):
    with make_runner("onnx", model, artifacts, threads) as runner:
        settings = runner.settings()
        options = runner.session.get_session_options()
    assert settings == tuned_settings(threads)
    assert options.intra_op_num_threads == threads and options.inter_op_num_threads == 1
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "1"


def test_the_default_onnx_runner_reports_defaults_not_tuned_settings(model, artifacts):
    runner = make_runner("onnx", model, artifacts)
    assert runner.settings() == {"providers": [], "defaults": True}  # no session yet
    with runner:
        settings = runner.settings()
        options = runner.session.get_session_options()
    assert settings == {"providers": ["CPUExecutionProvider"], "defaults": True}
    assert settings != tuned_settings(options.intra_op_num_threads)
    assert options.intra_op_num_threads == 0  # ONNX Runtime picks its own thread count


def test_the_newest_loadable_opset_is_accepted_and_the_next_refused_before_export():
    newest = runtime_max_opset()
    check_opset(newest)
    with pytest.raises(UsageError, match=rf"--opset {newest + 1} is newer than onnxruntime .*\(up to opset {newest}\)"):
        check_opset(newest + 1)


def test_a_file_whose_opset_is_too_new_gives_one_clear_error_and_the_newest_loads(model):
    newest = runtime_max_opset()
    session(str(checked(onnx_bytes(model, opset=newest)).path), CPU)
    with pytest.raises(RuntimeError, match=f"cannot load opset {newest + 1} .* export with --opset {newest}"):
        session(str(checked(onnx_bytes(model, opset=newest + 1)).path), CPU)


# --- lean sessions and declared shapes ----------------------------------------------------------


def _config_entry(options: ort.SessionOptions, key: str) -> str | None:
    """A session config entry, or None when it was never set (ONNX Runtime raises for an unset key)."""
    try:
        return options.get_session_config_entry(key)
    except RuntimeError:
        return None


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "default"])
def test_a_lean_session_turns_weight_prepacking_off_and_says_so(artifacts, lean):
    runner = runner_for("onnx", checked(artifacts["onnx"]), {}, CPU, interface_of(SPECS, OUTPUTS), lean=lean)
    with runner:
        entry = _config_entry(runner.session.get_session_options(), "session.disable_prepacking")
        notes = [n.text for n in runner.notes]
        assert runner.infer(batch_feed(2))["logits"].shape == (2, 3)
    assert entry == ("1" if lean else None)
    assert any(text.startswith("weight prepacking off") for text in notes) is lean


def test_the_declared_output_shapes_are_the_files_own_with_symbolic_sizes_as_none(model, artifacts):
    with make_runner("onnx", model, artifacts) as runner:
        assert runner.declared_shapes() == {"logits": [None, 3]}  # ["batch", 3] in the file


# --- module_outputs -----------------------------------------------------------------------------

SCOPES = {"hidden": "fc1", "logits": "fc2"}  # what the dynamo exporter records: fc1 writes hidden, fc2 logits


def test_module_outputs_with_intermediates_are_the_last_tensor_each_modules_scope_writes(model):
    file = checked(onnx_bytes(model, scopes=SCOPES))
    feed = batch_feed(3, seed=8)
    runner = runner_for("onnx", file, {}, CPU, interface_of(SPECS, OUTPUTS), intermediates=True)
    with runner:
        beside = sorted(p.name for p in file.path.parent.iterdir())
        outputs, lines = runner.module_outputs(feed)
        declared = runner.infer(feed)
    with eager(model, CPU, interface_of(SPECS, OUTPUTS)) as reference:
        expected, _ = reference.module_outputs(feed)
    assert beside == ["artifact"]  # the graph with the extra outputs was removed once the session had read it
    assert list(declared) == ["logits"]  # infer still returns only the declared outputs
    assert sorted(outputs) == ["", "fc1", "fc2"]
    for path in outputs:
        np.testing.assert_allclose(outputs[path], expected[path], rtol=1e-5, atol=1e-6, err_msg=path)
    assert not np.allclose(outputs["fc1"][:, :3], outputs["fc2"])  # each scope has its own tensor
    # the user's line from each node's stack trace, without its comment; the root takes its last node's
    assert lines == {"": "net.py:7: return self.fc2(x)", "fc1": "net.py:7: return self.fc1(x)",
                     "fc2": "net.py:7: return self.fc2(x)"}  # fmt: skip


def test_a_graph_without_name_scopes_cannot_open_up_and_leaves_nothing_behind(model, artifacts):
    file = checked(artifacts["onnx"])  # hand-written: no node carries pkg.torch.onnx.name_scopes
    runner = runner_for("onnx", file, {}, CPU, interface_of(SPECS, OUTPUTS), intermediates=True)
    with pytest.raises(CannotOpenUp, match=r"carry no module names \(pkg.torch.onnx.name_scopes\)"):
        runner.activate()
    assert not runner.is_active and sorted(p.name for p in file.path.parent.iterdir()) == ["artifact"]
    with make_runner("onnx", model, artifacts) as plain:  # the same file without intermediates runs
        assert plain.infer(batch_feed(2))["logits"].shape == (2, 3)


def test_module_outputs_of_a_runner_opened_without_intermediates_is_refused(model):
    file = checked(onnx_bytes(model, scopes=SCOPES))  # the scopes are there, but the session has no extra outputs
    runner = runner_for("onnx", file, {}, CPU, interface_of(SPECS, OUTPUTS))
    with runner, pytest.raises(RuntimeError, match="need a runner opened with intermediates=True") as caught:
        runner.module_outputs(batch_feed(2))
    assert not isinstance(caught.value, CannotOpenUp)  # the caller's mistake, not the artifact's limit


# --- Ctrl-C and --timeout: a run that never ends is stopped (issue 24) -----------------------------------


def loop_model() -> bytes:
    """A model of the mlp's interface whose ONNX Loop runs 2**62 times: it never ends on its own."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Identity", ["v_in"], ["v_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.FLOAT, None),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None),
        ],
    )
    nodes = [
        helper.make_node("Loop", ["trips", "cond", "input"], ["looped"], body=body),
        helper.make_node("Flatten", ["looped"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "w"], ["logits"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(2**62, np.int64), "trips"),
        numpy_helper.from_array(np.array(True), "cond"),
        numpy_helper.from_array(np.zeros((784, 10), np.float32), "w"),
    ]
    graph = helper.make_graph(
        nodes,
        "forever",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()


def test_a_run_that_never_ends_is_stopped_by_a_signal_and_its_worker_ends():
    import signal
    import threading

    import numpy as np
    import onnxruntime as ort

    from exporter.runners.onnxruntime import stoppable_run

    session = ort.InferenceSession(loop_model(), providers=["CPUExecutionProvider"])

    def interrupt(_signum, _frame):
        raise KeyboardInterrupt  # what Ctrl-C raises in the main thread

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with pytest.raises(KeyboardInterrupt):
            stoppable_run(session, ["logits"], {"input": np.zeros((1, 28, 28), np.float32)})
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert not [
        t for t in threading.enumerate() if t.name == "onnxruntime-run" and t.is_alive()
    ]  # RunOptions.terminate ended it


def test_a_run_that_ends_gives_its_values_and_its_error_through_the_worker():
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from exporter.runners.onnxruntime import stoppable_run

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (values,) = stoppable_run(session, ["y"], {"x": np.array([-1.0, 2.0], np.float32)})
    assert values.tolist() == [0.0, 2.0]
    with pytest.raises(Exception, match="x"):  # a wrong feed: ONNX Runtime's own error, raised here
        stoppable_run(session, ["y"], {"x": np.zeros(3, np.int64)})
