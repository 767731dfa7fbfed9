"""Parameter accounting: every eager parameter, and where it is in each artifact.

Eager parameters come from ``named_parameters()`` (a tied tensor once, its other
names kept as aliases). Buffers (BatchNorm statistics, normalisation constants) are
listed apart. In an artifact a parameter is *matched* when a tensor of the same name
(or alias) and shape is there; its values must then be identical. A tied parameter the
artifact holds under several of its names is matched (and counted) once, and every one
of those copies is claimed and compared: none is an exporter constant. A parameter with
no tensor of its own is *unused* when no gradient path leads from forward's outputs back
to it (the artifact lacks weights the model declares: a failure unless allowed) or
*folded* when forward uses it and the exporter merged it into another tensor
(BatchNorm into the convolution before it; the logits prove the fold).
Artifact tensors that match no parameter or buffer are exporter constants, listed apart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import formats
from ..interface import flatten
from ..runners.base import to_numpy


@dataclass
class EagerParameter:
    name: str
    shape: tuple[int, ...]
    count: int
    aliases: list[str] = field(default_factory=list)  # other names of a tied tensor
    used: bool | None = None  # None: usage could not be established


@dataclass
class ArtifactParameters:
    """How one artifact's tensors account for the eager parameters."""

    runtime: str
    total: int = 0  # parameters accounted for in the artifact (matched + folded)
    matched: list[str] = field(default_factory=list)
    folded: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)  # missing, and forward never touches them
    altered: list[dict[str, Any]] = field(default_factory=list)  # matched name, different values
    rewritten: bool = False  # altered values, but the outputs agree: the exporter folded into them
    buffers: list[str] = field(default_factory=list)  # eager buffers found in the artifact
    constants: list[dict[str, Any]] = field(default_factory=list)  # tensors the exporter added
    explanation: str = ""
    reasons: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.reasons


@dataclass
class ParameterReport:
    eager_total: int
    parameters: list[EagerParameter]
    buffers: list[dict[str, Any]]
    artifacts: dict[str, ArtifactParameters]
    allow_unused: bool = False

    @property
    def passed(self) -> bool:
        return all(a.passed for a in self.artifacts.values())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name, art in self.artifacts.items():
            data["artifacts"][name]["passed"] = art.passed
        data["passed"] = self.passed
        return data


def eager_parameters(model: nn.Module, example: tuple[torch.Tensor, ...] | torch.Tensor | None) -> list[EagerParameter]:
    """Unique parameters with their aliases; ``used`` from the autograd graph of one forward when possible."""
    by_id: dict[int, EagerParameter] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        entry = by_id.get(id(p))
        if entry is None:
            by_id[id(p)] = EagerParameter(name, tuple(p.shape), p.numel())
        else:
            entry.aliases.append(name)
    used = _used_by_forward(model, example) if example is not None else None
    for p in model.parameters():
        if used is not None:
            by_id[id(p)].used = used.get(id(p))
    return list(by_id.values())


def _used_by_forward(model: nn.Module, example: tuple[torch.Tensor, ...] | torch.Tensor) -> dict[int, bool] | None:
    """Which parameters a backward pass would give a gradient (None if forward cannot record one).

    One forward with gradients recorded, then a walk of the autograd graph from the outputs: a
    parameter is used when its AccumulateGrad node is reachable, exactly the leaves backward
    would write ``.grad`` for. Backward itself is not run: it would allocate a gradient the size
    of every weight (the model's size again) to learn one bit per parameter.
    """
    params = list(model.parameters())
    saved = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(True)
        reached = _reached(model, example)
        if reached is None or any(id(p) not in reached for p in params):
            # A value cached in eval mode (timm LeViT's gathered attention biases) was computed without
            # gradients: its parameter's values reach the output, but no graph leads back to it. Modules
            # drop such caches when switched to training; switched back, forward computes them again, now
            # recorded. The switch is undone, and the caches dropped once more, so none holds a graph.
            with _caches_dropped(model):
                again = _reached(model, example)
            if reached is None and again is None:
                return None
            reached = (reached or set()) | (again or set())
        return {id(p): id(p) in reached for p in params}
    except Exception:  # a model that cannot run with gradients recorded: usage stays unknown
        return None
    finally:
        for p, flag in zip(params, saved, strict=True):
            p.requires_grad_(flag)


