"""exporter.testing, used the way a user's own suite would use it (the plugin: test_pytest_plugin.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from exporter.errors import UsageError
from exporter.testing import assert_artifacts_match, assert_exports_match

from .helpers import change_onnx_weight


class _Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


class _Unused(_Small):
    def __init__(self) -> None:
        super().__init__()
        self.spare = nn.Linear(3, 3)


@pytest.mark.slow
def test_a_matching_model_returns_the_report():
    report = assert_exports_match(_Small().eval(), torch.rand(1, 28, 28), samples=64)
    assert report.passed and {r.runtime for r in report.runtimes} == {"torchscript", "onnxruntime"}


@pytest.mark.slow
def test_a_mismatch_raises_assertion_error_naming_it():
    with pytest.raises(AssertionError) as caught:
        assert_exports_match(_Unused().eval(), torch.rand(1, 28, 28), samples=64, formats=("onnx",))
    message = str(caught.value)
    assert message.startswith("exports of _Unused do not match eager PyTorch")
    assert "spare.weight, spare.bias are never used by forward" in message


@pytest.mark.slow
def test_an_export_that_cannot_be_made_is_an_assertion_error():
    class Branchy(_Small):
        def forward(self, x):
            return self.fc(x.flatten(1)) if x.sum() > 0 else -self.fc(x.flatten(1))

    with pytest.raises(AssertionError, match=r"could not be exported: .*branches on tensor values"):
        assert_exports_match(Branchy().eval(), torch.rand(1, 28, 28), formats=("onnx",))


@pytest.mark.slow
def test_artifacts_match_reads_only(mlp_dir):
    before = sorted(p.name for p in mlp_dir.iterdir())
    (mlp_dir / "verification.json").unlink()
    report = assert_artifacts_match(mlp_dir, samples=64)
    assert report.passed and sorted(p.name for p in mlp_dir.iterdir()) == [
        n for n in before if n != "verification.json"
    ]


@pytest.mark.slow
def test_artifacts_match_fails_on_a_tampered_file(mlp_dir):
    change_onnx_weight(mlp_dir)
    with pytest.raises(AssertionError, match=r"model\.onnx: sha256 .* the file was not loaded"):
        assert_artifacts_match(mlp_dir, samples=64)


@pytest.mark.slow
def test_an_unknown_option_is_a_usage_error(mlp_dir):
    with pytest.raises(UsageError, match="unknown verification option"):
        assert_artifacts_match(mlp_dir, tolerance=3)
