"""Config plumbing shared by every stage: presets, strict dict/JSON round trips, run directories.

Each stage keeps its frozen dataclass next to its code; this module composes the presets
(``tiny`` for tests, ``cpu`` for a real run on 2 cores, ``paper`` for a GPU) and converts configs
to and from JSON, rejecting unknown fields with the field's full name.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import TypeVar

from dmpc_jax.envs.config import (
    EnvConfig,
)

T = TypeVar("T")
PRESETS = ("tiny", "cpu", "paper")


class ConfigError(ValueError):
    """A config file or override that does not match the config classes."""


def to_dict(cfg) -> dict:
    """A JSON-ready dict of a (nested) frozen dataclass config."""

    def conv(x):
        if dataclasses.is_dataclass(x):
            return {f.name: conv(getattr(x, f.name)) for f in dataclasses.fields(x)}
        if isinstance(x, tuple):
            return [conv(v) for v in x]
        return x

    return conv(cfg)


def from_dict(cls: type[T], data: dict, path: str = "") -> T:
    """Build ``cls`` from ``data``; an unknown or mistyped field raises ``ConfigError`` naming it."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"{path}." if path else ""
        raise ConfigError(
            f"unknown config field {where}{unknown[0]} in {cls.__name__}; known fields: {sorted(names)}"
        )
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(hints[name], value, f"{path}.{name}" if path else name)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{path or cls.__name__}: {e}") from e


def _convert(tp, value, path):
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, path) for v in value)
        if len(args) != len(value):
            raise ConfigError(f"{path}: expected {len(args)} values, got {len(value)}")
        return tuple(_convert(a, v, path) for a, v in zip(args, value, strict=True))
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{path}: expected one of {typing.get_args(tp)}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is int or tp is bool or tp is str:
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise ConfigError(f"{path}: expected {tp.__name__}, got {value!r}")
        return value
    return value


def apply_overrides(spec, overrides: tuple[str, ...] | list[str]):
    """``["weights.energy=0.05", "base_height_target=0.25", 'boxes=[{"field": "qdot", "hi": 1}]']``
    applied to a spec (a ``TaskSpec``, or any frozen config dataclass such as ``EnvConfig``):
    dotted field paths, values parsed as JSON (bare words as strings), and the result validated
    like a config file."""
    data = to_dict(spec)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form field.path=value")
        path, raw = item.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node, keys = data, path.strip().split(".")
        for k in keys[:-1]:
            if not isinstance(node.get(k), dict):
                raise ConfigError(f"override {item!r}: {k!r} is not a group of fields")
            node = node[k]
        if keys[-1] not in node:
            raise ConfigError(f"override {item!r}: unknown field {path!r}")
        node[keys[-1]] = value
    return from_dict(type(spec), data)


def save_json(cfg, path: Path) -> None:
    Path(path).write_text(json.dumps(to_dict(cfg), indent=2) + "\n")


def load_json(cls: type[T], path: Path) -> T:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON: {e}") from e
    return from_dict(cls, data)


def env_preset(name: str) -> EnvConfig:
    """The joystick env of a preset. ``tiny`` keeps every feature on but short episodes."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {PRESETS}")
    if name == "tiny":
        return EnvConfig(episode_length_s=2.0)
    return EnvConfig()


def resolve_run_dir(root: Path, name: str, *, resume: bool, overwrite: bool) -> Path:
    """The run directory ``root/name``: refuses to clobber an existing run without a flag."""
    run = Path(root) / name
    if run.exists() and any(run.iterdir()):
        if overwrite:
            import shutil

            shutil.rmtree(run)
        elif not resume:
            raise FileExistsError(
                f"run directory {run} exists; pass --resume to continue it or --overwrite to replace it"
            )
    elif resume:
        raise FileNotFoundError(f"--resume given but run directory {run} does not exist")
    run.mkdir(parents=True, exist_ok=True)
    return run


def prepare_run(
    root: Path, name: str, cfg, *, resume: bool, overwrite: bool, extendable: tuple[str, ...] = ()
) -> Path:
    """The run directory for ``cfg``: new runs get ``config.json``; a resumed run must have been
    started with the same config (the error names the top-level fields that differ), except for
    the ``extendable`` fields (e.g. the step budget and its learning-rate tail), which a resume may
    change: the new values are written to ``config.json`` and the old file is kept beside it as
    ``config.<n>.json``. Fields added to the config class since the run started compare at their
    defaults."""
    run = resolve_run_dir(root, name, resume=resume, overwrite=overwrite)
    path, new = run / "config.json", to_dict(cfg)
    if resume and path.exists():
        saved = to_dict(from_dict(type(cfg), json.loads(path.read_text())))
        diff = sorted(k for k in set(saved) | set(new) if saved.get(k) != new.get(k))
        fixed = [k for k in diff if k not in extendable]
        if fixed:
            raise ConfigError(
                f"--resume with a config that differs from {path} in {fixed}; "
                "resume with the same preset and overrides"
                + (f" (a resume may change only {list(extendable)})" if extendable else "")
            )
        if diff:
            n = 1
            while (run / f"config.{n}.json").exists():
                n += 1
            path.rename(run / f"config.{n}.json")
            path.write_text(json.dumps(new, indent=2) + "\n")
            print(f"resume: {diff} changed; the previous config is {run / f'config.{n}.json'}")
    else:
        path.write_text(json.dumps(new, indent=2) + "\n")
    return run
