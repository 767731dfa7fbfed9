"""Parameter accounting on small hand-built modules and tensor dicts: matched, folded, unused, altered,
buffers and exporter constants apart, tied weights counted once. No export: an "artifact" here is the
name -> array dict a runner's ``tensors()`` returns."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from exporter.verification.parameters import (
    ArtifactParameters,
    EagerSide,
    ParameterReport,
    account,
    eager_parameters,
)


class Small(nn.Module):
    """One Linear layer (8 parameters) after subtracting a buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.full((3,), 0.5))
        self.fc = nn.Linear(3, 2)

    def forward(self, x):  # (B, 3) -> (B, 2)
        return self.fc(x - self.mean)


class WithSpare(Small):
    """Small plus a layer forward never calls (6 parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.spare = nn.Linear(2, 2)


class Tied(nn.Module):
    """An encoder and a decoder sharing one (3, 4) weight."""

    def __init__(self, tie: bool = True) -> None:
        super().__init__()
        self.enc = nn.Linear(4, 3, bias=False)
        self.dec = nn.Linear(3, 4, bias=False)
        if tie:
            self.dec.weight = self.enc.weight

    def forward(self, x):  # (B, 4) -> (B, 4)
        return torch.relu(self.enc(x)) @ self.dec.weight.reshape(3, 4)


def _example(model: nn.Module) -> torch.Tensor:
    return torch.rand(2, 4 if isinstance(model, Tied) else 3)


def _tensors(model: nn.Module, *names: str) -> dict[str, np.ndarray]:
    """Copies of the model's parameters and buffers (all of them, or those named), as an artifact holds them."""
    state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    return {n: t.detach().numpy().copy() for n, t in state.items() if not names or n in names}


def _account(
    model: nn.Module,
    artifact: dict[str, np.ndarray],
    *,
    allow_unused: bool = False,
    outputs_agree: bool = False,
    quantized: bool = False,
    example: bool = True,
) -> ArtifactParameters:
    """What verify does for one runtime (``verification._account_parameters``)."""
    eager = EagerSide.of(model, _example(model) if example else None, allow_unused)
    return account("onnxruntime", eager, artifact, outputs_agree, quantized)


@pytest.fixture
def small() -> Small:
    torch.manual_seed(0)
    return Small().eval()


@pytest.fixture
def spare() -> WithSpare:
    torch.manual_seed(0)
    return WithSpare().eval()


# --- eager_parameters -----------------------------------------------------------------------------


def test_eager_parameters_lists_each_tensor_with_its_shape_count_and_use(spare):
    params = {p.name: p for p in eager_parameters(spare, _example(spare))}
    assert list(params) == ["fc.weight", "fc.bias", "spare.weight", "spare.bias"]  # buffers are not parameters
    assert (params["fc.weight"].shape, params["fc.weight"].count) == ((2, 3), 6)
    assert {n: p.used for n, p in params.items()} == {
        "fc.weight": True,
        "fc.bias": True,
        "spare.weight": False,
        "spare.bias": False,
    }


class CachedBiases(nn.Module):
    """As timm's LeViT: in eval mode, biases gathered by index once and cached; train() drops the cache."""

    def __init__(self, spare: bool = False) -> None:
        super().__init__()
        self.biases = nn.Parameter(torch.randn(5))
        self.register_buffer("index", torch.tensor([0, 3, 3, 1]), persistent=False)
        self.unused = nn.Parameter(torch.randn(4)) if spare else None
        self.cache: dict[str, torch.Tensor] = {}

    def train(self, mode: bool = True) -> CachedBiases:
        super().train(mode)
        if mode:
            self.cache = {}
        return self

    def forward(self, x):  # (B, 4)
        if self.training:
            return x + self.biases[self.index]
        if "biases" not in self.cache:
            self.cache["biases"] = self.biases[self.index]
        return x + self.cache["biases"]


def test_a_parameter_reached_through_an_eval_mode_cache_counts_as_used_and_a_truly_unused_one_does_not():
    model = CachedBiases(spare=True).eval()
    with torch.no_grad():
        model(torch.rand(2, 4))  # the export's first run: the cache holds no graph back to biases
    used = {p.name: p.used for p in eager_parameters(model, torch.rand(2, 4))}
    assert used == {"biases": True, "unused": False}
    assert not model.training and not any(m.training for m in model.modules())  # modes as they were
    assert not model.cache or model.cache["biases"].grad_fn is None  # no cache left holding a graph


def test_usage_is_unknown_without_an_example_or_when_backward_cannot_run(spare):
    assert {p.used for p in eager_parameters(spare, None)} == {None}

    class Argmax(WithSpare):
        def forward(self, x):
            return self.fc(x).argmax(1)  # integers: no gradient reaches any parameter

    assert {p.used for p in eager_parameters(Argmax(), _example(spare))} == {None}


