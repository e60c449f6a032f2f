"""The report: LaTeX fragments generated from params and outputs, and the PDF via latexmk.

`write_context` writes report/generated/{setup,figures,provenance,trunk,gpu,studies}.tex: the settings
of the run, its trunk and the recorded trunk sweep of its data source, the figure environments of the
figures this run has, the newest recorded GPU study (results/gpu/), the recorded head studies
(results/studies/, `vjepa.report.studies`), and where every number came from
(Git commit, content hashes of the data and checkpoints as DVC records them (md5), library
versions, hardware, wall time of each stage from Snakemake's benchmark files). `build_pdf`
runs latexmk on report/vjepa.tex.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from vjepa.core.config import resolve
from vjepa.core.errors import VJepaError
from vjepa.core.io import atomic_path, file_digest, run_dir
from vjepa.core.versions import versions
from vjepa.model.trunk import describe
from vjepa.report.figures import FIGURES, figure_names
from vjepa.report.studies import studies_tex
from vjepa.report.summarize import DISPLAY_NAMES
from vjepa.report.tex import tex_escape

SWEEPS_DIR = Path("benchmarks/results")  # trunk_sweep_<data.source>.json, written by benchmarks/trunk_sweep.py
STUDIES_DIR = Path("results/studies")  # controls-<data.source>/table.json: the objective's parts (trunk_sweep.py)
GPU_DIR = Path("results/gpu")  # DATE-DEVICE/table1.json, written by scripts/gpu_study.sh --record

LATEX_PACKAGES = "texlive-latex-base texlive-latex-recommended latexmk"
BUILD_DIR = "build"  # latexmk's output folder beside the .tex


def _flat(d: dict, prefix: str = "") -> list[tuple[str, object]]:
    items = []
    for k, v in d.items():
        if isinstance(v, Mapping):  # (a params view under the audit is a Mapping, not a dict)
            items += _flat(v, f"{prefix}{k}.")
        else:
            items.append((f"{prefix}{k}", v))
    return items


def setup_tex(params: dict) -> str:
    """Shared settings as a two-column table, then each head's own settings and overrides."""
    rows = [r"\begin{longtable}{ll}", r"\toprule", r"Setting & Value \\", r"\midrule"]
    for section in ("data", "model", "mask", "augment", "trunk", "train", "eval"):
        for key, value in _flat(params[section], f"{section}."):
            rows.append(f"\\texttt{{{tex_escape(key)}}} & {tex_escape(value)} \\\\")
    rows.append(r"\midrule")
    for head in params["heads"]:
        for key, value in _flat(params["head"][head], f"head.{head}."):
            rows.append(f"\\texttt{{{tex_escape(key)}}} & {tex_escape(value)} \\\\")
    rows += [r"\bottomrule", r"\end{longtable}", r"\addtocounter{table}{-1}", ""]  # uncaptioned: no number
    return "\n".join(rows)


def trunk_tex(params: dict, sweeps_dir: Path = SWEEPS_DIR, studies_dir: Path = STUDIES_DIR) -> str:
    """The trunk this run used, in words, the trunk sweep on its data source when one is recorded,
    and the controls of the objective's parts (results/studies/controls-SOURCE/) when recorded."""
    cfg = resolve(params, None)
    a = cfg.augment
    photometric = [
        f"colour jitter {a.color_jitter:g} (p {a.color_prob:g})" if a.color_jitter else "",
        f"grayscale (p {a.grayscale_prob:g})" if a.grayscale_prob else "",
        f"blur (p {a.blur_prob:g})" if a.blur_prob else "",
        f"rotation up to {a.rotate_degrees:g}$^\\circ$" if a.rotate_degrees else "",
    ]
    photometric = ", ".join(p for p in photometric if p) or "none beyond crops and flips"
    lines = [
        f"\\newcommand{{\\TrunkOfRun}}{{{tex_escape(describe(cfg.trunk))}}}",  # Table I's caption quotes it
        "The trunk of this run: \\TrunkOfRun. Augmentation of each view: random "
        f"resized crops (area {a.crop_scale[0]:g}--{a.crop_scale[1]:g})"
        + (", horizontal flips" if a.hflip else "")
        + f"; {photometric}.",
        "",
    ]
    path = Path(sweeps_dir) / f"trunk_sweep_{params['data']['source']}.json"
    if not path.is_file():
        lines.append(f"No trunk sweep is recorded for this data source (\\texttt{{{tex_escape(path)}}}).")
        return "\n".join(lines) + "\n"
    lines += sweep_table(
        json.loads(path.read_text()),
        path,
        "tab:trunk",
        "Table~\\ref{tab:trunk} compares trunks on this data source: the deterministic head trained "
        "under each setting at one fixed budget.",
        "Trunk sweep",
    )
    controls = Path(studies_dir) / f"controls-{params['data']['source']}" / "table.json"
    if controls.is_file():
        lines += [
            "",
            *sweep_table(
                json.loads(controls.read_text()),
                controls,
                "tab:controls",
                "Table~\\ref{tab:controls} takes the objective apart on this data source: which "
                "part teaches the encoder, with the masked-token loss's measured share of the encoder's "
                "gradient (mean over the second half of training).",
                "Controls",
            ),
        ]
    return "\n".join(lines) + "\n"


