"""YAML + dataclass configuration with ``key=value`` command-line overrides.

Usage::

    cfg = load_config(TrainConfig, "configs/baseline.yaml", ["optim.lr=3e-4", "epochs=20"])
    save_config(cfg, run_dir / "config.yaml")   # the resolved config, next to the run

Values on the command line are parsed as YAML scalars (``3e-4``, ``true``, ``[1, 2]``), then
coerced to the dataclass field's type.  Unknown keys are an error that lists the valid ones, so a
typo never silently trains with defaults.
"""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import UserError

__all__ = ["load_config", "save_config", "apply_overrides", "from_dict", "to_dict", "ConfigError"]

T = TypeVar("T")


class ConfigError(UserError, ValueError):
    """A config file or override is invalid; the message names the key and the fix.

    A UserError, so the CLI prints it on one line without a traceback."""


def to_dict(obj) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _coerce(tp, value, key: str):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if value is None:
        return None
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        non_none = [a for a in args if a is not type(None)]
        last_err = None
        for a in non_none:
            try:
                return _coerce(a, value, key)
            except ConfigError as exc:
                last_err = exc
        raise last_err or ConfigError(f"{key}: cannot use {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, prefix=key + ".")
    if origin in (list, tuple, typing.Sequence) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            value = [value]
        inner = args[0] if args else Any
        seq = [_coerce(inner, v, key) for v in value]
        return tuple(seq) if (origin is tuple or tp is tuple) else seq
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        if len(args) == 2:
            return {k: _coerce(args[1], v, f"{key}.{k}") for k, v in value.items()}
        return dict(value)
    if tp is Any or tp is typing.Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if tp in (int, float):
        try:
            if tp is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return tp(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected {tp.__name__}, got {value!r}") from None
    if tp is str:
        return str(value)
    if tp is Path:
        return Path(value)
    return value


def from_dict(cls: type[T], data: dict, prefix: str = "") -> T:
    if data is None:
        data = {}
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(prefix + u for u in sorted(unknown))}; "
                          f"valid keys here: {', '.join(sorted(names))}")
    kwargs = {k: _coerce(hints[k], v, prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def _list_index(node: list, part: str, key: str) -> int:
    """``part`` as an index into ``node`` (``peers.1.source.path=...``), or a clear error."""
    try:
        i = int(part)
    except ValueError:
        raise ConfigError(f"override {key}: {part!r} is inside a list; use its index 0..{len(node) - 1}") from None
    if not -len(node) <= i < len(node):
        raise ConfigError(f"override {key}: index {i} is out of range (the list has {len(node)} items)")
    return i


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``a.b.c=value`` strings to a nested dict (values parsed as YAML).

    A numeric part indexes a list, e.g. ``peers.1.source.path=best.pt`` (lists keep their length:
    replace a whole list with ``key=[...]``).
    """
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value (e.g. optim.lr=3e-4)")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            if isinstance(node, list):
                node = node[_list_index(node, p, key)]
                if not isinstance(node, (dict, list)):
                    raise ConfigError(f"override {key}: item {p} is not a section")
                continue
            if not isinstance(node.get(p), (dict, list)):
                node[p] = {} if node.get(p) is None else node[p]
                if not isinstance(node[p], dict):
                    raise ConfigError(f"override {key}: {p} is not a section")
            node = node[p]
        if isinstance(node, list):
            node[_list_index(node, parts[-1], key)] = value
        else:
            node[parts[-1]] = value
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Defaults of ``cls`` <- YAML file <- overrides, validated and typed."""
    base = to_dict(cls())
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        _deep_update(base, loaded)
    apply_overrides(base, overrides or [])
    return from_dict(cls, base)


def _deep_update(dst: dict, src: dict) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _deep_update(dst[k], v)
        else:
            dst[k] = v


def save_config(cfg, path: str | Path) -> None:
    from .metadata import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
