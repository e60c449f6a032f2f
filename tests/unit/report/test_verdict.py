"""Verdicts of head pairs on constructed paired differences: a clear difference, a clear
equivalence, an unresolved case (with the seeds that would resolve it), Holm's correction and the
equivalence test's known answers."""

import numpy as np
import pytest
from scipy import stats

from vjepa.report.verdict import (
    equivalence_pvalue,
    holm,
    pair_verdicts,
    paired_t_pvalue,
    seeds_to_resolve,
    verdict_file,
)


def study(**diffs_to_base):
    """{head: {seed: accuracy}}: a base head at 50% on seeds 0-4, others at base + the given points."""
    base = {s: 0.50 + 0.01 * s for s in range(5)}
    out = {"base": base}
    for head, diffs in diffs_to_base.items():
        out[head] = {s: base[s] + d / 100 for s, d in enumerate(diffs)}
    return out


def test_a_clear_difference_an_equivalence_and_an_unresolved_pair():
    per_seed = study(
        strong=[5.1, 4.9, 5.2, 4.8, 5.0], same=[0.1, -0.1, 0.05, -0.05, 0.0], noisy=[3.0, -2.0, 4.0, -1.0, 2.5]
    )
    pairs = {(p["a"], p["b"]): p for p in pair_verdicts(per_seed)}
    assert len(pairs) == 6
    strong = pairs[("base", "strong")]
    assert strong["verdict"] == "worse" and strong["p_holm"] < 0.05  # base − strong ≈ −5 points
    assert strong["diffs"] == pytest.approx([-5.1, -4.9, -5.2, -4.8, -5.0]) and strong["seeds_to_resolve"] is None
    same = pairs[("base", "same")]
    assert same["verdict"] == "equivalent" and same["p_holm"] >= 0.05 and same["p_equiv"] < 0.05
    noisy = pairs[("base", "noisy")]
    assert noisy["verdict"] == "unresolved" and noisy["p_equiv"] >= 0.05
    assert isinstance(noisy["seeds_to_resolve"], int) and noisy["seeds_to_resolve"] > 5
    assert pairs[("strong", "same")]["verdict"] == "better"


def test_holm_known_answer_and_that_it_corrects():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]
    # Fifteen pairs each at p = 0.01 are no longer significant at 0.05 one by one.
    assert holm([0.01] * 15) == pytest.approx([0.15] * 15)
    # The Holm factor changes a verdict: p ≈ 0.02 alone is a difference, not among 15 pairs.
    d = np.array([1.0, 2.0, 1.5, 1.8])
    assert 0.005 < paired_t_pvalue(d) < 0.05


def test_equivalence_pvalue_known_answers():
    d = np.array([-0.2, 0.2, -0.1, 0.1])  # mean 0: both one-sided tests give the same p
    se = d.std(ddof=1) / 2
    assert equivalence_pvalue(d, 1.0) == pytest.approx(stats.t.sf(1.0 / se, 3))
    shifted = d + 0.5
    assert equivalence_pvalue(shifted, 1.0) == pytest.approx(stats.t.sf(0.5 / se, 3))
    assert equivalence_pvalue(np.array([0.3, 0.3, 0.3]), 1.0) == 0.0  # no spread, inside the margin
    assert equivalence_pvalue(np.array([2.0, 2.0]), 1.0) == 1.0


def test_seeds_to_resolve_is_the_first_count_at_which_a_test_passes():
    n = seeds_to_resolve(1.5, 2.0, margin=1.0, alpha=0.05, tests=15)
    assert n is not None

    def resolved(k):
        z = np.linspace(-1, 1, k)
        d = 1.5 + 2.0 * (z - z.mean()) / z.std(ddof=1)
        return paired_t_pvalue(d) * 15 < 0.05 or equivalence_pvalue(d, 1.0) < 0.05

    assert resolved(n) and not resolved(n - 1)
    assert seeds_to_resolve(0.0, 50.0, margin=1.0, alpha=0.05, tests=15) is None  # beyond MAX_SEEDS


def test_one_seed_gives_unresolved_without_p_values_and_the_file_layout():
    per_seed = {"a": {0: 0.5}, "b": {0: 0.4}, "c": {0: 0.45, 1: 0.5}}
    f = verdict_file(per_seed, "knn_top1")
    assert f["metric"] == "knn_top1" and f["seeds"] == [0, 1]
    assert [(p["a"], p["b"]) for p in f["pairs"]] == [("a", "b"), ("a", "c"), ("b", "c")]
    ab = f["pairs"][0]
    assert ab["verdict"] == "unresolved" and ab["p_holm"] is None and ab["diffs"] == pytest.approx([10.0])


def test_scores_against_quality_known_correlations():
    from vjepa.report.verdict import scores_against_quality

    runs = [
        {
            "head": h,
            "knn_top1": k,
            "head_metrics": {
                "energy_score_per_dim": e,
                "coverage_50": 0.5,
                "coverage_90": c,
                **({"nll_per_dim": n} if n is not None else {}),
            },
        }
        for h, k, e, c, n in (
            ("mdn", 0.1, 0.9, 0.9, 1.0),
            ("flow", 0.2, 0.8, 0.8, 0.5),
            ("rnade", 0.3, 0.7, 0.7, 0.2),
            ("diffusion", 0.4, 0.6, 0.6, None),
        )
    ]
    out = scores_against_quality(runs)["scores"]
    assert out["energy_score_per_dim"]["spearman"] == pytest.approx(-1.0)  # lower score, better kNN: goes with it
    assert out["coverage_error"]["spearman"] == pytest.approx(1.0)  # coverage drifts from 0.9 as kNN rises
    assert out["nll_per_dim"]["runs"] == 3 and out["nll_per_dim"]["heads"] == ["flow", "mdn", "rnade"]
    assert out["spread_error_spearman"]["runs"] == 0 and out["spread_error_spearman"]["spearman"] is None
