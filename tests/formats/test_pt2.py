"""pt2 (formats/pt2.py): torch.export's program, every dynamic axis kept dynamic, or bounded where forward
guards it; what torch.export refuses becomes one paragraph naming the user's line.

The fast tests call the format's ``export`` on small modules; the slow ones go through ``exporter.export``
with the models of tests/catalogue.py, as a user would.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from exporter import ExportConfig, export
from exporter.errors import ExportFailedError
from exporter.formats import ExportSpec, pt2
from exporter.formats.explain import bound_note

from ..conftest import BROKEN

SPEC = ExportSpec(input_names=("x",), output_names=("logits",), dynamic=({0: "batch"},))


class _Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 3)

    def forward(self, x):  # (B, 6) -> (B, 3)
        return self.fc(x)


class _Branches(nn.Module):
    def forward(self, x):  # (B, 6)
        if x.sum() > 0:
            return x * 2
        return -x


class _BoundedBatch(torch.nn.Module):
    """Guards its batch (as cuDNN's convolutions do on CUDA, batch <= 65535): dynamic within a bound."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(28 * 28, 10)

    def forward(self, x):
        torch._check(x.shape[0] <= 1000)
        return self.fc(x.flatten(1))


# --- the format's export ------------------------------------------------------------------------


def test_pt2_saves_a_program_whose_batch_stays_dynamic(tmp_path):
    torch.manual_seed(0)
    model = _Small().eval()
    details = pt2.export(model, (torch.rand(2, 6),), tmp_path / "model.pt2", SPEC)
    assert details == {"method": "torch.export.export + torch.export.save", "warnings": []}
    program = torch.export.load(tmp_path / "model.pt2")
    for batch in (1, 5, 64):  # sizes the example (2) never had
        x = torch.rand(batch, 6)
        torch.testing.assert_close(program.module()(x), model(x))
    with pytest.raises(AssertionError, match=r"size\(\)\[1\] == 6"):  # the feature axis was not declared dynamic
        program.module()(torch.rand(2, 7))


def test_a_guarded_batch_is_exported_within_torchs_suggested_bound_and_noted(tmp_path):
    details = pt2.export(_BoundedBatch(), (torch.rand(2, 28, 28),), tmp_path / "model.pt2", SPEC)
    assert details["warnings"] == [bound_note({"batch": (None, 1000)})]
    module = torch.export.load(tmp_path / "model.pt2").module()
    assert module(torch.rand(1000, 28, 28)).shape == (1000, 10)  # dynamic up to the bound ...
    with pytest.raises(AssertionError, match=r"size\(\)\[0\] <= 1000"):  # ... and past it, the guard refuses
        module(torch.rand(1001, 28, 28))


def test_a_branch_on_tensor_values_fails_in_one_paragraph_naming_the_line(tmp_path):
    source, first = inspect.getsourcelines(_Branches.forward)
    line = first + next(i for i, text in enumerate(source) if "if x.sum()" in text)
    with pytest.raises(ExportFailedError) as caught:
        pt2.export(_Branches(), (torch.rand(2, 6),), tmp_path / "model.pt2", SPEC)
    message = str(caught.value)
    assert message.startswith("torch.export failed: forward branches on tensor values")
    assert f"(at test_pt2.py:{line}: `if x.sum() > 0:`)" in message and "torch.where or torch.cond" in message
    assert "leave pt2 out of --format" in message and "\n" not in message
    assert not (tmp_path / "model.pt2").exists()  # nothing half written


# --- end to end (slow: exporter.export and its verification) ------------------------------------


@pytest.mark.slow
def test_pt2_refuses_value_branches_with_the_line(tmp_path):
    config = ExportConfig(out=tmp_path, device="cpu", input_shape=(1, 28, 28), formats=("pt2",))
    with pytest.raises(ExportFailedError, match=r"torch.export failed: forward branches on tensor values \(at"):
        export(f"{BROKEN}:ValueBranch", config)


@pytest.mark.slow
def test_pt2_refuses_a_frozen_batch_size(tmp_path):
    config = ExportConfig(out=tmp_path, device="cpu", input_shape=(1, 28, 28), formats=("pt2",))
    with pytest.raises(ExportFailedError, match="fixes the batch size"):
        export(f"{BROKEN}:FrozenBatch", config)


@pytest.mark.slow
def test_a_guarded_batch_stays_dynamic_within_torchs_bound_and_says_so(tmp_path):
    config = ExportConfig(out=tmp_path, device="cpu", formats=("pt2", "onnx"))
    result = export(_BoundedBatch(), config, example_inputs=torch.rand(2, 28, 28))
    assert result.passed, result.report.failures  # batches 1, 64 and 128 all run: the axis stayed dynamic
    warnings = result.manifest.artifact("pt2").details["warnings"]
    assert any("holds only for batch <= 1000" in w for w in warnings), warnings
