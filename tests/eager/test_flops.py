"""FLOPs per sample (eager/flops.py): 2 x the multiply-accumulates of every Linear and Conv2d call,
counted from one real forward pass; every expected number here is worked out by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from exporter.eager.flops import count_flops
from exporter.models.cnn import ConvNet
from exporter.models.mlp import NeuralNetwork


class _Mixed(nn.Module):
    """A padded conv, a strided conv with a rectangular kernel, pooling and a Linear head, on (B, 3, 10, 10)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)  # -> (B, 8, 10, 10)
        self.bn = nn.BatchNorm2d(8)  # not counted
        self.down = nn.Conv2d(8, 4, kernel_size=(3, 1), stride=2)  # -> (B, 4, 4, 5)
        self.head = nn.Linear(4 * 4 * 5, 6)  # -> (B, 6)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        return self.head(self.down(x).flatten(1))


CONV = 8 * 10 * 10 * (3 * 3 * 3)  # output elements x (in channels x kernel height x kernel width)
DOWN = 4 * 4 * 5 * (8 * 3 * 1)
HEAD = 6 * 80


@pytest.mark.parametrize("batch", [1, 3])
def test_each_linear_and_conv_counts_twice_its_multiply_accumulates_per_sample(batch):
    flops = count_flops(_Mixed().eval(), torch.rand(batch, 3, 10, 10))
    assert flops.layers == {"conv": 2 * CONV, "down": 2 * DOWN, "head": 2 * HEAD}  # bn counts nothing
    assert flops.per_sample == 2 * (CONV + DOWN + HEAD) == 48_000  # the same at any batch size


def test_a_linear_layer_over_a_sequence_counts_every_position():
    flops = count_flops(nn.Linear(4, 5), torch.rand(2, 7, 4))  # (B, 7, 4) -> (B, 7, 5)
    assert flops.per_sample == 2 * 7 * 5 * 4
    assert flops.layers == {"Linear": 2 * 7 * 5 * 4}  # the model itself: named by its class


class _TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.left = nn.Linear(3, 2)
        self.right = nn.Linear(5, 2)

    def forward(self, x, y):
        return self.left(x) + self.right(y)


def test_a_tuple_example_is_forwards_arguments():
    flops = count_flops(_TwoInputs(), (torch.rand(4, 3), torch.rand(4, 5)))
    assert flops.layers == {"left": 2 * 3 * 2, "right": 2 * 5 * 2}


def test_mlp_flops_are_twice_the_multiply_accumulates_of_its_linear_layers():
    flops = count_flops(NeuralNetwork().eval(), torch.rand(5, 28, 28))
    assert flops.per_sample == 2 * (784 * 512 + 512 * 512 + 512 * 10)
    assert flops.layers == {
        "linear_relu_stack.0": 2 * 784 * 512,
        "linear_relu_stack.2": 2 * 512 * 512,
        "linear_relu_stack.4": 2 * 512 * 10,
    }


def test_cnn_flops_count_every_output_position_of_each_convolution():
    conv1 = 16 * 28 * 28 * (1 * 3 * 3)  # out channels x output positions x (in channels x kernel)
    conv2 = 32 * 14 * 14 * (16 * 3 * 3)  # after the first 2x2 max pool
    head = 32 * 7 * 7 * 10
    flops = count_flops(ConvNet().eval(), torch.rand(4, 28, 28))
    assert flops.per_sample == 2 * (conv1 + conv2 + head) == 2_063_488
    assert flops.layers["features.1.conv"] == 2 * conv2


def test_grouped_convolution_counts_only_its_group_inputs():
    depthwise = nn.Conv2d(4, 4, kernel_size=3, padding=1, groups=4)
    dense = nn.Conv2d(4, 4, kernel_size=3, padding=1)
    x = torch.rand(2, 4, 8, 8)
    assert count_flops(depthwise, x).per_sample == 2 * 4 * 8 * 8 * 9
    assert count_flops(dense, x).per_sample == 4 * count_flops(depthwise, x).per_sample


class _Reused(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.used = nn.Linear(8, 8)
        self.unused = nn.Linear(8, 1000)

    def forward(self, x):
        return self.used(self.used(x))


def test_a_layer_called_twice_counts_twice_and_one_never_called_counts_zero():
    flops = count_flops(_Reused(), torch.rand(3, 8))
    assert flops.per_sample == 2 * (2 * 8 * 8)
    assert "unused" not in flops.layers


def test_a_model_without_linear_or_conv_layers_has_unknown_flops():
    flops = count_flops(nn.Sequential(nn.ReLU(), nn.Flatten()), torch.rand(2, 4, 4))
    assert flops.per_sample is None and flops.layers == {}


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_counting_flops_leaves_no_hooks_behind_and_the_mode_as_it_was(training):
    model = _Mixed().train(training)
    count_flops(model, torch.rand(2, 3, 10, 10))
    assert all(not m._forward_hooks for m in model.modules())
    assert model.training is training and model.bn.training is training


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_counting_flops_changes_none_of_the_models_state(training):
    model = _Mixed().train(training)  # in training mode BatchNorm would update its running statistics
    before = {name: t.clone() for name, t in model.state_dict().items()}
    count_flops(model, torch.rand(2, 3, 10, 10))
    after = model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)


def test_counting_flops_leaves_no_hooks_behind_even_when_forward_fails():
    model = _Mixed()
    with pytest.raises(RuntimeError):
        count_flops(model, torch.rand(2, 5, 10, 10))  # 5 channels where the conv takes 3
    assert all(not m._forward_hooks for m in model.modules())
