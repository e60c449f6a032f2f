"""Table I from the pipeline's own outputs: results/metrics.json and its LaTeX rendering."""
from __future__ import annotations

import json
from pathlib import Path

from .errors import DataError
from .io import atomic_path, write_json

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


def summarize(heads: list[str], results_dir: str | Path, out_json: str | Path, out_tex: str | Path,
              *, data_source: str) -> dict:
    """Collect every head's metrics and the reference floors into one summary and one LaTeX table."""
    results_dir = Path(results_dir)
    rows = {}
    for head in heads:
        m = _read(results_dir / "heads" / head / "metrics.json", f"run `vjepa evaluate --head {head}` first")
        hm = m.get("head_metrics") or {}
        rows[head] = {"knn_top1": m["knn_top1"], "knn_top5": m["knn_top5"], "step": m["step"],
                      "nll_per_dim": hm.get("nll_per_dim"), "point_cosine": hm.get("point_cosine"),
                      "sample_ms_per_token": hm.get("sample_ms_per_token")}
    ref = _read(results_dir / "reference" / "metrics.json", "run `vjepa reference` first")
    summary = {"data": data_source, "heads": rows,
               "reference": {"raw_pixels": ref["raw_pixels"], "random_init": ref["random_init"]},
               "n_train": ref["n_train"], "n_val": ref["n_val"]}
    write_json(out_json, summary)
    with atomic_path(out_tex) as tmp:
        tmp.write_text(table_tex(summary))
    return summary


def _pct(x: float | None) -> str:
    return "--" if x is None else f"{100 * x:.2f}"


def _num(x: float | None, fmt: str) -> str:
    return "--" if x is None else format(x, fmt)


def table_tex(summary: dict) -> str:
    """A booktabs tabular (no float wrapper, so the report chooses the caption)."""
    lines = [r"\begin{tabular}{lrrrrr}", r"\toprule",
             r"Predictor & kNN@1 (\%) & kNN@5 (\%) & NLL/dim & cos(point, target) & ms/token \\", r"\midrule"]
    for head, r in summary["heads"].items():
        name = DISPLAY_NAMES.get(head, head.replace("_", r"\_"))
        lines.append(f"{name} & {_pct(r['knn_top1'])} & {_pct(r['knn_top5'])} & "
                     f"{_num(r['nll_per_dim'], '.3f')} & {_num(r['point_cosine'], '.3f')} & "
                     f"{_num(r['sample_ms_per_token'], '.4f')} \\\\")
    lines.append(r"\midrule")
    for key, name in (("raw_pixels", "Raw pixels"), ("random_init", "Untrained encoder")):
        r = summary["reference"][key]
        lines.append(f"{name} & {_pct(r['top1'])} & {_pct(r['top5'])} & -- & -- & -- \\\\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)
