"""Bad params are refused before any job runs, with one line naming the key, its value and what is
allowed: through the `vjepa` command line and through `snakemake -n` on the real pipeline."""

import copy

import pytest
import yaml

from vjepa.cli import main
from vjepa.core.config import set_dotted

from conftest import ROOT, write_params

CASES = [  # (key, bad value, what the message must say)
    ("train.lr", -0.001, r"train.lr = -0.001 is out of range; allowed range (0, 1]"),
    ("head.mdn.num_components", 0, "head.mdn.num_components = 0 is out of range; allowed range [1, 64]"),
    ("mask.target_scale", [0.0, 0.2], "mask.target_scale.0 = 0.0 is out of range; allowed range (0, 1]"),
    ("mask.context_scale", [0.85, 1.5], "mask.context_scale.1 = 1.5 is out of range; allowed range (0, 1]"),
    ("mask.num_targets", 8, "covers the whole grid"),
    ("train.batch_size", 5000, "train.batch_size = 5000 is larger than the 1437 digits training images"),
    ("train.colour", 3, "unknown key 'colour' in 'train'"),
    ("train.steps", "many", "train.steps = 'many' has the wrong type; expected integer"),
    ("data.source", "mnist", "data.source = 'mnist' is not allowed; choose one of: digits, tiny-imagenet"),
    ("model.patch_size", 5, "data.image_size = 32 is not divisible by model.patch_size = 5"),
    ("model.num_heads", 3, "model.embed_dim = 64 is not divisible by model.num_heads = 3"),
    ("train.ema_start", 1.5, "train.ema_start = 1.5 is out of range; allowed range [0, 1]"),
    ("head.rnade.hidden_dim", 10, "head.rnade.hidden_dim = 10 must be at least model.embed_dim - 1 = 63"),
    ("heads", ["deterministic", "gan"], "heads.1 = 'gan' is not allowed"),
    ("train.weight_decay", -1, "train.weight_decay = -1 is out of range"),
    ("eval.knn_k", 0, "eval.knn_k = 0 is out of range; allowed range [1, inf)"),
    ("train.warmup_steps", 5000, "train.warmup_steps = 5000 must be smaller than train.steps"),
    ("data.val_fraction", 1.0, "data.val_fraction = 1.0 is out of range; allowed range (0, 1)"),
    ("train.nonfinite", "ignore", "train.nonfinite = 'ignore' is not allowed; choose one of: stop, skip"),
    ("model.predictor_pass", "both", "model.predictor_pass = 'both' is not allowed"),
    ("seeds", [], "seeds = [] has the wrong length"),
    ("seeds", [0, 0], "seeds = [0, 0] lists an entry twice"),
    ("eval.draws", 1, "eval.draws = 1 is out of range; allowed range [2, inf)"),
    ("trunk.global_views", 1, "needs at least two views of each image, but trunk.global_views + trunk.local_views = 1"),
    ("augment.color_jitter", 1.5, "augment.color_jitter = 1.5 is out of range; allowed range [0, 1)"),
    ("trunk.predict_share", 1.0, "trunk.predict_share = 1.0 is out of range; allowed range (0, 1)"),
    ("trunk.target_view", "both", "trunk.target_view = 'both' is not allowed; choose one of: own, other"),
    ("trunk.target_layers", 9, "trunk.target_layers = 9 is more than the teacher's model.depth = 4 blocks"),
    ("trunk.target_norm", "batch", "trunk.target_norm = 'batch' is not allowed; choose one of: layer, instance"),
    ("trunk.predict_weight", -1, "trunk.predict_weight = -1 is out of range; allowed range [0, inf)"),
    ("trunk.sigreg_projections", 0, "trunk.sigreg_projections = 0 is out of range; allowed range [1, inf)"),
    ("ablation.num_targets", [1, 8], "(ablation point area 0.2, 8 blocks): (head deterministic) mask.num_targets"),
]


def bad_params(key, value) -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    set_dotted(params, key, copy.deepcopy(value))
    return params


