"""Real architectures from saved transformers folders: `exporter export FOLDER --format onnx` (with its
verification) against baseline_real.py, the hand-written torch.onnx.export + ONNX Runtime script, in
the same run. Each model is saved once (small random configs, as save_pretrained writes them); then the
two run as fresh processes, alternating, --repeat times; wall time and peak RSS (each child's own
ru_maxrss) are printed per model with their medians and ratios. Targets (issue 23): time within 1.5x,
peak RSS within 2x of the script.

    python benchmarks/bench_real.py [--repeat 3] [--models bert,gpt2,vit,wav2vec2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMALL = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)


def _save(name: str, folder: Path) -> None:
    import torch
    import transformers as t

    torch.manual_seed(0)
    models = {
        "bert": lambda: t.BertModel(t.BertConfig(vocab_size=1000, max_position_embeddings=128, **SMALL)),
        "gpt2": lambda: t.GPT2LMHeadModel(t.GPT2Config(vocab_size=1000, n_embd=64, n_layer=2, n_head=4)),
        "llama": lambda: t.LlamaForCausalLM(t.LlamaConfig(vocab_size=1000, num_key_value_heads=2, **SMALL)),
        "vit": lambda: t.ViTModel(t.ViTConfig(image_size=64, patch_size=16, **SMALL)),
        "wav2vec2": lambda: t.Wav2Vec2Model(
            t.Wav2Vec2Config(
                conv_dim=(32, 32),
                conv_stride=(5, 4),
                conv_kernel=(10, 8),
                num_feat_extract_layers=2,
                num_conv_pos_embeddings=16,
                num_conv_pos_embedding_groups=2,
                mask_time_prob=0.0,
                **SMALL,
            )
        ),
    }
    models[name]().save_pretrained(folder)
    if name == "wav2vec2":
        (folder / "preprocessor_config.json").write_text('{"sampling_rate": 4000}')


def _run(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process; exits when it fails."""
    start = time.perf_counter()
    child = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = child.stdout.read() if child.stdout else b""
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {out.decode(errors='replace')[-800:]}")
    return elapsed, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--models", default="bert,gpt2,vit,wav2vec2")
    args = parser.parse_args()
    py, tmp = sys.executable, Path(tempfile.mkdtemp())
    rows = []
    for name in args.models.split(","):
        folder = tmp / name
        _save(name, folder)
        tool, base = [], []
        for i in range(args.repeat):
            out = tmp / f"{name}-t{i}"
            tool.append(_run([py, "-m", "exporter", "export", str(folder), "--format", "onnx", "--out", str(out)]))
            base.append(_run([py, str(ROOT / "benchmarks" / "baseline_real.py"), str(folder), str(tmp / f"b{i}")]))
        time_ratio = statistics.median(t[0] / b[0] for t, b in zip(tool, base, strict=True))
        rss_ratio = statistics.median(t[1] / b[1] for t, b in zip(tool, base, strict=True))
        row = [statistics.median(x[k] for x in runs) for k in (0, 1) for runs in (tool, base)]
        rows.append((name, row[0], row[1], time_ratio, row[2], row[3], rss_ratio))
    print(f"median of {args.repeat} alternating runs (exporter: export + verify, ONNX; script: export + 2 checks)")
    head = ("model", "exporter s", "script s", "ratio", "exporter MB", "script MB", "ratio")
    print("{:<10} {:>10} {:>9} {:>6} {:>11} {:>9} {:>6}".format(*head))
    for name, t, b, r, tm, bm, rm in rows:
        print(f"{name:<10} {t:>10.1f} {b:>9.1f} {r:>5.2f}x {tm:>11.0f} {bm:>9.0f} {rm:>5.2f}x")
    times = statistics.median(r[3] for r in rows)
    memory = statistics.median(r[6] for r in rows)
    print(f"median time ratio {times:.2f}x (target <= 1.5x: {'met' if times <= 1.5 else 'MISSED'}); "
          f"median peak RSS ratio {memory:.2f}x (target <= 2x: {'met' if memory <= 2 else 'MISSED'})")  # fmt: skip


if __name__ == "__main__":
    main()
