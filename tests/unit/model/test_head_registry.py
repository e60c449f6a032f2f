"""One list of heads: the registry (`HEADS`), the schema's head sections and each head's constructor
agree, and a new head needs exactly the touch points docs/architecture.md lists (a toy head is added
through them and trained)."""

from __future__ import annotations

import copy
import importlib.util
import inspect
import re
import sys

import pytest
import torch

from vjepa.core import config
from vjepa.core.config import OVERRIDABLE, load_params, resolve, validate
from vjepa.core.errors import ConfigError
from vjepa.model import checkpoint
from vjepa.model.heads import HEADS, build_head, head_class
from vjepa.training.train import train

from conftest import ROOT, tiny

SCHEMA_TYPES = {"integer": "int", "number": "float"}


def head_settings(name: str) -> dict[str, str]:
    """A head's settings as its constructor declares them: keyword-only argument -> annotation."""
    sig = inspect.signature(head_class(name).__init__)
    name_of = lambda a: a if isinstance(a, str) else a.__name__  # a string under `from __future__ import annotations`
    return {p.name: name_of(p.annotation) for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY}


def schema_settings(schema: dict, name: str) -> dict[str, str]:
    section = schema["properties"]["head"]["properties"][name]
    own = {k: v for k, v in section["properties"].items() if k not in OVERRIDABLE}
    assert set(section["required"]) == set(own), f"head.{name}: every own setting is required (no hidden defaults)"
    return {k: SCHEMA_TYPES.get(v.get("type"), "str" if "enum" in v else v.get("type")) for k, v in own.items()}


def test_the_schema_has_a_section_for_exactly_the_registered_heads():
    schema = config._schema()
    assert set(schema["properties"]["head"]["properties"]) == set(HEADS)


@pytest.mark.parametrize("name", list(HEADS))
def test_each_head_takes_exactly_its_schema_settings_with_their_types(name):
    assert head_settings(name) == schema_settings(config._schema(), name)


def test_every_registered_head_has_a_section_in_the_default_params_and_builds_from_it():
    params = load_params(ROOT / "params.yaml")
    assert set(params["head"]) == set(HEADS)
    for name in HEADS:
        cfg = resolve(params, name)
        head = build_head(name, cfg.model.pred_dim, cfg.model.embed_dim, cfg.head)
        assert type(head).__name__ == HEADS[name]


def test_an_unregistered_head_is_refused_naming_the_registered_ones(params):
    params["heads"] = ["deterministic", "gan"]
    with pytest.raises(ConfigError, match=r"heads.1 = 'gan' is not allowed; choose one of: deterministic, mdn"):
        validate(params)
    params["heads"], params["ablation"]["head"] = ["mdn"], "gan"
    with pytest.raises(ConfigError, match=r"ablation.head = 'gan' is not allowed"):
        validate(params)


TOY_HEAD = '''
"""A toy head: a linear point prediction with a fixed isotropic Gaussian of width sigma around it."""
import torch
import torch.nn as nn

from vjepa.model.heads.base import Head


class ToyHead(Head):
    exact_log_prob = True

    def __init__(self, cond_dim: int, target_dim: int, *, sigma: float):
        super().__init__(cond_dim, target_dim)
        if sigma <= 0:
            raise ValueError("sigma must be positive")
        self.proj = nn.Linear(cond_dim, target_dim)
        self.sigma = sigma

    def loss(self, cond, target):
        return ((self.proj(cond) - target) ** 2).mean(), {}

    def point(self, cond):
        return self.proj(cond)

    def sample(self, cond, n):
        mu = self.point(cond)
        return mu + self.sigma * torch.randn(n, *mu.shape, device=mu.device)

    def log_prob(self, cond, target):
        return torch.distributions.Normal(self.point(cond), self.sigma).log_prob(target).sum(-1)
'''
TOY_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["sigma"],
    "properties": {
        "sigma": {"type": "number", "exclusiveMinimum": 0},
        **{s: {"$ref": f"#/definitions/{s}"} for s in OVERRIDABLE},
    },
}


def documented_touch_points() -> list[str]:
    """The files docs/architecture.md's numbered list under "Adding a head" names, in order."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text[text.index("Adding a head touches exactly these places") :]
    section = section[: section.index("\n\n", section.index("\n1. "))]
    return [re.match(r"\d+\. `([^`]+)`", line).group(1) for line in section.splitlines() if re.match(r"\d+\. ", line)]


def test_a_toy_head_needs_exactly_the_documented_touch_points(tmp_path, params, digits_dir, monkeypatch):
    assert documented_touch_points() == [
        "src/vjepa/model/heads/NAME.py",
        "src/vjepa/model/heads/__init__.py",
        "src/vjepa/core/schema.yaml",
        "params.yaml",
    ]
    params = tiny(params)
    params["heads"] = ["deterministic", "toy"]

    # 1. its file (as if it were src/vjepa/model/heads/toy.py)
    (tmp_path / "toy.py").write_text(TOY_HEAD)
    spec = importlib.util.spec_from_file_location("vjepa.model.heads.toy", tmp_path / "toy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "vjepa.model.heads.toy", module)
    # 4 before 3 and 2: without a schema section, its name and its section are refused
    with pytest.raises(ConfigError, match=r"heads.1 = 'toy' is not allowed; choose one of: deterministic"):
        validate(params)
    params["head"]["toy"] = {"sigma": 0.5}
    with pytest.raises(ConfigError, match=r"unknown key 'toy' in 'head'; allowed keys: deterministic"):
        validate(params)
    # 3. its schema section
    schema = config._schema()
    schema["properties"]["head"]["properties"]["toy"] = TOY_SCHEMA
    monkeypatch.setattr(config, "_schema", lambda: copy.deepcopy(schema))
    validate(params)
    bad = copy.deepcopy(params)
    bad["head"]["toy"]["sigma"] = 0
    with pytest.raises(ConfigError, match=r"head.toy.sigma = 0 is out of range"):
        validate(bad)
    del bad["head"]["toy"]
    with pytest.raises(ConfigError, match=r"heads lists 'toy' but head.toy is missing"):
        validate(bad)
    cfg = resolve(params, "toy")
    with pytest.raises(KeyError, match="unknown head 'toy'"):
        build_head("toy", cfg.model.pred_dim, cfg.model.embed_dim, cfg.head)
    # 2. its registry line
    monkeypatch.setitem(HEADS, "toy", "ToyHead")
    assert head_settings("toy") == schema_settings(schema, "toy")

    # ...and it trains, saves and loads like any head.
    out = tmp_path / "run"
    result = train(cfg, digits_dir, out, progress=False)
    assert result["step"] == cfg.train.steps
    state, _, model = checkpoint.load_model(out / "checkpoint.pt", cfg)
    assert type(model.head).__name__ == "ToyHead" and model.head.sigma == 0.5
    cond = torch.randn(2, 3, cfg.model.pred_dim)
    assert model.head.sample(cond, 4).shape == (4, 2, 3, cfg.model.embed_dim)
