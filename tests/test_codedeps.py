"""The package files each stage runs come from its imports (vjepa.codedeps), and dvc.yaml is the
stage table's rendering (vjepa.dvcfile). The end-to-end pipeline test checks the closures against
the modules each command really loads (tests/test_pipeline.py)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from vjepa import codedeps
from vjepa.config import load_params
from vjepa.dvcfile import render
from vjepa.heads import HEADS
from vjepa.stages import stages

ROOT = Path(__file__).resolve().parents[1]
P = "src/vjepa/"


def names(files):
    return {f.removeprefix(P) for f in files}


def test_train_runs_its_own_head_and_what_the_loop_imports_lazily():
    mdn = names(codedeps.closure("train", head="mdn"))
    assert {"train.py", "knn.py", "embed.py", "head_metrics.py", "uncertainty.py", "checkpoint.py", "data.py",
            "runtime.py", "heads/__init__.py", "heads/base.py", "heads/mdn.py", "schema.yaml"} <= mdn
    assert not {"heads/diffusion.py", "heads/adaln.py", "summarize.py", "figures/__init__.py", "probe.py"} & mdn
    diffusion = names(codedeps.closure("train", head="diffusion"))
    assert mdn - {"heads/mdn.py"} | {"heads/diffusion.py", "heads/adaln.py"} == diffusion


def test_small_commands_run_small_closures():
    assert names(codedeps.closure("prepare")) == {"__init__.py", "__main__.py", "audit.py", "cli.py", "config.py", "data.py",
                                                  "errors.py", "gpus.py", "io.py", "launch.py", "schema.yaml",
                                                  "schema_check.py"}
    masks = names(codedeps.closure("figure", figure="masks"))
    assert {"figures/__init__.py", "figures/common.py", "figures/masks.py", "masks.py", "data.py",
            "summarize.py"} <= masks
    assert not any(f.startswith("figures/") and f not in {"figures/__init__.py", "figures/common.py",
                                                           "figures/masks.py"} for f in masks)
    assert "augment.py" in names(codedeps.closure("reference"))
    samples = names(codedeps.closure("samples", head="flow"))
    assert "heads/flow.py" in samples and "heads/mdn.py" not in samples


def test_imports_inside_functions_and_relative_forms_are_followed():
    tree = ast.parse("from . import checkpoint\nfrom .heads.mdn import MDNHead\n"
                     "def f():\n    from .knn import knn_accuracy\n    import vjepa.probe\n    import numpy\n")
    assert codedeps._imports_in([tree], "vjepa.train") == {"vjepa", "vjepa.checkpoint", "vjepa.heads.mdn",
                                                           "vjepa.knn", "vjepa.probe"}
    tree = ast.parse("from ..errors import DataError\nfrom .common import grid\n")
    assert codedeps._imports_in([tree], "vjepa.figures.knn") == {"vjepa.errors", "vjepa.figures.common"}


def test_every_stage_of_every_head_has_a_closure_of_real_files():
    params = load_params(ROOT / "params.yaml")
    for st in stages(params):
        for head in (HEADS if st.over in ("run", "head", "point") else [None]):
            files = codedeps.closure(st.vjepa_command, head=head, figure=st.figure)
            assert all((ROOT / f).is_file() for f in files), st.name
            assert f"{P}cli.py" in files and f"{P}config.py" in files
    with pytest.raises(KeyError, match="no command"):
        codedeps.closure("nonsense")


def test_committed_dvc_yaml_is_the_rendering_of_the_stage_table():
    """Edit src/vjepa/stages.py (or the imports), then run `python -m vjepa dvc-yaml`."""
    assert (ROOT / "dvc.yaml").read_text() == render(load_params(ROOT / "params.yaml"))


def test_dvc_yaml_check_names_the_fix(tmp_path, capsys):
    from vjepa.cli import main

    out = tmp_path / "dvc.yaml"
    assert main(["dvc-yaml", "--params", str(ROOT / "params.yaml"), "--out", str(out)]) == 0
    assert main(["dvc-yaml", "--params", str(ROOT / "params.yaml"), "--out", str(out), "--check"]) == 0
    out.write_text(out.read_text().replace("    - data.stats_subsample\n", "", 1))
    assert main(["dvc-yaml", "--params", str(ROOT / "params.yaml"), "--out", str(out), "--check"]) == 2
    assert "run `python -m vjepa dvc-yaml`" in capsys.readouterr().err