def test_the_backward_pass_leaves_requires_grad_and_gradients_as_they_were(small):
    small.fc.weight.requires_grad_(False)
    kept = torch.ones(2)
    small.fc.bias.grad = kept
    eager_parameters(small, _example(small))
    assert small.fc.weight.requires_grad is False and small.fc.weight.grad is None
    assert small.fc.bias.requires_grad is True and small.fc.bias.grad is kept


def test_usage_is_found_without_allocating_gradients(spare):
    # no backward: a gradient the size of every weight would double a large model's memory
    eager_parameters(spare, _example(spare))
    assert all(p.grad is None for p in spare.parameters())


# --- matched and altered --------------------------------------------------------------------------


def test_every_parameter_matched_by_name_and_shape_passes(small):
    result = _account(small, _tensors(small, "fc.weight", "fc.bias"))
    assert result.matched == ["fc.weight", "fc.bias"] and result.folded == result.unused == []
    assert result.total == 8 and result.passed
    assert result.explanation == "8 = 8 in 2 tensors matched by name and shape"


def test_a_matched_tensor_with_other_values_fails_when_the_outputs_disagree(small):
    artifact = _tensors(small, "fc.weight", "fc.bias")
    artifact["fc.weight"][1, 2] += 0.5
    result = _account(small, artifact)
    assert result.matched == ["fc.weight", "fc.bias"] and result.total == 8  # still counted: it is there
    assert result.altered == [{"name": "fc.weight", "max_abs_diff": pytest.approx(0.5)}]
    assert result.reasons == ["parameter fc.weight in the artifact differs from the eager model's (max abs diff 0.5)"]
    assert not result.passed and not result.rewritten


def test_a_matched_tensor_with_other_values_is_a_fold_when_the_outputs_agree(small):
    artifact = _tensors(small, "fc.weight", "fc.bias")
    artifact["fc.bias"][0] -= 0.25
    result = _account(small, artifact, outputs_agree=True)
    assert result.rewritten and result.passed and result.reasons == []
    assert result.explanation.endswith("; values of fc.bias rewritten by the exporter (a fold), proved by the outputs")


def test_the_same_values_in_another_dtype_are_altered(small):
    artifact = _tensors(small, "fc.weight", "fc.bias")
    artifact["fc.weight"] = artifact["fc.weight"].astype(np.float64)
    result = _account(small, artifact)
    assert result.altered == [{"name": "fc.weight", "max_abs_diff": 0.0}] and not result.passed


def test_a_tensor_of_the_right_name_but_another_shape_is_not_a_match(small):
    artifact = _tensors(small, "fc.weight", "fc.bias")
    artifact["fc.weight"] = artifact["fc.weight"].T.copy()  # (3, 2), not (2, 3)
    result = _account(small, artifact)
    assert result.matched == ["fc.bias"] and result.folded == ["fc.weight"]  # forward uses it: folded, not unused
    assert result.constants == [{"name": "fc.weight", "shape": [3, 2], "count": 6}]


# --- folded and unused ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "quantized, how",
    [(False, "folded into other tensors by the exporter"), (True, "quantised, or folded then quantised, into int8")],
)
def test_a_missing_parameter_forward_uses_is_folded_and_counted(small, quantized, how):
    result = _account(small, _tensors(small, "fc.weight"), quantized=quantized)
    assert result.folded == ["fc.bias"] and result.unused == []
    assert result.total == 8 and result.passed
    assert result.explanation.startswith("8 = 6 in 1 tensors matched by name and shape + 2 " + how)
    assert result.explanation.endswith("(fc.bias)")


def test_a_missing_parameter_forward_never_uses_is_unused_and_fails(spare):
    result = _account(spare, _tensors(spare, "fc.weight", "fc.bias"))
    assert result.unused == ["spare.weight", "spare.bias"] and result.folded == []
    assert result.total == 8  # the 6 unused elements are not accounted for
    assert result.reasons == [
        "parameters spare.weight, spare.bias are never used by forward, so the artifact lacks them "
        "(pass --allow-unused if that is intended)",
        "parameter total 8 differs from eager's 14",
    ]
    assert "6 unused by forward and absent (spare.weight, spare.bias)" in result.explanation


def test_an_unused_parameter_passes_when_allowed(spare):
    result = _account(spare, _tensors(spare, "fc.weight", "fc.bias"), allow_unused=True)
    assert result.unused == ["spare.weight", "spare.bias"] and result.total == 14 and result.passed
    assert "6 allowed as unused by forward and absent" in result.explanation


