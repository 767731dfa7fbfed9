"""The small convolutional network (models/cnn.py): two Conv-BatchNorm-ReLU-MaxPool blocks, Dropout and
a Linear head, 20,586 parameters; eval mode switches Dropout off and freezes BatchNorm's statistics."""

from __future__ import annotations

import pytest
import torch

from exporter.models.cnn import CNNConfig, ConvNet


def test_cnn_has_two_conv_blocks_and_20586_parameters():
    model = ConvNet()
    assert sum(p.numel() for p in model.parameters()) == 20_586
    assert len(model.features) == 2 and {n for n, _ in model.named_buffers()} >= {"features.0.bn.running_mean"}
    x = torch.rand(4, 28, 28)
    assert model(x).shape == (4, 10)


def test_the_parameter_count_is_the_sum_of_its_layers():
    counts = {name: p.numel() for name, p in ConvNet().named_parameters()}
    assert counts == {
        "features.0.conv.weight": 16 * 1 * 3 * 3, "features.0.conv.bias": 16,
        "features.0.bn.weight": 16, "features.0.bn.bias": 16,
        "features.1.conv.weight": 32 * 16 * 3 * 3, "features.1.conv.bias": 32,
        "features.1.bn.weight": 32, "features.1.bn.bias": 32,
        "head.weight": 10 * 32 * 7 * 7, "head.bias": 10,
    }  # fmt: skip
    assert sum(counts.values()) == 20_586


def test_batchnorm_keeps_its_statistics_as_buffers_apart_from_the_parameters():
    model = ConvNet()
    buffers = {name: tuple(b.shape) for name, b in model.named_buffers()}
    assert buffers == {
        f"features.{i}.bn.{kind}": shape
        for i, channels in enumerate((16, 32))
        for kind, shape in (("running_mean", (channels,)), ("running_var", (channels,)), ("num_batches_tracked", ()))
    }
    assert not set(buffers) & {name for name, _ in model.named_parameters()}


def test_eval_mode_freezes_batchnorms_statistics_and_training_mode_moves_them():
    model = ConvNet().eval()
    before = {name: b.clone() for name, b in model.named_buffers()}
    with torch.no_grad():
        model(torch.rand(8, 28, 28))
    assert all(torch.equal(before[name], b) for name, b in model.named_buffers())
    with torch.no_grad():
        model.train()(torch.rand(8, 28, 28))
    assert not torch.equal(before["features.0.bn.running_mean"], model.features[0].bn.running_mean)
    assert int(model.features[0].bn.num_batches_tracked) == 1


def test_cnn_is_deterministic_in_eval_mode_only():
    model = ConvNet()
    x = torch.rand(8, 28, 28)
    assert not torch.equal(model.train()(x), model(x))  # Dropout live in training mode
    model.eval()
    assert torch.equal(model(x), model(x))


def test_each_block_halves_height_and_width_and_the_head_sees_32_by_7_by_7():
    model = ConvNet().eval()
    with torch.no_grad():
        first = model.features[0](torch.rand(2, 1, 28, 28))
        second = model.features[1](first)
    assert first.shape == (2, 16, 14, 14) and second.shape == (2, 32, 7, 7)
    assert model.head.in_features == 32 * 7 * 7 and model.dropout.p == 0.25


def test_the_config_sets_the_channels_the_dropout_and_the_classes():
    model = ConvNet(CNNConfig(channels=(4, 8), dropout=0.5, classes=3)).eval()
    assert model.features[1].conv.out_channels == 8 and model.dropout.p == 0.5
    assert model.head.in_features == 8 * 7 * 7 and model(torch.rand(2, 28, 28)).shape == (2, 3)


def test_an_image_of_another_size_is_refused():
    with pytest.raises(RuntimeError):
        ConvNet()(torch.rand(1, 27, 28))  # 32 x 6 x 7 features where the head takes 32 x 7 x 7
