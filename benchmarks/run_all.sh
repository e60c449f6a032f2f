#!/usr/bin/env bash
# Every speed benchmark in one go (about 40 minutes on a 2-core CPU); tables on the terminal,
# JSON in logs/benchmarks/. Run on a quiet machine: the peak-FLOP/s measurement is noisy.
#   bash benchmarks/run_all.sh            # CPU or the GPU torch finds
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=logs/benchmarks
mkdir -p "$OUT"
$PY benchmarks/train_step.py --out "$OUT/train_step.json"
$PY benchmarks/train_step.py --sizes default --batches 128 --heads deterministic --naive-heads --compile \
    --steps 5 --out "$OUT/train_step_compile.json"
$PY benchmarks/data_path.py --out "$OUT/data_path.json"
$PY benchmarks/knn.py --out "$OUT/knn.json"
$PY benchmarks/probe.py --out "$OUT/probe.json"
$PY benchmarks/heads.py --out "$OUT/heads.json"
$PY benchmarks/predictor_pass.py --out "$OUT/predictor_pass.json"
$PY benchmarks/ddp.py --out "$OUT/ddp.json"
if $PY -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    $PY benchmarks/gpu_check.py --out "$OUT/gpu_check.json"
    GPUS=$($PY -c "import torch; print(torch.cuda.device_count())")
    if [ "$GPUS" -gt 1 ]; then
        $PY benchmarks/ddp.py --device cuda --size paper --batch 256 --nprocs 1 "$GPUS" --out "$OUT/ddp_cuda.json"
    fi
fi
