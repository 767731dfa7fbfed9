"""What a model takes and returns, found from its signature and by running it.

- ``specs_from_values``: input specs for example values a Python caller gives (a tensor, a
  tuple, or a dict of tensors);
- ``in_forward_order``: the inputs ordered as forward's parameters, each name checked;
- ``by_name``: the model with forward taking the declared inputs in order and passing them by keyword, so
  parameters between them (GPT2's ``past_key_values``) keep their defaults;
- ``export_example``: the example the exporters see, every dynamic axis of size 0 or 1 made 2
  (torch.export, and the ONNX exporter built on it, specialise sizes 0 and 1 to constants:
  a batch-1 example would freeze the batch of an LSTM, a GRU or attention);
- ``describe_outputs``: the flattened outputs' names, dtypes and shapes, each dynamic axis
  named by the input label that moves it (found by running forward with that label resized).
"""

from __future__ import annotations

import copy
import inspect
import keyword
from typing import Any

import torch
from torch import nn

from ..errors import InputSpecError, first_line
from ..interface import INDICES, InputSpec, OutputSpec, flatten, label_parts, output_names, parameter_name

Example = dict[str, torch.Tensor]
DERIVED = "derived"  # an output axis that follows an input axis's size without equalling it: ``samples_derived``


def specs_from_values(
    values: Any, model: nn.Module, declared: tuple[InputSpec, ...] = ()
) -> tuple[tuple[InputSpec, ...], Example]:
    """Specs and named tensors for example values: a tensor (named ``input``), a tuple (named after
    forward's parameters) or a dict (its keys).

    An integer input's range is never the example's own (a dozen ids would narrow every later draw to
    them): it is the range ``declared`` gives for that name, else the vocabulary of the nn.Embedding the
    input feeds; with neither, InputSpecError asks for it.
    """
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
    for name, value in named.items():
        if not torch.is_tensor(value):
            raise InputSpecError(f"example input {name!r} is a {type(value).__name__}, not a tensor")
    ranges = {s.name: s.value_range for s in declared if s.value_range is not None}
    integers = [n for n, v in named.items() if not v.is_floating_point() and v.dtype != torch.bool and n not in ranges]
    if integers:
        ranges.update(embedding_ranges(model, named, integers))
    specs = []
    for name, value in named.items():
        dtype = str(value.dtype).removeprefix("torch.")
        if name in integers and name not in ranges:
            raise InputSpecError(
                f"example input {name!r} is {dtype}: the verifier needs the range its values come from (token ids: "
                f"the vocabulary), which one example cannot tell: declare it, ExportConfig(inputs=(InputSpec("
                f"{name!r}, {tuple(value.shape)}, {dtype!r}, (0, 999)),))"
            )
        specs.append(InputSpec(name, tuple(value.shape), dtype, ranges.get(name)))
    return tuple(specs), named


def embedding_ranges(model: nn.Module, named: Example, names: list[str]) -> dict[str, tuple[float, float]]:
    """For each input in ``names`` that an nn.Embedding takes as it is: [0, num_embeddings - 1].

    Found by one forward on the example with a pre-hook on every Embedding; a forward that fails
    here finds nothing (the export's own first run reports why).
    """
    found: dict[str, tuple[float, float]] = {}
    by_data = {named[n].data_ptr(): n for n in names if named[n].numel()}

    def hook(module: nn.Module, args: Any) -> None:
        name = by_data.get(args[0].data_ptr()) if args and torch.is_tensor(args[0]) else None
        if name is not None:
            found.setdefault(name, (0.0, float(module.num_embeddings - 1)))

    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, nn.Embedding)]
    if not handles:
        return found
    try:
        with torch.no_grad():
            model(**{p: named[p] for p in _positional_parameters(model) if p in named})
    except Exception:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return found


def table_ranges(model: nn.Module, specs: tuple[InputSpec, ...], named: Example) -> tuple[InputSpec, ...]:
    """``specs`` with each index input (token ids, token type ids, position ids: ``kinds.INDICES``) that has no
    declared range given the range of the nn.Embedding it feeds; InputSpecError for one that feeds none.
    ``named``: the example, the missing ones all zeros (a valid index into any table)."""
    from dataclasses import replace

    missing = [s.name for s in specs if s.kind in INDICES and s.value_range is None]
    if not missing:
        return specs
    found = embedding_ranges(model, named, missing)
    unfound = [n for n in missing if n not in found]
    if unfound:
        name = unfound[0]
        raise InputSpecError(
            f"input {name!r} holds indices, but no nn.Embedding takes it as it is, so its range is unknown: "
            f"declare it, --input {name}:SHAPE:int64:LOW..HIGH"
        )
    return tuple(replace(s, value_range=found[s.name]) if s.name in found else s for s in specs)


