"""Configs: ``inherit_from`` resolution, ``--set`` overrides, validation, saving.

Configs are JSON (``.json``) or YAML (``.yaml``/``.yml``, the same keys). A config file may name parents with ``"inherit_from"`` (a path, a comma-separated list of
paths, or a JSON list; relative to the working directory, else to the file's own folder).
Parents are merged left to right, then the child: nested objects merge key by key and the
child wins, except that a section naming another ``type`` than its parent's replaces it whole
(the parent's ``args`` belong to another factory); every other value, lists included, is
replaced whole. A config written by the
original Collaborative Experts trainer is translated on reading (``utils.original.config``).

Validation runs before anything is built. Registry-built sections (``{"type", "args"}``) are
checked against the factory's signature and type hints; plain sections against the dataclasses
in ``utils.config.options``. The registries are filled by the component packages, which
``trainer/build.py`` imports; validating before that is a programming error. Every problem is a :class:`ConfigError` whose one-line message names the
file that set the key, the dotted key path and what was expected.
"""
from __future__ import annotations

import copy
import inspect
import json
import types
import typing
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from utils.atomic import write_text_atomic
from utils.errors import ConfigError
from utils.config.options import AtLeast, DistilOptions, ExpertsOptions, TrainerOptions
from utils.original.config import is_original_config, translate_original
from utils.registry import (DATASETS, LOSSES, METRICS, MODELS, OPTIMIZERS, SCHEDULERS, VISUALIZERS, Registry,
                            arguments_of)

YAML_SUFFIXES = (".yaml", ".yml")
MAX_INHERIT_DEPTH = 32

# Sections built from a registry, and the constructor arguments the program injects.
BUILT_SECTIONS: dict[str, tuple[Registry, set[str]]] = {
    "arch": (MODELS, {"feat_dims", "pooled_experts", "text_dim", "ce_shared_dim", "disable_nan_checks"}),
    "data_loader": (DATASETS, {"experts", "text_feat", "caption_masks", "training_file"}),
    "loss": (LOSSES, set()),
    "optimizer": (OPTIMIZERS, {"params"}),
    "lr_scheduler": (SCHEDULERS, {"optimizer"}),
    "visualizer": (VISUALIZERS, set()),
}
REQUIRED_SECTIONS = ("arch", "data_loader", "experts", "loss", "optimizer")
OPTION_SECTIONS: dict[str, type] = {"experts": ExpertsOptions, "trainer": TrainerOptions,
                                    "distil_params": DistilOptions}
SCALARS: dict[str, Any] = {"n_gpu": int, "seed": int, "disable_nan_checks": bool,
                           "metrics": list[str], "eval_settings": dict, "name": str, "distil_loss": bool,
                           "caption_masks": str | None, "training_file": str | None}


@dataclass
class Config:
    """A resolved config: the merged dict, where each key came from, and the top file."""

    data: dict
    origin: dict[str, str]
    path: Path

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def where(self, keypath: str) -> str:
        """The file (or ``--set``) that gave ``keypath`` or its nearest set ancestor."""
        parts = keypath.split(".")
        for n in range(len(parts), 0, -1):
            found = self.origin.get(".".join(parts[:n]))
            if found:
                return found
        return str(self.path)

    def error(self, keypath: str, message: str) -> ConfigError:
        return ConfigError(f"{self.where(keypath)}: {keypath}: {message}")

    def save(self, path: Path) -> None:
        """Write the resolved config as JSON (atomically)."""
        write_text_atomic(path, json.dumps(self.data, indent=2, sort_keys=False) + "\n")


def _parse_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: malformed YAML{where}: {getattr(exc, 'problem', None) or exc}") from None


def read_json(path: Path) -> dict:
    """Read one JSON (or, by suffix, YAML) object from ``path`` or raise a one-line ConfigError."""
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = _parse_yaml(path) if path.suffix in YAML_SUFFIXES else json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object at the top level, got {type(data).__name__}")
    return data


def _parents(data: dict, path: Path) -> list[Path]:
    spec = data.get("inherit_from", [])
    if isinstance(spec, str):
        spec = [s.strip() for s in spec.split(",") if s.strip()]
    if not isinstance(spec, list) or not all(isinstance(s, str) for s in spec):
        raise ConfigError(f"{path}: inherit_from: expected a path, a comma-separated string or a list of paths")
    found = []
    for name in spec:
        candidates = [Path(name), path.parent / name]
        hit = next((c for c in candidates if c.is_file()), None)
        if hit is None:
            raise ConfigError(f"{path}: inherit_from: parent config '{name}' not found")
        found.append(hit)
    return found


