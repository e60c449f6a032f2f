"""The masking ablation: its points and their configs, clear errors for a bad sweep, one point
end to end through the CLI, and its figure."""

import json

import pytest

from vjepa.cli import main
from vjepa.core.config import ConfigError, ablation_config, ablation_point_name, ablation_points, validate
from vjepa.core.io import write_json
from vjepa.report.figures import FigureContext, render

from conftest import tiny, write_params


def test_points_and_their_configs(params):
    params["ablation"].update(target_area=[0.1, 0.2], num_targets=[1, 4], steps=50)
    params["seeds"] = [5, 6]
    params["head"]["deterministic"]["train"] = {"lr": 5e-4}  # the head's own overrides still apply
    assert ablation_points(params) == [(0.1, 1), (0.1, 4), (0.2, 1), (0.2, 4)]
    cfg = ablation_config(params, 0.2, 4)
    assert cfg.mask.target_scale == (0.2, 0.2) and cfg.mask.num_targets == 4
    assert cfg.train.steps == 50 and cfg.train.warmup_steps == 5 and cfg.train.eval_every == 0
    assert cfg.seed == 5 and cfg.head_name == "deterministic" and cfg.train.lr == 5e-4
    assert cfg.mask.target_aspect == tuple(params["mask"]["target_aspect"])  # the rest as in params
    assert ablation_point_name(0.2, 4) == "area0.2_blocks4"


def test_a_point_that_covers_the_grid_is_refused(params):
    params["ablation"].update(target_area=[0.1, 0.3], num_targets=[2, 4])
    with pytest.raises(ConfigError, match=r"ablation point area 0.3, 4 blocks.*mask.num_targets x mask.target_scale"):
        validate(params)
    params["ablation"].update(target_area=[0.1], head="flow")
    del params["head"]["flow"]
    params["heads"].remove("flow")
    with pytest.raises(ConfigError, match="ablation.head = 'flow' has no section head.flow"):
        validate(params)


@pytest.mark.slow
def test_one_point_end_to_end(tmp_path, params, capsys):
    params = tiny(params)
    params["heads"] = ["deterministic"]
    params["ablation"].update(steps=4, target_area=[0.15], num_targets=[1, 2])
    f = write_params(tmp_path / "params.yaml", params)
    common = ["--params", str(f), "--data-dir", str(tmp_path / "data"), "--results-dir", str(tmp_path / "r"), "--quiet"]
    assert main(["prepare", *common]) == 0 and main(["stats", *common]) == 0
    assert main(["ablate", "--area", "0.15", "--blocks", "2", *common]) == 0
    m = json.loads((tmp_path / "r" / "ablation" / "area0.15_blocks2.json").read_text())
    assert m["target_area"] == 0.15 and m["num_targets"] == 2 and m["step"] == 4 and m["head"] == "deterministic"
    assert 0.0 < m["knn_top1"] <= m["knn_top5"] <= 1.0 and 0.0 < m["probe_top1"] <= m["probe_top5"] <= 1.0
    assert (tmp_path / "r" / "ablation" / "area0.15_blocks2" / "checkpoint.pt").is_file()
    capsys.readouterr()
    assert main(["ablate", "--area", "0.3", "--blocks", "2", *common]) == 2  # not a point of the sweep
    assert "not a point of the sweep" in capsys.readouterr().err
    assert not (tmp_path / "r" / "ablation" / "area0.3_blocks2.json").exists()


def test_figure_reads_every_point(tmp_path, params):
    params["ablation"].update(target_area=[0.1, 0.2], num_targets=[1, 2, 4])
    ctx = FigureContext(params, tmp_path, tmp_path)
    for area, blocks in ablation_points(params):
        write_json(
            tmp_path / "ablation" / f"{ablation_point_name(area, blocks)}.json",
            {"knn_top1": area + blocks / 100, "probe_top1": 0.5},
        )
    paths = render("masking_ablation", ctx, tmp_path / "fig")
    assert all(p.stat().st_size > 1000 for p in paths)
    (tmp_path / "ablation" / "area0.2_blocks4.json").unlink()
    with pytest.raises(Exception, match=r"vjepa ablate --area 0.2 --blocks 4"):
        render("masking_ablation", ctx, tmp_path / "fig")