def test_an_unused_parameter_the_artifact_holds_is_matched_and_passes(spare):
    result = _account(spare, _tensors(spare))
    assert result.matched == ["fc.weight", "fc.bias", "spare.weight", "spare.bias"] and result.unused == []
    assert result.total == 14 and result.passed


def test_a_missing_parameter_of_unknown_use_is_counted_as_folded_not_failed(spare):
    result = _account(spare, _tensors(spare, "fc.weight", "fc.bias"), example=False)
    assert result.folded == ["spare.weight", "spare.bias"] and result.unused == [] and result.passed


# --- buffers and exporter constants ---------------------------------------------------------------


def test_buffers_and_exporter_constants_are_listed_apart_and_not_counted(small):
    artifact = {**_tensors(small), "onnx::Reshape_0": np.array([2, -1], dtype=np.int64)}
    result = _account(small, artifact)
    assert result.buffers == ["mean"]
    assert result.constants == [{"name": "onnx::Reshape_0", "shape": [2], "count": 2}]
    assert result.total == 8 and result.passed
    assert result.explanation == (
        "8 = 8 in 2 tensors matched by name and shape; not counted: 1 exporter constant(s), 2 elements"
        "; 1 buffer(s) listed apart"
    )


def test_without_extra_tensors_nothing_is_listed_apart(small):
    result = _account(small, _tensors(small, "fc.weight", "fc.bias"))
    assert result.buffers == [] and result.constants == [] and "not counted" not in result.explanation


# --- tied weights ---------------------------------------------------------------------------------


def test_a_tied_weight_is_one_parameter_with_an_alias_and_counted_once():
    (shared,) = eager_parameters(Tied(), _example(Tied()))
    assert (shared.name, shared.aliases, shared.count, shared.used) == ("enc.weight", ["dec.weight"], 12, True)
    untied = eager_parameters(Tied(tie=False), _example(Tied()))
    assert [(p.name, p.count) for p in untied] == [("enc.weight", 12), ("dec.weight", 12)]


@pytest.mark.parametrize("name", ["enc.weight", "dec.weight"])
def test_a_tied_weight_is_matched_under_either_of_its_names(name):
    model = Tied()
    weight = model.enc.weight.detach().numpy().copy()
    result = _account(model, {name: weight})
    assert result.matched == ["enc.weight"] and result.total == 12 and result.passed


def test_a_tied_weight_missing_from_the_artifact_is_folded_once():
    model = Tied()
    result = _account(model, {})
    assert result.folded == ["enc.weight"] and result.total == 12


def test_a_tied_weight_held_under_both_names_is_not_an_exporter_constant():
    model = Tied()
    weight = model.enc.weight.detach().numpy().copy()
    result = _account(model, {"enc.weight": weight, "dec.weight": weight.copy()})
    assert result.matched == ["enc.weight"] and result.total == 12
    assert result.constants == [] and result.altered == [] and result.passed
    assert result.explanation == "12 = 12 in 1 tensors matched by name and shape"


@pytest.mark.parametrize("outputs_agree", [False, True], ids=["outputs-disagree", "outputs-agree"])
def test_a_tied_weight_whose_alias_copy_differs_is_reported_as_changed(outputs_agree):
    model = Tied()
    weight = model.enc.weight.detach().numpy().copy()
    alias = weight.copy()
    alias[2, 1] -= 0.75  # the copy under the alias name differs; the one under the parameter's name does not
    result = _account(model, {"enc.weight": weight, "dec.weight": alias}, outputs_agree=outputs_agree)
    assert result.matched == ["enc.weight"] and result.total == 12 and result.constants == []
    assert result.altered == [{"name": "enc.weight", "max_abs_diff": pytest.approx(0.75), "held_as": "dec.weight"}]
    if outputs_agree:  # the same rule as for any matched tensor: the outputs prove a fold
        assert result.rewritten and result.passed
        assert result.explanation.endswith(
            "; values of enc.weight (held as dec.weight) rewritten by the exporter (a fold), proved by the outputs"
        )
    else:
        assert not result.rewritten and not result.passed
        assert result.reasons == [
            "parameter enc.weight (held as dec.weight) in the artifact differs from the eager model's "
            "(max abs diff 0.75)"
        ]


def test_a_tied_weight_differing_under_both_names_is_reported_once_per_name():
    model = Tied()
    weight = model.enc.weight.detach().numpy()
    artifact = {"enc.weight": weight + 0.5, "dec.weight": weight + 0.25}
    result = _account(model, artifact)
    assert result.matched == ["enc.weight"] and result.total == 12 and result.constants == []
    assert result.altered == [
        {"name": "enc.weight", "max_abs_diff": pytest.approx(0.5)},
        {"name": "enc.weight", "max_abs_diff": pytest.approx(0.25), "held_as": "dec.weight"},
    ]
    assert len(result.reasons) == 2 and not result.passed