def _retyped(base: dict, child: dict) -> bool:
    """A registry-built section whose child names another ``type``: the parent's ``args``
    belong to another factory, so the child's section replaces it whole."""
    return "type" in child and "type" in base and child["type"] != base["type"]


def _merge(base: dict, child: dict, origin: dict[str, str], source: str, prefix: str = "") -> None:
    for key, value in child.items():
        keypath = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(base.get(key), dict) and not _retyped(base[key], value):
            origin.setdefault(keypath, source)
            _merge(base[key], value, origin, source, keypath + ".")
        else:
            base[key] = copy.deepcopy(value)
            for stale in [k for k in origin if k.startswith(keypath + ".")]:
                del origin[stale]
            origin[keypath] = source
            if isinstance(value, dict):
                _mark(value, origin, source, keypath + ".")


def _mark(tree: dict, origin: dict[str, str], source: str, prefix: str) -> None:
    for key, value in tree.items():
        origin[f"{prefix}{key}"] = source
        if isinstance(value, dict):
            _mark(value, origin, source, f"{prefix}{key}.")


def resolve(path: Path, _chain: tuple[Path, ...] = ()) -> tuple[dict, dict[str, str]]:
    """Load ``path`` with all its ancestors merged; returns (config, origin of each key)."""
    path = Path(path)
    if path.resolve() in _chain:
        raise ConfigError(f"{path}: inherit_from: inheritance cycle through this file")
    if len(_chain) >= MAX_INHERIT_DEPTH:
        raise ConfigError(f"{path}: inherit_from: more than {MAX_INHERIT_DEPTH} levels of parents")
    data = read_json(path)
    merged: dict = {}
    origin: dict[str, str] = {}
    if is_original_config(data):
        return translate_original(data, origin, path), origin
    for parent in _parents(data, path):
        parent_data, parent_origin = resolve(parent, _chain + (path.resolve(),))
        _merge(merged, parent_data, origin, "")
        origin.update({k: v for k, v in parent_origin.items()})
    own = {k: v for k, v in data.items() if k != "inherit_from"}
    _merge(merged, own, origin, str(path))
    return merged, origin


def parse_override(text: str) -> tuple[str, Any]:
    """``"a.b=3"`` -> ("a.b", 3); the value is JSON if it parses, else the raw string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text}: expected KEY.PATH=VALUE")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def apply_overrides(config: Config, overrides: list[str]) -> None:
    """Set nested keys from ``KEY.PATH=VALUE`` strings (``--set``)."""
    for text in overrides:
        keypath, value = parse_override(text)
        node = config.data
        parts = keypath.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text}: {'.'.join(parts[:i + 1])} is not an object")
            node = child
        node[parts[-1]] = value
        for stale in [k for k in config.origin if k.startswith(keypath + ".")]:
            del config.origin[stale]
        config.origin[keypath] = "--set"


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Resolve, override and validate a config file."""
    data, origin = resolve(Path(path))
    config = Config(data, origin, Path(path))
    apply_overrides(config, list(overrides))
    validate(config)
    return config


def with_eval_settings(config: Config) -> Config:
    """A copy of ``config`` with its ``eval_settings`` merged in (as the original test mode)."""
    data = copy.deepcopy(config.data)
    origin = dict(config.origin)
    _merge(data, data.pop("eval_settings", {}) or {}, origin, config.where("eval_settings"))
    merged = Config(data, origin, config.path)
    validate(merged)
    return merged


# ----------------------------------------------------------------------------- validation


def _describe(hint: Any) -> str:
    if hint is inspect.Parameter.empty or hint is Any:
        return "any value"
    if typing.get_origin(hint) is typing.Annotated:
        base, *marks = typing.get_args(hint)
        bounds = [f">= {mark.minimum}" for mark in marks if isinstance(mark, AtLeast)]
        return " ".join([_describe(base), *bounds])
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + ", ".join(json.dumps(value) for value in typing.get_args(hint))
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _unbounded(hint: Any, value: Any) -> Any:
    """``hint`` without its bounds when ``value`` is not even of its base type (the clearer message)."""
    if typing.get_origin(hint) is typing.Annotated and not _matches(value, typing.get_args(hint)[0]):
        return typing.get_args(hint)[0]
    return hint


