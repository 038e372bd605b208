"""Dataclass configs from YAML, with dotted `--set key=value` overrides and one clear error per mistake.

    config = load(PretrainConfig, "recipe.yaml", ["optim.lr=3e-4", "data.batch_size=16"])

Values are checked against the dataclass field types (int, float, bool, str, tuples, lists, `X | None`, nested
dataclasses); an unknown key names the valid ones, a wrong type names the key, the expected type and the value.
`null` turns a setting off: None where the type allows it, empty for text and lists (see `turned_off`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Callable, TypeVar

import yaml

from cpc.errors import UserError

T = TypeVar("T")


class ConfigError(UserError, ValueError):
    """A config key or value the user can fix; the message names it."""


def from_dict(cls: type[T], data: dict[str, Any], base: T | None = None, where: str = "") -> T:
    """`base` (or cls()) with the fields in `data` replaced, recursively, after type checks. Without `base`, `data`
    is read as a stored record: a key it lacks takes the value the class's `ABSENT_MEANS` gives it (what records
    written before a default changed meant), else the class default."""
    config = base if base is not None else cls()
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    changes = {} if base is not None else {k: v for k, v in getattr(cls, "ABSENT_MEANS", {}).items() if k not in data}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in names:
            raise ConfigError(f"unknown config key {path!r}; valid keys here: {', '.join(names)}")
        changes[key] = convert(hints[key], value, path, getattr(config, key))
    return dataclasses.replace(config, **changes)


def convert(kind: Any, value: Any, path: str, current: Any = None) -> Any:
    """`value` checked (and, for tuples and nested dataclasses, converted) against the type `kind`."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return convert(option, value, path, current if isinstance(current, _runtime(option)) else None)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(f"{path}: {value!r} is not {_name(kind)}")
    if value is None and kind is not Any:
        return turned_off(kind, path)
    if dataclasses.is_dataclass(kind):
        return from_dict(kind, value, current if dataclasses.is_dataclass(current) else None, path)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected {_name(kind)}, got {value!r}")
        item = args[0] if args else Any
        items = [convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if kind is Any:
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is float and isinstance(value, str):
        try:
            return float(value)  # YAML reads 3e-4 (no dot) as a string
        except ValueError:
            pass
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{path}: expected {_name(kind)}, got {value!r} ({type(value).__name__})")
    return value


def turned_off(kind: Any, path: str) -> Any:
    """What null (`--set key=null`, or `key:` left empty in YAML) means for a setting whose type has no None:
    empty for text and lists (empty is "none": no validation shards, no mixture); refused for anything else."""
    origin = typing.get_origin(kind)
    if kind is str:
        return ""
    if origin in (list, tuple):
        return [] if origin is list else ()
    raise ConfigError(f"{path}: expected {_name(kind)}, got null (null turns off only optional settings: text, "
                      "lists and the ones that take null)")


def _runtime(kind: Any) -> type | tuple:
    origin = typing.get_origin(kind)
    return origin if origin is not None else (kind if isinstance(kind, type) else object)


def _name(kind: Any) -> str:
    return getattr(kind, "__name__", None) or str(kind).replace("typing.", "")


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """["optim.lr=3e-4", "data.shards=a.tar"] -> {"optim": {"lr": 0.0003}, "data": {"shards": "a.tar"}}."""
    tree: dict[str, Any] = {}
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set takes key=value (dotted keys for nested fields); got {override!r}")
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        try:
            node[leaf] = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError as error:
            problem = getattr(error, "problem", None) or type(error).__name__
            raise ConfigError(f"--set {override}: the value is not valid YAML ({problem}): quote a string, e.g. "
                              f"--set '{key}=\"{raw}\"'") from None
    return tree


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A recipe file's mapping of keys; a missing or empty file, broken YAML (named by line and column) or a
    top level that is not a mapping is a ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist: check the path (e.g. recipes/demo/cpc.yaml)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.MarkedYAMLError as error:
        at = lambda mark: f"line {mark.line + 1}, column {mark.column + 1}"
        mark = error.problem_mark or error.context_mark
        what = error.problem or error.context
        if error.context and error.context_mark and error.problem_mark:  # e.g. a list opened there, never closed
            what += f" {error.context} opened at {at(error.context_mark)}"
        where = f"{path}, {at(mark)}" if mark else str(path)
        raise ConfigError(f"broken YAML: {what} ({where}): fix the syntax there") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"broken YAML: {error} ({path}): fix the syntax") from None
    if data is None:
        raise ConfigError(f"the config file is empty ({path}): write its settings as a mapping, e.g. `method: cpc`")
    if not isinstance(data, dict):
        raise ConfigError(f"the config file's top level is a {type(data).__name__}, not a mapping of keys ({path}): "
                          "write it as `key: value` lines, e.g. `method: cpc`")
    return data


def load(cls: type[T], path: str | Path | None = None, overrides: list[str] = ()) -> T:
    """cls() updated by the YAML file, then by the overrides."""
    data = read_yaml(path) if path is not None else {}
    return from_dict(cls, merge(data, parse_overrides(list(overrides))))


def to_dict(config: Any) -> dict[str, Any]:
    """Plain types only (tuples -> lists), so it round-trips through YAML and checkpoints."""
    return yaml.safe_load(yaml.safe_dump(_plain(dataclasses.asdict(config))))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    flat = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        flat.update(flatten(value, path + ".") if isinstance(value, dict) else {path: value})
    return flat


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(dotted key, old value, new value) for every setting that differs between two config trees."""
    a, b = flatten(old), flatten(new)
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


class Rules:
    """Checks over one section of a config (`prefix`, e.g. "cpc." or "" for the whole); a failure is a ConfigError
    `what (where it was set): how to fix it`, naming each key in full. `origin(key)` says where a value was set."""

    def __init__(self, root: Any, origin: Callable[[str], str] = lambda key: "the config", prefix: str = ""):
        self.root, self.origin, self.prefix = root, origin, prefix

    def within(self, section: str) -> "Rules":
        """The same checks scoped to a sub-section: `rules.within("model").value("ar.dim")` reads model.ar.dim."""
        return Rules(self.root, self.origin, f"{self.prefix}{section}.")

    def key(self, name: str) -> str:
        """The full dotted key of `name` in this section."""
        return self.prefix + name

    def value(self, name: str) -> Any:
        node = self.root
        for part in self.key(name).split("."):
            node = getattr(node, part)
        return node

    def fail(self, keys: list[str], what: str, fix: str) -> None:
        """Raise for the full dotted `keys` (where each was set is named once)."""
        where = ", ".join(dict.fromkeys(self.origin(k) for k in keys))
        raise ConfigError(f"{what} ({where}): {fix}")

    def at_least(self, low: float, *names: str) -> None:
        for name in names:
            value = self.value(name)
            if value is not None and not value >= low:
                self.fail([self.key(name)], f"{self.key(name)} is {value!r}", f"it must be >= {low}")

    def positive(self, *names: str) -> None:
        for name in names:
            value = self.value(name)
            if value is not None and not value > 0:
                self.fail([self.key(name)], f"{self.key(name)} is {value!r}", "it must be > 0")

    def one_of(self, name: str, choices) -> None:
        value = self.value(name)
        if value not in choices:
            self.fail([self.key(name)], f"unknown {self.key(name)} {value!r}",
                      f"choose one of {', '.join(map(str, choices))}")

    def raised(self, name: str, error: ValueError, fix: str) -> None:
        """Report an owner's ValueError `what: fix` as the failure of setting `name`."""
        what, _, given = str(error).rpartition(": ")
        self.fail([self.key(name)], what or str(error), given if what else fix)