# Eager values kept beside the digests, smallest parameters first: enough for every parameter of
# a small model (the mlp's are 2.7 MB), so a differing tensor's report says by how much; a large
# model's big tensors are kept as digests only, so that the eager model can be let go before any
# runtime loads its own copy of the weights (verification holds the weights once).
KEEP_VALUES_BYTES = 64 << 20
_CHUNK = 16 << 20  # bytes per read while hashing a tensor still on disk


@dataclass(frozen=True)
class TensorDigest:
    """An eager parameter as numpy holds it (``runners.base.to_numpy``): dtype, shape and sha256 of its bytes."""

    dtype: np.dtype
    shape: tuple[int, ...]
    sha256: str

    @classmethod
    def of(cls, values: np.ndarray) -> TensorDigest:
        flat = np.ascontiguousarray(values)
        return cls(flat.dtype, tuple(flat.shape), hashlib.sha256(flat.reshape(-1).view(np.uint8)).hexdigest())

    def holds(self, values: Any) -> bool:
        """Whether ``values`` (an array, or a tensor still on disk) are exactly these bytes, dtype and size."""
        if np.dtype(values.dtype) != self.dtype or int(np.prod(values.shape)) != int(np.prod(self.shape)):
            return False
        if hasattr(values, "offset") and hasattr(values, "nbytes") and hasattr(values, "path"):
            return _file_sha256(values.path, values.offset, values.nbytes) == self.sha256
        return TensorDigest.of(np.asarray(values)).sha256 == self.sha256


def _file_sha256(path, offset: int, nbytes: int) -> str:
    """sha256 of ``nbytes`` of a file from ``offset``, read a chunk at a time into one buffer."""
    digest, buffer = hashlib.sha256(), bytearray(min(_CHUNK, max(1, nbytes)))
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        handle.seek(offset)
        left = nbytes
        while left:
            got = handle.readinto(view[: min(left, len(view))])
            if not got:
                return ""  # the file ends inside the tensor: it holds other bytes
            digest.update(view[:got])
            left -= got
    return digest.hexdigest()


@contextmanager
def _caches_dropped(model: nn.Module) -> Iterator[None]:
    """Every module switched to training and back on entry and on exit, each mode restored as it was."""
    modes = [(module, module.training) for module in model.modules()]

    def drop() -> None:
        model.train(True)  # where modules drop eval-mode caches (timm's LeViT overrides train so)
        for module, mode in modes:  # parents first: each child's own mode is set after its parent's
            module.train(mode)

    drop()
    try:
        yield
    finally:
        drop()


def _reached(model: nn.Module, example: tuple[torch.Tensor, ...] | torch.Tensor) -> set[int] | None:
    """ids of the leaves one forward's autograd graph reaches from the outputs (None: no output has one)."""
    with torch.enable_grad():
        out = model(*(example if isinstance(example, tuple) else (example,)))
        roots = [leaf.grad_fn for _, leaf in flatten(out) if torch.is_tensor(leaf) and leaf.requires_grad]
    if not roots:
        return None
    reached: set[int] = set()
    seen: dict[int, object] = {}  # by id, holding each node so that no id is reused mid-walk
    pending = [node for node in roots if node is not None]
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen[id(node)] = node
        variable = getattr(node, "variable", None)  # AccumulateGrad: the leaf it writes
        if variable is not None:
            reached.add(id(variable))
        pending += [child for child, _ in node.next_functions if child is not None]
    return reached


@dataclass(frozen=True)
class EagerSide:
    """What every artifact is accounted against: the eager parameters, each one's digest, the values of
    those kept (``KEEP_VALUES_BYTES``) and the buffer names. It holds no reference to the model."""

    parameters: list[EagerParameter]
    values: dict[str, np.ndarray]  # by the parameter's (first) name: the kept ones
    buffer_names: frozenset[str]
    allow_unused: bool = False  # parameters forward never uses may be absent (--allow-unused)
    digests: dict[str, TensorDigest] = field(default_factory=dict)  # the parameters whose values were let go

    @classmethod
    def of(
        cls,
        model: nn.Module,
        example: tuple[torch.Tensor, ...] | None,
        allow_unused: bool = False,
        keep_bytes: int | None = None,
    ) -> EagerSide:
        """``keep_bytes``: how many bytes of eager values to keep (default KEEP_VALUES_BYTES); the rest digests."""
        keep_bytes = KEEP_VALUES_BYTES if keep_bytes is None else keep_bytes
        named = dict(model.named_parameters())
        values, digests, kept = {}, {}, 0
        for name, tensor in sorted(named.items(), key=lambda item: item[1].numel() * item[1].element_size()):
            array = to_numpy(tensor)
            if kept + array.nbytes <= keep_bytes:
                values[name], kept = array, kept + array.nbytes
            else:
                digests[name] = TensorDigest.of(array)
        return cls(
            eager_parameters(model, example),
            values,
            frozenset(n for n, _ in model.named_buffers()),
            allow_unused,
            digests,
        )

    def difference(self, name: str, values: Any) -> float | None:
        """None when ``values`` are exactly parameter ``name``'s (same dtype), else the max abs difference:
        NaN when only its digest was kept (it differs, by an amount no longer known)."""
        if name in self.values:
            return _difference(values, self.values[name])
        return None if self.digests[name].holds(values) else float("nan")

    @property
    def total(self) -> int:
        return sum(p.count for p in self.parameters)


