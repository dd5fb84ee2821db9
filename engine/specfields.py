"""The generic walker behind run specs (:mod:`motifgram.engine.spec`).

A spec is a tree of frozen section dataclasses whose fields carry their description and constraints in their
metadata (:func:`spec_key`). This module reads those fields, and nothing else, to validate parsed YAML and build
the dataclasses (:func:`convert_section`, collecting every problem in a :class:`Context`), to write them back
(:func:`to_plain`) and to generate the JSON Schema (:func:`section_schema`). Cross-key rules (:class:`ExactlyOne`,
:class:`OnlyWith`, :class:`LengthEquals`) are declared per section in ``_rules``. It knows no section: those live
in :mod:`motifgram.engine.spec`.
"""

import dataclasses
import difflib
import glob
import json
import math
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import yaml

__all__ = [
    "AUTO",
    "IMAGE_SUFFIXES",
    "INVALID",
    "Context",
    "ExactlyOne",
    "LengthEquals",
    "NotBoth",
    "OnlyWith",
    "StrictLoader",
    "convert_section",
    "join_path",
    "match_images",
    "section_schema",
    "show_value",
    "spec_key",
    "to_plain",
]

#: File suffixes (lower case) that an image path (``inputs[].path``) may name.
IMAGE_SUFFIXES = (
    ".npy", ".tif", ".tiff", ".png", ".jpg", ".jpeg", ".dm3", ".dm4", ".emd", ".hspy", ".hdf5", ".h5", ".mrc",
)

#: The string that stands for ``None`` (the stage chooses the value).
AUTO = "auto"


def spec_key(default=dataclasses.MISSING, *, doc, auto=None, minimum=None, maximum=None, exclusive_minimum=None,
         odd=False, pattern=None, min_items=None, unique=False, ordered=False, relative=False, glob_=False,
         must_exist=False, extra=False):
    """A spec key: a dataclass field whose metadata drives validation, writing and the JSON Schema.

    ``auto`` (default: whether the type admits ``None``) allows the string ``"auto"`` for ``None``.
    ``pattern`` is a pair (regular expression, the same in words for messages).
    ``minimum``, ``maximum``, ``exclusive_minimum``, ``odd`` and ``pattern`` apply to the value, or to each
    item of a list. ``min_items``, ``unique`` and ``ordered`` apply to a list. ``relative`` resolves a path
    against the spec's folder; ``glob_`` lets it be a glob that must match readable images; ``must_exist``
    requires it to exist. ``extra`` marks a ``dict`` field that collects all keys not named by a field.
    """
    meta = {"doc": doc, "auto": auto, "minimum": minimum, "maximum": maximum,
            "exclusive_minimum": exclusive_minimum, "odd": odd, "pattern": pattern, "min_items": min_items,
            "unique": unique, "ordered": ordered, "relative": relative, "glob": glob_,
            "must_exist": must_exist, "extra": extra}
    if isinstance(default, type) and dataclasses.is_dataclass(default) or default is dict:
        return field(default_factory=default, metadata=meta)
    return field(default=default, metadata=meta)


# ---------------------------------------------------------------------------------------------------------
# Cross-key rules, declared per section in ``_rules`` and checked by the walker.



@dataclass(frozen=True)
class ExactlyOne:
    """Exactly one of two keys must be given (a given but invalid value counts as given)."""

    first: str
    second: str
    on_invalid: ClassVar = True

    @property
    def keys(self):
        return (self.first, self.second)

    def apply(self, values, path, ctx):
        if (values[self.first] is None) == (values[self.second] is None):
            ctx.problem(path, f"give exactly one of '{self.first}' or '{self.second}'")
        return values

    def schema(self):
        return {"oneOf": [{"required": [self.first]}, {"required": [self.second]}]}


@dataclass(frozen=True)
class OnlyWith:
    """A key may be set (not auto, or not its default ``unset``) only when another key has a given value."""

    key: str
    other: str
    value: str
    unset: str | None = None  # the key's value that counts as not set (None: auto)
    on_invalid: ClassVar = False

    @property
    def keys(self):
        return (self.key, self.other)

    def apply(self, values, path, ctx):
        if values[self.key] != self.unset and values[self.other] != self.value:
            what = "set" if self.unset is None else show_value(values[self.key])
            key, other = join_path(path, self.key), join_path(path, self.other)
            ctx.problem(key, f"conflicting options: {key} is {what} but {other} is {show_value(values[self.other])}; "
                             f"set {self.other}: {self.value} or remove {self.key}")
        return values

    def schema(self):
        unset = AUTO if self.unset is None else self.unset
        return {"if": {"required": [self.key], "properties": {self.key: {"not": {"const": unset}}}},
                "then": {"required": [self.other], "properties": {self.other: {"const": self.value}}}}