def test_a_tied_weights_alias_of_another_shape_stays_an_exporter_constant():
    model = Tied()
    weight = model.enc.weight.detach().numpy().copy()
    result = _account(model, {"enc.weight": weight, "dec.weight": weight.T.copy()})
    assert result.matched == ["enc.weight"] and result.altered == [] and result.passed
    assert result.constants == [{"name": "dec.weight", "shape": [4, 3], "count": 12}]


# --- the report over every runtime ----------------------------------------------------------------


def test_the_report_passes_only_when_every_artifact_passes(small):
    good = _account(small, _tensors(small))
    changed = _tensors(small)
    changed["fc.bias"] += 1
    bad = _account(small, changed)
    params = eager_parameters(small, None)
    report = ParameterReport(8, params, [], {"torchscript": good})
    assert report.passed and report.to_dict()["passed"] is True
    report.artifacts["onnxruntime"] = bad
    data = report.to_dict()
    assert not report.passed and data["passed"] is False
    assert data["artifacts"]["torchscript"]["passed"] is True and data["artifacts"]["onnxruntime"]["passed"] is False


# --- digests: the eager values let go -------------------------------------------------------------


def _digests_only(model: nn.Module, artifact: dict, outputs_agree: bool = False) -> ArtifactParameters:
    """``account`` with no eager values kept (a large model's case): every tensor judged by its digest."""
    eager = EagerSide.of(model, _example(model), keep_bytes=0)
    assert not eager.values and set(eager.digests) == {"fc.weight", "fc.bias"}
    return account("onnxruntime", eager, artifact, outputs_agree)


def test_the_eager_side_keeps_the_smallest_values_within_its_budget_and_digests_of_the_rest(small):
    eager = EagerSide.of(small, _example(small), keep_bytes=8)  # fc.bias (2 floats) fits, fc.weight (6) not
    assert set(eager.values) == {"fc.bias"} and set(eager.digests) == {"fc.weight"}
    assert all(isinstance(v, np.ndarray) for v in eager.values.values())  # no tensor of the model's held


def test_a_tensor_judged_by_its_digest_alone_matches_when_its_bytes_are_the_same(small):
    result = _digests_only(small, _tensors(small, "fc.weight", "fc.bias"))
    assert result.passed and result.altered == [] and result.matched == ["fc.weight", "fc.bias"]


def test_a_tensor_judged_by_its_digest_alone_that_differs_fails_and_says_its_values_were_let_go(small):
    artifact = _tensors(small, "fc.weight", "fc.bias")
    artifact["fc.weight"][0, 0] = np.nextafter(artifact["fc.weight"][0, 0], np.float32(9))  # one step
    result = _digests_only(small, artifact)
    assert result.altered == [{"name": "fc.weight", "max_abs_diff": None}] and not result.passed
    assert result.reasons == [
        "parameter fc.weight in the artifact differs from the eager model's "
        "(its sha256 differs; the eager values were let go)"
    ]
    assert _digests_only(small, artifact, outputs_agree=True).rewritten  # a fold, when the outputs prove it


def test_the_same_values_in_another_dtype_differ_by_digest_too(small):
    artifact = _tensors(small, "fc.weight", "fc.bias")
    artifact["fc.weight"] = artifact["fc.weight"].astype(np.float64)
    assert not _digests_only(small, artifact).passed


def test_a_tensor_still_on_disk_is_judged_by_streaming_its_bytes(small, tmp_path, monkeypatch):
    from exporter.formats.onnx_wire import FileTensor
    from exporter.verification import parameters

    monkeypatch.setattr(parameters, "_CHUNK", 8)  # several reads for 24 bytes
    weight = small.fc.weight.detach().numpy()
    path = tmp_path / "data"
    path.write_bytes(b"pad!" + weight.tobytes() + b"tail")
    on_disk = FileTensor(path, "fc.weight", np.dtype(np.float32), (2, 3), 4, weight.nbytes)
    artifact = {"fc.weight": on_disk, "fc.bias": small.fc.bias.detach().numpy().copy()}
    assert _digests_only(small, artifact).passed
    shifted = FileTensor(path, "fc.weight", np.dtype(np.float32), (2, 3), 5, weight.nbytes)  # a byte off
    assert not _digests_only(small, {**artifact, "fc.weight": shifted}).passed
    short = FileTensor(path, "fc.weight", np.dtype(np.float32), (2, 3), 16, weight.nbytes)  # the file ends first
    assert not _digests_only(small, {**artifact, "fc.weight": short}).passed
