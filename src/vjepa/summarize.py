"""Table I from the pipeline's own outputs: results/metrics.json and its LaTeX rendering."""
from __future__ import annotations

import json
from pathlib import Path

from .config import resolve
from .errors import DataError
from .io import atomic_path, write_json
from .runtime import versions

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


UNCERTAINTY_KEYS = ("energy_score_per_dim", "coverage_50", "coverage_90", "spread_error_spearman",
                    "sample_pairwise_distance", "modes")


def summarize(params: dict, results_dir: str | Path, out_json: str | Path, out_tex: str | Path,
              out_numbers: str | Path, out_uncertainty: str | Path) -> dict:
    """Collect every head's metrics and the reference floors into one summary, the LaTeX
    Table I and LaTeX macros for the numbers the report's text quotes."""
    results_dir = Path(results_dir)
    rows = {}
    for head in params["heads"]:
        m = _read(results_dir / "heads" / head / "metrics.json", f"run `vjepa evaluate --head {head}` first")
        hm = m.get("head_metrics") or {}
        rows[head] = {"knn_top1": m["knn_top1"], "knn_top5": m["knn_top5"], "step": m["step"],
                      "batch_size": resolve(params, head).train.batch_size,
                      "nll_per_dim": hm.get("nll_per_dim"), "point_cosine": hm.get("point_cosine"),
                      "sample_cosine": hm.get("sample_cosine"),
                      "sample_ms_per_token": hm.get("sample_ms_per_token"),
                      **{k: hm.get(k) for k in UNCERTAINTY_KEYS}}
    ref = _read(results_dir / "reference" / "metrics.json", "run `vjepa reference` first")
    summary = {"data": params["data"]["source"], "heads": rows,
               "reference": {"raw_pixels": ref["raw_pixels"], "random_init": ref["random_init"]},
               "n_train": ref["n_train"], "n_val": ref["n_val"], "seed": params["seed"], "versions": versions()}
    write_json(out_json, summary)
    for path, text in ((out_tex, table_tex(summary)), (out_numbers, numbers_tex(summary)),
                       (out_uncertainty, uncertainty_tex(summary))):
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    return summary


def macro_name(*words: str) -> str:
    """LaTeX command names are letters only: ("flow_matching", "top1") → \\FlowMatchingTopOne."""
    text = " ".join(words).replace("_", " ").replace("1", " one").replace("5", " five")
    return "\\" + "".join(w.capitalize() for w in text.split())


def numbers_tex(summary: dict) -> str:
    """\\newcommand for every number the report's text quotes (percentages with two decimals)."""
    lines = ["% Written by `vjepa summarize` from results/metrics.json; do not edit."]

    def define(macro: str, value) -> None:
        lines.append(f"\\newcommand{{{macro}}}{{{value}}}")

    for head, r in summary["heads"].items():
        define(macro_name(head, "top1"), _pct(r["knn_top1"]))
        define(macro_name(head, "top5"), _pct(r["knn_top5"]))
    best = max(summary["heads"], key=lambda h: summary["heads"][h]["knn_top1"])
    define("\\BestHead", tex_name(best))
    define("\\BestTopOne", _pct(summary["heads"][best]["knn_top1"]))
    define("\\RawPixelsTopOne", _pct(summary["reference"]["raw_pixels"]["top1"]))
    define("\\RandomInitTopOne", _pct(summary["reference"]["random_init"]["top1"]))
    calibrated = best_calibrated(summary)
    define("\\BestCalibratedHead", tex_name(calibrated) if calibrated else "--")
    define("\\NumTrain", summary["n_train"])
    define("\\NumVal", summary["n_val"])
    define("\\NumHeads", len(summary["heads"]))
    return "\n".join(lines) + "\n"


def _pct(x: float | None) -> str:
    return "--" if x is None else f"{100 * x:.2f}"


def _num(x: float | None, fmt: str) -> str:
    return "--" if x is None else format(x, fmt)


def table_tex(summary: dict) -> str:
    """A booktabs tabular (no float wrapper, so the report chooses the caption)."""
    lines = [r"\begin{tabular}{lrrrrrrrr}", r"\toprule",
             r"Predictor & Batch & Steps & kNN@1 (\%) & kNN@5 (\%) & NLL/dim & cos(point) & cos(sample) & ms/token \\",
             r"\midrule"]
    for head, r in summary["heads"].items():
        name = tex_name(head)
        lines.append(f"{name} & {r['batch_size']} & {r['step']} & {_pct(r['knn_top1'])} & {_pct(r['knn_top5'])} & "
                     f"{_num(r['nll_per_dim'], '.3f')} & {_num(r['point_cosine'], '.3f')} & "
                     f"{_num(r['sample_cosine'], '.3f')} & {_num(r['sample_ms_per_token'], '.4f')} \\\\")
    lines.append(r"\midrule")
    for key, name in (("raw_pixels", "Raw pixels"), ("random_init", "Untrained encoder")):
        r = summary["reference"][key]
        lines.append(f"{name} & -- & -- & {_pct(r['top1'])} & {_pct(r['top5'])} & -- & -- & -- & -- \\\\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
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
    lines = [r"\begin{tabular}{lrrrrrrr}", r"\toprule",
             r"Predictor & Energy/dim & Cover 50\% & Cover 90\% & Calib.\ err. & $\rho$(spread, error) & "
             r"Pairwise dist. & Modes \\", r"\midrule"]
    for head, r in summary["heads"].items():
        name = tex_name(head)
        lines.append(f"{name} & {_num(r.get('energy_score_per_dim'), '.4f')} & {_pct(r.get('coverage_50'))} & "
                     f"{_pct(r.get('coverage_90'))} & {_num(calibration_error(r), '.3f')} & "
                     f"{_num(r.get('spread_error_spearman'), '.3f')} & {_num(r.get('sample_pairwise_distance'), '.2f')} & "
                     f"{_num(r.get('modes'), '.2f')} \\\\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)
