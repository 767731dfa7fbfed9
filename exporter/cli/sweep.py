"""``exporter sweep FLEET``: every entry of a fleet file exported and verified, in parallel, then one summary.

Registered on the group in ``cli``. Each entry is checked by the group's own ``export`` command (its parser,
handed to ``exporter.sweep.fleet.load``), so a fleet takes exactly the options export takes.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import click

from ..paths import check_writable_file
from ..progress import on_terminal
from .options import check_json_target, emit, json_option, quiet_option


@click.command("sweep")
@click.argument("fleet", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("artifacts"),
    show_default=True,
    metavar="DIR",
    help="Folder that receives DIR/NAME/ per entry (and DIR/.sweep/: records and logs).",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    metavar="N",
    help="Entries run at a time. Default: one per core; each job gets its share of the cores (threads and "
    "pinning), so jobs do not oversubscribe them.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=900,
    show_default=True,
    metavar="SECONDS",
    help="Seconds an entry may run before it is stopped (timed out). An entry's own 'timeout' field wins.",
)
@click.option(
    "--memory-mib",
    type=click.IntRange(min=1),
    metavar="MIB",
    help="Address-space limit of each entry's process (RLIMIT_AS; past it the entry crashes, out of memory). "
    "An entry's own 'memory_mib' field wins. Default: none.",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: processes on this machine; ray: Ray tasks (pip install 'exporter[ray]').",
)
@click.option(
    "--ray-address",
    metavar="ADDR",
    help="The Ray cluster to run on (auto, HOST:6379, ray://HOST:10001). Default: a local Ray started for the run.",
)
@click.option("--force", is_flag=True, help="Run every entry, even one that passed before with the same digest.")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), metavar="PATH", help="Write the rows as CSV.")
@json_option("the summary")
@quiet_option
def sweep_command(fleet: Path, json_path: str | None, csv_path: Path | None, quiet: bool, **kw: Any) -> None:
    """Export and verify every model of the fleet file FLEET, each in its own process.

    FLEET is a TOML file: defaults at the top (any entry field), then one [[entry]] table per
    model with a name and a model (what `exporter export` takes) and any of export's options by
    their Python names (inputs, dynamic, formats, weights, atol, rtol, ...): see docs/sweep.md.
    An entry that passed before with the same source, weights and settings (by digest) is kept
    unless --force. A crash, a hang past --timeout or running out of memory fails that entry only.
    Ends with one row per entry: passed, failed, refused, crashed or timed out, and why.
    Exit 0 when every entry passed, 1 when any did not, 2 for a wrong fleet file or option.

    \b
    Examples:
      exporter sweep fleet.toml --out artifacts --jobs 2
      exporter sweep fleet.toml --timeout 120 --memory-mib 4096 --json summary.json --csv summary.csv
      exporter sweep fleet.toml --executor ray --ray-address auto
    """
    from ..sweep import SweepConfig, sweep
    from ..sweep import fleet as fleet_file

    config = SweepConfig(
        out=kw["out"],
        jobs=kw["jobs"],
        timeout_s=kw["timeout"],
        memory_mib=kw["memory_mib"],
        executor=kw["executor"],
        ray_address=kw["ray_address"],
        force=kw["force"],
    )
    context = click.get_current_context()
    export_command = context.find_root().command.get_command(context, "export")
    loaded = fleet_file.load(fleet, export_command)
    check_json_target(json_path)
    if csv_path is not None:
        check_writable_file(csv_path, "--csv")
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a kill stops every entry's process, as Ctrl-C does
    try:
        with on_terminal(quiet) as progress:
            report = sweep(loaded, config, progress=progress)
    finally:
        signal.signal(signal.SIGTERM, previous)
    emit(report, json_path)
    if csv_path is not None:
        _write_csv(csv_path, report.to_csv())
    if not report.passed:
        context.exit(1)


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def _write_csv(path: Path, text: str) -> None:
    from ..errors import ArtifactDirError

    try:
        path.write_text(text)  # a path the user named
    except OSError as error:
        raise ArtifactDirError(f"cannot write the CSV summary to {path} ({error.strerror})") from None
