#!/usr/bin/env bash
# The GPU checks in one command, for a machine with a CUDA GPU (run from the repository root):
#   bash bench/gpu_check.sh
# 1. the device-parametrized tests (engine, demo, detection, export, Grad-CAM) on cpu and cuda:N;
# 2. the resolved-device path of the CLI: `--device cuda:0` trains, `cuda:99` is one clear line;
# 3. the Fashion-MNIST recipe on the GPU, timed, with the GPU's name printed beside the numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || { make setup >/dev/null && PY=.venv/bin/python; }
"$PY" - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA GPU visible: run this on a GPU machine"
print("gpu:", torch.cuda.get_device_name(0), "| torch", torch.__version__)
PY
"$PY" -m pytest -q tests/devices
out=$(mktemp -d)
"$PY" -m resnet train --recipe recipes/fashion-mnist.yaml --device cuda:0 --epochs 1 \
  --runs-dir "$out" --name gpu-smoke --no-progress
if "$PY" -m resnet train --device cuda:99 --runs-dir "$out" 2>"$out/err"; then
  echo "cuda:99 was accepted" >&2; exit 1
fi
grep -q "resnet: error:" "$out/err" && [ "$(wc -l < "$out/err")" -eq 1 ]
echo "cuda:99 refused in one line: $(cat "$out/err")"
start=$(date +%s)
"$PY" -m resnet train --recipe recipes/fashion-mnist.yaml --device cuda:0 \
  --runs-dir "$out" --name gpu-recipe --no-progress
echo "recipe wall time: $(( $(date +%s) - start )) s on $("$PY" -c 'import torch; print(torch.cuda.get_device_name(0))')"
