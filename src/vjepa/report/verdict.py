"""A verdict for every pair of heads from their paired differences over seeds.

For heads a and b trained on the same seeds (same data order and initialisation), d_s = a − b on
seed s, in percentage points. The verdict of a against b:

- **better / worse**: the paired t-test's two-sided p-value, Holm-corrected over all the pairs
  of the study, is below alpha (the sign of the mean difference says which);
- **equivalent**: otherwise, when two one-sided t-tests (TOST) put the mean difference inside
  ±margin points with p < alpha (the larger of the two one-sided p-values);
- **unresolved**: neither. `seeds_to_resolve` says how many seeds would resolve it if the mean
  difference and its spread stayed as observed (the smaller n at which either test would pass,
  the t-test judged at the strictest Holm factor, the number of pairs); None beyond MAX_SEEDS.
"""

from __future__ import annotations

import numpy as np

# scipy.stats is imported where it is used: it takes seconds to load, and every figure imports this
# module through the summary's names.

MAX_SEEDS = 100


def paired_t_pvalue(diffs: np.ndarray) -> float:
    """Two-sided p-value of the paired t-test that the differences' mean is 0. Differences equal up
    to rounding (no spread) give 0 unless they are all 0 (then 1)."""
    mean, sd = float(diffs.mean()), float(diffs.std(ddof=1))
    if sd <= 1e-9 * max(1.0, abs(mean)):
        return float(abs(mean) <= 1e-12)
    from scipy import stats

    t = mean / (sd / np.sqrt(len(diffs)))
    return float(2 * stats.t.sf(abs(t), len(diffs) - 1))


def equivalence_pvalue(diffs: np.ndarray, margin: float) -> float:
    """TOST p-value that the mean of `diffs` lies inside (−margin, margin): the larger of the two
    one-sided p-values. Differences without spread give 0 inside the margin and 1 outside."""
    mean, n = float(diffs.mean()), len(diffs)
    sd = float(diffs.std(ddof=1))
    if sd <= 1e-9 * max(1.0, abs(mean)):
        return float(abs(mean) >= margin)
    from scipy import stats

    se = sd / np.sqrt(n)
    lower = stats.t.sf((mean + margin) / se, n - 1)  # H0: mean <= -margin
    upper = stats.t.cdf((mean - margin) / se, n - 1)  # H0: mean >= +margin
    return float(max(lower, upper))


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given."""
    m = len(pvalues)
    order = np.argsort(pvalues, kind="stable")
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def seeds_to_resolve(mean: float, sd: float, margin: float, alpha: float, tests: int) -> int | None:
    """The fewest seeds (≥ 2) at which the observed mean and spread would give a difference
    (t-test p·tests < alpha) or an equivalence (TOST p < alpha); None when over MAX_SEEDS."""
    for n in range(2, MAX_SEEDS + 1):
        d = mean + sd * _unit_spread(n)  # n differences with exactly this mean and sample std
        if paired_t_pvalue(d) * tests < alpha or equivalence_pvalue(d, margin) < alpha:
            return n
    return None


def _unit_spread(n: int) -> np.ndarray:
    z = np.linspace(-1.0, 1.0, n)
    return (z - z.mean()) / z.std(ddof=1)


def pair_verdicts(per_seed: dict[str, dict[int, float]], *, margin: float = 1.0, alpha: float = 0.05) -> list[dict]:
    """Every pair (a, b) of the heads in `per_seed` ({head: {seed: accuracy in [0, 1]}}), in order,
    compared on the seeds both have: differences in points, p (paired t-test), p_holm, p_equiv
    (TOST, ±margin points), verdict and seeds_to_resolve. Pairs with fewer than 2 common seeds
    are unresolved with no p-values."""
    heads = list(per_seed)
    pairs = []
    for i, a in enumerate(heads):
        for b in heads[i + 1 :]:
            seeds = [s for s in per_seed[a] if s in per_seed[b]]
            diffs = [100.0 * (per_seed[a][s] - per_seed[b][s]) for s in seeds]
            pairs.append({"a": a, "b": b, "seeds": seeds, "diffs": [round(d, 4) for d in diffs]})
    tested = [p for p in pairs if len(p["diffs"]) > 1]
    for p in tested:
        d = np.asarray(p["diffs"])
        p["mean"] = float(d.mean())
        p["p"] = paired_t_pvalue(d)
        p["p_equiv"] = equivalence_pvalue(d, margin)
    for p, adjusted in zip(tested, holm([p["p"] for p in tested])):
        p["p_holm"] = adjusted
        if adjusted < alpha:
            p["verdict"] = "better" if p["mean"] > 0 else "worse"
        elif p["p_equiv"] < alpha:
            p["verdict"] = "equivalent"
        else:
            p["verdict"] = "unresolved"
        p["seeds_to_resolve"] = (
            None
            if p["verdict"] != "unresolved"
            else seeds_to_resolve(p["mean"], float(np.std(p["diffs"], ddof=1)), margin, alpha, len(tested))
        )
    for p in pairs:
        if len(p["diffs"]) < 2:
            p.update(
                mean=float(np.mean(p["diffs"])) if p["diffs"] else None,
                p=None,
                p_holm=None,
                p_equiv=None,
                verdict="unresolved",
                seeds_to_resolve=None,
            )
    return pairs


def verdict_file(
    per_seed: dict[str, dict[int, float]], metric: str, *, margin: float = 1.0, alpha: float = 0.05
) -> dict:
    """The content of a study's verdict.json."""
    seeds = sorted({s for runs in per_seed.values() for s in runs})
    return {
        "metric": metric,
        "seeds": seeds,
        "margin_points": margin,
        "alpha": alpha,
        "tests": "paired t-test, Holm-corrected over the pairs; equivalence by two one-sided t-tests",
        "pairs": pair_verdicts(per_seed, margin=margin, alpha=alpha),
    }


# Distribution scores of a run (metrics.json's head_metrics) and which way is better.
SCORES = {
    "nll_per_dim": "lower",
    "energy_score_per_dim": "lower",
    "coverage_error": "lower",
    "spread_error_spearman": "higher",
}


def coverage_error(h: dict) -> float | None:
    """Mean distance of the 50% and 90% central intervals' coverage from 0.5 and 0.9."""
    if h.get("coverage_50") is None or h.get("coverage_90") is None:
        return None
    return (abs(h["coverage_50"] - 0.5) + abs(h["coverage_90"] - 0.9)) / 2


def scores_against_quality(runs: list[dict], metric: str = "knn_top1") -> dict:
    """Do a head's distribution scores go with its encoder's quality? Over every run (one metrics.json
    each: heads × seeds), the Spearman correlation between each score of `SCORES` and `metric`, with
    the runs that have that score (NLL only for heads with an exact density). A score that goes with
    quality correlates negatively when lower is better."""
    from scipy import stats

    out = {}
    for score, better in SCORES.items():
        pairs = []
        for m in runs:
            h = m.get("head_metrics") or {}
            value = coverage_error(h) if score == "coverage_error" else h.get(score)
            if value is not None and m.get(metric) is not None:
                pairs.append((value, m[metric], m["head"]))
        row = {"better": better, "runs": len(pairs), "heads": sorted({p[2] for p in pairs})}
        if len(pairs) >= 3 and len({p[0] for p in pairs}) > 1 and len({p[1] for p in pairs}) > 1:
            rho, p = stats.spearmanr([p[0] for p in pairs], [p[1] for p in pairs])
            row.update(spearman=float(rho), p=float(p))
        else:
            row.update(spearman=None, p=None)
        out[score] = row
    return {"metric": metric, "scores": out}
