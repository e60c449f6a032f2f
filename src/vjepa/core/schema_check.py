"""The params schema checked without the `jsonschema` package, for machines that lack it (a bare GPU
image with PyTorch and the scientific stack, `scripts/gpu_study.sh`).

It knows the keywords `schema.yaml` uses, no more: type, enum, minimum, maximum, exclusiveMinimum,
exclusiveMaximum, required, properties, additionalProperties, items, minItems, maxItems, uniqueItems,
allOf and local `$ref`s. Its errors carry what `config._describe` reads from jsonschema's
(`absolute_path`, `instance`, `validator`, `schema`, `message`), so the messages are the same;
`tests/unit/core/test_config.py` holds both validators to the same first error on bad params.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}
_BOUNDS = {
    "minimum": lambda v, b: v >= b,
    "maximum": lambda v, b: v <= b,
    "exclusiveMinimum": lambda v, b: v > b,
    "exclusiveMaximum": lambda v, b: v < b,
}
_HANDLED = {
    "type",
    "enum",
    *_BOUNDS,
    "required",
    "properties",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "uniqueItems",
    "allOf",
    "$ref",
    "$schema",
    "title",
    "definitions",
}


@dataclass
class SchemaError:
    validator: str
    message: str
    instance: Any
    schema: dict
    absolute_path: deque = field(default_factory=deque)


def iter_errors(instance, schema: dict, root: dict | None = None, path: tuple = ()) -> Iterator[SchemaError]:
    """Every violation of `schema` by `instance` (both plain YAML/JSON data)."""
    root = root if root is not None else schema
    unknown = set(schema) - _HANDLED
    if unknown:
        raise ValueError(f"schema keyword(s) {sorted(unknown)} not supported without jsonschema; install it")

    def error(validator: str, message: str, value=instance) -> SchemaError:
        return SchemaError(validator, message, value, schema, deque(path))

    for keyword, value in schema.items():  # in the schema's order, as jsonschema reports them
        if keyword == "$ref":
            node = root
            for part in value.removeprefix("#/").split("/"):
                node = node[part]
            yield from iter_errors(instance, node, root, path)
        elif keyword == "allOf":
            for sub in value:
                yield from iter_errors(instance, sub, root, path)
        elif keyword == "type":
            types = value if isinstance(value, list) else [value]
            if not any(_TYPES[t](instance) for t in types):
                yield error("type", f"{instance!r} is not of type {', '.join(map(repr, types))}")
        elif keyword == "enum":
            if not any(_equal(instance, v) for v in value):
                yield error("enum", f"{instance!r} is not one of {value!r}")
        elif keyword in _BOUNDS:
            if _TYPES["number"](instance) and not _BOUNDS[keyword](instance, value):
                yield error(keyword, f"{instance!r} is out of range ({keyword} {value!r})")
        elif isinstance(instance, dict):
            yield from _object_keyword(keyword, value, instance, schema, root, path, error)
        elif isinstance(instance, list):
            yield from _array_keyword(keyword, value, instance, root, path, error)


def _object_keyword(keyword, value, instance: dict, schema: dict, root: dict, path: tuple, error):
    if keyword == "required":
        for key in value:
            if key not in instance:
                yield error("required", f"{key!r} is a required property")
    elif keyword == "additionalProperties" and value is False:
        extra = sorted(set(instance) - set(schema.get("properties", {})))
        if extra:
            yield error(
                "additionalProperties", f"additional properties are not allowed ({', '.join(map(repr, extra))})"
            )
    elif keyword == "properties":
        for key, sub in value.items():
            if key in instance:
                yield from iter_errors(instance[key], sub, root, (*path, key))


def _array_keyword(keyword, value, instance: list, root: dict, path: tuple, error):
    if keyword == "minItems" and len(instance) < value:
        yield error("minItems", f"{instance!r} should have at least {value} item(s)")
    elif keyword == "maxItems" and len(instance) > value:
        yield error("maxItems", f"{instance!r} should have at most {value} item(s)")
    elif keyword == "uniqueItems" and value:
        if any(_equal(a, b) for i, a in enumerate(instance) for b in instance[i + 1 :]):
            yield error("uniqueItems", f"{instance!r} has non-unique elements")
    elif keyword == "items":
        for i, item in enumerate(instance):
            yield from iter_errors(item, value, root, (*path, i))


def _equal(a, b) -> bool:
    """JSON equality: 1 == 1.0, but true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return type(a) in (int, float) and type(b) in (int, float) and a == b or (a == b and type(a) is type(b))
