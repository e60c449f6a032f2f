#!/usr/bin/env bash
# The demo: prepare the data, compute stats, then train, embed and evaluate every head in
# params.yaml; also evaluates each head's untrained encoder as a reference.
set -euo pipefail
cd "$(dirname "$0")/.."
V=.venv/bin/vjepa
PARAMS=${PARAMS:-params.yaml}

$V check-params --params "$PARAMS"
$V prepare --params "$PARAMS"
$V stats --params "$PARAMS"
heads=$(.venv/bin/python -c "import sys, yaml; print(' '.join(yaml.safe_load(open(sys.argv[1]))['heads']))" "$PARAMS")
for head in $heads; do
    $V train --params "$PARAMS" --head "$head"
    $V embed --params "$PARAMS" --head "$head"
    $V evaluate --params "$PARAMS" --head "$head"
    $V embed --params "$PARAMS" --head "$head" --random-init
    $V evaluate --params "$PARAMS" --head "$head" --knn-only --embeddings "results/$head/embeddings_init.npz" \
        --out "results/$head/metrics_init.json"
done