@pytest.mark.parametrize("key, value, expected", CASES, ids=[c[0] for c in CASES])
def test_command_line_refuses(tmp_path, capsys, key, value, expected):
    f = write_params(tmp_path / "params.yaml", bad_params(key, value))
    assert main(["check-params", "--params", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vjepa: error: ") and expected in err and len(err.strip().splitlines()) == 1
    # A stage refuses the same file before doing anything.
    assert main(["prepare", "--params", str(f), "--data-dir", str(tmp_path / "data")]) == 2
    assert not (tmp_path / "data").exists()


# One case of each kind of check. Snakemake refuses through the same `load_params` that
# test_command_line_refuses holds to every case, so each kind through Snakemake shows the whole path.
SNAKEMAKE_CASES = [
    c
    for c in CASES
    if c[0]
    in {
        "train.lr",  # a schema range
        "train.colour",  # an unknown key
        "model.num_heads",  # a cross-key check
        "train.batch_size",  # a check against the data
        "ablation.num_targets",  # a point of the ablation's grid
    }
]


@pytest.mark.slow
def test_snakemake_refuses_each_kind_before_any_job(tmp_path):
    from project import project_copy, run

    assert len(SNAKEMAKE_CASES) == 5
    root = project_copy(tmp_path / "p", profile=None)
    for key, value, expected in SNAKEMAKE_CASES:
        write_params(root / "params.yaml", bad_params(key, value))
        done = run(["snakemake", "-n", "report"], root, check=False)
        out = done.stdout + done.stderr
        assert done.returncode != 0 and expected in out, (key, out[-1500:])
        assert "Job stats" not in out and not (root / "data").exists()


def _messages_without_jsonschema(params, monkeypatch):
    """The first schema error's message with jsonschema, then with vjepa.core.schema_check in its place."""
    import sys

    from vjepa.core.config import _describe, schema_errors

    with_it = [_describe(e) for e in schema_errors(params)[:1]]
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # `import jsonschema` now raises ImportError
    without = [_describe(e) for e in schema_errors(params)[:1]]
    monkeypatch.delitem(sys.modules, "jsonschema")
    return with_it, without


def _checks_without_jsonschema(params, monkeypatch):
    """(first schema error's message as a list, validate's refusal or None) with jsonschema, then with
    vjepa.core.schema_check in its place."""
    import sys

    from vjepa.core.config import _describe, schema_errors, validate
    from vjepa.core.errors import ConfigError

    def checks():
        try:
            validate(params)
            refusal = None
        except ConfigError as e:
            refusal = str(e)
        return [_describe(e) for e in schema_errors(params)[:1]], refusal

    with_it = checks()
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # `import jsonschema` now raises ImportError
    without = checks()
    monkeypatch.delitem(sys.modules, "jsonschema")
    return with_it, without


CROSS_KEY = {
    "mask.num_targets",
    "train.batch_size",
    "model.patch_size",
    "model.num_heads",
    "head.rnade.hidden_dim",
    "train.warmup_steps",
    "trunk.global_views",
    "trunk.target_layers",
    "ablation.num_targets",
    "heads",  # a head without a schema section: refused by the check against the schema's head sections
}  # no schema error: a cross-key one
MORE = [
    ("launch.nproc", 0, "launch.nproc = 0 is out of range; allowed range [1, 64]"),
    ("data.path", 3, "data.path = 3 has the wrong type; expected ['string', 'null']"),
    ("trunk.standardize", 1, "trunk.standardize = 1 has the wrong type; expected boolean"),
    ("seed", 1.0, None),
]  # 1.0 is an integer to JSON Schema: accepted


@pytest.mark.parametrize(
    "key, value, expected",
    CASES + MORE,
    ids=[c[0] for c in CASES] + ["launch.nproc", "data.path", "standardize", "seed"],
)
def test_without_jsonschema_the_same_first_error(monkeypatch, key, value, expected):
    """On a machine without the jsonschema package (a bare GPU image) the schema is checked by
    vjepa.core.schema_check: the same first schema error (none for the cross-key cases, and none for seed
    1.0) and the same refusal, which names the schema error where there is one and else comes from
    the cross-key checks."""
    (schema, refusal), without = _checks_without_jsonschema(bad_params(key, value), monkeypatch)
    assert without == (schema, refusal)
    if expected is None:
        assert schema == [] and refusal is None
        return
    assert refusal is not None and expected in refusal, refusal
    assert (schema == []) == (key in CROSS_KEY)
    if schema:
        assert refusal == f"params.yaml: {schema[0]}"
    else:
        cross_key = ("params.yaml: (head ", "params.yaml: (ablation point ", "params.yaml: heads.")
        assert refusal.startswith(cross_key), refusal


def test_without_jsonschema_missing_sections_and_every_profile(monkeypatch):
    params = bad_params("seed", 0)
    del params["launch"]
    del params["train"]["steps"]
    with_it, without = _messages_without_jsonschema(params, monkeypatch)
    assert without == with_it and "'launch' is a required property" in without[0]
    params["bogus"] = 1  # a missing and an unknown key at one level: the schema's order decides which comes first
    assert _messages_without_jsonschema(params, monkeypatch)[1] == _messages_without_jsonschema(params, monkeypatch)[0]
    params = bad_params("launch", {"nproc": 1, "backend": "auto", "x": 2})
    with_it, without = _messages_without_jsonschema(params, monkeypatch)
    assert without == with_it and without
    for seeds in ([0, 0.0], [True, 1], [1, 2]):  # JSON equality: 0 == 0.0, but true is not 1
        with_it, without = _messages_without_jsonschema(bad_params("seeds", seeds), monkeypatch)
        assert without == with_it, seeds
    for profile in sorted((ROOT / "profiles").glob("*.yaml")):
        assert _messages_without_jsonschema(yaml.safe_load(profile.read_text()), monkeypatch) == ([], []), profile