@dataclass(frozen=True)
class LengthEquals:
    """A list key may be set only with an int key, and must then have as many items as it says."""

    key: str
    count: str
    on_invalid: ClassVar = False

    @property
    def keys(self):
        return (self.key, self.count)

    def apply(self, values, path, ctx):
        items, count = values[self.key], values[self.count]
        if items is not None and count is None:
            ctx.problem(join_path(path, self.key),
                        f"conflicting options: {len(items)} {self.key} given but {join_path(path, self.count)} is auto "
                        f"(the number is chosen during the run); set {self.count}: {len(items)} or remove "
                        f"{self.key}")
        elif items is not None and len(items) != count:
            ctx.problem(join_path(path, self.key),
                        f"conflicting options: {len(items)} {self.key} given but {join_path(path, self.count)} is "
                        f"{count}; give one per {self.count} or remove {self.key}")
        return values

    def schema(self):  # the count itself is not expressible in JSON Schema
        return {"if": {"required": [self.key], "properties": {self.key: {"not": {"const": AUTO}}}},
                "then": {"required": [self.count], "properties": {self.count: {"not": {"const": AUTO}}}}}



@dataclass(frozen=True)
class NotBoth:
    """Two keys exclude each other: at most one may be given (not auto)."""

    first: str
    second: str
    on_invalid: ClassVar = False

    @property
    def keys(self):
        return (self.first, self.second)

    def apply(self, values, path, ctx):
        if values[self.first] is not None and values[self.second] is not None:
            first, second = join_path(path, self.first), join_path(path, self.second)
            ctx.problem(first, f"conflicting options: {first} and {second} are both given; give one of them")
        return values

    def schema(self):
        return {"not": {"allOf": [{"required": [k], "properties": {k: {"not": {"const": AUTO}}}}
                                  for k in (self.first, self.second)]}}


def _has_magic(text):
    return re.search(r"[*?[]", text) is not None


def _glob(path, base_dir):
    """Sorted absolute paths matching ``path`` (a glob below ``base_dir``, whose own name is taken literally)."""
    rel = path.relative_to(base_dir) if path.is_relative_to(base_dir) else path
    return sorted(Path(os.path.normpath(base_dir / p)) for p in glob.glob(str(rel), root_dir=base_dir, recursive=True))


def match_images(path, base_dir):
    """Readable image files that a path or glob names, sorted."""
    rel = path.relative_to(base_dir) if path.is_relative_to(base_dir) else path
    if not _has_magic(str(rel)):
        return [path]
    return [p for p in _glob(path, base_dir) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]


# ---------------------------------------------------------------------------------------------------------
# The walker


class _Invalid:
    """Marker for a value that failed validation (its problem is already recorded)."""


INVALID = _Invalid()


@dataclass
class Context:
    base_dir: Path
    problems: list = field(default_factory=list)

    def problem(self, path, message):
        self.problems.append((path, message))


def join_path(path, key):
    return f"{path}.{key}" if path else str(key)


