"""The params schema checked without the `jsonschema` package, for machines that lack it (a bare GPU
image with PyTorch and the scientific stack, `scripts/gpu_study.sh`).

It knows the keywords `schema.yaml` uses, no more: type, enum, minimum, maximum, exclusiveMinimum,
exclusiveMaximum, required, properties, additionalProperties, items, minItems, maxItems, uniqueItems,
allOf and local `$ref`s. Its errors carry what `config._describe` reads from jsonschema's
(`absolute_path`, `instance`, `validator`, `schema`, `message`), so the messages are the same;
`tests/test_config.py` holds both validators to the same first error on bad params.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterator

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}
_BOUNDS = {"minimum": lambda v, b: v >= b, "maximum": lambda v, b: v <= b,
           "exclusiveMinimum": lambda v, b: v > b, "exclusiveMaximum": lambda v, b: v < b}
_HANDLED = {"type", "enum", *_BOUNDS, "required", "properties", "additionalProperties", "items", "minItems",
            "maxItems", "uniqueItems", "allOf", "$ref", "$schema", "title", "definitions"}


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

    if "$ref" in schema:
        node = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        yield from iter_errors(instance, node, root, path)
    for sub in schema.get("allOf", ()):
        yield from iter_errors(instance, sub, root, path)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[t](instance) for t in types):
            yield error("type", f"{instance!r} is not of type {', '.join(map(repr, types))}")
            return
    if "enum" in schema and instance not in schema["enum"]:
        yield error("enum", f"{instance!r} is not one of {schema['enum']!r}")
    if _TYPES["number"](instance):
        for key, ok in _BOUNDS.items():
            if key in schema and not ok(instance, schema[key]):
                yield error(key, f"{instance!r} is out of range ({key} {schema[key]!r})")
    if isinstance(instance, dict):
        for key in schema.get("required", ()):
            if key not in instance:
                yield error("required", f"{key!r} is a required property")
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is False and set(instance) - set(properties):
            extra = sorted(set(instance) - set(properties))
            yield error("additionalProperties", f"additional properties are not allowed ({', '.join(map(repr, extra))})")
        for key, sub in properties.items():
            if key in instance:
                yield from iter_errors(instance[key], sub, root, (*path, key))
    if isinstance(instance, list):
        if "minItems" in schema and len(instance) < schema["minItems"]:
            yield error("minItems", f"{instance!r} should have at least {schema['minItems']} item(s)")
        if "maxItems" in schema and len(instance) > schema["maxItems"]:
            yield error("maxItems", f"{instance!r} should have at most {schema['maxItems']} item(s)")
        if schema.get("uniqueItems") and len({repr(v) for v in instance}) < len(instance):
            yield error("uniqueItems", f"{instance!r} has non-unique elements")
        if "items" in schema:
            for i, item in enumerate(instance):
                yield from iter_errors(item, schema["items"], root, (*path, i))
