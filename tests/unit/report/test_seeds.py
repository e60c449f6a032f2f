"""Several training seeds: the run folders, mean ± std over seeds, the paired comparison of heads,
and the figures that show the spread."""

import json

import numpy as np
import pytest

from vjepa.cli import main
from vjepa.core.io import run_dir, write_json
from vjepa.report.figures import FigureContext, render
from vjepa.report.summarize import comparison_tex, head_row, numbers_tex, paired_comparison, summarize, table_tex

from conftest import tiny, write_params


def fake_metrics(knn: float, probe: float, coverage_50: float = 0.4) -> dict:
    return {
        "knn_top1": knn,
        "knn_top5": min(1.0, knn + 0.2),
        "probe_top1": probe,
        "probe_top5": 1.0,
        "step": 10,
        "head_metrics": {
            "nll_per_dim": None,
            "point_cosine": 0.5,
            "sample_cosine": 0.4,
            "sample_ms_per_token": 0.01,
            "energy_score_per_dim": 0.1,
            "coverage_50": coverage_50,
            "coverage_90": 0.85,
            "spread_error_spearman": 0.2,
            "sample_pairwise_distance": 3.0,
            "modes": 1.0,
            "pit_histogram": [0.1] * 10,
            "draws_per_token": 8,
            "scored_tokens": 16,
        },
    }


def test_mean_and_sample_std_over_seeds():
    row = head_row({0: fake_metrics(0.70, 0.80), 1: fake_metrics(0.72, 0.81), 2: fake_metrics(0.74, 0.85)}, 32)
    assert row["knn_top1"] == pytest.approx(0.72) and row["knn_top1_std"] == pytest.approx(0.02)  # ddof 1
    assert row["probe_top1"] == pytest.approx(0.82) and row["probe_top1_std"] == pytest.approx(
        np.std([0.8, 0.81, 0.85], ddof=1)
    )
    assert row["per_seed"][1]["knn_top1"] == 0.72 and row["seeds"] == [0, 1, 2]
    one = head_row({0: fake_metrics(0.7, 0.8)}, 32)
    assert one["knn_top1"] == 0.7 and one["knn_top1_std"] is None  # no spread from one seed


def test_table_one_caption_quotes_each_heads_mean_gradient_share():
    runs = {
        s: fake_metrics(0.7, 0.8) | {"gradient_share": {"predict_share_second_half": v}}
        for s, v in enumerate((0.02, 0.04))
    }
    row = head_row(runs, 32)
    assert row["predict_share"] == pytest.approx(0.03)
    assert head_row({0: fake_metrics(0.7, 0.8)}, 32)["predict_share"] is None  # no masked-token loss recorded
    summary = {
        "heads": {"deterministic": row, "mdn": head_row({0: fake_metrics(0.6, 0.7)}, 32)},
        "reference": {"raw_pixels": {"top1": 0.9}, "random_init": {"top1": 0.5}},
        "n_train": 10,
        "n_val": 5,
        "seeds": [0, 1],
    }
    assert r"\newcommand{\GradientShares}{Deterministic (I-JEPA) 3.0\,\%}" in numbers_tex(summary)
    summary["heads"] = {"mdn": summary["heads"]["mdn"]}
    assert r"\newcommand{\GradientShares}{not recorded}" in numbers_tex(summary)


def test_paired_comparison_known_answers():
    a = head_row({0: fake_metrics(0.70, 0.5), 1: fake_metrics(0.80, 0.5), 2: fake_metrics(0.60, 0.5)}, 32)
    # b is a minus a steady 1-3 points: the heads' seed-to-seed swings are 10 points, the paired
    # differences 1, 2, 3 points -> t = 2 / (1 / sqrt 3) = 3.46 with 2 dof, p = 0.074
    b = head_row({0: fake_metrics(0.69, 0.5), 1: fake_metrics(0.78, 0.5), 2: fake_metrics(0.57, 0.5)}, 32)
    # c is 10 points below a on every seed: larger than seed noise
    c = head_row({0: fake_metrics(0.60, 0.5), 1: fake_metrics(0.70, 0.5), 2: fake_metrics(0.50, 0.5)}, 32)
    pairs = {(p["a"], p["b"]): p for p in paired_comparison({"a": a, "b": b, "c": c}, "knn_top1")}
    ab = pairs[("a", "b")]
    assert ab["diff"] == pytest.approx(0.02) and ab["diff_std"] == pytest.approx(0.01) and ab["n"] == 3
    assert ab["p"] == pytest.approx(0.0742, abs=5e-4) and ab["beyond_seed_noise"] is False
    assert pairs[("a", "c")]["p"] == 0.0 and pairs[("a", "c")]["beyond_seed_noise"] is True
    # Unpaired, a and b overlap completely (their means differ by 2 points, their spreads are 10).
    assert abs(a["knn_top1"] - b["knn_top1"]) < a["knn_top1_std"]
    one = paired_comparison(
        {"a": head_row({0: fake_metrics(0.7, 0.5)}, 32), "b": head_row({0: fake_metrics(0.6, 0.5)}, 32)}, "knn_top1"
    )
    assert one[0]["p"] is None and one[0]["beyond_seed_noise"] is None


