#!/usr/bin/env bash
# The CUDA path in one run, for a machine with a GPU whose python3 already has torch (CUDA build),
# onnx, onnxruntime, onnxscript, click, safetensors and pytest (the device tool's machine):
#   PYTHONPATH=. bash benchmarks/cuda_check.sh
# Writes every report under ${OUT:-/tmp/cuda-check}; exits non-zero when a step fails.
# Verification turns TF32 off itself (exporter/verification.py), so float32 is compared with float32.
set -u
out=${OUT:-/tmp/cuda-check}
mkdir -p "$out"
export EXPORTER_CONFIG_DIR="$out/config"  # a signing key of its own, not the machine user's
py=${PYTHON:-python3}
status=0
step() { echo "== $*"; "$@" || status=1; }

step $py -c "import torch; print(torch.__version__, torch.cuda.is_available(), torch.cuda.get_device_name(0))"
step $py -m exporter export mlp --device cuda --out "$out/artifacts" --json "$out/export-mlp.json"
step $py -m exporter export cnn --device cuda --out "$out/artifacts" --format torchscript --format onnx --format pt2 \
  --json "$out/export-cnn.json"
step $py -m exporter export models/examples.py:Tagger --device cuda --out "$out/artifacts" \
  --input ids:1,32:int64:0..999 --dynamic ids:1:seq --json "$out/export-tagger.json"
step $py -m exporter export mlp --name mlp-fp16 --dtype float16 --device cuda --out "$out/artifacts" \
  --json "$out/export-mlp-fp16.json"
step $py -m exporter verify "$out/artifacts/mlp" --device cuda --samples 2000 --json "$out/verify-mlp.json"
step $py -m exporter bench "$out/artifacts/mlp" --json "$out/bench-mlp.json"
step $py -m pytest -q -p no:cacheprovider -m cuda tests
exit $status
