"""Table I from the pipeline's own outputs: results/metrics.json (every run, mean ± std over seeds,
the paired comparison of heads) and its LaTeX rendering."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vjepa.core.config import resolve
from vjepa.core.errors import DataError
from vjepa.core.io import atomic_path, run_dir, write_json
from vjepa.report.verdict import paired_t_pvalue, verdict_file

DISPLAY_NAMES = {
    "deterministic": "Deterministic (I-JEPA)",
    "mdn": "Mixture density network",
    "rnade": "Autoregressive (RNADE)",
    "flow": "RealNVP flow",
    "flow_matching": "Flow matching",
    "diffusion": "Diffusion (DDIM)",
}


def _read(path: Path, fix: str) -> dict:
    if not path.is_file():
        raise DataError(f"'{path}' not found; {fix}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"'{path}' is not valid JSON ({e.msg}); {fix}") from None


def tex_name(head: str) -> str:
    """A head's name in the report's tables and text."""
    return DISPLAY_NAMES.get(head, head.replace("_", r"\_"))


UNCERTAINTY_KEYS = (
    "energy_score_per_dim",
    "coverage_50",
    "coverage_90",
    "spread_error_spearman",
    "sample_pairwise_distance",
    "modes",
)
HEAD_KEYS = (
    "nll_per_dim",
    "nll_bound_per_dim",
    "point_cosine",
    "sample_cosine",
    "sample_ms_per_token",
) + UNCERTAINTY_KEYS
ACCURACY_KEYS = ("knn_top1", "knn_top5", "probe_top1", "probe_top5")  # reported as mean ± std over seeds
TEX_FILES = ("table1.tex", "numbers.tex", "uncertainty.tex", "comparison.tex")


def summarize(params: dict, results_dir: str | Path, out_json: str | Path, tex_dir: str | Path) -> list[Path]:
    """Collect every run's metrics (heads × seeds) and the reference floors into one summary: per
    head the mean and std over seeds and each seed's accuracies, the paired comparison of heads
    across seeds, and their LaTeX in `tex_dir` (TEX_FILES: Table I, the macros of the numbers the
    report quotes, the distribution scores, the comparison). Returns the files written."""
    results_dir = Path(results_dir)
    rows = {}
    for head in params["heads"]:
        runs = {}
        for seed in params["seeds"]:
            path = run_dir(results_dir, head, seed) / "metrics.json"
            runs[seed] = _read(path, f"run `vjepa evaluate --head {head} --seed {seed}` first")
        rows[head] = head_row(runs, resolve(params, head).train.batch_size)
    ref = _read(results_dir / "reference" / "metrics.json", "run `vjepa reference` first")
    from vjepa.core.versions import versions

    summary = {
        "data": params["data"]["source"],
        "seeds": list(params["seeds"]),
        "heads": rows,
        "comparison": {key: paired_comparison(rows, key) for key in ("knn_top1", "probe_top1")},
        "verdicts": {key: verdict_file(per_seed(rows, key), key) for key in ("knn_top1", "probe_top1")},
        "reference": {"raw_pixels": ref["raw_pixels"], "random_init": ref["random_init"]},
        "n_train": ref["n_train"],
        "n_val": ref["n_val"],
        "seed": params["seed"],
        "versions": versions(),
    }
    write_json(out_json, summary)
    written = [Path(out_json)]
    texts = (table_tex(summary), numbers_tex(summary), uncertainty_tex(summary), comparison_tex(summary))
    for name, text in zip(TEX_FILES, texts):
        with atomic_path(Path(tex_dir) / name) as tmp:
            tmp.write_text(text)
        written.append(Path(tex_dir) / name)
    return written


def head_row(runs: dict[int, dict], batch_size: int) -> dict:
    """One head's row: accuracies as mean and std over its seeds (std None for one seed), each
    seed's accuracies, and the held-out distribution scores averaged over seeds."""
    per_seed = {seed: {k: m.get(k) for k in ACCURACY_KEYS} for seed, m in runs.items()}
    first = next(iter(runs.values())).get("head_metrics") or {}
    row = {
        "seeds": list(runs),
        "per_seed": per_seed,
        "batch_size": batch_size,
        "step": max(m["step"] for m in runs.values()),
        "draws_per_token": first.get("draws_per_token"),
        "scored_tokens": first.get("scored_tokens"),
    }
    for key in ACCURACY_KEYS:
        row[key], row[f"{key}_std"] = mean_std([r[key] for r in per_seed.values()])
    for key in HEAD_KEYS:
        row[key] = mean_std([(m.get("head_metrics") or {}).get(key) for m in runs.values()])[0]
    # the masked-token loss's measured share of the encoder's gradient (None without a masked-token loss)
    row["predict_share"] = mean_std(
        [(m.get("gradient_share") or {}).get("predict_share_second_half") for m in runs.values()]
    )[0]
    return row


