#!/usr/bin/env bash
# The paper-sized study on one GPU within a deadline, with plain `python -m vjepa` commands: no
# Snakemake, no DVC, only PyTorch and the scientific stack (src/vjepa/pipeline/gpu_study.py; --help for all).
#   bash scripts/gpu_study.sh --data DIR --out DIR [--deadline 600]      # on a GPU
#   bash scripts/gpu_study.sh --data DIR --out DIR --device cpu --tiny   # the same script on a CPU, minutes
# Python: $PYTHON, else this checkout's .venv, else python3; its first line (preflight) names the interpreter and
# the versions it found. On a GPU machine that got a copy of this checkout, give PYTHON=python3: a copied .venv
# is the other machine's (a CPU build of PyTorch, or a dangling link).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export VJEPA_STUDY_STARTED="${VJEPA_STUDY_STARTED:-$(date +%s.%N)}"  # the deadline counts from here
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
python="${PYTHON:-}"
if [ -z "$python" ]; then
    if [ -x "$root/.venv/bin/python" ]; then python="$root/.venv/bin/python"; else python=python3; fi
fi
exec "$python" -m vjepa.pipeline.gpu_study "$@"
