#!/usr/bin/env bash
# The main job: the whole default pipeline (params.yaml) with Snakemake, on all cores.
# Extra arguments go to Snakemake, e.g. `bash scripts/demo.sh --configfile profiles/smoke.yaml`.
#
# After a crash (power loss, out-of-memory kill, kill -9) Snakemake leaves its lock and marks the
# jobs it was running as incomplete, and refuses to start again. When no other Snakemake runs in
# this folder, this script removes the stale lock and reruns those jobs (a killed training resumes
# from its last resume.pt); otherwise it leaves both alone and Snakemake says which process holds it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

other_snakemake() {  # a Snakemake process, other than this script's, whose working folder is this one
    local pid
    for pid in $(pgrep -f 'snakemake' || true); do
        [ "$pid" = "$$" ] && continue
        [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$PWD" ] || continue
        tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q 'snakemake' && return 0
    done
    return 1
}

recover=()
if ! other_snakemake; then
    if [ -n "$(ls -A .snakemake/locks 2>/dev/null)" ]; then
        echo "demo: a previous run was interrupted (stale lock); unlocking and rerunning its unfinished jobs" >&2
        snakemake --unlock "$@" >/dev/null
    fi
    recover=(--rerun-incomplete)
fi
snakemake --cores "${CORES:-$(nproc)}" report "${recover[@]}" "$@"