def write_runs(results, heads, seeds, knn):
    for head in heads:
        for seed in seeds:
            write_json(run_dir(results, head, seed) / "metrics.json", fake_metrics(knn[head][seed], 0.5))
    write_json(
        results / "reference" / "metrics.json",
        {
            "raw_pixels": {"top1": 0.9, "top5": 1.0, "probe_top1": 0.95},
            "random_init": {"top1": 0.5, "top5": 0.8},
            "n_train": 100,
            "n_val": 20,
        },
    )


def test_summary_tables_show_mean_std_and_the_comparison(tmp_path, params):
    params["heads"], params["seeds"] = ["deterministic", "mdn"], [3, 7]
    write_runs(
        tmp_path, params["heads"], params["seeds"], {"deterministic": {3: 0.70, 7: 0.74}, "mdn": {3: 0.60, 7: 0.62}}
    )
    summarize(params, tmp_path, tmp_path / "metrics.json", tmp_path / "tex")
    s = json.loads((tmp_path / "metrics.json").read_text())
    assert s["seeds"] == [3, 7] and s["heads"]["deterministic"]["knn_top1"] == pytest.approx(0.72)
    table = (tmp_path / "tex" / "table1.tex").read_text()
    assert "72.00 $\\pm$ 2.83" in table and "95.00" in table  # mean ± std; the raw-pixel probe
    comparison = (tmp_path / "tex" / "comparison.tex").read_text()
    assert r"\label{tab:comparison}" in comparison and "+11.00 $\\pm$ 1.41" in comparison
    # +10 and +12 points over two seeds: p = 0.058, unresolved; a third seed at that spread resolves it.
    # The probes are equal on both seeds: equivalent.
    assert " & 0.058 & 0.968 & unresolved & 3 & +0.00 $\\pm$ 0.00 & equivalent \\\\" in comparison
    assert s["verdicts"]["knn_top1"]["pairs"][0]["verdict"] == "unresolved"
    assert s["comparison"]["knn_top1"][0]["p"] == pytest.approx(0.0577, abs=5e-4)  # t = 11/(1.41/√2), 1 dof
    assert "one training seed" in comparison_tex({**s, "seeds": [0]})
    assert (
        "$\\pm$" not in table_tex({**s, "heads": {"d": head_row({0: fake_metrics(0.7, 0.8)}, 32)}}).split("midrule")[1]
    )


def test_missing_seed_run_is_named(tmp_path, params):
    params["heads"], params["seeds"] = ["deterministic"], [0, 1]
    write_runs(tmp_path, ["deterministic"], [0], {"deterministic": {0: 0.7}})
    with pytest.raises(Exception, match="--head deterministic --seed 1"):
        summarize(params, tmp_path, tmp_path / "metrics.json", tmp_path / "tex")


def test_curve_figures_draw_the_spread_over_seeds(tmp_path, params):
    params["heads"], params["seeds"] = ["deterministic", "flow"], [0, 1]
    for head in params["heads"]:
        for seed in params["seeds"]:
            d = run_dir(tmp_path, head, seed)
            d.mkdir(parents=True)
            (d / "knn_curve.csv").write_text(
                "step,knn_top1\n" + "".join(f"{s},{0.1 * seed + s / 100}\n" for s in (5, 10))
            )
            write_json(
                d / "metrics.json",
                {
                    **fake_metrics(0.7, 0.8, coverage_50=0.3 + 0.1 * seed),
                    "gradient_share": {"predict_share_second_half": 0.01 * (seed + 1)},
                },
            )
    ctx = FigureContext(params, tmp_path, tmp_path)
    import matplotlib

    matplotlib.use("Agg")
    from vjepa.report.figures import knn

    fig = knn.plot(ctx)
    ax = fig.axes[0]
    assert len(ax.collections) == 2  # one min..max band per head
    assert np.allclose(ax.lines[0].get_ydata(), [100 * (0.05 + 0.05), 100 * (0.05 + 0.1)])  # mean of the two seeds
    paths = render("calibration", ctx, tmp_path / "fig")
    assert all(p.stat().st_size > 1000 for p in paths)
    from vjepa.report.figures import gradient_share

    ax = gradient_share.plot(ctx).axes[0]  # one point per head and seed: (share %, kNN %)
    assert len(ax.lines) == len(params["heads"])
    assert np.allclose(ax.lines[0].get_xdata(), [1.0, 2.0]) and np.allclose(ax.lines[0].get_ydata(), [70.0, 70.0])


def test_each_seed_trains_its_own_run(tmp_path, params):
    params = tiny(params)
    params["heads"], params["seeds"] = ["deterministic"], [0, 1]
    f = write_params(tmp_path / "params.yaml", params)
    common = ["--params", str(f), "--data-dir", str(tmp_path / "data"), "--results-dir", str(tmp_path / "r"), "--quiet"]
    assert main(["prepare", *common]) == 0 and main(["stats", *common]) == 0
    for seed in ("0", "1"):
        assert main(["train", "--head", "deterministic", "--seed", seed, *common]) == 0
    import torch

    a, b = (
        torch.load(run_dir(tmp_path / "r", "deterministic", s) / "checkpoint.pt", weights_only=True) for s in (0, 1)
    )
    assert a["config"]["seed"] == 0 and b["config"]["seed"] == 1
    assert a["model"].keys() == b["model"].keys()
    assert not any(
        torch.equal(a["model"][k], b["model"][k])
        for k in a["model"]
        if k.endswith("weight") and a["model"][k].numel() > 1 and a["model"][k].std() > 0
    )
