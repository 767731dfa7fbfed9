"""The verdict over many input seeds: every broken model must fail for its own cause, every sound one pass.

Exports each model of tests/verdict_models.py and tests/broken_models.py once (the dynamo ONNX
exporter, or the legacy one where dynamo refuses, as a user following the advice would), then
verifies it with input seeds 0..N-1 and counts, per model, the seeds whose verdict is right: for a
broken model, a failure whose reasons contain the expected cause; for a sound one, a pass.

    .venv/bin/python benchmarks/verdict_catalogue.py --seeds 10
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from exporter import ExportConfig, VerifyConfig, export, verify
from exporter.errors import ExportFailedError

TESTS = Path(__file__).resolve().parent.parent / "tests"
# model -> (file, expected cause in the failures, or None: must pass)
CATALOGUE = {
    "TinyFrozenScalar": ("verdict_models.py", "x the reference's RMS"),
    "TinyNegated": ("verdict_models.py", "legacy (tracing) ONNX exporter, which warned"),
    "IntegerIds": ("verdict_models.py", "beyond atol 0 + rtol 0"),
    "LargeBatchBranch": ("verdict_models.py", "at batch 128"),
    "SqueezedOutput": ("verdict_models.py", "the manifest declares"),
    "RunningStatistic": ("verdict_models.py", "forward changes the model's state"),
    "FrozenBatch": ("broken_models.py", "raised"),
    "NanOutput": ("broken_models.py", "NaN/Inf"),
    "LiveDropout": ("broken_models.py", "nondeterministic"),
    "UnusedParameter": ("broken_models.py", "never used"),
    "TinySound": ("verdict_models.py", None),
    "InPlaceNormalise": ("verdict_models.py", None),
    "IdempotentClamp": ("verdict_models.py", None),
    "ConvBatchNorm": ("broken_models.py", None),
    "TiedWeights": ("broken_models.py", None),
    "NormalizedDropout": ("broken_models.py", None),
}


def _export(out: Path, name: str, file: str):
    config = ExportConfig(out=out, device="cpu", input_shape=(1, 28, 28), verify=False)
    try:
        return export(f"{TESTS / file}:{name}", config)
    except ExportFailedError:  # dynamo refused a value branch: the legacy exporter, as its advice says
        return export(f"{TESTS / file}:{name}", ExportConfig(**{**config.__dict__, "onnx_exporter": "legacy"}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    rows, right_broken, right_sound = [], 0, 0
    with tempfile.TemporaryDirectory() as scratch:
        for name, (file, cause) in CATALOGUE.items():
            folder = _export(Path(scratch), name, file).path
            right = 0
            for seed in range(args.seeds):
                report = verify(folder, VerifyConfig(seed=seed, source=str(TESTS / file)), write=False)
                failures = "\n".join(report.failures)
                right += (not report.passed and cause in failures) if cause else report.passed
            rows.append((name, "broken" if cause else "sound", f"{right}/{args.seeds}"))
            right_broken += right if cause else 0
            right_sound += right if not cause else 0
    broken = sum(1 for _, (_, c) in CATALOGUE.items() if c)
    sound = len(CATALOGUE) - broken
    for row in rows:
        print(f"{row[0]:<18} {row[1]:<7} {row[2]}")
    print(f"broken caught for their cause: {right_broken}/{broken * args.seeds} (model x seed)")
    print(f"sound passed: {right_sound}/{sound * args.seeds} (model x seed)")


if __name__ == "__main__":
    main()
