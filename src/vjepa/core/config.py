"""params.yaml → one validated, typed configuration per head.

`load_params` reads and validates the whole file once (JSON schema + the checks a
schema cannot express); `resolve` merges a head's overrides into the shared
sections and returns a frozen `Config`.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from vjepa.core import audit
from vjepa.core.errors import ConfigError

OVERRIDABLE = ("model", "mask", "augment", "train")  # `trunk` is shared by every head, never overridden
DIGITS_IMAGES = 1797  # scikit-learn's bundled digits; the split keeps ceil(n * val_fraction) for validation


class ParamsLoader(yaml.SafeLoader):
    """YAML 1.1 loader that also reads `1e-3` (no dot) as a float, as YAML 1.2 and DVC do."""


ParamsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def parse_yaml(text: str):
    return yaml.load(text, Loader=ParamsLoader)


@dataclass(frozen=True)
class DataConfig:
    source: str
    path: str | None
    image_size: int
    num_classes: int
    val_fraction: float
    split_seed: int
    stats_subsample: int


@dataclass(frozen=True)
class ModelConfig:
    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float
    pred_dim: int
    pred_depth: int
    pred_num_heads: int
    predictor_pass: str


@dataclass(frozen=True)
class MaskConfig:
    num_targets: int
    target_scale: tuple[float, float]
    target_aspect: tuple[float, float]
    context_scale: tuple[float, float]
    min_context: int


@dataclass(frozen=True)
class AugmentConfig:
    crop_scale: tuple[float, float]
    crop_ratio: tuple[float, float]
    hflip: bool
    rotate_degrees: float
    color_jitter: float
    color_prob: float
    grayscale_prob: float
    blur_prob: float
    blur_sigma: tuple[float, float]


@dataclass(frozen=True)
class TrunkConfig:
    global_views: int
    local_views: int
    local_size: int
    local_crop_scale: tuple[float, float]
    projector_dim: int
    standardize: bool
    invariance_weight: float
    variance_weight: float
    covariance_weight: float
    sigreg_weight: float
    sigreg_projections: int
    predict_weight: float  # the head's masked-token loss (0 = the cross-view term alone: no predictor or head trained)
    predict_share: float | None  # the masked-token loss's share of the encoder's gradient, held there (None = off)
    target_view: str  # own: a view's targets are its own teacher tokens; other: the next view's, where they overlap
    target_layers: int  # teacher blocks whose outputs are averaged into the targets (1: the last, normed)
    target_norm: str  # layer: each token normed; instance: each channel normed over an image's tokens first

    @property
    def cross_view_on(self) -> bool:
        """Whether the cross-view term adds anything to the loss."""
        return any(
            w > 0 for w in (self.invariance_weight, self.variance_weight, self.covariance_weight, self.sigreg_weight)
        )


@dataclass(frozen=True)
class TrainConfig:
    steps: int
    batch_size: int
    lr: float
    min_lr: float
    warmup_steps: int
    weight_decay: float
    grad_clip: float
    ema_start: float
    ema_end: float
    device: str
    log_every: int
    eval_every: int
    ckpt_every: int
    compile: bool
    nonfinite: str
    collapse_std: float
    collapse_patience: int


@dataclass(frozen=True)
class EvalConfig:
    knn_k: int
    knn_temperature: float
    batch_size: int
    draws: int
    scored_tokens: int
    probe_steps: int
    probe_weight_decay: float


@dataclass(frozen=True)
class Config:
    """Everything one head's run reads. `head` holds the head's own settings; `seed` is the
    training run's seed (or the study's, for what is not a training run)."""

    seed: int
    head_name: str
    data: DataConfig
    model: ModelConfig
    mask: MaskConfig
    augment: AugmentConfig
    trunk: TrunkConfig
    train: TrainConfig
    eval: EvalConfig
    head: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Every setting, as stored with a checkpoint for the record (not a read of them: `audit`)."""
        with audit.paused():
            return dataclasses.asdict(self)


