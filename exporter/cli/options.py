"""What the commands share: the error-to-exit-code group, option bundles, parsers and rendering.

Every parser here is one of the configs' (``config.parse_shape`` ...), wrapped so its error
becomes a click usage error (exit 2). Nothing here imports torch.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..config import (
    DEFAULT_MIN_AGREEMENT,
    DEFAULT_SAMPLES,
    DISTRIBUTIONS,
    HEAVY_FLOPS_PER_SAMPLE,
    LARGE_MODEL_PARAMETERS,
    MAX_SEED,
    NAN_POLICIES,
    QUANTIZED_SAMPLES,
    VerifyConfig,
    check_device,
    parse_range,
)
from ..errors import ArtifactDirError, CommandTimeout, ExporterError, first_line
from ..interface import parse_missing
from ..paths import check_writable_file


class ExporterGroup(click.Group):
    """A group whose errors are one line each: usage problems exit 2, failures 1."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # noqa: ARG002
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as error:
            hint = f" (see '{error.ctx.command_path} --help')" if error.ctx else ""
            fail(f"{error.format_message()}{hint}", 2)
        except click.ClickException as error:
            fail(error.format_message(), error.exit_code)
        except click.Abort:
            fail("aborted (Ctrl-C): nothing half-written was kept", 130)
        except CommandTimeout as error:
            fail(str(error), error.exit_code)
        except ExporterError as error:
            fail(first_line(error, limit=2000), error.exit_code)
        except Exception as error:  # a bug, not a user mistake: still one line
            if os.environ.get("EXPORTER_DEBUG"):
                raise
            fail(
                f"internal error: {type(error).__name__}: {first_line(error)} (set EXPORTER_DEBUG=1 for the traceback)",
                1,
            )
        sys.exit(code if isinstance(code, int) else 0)


def fail(message: str, code: int) -> None:
    from ..tables import printable

    click.echo(f"error: {printable(message)}", err=True)  # one line, whatever a name in it holds
    sys.exit(code)


