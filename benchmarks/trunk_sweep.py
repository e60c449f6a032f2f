"""Trunk sweep: the deterministic head trained under each trunk setting at one fixed budget, scored
by the frozen-encoder kNN and linear probe, with its training wall time.

A settings file names the budget (overrides every setting shares) and the settings, each a
name, a line saying what it changes, and its overrides:

    budget: {train.steps: 800}
    settings:
      - name: paper
        what: the paper's I-JEPA trunk (one view, no cross-view term)
        set: {trunk.global_views: 1, trunk.invariance_weight: 0.0, ...}

Every run is a plain `vjepa train` / `embed` / `evaluate --knn-only` in its own folder under
OUT/runs/NAME-seedS (so an interrupted sweep resumes, and a finished run is not redone unless
its settings change); `--jobs N` runs N at a time with the cores split between them. The
table goes to OUT.md and OUT.json, beside the raw-pixel and untrained-encoder floors.

    python benchmarks/trunk_sweep.py --params profiles/tiny-imagenet-cpu.yaml \\
        --settings benchmarks/trunk_settings/tiny-imagenet.yaml --data-dir data \\
        --out benchmarks/results/trunk_sweep_tiny-imagenet --jobs 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def load_settings(path: Path, only: list[str] | None) -> tuple[dict, list[dict]]:
    spec = yaml.safe_load(path.read_text())
    if not isinstance(spec, dict) or "settings" not in spec:
        raise SystemExit(f"{path}: expected a mapping with `budget` and `settings`")
    settings = spec["settings"]
    names = [s["name"] for s in settings]
    if len(set(names)) != len(names):
        raise SystemExit(f"{path}: setting names repeat: {names}")
    if only:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise SystemExit(f"--only {', '.join(unknown)}: not in {path} ({', '.join(names)})")
        settings = [s for s in settings if s["name"] in only]
    return spec.get("budget") or {}, settings


def overrides(budget: dict, setting: dict) -> dict:
    return {**budget, **(setting.get("set") or {})}


def set_args(values: dict) -> list[str]:
    out = []
    for key, value in values.items():
        out += ["--set", f"{key}={json.dumps(value)}"]  # JSON is YAML, so lists and floats survive
    return out


def common_args(params, data_dir, results_dir, threads: int, values: dict) -> list[str]:
    """The arguments every `vjepa` stage of one study shares: its params, data, results folder, threads
    and the study's overrides."""
    args = ["--params", str(params), "--data-dir", str(data_dir), "--results-dir", str(results_dir)]
    return [*args, "--threads", str(threads), *set_args(values)]


def vjepa(args: list[str], log) -> float:
    """Run one `vjepa` command, its output into `log`; return its CPU seconds (user + system, with
    the processes it waited for), which a pause (SIGSTOP) or another job's load leaves out, unlike
    its wall time."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vjepa", *args, "--quiet"], stdout=log, stderr=subprocess.STDOUT, env=env
    )
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code:
        raise RuntimeError(f"vjepa {' '.join(args[:3])} failed (exit {code}); see {log.name}")
    return usage.ru_utime + usage.ru_stime


def feature_diagnostics(embeddings: Path, num_classes: int, threads: int) -> dict:
    """The effective rank and the whitened kNN of a run's features (`vjepa.eval.evaluate.feature_spread`,
    k = 20, T = 0.07), for rows whose metrics.json predates them."""
    sys.path.insert(0, str(ROOT / "src"))
    from types import SimpleNamespace

    import numpy as np

    from vjepa.core import launch
    from vjepa.eval.evaluate import feature_spread

    launch.limit_threads(threads)  # the spread's SVD and whitening run in NumPy's BLAS
    with np.load(embeddings) as f:
        tr, va, ytr, yva = (f[k] for k in ("train_features", "val_features", "train_labels", "val_labels"))
    cfg = SimpleNamespace(
        eval=SimpleNamespace(knn_k=20, knn_temperature=0.07), data=SimpleNamespace(num_classes=num_classes)
    )
    spread = feature_spread(tr, ytr, va, yva, cfg)
    return {**spread, "effective_rank": round(spread["effective_rank"], 2)}


def finished(folder: Path, values: dict, args, threads: int) -> dict | None:
    """A finished run's row when its overrides are these (diagnostics filled in for older rows)."""
    record = folder / "row.json"
    if not record.is_file():
        return None
    row = json.loads(record.read_text())
    if row.get("set") != values or row.get("params") != str(args.params):
        return None
    emb = folder / "heads" / args.head / f"seed{row['seed']}" / "embeddings.npz"
    if "effective_rank" not in row and emb.is_file():
        row.update(feature_diagnostics(emb, _num_classes(args, values), threads))
        record.write_text(json.dumps(row, indent=1))
    return row


