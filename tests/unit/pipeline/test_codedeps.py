"""The package files each stage runs come from its imports (vjepa.pipeline.codedeps), and dvc.yaml is the
stage table's rendering (vjepa.pipeline.dvcfile). The end-to-end pipeline test checks the closures against
the modules each command really loads (tests/system/test_pipeline.py)."""

from __future__ import annotations

import ast

import pytest

from vjepa.core.config import load_params
from vjepa.model.heads import HEADS
from vjepa.pipeline import codedeps
from vjepa.pipeline.dvcfile import render
from vjepa.pipeline.stages import stages

from conftest import ROOT

P = "src/vjepa/"


def names(files):
    return {f.removeprefix(P) for f in files}


def test_train_runs_its_own_head_and_what_the_loop_imports_lazily():
    mdn = names(codedeps.closure("train", head="mdn"))
    assert {
        "training/train.py",
        "eval/knn.py",
        "eval/embed.py",
        "eval/head_metrics.py",
        "eval/uncertainty.py",
        "model/checkpoint.py",
        "data/sources.py",
        "core/runtime.py",
        "model/heads/__init__.py",
        "model/heads/base.py",
        "model/heads/mdn.py",
        "core/schema.yaml",
    } <= mdn
    assert (
        not {
            "model/heads/diffusion.py",
            "model/heads/adaln.py",
            "report/summarize.py",
            "report/figures/__init__.py",
            "eval/probe.py",
        }
        & mdn
    )
    diffusion = names(codedeps.closure("train", head="diffusion"))
    assert mdn - {"model/heads/mdn.py"} | {"model/heads/diffusion.py", "model/heads/adaln.py"} == diffusion


def test_small_commands_run_small_closures():
    assert names(codedeps.closure("prepare")) == {
        "__init__.py",
        "__main__.py",
        "cli.py",
        "core/__init__.py",
        "core/audit.py",
        "core/config.py",
        "core/errors.py",
        "core/io.py",
        "core/launch.py",
        "core/schema.yaml",
        "core/schema_check.py",
        "data/__init__.py",
        "data/sources.py",
        "pipeline/__init__.py",
        "pipeline/gpus.py",
    }
    masks = names(codedeps.closure("figure", figure="masks"))
    assert {
        "report/figures/__init__.py",
        "report/figures/common.py",
        "report/figures/masks.py",
        "model/masks.py",
        "data/sources.py",
        "report/summarize.py",
    } <= masks
    assert not any(
        f.startswith("report/figures/")
        and f not in {"report/figures/__init__.py", "report/figures/common.py", "report/figures/masks.py"}
        for f in masks
    )
    assert "data/augment.py" in names(codedeps.closure("reference"))
    samples = names(codedeps.closure("samples", head="flow"))
    assert "model/heads/flow.py" in samples and "model/heads/mdn.py" not in samples


def test_imports_inside_functions_and_relative_forms_are_followed():
    tree = ast.parse(
        "from . import batch\nfrom ..model import checkpoint\nfrom ..model.heads.mdn import MDNHead\n"
        "def f():\n    from ..eval.knn import knn_accuracy\n    import vjepa.eval.probe\n    import numpy\n"
    )
    assert codedeps._imports_in([tree], "vjepa.training.train") == {
        "vjepa.training",
        "vjepa.training.batch",
        "vjepa.model",
        "vjepa.model.checkpoint",
        "vjepa.model.heads.mdn",
        "vjepa.eval.knn",
        "vjepa.eval.probe",
    }
    tree = ast.parse("from ...core.errors import DataError\nfrom .common import grid\n")
    assert codedeps._imports_in([tree], "vjepa.report.figures.knn") == {
        "vjepa.core.errors",
        "vjepa.report.figures.common",
    }


def test_every_stage_of_every_head_has_a_closure_of_real_files():
    params = load_params(ROOT / "params.yaml")
    for st in stages(params):
        for head in HEADS if st.over in ("run", "head", "point") else [None]:
            files = codedeps.closure(st.vjepa_command, head=head, figure=st.figure)
            assert all((ROOT / f).is_file() for f in files), st.name
            assert f"{P}cli.py" in files and f"{P}core/config.py" in files
    with pytest.raises(KeyError, match="no command"):
        codedeps.closure("nonsense")


def test_committed_dvc_yaml_is_the_rendering_of_the_stage_table():
    """Edit src/vjepa/pipeline/stages.py (or the imports), then run `python -m vjepa dvc-yaml`."""
    assert (ROOT / "dvc.yaml").read_text() == render(load_params(ROOT / "params.yaml"))


def test_dvc_yaml_check_names_the_fix(tmp_path, capsys):
    from vjepa.cli import main

    out = tmp_path / "dvc.yaml"
    assert main(["dvc-yaml", "--params", str(ROOT / "params.yaml"), "--out", str(out)]) == 0
    assert main(["dvc-yaml", "--params", str(ROOT / "params.yaml"), "--out", str(out), "--check"]) == 0
    out.write_text(out.read_text().replace("    - data.stats_subsample\n", "", 1))
    assert main(["dvc-yaml", "--params", str(ROOT / "params.yaml"), "--out", str(out), "--check"]) == 2
    assert "run `python -m vjepa dvc-yaml`" in capsys.readouterr().err
