#!/usr/bin/env bash
# The CUDA path in one run, for a machine with a GPU whose python3 already has torch (CUDA build),
# onnx, onnxruntime, onnxscript, click, safetensors and pytest (the device tool's machine):
#   PYTHONPATH=. bash benchmarks/cuda_check.sh
# Export, verify and bench with --device cuda, the cuda-marked tests (tests/test_cuda.py and the
# rest), then the fast tier on a machine where --device auto means CUDA. Verification turns TF32
# off itself (exporter/verification/__init__.py), so float32 is compared with float32.
# Artifacts go under $WORK (default /tmp/cuda-check); the log and a tarball of every JSON report
# go to $OUT (or $WORK). Every step runs; the exit status is non-zero when any failed.
set -u
work=${WORK:-/tmp/cuda-check}
out=${OUT:-$work}
mkdir -p "$work" "$out"
export EXPORTER_CONFIG_DIR="$work/config"  # a signing key of its own, not the machine user's
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # absolute: tests start `python -m exporter` elsewhere
# Tests of an installed package (its pytest entry point) or of the dev extra (tritonclient) cannot pass
# on a machine that runs the checkout without installing it.
not_installed=(--deselect tests/test_testing.py::test_the_plugin_is_registered_through_its_entry_point
  --deselect tests/test_triton.py::test_int64_inputs_and_one_value_per_sample_outputs)
py=${PYTHON:-python3}
failed=()
step() {
  echo "== $*"
  local start=$SECONDS
  if "$@"; then echo "-- ok ($((SECONDS - start)) s)"; else failed+=("$*"); echo "-- FAILED ($((SECONDS - start)) s)"; fi
}

{
  step $py -c "import torch, onnx, onnxruntime; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
torch.cuda.get_device_name(0), '| onnx', onnx.__version__, '| onnxruntime', onnxruntime.__version__, \
onnxruntime.get_available_providers())"
  step $py -m exporter export mlp --device cuda --out "$work/artifacts" --json "$work/export-mlp.json"
  step $py -m exporter export cnn --device cuda --out "$work/artifacts" --format torchscript --format onnx \
    --format pt2 --json "$work/export-cnn.json"
  step $py -m exporter export models/examples.py:Tagger --device cuda --out "$work/artifacts" \
    --input ids:1,32:int64:0..999 --dynamic ids:1:seq --json "$work/export-tagger.json"
  step $py -m exporter export mlp --name mlp-fp16 --dtype float16 --device cuda --out "$work/artifacts" \
    --json "$work/export-mlp-fp16.json"
  step $py -m exporter verify "$work/artifacts/mlp" --device cuda --samples 2000 --json "$work/verify-mlp.json"
  step $py -m exporter verify "$work/artifacts/cnn" --device cpu --json "$work/verify-cnn-on-cpu.json"
  step $py -m exporter bench "$work/artifacts/mlp" --device cuda --json "$work/bench-mlp-cuda.json"
  step $py -m exporter bench "$work/artifacts/cnn" --device cuda --batch-size 1 --batch-size 256 \
    --json "$work/bench-cnn-cuda.json"
  step $py -m exporter bench "$work/artifacts/mlp" --device cpu --json "$work/bench-mlp-cpu.json"
  step $py -m pytest -q -p no:cacheprovider -m cuda tests
  step $py -m pytest -q --tb=line -p no:cacheprovider -m "not slow" "${not_installed[@]}" tests
  echo "== failed steps: ${#failed[@]}"
  for f in "${failed[@]}"; do echo "   $f"; done
} 2>&1 | tee "$out/cuda-check.log"
(cd "$work" && tar czf "$out/reports.tar.gz" ./*.json 2>/dev/null)
grep -q "^== failed steps: 0$" "$out/cuda-check.log"
