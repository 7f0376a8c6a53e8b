"""Config validation, before anything is built.

Registry-built sections (``{"type", "args"}``) are checked against the factory's signature and
type hints; plain sections against the dataclasses in ``utils.config.options``. The registries
are filled by the component packages, which ``trainer/build.py`` imports; validating before
that is a programming error. Every problem is a :class:`ConfigError` whose one-line message
names the file that set the key, the dotted key path and what was expected.
"""
from __future__ import annotations

import inspect
import json
import math
import types
import typing
from dataclasses import fields, is_dataclass
from typing import Any, Callable

from utils.config.options import Bounds, DistilOptions, ExpertsOptions, NonEmpty, Seed, TrainerOptions
from utils.config.resolved import Config
from utils.registry import (
    DATASETS,
    LOSSES,
    METRICS,
    MODELS,
    OPTIMIZERS,
    SCHEDULERS,
    VISUALIZERS,
    Registry,
    arguments_of,
)

# Sections built from a registry, and the constructor arguments the program injects.
BUILT_SECTIONS: dict[str, tuple[Registry, set[str]]] = {
    "arch": (MODELS, {"feat_dims", "pooled_experts", "text_dim", "ce_shared_dim", "disable_nan_checks"}),
    "data_loader": (DATASETS, {"experts", "text_feat", "caption_masks", "training_file", "challenge_mode"}),
    "loss": (LOSSES, set()),
    "optimizer": (OPTIMIZERS, {"params"}),
    "lr_scheduler": (SCHEDULERS, {"optimizer"}),
    "visualizer": (VISUALIZERS, set()),
}
REQUIRED_SECTIONS = ("arch", "data_loader", "experts", "loss", "optimizer")
OPTION_SECTIONS: dict[str, type] = {"experts": ExpertsOptions, "trainer": TrainerOptions,
                                    "distil_params": DistilOptions}
SCALARS: dict[str, Any] = {"n_gpu": int, "seed": Seed, "disable_nan_checks": bool,
                           "metrics": list[str], "eval_settings": dict, "name": str, "distil_loss": bool,
                           "caption_masks": str | None, "training_file": str | None, "challenge_mode": bool}


def _describe(hint: Any) -> str:
    if hint is inspect.Parameter.empty or hint is Any:
        return "any value"
    if typing.get_origin(hint) is typing.Annotated:
        base, *marks = typing.get_args(hint)
        bounds = [mark.describe() if isinstance(mark, Bounds) else "non-empty" for mark in marks
                  if isinstance(mark, (Bounds, NonEmpty))]
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
        return _matches(value, base) and all(
            mark.contains(value) if isinstance(mark, Bounds) else value != "" for mark in marks
            if isinstance(mark, (Bounds, NonEmpty)))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:  # NaN and infinity are no setting's meaningful value
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
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
        if config.data.get(key) is None:
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
            raise config.error(f"{key}.type", f"unknown {registry.kind} {json.dumps(kind)}; "
                                              f"expected one of: {', '.join(registry.names())}")
        params = _signature_hints(arguments_of(registry.get(kind)))
        for name, bounds in registry.bounds(kind).items():
            if name in params:
                params[name] = (typing.Annotated[params[name][0], bounds], params[name][1])
        check_args(config, f"{key}.args", section.get("args", {}), params, injected)
