"""The seed network and the registry."""

from __future__ import annotations

import pytest
import torch

from exporter import models
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
    from exporter.models.cnn import ConvNet

    model = ConvNet()
    assert sum(p.numel() for p in model.parameters()) == 20_586
    assert len(model.features) == 2 and {n for n, _ in model.named_buffers()} >= {"features.0.bn.running_mean"}
    x = torch.rand(4, 28, 28)
    assert model(x).shape == (4, 10)


def test_cnn_is_deterministic_in_eval_mode_only():
    from exporter.models.cnn import ConvNet

    model = ConvNet()
    x = torch.rand(8, 28, 28)
    assert not torch.equal(model.train()(x), model(x))  # Dropout live in training mode
    model.eval()
    assert torch.equal(model(x), model(x))


HOSTILE_MODELS = "open({sentinel!r}, 'w').write('ran')\nREGISTRY = {{}}\n"


@pytest.mark.parametrize("command", [["models"], ["export", "mlp", "--format", "onnx", "--no-verify"]], ids=str)
def test_a_models_py_in_the_current_folder_never_runs(tmp_path, command):
    import subprocess
    import sys

    sentinel = tmp_path / "sentinel"
    (tmp_path / "models.py").write_text(HOSTILE_MODELS.format(sentinel=str(sentinel)))
    run = subprocess.run([sys.executable, "-m", "exporter", *command], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert not sentinel.exists()
    assert command[0] != "models" or "mlp" in run.stdout
    # the control: a plain `import models` from that folder does run it
    subprocess.run([sys.executable, "-c", "import models"], cwd=tmp_path, check=True)
    assert sentinel.exists()