def parsed(parse: Callable[[str], Any]) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback that runs one of the configs' parsers: its error becomes a usage error (exit 2)."""

    def callback(_ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value is None:
            return None
        try:
            return parse(value)
        except ExporterError as error:
            raise click.BadParameter(str(error)) from None

    return callback


def device_name(text: str) -> str:
    check_device(text)
    return text


def json_option(what: str) -> Callable:
    """``--json PATH|-``: the JSON report written to PATH, or to stdout (alone, or with ``-``) instead of the table."""
    return click.option(
        "--json",
        "json_path",
        is_flag=False,
        flag_value="-",
        default=None,
        metavar="PATH|-",
        help=f"Write {what} as JSON to PATH, or to stdout with '-' (or --json alone) instead of the table.",
    )


def emit(result: Any, json_path: str | None) -> None:
    """Render ``result`` (anything with ``to_dict`` and ``render``): the table, and/or its JSON where asked."""
    data = json.dumps(result.to_dict(), indent=2)
    if json_path == "-":
        click.echo(data)
        return
    click.echo(result.render())
    if json_path is not None:
        try:
            Path(json_path).write_text(data + "\n")  # a path the user named
        except OSError as error:
            raise ArtifactDirError(f"cannot write the JSON report to {json_path} ({error.strerror})") from None


def check_json_target(json_path: str | None) -> None:
    """Refuse an unwritable --json PATH before any work."""
    if json_path not in (None, "-"):
        check_writable_file(Path(json_path), "--json")


# Options that decide how runtimes are fed and judged, shared by export and verify (``comparison_options``).
COMPARISON_OPTIONS = (
    click.option(
        "--samples",
        type=click.IntRange(min=1),
        default=None,
        metavar="N",
        help=f"Total random samples, spread over the batch sizes. Default: {DEFAULT_SAMPLES}, or "
        f"{QUANTIZED_SAMPLES:,} when an int8 artifact is judged (its top-1 agreement needs that many); "
        f"one batch per batch size for a model of {LARGE_MODEL_PARAMETERS // 10**6}M parameters or "
        f"{HEAVY_FLOPS_PER_SAMPLE // 10**9} GFLOP per sample or more.",
    ),
    click.option(
        "--batch-size",
        "batch_sizes",
        type=click.IntRange(min=1),
        multiple=True,
        metavar="B",
        help="Batch size to verify at (repeatable). Default: 1, the export batch and 64, then one batch of 128 "
        "(so a branch on a batch size past 100 is caught). Given, they replace the defaults, 128 included.",
    ),
    click.option(
        "--atol",
        type=click.FloatRange(min=0),
        default=None,
        metavar="X",
        help="Absolute tolerance for float outputs, finite (default by dtype: float32 1e-5, float16 1e-3, "
        "bfloat16 1e-2). Not for int8 runtimes (their own policy) or integer and bool outputs (exact).",
    ),
    click.option(
        "--rtol",
        type=click.FloatRange(min=0),
        default=None,
        metavar="X",
        help="Relative tolerance for float outputs, finite (default by dtype: float32 1e-4, float16 1e-3, "
        "bfloat16 1e-2). Not for int8 runtimes (their own policy) or integer and bool outputs (exact).",
    ),
    click.option(
        "--distribution",
        type=click.Choice(DISTRIBUTIONS),
        default="uniform",
        show_default=True,
        help="Distribution of the random float inputs.",
    ),
    click.option(
        "--input-range",
        callback=parsed(parse_range),
        default=None,
        metavar="LOW,HIGH",
        help="Range of every random float input (LOW < HIGH, finite): uniform in [LOW, HIGH), or normal centred "
        "in it with std (HIGH-LOW)/4, so ~95 % fall inside. Default: each input's own range (--input "
        "NAME:SHAPE:DTYPE:LOW..HIGH at export), else 0,1. Integer and bool inputs keep their own range.",
    ),
    click.option(
        "--nan-policy",
        type=click.Choice(NAN_POLICIES),
        default=None,
        help="'match' passes NaN/Inf found at the same positions on both sides; 'fail' fails them. Default: "
        "as recorded at export, else fail.",
    ),
    click.option(
        "--missing",
        multiple=True,
        callback=parsed(lambda values: tuple(parse_missing(v) for v in values) or None),
        metavar="NAME:nan[,inf]",
        help="An input that may hold missing values (repeatable): verification also feeds it NaN (and +-Inf) at "
        "some positions and compares under --nan-policy. Default: as recorded at export, else none.",
    ),
    click.option(
        "--probes/--no-probes",
        default=True,
        help="Also try every dynamic axis at edge sizes (1, 2, 3, primes, below half, past twice the example, "
        "its max) and every input at edge values (exact zeros, the range's ends, constant rows, repeats).",
    ),
    click.option("--allow-unused", is_flag=True, help="Do not fail on parameters forward never uses."),
    click.option(
        "--accept-tracer-warnings",
        is_flag=True,
        help="Pass a legacy ONNX export although its trace warned that it froze a value or a size "
        "(after you have checked the model's branches).",
    ),
    click.option(
        "--min-agreement",
        type=click.FloatRange(0, 1),
        default=DEFAULT_MIN_AGREEMENT,
        show_default=True,
        metavar="SHARE",
        help="Quantised (int8) runtimes: share of samples whose top-1 class must agree with eager.",
    ),
    click.option(
        "--localize/--no-localize",
        default=None,
        help="Find the first module whose output differs from eager's (ONNX, pt2). Default: only for a runtime "
        "that fails.",
    ),
)


def comparison_options(func: Callable) -> Callable:
    """COMPARISON_OPTIONS on a command: how runtimes are fed and judged, shared by export and verify."""
    for option in reversed(COMPARISON_OPTIONS):
        func = option(func)
    return func


def data_options(func: Callable) -> Callable:
    """``--inputs`` and ``--max-accuracy-drop``: the user's own (labelled) data, for export's verification too."""
    func = click.option(
        "--max-accuracy-drop",
        type=click.FloatRange(0, 1),
        metavar="SHARE",
        help="With labelled --inputs: int8 runtimes pass when their accuracy is at most this share below eager's "
        "(0.005: half a point), instead of by top-1 agreement.",
    )(func)
    return click.option(
        "--inputs",
        "inputs_file",  # --input (one input of forward, at export) is "inputs"
        type=click.Path(path_type=Path),
        metavar="FILE",
        help="Replay inputs from an .npz (or .npy) file: one --save-inputs wrote, or your own data. An .npz with "
        "'inputs' and 'labels' arrays (or one array per input name and 'labels') adds accuracy per runtime.",
    )(func)


def verify_config(**kw: Any) -> VerifyConfig:
    return VerifyConfig(
        seed=kw.get("seed", 0),
        samples=kw["samples"],
        batch_sizes=tuple(kw["batch_sizes"]),
        distribution=kw["distribution"],
        input_range=kw["input_range"],
        atol=kw["atol"],
        rtol=kw["rtol"],
        nan_policy=kw["nan_policy"],
        missing=kw.get("missing"),
        probes=kw.get("probes", True),
        allow_unused=kw["allow_unused"],
        accept_tracer_warnings=kw["accept_tracer_warnings"],
        min_agreement=kw["min_agreement"],
        max_accuracy_drop=kw.get("max_accuracy_drop"),
        inputs_path=kw.get("inputs_file"),
        save_inputs=kw.get("save_inputs"),
        save_outputs=kw.get("save_outputs"),
        device=kw.get("device"),
        source=kw.get("source"),
        weights=kw.get("weights"),
        trust=kw.get("trust", False),
        localize=kw.get("localize"),
    )


def seed_option(help_text: str) -> Callable:
    """``--seed N``: 0 to 2**63-1, what torch.manual_seed takes; anything else is a usage error (exit 2)."""
    return click.option(
        "--seed", type=click.IntRange(0, MAX_SEED), default=0, show_default=True, metavar="N", help=help_text
    )


def _start_timeout(ctx: click.Context, _param: click.Parameter, seconds: float | None) -> float | None:
    """Arm SIGALRM for ``--timeout``: past it, the command stops with one line (exit 1). ONNX Runtime runs
    are ended through RunOptions.terminate (runners.onnxruntime.stoppable_run); torch between operators."""
    import signal

    if seconds is None or not hasattr(signal, "setitimer"):
        return seconds

    def expired(_signum, _frame):
        from ..errors import CommandTimeout

        raise CommandTimeout(
            f"stopped after --timeout {seconds:g} s: nothing half-written was kept; give it more time, or check the "
            "model (an ONNX Loop that never ends?)"
        )

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)

    def disarm() -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    ctx.call_on_close(disarm)
    return seconds


