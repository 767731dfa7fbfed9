"""What the probes (sizes and edge values, verification/probes.py) add to the mlp's export + verify.

Same run, alternating: `export("mlp")` with verification, probes on and off (VerifyConfig(probes=...)),
and `verify` of the exported folder alone, probes on and off. Medians of --repeat rounds; the ratio
on/off is the cost. Not a test: timings on a shared machine are noisy.

    python benchmarks/bench_probes.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from exporter import ExportConfig, VerifyConfig, export, verify


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp())
    walls: dict[str, list[float]] = {k: [] for k in ("export on", "export off", "verify on", "verify off")}
    path = None
    for i in range(args.repeat):
        for probes in (True, False):  # alternate within each round, so drift hits both alike
            config = ExportConfig(out=root / f"{i}-{probes}", device="cpu", verify_config=VerifyConfig(probes=probes))
            start = time.perf_counter()
            result = export("mlp", config)
            walls[f"export {'on' if probes else 'off'}"].append(time.perf_counter() - start)
            assert result.passed, result.report.failures
            path = result.path
        for probes in (True, False):
            start = time.perf_counter()
            report = verify(path, VerifyConfig(probes=probes), write=False)
            walls[f"verify {'on' if probes else 'off'}"].append(time.perf_counter() - start)
            assert report.passed, report.failures
    med = {k: statistics.median(v) for k, v in walls.items()}
    print(f"mlp, median of {args.repeat} rounds (probes on / off, same run)")
    for what in ("export", "verify"):
        on, off = med[f"{what} on"], med[f"{what} off"]
        print(f"  {what:<6} probes on {on:.3f} s, off {off:.3f} s: +{on - off:.3f} s, ratio {on / off:.3f}")


if __name__ == "__main__":
    main()