def sweep_table(sweep: dict, path: Path, label: str, intro: str, title: str) -> list[str]:
    """A trunk sweep's table (`benchmarks/trunk_sweep.py`'s JSON) as LaTeX: kNN, probe, whitened kNN,
    effective rank and masked-token share per setting, one value per seed, and the floors."""
    budget = ", ".join(
        f"\\texttt{{{tex_escape(k)}}}={tex_escape(v)}"
        for k, v in sweep["budget"].items()
        if not k.startswith(("trunk.", "augment."))
    )
    by_name: dict[str, list[dict]] = {}
    for r in sweep["rows"]:
        by_name.setdefault(r["name"], []).append(r)
    fmt = lambda rs, k, scale=100, f=".2f": " / ".join(
        format(scale * r[k], f) if r.get(k) is not None else "--" for r in rs
    )
    share = lambda rs: " / ".join(
        f"{100 * r['gradient_share']['predict_share_second_half']:.3g}" if r.get("gradient_share") else "--" for r in rs
    )
    rows = [
        f"{tex_escape(n)} & {tex_escape(sweep.get('what', {}).get(n, ''))} & {fmt(rs, 'knn_top1')} & "
        f"{fmt(rs, 'probe_top1')} & {fmt(rs, 'knn_top1_whitened')} & {fmt(rs, 'effective_rank', 1, '.1f')} & "
        f"{share(rs)} & {_num(rs[0].get('train_s'), '.0f')} \\\\"
        for n, rs in by_name.items()
    ]
    for key, label_ in (("raw_pixels", "raw pixels"), ("random_init", "untrained encoder")):
        f = sweep.get("floors", {}).get(key)
        if f:
            rows.append(f"{label_} & floor & {100 * f['top1']:.2f} & {100 * f['probe_top1']:.2f} & & & & \\\\")
    return [
        intro,
        "",
        r"\begin{table}[htbp]",
        r"\centering",
        f"\\caption{{{title}: the deterministic head under each setting at one budget ({budget}), "
        f"from \\texttt{{{tex_escape(path)}}} (\\texttt{{benchmarks/trunk\\_sweep.py}}). Top-1 in \\%, "
        "one value per training seed; whitened: kNN on PCA-whitened features; rank: effective rank of the "
        "features; share: the masked-token loss's share of the encoder's gradient in \\%; training seconds "
        "of the first seed.}",
        f"\\label{{{label}}}",
        r"\resizebox{\textwidth}{!}{\begin{tabular}{lp{4.5cm}rrrrrr}",
        r"\toprule",
        r"Setting & What it changes & kNN & Probe & Whitened & Rank & Share & Train s \\",
        r"\midrule",
        *rows,
        r"\bottomrule",
        r"\end{tabular}}",
        r"\end{table}",
    ]


def _num(x, fmt: str) -> str:
    return "--" if x is None else format(x, fmt)


def figures_tex(heads: list[str]) -> str:
    blocks = []
    for name in figure_names(heads):
        wide = name in ("losses", "heads_grid", "mdn_diagnostics", "masks", "calibration")
        width = r"\textwidth" if wide else r"0.7\textwidth"
        blocks.append(
            "\n".join(
                [
                    r"\begin{figure}[p]" if name == "heads_grid" else r"\begin{figure}[htbp]",
                    r"\centering",
                    f"\\includegraphics[width={width},height=0.85\\textheight,keepaspectratio]{{figures/{name}.pdf}}",
                    f"\\caption{{{tex_escape(FIGURES[name][1])}}}",
                    f"\\label{{fig:{name}}}",
                    r"\end{figure}",
                ]
            )
        )
    return "\n\n".join(blocks) + "\n"


def _git_commit() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not a Git checkout"
    return commit + (" (with uncommitted changes)" if dirty else "")


