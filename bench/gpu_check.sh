#!/usr/bin/env bash
# The borrowed-GPU check (one prepared script): gpu-marked tests, then the training benchmark.
# Usage on the device machine: bash bench/gpu_check.sh "$OUT"
set -uo pipefail
out=${1:-results/bench}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH=.
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)" | tee -a "$out/gpu.txt"
python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py 2>&1 | tail -15 | tee "$out/gpu_tests.txt"
python3 bench/gpu_train.py --steps 40 --warmup 5 --batch 16 64 --seq 256 --out "$out" 2>&1 | grep -v Warning | tail -30 | tee "$out/gpu_bench.txt"
