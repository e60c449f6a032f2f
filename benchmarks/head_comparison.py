"""Head comparison: every head of a params file trained once per seed under one trunk, scored and
summarised (Table I with mean ± std over seeds and the paired tests of `vjepa summarize`), so the
same study can be run under several trunks side by side.

Each run is a plain `vjepa train` / `embed` / `evaluate` into OUT/heads/HEAD/seedN (a finished
run is kept, so an interrupted study resumes; its timing.json holds the training's wall and CPU
seconds, the latter blind to pauses and to other jobs' load), then `vjepa reference` and `vjepa summarize`
write OUT/metrics.json and OUT/tex/, and a Markdown table goes to OUT/table.md. `--jobs N`
runs N trainings at a time with the cores split between them.

    python benchmarks/head_comparison.py --params params.yaml --seeds 0 1 2 --out results/studies/digits-multiview
    python benchmarks/head_comparison.py --params params.yaml --seeds 0 1 2 --trunk paper \\
        --out results/studies/digits-paper-trunk
    python benchmarks/head_comparison.py --params profiles/tiny-imagenet-cpu.yaml --data-dir DATA \\
        --heads deterministic --seeds 0 1 2 --out results/studies/tiny-imagenet-det
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from trunk_sweep import ROOT, common_args, vjepa

# `--trunk paper`: the paper's I-JEPA trunk (profiles/paper.yaml's), whatever the params file says.
PAPER_TRUNK = {
    "trunk.global_views": 1,
    "trunk.local_views": 0,
    "trunk.projector_dim": 0,
    "trunk.standardize": False,
    "trunk.invariance_weight": 0.0,
    "trunk.variance_weight": 0.0,
    "trunk.covariance_weight": 0.0,
    "trunk.sigreg_weight": 0.0,
    "augment.rotate_degrees": 0,
    "augment.color_jitter": 0.0,
    "augment.grayscale_prob": 0.0,
    "augment.blur_prob": 0.0,
}


def run_head(head: str, seed: int, args, common: list[str]) -> dict:
    folder = args.out / "heads" / head / f"seed{seed}"
    done = folder / "metrics.json"
    if done.is_file():
        return {"head": head, "seed": seed, "train_s": json.loads((folder / "timing.json").read_text())["train_s"]}
    folder.mkdir(parents=True, exist_ok=True)
    run = ["--head", head, "--seed", str(seed), *common]
    with open(folder / "log.txt", "a") as log:
        t0 = time.perf_counter()
        cpu_s = vjepa(["train", *run], log)  # resumes an interrupted run of the same params
        train_s = time.perf_counter() - t0
        timing = {"train_s": round(train_s, 1), "train_cpu_s": round(cpu_s, 1), "threads": args.threads}
        (folder / "timing.json").write_text(json.dumps(timing))
        vjepa(["embed", *run], log)
        vjepa(["evaluate", *run], log)
    print(f"{head} seed {seed}: done ({train_s:.0f} s training)", flush=True)
    return {"head": head, "seed": seed, "train_s": train_s}


def verdict_table(v: dict, label: str) -> list[str]:
    num = lambda x, f: "" if x is None else format(x, f)
    lines = [
        f"Verdicts on {label} (a against b; paired t-test Holm-corrected over {len(v['pairs'])} pairs, "
        f"equivalence within ±{v['margin_points']:g} points by two one-sided tests, alpha {v['alpha']:g}):",
        "",
        "| a | b | a − b per seed (points) | mean | p (Holm) | p (equivalence) | verdict | seeds to resolve |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in v["pairs"]:
        diffs = " / ".join(f"{d:+.2f}" for d in c["diffs"])
        lines.append(
            f"| {c['a']} | {c['b']} | {diffs} | {num(c['mean'], '+.2f')} "
            f"| {num(c['p_holm'], '.3f')} | {num(c['p_equiv'], '.3f')} | {c['verdict']} "
            f"| {num(c['seeds_to_resolve'], 'd')} |"
        )
    return lines


def spread_table(runs: dict, heads: list[str]) -> list[str]:
    """Beside kNN: the whitened kNN (blind to a few dominant directions), the features' effective rank
    and the masked-token loss's measured share of the encoder's gradient (second half of training)."""
    lines = [
        "| head | whitened kNN top-1 % | effective rank | masked-token share of the encoder's gradient % |",
        "|---|---|---|---|",
    ]
    for head in heads:
        rs = [runs[(h, s)] for (h, s) in runs if h == head]
        col = lambda get, scale, f: " / ".join(format(scale * get(r), f) for r in rs)
        share = lambda r: (r.get("gradient_share") or {}).get("predict_share_second_half") or 0.0
        lines.append(
            f"| {head} | {col(lambda r: r['knn_top1_whitened'], 100, '.2f')} "
            f"| {col(lambda r: r['effective_rank'], 1, '.1f')} | {col(share, 100, '.1f')} |"
        )
    return lines


def table(summary: dict, heads: list[str], times: dict, runs: dict, verdicts: dict) -> str:
    pct = lambda v: "" if v is None else f"{100 * v:.2f}"
    lines = [
        f"Seeds {summary['seeds']}; mean ± std over seeds (per seed in brackets).",
        "",
        "| head | kNN top-1 % | probe top-1 % | train s per run |",
        "|---|---|---|---|",
    ]
    for head in heads:
        r = summary["heads"][head]
        per = lambda k: " / ".join(pct(s[k]) for s in r["per_seed"].values())
        std = lambda k: f" ± {pct(r[k + '_std'])}" if r.get(k + "_std") is not None else ""
        secs = [t for (h, _), t in times.items() if h == head]
        lines.append(
            f"| {head} | {pct(r['knn_top1'])}{std('knn_top1')} ({per('knn_top1')}) | "
            f"{pct(r['probe_top1'])}{std('probe_top1')} ({per('probe_top1')}) | "
            f"{sum(secs) / max(len(secs), 1):.0f} |"
        )
    for key, label in (("raw_pixels", "raw pixels"), ("random_init", "untrained encoder")):
        f = summary["reference"][key]
        lines.append(f"| {label} | {pct(f['top1'])} | {pct(f['probe_top1'])} | |")
    lines += ["", *spread_table(runs, heads)]
    for key, label in (("knn_top1", "kNN top-1"), ("knn_top1_whitened", "whitened kNN top-1 (collapse-robust)")):
        lines += ["", *verdict_table(verdicts[key], label)]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    p.add_argument("--data-dir", type=Path, default=ROOT / "data")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--heads", nargs="+", help="default: the params file's heads")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument(
        "--trunk",
        choices=["params", "paper"],
        default="params",
        help="the params file's trunk, or the paper's I-JEPA trunk",
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more overrides (repeatable)")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--threads", type=int, help="threads per run (default: cores / jobs)")
    args = p.parse_args(argv)
    args.threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    sys.path.insert(0, str(ROOT / "src"))
    from vjepa.core.config import load_params

    heads = args.heads or load_params(args.params)["heads"]
    values = {"heads": heads, "seeds": args.seeds, **(PAPER_TRUNK if args.trunk == "paper" else {})}
    common = common_args(args.params, args.data_dir, args.out, args.threads, values)
    for item in args.set:
        common += ["--set", item]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "study.json").write_text(
        json.dumps({"params": str(args.params), "trunk": args.trunk, "overrides": values, "set": args.set}, indent=1)
    )
    with ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(lambda hs: run_head(*hs, args, common), [(h, s) for s in args.seeds for h in heads]))
    with open(args.out / "log.txt", "a") as log:
        if not (args.out / "reference" / "metrics.json").is_file():
            vjepa(["reference", *common], log)
        vjepa(["summarize", *common, "--tex-dir", str(args.out / "tex")], log)
    summary = json.loads((args.out / "metrics.json").read_text())
    from vjepa.report.verdict import scores_against_quality, verdict_file

    runs = {
        (h, s): json.loads((args.out / "heads" / h / f"seed{s}" / "metrics.json").read_text())
        for h in heads
        for s in args.seeds
    }
    whitened = {h: {s: runs[(h, s)]["knn_top1_whitened"] for s in args.seeds} for h in heads}
    verdicts = {**summary["verdicts"], "knn_top1_whitened": verdict_file(whitened, "knn_top1_whitened")}
    for key, name in (
        ("knn_top1", "verdict.json"),
        ("probe_top1", "verdict_probe.json"),
        ("knn_top1_whitened", "verdict_whitened.json"),
    ):
        (args.out / name).write_text(json.dumps(verdicts[key], indent=1))
    (args.out / "scores_vs_knn.json").write_text(json.dumps(scores_against_quality(list(runs.values())), indent=1))
    times = {(r["head"], r["seed"]): r["train_s"] for r in done}
    (args.out / "table.md").write_text(table(summary, heads, times, runs, verdicts))
    print((args.out / "table.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
