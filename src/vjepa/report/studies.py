"""The recorded head studies as LaTeX, so the report answers the head question on every data source
and trunk that has been studied, not only on its own run.

`benchmarks/head_comparison.py` writes each study to results/studies/NAME/: study.json (params
file, trunk, heads, seeds, overrides), one metrics.json per run under heads/HEAD/seedN/ and, when
every run has landed, the floors in metrics.json. For every study of two heads or more,
`studies_tex` prints each head's kNN, whitened kNN and linear probe (mean ± std over the seeds
landed) and, once the study is complete, the pairs its paired tests resolve (the same
`verdict_file` as the study's verdict*.json). A study still running shows what has landed.
"""

from __future__ import annotations

import json
from pathlib import Path

from vjepa.report.summarize import DISPLAY_NAMES, mean_std
from vjepa.report.tex import tex_escape
from vjepa.report.verdict import verdict_file

METRICS = (  # (metrics.json key, label)
    ("knn_top1", "kNN"),
    ("knn_top1_whitened", "Whitened kNN"),
    ("probe_top1", "Probe"),
)


def read_study(folder: Path) -> dict | None:
    """A head study's settings and the runs landed so far ({(head, seed): metrics}); None when the
    folder is not a study of two heads or more (a controls table, a one-head study)."""
    path = folder / "study.json"
    if not path.is_file():
        return None
    study = json.loads(path.read_text())
    heads, seeds = study["overrides"]["heads"], study["overrides"]["seeds"]
    if len(heads) < 2:
        return None
    runs = {}
    for head in heads:
        for seed in seeds:
            run = folder / "heads" / head / f"seed{seed}" / "metrics.json"
            if run.is_file():
                runs[(head, seed)] = json.loads(run.read_text())
    summary = folder / "metrics.json"
    floors = json.loads(summary.read_text()).get("reference", {}) if summary.is_file() else {}
    return {"name": folder.name, **study, "heads": heads, "seeds": seeds, "runs": runs, "floors": floors}


def _cell(values: list) -> str:
    if not values or any(v is None for v in values):
        return "--"
    mean, std = mean_std(values)
    return f"{100 * mean:.2f}" + ("" if std is None else f" $\\pm$ {100 * std:.2f}") + f" ({len(values)})"


def _p(value: float) -> str:
    """A p-value as a sentence reads it: three decimals, or "< 0.001" below that."""
    return "$<$ 0.001" if value < 0.001 else f"{value:.3f}"


def _verdicts_line(study: dict, key: str, label: str) -> str:
    per_seed = {h: {s: m.get(key) for (h_, s), m in study["runs"].items() if h_ == h} for h in study["heads"]}
    if any(v is None for runs in per_seed.values() for v in runs.values()):
        return f"\\emph{{{label}}}: not recorded in these runs."
    pairs = verdict_file(per_seed, key)["pairs"]
    name = lambda h: DISPLAY_NAMES.get(h, h)
    resolved = [
        f"{name(p['a'])} {p['verdict']} than {name(p['b'])} by {abs(p['mean']):.2f} points, "
        f"$p_\\mathrm{{Holm}}$ {_p(p['p_holm'])}"
        for p in pairs
        if p["verdict"] in ("better", "worse")
    ]
    equivalent = [f"{name(p['a'])} and {name(p['b'])}" for p in pairs if p["verdict"] == "equivalent"]
    unresolved = sum(p["verdict"] == "unresolved" for p in pairs)
    listed = lambda items: f" ({'; '.join(items)})" if items else ""
    parts = [
        f"{len(resolved)} of {len(pairs)} pairs differ{listed(resolved)}.",
        f"{len(equivalent)} equivalent within $\\pm$1 point{listed(equivalent)}.",
        f"{unresolved} unresolved.",
    ]
    return f"\\emph{{{label}}}: " + " ".join(parts)


def study_tex(study: dict) -> str:
    """One study: its settings, a table of every head and the floors, and its verdicts."""
    expected = len(study["heads"]) * len(study["seeds"])
    landed = len(study["runs"])
    trunk = (
        "the paper's trunk (the masked-token loss alone)" if study["trunk"] == "paper" else "the params file's trunk"
    )
    overrides = ", ".join(f"\\texttt{{{tex_escape(s)}}}" for s in study.get("set", []))
    seeds = ", ".join(map(str, study["seeds"]))
    rows = []
    for head in study["heads"]:
        runs = [m for (h, _), m in sorted(study["runs"].items()) if h == head]
        cells = " & ".join(_cell([m.get(key) for m in runs]) for key, _ in METRICS)
        rows.append(f"{tex_escape(DISPLAY_NAMES.get(head, head))} & {cells} \\\\")
    for key, label in (("raw_pixels", "Raw pixels (floor)"), ("random_init", "Untrained encoder (floor)")):
        f = study["floors"].get(key)
        if f:
            rows.append(f"{label} & {100 * f['top1']:.2f} & & {100 * f['probe_top1']:.2f} \\\\")
    columns = " & ".join(label for _, label in METRICS)
    lines = [
        f"\\paragraph{{\\texttt{{{tex_escape(study['name'])}}}}} \\texttt{{{tex_escape(study['params'])}}} under "
        f"{trunk}"
        + (f", with {overrides}" if overrides else "")
        + f"; seeds {seeds}; {landed} of {expected} runs "
        + ("landed." if landed == expected else "landed so far (the study is running; verdicts when all have)."),
        "",
        r"\begin{center}\small",
        r"\begin{tabular}{lrrr}",
        r"\toprule",
        f"Head & {columns} \\\\",
        r"\midrule",
        *rows,
        r"\bottomrule",
        r"\end{tabular}",
        r"\end{center}",
        "",
    ]
    if landed == expected:
        lines += [line for key, label in METRICS for line in (_verdicts_line(study, key, label), "")]
    return "\n".join(lines)


def studies_tex(studies_dir: Path) -> str:
    """Every head study under `studies_dir`, by name; a line saying so when there is none."""
    studies = [s for s in (read_study(f) for f in sorted(Path(studies_dir).glob("*/"))) if s]
    if not studies:
        return f"No head study is recorded (\\texttt{{{tex_escape(studies_dir)}}}).\n"
    intro = (
        "\\texttt{benchmarks/head\\_comparison.py} trains every head on the same seeds under one trunk and "
        f"budget; its studies, recorded in \\texttt{{{tex_escape(studies_dir)}}}, follow. Top-1 in \\%, mean "
        "$\\pm$ std over seeds (number of seeds); verdicts of a against b as defined above."
    )
    return "\n".join([intro, "", *(study_tex(s) for s in studies)])