def mean_std(values: list) -> tuple[float | None, float | None]:
    """Mean and sample std (ddof 1) of the values; (None, None) if any is missing, std None for one."""
    if not values or any(v is None for v in values):
        return None, None
    a = np.asarray(values, dtype=float)
    return float(a.mean()), (float(a.std(ddof=1)) if len(a) > 1 else None)


def per_seed(rows: dict, key: str) -> dict[str, dict[int, float]]:
    """{head: {seed: its `key`}} for the heads that have `key` on every seed."""
    return {h: {s: r[key] for s, r in rows[h]["per_seed"].items()} for h in rows if rows[h][key] is not None}


def paired_comparison(rows: dict, key: str, alpha: float = 0.05) -> list[dict]:
    """Every pair of heads compared on `key`, paired by seed (the same seed is the same data
    order and initialisation): mean difference, its std over seeds, the paired t-test's p-value and
    whether the difference is larger than seed noise (p < alpha). With one seed there is no
    noise estimate: p and the verdict are None."""
    out = []
    heads = [h for h in rows if rows[h][key] is not None]
    for i, a in enumerate(heads):
        for b in heads[i + 1 :]:
            seeds = [s for s in rows[a]["seeds"] if s in rows[b]["per_seed"]]
            d = np.array([rows[a]["per_seed"][s][key] - rows[b]["per_seed"][s][key] for s in seeds])
            p = paired_t_pvalue(d) if len(d) > 1 else None
            out.append(
                {
                    "a": a,
                    "b": b,
                    "n": len(d),
                    "diff": float(d.mean()),
                    "diff_std": float(d.std(ddof=1)) if len(d) > 1 else None,
                    "p": p,
                    "beyond_seed_noise": None if p is None else bool(p < alpha),
                }
            )
    return out


def macro_name(*words: str) -> str:
    """LaTeX command names are letters only: ("flow_matching", "top1") → \\FlowMatchingTopOne."""
    text = " ".join(words).replace("_", " ").replace("1", " one").replace("5", " five")
    return "\\" + "".join(w.capitalize() for w in text.split())