def in_forward_order(model: nn.Module, specs: tuple[InputSpec, ...], registered: bool) -> tuple[InputSpec, ...]:
    """``specs`` ordered as forward's parameters. A registered model's single input keeps its own name."""
    if registered and len(specs) == 1:
        return specs
    params = _positional_parameters(model)
    takes_any = any(p.kind == p.VAR_POSITIONAL for p in inspect.signature(model.forward).parameters.values())
    if len(specs) == 1 and specs[0].name == "input" and "input" not in params:
        return specs  # the --input-shape shorthand: one input, passed first
    unknown = [s.name for s in specs if parameter_name(s.name) not in params]
    if unknown and not takes_any:
        raise InputSpecError(
            f"forward has no parameter {', '.join(map(repr, unknown))}: its inputs are {', '.join(params) or 'none'}"
        )
    by_name = {parameter_name(s.name): s for s in specs}
    ordered = [by_name[p] for p in params if p in by_name] + [s for s in specs if parameter_name(s.name) not in params]
    signature = inspect.signature(model.forward).parameters
    needed = [p for p in params if p not in by_name and signature[p].default is inspect.Parameter.empty]
    if needed:
        name = needed[0]
        if _takes_tensor(signature[name]):
            raise InputSpecError(
                f"forward takes {name!r} too (its inputs are {', '.join(params)}): give every one with "
                f"--input NAME:SHAPE[:DTYPE[:LOW..HIGH]], e.g. --input {name}:1,8"
            )
        raise InputSpecError(
            f"forward's parameter {name!r} has no default and is not a tensor ({signature[name].annotation}): "
            "give it a default, or export a module whose forward takes tensors only"
        )
    return tuple(ordered)


def _takes_tensor(parameter: inspect.Parameter) -> bool:
    """Whether a parameter may be a tensor: unannotated, or its annotation names Tensor."""
    annotation = parameter.annotation
    return annotation is inspect.Parameter.empty or "Tensor" in str(getattr(annotation, "__name__", annotation))


def by_name(model: nn.Module, names: tuple[str, ...]) -> nn.Module:
    """``model`` as one whose forward takes ``names`` positionally, in this order, and passes them by keyword.

    Every runtime calls a model with its inputs in order; a forward whose declared inputs are not its first
    parameters (GPT2: ``input_ids, past_key_values, ..., attention_mask``) would get them in the wrong places.
    The result shares the model's parameters and buffers (a shallow copy whose class adds only this forward),
    so their names, the state digest and every exporter see the model itself; the parameters left out keep
    their defaults. ``model`` itself when its forward already takes ``names`` first, in order.
    """
    params = _positional_parameters(model)
    names = tuple(parameter_name(n) for n in names)
    if list(names) == params[: len(names)] or not set(names) <= set(params):
        return model  # already in order, or the --input-shape shorthand (one input, passed first)
    bad = [n for n in names if keyword.iskeyword(n)]
    if bad:
        raise InputSpecError(f"input name {bad[0]!r} is a Python keyword: forward cannot take it by name")
    cls = type(model)
    namespace: dict[str, Any] = {}
    source = (
        f"def forward(self, {', '.join(names)}):\n    return _forward(self, {', '.join(f'{n}={n}' for n in names)})\n"
    )
    exec(source, {"_forward": cls.forward}, namespace)  # names are identifiers (InputSpec checks them)
    keyed = type(cls.__name__, (cls,), {"forward": namespace["forward"], "__module__": cls.__module__})
    keyed.__qualname__ = cls.__qualname__
    wrapped = copy.copy(model)
    wrapped.__class__ = keyed
    return wrapped


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


def first_run(model: nn.Module, example: Example, specs: tuple[InputSpec, ...]) -> Any:
    """Forward once on the declared inputs, before any export; what it returns.

    A model that cannot run on them is the user's mistake, not the tool's: InputSpecError naming each
    input as declared (name, dtype, shape) and what the last layer forward entered expects of its input.
    """
    entered: list[tuple[str, nn.Module]] = []

    def record(name: str):
        def hook(module: nn.Module, _args: Any) -> None:
            entered.append((name, module))

        return hook

    leaves = [(n, m) for n, m in model.named_modules() if n and not any(True for _ in m.children())]
    handles = [m.register_forward_pre_hook(record(n)) for n, m in leaves]
    try:
        with torch.no_grad():
            return model(*(example[s.name] for s in specs))
    except Exception as error:
        declared = ", ".join(f"{s.name} {s.dtype} {tuple(example[s.name].shape)}" for s in specs)
        where = f"; {layer_expectation(*entered[-1])}" if entered else ""
        raise InputSpecError(
            f"forward cannot run on the declared inputs ({declared}): {first_line(error)}{where}; declare each "
            "input of forward as it takes it: --input NAME:SHAPE[:DTYPE[:LOW..HIGH]] (batch first)"
        ) from None
    finally:
        for handle in handles:
            handle.remove()