def run_one(name: str, values: dict, seed: int, args, threads: int) -> dict:
    """Train, embed and score one setting; a finished run with the same overrides is read back."""
    folder = args.out.parent / f"{args.out.name}_runs" / f"{name}-seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    record = folder / "row.json"
    run = folder / "heads" / args.head / f"seed{seed}"
    row = finished(folder, values, args, threads)
    if row is not None:
        return row
    common = common_args(args.params, args.data_dir, folder, threads, values)
    head = ["--head", args.head, "--seed", str(seed)]
    with open(folder / "log.txt", "w") as log:
        t0 = time.perf_counter()
        vjepa(["train", *head, "--fresh", *common], log)
        train_s = time.perf_counter() - t0
        vjepa(["embed", *head, *common], log)
        vjepa(["evaluate", *head, "--knn-only", *common], log)
    m = json.loads((run / "metrics.json").read_text())
    curve = run / "knn_curve.csv"
    num_classes = _num_classes(args, values)
    row = {
        "name": name,
        "seed": seed,
        "set": values,
        "params": str(args.params),
        "num_classes": num_classes,
        "knn_top1": m["knn_top1"],
        "probe_top1": m["probe_top1"],
        "step": m["step"],
        "train_s": round(train_s, 1),
        "threads": threads,
        "gradient_share": m.get("gradient_share"),
        "knn_curve": curve.read_text().splitlines() if curve.is_file() else [],
        "knn_top1_whitened": m["knn_top1_whitened"],
        "effective_rank": round(m["effective_rank"], 2),
    }
    record.write_text(json.dumps(row, indent=1))
    print(
        f"{name} seed {seed}: kNN {100 * row['knn_top1']:.2f}  probe {100 * row['probe_top1']:.2f}  "
        f"({row['train_s']:.0f} s on {threads} threads)",
        flush=True,
    )
    return row


def _share(row: dict) -> str:
    """The masked-token loss's mean share of the encoder's gradient over the run's second half, in %
    (blank for runs measured before the share was)."""
    g = row.get("gradient_share")
    return "--" if not g else f"{100 * g['predict_share_second_half']:.3g}"


def _num_classes(args, values: dict) -> int:
    sys.path.insert(0, str(ROOT / "src"))
    from vjepa.core.config import load_params

    return int(values.get("data.num_classes", load_params(args.params)["data"]["num_classes"]))


def floors(args) -> dict:
    out = args.out.parent / f"{args.out.name}_runs" / "reference.json"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out.with_suffix(".log"), "w") as log:
            vjepa(["reference", "--params", str(args.params), "--data-dir", str(args.data_dir), "--out", str(out)], log)
    return json.loads(out.read_text())


def table(rows: list[dict], settings: list[dict], ref: dict, budget: dict) -> str:
    what = {s["name"]: s.get("what", "") for s in settings}
    lines = [
        f"Budget: {', '.join(f'{k}={v}' for k, v in budget.items()) or 'the params file as is'}; "
        "deterministic head; kNN k=20, T=0.07; probe as in `vjepa evaluate`.",
        "",
        "| setting | what it changes | seeds | kNN top-1 % | probe top-1 % | kNN whitened % | eff. rank "
        "| masked-token share of the encoder's gradient % | train s (threads) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    by_name: dict[str, list[dict]] = {}
    for r in rows:
        by_name.setdefault(r["name"], []).append(r)
    for s in settings:
        rs = by_name.get(s["name"], [])
        if not rs:
            continue
        fmt = lambda key: " / ".join(f"{100 * r[key]:.2f}" if r.get(key) is not None else "--" for r in rs)
        fmt_s = lambda rs: " / ".join(f"{r['train_s']:.0f}" if r.get("train_s") is not None else "--" for r in rs)
        rank = " / ".join(f"{r['effective_rank']:.1f}" if r.get("effective_rank") is not None else "--" for r in rs)
        share = " / ".join(_share(r) for r in rs)
        lines.append(
            f"| {s['name']} | {what[s['name']]} | {', '.join(str(r['seed']) for r in rs)} | {fmt('knn_top1')} "
            f"| {fmt('probe_top1')} | {fmt('knn_top1_whitened')} | {rank} | {share} "
            f"| {fmt_s(rs)} ({rs[0]['threads']}) |"
        )
    for key, label in (("raw_pixels", "raw pixels"), ("random_init", "untrained encoder")):
        r = ref.get(key, {})
        if r:
            lines.append(
                f"| {label} | floor | | {100 * r['top1']:.2f} | {100 * r.get('probe_top1', float('nan')):.2f} | | | | |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    p.add_argument("--settings", type=Path, required=True, help="settings YAML (budget + settings)")
    p.add_argument("--data-dir", type=Path, default=ROOT / "data", help="prepared data (vjepa prepare + stats)")
    p.add_argument("--out", type=Path, required=True, help="table path without suffix: writes OUT.md, OUT.json")
    p.add_argument("--head", default="deterministic")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--only", nargs="+", help="run only these settings (the table keeps every finished one)")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (the cores are split between them)")
    p.add_argument("--threads", type=int, help="threads per run (default: cores / jobs)")
    args = p.parse_args(argv)
    budget, settings = load_settings(args.settings, args.only)
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    ref = floors(args)
    jobs = [(s["name"], overrides(budget, s), seed) for s in settings for seed in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda j: run_one(*j, args, threads), jobs))
    # The table holds every finished run of the file's settings (also those of earlier --only calls).
    _, all_settings = load_settings(args.settings, None)
    done = []
    for s in all_settings:
        for seed in args.seeds:
            row = finished(
                args.out.parent / f"{args.out.name}_runs" / f"{s['name']}-seed{seed}",
                overrides(budget, s),
                args,
                threads,
            )
            if row is not None:
                done.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(table(done, all_settings, ref, budget))
    what = {s["name"]: s.get("what", "") for s in all_settings}
    args.out.with_suffix(".json").write_text(
        json.dumps({"budget": budget, "what": what, "rows": done, "floors": ref}, indent=1)
    )
    print(f"{len(rows)} runs; table -> {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
