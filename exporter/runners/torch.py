"""The PyTorch runtimes: eager (the reference), TorchScript (``torch.jit.load``) and pt2 (``torch.export.load``).

Each loads a checked file by path (``artifacts.integrity.CheckedFile``: a private copy made while
hashing, or export's own staging file), so torch reads the weights straight into the module and
no copy of the file's bytes is held beside them. Loading TorchScript or pt2 runs code the file
carries (PyTorch has no safe mode for either): a file from a folder you do not trust is code from
someone else; ``runners.open`` loads them only as the folder's trust allows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..artifacts.integrity import CheckedFile
from ..errors import CannotOpenUp
from ..formats.capture import quiet_export
from ..formats.explain import user_line
from ..interface import Interface
from .base import Feed, Runner, to_numpy


@dataclass
class TorchModuleRunner(Runner):
    """Runs an ``nn.Module`` (or a loader of one) on a device.

    ``infer`` runs under ``torch.no_grad``; ``prepare`` (bench's timed path) under
    ``torch.inference_mode``, which also skips the version-counter bookkeeping, and without
    copying the feed (``torch.from_numpy`` shares its memory on the CPU).
    """

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    module: nn.Module | None = None
    loader: Callable[[], tuple[nn.Module, dict[str, torch.Tensor]]] | None = None  # -> (module, its tensors)
    held: dict[str, torch.Tensor] | None = None  # the loaded artifact's tensors, by name

    def _activate(self) -> None:
        if self.loader is not None:
            self.module, self.held = self.loader()

    def _deactivate(self) -> None:
        if self.loader is not None:
            self.module, self.held = None, None

    def _infer(self, feed: Feed) -> dict[str, np.ndarray]:
        with torch.no_grad():
            return self._named(self.module(*self._args(feed)))

    def _prepare(self, feed: Feed) -> Callable[[], dict[str, np.ndarray]]:
        args = self._args(feed)

        def call() -> dict[str, np.ndarray]:
            with torch.inference_mode():
                return self._named(self.module(*args))

        return call

    def _args(self, feed: Feed) -> list[torch.Tensor]:
        """Forward's positional arguments, each a fresh tensor (forward may change its input in place)."""
        args = []
        for spec in self.inputs:
            x = torch.from_numpy(np.array(feed[spec.name], copy=True))  # on the CPU this shares the copy
            if spec.dtype == "bfloat16":
                x = x.to(torch.bfloat16)  # carried as float32 (see base.carrier): exact
            args.append(x.to(self.device))
        return args

    def _tensors(self) -> dict[str, np.ndarray]:
        if self.held is not None:
            found = self.held
        else:
            found = {**dict(self.module.named_parameters()), **dict(self.module.named_buffers())}
        return {name: to_numpy(t) for name, t in found.items()}

    def settings(self) -> dict[str, Any]:
        return {"torch.set_num_threads": torch.get_num_threads(), "mode": "torch.inference_mode"}

    def _module_outputs(self, feed: Feed) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """Eager (a plain module): a forward hook on every module records its output, in finishing order
        (a child before its parent); a module called twice keeps its place and the last output."""
        if self.loader is not None:
            return super()._module_outputs(feed)
        order: dict[str, np.ndarray] = {}

        def hook(path: str):
            def record(_module: nn.Module, _args: Any, output: Any) -> None:
                value = output[0] if isinstance(output, (tuple, list)) and output else output
                if torch.is_tensor(value):
                    order[path] = to_numpy(value).copy()

            return record

        handles = [m.register_forward_hook(hook(path)) for path, m in self.module.named_modules()]
        try:
            self._infer(feed)
        finally:
            for handle in handles:
                handle.remove()
        return order, {}


def eager(model: nn.Module, device: torch.device, interface: Interface) -> TorchModuleRunner:
    return TorchModuleRunner("eager", interface, device=device, module=model)


def torchscript(runtime: str, file: CheckedFile, device: torch.device, interface: Interface) -> TorchModuleRunner:
    def load() -> tuple[nn.Module, dict[str, torch.Tensor]]:
        module = torch.jit.load(str(file.path), map_location=device).eval()
        return module, {**dict(module.named_parameters()), **dict(module.named_buffers())}

    return TorchScriptRunner(runtime, interface, device=device, loader=load)


def pt2(runtime: str, file: CheckedFile, device: torch.device, interface: Interface) -> TorchModuleRunner:
    def load() -> tuple[nn.Module, dict[str, torch.Tensor]]:
        with quiet_export([]):
            program = torch.export.load(file.path)
        held = dict(program.state_dict)  # parameters and buffers, and the lifted constants:
        held.update({name: t for name, t in program.constants.items() if torch.is_tensor(t)})
        return program.module().to(device), held

    return Pt2Runner(runtime, interface, device=device, loader=load)


@dataclass
class TorchScriptRunner(TorchModuleRunner):
    """TorchScript: its graph keeps no map from operations to the eager modules (localisation says so)."""


@dataclass
class Pt2Runner(TorchModuleRunner):
    """pt2 (``torch.export``): each graph node's ``nn_module_stack`` names the eager modules it belongs to."""

    def _module_outputs(self, feed: Feed) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        graph_module = self.module
        last: dict[str, str] = {}  # module path -> the name of its last node
        lines: dict[str, str] = {}
        for node in graph_module.graph.nodes:
            stack = node.meta.get("nn_module_stack")
            if node.op != "call_function" or not stack:
                continue
            for path, _kind in stack.values():
                last[path] = node.name
                lines[path] = user_line(node.meta.get("stack_trace"))
        if not last:
            raise CannotOpenUp("its graph nodes carry no nn_module_stack")
        wanted = set(last.values())
        recorded: dict[str, np.ndarray] = {}

        class _Recorder(torch.fx.Interpreter):
            def run_node(self, node: torch.fx.Node) -> Any:
                value = super().run_node(node)
                if node.name in wanted and torch.is_tensor(value):
                    recorded[node.name] = to_numpy(value).copy()
                return value

        with torch.no_grad():
            _Recorder(graph_module).run(*self._args(feed))
        found = {path: recorded[name] for path, name in last.items() if name in recorded}
        return found, {p: line for p, line in lines.items() if line}
