"""Reading configs: ``inherit_from`` resolution, ``--set`` overrides, ``eval_settings``, original configs.

Configs are JSON (``.json``) or YAML (``.yaml``/``.yml``, the same keys). A config file may name
parents with ``"inherit_from"`` (a path, a comma-separated list of paths, or a JSON list;
relative to the working directory, else to the file's own folder).
Parents are merged left to right, then the child: nested objects merge key by key and the
child wins, except that a section naming another ``type`` than its parent's replaces it whole
(the parent's ``args`` belong to another factory); every other value, lists included, is
replaced whole. A config written by the
original Collaborative Experts trainer is translated on reading (``utils.original.config``).

Every config read here is validated (``utils/config/validate.py``) before it is returned.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from utils.config.resolved import Config
from utils.config.validate import validate
from utils.errors import ConfigError
from utils.original.config import is_original_config, translate_original

YAML_SUFFIXES = (".yaml", ".yml")
MAX_INHERIT_DEPTH = 32


class _NoAliasLoader(yaml.SafeLoader):
    """YAML's safe loader without aliases (``*name``): an alias can repeat an anchored node any
    number of times, so a few lines can expand beyond any memory (a "billion laughs")."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a config; "
                                              "write the value out", self.peek_event().start_mark)
        return super().compose_node(parent, index)


def _parse_yaml(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(), Loader=_NoAliasLoader)  # a SafeLoader without aliases
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
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config") from None
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
        if not all(part.strip() for part in parts):
            raise ConfigError(f"--set {text}: empty key name in {keypath!r}; expected KEY.PATH=VALUE")
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
    return Config(copy.deepcopy(state["config"]), {}, path)  # overrides must not edit the checkpoint's own