def show_value(value):
    """A value as the user wrote it in YAML, shortened."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _split_optional(tp):
    """``(inner, True)`` for ``X | None``, else ``(tp, False)``."""
    args = typing.get_args(tp)
    if isinstance(tp, types.UnionType) and type(None) in args:
        rest = tuple(a for a in args if a is not type(None))
        return (rest[0] if len(rest) == 1 else typing.Union[rest]), True
    return tp, False


def _fields(cls):
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls)]


def _allows_auto(tp, meta):
    inner, optional = _split_optional(tp)
    return optional if meta.get("auto") is None else meta["auto"]


def _describe(tp, meta):
    """What a key expects, in words: ``int >= 1 or "auto"``."""
    inner, _ = _split_optional(tp)
    text = _describe_inner(inner, meta)
    return f'{text} or "auto"' if _allows_auto(tp, meta) else text


def _range_words(meta):
    lo, hi, xlo = meta.get("minimum"), meta.get("maximum"), meta.get("exclusive_minimum")
    if lo is not None and hi is not None:
        return f" in [{lo}, {hi}]"
    if xlo is not None:
        return f" > {xlo}"
    if lo is not None:
        return f" >= {lo}"
    return f" <= {hi}" if hi is not None else ""


def _describe_inner(tp, meta):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is bool:
        return "true or false"
    if tp is int:
        return ("odd int" if meta.get("odd") else "int") + _range_words(meta)
    if tp is float:
        return "number" + _range_words(meta)
    if tp is str:
        return "string"
    if tp is Path:
        return "path (a string)"
    if origin is Literal:
        return "one of " + ", ".join(show_value(a) for a in args)
    if dataclasses.is_dataclass(tp):
        return "mapping"
    if origin is tuple and args[-1] is Ellipsis:
        return ("non-empty " if meta.get("min_items") else "") + f"list, each item: {_describe_inner(args[0], meta)}"
    if origin is tuple:
        return f"[low, high], each: {_describe_inner(args[0], meta)}"
    if origin is dict:
        return "mapping"
    words = ["true/false" if a is bool else _describe_inner(a, {})  # a union of scalars
             for a in args if not (a is int and float in args)]
    return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else words[0]


def _convert(tp, value, meta, path, ctx):
    """Check ``value`` (parsed YAML) against a field's type and metadata; return it converted or INVALID."""
    inner, _ = _split_optional(tp)
    if _allows_auto(tp, meta) and value == AUTO:
        return None
    converted = _convert_inner(inner, value, meta, path, ctx)
    if converted is None:  # wrong type: not recorded yet
        ctx.problem(path, f"expected {_describe(tp, meta)}, got {show_value(value)}")
        return INVALID
    return converted