def _stage_times(logs_dir: Path) -> list[tuple[str, float, float]]:
    """(stage, seconds, max RSS MB) from Snakemake's benchmark files, if this run made them."""
    rows = []
    for path in sorted(logs_dir.rglob("*.benchmark.tsv")):
        with path.open() as f:
            last = list(csv.DictReader(f, delimiter="\t"))[-1:]
        if last:
            stage = str(path.relative_to(logs_dir)).removesuffix(".benchmark.tsv").replace("/", "@")
            rows.append((stage, float(last[0]["s"]), float(last[0]["max_rss"])))
    return rows


def provenance_tex(params: dict, params_file: str, data_dir: Path, results_dir: Path, logs_dir: Path) -> str:
    lines = [
        r"\begin{itemize}",
        f"\\item Git commit: \\texttt{{{tex_escape(_git_commit())}}}",
        f"\\item Params file: \\texttt{{{tex_escape(params_file)}}}, seed {params['seed']}, training seeds "
        f"{', '.join(map(str, params['seeds']))}",
        f"\\item Host: {tex_escape(platform.platform())}, {os.cpu_count()} CPU cores, "
        f"Python {tex_escape(platform.python_version())}",
        "\\item Libraries: " + ", ".join(f"{tex_escape(k)} {tex_escape(v)}" for k, v in versions().items()),
        r"\end{itemize}",
        "",
        r"\noindent Content hashes (MD5, as in \texttt{dvc.lock}):",
        "",
        r"\begin{longtable}{ll}",
        r"\toprule",
        r"File & MD5 \\",
        r"\midrule",
    ]
    files = [data_dir / "processed" / "train.npz", data_dir / "processed" / "val.npz", data_dir / "stats.json"]
    files += [run_dir(results_dir, h, seed) / "checkpoint.pt" for h in params["heads"] for seed in params["seeds"]]
    for path in files:
        digest = file_digest(path, "md5") if path.is_file() else "missing"
        lines.append(f"\\texttt{{{tex_escape(path)}}} & \\texttt{{{digest}}} \\\\")
    lines += [r"\bottomrule", r"\end{longtable}", r"\addtocounter{table}{-1}", ""]
    times = _stage_times(logs_dir)
    if times:
        lines += [
            r"\noindent Wall time of each stage (Snakemake benchmark files):",
            "",
            r"\begin{longtable}{lrr}",
            r"\toprule",
            r"Stage & Seconds & Max RSS (MB) \\",
            r"\midrule",
        ]
        lines += [f"\\texttt{{{tex_escape(s)}}} & {sec:.1f} & {rss:.0f} \\\\" for s, sec, rss in times]
        lines += [r"\bottomrule", r"\end{longtable}", r"\addtocounter{table}{-1}", ""]
    else:
        lines.append(
            r"\noindent No stage timings: this run was not made by Snakemake (its benchmark files are absent)."
        )
    lines.append("")
    lines.append(
        r"\noindent Settings of each head after its overrides: "
        + "; ".join(
            f"{tex_escape(DISPLAY_NAMES.get(h, h))}: batch {resolve(params, h).train.batch_size}, "
            f"lr {tex_escape(resolve(params, h).train.lr)}, steps {resolve(params, h).train.steps}, "
            f"width {resolve(params, h).model.embed_dim}, depth {resolve(params, h).model.depth}"
            for h in params["heads"]
        )
        + "."
    )
    return "\n".join(lines) + "\n"


