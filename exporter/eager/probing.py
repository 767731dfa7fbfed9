"""What a model takes and returns, found from its signature and by running it.

- ``specs_from_values``: input specs for example values a Python caller gives (a tensor, a
  tuple, or a dict of tensors);
- ``in_forward_order``: the inputs ordered as forward's parameters, each name checked;
- ``export_example``: the example the exporters see, every dynamic axis of size 0 or 1 made 2
  (torch.export, and the ONNX exporter built on it, specialise sizes 0 and 1 to constants:
  a batch-1 example would freeze the batch of an LSTM, a GRU or attention);
- ``describe_outputs``: the flattened outputs' names, dtypes and shapes, each dynamic axis
  named by the input label that moves it (found by running forward with that label resized).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from ..errors import InputSpecError, first_line
from ..interface import InputSpec, OutputSpec, flatten, output_names

Example = dict[str, torch.Tensor]


def specs_from_values(values: Any, model: nn.Module) -> tuple[tuple[InputSpec, ...], Example]:
    """Specs and named tensors for example values: a tensor (named ``input``), a tuple (named after
    forward's parameters) or a dict (its keys). Integer inputs take their range from the example."""
    if torch.is_tensor(values):
        named = {"input": values}
    elif isinstance(values, dict):
        named = dict(values)
    elif isinstance(values, (tuple, list)):
        params = _positional_parameters(model)
        if len(params) < len(values):
            raise InputSpecError(f"forward takes {len(params)} input(s), but {len(values)} example values were given")
        named = dict(zip(params, values, strict=False))
    else:
        raise InputSpecError(
            f"example inputs must be a tensor, a tuple or a dict of tensors, not {type(values).__name__}"
        )
    specs = []
    for name, value in named.items():
        if not torch.is_tensor(value):
            raise InputSpecError(f"example input {name!r} is a {type(value).__name__}, not a tensor")
        dtype = str(value.dtype).removeprefix("torch.")
        value_range = None
        if not value.is_floating_point() and dtype != "bool" and value.numel():
            value_range = (float(value.min()), float(value.max()))  # integers: drawn where the example lies
        specs.append(InputSpec(name, tuple(value.shape), dtype, value_range))
    return tuple(specs), named


def in_forward_order(model: nn.Module, specs: tuple[InputSpec, ...], registered: bool) -> tuple[InputSpec, ...]:
    """``specs`` ordered as forward's parameters. A registered model's single input keeps its own name."""
    if registered and len(specs) == 1:
        return specs
    params = _positional_parameters(model)
    takes_any = any(p.kind == p.VAR_POSITIONAL for p in inspect.signature(model.forward).parameters.values())
    if len(specs) == 1 and specs[0].name == "input" and "input" not in params:
        return specs  # the --input-shape shorthand: one input, passed first
    unknown = [s.name for s in specs if s.name not in params]
    if unknown and not takes_any:
        raise InputSpecError(
            f"forward has no parameter {', '.join(map(repr, unknown))}: its inputs are {', '.join(params) or 'none'}"
        )
    by_name = {s.name: s for s in specs}
    ordered = [by_name[p] for p in params if p in by_name] + [s for s in specs if s.name not in params]
    signature = inspect.signature(model.forward).parameters
    needed = [p for p in params if p not in by_name and signature[p].default is inspect.Parameter.empty]
    skipped = [p for p in params[: len(ordered)] if p not in by_name]
    if needed or skipped:
        name = (needed or skipped)[0]
        raise InputSpecError(
            f"forward takes {name!r} too (its inputs are {', '.join(params)}): give every one with "
            f"--input NAME:SHAPE[:DTYPE[:LOW..HIGH]], e.g. --input {name}:1,8"
        )
    return tuple(ordered)


def export_example(example: Example, specs: tuple[InputSpec, ...]) -> tuple[torch.Tensor, ...]:
    """Forward's arguments for the exporters: every dynamic axis of size 0 or 1 repeated to size 2."""
    args = []
    for spec in specs:
        value = example[spec.name]
        for axis in spec.axes:
            if value.shape[axis] < 2:
                value = torch.cat([value, value], dim=axis) if value.shape[axis] else value
        args.append(value)
    return tuple(args)


def describe_outputs(
    model: nn.Module, example: Example, specs: tuple[InputSpec, ...], names: tuple[str, ...] | None, default: str
) -> tuple[OutputSpec, ...]:
    """The flattened outputs at ``example``: names (``names``, or from what forward returns), dtypes,
    and shapes with each dynamic axis named by the input label whose size moves it."""
    with torch.no_grad():
        value = model(*(example[s.name] for s in specs))
    leaves = flatten(value)
    if not leaves or not all(torch.is_tensor(leaf) for _, leaf in leaves):
        kinds = sorted({type(leaf).__name__ for _, leaf in leaves if not torch.is_tensor(leaf)})
        raise InputSpecError(
            f"forward must return tensors (in a tuple, list or dict), got {', '.join(kinds) or 'none'}"
        )
    found = names or output_names(value, default)
    if len(found) != len(leaves):
        raise InputSpecError(f"--output-names gives {len(found)} name(s), but forward returns {len(leaves)} output(s)")
    shapes = [list(leaf.shape) for _, leaf in leaves]
    labels = {label for s in specs for label in s.axes.values()}
    for label in sorted(labels):
        moved = _resized_run(model, example, specs, label)
        for shape, (_, leaf) in zip(shapes, moved or [], strict=False):
            if len(shape) != leaf.dim():
                continue  # the rank itself moves (a squeeze at size 1): left concrete; verify names it
            for axis, (before, after) in enumerate(zip(shape, leaf.shape, strict=True)):
                if isinstance(before, int) and before != after:
                    shape[axis] = label
    return tuple(
        OutputSpec(name, tuple(shape), str(leaf.dtype).removeprefix("torch."))
        for name, shape, (_, leaf) in zip(found, shapes, leaves, strict=True)
    )


def _resized_run(model: nn.Module, example: Example, specs: tuple[InputSpec, ...], label: str) -> list | None:
    """Forward's flattened outputs with every axis labelled ``label`` one larger (None when that fails)."""
    args = []
    for spec in specs:
        value = example[spec.name]
        for axis, name in spec.axes.items():
            if name == label:
                value = torch.cat([value, value.narrow(axis, 0, 1)], dim=axis)
        args.append(value)
    try:
        with torch.no_grad():
            return flatten(model(*args))
    except Exception:  # a model that refuses other sizes: its shapes stay concrete, and verify will say why
        return None


def _positional_parameters(model: nn.Module) -> list[str]:
    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError) as error:
        raise InputSpecError(f"cannot read forward's parameters: {first_line(error)}") from None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in params if p.kind in kinds]
