#!/usr/bin/env bash
# The main job: the whole default pipeline (params.yaml) with Snakemake, on all cores.
# Extra arguments go to Snakemake, e.g. `bash scripts/demo.sh --configfile profiles/smoke.yaml`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
snakemake --cores "${CORES:-$(nproc)}" report "$@"