def _matches(value: Any, hint: Any) -> bool:
    if hint is inspect.Parameter.empty or hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        base, *marks = typing.get_args(hint)
        return _matches(value, base) and all(value >= mark.minimum for mark in marks if isinstance(mark, AtLeast))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is bool:
        return isinstance(value, bool) or (isinstance(value, int) and value in (0, 1))
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if origin is dict:
        key_hint, val_hint = typing.get_args(hint) or (Any, Any)
        return isinstance(value, dict) and all(_matches(v, val_hint) for v in value.values())
    if origin is tuple:
        return isinstance(value, (list, tuple))
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _signature_hints(factory: Callable) -> dict[str, tuple[Any, bool]]:
    """Parameter name -> (type hint, required) for a class or function."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception:
        hints = {}
    params = {}
    for name, param in inspect.signature(factory).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or name == "self":
            continue
        params[name] = (hints.get(name, inspect.Parameter.empty), param.default is inspect.Parameter.empty)
    return params


def check_args(config: Config, keypath: str, args: Any, params: dict[str, tuple[Any, bool]],
               injected: set[str] = frozenset(), check_required: bool = True) -> None:
    """Check a dict of keyword arguments against (hint, required) parameters."""
    if not isinstance(args, dict):
        raise config.error(keypath, f"expected an object, got {json.dumps(args)}")
    for key, value in args.items():
        if key in injected:
            raise config.error(f"{keypath}.{key}", "is set by the program and must not appear in the config")
        if key not in params:
            allowed = ", ".join(sorted(set(params) - injected)) or "none"
            raise config.error(f"{keypath}.{key}", f"unknown key; expected one of: {allowed}")
        hint = params[key][0]
        if not _matches(value, hint):
            raise config.error(f"{keypath}.{key}", f"expected {_describe(_unbounded(hint, value))}, "
                                                   f"got {json.dumps(value)}")
    if check_required:
        for key, (hint, required) in params.items():
            if required and key not in injected and key not in args:
                raise config.error(f"{keypath}.{key}", f"missing required key ({_describe(hint)})")


def _dataclass_params(cls: type) -> dict[str, tuple[Any, bool]]:
    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.name: (hints[f.name], False) for f in fields(cls)}


def validate(config: Config) -> None:
    """Raise ConfigError for the first unknown key, wrong type or bad name in ``config``."""
    for registry, _ in BUILT_SECTIONS.values():
        if not registry.names():
            raise RuntimeError(f"the {registry.kind} registry is empty: import trainer.build first")
    for key in REQUIRED_SECTIONS:
        if key not in config.data:
            raise config.error(key, "missing required section; a complete config has "
                                    f"{', '.join(REQUIRED_SECTIONS)} (inherit them from a parent config)")
    known = set(BUILT_SECTIONS) | set(OPTION_SECTIONS) | set(SCALARS)
    for key, value in config.data.items():
        if key not in known:
            raise config.error(key, f"unknown key; expected one of: {', '.join(sorted(known))}")
        if key in SCALARS and not _matches(value, SCALARS[key]):
            raise config.error(key, f"expected {_describe(SCALARS[key])}, got {json.dumps(value)}")
    for name in config.data.get("metrics", []):
        if name not in METRICS:
            raise config.error("metrics", f"unknown metric '{name}'; expected some of: {', '.join(METRICS.names())}")
    for key, cls in OPTION_SECTIONS.items():
        if key in config.data:
            assert is_dataclass(cls)
            check_args(config, key, config.data[key], _dataclass_params(cls))
    for key, (registry, injected) in BUILT_SECTIONS.items():
        section = config.data.get(key)
        if section is None:
            continue
        if not isinstance(section, dict):
            raise config.error(key, f"expected an object with 'type' and 'args', got {json.dumps(section)}")
        extra = set(section) - {"type", "args"}
        if extra:
            raise config.error(f"{key}.{sorted(extra)[0]}", "unknown key; expected 'type' and 'args'")
        kind = section.get("type")
        if kind not in registry:
            raise config.error(f"{key}.type", f"unknown {registry.kind} {json.dumps(kind)}; expected one of: {', '.join(registry.names())}")
        check_args(config, f"{key}.args", section.get("args", {}), _signature_hints(arguments_of(registry.get(kind))),
                   injected)


def from_original_dict(data: dict, path: str | Path) -> Config:
    """A validated Config from an original config dict (e.g. the one inside an original checkpoint)."""
    origin: dict[str, str] = {}
    config = Config(translate_original(data, origin, path), origin, Path(path))
    validate(config)
    return config


def config_of_checkpoint(state: dict, path: Path) -> Config:
    """The config stored in a checkpoint ``state`` read from ``path`` (an original CE config is
    translated); ConfigError when it holds none."""
    if not state.get("config"):
        raise ConfigError(f"{path}: the checkpoint holds no config; give --config")
    if is_original_config(state["config"]):
        return from_original_dict(state["config"], path)
    return Config(state["config"], {}, path)