def account(
    runtime: str, eager: EagerSide, artifact: Mapping[str, np.ndarray], outputs_agree: bool, quantized: bool = False
) -> ArtifactParameters:
    """Match ``artifact`` tensors (name -> array) against the eager parameters.

    Every name a parameter (or its aliases) is held under is matched to it and its values
    compared; a differing alias copy is altered as ``{"name": parameter, "held_as": alias}``.
    A matched tensor whose values differ is a failure when the runtime's outputs also
    disagree (it explains them); when the outputs agree, the exporter rewrote it by a
    fold (BatchNorm into the convolution before it), which the outputs prove.
    """
    result = ArtifactParameters(runtime)
    claimed = _match(result, eager, artifact)
    _leftovers(result, eager, artifact, claimed)
    result.rewritten = bool(result.altered) and outputs_agree
    result.explanation = _explanation(result, eager, quantized)
    result.reasons = _reasons(result, eager)
    return result


def _match(result: ArtifactParameters, eager: EagerSide, artifact: Mapping[str, np.ndarray]) -> set[str]:
    """Each eager parameter matched, folded or unused; a matched one's copies compared. The names claimed."""
    claimed: set[str] = set()
    for param in eager.parameters:
        # Every name the artifact holds this tensor under (a tied weight may be there under each of
        # its names: torch.export's state_dict is): all are claimed, each one's values compared.
        names = [param.name, *param.aliases]
        held = {n: artifact[n] for n in names if n in artifact}  # each array made once
        hits = [n for n, values in held.items() if tuple(values.shape) == param.shape]
        if not hits:
            (result.unused if param.used is False else result.folded).append(param.name)
            continue
        claimed.update(hits)
        result.matched.append(param.name)
        for hit in hits:
            diff = eager.difference(param.name, held[hit])
            if diff is not None:
                # None: it differs, and only its digest was kept (no values to say by how much)
                item: dict[str, Any] = {"name": param.name, "max_abs_diff": None if diff != diff else diff}
                if hit != param.name:
                    item["held_as"] = hit  # the alias whose copy differs
                result.altered.append(item)
    return claimed


def _leftovers(result: ArtifactParameters, eager: EagerSide, artifact: Mapping[str, np.ndarray], claimed) -> None:
    """Tensors no parameter claimed: eager's buffers, and the exporter's own constants."""
    for name in artifact:  # by name: a lazy mapping makes only the arrays looked at
        if name in claimed:
            continue
        if name in eager.buffer_names:
            result.buffers.append(name)
        else:
            values = artifact[name]
            result.constants.append({"name": name, "shape": list(values.shape), "count": int(values.size)})


def _explanation(result: ArtifactParameters, eager: EagerSide, quantized: bool) -> str:
    """``669,706 = 669,706 in 6 tensors matched by name and shape; not counted: ...``; sets ``total``."""
    counts = {p.name: p.count for p in eager.parameters}
    matched, folded, unused = (
        sum(counts[n] for n in names) for names in (result.matched, result.folded, result.unused)
    )
    result.total = matched + folded + (unused if eager.allow_unused else 0)
    parts = [f"{matched:,} in {len(result.matched)} tensors matched by name and shape"]
    if result.folded:
        how = (
            "quantised, or folded then quantised, into int8 tensors"
            if quantized
            else "folded into other tensors by the exporter"
        )
        parts.append(f"{folded:,} {how} ({', '.join(result.folded)})")
    if result.unused:
        allowed = "allowed as " if eager.allow_unused else ""
        parts.append(f"{unused:,} {allowed}unused by forward and absent ({', '.join(result.unused)})")
    extra = ""
    if result.constants:
        elements = sum(c["count"] for c in result.constants)
        extra = f"; not counted: {len(result.constants)} exporter constant(s), {elements:,} elements"
    if result.buffers:
        extra += f"; {len(result.buffers)} buffer(s) listed apart"
    if result.rewritten:
        names = ", ".join(_held(a) for a in result.altered)
        extra += f"; values of {names} rewritten by the exporter (a fold), proved by the outputs"
    return f"{result.total:,} = " + " + ".join(parts) + extra


