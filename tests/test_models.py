"""The seed network and the registry."""

from __future__ import annotations

import pytest
import torch

import models
from models.mlp import NeuralNetwork


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


def test_seed_network_maps_a_batch_of_images_to_non_negative_logits():
    logits = NeuralNetwork()(torch.rand(3, 28, 28))
    assert logits.shape == (3, 10)
    assert (logits >= 0).all()  # the last ReLU, kept as the article writes it


def test_seed_network_rejects_a_wrong_image_size():
    with pytest.raises(RuntimeError):
        NeuralNetwork()(torch.rand(1, 27, 28))


@pytest.mark.parametrize("name", sorted(models.REGISTRY), ids=str)
def test_registry_entries_declare_their_input(name):
    entry = models.get(name)
    assert entry.input_shape[0] == 1 and len(entry.input_shape) >= 2
    assert entry.dtype == "float32" and entry.input_name and entry.output_names and entry.description
    assert ":" in entry.target


def test_registry_has_no_unknown_names():
    assert models.get("no-such-model") is None


def test_cnn_has_two_conv_blocks_and_20586_parameters():
    from models.cnn import ConvNet

    model = ConvNet()
    assert sum(p.numel() for p in model.parameters()) == 20_586
    assert len(model.features) == 2 and {n for n, _ in model.named_buffers()} >= {"features.0.bn.running_mean"}
    x = torch.rand(4, 28, 28)
    assert model(x).shape == (4, 10)


def test_cnn_is_deterministic_in_eval_mode_only():
    from models.cnn import ConvNet

    model = ConvNet()
    x = torch.rand(8, 28, 28)
    assert not torch.equal(model.train()(x), model(x))  # Dropout live in training mode
    model.eval()
    assert torch.equal(model(x), model(x))