def numbers_tex(summary: dict) -> str:
    """\\newcommand for every number the report's text quotes (percentages with two decimals)."""
    lines = ["% Written by `vjepa summarize` from results/metrics.json; do not edit."]

    def define(macro: str, value) -> None:
        lines.append(f"\\newcommand{{{macro}}}{{{value}}}")

    heads = summary["heads"]
    for head, r in heads.items():
        define(macro_name(head, "top1"), _pct(r["knn_top1"]))
        define(macro_name(head, "top5"), _pct(r["knn_top5"]))
        define(macro_name(head, "probe", "top1"), _pct(r.get("probe_top1")))
    best = max(heads, key=lambda h: heads[h]["knn_top1"])
    define("\\BestHead", tex_name(best))
    define("\\BestTopOne", _pct(heads[best]["knn_top1"]))
    probed = [h for h in heads if heads[h].get("probe_top1") is not None]
    best_probe = max(probed, key=lambda h: heads[h]["probe_top1"]) if probed else None
    define("\\BestProbeHead", tex_name(best_probe) if best_probe else "--")
    define("\\BestProbeTopOne", _pct(heads[best_probe]["probe_top1"]) if best_probe else "--")
    define("\\RawPixelsTopOne", _pct(summary["reference"]["raw_pixels"]["top1"]))
    define("\\RandomInitTopOne", _pct(summary["reference"]["random_init"]["top1"]))
    define("\\RawPixelsProbeTopOne", _pct(summary["reference"]["raw_pixels"].get("probe_top1")))
    define("\\NumSeeds", len(summary["seeds"]))
    first = next(iter(heads.values()))
    define("\\ScoreDraws", first.get("draws_per_token") or "--")
    define("\\ScoredTokens", first.get("scored_tokens") or "--")
    calibrated = best_calibrated(summary)
    define("\\BestCalibratedHead", tex_name(calibrated) if calibrated else "--")
    define("\\NumTrain", summary["n_train"])
    define("\\NumVal", summary["n_val"])
    define("\\NumHeads", len(summary["heads"]))
    shares = [f"{tex_name(h)} {100 * r['predict_share']:.1f}\\,\\%" for h, r in heads.items() if r.get("predict_share")]
    define("\\GradientShares", ", ".join(shares) or "not recorded")
    return "\n".join(lines) + "\n"


def _pct(x: float | None) -> str:
    return "--" if x is None else f"{100 * x:.2f}"


def _num(x: float | None, fmt: str) -> str:
    return "--" if x is None else format(x, fmt)


def _nll(r: dict) -> str:
    """The exact NLL per dimension, or an upper bound on it (≤) where the head has only that."""
    if r.get("nll_per_dim") is None and r.get("nll_bound_per_dim") is not None:
        return f"$\\leq$ {r['nll_bound_per_dim']:.3f}"
    return _num(r.get("nll_per_dim"), ".3f")


def _pm(mean: float | None, std: float | None) -> str:
    """A percentage with its std over seeds when there is one: 73.89 $\\pm$ 1.20."""
    return _pct(mean) if std is None else f"{_pct(mean)} $\\pm$ {100 * std:.2f}"


