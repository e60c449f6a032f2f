"""The audit records which params keys a command reads (vjepa.core.audit): the check behind the
pipeline's declared params (tests/system/test_pipeline.py runs it on the smoke pipeline)."""

from __future__ import annotations

import json

import pytest

from vjepa.core import audit
from vjepa.core.config import load_params, resolve

from conftest import ROOT


@pytest.fixture
def recording(tmp_path, monkeypatch):
    monkeypatch.setenv(audit.ENV, str(tmp_path / "audit"))
    monkeypatch.setattr(audit, "_keys", None)
    yield lambda: set(audit._keys)  # (a test starts recording after loading: validation reads everything)
    monkeypatch.setattr(audit, "_keys", None)


def test_off_by_default(monkeypatch):
    monkeypatch.delenv(audit.ENV, raising=False)
    params = load_params(ROOT / "params.yaml")
    assert audit.watch(params) is params and type(resolve(params, "mdn").train).__name__ == "TrainConfig"


def test_mapping_reads_and_config_fields_are_recorded(recording):
    params = audit.watch(load_params(ROOT / "params.yaml"))
    audit.start()
    assert params["figures"]["dpi"] > 0 and params["seeds"]
    list(params["ablation"])  # iterating a section reads all of it
    cfg = resolve(params, "mdn", seed=3)
    cfg.train.lr, cfg.model.depth, cfg.seed, cfg.head  # noqa: B018 (reads; the run's seed came from the command line)
    cfg.to_dict()  # the checkpoint's copy for the record: not a read
    with audit.paused():
        params["eval"]["draws"]
    assert recording() == {"figures.dpi", "seeds", "ablation", "train.lr", "model.depth", "head.mdn"}
    assert resolve(params, None).seed is not None and "seed" in recording()


def test_a_heads_override_is_read_with_the_shared_key(recording):
    params = load_params(ROOT / "profiles/paper.yaml")
    assert params["head"]["mdn"]["train"]["batch_size"] == 360
    audit.start()
    cfg = resolve(params, "mdn")
    assert cfg.train.batch_size == 360
    assert {"train.batch_size", "head.mdn.train.batch_size"} <= recording()
    cfg.train.lr  # noqa: B018 (a read)
    assert "head.mdn.train.lr" not in recording() or "lr" in params["head"]["mdn"]["train"]


def test_a_watched_params_file_writes_the_same_report_setup(recording):
    """Recording only records: the report's settings table is the same through a params view."""
    from vjepa.report.latex import setup_tex

    params = load_params(ROOT / "profiles/paper.yaml")  # nested per-head overrides
    audit.start()
    assert setup_tex(audit.watch(params)) == setup_tex(params)


def test_a_command_writes_its_record(tmp_path, monkeypatch):
    from vjepa.cli import main

    monkeypatch.setenv(audit.ENV, str(tmp_path / "audit"))
    monkeypatch.setattr(audit, "_keys", None)
    assert main(["dvc-yaml", "--params", str(ROOT / "params.yaml"), "--out", str(tmp_path / "dvc.yaml")]) == 0
    record = json.loads((tmp_path / "audit" / "dvc-yaml.json").read_text())
    assert "heads" in record["params"] and "vjepa.pipeline.dvcfile" in record["modules"]