def _schema() -> dict:
    return yaml.safe_load(resources.files("vjepa.core").joinpath("schema.yaml").read_text())


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _describe(error) -> str:
    """One line naming the key, its value and what is allowed."""
    key, value, v = _key(error.absolute_path), error.instance, error.validator
    schema = error.schema
    if v == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        where = f" in '{key}'" if error.absolute_path else ""
        return f"unknown key {', '.join(map(repr, unknown))}{where}; allowed keys: {', '.join(allowed)}"
    if v == "required":
        return f"'{key}' is missing a key: {error.message}; add it (see the default params.yaml)"
    if v == "enum":
        return f"{key} = {value!r} is not allowed; choose one of: {', '.join(map(str, schema['enum']))}"
    if v == "type":
        hint = ""
        if isinstance(value, str) and re.fullmatch(r"[-+]?[0-9.]+[eE][-+]?[0-9]+", value):
            dotted = value.replace("e", ".0e", 1) if "." not in value else value
            hint = f" (write it with a dot, e.g. {dotted}, or unquoted)"
        return f"{key} = {value!r} has the wrong type; expected {schema['type']}{hint}"
    if v in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        lo = schema.get("minimum", schema.get("exclusiveMinimum"))
        hi = schema.get("maximum", schema.get("exclusiveMaximum"))
        lo_b = "[" if "minimum" in schema else "("
        hi_b = "]" if "maximum" in schema else ")"
        rng = f"{lo_b}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{hi_b}"
        return f"{key} = {value!r} is out of range; allowed range {rng}"
    if v in ("minItems", "maxItems"):
        bound = schema[v]
        return (
            f"{key} = {value!r} has the wrong length; give {'at least' if v == 'minItems' else 'at most'} "
            f"{bound} item{'s' if bound != 1 else ''}"
        )
    if v == "uniqueItems":
        return f"{key} = {value!r} lists an entry twice; list each once"
    return f"{key} = {value!r}: {error.message}"


def schema_errors(params: dict) -> list:
    """The schema's violations, first the shallowest: by jsonschema, or where it is not installed
    (a bare GPU image) by `schema_check`, which gives the same errors."""
    try:
        import jsonschema
    except ImportError:
        from vjepa.core.schema_check import iter_errors

        errors = iter_errors(params, _schema())
    else:
        errors = jsonschema.Draft202012Validator(_schema()).iter_errors(params)
    return sorted(errors, key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))


def validate(params: dict, source: str = "params.yaml") -> None:
    """Raise ConfigError naming the first bad key, its value and the allowed values."""
    if not isinstance(params, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(params).__name__}")
    errors = schema_errors(params)
    if errors:
        raise ConfigError(f"{source}: {_describe(errors[0])}")
    known = list(
        _schema()["properties"]["head"]["properties"]
    )  # the heads: one section each (tests/unit/model/test_head_registry.py)
    for key, head in [
        *((f"heads.{i}", h) for i, h in enumerate(params["heads"])),
        ("ablation.head", params["ablation"]["head"]),
    ]:
        if head not in known:
            raise ConfigError(f"{source}: {key} = {head!r} is not allowed; choose one of: {', '.join(known)}")
    for head in params["heads"]:
        if head not in params["head"]:
            raise ConfigError(f"{source}: heads lists '{head}' but head.{head} is missing; add its section")
    for head in params["heads"]:
        _check_ranges(resolve(params, head), source)
        _check_launch(params["launch"], resolve(params, head).train, f"{source}: (head {head}) ")
    _check_ablation(params, source)


def world_size(launch: dict) -> int:
    """The number of processes that `launch:` gives one training."""
    return launch["nproc"] * launch["nnodes"]


def _check_launch(launch: dict, t: TrainConfig, where: str) -> None:
    size = world_size(launch)
    if t.batch_size % size:
        raise ConfigError(
            f"{where}train.batch_size = {t.batch_size} is not divisible by the {size} processes of "
            f"launch.nproc x launch.nnodes = {launch['nproc']} x {launch['nnodes']}; choose a "
            f"multiple of {size} (it stays the global batch; each process takes an equal share)"
        )
    if launch["backend"] == "nccl" and t.device in ("cpu", "mps"):
        raise ConfigError(
            f"{where}launch.backend = nccl needs CUDA, but train.device = {t.device!r}; "
            "use launch.backend: auto (gloo off CUDA) or gloo"
        )


def ablation_grid(params: dict) -> tuple[list[float], list[int]]:
    """The masking sweep's axes: target block areas and numbers of target blocks."""
    a = params["ablation"]
    return [float(area) for area in a["target_area"]], [int(blocks) for blocks in a["num_targets"]]


def ablation_points(params: dict) -> list[tuple[float, int]]:
    """The masking sweep's points: (target area, number of target blocks), areas outer."""
    areas, blocks = ablation_grid(params)
    return [(area, n) for area in areas for n in blocks]


