"""The commands that act on an artifact folder as files: ``triton`` (copy into a model repository)
and ``trust`` (sign it). Registered on the group in ``cli``; nothing here imports torch."""

from __future__ import annotations

from pathlib import Path

import click

from .config import TritonConfig


@click.command("triton")
@click.argument("artifact_dir", type=click.Path(path_type=Path))
@click.argument("repository", type=click.Path(path_type=Path))
@click.option(
    "--max-batch-size",
    type=click.IntRange(0, 2**31 - 1),
    default=64,
    show_default=True,
    help="Largest batch Triton forms; 0 turns batching off (dims then keep the batch dimension).",
)
@click.option("--force", is_flag=True, help="Replace model folders that are not empty.")
@click.option(
    "--allow-unverified",
    is_flag=True,
    help="Write the repository even when the folder's recorded verification failed or is not of this manifest.",
)
def triton_command(artifact_dir: Path, repository: Path, max_batch_size: int, force: bool, allow_unverified: bool):
    """Write ARTIFACT_DIR's ONNX and TorchScript artifacts as a Triton model repository.

    REPOSITORY gets NAME_onnx/ (onnxruntime_onnx) and NAME_torchscript/ (pytorch_libtorch),
    each a config.pbtxt and 1/model.onnx or 1/model.pt. Artifacts are hash-checked first;
    names, data types and dims come from the artifacts, the batch dimension left out.
    TorchScript tensors are named input__0, logits__0 (Triton's <name>__<index> rule).
    A model folder that is not empty is replaced only with --force. A folder whose recorded
    verification failed, or names another manifest, is refused unless --allow-unverified.

    \b
    Examples:
      exporter triton artifacts/mlp triton
      exporter triton artifacts/mlp triton --max-batch-size 256 --force
    """
    config = TritonConfig(max_batch_size=max_batch_size, force=force, allow_unverified=allow_unverified)
    from .triton import write_repository

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
    from .manifest import sign_folder
    from .trust import config_dir

    key = sign_folder(artifact_dir)
    click.echo(f"signed {artifact_dir} with the key {key} in {config_dir()}: its TorchScript and pt2 files will load")
