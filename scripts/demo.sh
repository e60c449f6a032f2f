#!/usr/bin/env bash
# The main job: the whole default pipeline (params.yaml) with Snakemake, on all cores.
# Extra arguments go to Snakemake, e.g. `bash scripts/demo.sh --configfile profiles/smoke.yaml`.
#
# After a crash (power loss, out-of-memory kill, kill -9) Snakemake leaves its lock and marks the
# jobs it was running as incomplete, and refuses to start again. When no other Snakemake runs in
# this folder, this script removes the stale lock and reruns those jobs (a killed training resumes
# from its last resume.pt); otherwise it refuses to start and names that process.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

other_snakemake() {  # prints the pid of a Snakemake process, other than this script's, working in this folder
    local pid
    for pid in $(pgrep -f 'snakemake' || true); do
        [ "$pid" = "$$" ] && continue
        [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$PWD" ] || continue
        if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q 'snakemake'; then
            echo "$pid"
            return 0
        fi
    done
    return 1
}

# Snakemake itself would refuse too, but before its lock it checks the running jobs' incomplete
# markers and then advises --rerun-incomplete, which reads as if the other run had crashed.
if running=$(other_snakemake); then
    echo "demo: another Snakemake (process $running) is running in $PWD; wait for it to finish or stop it, then run this again" >&2
    exit 1
fi
if [ -n "$(ls -A .snakemake/locks 2>/dev/null)" ]; then
    echo "demo: a previous run was interrupted (stale lock); unlocking and rerunning its unfinished jobs" >&2
    snakemake --unlock "$@" >/dev/null
fi
snakemake --cores "${CORES:-$(nproc)}" report --rerun-incomplete "$@"