def ablation_point_name(area: float, blocks: int) -> str:
    """A sweep point's name in results/ablation/ (its run folder, and NAME.json)."""
    return f"area{float(area)}_blocks{int(blocks)}"


def ablation_config(params: dict, area: float, blocks: int) -> Config:
    """One point of the masking sweep: `ablation.head` (its overrides included) on the first training
    seed, with `blocks` target blocks of area fraction `area` each (mask.target_scale = [area, area]),
    trained for `ablation.steps` steps (warm-up at most a tenth of them, no evaluation during training)."""
    a = params["ablation"]
    cfg = resolve(params, a["head"], params["seeds"][0])
    steps = a["steps"]
    return dataclasses.replace(
        cfg,
        mask=dataclasses.replace(cfg.mask, target_scale=(area, area), num_targets=blocks),
        train=dataclasses.replace(
            cfg.train,
            steps=steps,
            warmup_steps=min(cfg.train.warmup_steps, steps // 10),
            eval_every=0,
            ckpt_every=steps,
        ),
    )


def _check_ablation(params: dict, source: str) -> None:
    head = params["ablation"]["head"]
    if head not in params["head"]:
        raise ConfigError(
            f"{source}: ablation.head = {head!r} has no section head.{head}; add one or pick a head "
            f"among {', '.join(params['head'])}"
        )
    for area, blocks in ablation_points(params):
        _check_ranges(ablation_config(params, area, blocks), f"{source}: (ablation point area {area}, {blocks} blocks)")


def _check_ranges(cfg: Config, source: str) -> None:
    """Checks that involve several keys (a schema sees one value at a time)."""
    p = f"{source}: (head {cfg.head_name}) "

    def bad(msg: str):
        raise ConfigError(p + msg)

    m, d = cfg.model, cfg.data
    if d.image_size % m.patch_size:
        bad(
            f"data.image_size = {d.image_size} is not divisible by model.patch_size = {m.patch_size}; "
            "choose sizes so that image_size / patch_size is a whole number"
        )
    if m.embed_dim % m.num_heads:
        bad(f"model.embed_dim = {m.embed_dim} is not divisible by model.num_heads = {m.num_heads}")
    if m.pred_dim % m.pred_num_heads:
        bad(f"model.pred_dim = {m.pred_dim} is not divisible by model.pred_num_heads = {m.pred_num_heads}")
    for name, dim in (("model.embed_dim", m.embed_dim), ("model.pred_dim", m.pred_dim)):
        if dim % 4:
            bad(f"{name} = {dim} must be a multiple of 4 (2-D sin-cos positions split it in four)")
    for name, pair in (
        ("mask.target_scale", cfg.mask.target_scale),
        ("mask.target_aspect", cfg.mask.target_aspect),
        ("mask.context_scale", cfg.mask.context_scale),
        ("augment.crop_scale", cfg.augment.crop_scale),
        ("augment.crop_ratio", cfg.augment.crop_ratio),
        ("augment.blur_sigma", cfg.augment.blur_sigma),
        ("trunk.local_crop_scale", cfg.trunk.local_crop_scale),
    ):
        if pair[0] > pair[1]:
            bad(f"{name} = {list(pair)} must be [low, high] with low <= high")
    if cfg.head_name == "rnade" and cfg.head["hidden_dim"] < m.embed_dim - 1:
        bad(
            f"head.rnade.hidden_dim = {cfg.head['hidden_dim']} must be at least model.embed_dim - 1 = "
            f"{m.embed_dim - 1} (every autoregressive degree needs a hidden unit)"
        )
    tr = cfg.trunk
    if tr.invariance_weight and tr.global_views + tr.local_views < 2:
        bad(
            f"trunk.invariance_weight = {tr.invariance_weight} needs at least two views of each image, but "
            f"trunk.global_views + trunk.local_views = {tr.global_views + tr.local_views}; add views or set it to 0"
        )
    if not tr.predict_weight and not tr.cross_view_on:
        bad(
            "trunk.predict_weight = 0 and every cross-view weight is 0: nothing would train the encoder; "
            "set trunk.predict_weight > 0 or a cross-view weight (e.g. trunk.invariance_weight)"
        )
    if tr.predict_share is not None and not (tr.predict_weight and tr.cross_view_on):
        bad(
            f"trunk.predict_share = {tr.predict_share} divides the encoder's gradient between the masked-token "
            "loss and the cross-view term, so it needs both (trunk.predict_weight > 0 and a cross-view weight); "
            "set it to null"
        )
    if tr.target_view == "other" and tr.global_views < 2:
        bad(
            "trunk.target_view = other predicts the teacher's tokens of another view of the same image, but "
            f"trunk.global_views = {tr.global_views}; set trunk.global_views >= 2 or trunk.target_view: own"
        )
    if tr.target_layers > m.depth:
        bad(
            f"trunk.target_layers = {tr.target_layers} is more than the teacher's model.depth = {m.depth} blocks; "
            f"set it to at most {m.depth}"
        )
    if tr.local_views and (tr.local_size % m.patch_size or tr.local_size > d.image_size):
        bad(
            f"trunk.local_size = {tr.local_size} must be a multiple of model.patch_size = {m.patch_size} and at most "
            f"data.image_size = {d.image_size}"
        )
    grid = (d.image_size // m.patch_size) ** 2
    if cfg.mask.num_targets * cfg.mask.target_scale[0] >= 1.0:
        bad(
            f"mask.num_targets x mask.target_scale[0] = {cfg.mask.num_targets} x {cfg.mask.target_scale[0]} "
            "covers the whole grid; lower one of them so that their product is < 1"
        )
    if cfg.mask.min_context >= grid:
        bad(f"mask.min_context = {cfg.mask.min_context} must be smaller than the {grid} patches of the grid")
    t = cfg.train
    if d.source == "digits":  # the only source whose size is known before it is prepared
        n_train = DIGITS_IMAGES - math.ceil(DIGITS_IMAGES * d.val_fraction)
        if t.batch_size > n_train:
            bad(
                f"train.batch_size = {t.batch_size} is larger than the {n_train} digits training images "
                f"(data.val_fraction = {d.val_fraction}); lower it to at most {n_train}"
            )
    if t.min_lr > t.lr:
        bad(f"train.min_lr = {t.min_lr} is larger than train.lr = {t.lr}")
    if t.ema_start > t.ema_end:
        bad(f"train.ema_start = {t.ema_start} is larger than train.ema_end = {t.ema_end}")
    if t.warmup_steps >= t.steps:
        bad(f"train.warmup_steps = {t.warmup_steps} must be smaller than train.steps = {t.steps}")


def load_params(path: str | Path = "params.yaml") -> dict:
    """Read and validate a params file; ConfigError on any problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file '{path}' not found; run from the project folder or pass --params PATH")
    try:
        params = parse_yaml(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    validate(params, str(path))
    return params


def _tuples(d: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def resolve(params: dict, head: str | None, seed: int | None = None) -> Config:
    """The configuration of one head: shared sections with the head's overrides merged in.
    `head=None` gives the shared sections alone (head_name "shared", no head settings).
    `seed` is a training run's seed (one of `seeds`); without it, the study's `seed`."""
    seed_from_params = seed is None
    params = audit.raw(params)
    if head is not None and head not in params.get("head", {}):
        raise ConfigError(f"no section head.{head} in params; known heads: {', '.join(params.get('head', {}))}")
    head_section = copy.deepcopy(params["head"][head]) if head is not None else {}
    sections = {}
    for name in OVERRIDABLE:
        merged = dict(params[name])
        merged.update(head_section.pop(name, {}) or {})
        sections[name] = merged
    cfg = Config(
        seed=params["seed"] if seed is None else seed,
        head_name=head if head is not None else "shared",
        data=DataConfig(**params["data"]),
        model=ModelConfig(**sections["model"]),
        mask=MaskConfig(**_tuples(sections["mask"])),
        augment=AugmentConfig(**_tuples(sections["augment"])),
        trunk=TrunkConfig(**_tuples(params["trunk"])),
        train=TrainConfig(**sections["train"]),
        eval=EvalConfig(**params["eval"]),
        head=head_section,
    )
    if not audit.recording():
        return cfg
    overrides = {name: params["head"][head].get(name) for name in OVERRIDABLE} if head is not None else {}
    return audit.recording_config(cfg, seed_from_params, overrides)


def set_dotted(params: dict, dotted: str, value: Any) -> None:
    """Apply a `section.key=value` override from the command line (value parsed as YAML)."""
    keys = dotted.split(".")
    node = params
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
