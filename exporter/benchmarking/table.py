"""The table ``exporter bench`` prints: one block per batch size, eager first, then notes.

Formatting only: it reads a BenchReport's fields and measures nothing.
"""

from __future__ import annotations

import textwrap
from typing import Any

from .. import formats
from ..tables import human_size, printable

WIDTH = 100  # columns: every line fits a terminal this wide
_COLUMNS = (  # header, width, right-aligned: 93 columns in all
    ("runtime", 16, False),
    ("max diff", 8, True),
    ("top-1", 6, True),
    ("p50 ms", 8, True),
    ("p99 ms", 8, True),
    ("samples/s", 9, True),
    ("vs eager", 8, True),
    ("GFLOP/s", 7, True),
    ("of peak", 7, True),
    ("", 1, False),  # "!": a figure that does not add up (see the flags below the table)
)


def _where(report: Any) -> str:
    """The device the runtimes ran on, named as the machine reports it."""
    versions = report.versions
    if str(report.device).startswith("cuda"):
        return f"{report.device} ({versions.get('gpu', '?')}; host {versions.get('processor', '?')})"
    return f"the CPU ({versions.get('processor', '?')})"


def render(report: Any) -> str:
    flops = report.flops
    threads = report.threads
    lines = [
        f"bench {report.model} ({report.artifact_dir}) on {_where(report)}: "
        f"torch {threads['torch_intra_op']} threads, onnxruntime intra-op {threads['onnxruntime_intra_op']}, "
        f"inter-op {threads['onnxruntime_inter_op']} ({threads['cores_available']} cores available)",
        "FLOPs: "
        + (
            f"{flops.per_sample:,} per sample (2 x multiply-accumulates of {len(flops.layers)} Linear/Conv2d layers)"
            if flops.per_sample is not None
            else "unknown (no Linear or Conv2d layer): GFLOP/s not shown"
        ),
        f"matmul peak: {report.peak.gflops_per_s:.1f} GFLOP/s ({report.peak.method}, {report.peak.threads} threads)",
        "sizes: " + ", ".join(f"{rt} {human_size(size)}" for rt, size in _sizes(report).items()),
    ]
    if report.verified is False:
        lines.append("note: this folder's last verification FAILED: its outputs may not be eager's (exporter verify)")
    lines = [_wrap(line) for line in lines]
    batch = None
    for row in report.results:
        if row.batch_size != batch:
            batch = row.batch_size
            lines += ["", f"batch {batch}:", _row([c[0] for c in _COLUMNS]).rstrip()]
        lines.append(printable(_row(_cells(row)).rstrip()))
    footer = [_ort_line(report.onnxruntime_settings), _timing_line(report.config)]
    if any(formats.FORMATS[r.format].quantized for r in report.results if r.format in formats.FORMATS):
        footer.append(
            "int8: GFLOP/s counts the same multiply-accumulates, done in integer, against the float32 peak (so it can "
            "pass 100%); its top-1 counting near ties within the quantisation bound: " + ", ".join(_near_ties(report))
        )
    footer += [f"note: {note}" for note in report.notes]
    lines += ["", *(_wrap(line) for line in footer)]
    if report.flags:
        lines += ["", "! figures that do not add up (the measurement, not the artifact):"]
        lines += [_wrap(f"  {flag}", indent="    ") for flag in report.flags]
    errors = report.errors
    if errors:
        lines += ["", f"{len(errors)} measurement(s) failed:", *(_wrap(f"  {e}", indent="    ") for e in errors)]
    return "\n".join(lines)


def _wrap(text: str, indent: str = "  ") -> str:
    """Prose under the table, wrapped to WIDTH columns like the table itself (``printable`` first: the model's
    name and notes come from the folder)."""
    text = printable(text)
    return textwrap.fill(text, WIDTH, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)


def _sizes(report: Any) -> dict[str, int]:
    return {r.runtime: r.size_bytes for r in report.results if r.size_bytes is not None}


def _near_ties(report: Any) -> list[str]:
    return [
        f"{r.runtime} {100 * r.top1_agreement_within_tolerance:.1f}% at batch {r.batch_size}"
        for r in report.results
        if r.top1_agreement_within_tolerance is not None
    ]


def _row(cells: list[str]) -> str:
    return "  ".join(
        text.rjust(width) if right else text.ljust(width)
        for text, (_, width, right) in zip(cells, _COLUMNS, strict=True)
    )


def _cells(row: Any) -> list[str]:
    if row.error:
        return [row.runtime, "-", "-", "failed", *[""] * 6]
    reference = row.runtime == "eager"
    return [
        row.runtime,
        "ref" if reference else _num(row.max_abs_diff, "{:.2e}"),
        "ref" if reference else _num(None if row.top1_agreement is None else 100 * row.top1_agreement, "{:.1f}%"),
        _num(row.latency_ms_p50, "{:.3f}"),
        _num(row.latency_ms_p99, "{:.3f}"),
        _num(row.throughput_per_s, "{:,.0f}"),
        _num(row.speedup_vs_eager, "{:.2f}x"),
        _num(row.gflops_per_s, "{:.1f}"),
        _num(None if row.peak_fraction is None else 100 * row.peak_fraction, "{:.0f}%"),
        "!" if row.flags else "",
    ]


def _num(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def _ort_line(settings: dict[str, Any]) -> str:
    return (
        f"onnxruntime: {settings['graph_optimization_level']}, intra-op {settings['intra_op_num_threads']} threads, "
        f"inter-op {settings['inter_op_num_threads']}, {settings['execution_mode']}, spinning workers, IO binding; "
        "torch runtimes under torch.inference_mode"
    )


def _timing_line(config: dict[str, Any]) -> str:
    return (
        f"timing: warm-up ({config['warmup']} calls, {config['warmup_s']:g} s, then until the latency settles), "
        f"then at least {config['repeats']} "
        f"calls and {config['min_time_s']:g} s per row, one call at a time; samples/s = batch / p50 latency; "
        "max diff and top-1 against eager on the same seeded samples, at least "
        f"{config.get('accuracy_samples', 1024):,} per batch size (whole batches; the timed batch is the first)"
    )
