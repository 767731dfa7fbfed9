"""The verdict over many input seeds: every broken model must fail for its own cause, every sound one pass.

Exports each case of tests/catalogue.py's CASES once (its formats and ONNX exporter, unverified),
then verifies it with input seeds 0..N-1 and counts, per case, the seeds whose verdict is right: for
a broken model, a failure whose reasons contain the case's cause; for a sound one, a pass. Cases the
exporter refuses are refused before any input is drawn, so they are listed, not counted.

    .venv/bin/python benchmarks/verdict_catalogue.py --seeds 10
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

from exporter import ExportConfig, VerifyConfig, export, verify
from exporter.errors import ExportFailedError

CATALOGUE = Path(__file__).resolve().parent.parent / "tests" / "catalogue.py"


def _cases() -> tuple:
    """CASES of tests/catalogue.py, loaded from its path: putting tests/ on sys.path would let its
    triton/ package shadow the real one that torch imports."""
    spec = importlib.util.spec_from_file_location("catalogue", CATALOGUE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module.CASES


def _export(out: Path, case):
    config = ExportConfig(
        out=out, device="cpu", input_shape=(1, 28, 28), onnx_exporter=case.onnx_exporter, verify=False,
        **({"formats": case.formats} if case.formats else {}),
    )  # fmt: skip
    return export(f"{CATALOGUE}:{case.model}", config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    rows, refused, right_broken, right_sound = [], [], 0, 0
    with tempfile.TemporaryDirectory() as scratch:
        for case in _cases():
            try:
                folder = _export(Path(scratch) / case.id, case).path
            except ExportFailedError as error:
                right = case.refused and case.cause in str(error)
                refused.append(f"{case.id}: refused at export, {'right' if right else 'WRONG'}: {error}")
                continue
            right = 0
            for seed in range(args.seeds):
                report = verify(folder, VerifyConfig(seed=seed, source=CATALOGUE), write=False)
                failures = "\n".join(report.failures)
                right += (not report.passed and case.cause in failures) if case.expect == "fail" else report.passed
            rows.append((case.id, "broken" if case.expect == "fail" else "sound", f"{right}/{args.seeds}"))
            right_broken += right if case.expect == "fail" else 0
            right_sound += right if case.expect == "pass" else 0
    broken = sum(1 for _, kind, _ in rows if kind == "broken")
    sound = len(rows) - broken
    for row in rows:
        print(f"{row[0]:<22} {row[1]:<7} {row[2]}")
    for line in refused:
        print(line)
    print(f"broken caught for their cause: {right_broken}/{broken * args.seeds} (case x seed)")
    print(f"sound passed: {right_sound}/{sound * args.seeds} (case x seed)")


if __name__ == "__main__":
    main()
