"""The built-in networks and their registry.

The registry is plain data (import paths as strings) so that listing models never
imports torch: ``exporter models`` answers in a few tenths of a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelEntry:
    """One registered model: where its class lives and what its input looks like."""

    name: str  # the name users type: `exporter export mlp`
    target: str  # "package.module:Class", imported only when the model is built
    input_shape: tuple[int, ...]  # example input, batch dimension first: (1, 28, 28)
    description: str  # one line for `exporter models`
    dtype: str = "float32"  # input dtype
    input_name: str = "input"  # name of the graph input in every artifact
    output_names: tuple[str, ...] = field(default=("logits",))  # names of the graph outputs


REGISTRY: dict[str, ModelEntry] = {
    entry.name: entry
    for entry in (
        ModelEntry(
            name="mlp",
            target="exporter.models.mlp:NeuralNetwork",
            input_shape=(1, 28, 28),
            description="the seed network: Flatten, 3 x (Linear, ReLU), 784-512-512-10, 669,706 parameters",
        ),
        ModelEntry(
            name="cnn",
            target="exporter.models.cnn:ConvNet",
            input_shape=(1, 28, 28),
            description="2 x (Conv, BatchNorm, ReLU, MaxPool), Dropout, Linear; 20,586 parameters",
        ),
    )
}


def get(name: str) -> ModelEntry | None:
    """The entry registered under ``name``, or None."""
    return REGISTRY.get(name)