def layer_expectation(name: str, module: nn.Module) -> str:
    """What a layer takes, in words: ``conv (Conv2d) takes (N, 3, H, W)``; its class name for other layers."""
    kind = type(module).__name__
    conv = {nn.Conv1d: "L", nn.Conv2d: "H, W", nn.Conv3d: "D, H, W"}
    if isinstance(module, nn.Embedding):
        takes = f"integer ids in [0, {module.num_embeddings - 1}] (int64)"
    elif isinstance(module, nn.Linear):
        takes = f"(..., {module.in_features})"
    elif type(module) in conv:
        takes = f"(N, {module.in_channels}, {conv[type(module)]})"
    elif isinstance(module, nn.RNNBase):
        takes = f"(N, T, {module.input_size})" if module.batch_first else f"(T, N, {module.input_size})"
    elif isinstance(module, nn.LayerNorm):
        takes = f"(..., {', '.join(map(str, module.normalized_shape))})"
    elif isinstance(module, nn.modules.batchnorm._BatchNorm):
        takes = f"(N, {module.num_features}, ...)"
    else:
        return f"the last layer it entered is {name} ({kind})"
    return f"the last layer it entered, {name} ({kind}), takes {takes}"


def describe_outputs(
    model: nn.Module,
    example: Example,
    specs: tuple[InputSpec, ...],
    names: tuple[str, ...] | None,
    default: str,
    value: Any = None,
) -> tuple[OutputSpec, ...]:
    """The flattened outputs at ``example``: names (``names``, or from what forward returns), dtypes,
    and shapes with each dynamic axis named by the input label whose size moves it. ``value``: what
    forward returned on ``example`` (``first_run``), so it is not run again."""
    if value is None:
        value = first_run(model, example, specs)
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
    labels = {part for s in specs for label in s.axes.values() for part in label_parts(label)}
    size_of = {label: s.shape[axis] for s in specs for axis, label in s.axes.items()}
    sums = [label for label in size_of if len(label_parts(label)) > 1]
    for label in sorted(labels):
        for doubled in (False, True):  # one longer, then twice as long: a strided conv's frame count moves so
            moved = _resized_run(model, example, specs, label, doubled)
            for shape, (_, leaf) in zip(shapes, moved or [], strict=False):
                if len(shape) != leaf.dim():
                    continue  # the rank itself moves (a squeeze at size 1): left concrete; verify names it
                for axis, (before, after) in enumerate(zip(shape, leaf.shape, strict=True)):
                    if isinstance(before, int) and before != after:
                        # the same size as the input's axis: that label; a size that follows it another way (a
                        # strided conv's frames): a label of its own, dynamic, whose size verify does not assume
                        # (a cache's present: the past and the new tokens, a sum label of the inputs')
                        summed = [t for t in sums if label in label_parts(t) and size_of[t] == before]
                        shape[axis] = (
                            label if before == size_of[label] else summed[0] if summed else f"{label}_{DERIVED}"
                        )
    return tuple(
        OutputSpec(name, tuple(shape), str(leaf.dtype).removeprefix("torch."))
        for name, shape, (_, leaf) in zip(found, shapes, leaves, strict=True)
    )


def _resized_run(
    model: nn.Module, example: Example, specs: tuple[InputSpec, ...], label: str, doubled: bool = False
) -> list | None:
    """Forward's flattened outputs with every axis labelled ``label`` one larger, or twice as large
    (``doubled``: an output that moves by one per stride of its input moves then); None when that fails."""
    args = []
    for spec in specs:
        value = example[spec.name]
        for axis, name in spec.axes.items():
            if label in label_parts(name):  # a sum label (the mask of the past and new tokens) moves with its parts
                value = torch.cat([value, value if doubled else value.narrow(axis, 0, 1)], dim=axis)
        args.append(value)
    try:
        with torch.no_grad():
            return flatten(model(*args))
    except Exception:  # a model that refuses other sizes: its shapes stay concrete, and verify will say why
        return None


def forward_parameters(model: nn.Module) -> list[str]:
    """The names forward takes positionally or by keyword, in order."""
    return _positional_parameters(model)


def _positional_parameters(model: nn.Module) -> list[str]:
    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError) as error:
        raise InputSpecError(f"cannot read forward's parameters: {first_line(error)}") from None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in params if p.kind in kinds]
