"""Build the eager model a source describes, on a device, from a seed.

Weights are initialised on the CPU under ``torch.manual_seed(seed)`` (inside
``fork_rng``, so the caller's random state is untouched) and then moved to the
device: the same seed gives the same weights on every device, which is what lets
``verify`` rebuild the exact model that ``export`` wrote.
"""

from __future__ import annotations

import hashlib
import re

import torch
from torch import nn

from .errors import DeviceError, ModelNotFoundError, first_line
from .sources import ModelSource

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(text: str) -> torch.device:
    """``auto`` is CUDA when available (as the seed article does), else the CPU."""
    if not _DEVICE.match(text):
        raise DeviceError(f"unknown device {text!r}: use auto, cpu, cuda or cuda:N")
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(text)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"--device {text} was asked for, but this torch build sees no CUDA device: use --device cpu (or auto)"
            )
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise DeviceError(f"--device {text}: only {torch.cuda.device_count()} CUDA device(s) here (cuda:0..)")
        device = torch.device("cuda", index)
    return device


def build(source: ModelSource, seed: int, device: torch.device) -> nn.Module:
    """Instantiate the source's class with seeded weights, in eval mode, on ``device``."""
    cls = source.load_class()
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ModelNotFoundError(f"{source.target} is not an nn.Module subclass")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            model = cls()
        except TypeError as error:
            raise ModelNotFoundError(
                f"{source.target} cannot be built without arguments ({first_line(error)}): "
                "give it defaults, or wrap it in a class that takes none"
            ) from error
        except Exception as error:
            raise ModelNotFoundError(f"building {source.target} failed: {first_line(error)}") from error
    return model.eval().to(device)


def example_input(shape: tuple[int, ...], dtype: str, seed: int, device: torch.device) -> torch.Tensor:
    """The tracing example: uniform in [0, 1) like the seed's ``torch.rand``, seeded."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=generator, dtype=getattr(torch, dtype))
    return x.to(device)


def count_parameters(model: nn.Module) -> int:
    """Number of parameter elements; tied (shared) tensors are counted once, as ``parameters()`` yields them once."""
    return sum(p.numel() for p in model.parameters())


def state_sha256(model: nn.Module) -> str:
    """A digest of every parameter and buffer (name, dtype, shape, bytes), device independent."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict(keep_vars=False).items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes())
    return digest.hexdigest()
