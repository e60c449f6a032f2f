"""Which params keys and package modules a `vjepa` command really used (for checking the pipeline).

Off unless the environment names a folder in `VJEPA_AUDIT`; then every command writes there, on
success, one JSON record: its arguments, the dotted params keys it read and the package modules
it loaded. `tests/system/test_pipeline.py` runs the smoke pipeline so and compares each record with
what the stage declares (`vjepa.pipeline.stages`).

Reading is recorded where it happens, after the params file has been validated (validation
reads everything and decides nothing else): a params mapping returned by `watch` records the
keys looked up in it (iterating a section records the whole section), and a `Config` built by
`config.resolve` records the fields read from it. `Config.to_dict` (the copy a checkpoint keeps
for the record) reads under `paused()`.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import is_dataclass
from pathlib import Path

ENV = "VJEPA_AUDIT"
_keys: set[str] | None = None  # None: not recording
_paused = 0


def enabled() -> bool:
    return bool(os.environ.get(ENV))


def start() -> None:
    global _keys
    if enabled() and _keys is None:
        _keys = set()


def recording() -> bool:
    return _keys is not None and not _paused


def touch(key: str) -> None:
    if recording():
        _keys.add(key)


@contextmanager
def paused():
    global _paused
    _paused += 1
    try:
        yield
    finally:
        _paused -= 1


class Watched(Mapping):
    """A read-only view of a params mapping that records the dotted keys read through it."""

    def __init__(self, data: Mapping, prefix: str = ""):
        self._data, self._prefix = data, prefix

    def __getitem__(self, key):
        value = self._data[key]
        if isinstance(value, Mapping):
            return Watched(value, f"{self._prefix}{key}.")
        touch(f"{self._prefix}{key}")
        return value

    def __iter__(self):
        touch(self._prefix.rstrip(".") or "*")
        return iter(self._data)

    def __len__(self):
        return len(self._data)

    def __repr__(self):
        return f"Watched({self._data!r})"


def watch(params: dict):
    """`params` itself when not auditing, else a recording view of it."""
    return Watched(params) if enabled() else params


def raw(params):
    """The plain mapping behind a `watch` view (reads through it are not recorded)."""
    return params._data if isinstance(params, Watched) else params


_recording_classes: dict[tuple, type] = {}  # (class, what it records) -> its recording subclass


def _recording_class(cls: type, key: tuple, getattribute) -> type:
    """`cls` with `getattribute` in place of attribute lookup (made once per key)."""
    if key not in _recording_classes:
        _recording_classes[key] = type(f"Recorded{cls.__name__}", (cls,), {"__getattribute__": getattribute})
    return _recording_classes[key]


def _fields(obj) -> dict:
    return {f: object.__getattribute__(obj, f) for f in type(obj).__dataclass_fields__}


def recording_section(obj, section: str, overridden: frozenset = frozenset(), override_prefix: str = ""):
    """`obj` (a frozen dataclass of one params section) as an instance that records its fields' reads.
    A read of a field in `overridden` (keys a head's section overrides) is also a read of
    `override_prefix.key` (e.g. head.mdn.train.batch_size)."""
    fields = frozenset(type(obj).__dataclass_fields__)

    def __getattribute__(self, name):
        if name in fields:
            touch(f"{section}.{name}")
            if name in overridden:
                touch(f"{override_prefix}.{name}")
        return object.__getattribute__(self, name)

    key = (type(obj), overridden, override_prefix)
    return _recording_class(type(obj), key, __getattribute__)(**_fields(obj))


def recording_config(cfg, seed_from_params: bool, overrides: dict | None = None):
    """A `Config` whose section fields, `head` (its params section) and, when it came from the params
    file, `seed` record their reads. `overrides`: the head's overrides of shared sections."""

    def __getattribute__(self, name):
        if name == "head":
            touch(f"head.{object.__getattribute__(self, 'head_name')}")
        elif name == "seed" and seed_from_params:
            touch("seed")
        return object.__getattribute__(self, name)

    values = _fields(cfg)
    for section in [name for name, value in values.items() if is_dataclass(value)]:
        over = frozenset((overrides or {}).get(section) or {})
        values[section] = recording_section(values[section], section, over, f"head.{cfg.head_name}.{section}")
    return _recording_class(type(cfg), (type(cfg), seed_from_params), __getattribute__)(**values)


def write(name: str, argv: list[str]) -> Path | None:
    """Write this command's record into $VJEPA_AUDIT/NAME.json; returns its path."""
    if not enabled() or _keys is None:
        return None
    folder = Path(os.environ[ENV])
    folder.mkdir(parents=True, exist_ok=True)
    loaded = sorted(m for m in sys.modules if m == "vjepa" or m.startswith("vjepa."))
    path = folder / (re.sub(r"[^\w.@-]+", "_", name) + ".json")
    path.write_text(json.dumps({"argv": argv, "params": sorted(_keys), "modules": loaded}, indent=1))
    return path