def _reasons(result: ArtifactParameters, eager: EagerSide) -> list[str]:
    reasons = []
    if result.unused and not eager.allow_unused:
        reasons.append(
            f"parameters {', '.join(result.unused)} are never used by forward, so the artifact lacks them "
            "(pass --allow-unused if that is intended)"
        )
    for item in [] if result.rewritten else result.altered:
        by = item["max_abs_diff"]
        how = f"max abs diff {by:.3g}" if by is not None else "its sha256 differs; the eager values were let go"
        reasons.append(f"parameter {_held(item)} in the artifact differs from the eager model's ({how})")
    if result.total != eager.total:
        reasons.append(f"parameter total {result.total:,} differs from eager's {eager.total:,}")
    return reasons


def _difference(values: Any, reference: np.ndarray) -> float | None:
    """None when an artifact's tensor holds exactly the eager values (same dtype), else the max abs diff.

    A tensor still on disk (``onnx_wire.FileTensor``) is compared in chunks as it is read: the
    weights are never loaded whole beside the runtime that holds them.
    """
    if hasattr(values, "difference") and values.dtype == reference.dtype and values.size == reference.size:
        return values.difference(reference)
    values = np.asarray(values)
    if values.dtype == reference.dtype and values.shape == reference.shape and _equal(values, reference):
        return None
    return float(np.max(np.abs(values.astype(np.float64) - reference.astype(np.float64))))


def _equal(a: np.ndarray, b: np.ndarray, step: int = 1 << 24) -> bool:
    """``np.array_equal`` a slice at a time: its temporary is a slice's, not the tensor's size."""
    a, b = a.reshape(-1), b.reshape(-1)
    return all(np.array_equal(a[i : i + step], b[i : i + step]) for i in range(0, a.size, step)) if a.size else True


def _held(item: dict[str, Any]) -> str:
    """An altered parameter's name, with the alias it is held under when that copy is the one that differs."""
    return f"{item['name']} (held as {item['held_as']})" if "held_as" in item else item["name"]


@dataclass
class Accounting:
    """The eager parameters (and whether forward uses each), and each runtime's account of them
    (``result``: a results.RuntimeResult once its batches have run).

    A runtime's tensors are accounted for while it is loaded, then let go. A quantised runtime
    judged by its accuracy drop on labelled data is accounted for after that gate has judged
    (``settle``): whether it kept eager's accuracy is what proves its folds.
    """

    eager: EagerSide
    report: ParameterReport
    by_accuracy: bool = False  # quantised runtimes are judged by an accuracy drop (labelled inputs)
    pending: dict[str, tuple[Any, dict]] = field(default_factory=dict)

    @classmethod
    def of(
        cls, model: nn.Module, example: tuple[torch.Tensor, ...], allow_unused: bool, by_accuracy: bool
    ) -> Accounting:
        """``example``: forward's arguments for the one forward pass that tells which parameters it uses."""
        eager = EagerSide.of(model, example, allow_unused)
        report = ParameterReport(
            eager_total=eager.total,
            parameters=eager.parameters,
            buffers=[{"name": n, "shape": list(b.shape), "count": b.numel()} for n, b in model.named_buffers()],
            artifacts={},
            allow_unused=allow_unused,
        )
        return cls(eager, report, by_accuracy)

    def add(self, result: Any, found) -> None:
        """Account for ``found`` (the runtime's tensors by name), once its batches have run: whether
        its outputs agree element-wise is what proves a fold that rewrote a weight."""
        if self.by_accuracy and formats.FORMATS[result.format].quantized:
            # held until the gate judges, after the runtime (and any file it was read from) is gone
            self.pending[result.runtime] = (result, {name: np.asarray(values) for name, values in found.items()})
            return
        self._account(result, found, agree=True)

    def settle(self) -> None:
        """Account for the runtimes held back until the accuracy gate judged them."""
        for result, found in self.pending.values():
            self._account(result, found, agree=not result.reasons)
        self.pending.clear()

    def _account(self, result: Any, found, agree: bool) -> None:
        agree = agree and result.error is None and bool(result.batches) and all(b.passed for b in result.batches)
        quantized = formats.FORMATS[result.format].quantized
        self.report.artifacts[result.runtime] = account(result.runtime, self.eager, found, agree, quantized)
