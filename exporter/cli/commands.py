"""The command line: a thin click layer over the Python API.

Each command parses its options into a config dataclass, calls one API function and
renders the result. torch, onnx and onnxruntime are imported inside the commands, so
``exporter --help`` and ``exporter models`` answer at once. Every error the user can
fix is one line on stderr with exit 2; a failed verification exits 1; nothing prints
a traceback (set EXPORTER_DEBUG=1 to see one for an internal error).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from ..config import FORMATS, ONNX_EXPORTERS, PRECISIONS, RUNTIMES, ExportConfig, VerifyConfig
from ..interface import parse_dynamic, parse_input, parse_kind, parse_shape
from ..progress import on_terminal
from ..tables import printable
from .options import (
    ExporterGroup,
    check_json_target,
    comparison_options,
    data_options,
    device_option,
    emit,
    json_option,
    parsed,
    quiet_option,
    seed_option,
    source_option,
    timeout_option,
    trust_option,
    verify_config,
)


@click.group(cls=ExporterGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="exporter", prog_name="exporter", message="%(prog)s %(version)s")
def cli() -> None:
    """Export PyTorch models to TorchScript and ONNX, and prove the artifacts match eager PyTorch.

    \b
    Example:
      exporter export mlp          # artifacts/mlp/: model.pt, model.onnx, manifest.json
      exporter verify artifacts/mlp
    """


@cli.command("models")
def models_command() -> None:
    """List the registered models.

    \b
    Example:
      exporter models
    """
    from .. import models

    for entry in models.REGISTRY.values():
        shape = "x".join(map(str, entry.input_shape))
        click.echo(f"{entry.name:<8} input {shape} {entry.dtype:<8} {entry.description}")


@cli.command("export")
@click.argument("model")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("artifacts"),
    show_default=True,
    metavar="DIR",
    help="Folder that receives OUT/NAME/.",
)
@click.option("--name", metavar="NAME", help="Artifact folder name (default: the model name or class name).")
@device_option("auto (CUDA when available), cpu, cuda or cuda:N.", default="auto")
@seed_option(
    "Seeds the weight initialisation, the example input and the verification inputs. Weights are initialised "
    "from it on the CPU, so the same seed gives the same weights on every device, and verify can rebuild them."
)
@click.option(
    "--format",
    "formats",
    type=click.Choice(FORMATS),
    multiple=True,
    help="Artifact format (repeatable). Default: torchscript and onnx.",
)
@click.option(
    "--opset",
    type=click.IntRange(min=7),
    metavar="N",
    help="ONNX opset (default: the exporter's), checked against what the installed onnxruntime loads.",
)
@click.option(
    "--onnx-exporter",
    type=click.Choice(ONNX_EXPORTERS),
    default="dynamo",
    show_default=True,
    help="dynamo: torch.export based (torch's default); legacy: TorchScript based.",
)
@click.option(
    "--input-shape",
    callback=parsed(parse_shape),
    metavar="SHAPE",
    help="Shorthand for one float input named 'input': its example shape, batch first (1,28,28). A model "
    "outside the registry needs this or --input.",
)
@click.option(
    "--input",
    "inputs",
    multiple=True,
    callback=parsed(lambda values: tuple(parse_input(v) for v in values)),
    metavar="NAME:SHAPE[:DTYPE[:LOW..HIGH]]",
    help="One input of forward (repeatable), named after its parameter: ids:1,32:int64:0..999. Integer inputs "
    "need their range; floats default to [0, 1). A model outside the registry needs this or --input-shape.",
)
@click.option(
    "--dynamic",
    multiple=True,
    callback=parsed(lambda values: tuple(parse_dynamic(v) for v in values)),
    metavar="NAME:AXIS[:LABEL[:MIN..MAX]]",
    help="Another dynamic axis (repeatable), e.g. ids:1:seq, with the sizes it is served at: ids:1:seq:1..512 "
    "(verification tries sizes up to MAX; default 1 to 4x the example). Axis 0, the batch, is dynamic for every "
    "input; x:0:batch:1..256 gives its range.",
)
@click.option(
    "--input-kind",
    "input_kinds",
    multiple=True,
    callback=parsed(lambda values: tuple(parse_kind(v) for v in values)),
    metavar="NAME:KIND",
    help="What an input means, so it is drawn as users send it (repeatable): padding-mask, left-padding-mask, "
    "token-ids, token-type-ids, position-ids or plain. Conventional names (attention_mask, input_ids, "
    "token_type_ids, position_ids) have theirs already; ids without a range take their Embedding's.",
)
@click.option(
    "--task",
    metavar="TASK",
    help="A saved transformers folder: the model class to build, by task (base, causal-lm, masked-lm, "
    "sequence-classification, image-classification, ...; text-generation-with-past: a decoder with its KV cache "
    "as past_key_values.N.key/value in and present.N.key/value out). Default: config.json's architectures.",
)
@click.option(
    "--output-names",
    callback=parsed(lambda text: tuple(n.strip() for n in text.split(",") if n.strip())),
    metavar="NAME,...",
    help="Names of forward's outputs, flattened in order (a,b). Default: from what forward returns.",
)
@click.option(
    "--dtype",
    type=click.Choice([*PRECISIONS, "half", "fp16", "bf16", "float", "fp32"]),
    help="Export the model in this precision (default: as built); half and fp16 mean float16, bf16 bfloat16.",
)
@click.option(
    "--weights",
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="A trained checkpoint: a state_dict (.pt/.pth, loaded with weights_only=True) or .safetensors file, "
    "loaded strictly (every key and shape must match).",
)
@click.option(
    "--external-data", is_flag=True, help="ONNX weights in model.onnx.data beside the model (automatic past 2 GB)."
)
@click.option("--no-verify", is_flag=True, help="Skip the verification after export.")
@data_options
@json_option("the export's result (folder, manifest, verification report)")
@quiet_option
@timeout_option
@comparison_options
def export_command(model: str, no_verify: bool, json_path: str | None, **kw: Any) -> None:
    """Export MODEL to OUT/NAME/ and verify it.

    MODEL is a registered name (see `exporter models`), package.module:Class,
    path/to/file.py:Class (then give --input-shape, or --input per input), or a folder
    saved by transformers' save_pretrained (its inputs are inferred from config.json;
    needs pip install 'exporter[transformers]'). Weights are initialised from --seed
    unless --weights is given. An existing OUT/NAME is replaced only when it is one of
    this tool's artifact folders (any other folder is refused, exit 2). Exit 0 when
    verification passes, 1 when it fails (the artifacts stay, marked failed in
    manifest.json), 2 on usage errors.

    \b
    Examples:
      exporter export mlp
      exporter export path/to/saved_bert
      exporter export mlp --device cpu --format onnx --opset 18
      exporter export my_model.py:Net --input-shape 1,28,28 --weights net.safetensors
      exporter export net.py:Tagger --input ids:1,32:int64:0..999 --dynamic ids:1:seq
      exporter export net.py:Fusion --input image:1,3,32,32 --input features:1,8 --dtype float16
    """
    config = ExportConfig(
        out=kw["out"],
        name=kw["name"],
        device=kw["device"],
        seed=kw["seed"],
        formats=tuple(kw["formats"]) or None,
        external_data=kw["external_data"],
        opset=kw["opset"],
        onnx_exporter=kw["onnx_exporter"],
        input_shape=kw["input_shape"],
        inputs=kw["inputs"] or (),
        dynamic=kw["dynamic"] or (),
        input_kinds=kw["input_kinds"] or (),
        task=kw["task"],
        output_names=kw["output_names"],
        dtype=kw["dtype"],
        weights=kw["weights"],
        verify=not no_verify,
        verify_config=verify_config(**{**kw, "device": None, "weights": None}),
    )
    check_json_target(json_path)
    from ..exporting import export

    with on_terminal(kw["quiet"]) as progress:
        result = export(model, config, progress=progress)
    emit(result, json_path)
    if result.passed is False:
        click.get_current_context().exit(1)


@cli.command("verify")
@click.argument("artifact_dir", type=click.Path(path_type=Path))
@seed_option("Seeds the random inputs.")
@device_option("Device to verify on (default: the export's).")
@data_options
@click.option(
    "--save-inputs",
    type=click.Path(path_type=Path),
    metavar="FILE.npz",
    help="Save the inputs used, as .npz (--inputs replays them).",
)
@click.option(
    "--save-outputs", type=click.Path(path_type=Path), metavar="FILE.npz", help="Save every runtime's outputs, as .npz."
)
@json_option("the report (it is recorded in the folder as verification.json too, unless --no-record)")
@source_option
@click.option(
    "--weights",
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="Check that this is the weights file used at export (its sha256 is in the manifest).",
)
@click.option(
    "--no-record",
    is_flag=True,
    help="Check only: leave verification.json and the manifest's recorded result as they are.",
)
@trust_option
@quiet_option
@timeout_option
@comparison_options
def verify_command(artifact_dir: Path, json_path: str | None, no_record: bool, **kw: Any) -> None:
    """Check ARTIFACT_DIR's hashes, then compare every runtime with eager PyTorch.

    Exit 0 when every runtime agrees at every batch size and the parameters match,
    1 when anything disagrees (every mismatch is listed), 2 on usage errors. The result is
    recorded in the folder (verification.json, the manifest's summary) unless --no-record.

    \b
    Examples:
      exporter verify artifacts/mlp
      exporter verify artifacts/mlp --samples 5000 --batch-size 1 --batch-size 256 --atol 1e-6
      exporter verify artifacts/mlp --samples 100 --no-record   # a quick look that records nothing
      exporter verify artifacts/mlp --inputs my_images.npz --json report.json
      exporter verify artifacts/mlp --inputs test.npz --max-accuracy-drop 0.005   # inputs + labels
    """
    config = verify_config(**kw)
    check_json_target(json_path)
    from ..verification import verify

    with on_terminal(kw["quiet"]) as progress:
        report = verify(artifact_dir, config, write=not no_record, progress=progress)
    for note in report.record_notes:
        click.echo(f"note: {printable(note)}", err=True)
    emit(report, json_path)
    if not report.passed:
        click.get_current_context().exit(1)


@cli.command("inspect")
@click.argument("target")
@seed_option("Seeds the weights of a model spec.")
@source_option
@json_option("the structure and parameter table")
def inspect_command(target: str, seed: int, source: Path | None, json_path: str | None) -> None:
    """Print the structure and parameter table of a model or an artifact folder, or an ONNX file's
    inputs, outputs, opset and initializers.

    \b
    Examples:
      exporter inspect mlp
      exporter inspect artifacts/mlp
      exporter inspect artifacts/mlp/model.onnx
    """
    check_json_target(json_path)
    from ..inspection import inspect

    emit(inspect(target, seed=seed, config=VerifyConfig(device="cpu", source=source)), json_path)


@cli.command("predict")
@click.argument("target")
@click.option(
    "--input",
    "input_spec",
    required=True,
    metavar="FILE|random",
    help="An image (PNG, JPEG, ...), a .npy of one sample or N samples, an .npz with one array per input name, "
    "or 'random' (drawn as verify draws, seeded by --seed).",
)
@click.option(
    "--runtime",
    type=click.Choice([*RUNTIMES, *(f for f in FORMATS if f not in RUNTIMES), "all"]),
    default="all",
    show_default=True,
    help="Which runtime to run (a runtime or its format name), or all: eager and every runtime the folder has.",
)
@seed_option("Seeds 'random' (and a model name's weights).")
@device_option("Device (default: the export's, or cpu).")
@source_option
@trust_option
@quiet_option
@timeout_option
@json_option('the predictions ({"predictions": {RUNTIME: {class, probabilities}}, "agree": ...})')
def predict_command(target: str, input_spec: str, runtime: str, json_path: str | None, **kw: Any) -> None:
    """Predict the class of an input with each runtime: Softmax, then argmax.

    TARGET is an artifact folder, or a registered model name (eager only). Images are
    converted to grayscale, resized to 28x28 and scaled to [0, 1], as MNIST loaders do.

    \b
    Examples:
      exporter predict artifacts/mlp --input digit.png
      exporter predict artifacts/mlp --input batch.npy --runtime onnx --json
      exporter predict mlp --input random
    """
    check_json_target(json_path)
    from ..prediction import predict

    config = VerifyConfig(device=kw["device"], source=kw["source"], trust=kw["trust"])
    with on_terminal(kw["quiet"]) as progress:
        result = predict(target, input_spec, runtime, seed=kw["seed"], config=config, progress=progress)
    emit(result, json_path)


from .folders import bench_command, triton_command, trust_command  # noqa: E402  (commands on artifact folders)

cli.add_command(bench_command)
cli.add_command(triton_command)
cli.add_command(trust_command)

from .sweep import sweep_command  # noqa: E402  (a fleet of exports)

cli.add_command(sweep_command)


def main() -> None:
    import signal

    if hasattr(signal, "SIGXFSZ"):  # past a file-size limit, a write fails with EFBIG (one line), not a kill
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        cli.main(prog_name="exporter")
    except SystemExit as done:
        if done.code == 130:  # Ctrl-C: every with-block has unwound (staging folders gone), but a runtime's
            sys.stdout.flush()  # C++ threads may still be ending, and the interpreter's normal exit would
            sys.stderr.flush()  # abort under them ("terminate called without an active exception"): leave now
            os._exit(130)
        raise
