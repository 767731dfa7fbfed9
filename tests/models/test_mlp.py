"""The seed network (models/mlp.py), exactly as the seed article writes it: its layers, its 669,706
parameters under the article's names, and logits that are never negative (the last ReLU is kept)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from exporter.models.mlp import NeuralNetwork


def test_seed_network_has_the_articles_layers_and_669706_parameters():
    model = NeuralNetwork()
    assert sum(p.numel() for p in model.parameters()) == 669_706
    layers = [type(m).__name__ for m in model.linear_relu_stack]
    assert layers == ["Linear", "ReLU", "Linear", "ReLU", "Linear", "ReLU"]
    assert [(m.in_features, m.out_features) for m in model.linear_relu_stack if hasattr(m, "in_features")] == [
        (784, 512),
        (512, 512),
        (512, 10),
    ]
    assert isinstance(model.flatten, torch.nn.Flatten)


def test_the_modules_run_in_the_articles_order_flatten_first():
    assert [name for name, _ in NeuralNetwork().named_children()] == ["flatten", "linear_relu_stack"]
    assert [type(m).__name__ for m in NeuralNetwork().modules()][1:] == [
        "Flatten", "Sequential", "Linear", "ReLU", "Linear", "ReLU", "Linear", "ReLU",
    ]  # fmt: skip


def test_named_parameters_are_the_articles_names_and_shapes_in_order():
    model = NeuralNetwork()
    assert [(name, tuple(p.shape)) for name, p in model.named_parameters()] == [
        ("linear_relu_stack.0.weight", (512, 784)),
        ("linear_relu_stack.0.bias", (512,)),
        ("linear_relu_stack.2.weight", (512, 512)),
        ("linear_relu_stack.2.bias", (512,)),
        ("linear_relu_stack.4.weight", (10, 512)),
        ("linear_relu_stack.4.bias", (10,)),
    ]
    assert list(model.named_buffers()) == []  # nothing but parameters: every tensor is a weight
    assert 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10 == 669_706


def test_forward_is_the_three_layers_with_a_relu_after_each():
    torch.manual_seed(0)
    model = NeuralNetwork().eval()
    x = torch.rand(4, 28, 28)
    w = [model.linear_relu_stack[i] for i in (0, 2, 4)]
    h = x.reshape(4, 784)
    for layer in w:
        h = torch.relu(h @ layer.weight.T + layer.bias)
    with torch.no_grad():
        torch.testing.assert_close(model(x), h.detach())


def test_seed_network_maps_a_batch_of_images_to_non_negative_logits():
    logits = NeuralNetwork()(torch.rand(3, 28, 28))
    assert logits.shape == (3, 10)
    assert (logits >= 0).all()  # the last ReLU, kept as the article writes it


def test_logits_are_never_negative_whatever_the_input_and_without_the_last_relu_they_are():
    torch.manual_seed(1)
    model = NeuralNetwork().eval()
    x = torch.randn(256, 28, 28) * 10  # far outside images' [0, 1)
    with torch.no_grad():
        logits = model(x)
        before_relu = model.linear_relu_stack[:-1](model.flatten(x))
    assert (logits >= 0).all() and (logits == 0).any()  # clamped at zero, so some logits tie at 0
    assert (before_relu < 0).any()  # the control: the last ReLU is what makes them non-negative
    assert isinstance(model.linear_relu_stack[-1], nn.ReLU)


def test_seed_network_rejects_a_wrong_image_size():
    with pytest.raises(RuntimeError):
        NeuralNetwork()(torch.rand(1, 27, 28))
