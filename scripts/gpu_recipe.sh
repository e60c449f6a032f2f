#!/usr/bin/env bash
# The GPU study on a bare GPU machine reached through a tool that copies this checkout over (at most 64 MiB
# a call), runs one command of at most 10 minutes and returns only what it writes under $OUT
# (scripts/gpu_recipe.md gives the calls). One sub-command per step:
#   bash scripts/gpu_recipe.sh stage DIR    # here: Tiny ImageNet-100's parquet files from DIR into two pieces
#   bash scripts/gpu_recipe.sh receive      # there, call 1: piece 1 (shard 0 + valid) into the data folder
#   bash scripts/gpu_recipe.sh study [ARGS] # there, call 2: piece 2, then the study into "$OUT/study"
#   bash scripts/gpu_recipe.sh land DIR     # here: the returned study folder into results/gpu/DATE-DEVICE/
# Folders (ignored by git): $GPU_RECIPE_DIR (default gpu-transfer/ in this checkout) holds piece1/, piece2/ and
# tin100/ (the data as the study reads it); the study's work (prepared data, checkpoints) goes to
# $GPU_RECIPE_WORK (default /tmp/gpu-study-work), outside $OUT, so that only the table, params and logs return.
set -euo pipefail
export VJEPA_STUDY_STARTED="${VJEPA_STUDY_STARTED:-$(date +%s.%N)}"  # the study's deadline counts from here
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${GPU_RECIPE_DIR:-$root/gpu-transfer}"
work="${GPU_RECIPE_WORK:-/tmp/gpu-study-work}"
deadline="${GPU_RECIPE_DEADLINE:-540}"  # the machine kills a command at 600 s: 60 s for staging and slack
limit=$((64 * 1024 * 1024))

die() { echo "gpu_recipe: error: $*" >&2; exit 2; }

size() { du -cb "$@" | tail -1 | cut -f1; }

stage() {  # DIR: copy its two train shards and valid.parquet into piece1/ (shard 0 + valid) and piece2/ (shard 1)
    local src="${1:?usage: gpu_recipe.sh stage DIR (two train shards and valid.parquet)}"
    [ -d "$src/data" ] && ! ls "$src"/train-*.parquet >/dev/null 2>&1 && src="$src/data"  # a Hugging Face snapshot
    local s0 s1 valid
    s0=$(ls "$src"/train-00000-of-00002*.parquet 2>/dev/null | head -1 || true)
    s1=$(ls "$src"/train-00001-of-00002*.parquet 2>/dev/null | head -1 || true)
    valid=$(ls "$src"/valid.parquet "$src"/valid-*.parquet 2>/dev/null | head -1 || true)
    [ -n "$s0" ] && [ -n "$s1" ] && [ -n "$valid" ] ||
        die "$src lacks train-00000-of-00002, train-00001-of-00002 or valid parquet files"
    rm -rf "$dir/piece1" "$dir/piece2"
    mkdir -p "$dir/piece1" "$dir/piece2"
    cp "$s0" "$dir/piece1/" && cp "$valid" "$dir/piece1/valid.parquet" && cp "$s1" "$dir/piece2/"
    local tree=0
    if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then  # what every call sends besides its carry
        tree=$(cd "$root" && git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null |
               tail -1 | cut -f1)
    fi
    for piece in piece1 piece2; do
        local n=$(( $(size "$dir/$piece") + tree ))
        [ "$n" -le "$limit" ] || die "$piece and the working tree are $n bytes, over 64 MiB; split the data differently"
        echo "$dir/$piece: $(ls "$dir/$piece" | tr '\n' ' ')($n bytes with the working tree)"
    done
}

receive() {  # move piece1 (call 1) or piece2 (call 2) into tin100/, which no later call names (so it stays)
    local piece="${1:-piece1}"
    [ -d "$dir/$piece" ] && [ -n "$(ls -A "$dir/$piece")" ] ||
        die "$dir/$piece is missing or empty; carry it with this call"
    mkdir -p "$dir/tin100"
    mv "$dir/$piece"/*.parquet "$dir/tin100/"
    echo "$dir/tin100: $(ls "$dir/tin100" | tr '\n' ' ')"
}

study() {  # piece2 in, then the study; extra arguments go to gpu_study.sh (e.g. --device cpu --tiny)
    [ -n "${OUT:-}" ] || die "\$OUT is not set; the machine returns only what is written under it"
    receive piece2
    PYTHON="${PYTHON:-python3}" bash "$root/scripts/gpu_study.sh" --data "$dir/tin100" --out "$OUT/study" \
        --work "$work" --deadline "$deadline" --fit "$@"
}

land() {  # DIR: the returned study folder (files_at/study) into results/gpu/DATE-DEVICE/ of this checkout
    local from="${1:?usage: gpu_recipe.sh land DIR (the returned folder that --out named)}"
    PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}" "${PYTHON:-$root/.venv/bin/python}" -c \
        "import sys; from pathlib import Path; from vjepa.pipeline.gpu_study import land
print(land(Path(sys.argv[1]), *(Path(a) for a in sys.argv[2:])))" "$from" ${GPU_RECIPE_RESULTS:+"$GPU_RECIPE_RESULTS"}
}

command="${1:-}"
shift || true
case "$command" in
    stage|receive|study|land) "$command" "$@" ;;
    *) die "usage: gpu_recipe.sh stage DIR | receive | study [ARGS] | land DIR (see scripts/gpu_recipe.md)" ;;
esac