def _convert_inner(tp, value, meta, path, ctx):
    """Converted value, INVALID (problem recorded) or None (wrong type, to be recorded by the caller)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return convert_section(tp, value, path, ctx) if isinstance(value, Mapping) else None
    if origin is tuple:
        return _convert_sequence(tp, value, meta, path, ctx)
    if origin is dict:
        if not isinstance(value, Mapping):
            return None
        out = {}
        for key, item in value.items():
            item_path = join_path(path, key)
            if not isinstance(key, str):
                ctx.problem(item_path, f"keys must be strings, got {show_value(key)}")
                out = INVALID
                continue
            item = _convert(args[1], item, meta, item_path, ctx)
            if out is not INVALID and item is not INVALID:
                out[key] = item
            else:
                out = INVALID
        return out
    if origin is Literal:
        if isinstance(value, str) and value in args:
            return value
        close = difflib.get_close_matches(value, [str(a) for a in args], n=1) if isinstance(value, str) else []
        hint = f'; did you mean "{close[0]}"?' if close else ""
        ctx.problem(path, f"expected {_describe_inner(tp, meta)}, got {show_value(value)}{hint}")
        return INVALID
    if origin in (types.UnionType, typing.Union):  # a union of scalar types, e.g. simulator options
        for member in args:
            if _convert_scalar(member, value, {}, path, ctx) is not None:
                return value
        return None
    return _convert_scalar(tp, value, meta, path, ctx)


def _convert_scalar(tp, value, meta, path, ctx):
    if tp is bool:
        return value if isinstance(value, bool) else None
    if tp is int or tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or (tp is int and isinstance(value, float)):
            return None
        if not math.isfinite(value):
            return None
        value = tp(value)
        lo, hi, xlo = meta.get("minimum"), meta.get("maximum"), meta.get("exclusive_minimum")
        if ((lo is not None and value < lo) or (hi is not None and value > hi) or (xlo is not None and value <= xlo)
                or (meta.get("odd") and value % 2 == 0)):
            ctx.problem(path, f"expected {_describe_inner(tp, meta)}, got {show_value(value)}")
            return INVALID
        return value
    if tp is str or tp is Path:
        if not isinstance(value, str):
            return None
        if meta.get("pattern") and not re.search(meta["pattern"][0], value):
            ctx.problem(path, f"expected {meta['pattern'][1]}, got {show_value(value)}")
            return INVALID
        return value if tp is str else _convert_path(value, meta, path, ctx)
    raise TypeError(f"spec field type {tp!r} is not supported")  # a bug in a section dataclass


def _convert_path(text, meta, path, ctx):
    if not text.strip():
        ctx.problem(path, "expected a path, got an empty string")
        return INVALID
    full = Path(text).expanduser()
    if meta.get("relative"):
        full = Path(os.path.normpath(ctx.base_dir / full))
    where = f"'{text}' (relative to {ctx.base_dir})"
    if meta.get("glob") and _has_magic(text):
        if not match_images(full, ctx.base_dir):
            found = sorted({p.suffix.lower() or "(no suffix)" for p in _glob(full, ctx.base_dir)})
            extra = f"; it matches only {', '.join(found)} files" if found else ""
            ctx.problem(path, f"no file matches {where}{extra}; check the path or the glob "
                              f"(readable: {' '.join(IMAGE_SUFFIXES)})")
            return INVALID
    elif meta.get("glob"):
        if full.is_dir():
            ctx.problem(path, f"{where} is a folder; give a file or a glob such as '{text.rstrip('/')}/*.tif'")
            return INVALID
        if not full.is_file():
            ctx.problem(path, f"no file matches {where}; check the path or the glob")
            return INVALID
        if full.suffix.lower() not in IMAGE_SUFFIXES:
            ctx.problem(path, f"unsupported format '{full.suffix}' of {where}; readable: {' '.join(IMAGE_SUFFIXES)}")
            return INVALID
    elif meta.get("must_exist") and not full.exists():
        ctx.problem(path, f"{where} does not exist; check the path")
        return INVALID
    return full


def _convert_sequence(tp, value, meta, path, ctx):
    if not isinstance(value, list | tuple):
        return None
    args = typing.get_args(tp)
    fixed = args[-1] is not Ellipsis
    if fixed and len(value) != len(args):
        return None
    if meta.get("min_items") and len(value) < meta["min_items"]:
        ctx.problem(path, f"expected {_describe_inner(tp, meta)}, got an empty list")
        return INVALID
    items = []
    for i, item in enumerate(value):
        item_tp = args[i] if fixed else args[0]
        converted = _convert_inner(item_tp, item, meta, f"{path}[{i}]", ctx)
        if converted is None:
            ctx.problem(f"{path}[{i}]", f"expected {_describe_inner(item_tp, meta)}, got {show_value(item)}")
            converted = INVALID
        items.append(converted)
    if any(item is INVALID for item in items):
        return INVALID
    if meta.get("unique") and len(set(items)) != len(items):
        ctx.problem(path, f"items must be distinct, got {show_value(list(value))}")
        return INVALID
    if meta.get("ordered") and list(items) != sorted(items):
        ctx.problem(path, f"expected [low, high] with low <= high, got {show_value(list(value))}")
        return INVALID
    return tuple(items)


def convert_section(cls, data, path, ctx):
    """Build section ``cls`` from a mapping, recording every problem; INVALID if there was any."""
    n_problems = len(ctx.problems)
    fields = _fields(cls)
    extra = next(((f, tp) for f, tp in fields if f.metadata.get("extra")), None)
    known = [f.name for f, _ in fields if not f.metadata.get("extra")]
    values, extras = {}, {}
    for key, value in data.items():
        if not isinstance(key, str):
            ctx.problem(join_path(path, show_value(key)), f"keys must be strings, got {show_value(key)}")
        elif key not in known and extra is not None:
            extras[key] = _convert(typing.get_args(extra[1])[1], value, extra[0].metadata, join_path(path, key), ctx)
        elif key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f'did you mean "{close[0]}"?' if close else "expected one of: " + ", ".join(known)
            ctx.problem(join_path(path, key), f"unknown key; {hint}")
    for f, tp in fields:
        if f.metadata.get("extra"):
            continue
        if f.name in data:
            values[f.name] = _convert(tp, data[f.name], f.metadata, join_path(path, f.name), ctx)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            ctx.problem(join_path(path, f.name), f"required key is missing: {f.metadata['doc']}")
            values[f.name] = INVALID
        else:
            values[f.name] = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    if extra is not None:
        values[extra[0].name] = extras
    for rule in getattr(cls, "_rules", ()):
        if rule.on_invalid or all(values[name] is not INVALID for name in rule.keys):
            values = rule.apply(values, path, ctx)
    if len(ctx.problems) > n_problems:
        return INVALID
    return cls(**values)


# ---------------------------------------------------------------------------------------------------------
# Writing back and the JSON Schema


def to_plain(value, tp, meta):
    inner, _ = _split_optional(tp)
    if value is None:
        return AUTO
    if dataclasses.is_dataclass(inner):
        out = {}
        for f, ftp in _fields(inner):
            item = getattr(value, f.name)
            if f.metadata.get("extra"):
                out.update({k: to_plain(v, typing.get_args(ftp)[1], f.metadata) for k, v in item.items()})
            elif item is not None or _allows_auto(ftp, f.metadata):
                out[f.name] = to_plain(item, ftp, f.metadata)
        return out
    if isinstance(value, tuple):
        return [to_plain(v, typing.get_args(inner)[0], meta) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v, typing.get_args(inner)[1], meta) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def _schema_for(tp, meta, defs):
    inner, _ = _split_optional(tp)
    schema = _schema_inner(inner, meta, defs)
    if _allows_auto(tp, meta):
        schema = {"anyOf": [schema, {"const": AUTO}]}
    return schema


def _schema_inner(tp, meta, defs):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if tp.__name__ not in defs:
            defs[tp.__name__] = {}  # placeholder against recursion
            defs[tp.__name__] = section_schema(tp, defs)
        return {"$ref": f"#/$defs/{tp.__name__}"}
    if origin is Literal:
        return {"type": "string", "enum": list(args)}
    if origin is tuple:
        schema = {"type": "array"}
        if args[-1] is Ellipsis:
            schema["items"] = _schema_inner(args[0], meta, defs)
            if meta.get("min_items"):
                schema["minItems"] = meta["min_items"]
            if meta.get("unique"):
                schema["uniqueItems"] = True
        else:
            schema |= {"prefixItems": [_schema_inner(a, meta, defs) for a in args], "items": False,
                       "minItems": len(args), "maxItems": len(args)}
        return schema
    if origin is dict:
        return {"type": "object", "additionalProperties": _schema_for(args[1], meta, defs)}
    if origin in (types.UnionType, typing.Union):
        return {"type": sorted({_schema_inner(a, {}, defs)["type"] for a in args})}
    schema = {"type": {bool: "boolean", int: "integer", float: "number", str: "string", Path: "string"}[tp]}
    for key, word in (("minimum", "minimum"), ("maximum", "maximum"), ("exclusive_minimum", "exclusiveMinimum"),
                      ("pattern", "pattern")):
        if meta.get(key) is not None and (tp in (int, float) or key == "pattern"):
            schema[word] = meta[key][0] if key == "pattern" else meta[key]
    if meta.get("odd") and tp is int:
        schema["not"] = {"multipleOf": 2}
    return schema


def section_schema(cls, defs):
    props, required, additional = {}, [], False
    for f, tp in _fields(cls):
        if f.metadata.get("extra"):
            additional = _schema_for(typing.get_args(tp)[1], f.metadata, defs)
            continue
        prop = {"title": f.name, "description": f.metadata["doc"], **_schema_for(tp, f.metadata, defs)}
        if f.default is not dataclasses.MISSING:
            if f.default is not None or _allows_auto(tp, f.metadata):
                prop["default"] = to_plain(f.default, tp, f.metadata)
        elif f.default_factory is not dataclasses.MISSING:
            prop["default"] = to_plain(f.default_factory(), tp, f.metadata)
        else:
            required.append(f.name)
        props[f.name] = prop
    schema = {"title": cls.__name__, "description": cls.__doc__, "type": "object", "properties": props,
              "additionalProperties": additional}
    if required:
        schema["required"] = required
    rules = [r.schema() for r in getattr(cls, "_rules", ()) if r.schema() is not None]
    if len(rules) == 1:
        schema |= rules[0]
    elif rules:
        schema["allOf"] = rules
    return schema


# ---------------------------------------------------------------------------------------------------------
# Loading


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that rejects duplicate keys instead of keeping the last."""


def _construct_mapping(loader, node):
    seen = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key_node.value!r}", key_node.start_mark)
            seen.add(key_node.value)
    return loader.construct_mapping(node)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