def timeout_option(func: Callable) -> Callable:
    """``--timeout SECONDS``: stop the command past that many seconds (exit 1, one line)."""
    return click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True, max=10**7),
        metavar="SECONDS",
        callback=_start_timeout,
        expose_value=False,
        help="Stop past this many seconds with one line (exit 1), runtimes included; Ctrl-C stops at once (exit 130).",
    )(func)


def trust_option(func: Callable) -> Callable:
    """``--trust-artifacts``: load TorchScript and pt2 (which run code) from a folder whose signature does not check."""
    return click.option(
        "--trust-artifacts",
        "trust",
        is_flag=True,
        help="Load TorchScript and pt2 files (loading them runs their code) even when the folder's signature "
        "does not check with this machine's key. Only for folders you trust.",
    )(func)


def quiet_option(func: Callable) -> Callable:
    """``--quiet``: no progress on stderr, even on a terminal (elsewhere there is none anyway)."""
    return click.option("--quiet", "-q", is_flag=True, help="No progress on stderr (shown only on a terminal).")(func)


def source_option(func: Callable) -> Callable:
    """``--source``: the code an artifact was exported from, never taken from the artifact itself."""
    return click.option(
        "--source",
        metavar="FILE.py[:CLASS]|MODULE:CLASS",
        help="The code the artifact was exported from: its file.py (or file.py:Class, as export took it), or its "
        "package.module:Class (its sha256 or name is checked; never taken from the artifact itself).",
    )(func)


def device_option(help_text: str, default: str | None = None) -> Callable:
    return click.option(
        "--device",
        callback=parsed(device_name),
        default=default,
        show_default=default is not None,
        metavar="DEVICE",
        help=help_text,
    )
