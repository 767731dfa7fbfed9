"""The commands on an artifact folder that are not export or verify: ``bench`` (time it), ``triton``
(copy into a model repository) and ``trust`` (sign it). Registered on the group in ``cli``; nothing
here imports torch at import time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..config import TritonConfig
from ..progress import on_terminal
from .options import (
    check_json_target,
    device_option,
    emit,
    json_option,
    quiet_option,
    seed_option,
    source_option,
    timeout_option,
    trust_option,
)


@click.command("bench")
@click.argument("artifact_dir", type=click.Path(path_type=Path))
@click.option(
    "--batch-size",
    "batch_sizes",
    type=click.IntRange(min=1),
    multiple=True,
    metavar="B",
    help="Batch size to time (repeatable). Default: 1, 64 and 1024.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    metavar="N",
    help="torch.set_num_threads and ONNX Runtime intra-op threads. Default: every core this process may use.",
)
@click.option(
    "--runtime",
    "runtimes",
    multiple=True,
    metavar="NAME",
    help="Time only this runtime or format (repeatable: onnxruntime, onnx-int8, pt2, ...). Eager always runs. "
    "An unknown name is refused before torch loads.",
)
@click.option(
    "--warmup", type=click.IntRange(min=0), metavar="N", help="Untimed calls per row (default 5, and at least 0.1 s)."
)
@click.option("--repeats", type=click.IntRange(min=1), metavar="N", help="Timed calls per row, at least (default 5).")
@click.option(
    "--min-time",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Seconds of timed calls per row, at least (default 0.5).",
)
@seed_option("Seeds the benchmark's input.")
@click.option(
    "--accuracy-samples",
    type=click.IntRange(min=1),
    metavar="N",
    help="Samples each runtime's max diff and top-1 agreement with eager are measured on, per batch size "
    "(whole batches; default 1024).",
)
@device_option(
    "cpu, cuda, cuda:N or auto: where eager, TorchScript and pt2 run. ONNX Runtime uses its CUDA provider where "
    "installed (onnxruntime-gpu), else the CPU, which a note says.",
    default="cpu",
)
@source_option
@trust_option
@quiet_option
@timeout_option
@json_option("the results")
def bench_command(artifact_dir: Path, json_path: str | None, **kw: Any) -> None:
    """Time every runtime in ARTIFACT_DIR at each batch size, beside eager PyTorch.

    Per runtime and batch size: p50 and p99 latency, samples/s, GFLOP/s (FLOPs counted from
    the Linear and Conv2d layers) and its share of a float32 matmul peak measured in the same
    run, the artifact's size and its max abs diff against eager. Files are hash-checked before
    loading (a mismatch is exit 1). On the CPU unless --device says otherwise; ONNX Runtime uses
    its CUDA provider where installed (onnxruntime-gpu), else the CPU. Progress goes to stderr,
    the table to stdout.
    Exit 0, or 1 when a runtime failed to load or run (its rows say why), 2 on usage errors.

    \b
    Examples:
      exporter bench artifacts/mlp
      exporter bench artifacts/mlp --batch-size 1 --batch-size 256 --threads 1
      exporter bench artifacts/mlp --runtime onnxruntime --json bench.json
      exporter bench artifacts/mlp --device cuda
    """
    from ..config import BENCH_BATCH_SIZES, BenchConfig

    keys = ("warmup", "repeats", "seed", "source", "accuracy_samples", "trust", "device")
    given = {k: kw[k] for k in keys if kw[k] is not None}
    if kw["min_time"] is not None:
        given["min_time_s"] = kw["min_time"]
    batch_sizes = tuple(kw["batch_sizes"]) or BENCH_BATCH_SIZES
    config = BenchConfig(batch_sizes=batch_sizes, threads=kw["threads"], runtimes=tuple(kw["runtimes"]), **given)
    check_json_target(json_path)
    from ..benchmarking import bench

    with on_terminal(kw["quiet"]) as progress:
        report = bench(artifact_dir, config, progress=progress)
    emit(report, json_path)
    if report.errors:
        click.get_current_context().exit(1)


@click.command("triton")
@click.argument("artifact_dir", type=click.Path(path_type=Path))
@click.argument("repository", type=click.Path(path_type=Path))
@click.option(
    "--max-batch-size",
    type=click.IntRange(0, 2**31 - 1),
    default=64,
    show_default=True,
    metavar="N",
    help="Largest batch Triton forms; 0 turns batching off (dims then keep the batch dimension).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace this tool's version 1/ and config.pbtxt in model folders that are not empty; other files stay.",
)
@click.option(
    "--allow-unverified",
    is_flag=True,
    help="Write the repository even when the folder's recorded verification failed or is not of this manifest; "
    "each config then says why in a comment.",
)
@click.option(
    "--allow-untrusted-code",
    is_flag=True,
    help="Write the TorchScript model of a folder whose signature does not check, with a warning in its config, "
    "instead of refusing it (serving it runs the code it carries).",
)
def triton_command(
    artifact_dir: Path,
    repository: Path,
    max_batch_size: int,
    force: bool,
    allow_unverified: bool,
    allow_untrusted_code: bool,
):
    """Write ARTIFACT_DIR's ONNX and TorchScript artifacts as a Triton model repository.

    REPOSITORY gets NAME_onnx/ (onnxruntime_onnx) and NAME_torchscript/ (pytorch_libtorch),
    each a config.pbtxt and 1/model.onnx or 1/model.pt. Artifacts are hash-checked first;
    names, data types and dims come from the artifacts, the batch dimension left out.
    TorchScript tensors are named input__0, logits__0 (Triton's <name>__<index> rule).
    In a model folder that is not empty, --force replaces only 1/ and config.pbtxt (other versions and
    files stay); without it the folder is refused. A folder whose recorded verification failed,
    names another manifest or is not signed with your key, is refused unless --allow-unverified;
    the TorchScript model of a folder whose signature does not check is refused unless
    --allow-untrusted-code (then written with a warning).

    \b
    Examples:
      exporter triton artifacts/mlp model_repository
      exporter triton artifacts/mlp model_repository --max-batch-size 256 --force
    """
    config = TritonConfig(
        max_batch_size=max_batch_size,
        force=force,
        allow_unverified=allow_unverified,
        allow_untrusted_code=allow_untrusted_code,
    )
    from ..triton.build import write_repository

    result = write_repository(artifact_dir, repository, config)
    click.echo(result.render())


@click.command("trust")
@click.argument("artifact_dir", type=click.Path(path_type=Path))
def trust_command(artifact_dir: Path) -> None:
    """Sign ARTIFACT_DIR with this machine's key, so its TorchScript and pt2 files are loaded.

    Loading TorchScript or pt2 runs the code the files carry. verify, predict and bench load
    them only from folders signed with this machine's key (every export signs its folder),
    or with --trust-artifacts. Run this once you have decided to trust a folder from
    elsewhere; every file must match its sha256 in the manifest first.

    \b
    Example:
      exporter trust downloads/mlp
    """
    from ..artifacts.manifest import sign_folder
    from ..artifacts.trust import config_dir
    from ..tables import human_size, printable, text_table

    def show(signed) -> None:
        click.echo(f"signing {printable(artifact_dir)}: manifest sha256 {signed.digest}, which binds:")
        rows = [("file", "sha256", "size"), *((path, sha, human_size(size)) for path, sha, size in signed.files)]
        click.echo("\n".join(f"  {line}" for line in text_table(rows)))

    signed = sign_folder(artifact_dir, before_signing=show)
    click.echo(
        f"signed {printable(artifact_dir)} with the key {signed.key_id} in {config_dir()}: its TorchScript and pt2 "
        "files will load"
    )
    click.echo(
        "note: the signature binds these bytes, not this folder's name or age: an older signed export put "
        "back in its place, or this folder renamed, stays trusted (docs/safety.md)"
    )
