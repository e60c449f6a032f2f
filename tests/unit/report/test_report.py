"""The report's generated LaTeX: escaping, macros, the figure list, setup and provenance."""

import shutil

import numpy as np
import pytest

from vjepa.core.errors import VJepaError
from vjepa.core.io import file_digest
from vjepa.report.figures import FIGURES, figure_names
from vjepa.report.figures.common import pca
from vjepa.report.latex import build_pdf, figures_tex, setup_tex, tex_escape
from vjepa.report.summarize import macro_name, numbers_tex

SUMMARY = {
    "heads": {
        "deterministic": {"knn_top1": 0.5, "knn_top5": 0.9},
        "flow_matching": {"knn_top1": 0.61234, "knn_top5": 0.95},
    },
    "reference": {"raw_pixels": {"top1": 0.975, "top5": 1.0}, "random_init": {"top1": 0.4, "top5": 0.8}},
    "n_train": 1437,
    "n_val": 360,
    "seeds": [0],
}


def test_tex_escape_known_answers():
    assert tex_escape("a_b 50% & #1 $x$ {y} ~ ^") == r"a\_b 50\% \& \#1 \$x\$ \{y\} \textasciitilde{} \^{}"
    assert tex_escape("C:\\path_1") == r"C:\textbackslash{}path\_1"


def test_numbers_are_macros_with_letter_only_names():
    assert macro_name("flow_matching", "top1") == r"\FlowMatchingTopOne"
    tex = numbers_tex(SUMMARY)
    assert r"\newcommand{\FlowMatchingTopOne}{61.23}" in tex
    assert r"\newcommand{\BestHead}{Flow matching}" in tex and r"\newcommand{\BestTopOne}{61.23}" in tex
    assert r"\newcommand{\RawPixelsTopOne}{97.50}" in tex and r"\newcommand{\NumVal}{360}" in tex


def test_mdn_figures_only_with_the_mdn_head():
    assert set(figure_names(["deterministic", "mdn"])) == set(FIGURES)
    names = figure_names(["deterministic", "diffusion"])
    assert "losses" in names and "heads_grid" in names and not any(n.startswith("mdn") for n in names)
    tex = figures_tex(["deterministic"])
    assert r"\includegraphics" in tex and "figures/knn.pdf" in tex and "mdn_pca" not in tex


def test_setup_lists_every_shared_setting_and_the_heads_sections(params):
    tex = setup_tex(params)
    assert r"\texttt{train.batch\_size} & 32" in tex and r"\texttt{model.embed\_dim} & 64" in tex
    assert r"\texttt{head.mdn.num\_components}" in tex


def test_file_digest_matches_known_md5_and_sha256(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    assert file_digest(tmp_path / "f", "md5") == "900150983cd24fb0d6963f7d28e17f72"
    assert file_digest(tmp_path / "f", "sha256").startswith("ba7816bf8f01cfea")


def test_pca_projects_onto_the_main_axis():
    rng = np.random.default_rng(0)
    x = np.c_[rng.normal(0, 10, 500), rng.normal(0, 0.1, 500)]
    proj = pca(x, 1)(x)
    assert abs(abs(np.corrcoef(proj[:, 0], x[:, 0])[0, 1]) - 1) < 1e-3


def test_missing_latex_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no latexmk on this PATH
    (tmp_path / "r.tex").write_text("x")
    with pytest.raises(VJepaError, match="texlive-latex-base texlive-latex-recommended latexmk"):
        build_pdf(tmp_path / "r.tex")


@pytest.mark.skipif(shutil.which("latexmk") is None, reason="LaTeX not installed")
def test_pdf_appears_only_when_the_build_succeeds(tmp_path):
    good = tmp_path / "good.tex"
    good.write_text("\\documentclass{article}\\begin{document}Hello\\end{document}\n")
    assert build_pdf(good) == tmp_path / "good.pdf" and (tmp_path / "good.pdf").read_bytes()[:4] == b"%PDF"
    assert not (tmp_path / "good.aux").exists()  # by-products stay in build/
    bad = tmp_path / "bad.tex"
    bad.write_text("\\documentclass{article}\\begin{document}\\undefinedmacro\\end{document}\n")
    with pytest.raises(VJepaError, match="latexmk failed"):
        build_pdf(bad)
    assert not (tmp_path / "bad.pdf").exists()


def test_trunk_section_prints_the_sweep_and_the_controls_with_their_shares(params, tmp_path):
    import json

    from vjepa.report.latex import trunk_tex

    row = lambda name, seed, share: {
        "name": name,
        "seed": seed,
        "knn_top1": 0.9,
        "probe_top1": 0.95,
        "knn_top1_whitened": 0.93,
        "effective_rank": 12.3,
        "train_s": 60.0,
        "gradient_share": share and {"predict_share_second_half": share},
    }
    floors = {"raw_pixels": {"top1": 0.97, "probe_top1": 0.96}, "random_init": {"top1": 0.65, "probe_top1": 0.91}}
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "trunk_sweep_digits.json").write_text(
        json.dumps({"budget": {"train.steps": 250}, "what": {"a": "x"}, "rows": [row("a", 0, None)], "floors": floors})
    )
    text = trunk_tex(params, tmp_path / "sweeps", tmp_path / "studies")
    assert r"\label{tab:trunk}" in text and "tab:controls" not in text and "90.00 & 95.00 & 93.00 & 12.3 & --" in text
    (tmp_path / "studies" / "controls-digits").mkdir(parents=True)
    (tmp_path / "studies" / "controls-digits" / "table.json").write_text(
        json.dumps(
            {
                "budget": {"train.eval_every": 0},
                "what": {"cross-view-alone": "no head", "today": "as is"},
                "rows": [row("cross-view-alone", 0, 0.0), row("today", 0, 0.0004), row("today", 1, 0.5)],
                "floors": floors,
            }
        )
    )
    text = trunk_tex(params, tmp_path / "sweeps", tmp_path / "studies")
    assert r"\label{tab:controls}" in text and "cross-view-alone & no head" in text
    assert "today & as is & 90.00 / 90.00 & 95.00 / 95.00 & 93.00 / 93.00 & 12.3 / 12.3 & 0.04 / 50 & 60" in text
    params["trunk"].update(predict_share=0.5, target_view="other")
    text = trunk_tex(params, tmp_path / "sweeps", tmp_path / "studies")
    assert "held at 50\\% of the encoder's gradient" in text and "tokens of the next view of the image" in text
    assert text.startswith(r"\newcommand{\TrunkOfRun}{4 views of each image") and "run: \\TrunkOfRun." in text