def table_tex(summary: dict) -> str:
    """A booktabs tabular (no float wrapper, so the report chooses the caption)."""
    lines = [
        r"\begin{tabular}{lrrrrrrrrr}",
        r"\toprule",
        r"Predictor & Batch & Steps & kNN@1 (\%) & kNN@5 (\%) & Probe@1 (\%) & NLL/dim & cos(point) & "
        r"cos(sample) & ms/token \\",
        r"\midrule",
    ]
    for head, r in summary["heads"].items():
        lines.append(
            f"{tex_name(head)} & {r['batch_size']} & {r['step']} & {_pm(r['knn_top1'], r['knn_top1_std'])} & "
            f"{_pm(r['knn_top5'], r['knn_top5_std'])} & {_pm(r['probe_top1'], r['probe_top1_std'])} & "
            f"{_nll(r)} & {_num(r['point_cosine'], '.3f')} & "
            f"{_num(r['sample_cosine'], '.3f')} & {_num(r['sample_ms_per_token'], '.4f')} \\\\"
        )
    lines.append(r"\midrule")
    for key, name in (("raw_pixels", "Raw pixels"), ("random_init", "Untrained encoder")):
        r = summary["reference"][key]
        lines.append(
            f"{name} & -- & -- & {_pct(r['top1'])} & {_pct(r['top5'])} & {_pct(r.get('probe_top1'))} & "
            "-- & -- & -- & -- \\\\"
        )
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def comparison_tex(summary: dict) -> str:
    """Every pair of heads with its verdict over training seeds (`vjepa.report.verdict`), or a sentence saying
    why there is none."""
    if len(summary["seeds"]) < 2:
        return (
            "With one training seed the spread between seeds is not measured, so no difference between "
            "heads can be told apart from seed noise; list several seeds in \\texttt{seeds} "
            "(the paper profile trains three) to get the verdicts.\n"
        )
    v = summary["verdicts"]["knn_top1"]
    lines = [
        r"\begin{table}[htbp]",
        r"\centering",
        f"\\caption{{Every pair of heads over {len(summary['seeds'])} training seeds: A $-$ B in percentage "
        "points (mean $\\pm$ std over seeds); better or worse when the paired $t$-test's $p$, Holm-corrected "
        f"over the {len(v['pairs'])} pairs, is below {v['alpha']:g}; equivalent when two one-sided tests put the "
        f"difference within $\\pm${v['margin_points']:g} point ($p <$ {v['alpha']:g}); otherwise unresolved, "
        "with the seeds that would resolve it at the observed spread.}",
        r"\label{tab:comparison}",
        r"\resizebox{\textwidth}{!}{%",
        r"\begin{tabular}{llrrrlrrl}",
        r"\toprule",
        r"Head A & Head B & $\Delta$kNN@1 (pp) & $p_\mathrm{Holm}$ & $p_\mathrm{equiv}$ & kNN verdict & seeds "
        r"& $\Delta$Probe@1 (pp) & probe verdict \\",
        r"\midrule",
    ]
    probe = {(c["a"], c["b"]): c for c in summary["verdicts"]["probe_top1"]["pairs"]}
    spread = lambda c: f"{c['mean']:+.2f} $\\pm$ {np.std(c['diffs'], ddof=1):.2f}" if len(c["diffs"]) > 1 else "--"
    for c in v["pairs"]:
        p = probe.get((c["a"], c["b"]))
        lines.append(
            " & ".join(
                [
                    tex_name(c["a"]),
                    tex_name(c["b"]),
                    spread(c),
                    _num(c["p_holm"], ".3f"),
                    _num(c["p_equiv"], ".3f"),
                    c["verdict"],
                    _num(c["seeds_to_resolve"], "d"),
                    spread(p) if p else "--",
                    p["verdict"] if p else "--",
                ]
            )
            + r" \\"
        )
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}", ""]
    return "\n".join(lines)


def calibration_error(r: dict) -> float | None:
    """|coverage of the 50% interval − 0.5| + |coverage of the 90% interval − 0.9| (0 = calibrated)."""
    if r.get("coverage_50") is None or r.get("coverage_90") is None:
        return None
    return abs(r["coverage_50"] - 0.5) + abs(r["coverage_90"] - 0.9)


def best_calibrated(summary: dict) -> str | None:
    scored = {h: calibration_error(r) for h, r in summary["heads"].items()}
    scored = {h: e for h, e in scored.items() if e is not None}
    return min(scored, key=scored.get) if scored else None


def uncertainty_tex(summary: dict) -> str:
    """The distribution scores of every head (booktabs tabular, no float wrapper)."""
    lines = [
        r"\begin{tabular}{lrrrrrrr}",
        r"\toprule",
        r"Predictor & Energy/dim & Cover 50\% & Cover 90\% & Calib.\ err. & $\rho$(spread, error) & "
        r"Pairwise dist. & Modes \\",
        r"\midrule",
    ]
    for head, r in summary["heads"].items():
        name = tex_name(head)
        lines.append(
            f"{name} & {_num(r.get('energy_score_per_dim'), '.4f')} & {_pct(r.get('coverage_50'))} & "
            f"{_pct(r.get('coverage_90'))} & {_num(calibration_error(r), '.3f')} & "
            f"{_num(r.get('spread_error_spearman'), '.3f')} & {_num(r.get('sample_pairwise_distance'), '.2f')} & "
            f"{_num(r.get('modes'), '.2f')} \\\\"
        )
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)
