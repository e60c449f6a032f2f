import pytest

from vjepa.core.config import load_params, resolve, set_dotted, validate
from vjepa.core.errors import ConfigError

from conftest import ROOT, write_params


def test_default_params_are_valid_and_resolve(default_params):
    validate(default_params)
    cfg = resolve(default_params, "deterministic")
    assert cfg.head_name == "deterministic"
    assert cfg.mask.target_scale == (0.15, 0.2)
    assert cfg.head == {"align_weight": 1.0, "var_weight": 0.1, "cov_weight": 0.01}
    assert load_params(ROOT / "params.yaml") == default_params


def test_head_overrides_merge_into_shared_sections(params):
    params["head"]["deterministic"]["train"] = {"lr": 5e-5, "batch_size": 64}
    params["head"]["deterministic"]["model"] = {"pred_depth": 3}
    validate(params)
    cfg = resolve(params, "deterministic")
    assert cfg.train.lr == 5e-5 and cfg.train.batch_size == 64 and cfg.model.pred_depth == 3
    assert cfg.train.steps == params["train"]["steps"]  # untouched keys keep the shared value
    assert "train" not in cfg.head and "model" not in cfg.head


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("train.lr", -0.001, r"train.lr = -0.001 is out of range; allowed range \(0, 1\]"),
        ("train.lr", "fast", "train.lr = 'fast' has the wrong type; expected number"),
        ("train.batch_size", 1.5, "train.batch_size = 1.5 has the wrong type; expected integer"),
        ("train.steps", 0, r"train.steps = 0 is out of range; allowed range \[1, inf\)"),
        (
            "data.source",
            "mnist",
            "data.source = 'mnist' is not allowed; choose one of: digits, tiny-imagenet, imagefolder",
        ),
        ("train.colour", 3, "unknown key 'colour' in 'train'; allowed keys:"),
        ("mask.target_scale", [0.15, 1.2], r"mask.target_scale.1 = 1.2 is out of range; allowed range \(0, 1\]"),
        ("mask.target_scale", [0.15], "mask.target_scale = \\[0.15\\] has the wrong length"),
        ("heads", ["deterministic", "deterministic"], "lists an entry twice"),
        ("model.patch_size", 5, "data.image_size = 32 is not divisible by model.patch_size = 5"),
        ("model.num_heads", 3, "model.embed_dim = 64 is not divisible by model.num_heads = 3"),
        ("mask.num_targets", 8, "covers the whole grid"),
        ("mask.target_scale", [0.3, 0.2], r"mask.target_scale = \[0.3, 0.2\] must be \[low, high\]"),
        ("train.min_lr", 0.5, "train.min_lr = 0.5 is larger than train.lr"),
        ("train.warmup_steps", 5000, "must be smaller than train.steps"),
        ("train.device", "tpu", "train.device = 'tpu' is not allowed"),
        ("data.image_size", "32", "has the wrong type"),
    ],
)
def test_bad_values_name_the_key_value_and_allowed_range(params, key, value, expected):
    set_dotted(params, key, value)
    with pytest.raises(ConfigError, match=expected):
        validate(params)


def test_missing_key_and_missing_head_section(params):
    del params["train"]["lr"]
    with pytest.raises(ConfigError, match="'train' is missing a key: 'lr' is a required property"):
        validate(params)


def test_override_errors_name_the_head_section(params):
    params["head"]["deterministic"]["train"] = {"lr": -1}
    with pytest.raises(ConfigError, match=r"head.deterministic.train.lr = -1 is out of range"):
        validate(params)


def test_unreadable_or_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)
    write_params(tmp_path / "list.yaml", [1, 2])
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_params(tmp_path / "list.yaml")


def test_exponent_without_dot_is_a_float(tmp_path, params):
    text = (ROOT / "params.yaml").read_text().replace("lr: 2.0e-3", "lr: 3e-3")
    assert "lr: 3e-3" in text
    (tmp_path / "p.yaml").write_text(text)
    assert load_params(tmp_path / "p.yaml")["train"]["lr"] == 0.003


def test_quoted_number_gets_a_hint(params):
    params["train"]["lr"] = "3e-3"
    with pytest.raises(ConfigError, match=r"write it with a dot, e.g. 3.0e-3"):
        validate(params)
