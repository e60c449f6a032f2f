import json

from vjepa.report.studies import studies_tex


def write_study(root, name, heads, seeds, accuracies, trunk="paper", floors=True):
    """A head study as benchmarks/head_comparison.py leaves it: accuracies {(head, seed): kNN}."""
    folder = root / name
    folder.mkdir(parents=True)
    study = {"params": "params.yaml", "trunk": trunk, "overrides": {"heads": heads, "seeds": seeds}, "set": []}
    (folder / "study.json").write_text(json.dumps(study))
    for (head, seed), knn in accuracies.items():
        run = folder / "heads" / head / f"seed{seed}"
        run.mkdir(parents=True)
        metrics = {"knn_top1": knn, "knn_top1_whitened": knn + 0.1, "probe_top1": 0.5}
        (run / "metrics.json").write_text(json.dumps(metrics))
    if floors:
        ref = {"raw_pixels": {"top1": 0.0874, "probe_top1": 0.07}, "random_init": {"top1": 0.048, "probe_top1": 0.0832}}
        (folder / "metrics.json").write_text(json.dumps({"reference": ref}))


def test_a_complete_study_gives_its_means_floors_and_resolved_pairs(tmp_path):
    seeds = [0, 1, 2, 3]
    # mdn is 10 points above the deterministic head on every seed (± 0.2): a clear difference;
    # flow equals the deterministic head to 0.1 point: equivalent within ±1 point.
    base = {0: 0.20, 1: 0.22, 2: 0.21, 3: 0.23}
    wobble = {0: 0.002, 1: -0.002, 2: 0.001, 3: -0.001}
    acc = {("deterministic", s): base[s] for s in seeds}
    acc |= {("mdn", s): base[s] + 0.10 + wobble[s] for s in seeds}
    acc |= {("flow", s): base[s] + wobble[s] / 2 for s in seeds}
    write_study(tmp_path, "tin", ["deterministic", "mdn", "flow"], seeds, acc)
    text = studies_tex(tmp_path)
    assert "4 of 4" not in text and "12 of 12 runs landed." in text
    # the deterministic head: mean of 20, 22, 21, 23 = 21.50, sample std 1.29
    assert r"Deterministic (I-JEPA) & 21.50 $\pm$ 1.29 (4) & 31.50 $\pm$ 1.29 (4) & 50.00 $\pm$ 0.00 (4)" in text
    assert "Raw pixels (floor) & 8.74 & & 7.00" in text
    knn = next(line for line in text.splitlines() if line.startswith(r"\emph{kNN}"))
    assert "2 of 3 pairs differ" in knn
    # a p-value below 0.001 reads "< 0.001", not "0.000"
    mdn_line = r"Deterministic (I-JEPA) worse than Mixture density network by 10.00 points, $p_\mathrm{Holm}$ $<$ 0.001"
    assert mdn_line in knn
    assert "Mixture density network better than RealNVP flow" in knn
    assert "1 equivalent within $\\pm$1 point (Deterministic (I-JEPA) and RealNVP flow)" in knn
    assert "0 unresolved." in knn
    assert "the paper's trunk" in text


def test_a_running_study_shows_what_landed_without_verdicts(tmp_path):
    acc = {("deterministic", 0): 0.0836, ("mdn", 0): 0.1008}
    write_study(tmp_path, "running", ["deterministic", "mdn"], [0, 1, 2], acc, trunk="params", floors=False)
    text = studies_tex(tmp_path)
    assert "2 of 6 runs landed so far" in text
    assert "Mixture density network & 10.08 (1)" in text  # one seed: no spread
    assert r"\emph{kNN}" not in text and "floor" not in text
    assert "the params file's trunk" in text


def test_only_studies_of_several_heads_are_listed(tmp_path):
    assert "No head study is recorded" in studies_tex(tmp_path)
    (tmp_path / "controls-digits").mkdir()  # a controls table: no study.json
    (tmp_path / "controls-digits" / "table.json").write_text("{}")
    write_study(tmp_path, "one-head", ["deterministic"], [0], {("deterministic", 0): 0.5})
    assert "No head study is recorded" in studies_tex(tmp_path)
    write_study(tmp_path, "two-heads", ["deterministic", "mdn"], [0], {("deterministic", 0): 0.5})
    text = studies_tex(tmp_path)
    assert "two-heads" in text and "one-head" not in text and "controls" not in text