def gpu_tex(gpu_dir: Path = GPU_DIR) -> str:
    """Its own section for the newest GPU study recorded in results/gpu/DATE-DEVICE/table1.json
    (`scripts/gpu_study.sh --record`), or nothing when none is."""
    studies = [(json.loads(p.read_text()), p) for p in Path(gpu_dir).glob("*/table1.json")]
    if not studies:
        return "% no GPU study recorded in results/gpu/\n"
    r, path = max(studies, key=lambda s: (s[0].get("finished_at", ""), s[1].parent.name))
    pct = lambda v: "--" if v is None else f"{100 * v:.2f}"
    rows = [
        r"\begin{tabular}{lrrrrrr}",
        r"\toprule",
        r"Head & kNN top-1 & probe top-1 & paper kNN@1 & images/s & MFU & peak GB \\",
        r"\midrule",
    ]
    for head, row in r["table"]["heads"].items():
        speed = row.get("throughput") or r.get("timing", {}).get("heads", {}).get(head)
        fast = (
            (
                f"{speed['images_per_s']:.0f} & {100 * speed['mfu']:.1f}\\,\\% & "
                + ("--" if speed.get("peak_memory_gb") is None else f"{speed['peak_memory_gb']:.1f}")
            )
            if speed and "skipped" not in speed
            else "-- & -- & --"
        )  # skipped: out of GPU memory
        paper = "--" if row.get("paper_knn_top1") is None else f"{row['paper_knn_top1']:.2f}"
        scores = (
            f"{pct(row['knn_top1'])} & {pct(row['probe_top1'])}"
            if row["finished"]
            else r"\multicolumn{2}{c}{not finished}"
        )
        rows.append(f"{DISPLAY_NAMES.get(head, tex_escape(head))} & {scores} & {paper} & {fast} \\\\")
    rows.append(r"\midrule")
    for name, label in (("raw_pixels", "Raw pixels (floor)"), ("random_init", "Untrained encoder (floor)")):
        f = (r["table"].get("floors") or {}).get(name)
        if f:
            rows.append(f"{label} & {pct(f['knn_top1'])} & {pct(f['probe_top1'])} & & & & \\\\")
    rows += [r"\bottomrule", r"\end{tabular}"]
    timing = r.get("timing") or {}
    m = r["setup"]
    text = [
        r"\section{The paper-sized study on one GPU}",
        "",
        f"Recorded in \\texttt{{results/gpu/{tex_escape(path.parent.name)}}} by "
        f"\\texttt{{{tex_escape(r['command'])}}} on {tex_escape(r['device'])} (PyTorch {tex_escape(r['torch'])}, "
        f"{tex_escape(r['date'])}): a ViT of width {m['embed_dim']}, depth {m['depth']} and patch {m['patch_size']} "
        f"at {m['image_size']}\\,px, every head trained on the same {m['images_per_head']:,} images "
        f"({m['steps']} steps of {m['batch_size']}), in {r['wall_s']:.0f}\\,s in all "
        f"(deadline {r['deadline_s']:.0f}\\,s" + ("" if r["complete"] else "; the deadline cut it short") + "). "
        f"MFU is against this device's measured {timing.get('peak_dtype', '')} matmul peak of "
        f"{timing.get('peak_tflops', 0):.1f}\\,TFLOP/s. The paper's column is its Table I (best validation kNN@1).",
        "",
        r"\begin{table}[htbp]",
        r"\centering",
        r"\caption{Table I at the paper's model size on one GPU.}",
        r"\label{tab:gpu}",
        r"\resizebox{\textwidth}{!}{",
        *rows,
        "}",
        r"\end{table}",
        "",
    ]
    return "\n".join(text)


def write_context(params: dict, params_file: str, data_dir, results_dir, logs_dir, out_dir) -> list[Path]:
    out_dir = Path(out_dir)
    texts = {
        "setup.tex": setup_tex(params),
        "figures.tex": figures_tex(params["heads"]),
        "trunk.tex": trunk_tex(params),
        "provenance.tex": provenance_tex(params, params_file, Path(data_dir), Path(results_dir), Path(logs_dir)),
        "gpu.tex": gpu_tex(Path(results_dir) / "gpu"),
        "studies.tex": studies_tex(Path(results_dir) / "studies"),
    }
    for name, text in texts.items():
        with atomic_path(out_dir / name) as tmp:
            tmp.write_text(text)
    return [out_dir / n for n in texts]


def build_pdf(tex: str | Path) -> Path:
    """latexmk → the PDF beside `tex`; a clear error when LaTeX is missing or the build fails.

    LaTeX writes into `build/` beside the source and the PDF is moved into place only once
    complete, so an interrupted build never leaves a truncated PDF at the final path."""
    tex = Path(tex)
    if shutil.which("latexmk") is None or shutil.which("pdflatex") is None:
        raise VJepaError(
            f"LaTeX is not installed: on Debian/Ubuntu run `apt-get install --no-install-recommends "
            f"{LATEX_PACKAGES}` (scripts/setup.sh does this as root)"
        )
    build = tex.parent / BUILD_DIR
    built, pdf = build / tex.with_suffix(".pdf").name, tex.with_suffix(".pdf")
    built.unlink(missing_ok=True)
    done = subprocess.run(
        ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-cd", f"-outdir={BUILD_DIR}", str(tex)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 or not built.is_file():
        log = build / tex.with_suffix(".log").name
        tail = "\n".join(done.stdout.splitlines()[-25:])
        raise VJepaError(f"latexmk failed on {tex} (see {log}):\n{tail}")
    os.replace(built, pdf)
    return pdf
