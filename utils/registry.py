"""Name -> factory registries, so configs pick components by name.

Each component kind has one registry; a module registers its factories on import:

    from utils.registry import MODELS

    @MODELS.register()
    class CENet(nn.Module): ...

A config section ``{"type": "CENet", "args": {...}}`` is then built with
``MODELS.build(section, **injected)``. Names never go through ``eval`` or string imports.

This module imports nothing of the application: the component packages fill the registries
when they are imported, and ``trainer/build.py`` (which builds from configs) imports them all.
"""
from __future__ import annotations

from typing import Any, Callable


class Registry:
    """A named, listable mapping from strings to factories (classes or functions)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Callable[..., Any]] = {}
        self._bounds: dict[str, dict[str, Any]] = {}

    def register(self, name: str | None = None, bounds: dict[str, Any] | None = None
                 ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def add(factory: Callable[..., Any]) -> Callable[..., Any]:
            self.add(name or factory.__name__, factory, bounds)
            return factory
        return add

    def add(self, name: str, factory: Callable[..., Any], bounds: dict[str, Any] | None = None) -> None:
        """Register ``factory`` as ``name``; ``bounds``: argument name -> the range the config
        validator enforces on it, for a factory whose own hints cannot say (e.g. torch's classes)."""
        if name in self._entries and self._entries[name] is not factory:
            raise KeyError(f"{self.kind} '{name}' is registered twice")
        self._entries[name] = factory
        self._bounds[name] = dict(bounds or {})

    def bounds(self, name: str) -> dict[str, Any]:
        """The argument ranges registered with ``name`` (see :meth:`add`)."""
        return self._bounds.get(name, {})

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._entries:
            raise KeyError(f"unknown {self.kind} '{name}'; expected one of: {', '.join(self.names())}")
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def names(self) -> list[str]:
        return sorted(self._entries)

    def build(self, section: dict, *args: Any, **injected: Any) -> Any:
        """Instantiate ``section["type"]`` with ``section["args"]`` plus injected kwargs.

        A factory with a ``config_class`` (a dataclass) is given one instance of it, built from
        those kwargs; its arguments are that dataclass's fields (see :func:`arguments_of`).
        """
        kwargs = dict(section.get("args", {}))
        clash = sorted(set(kwargs) & set(injected))
        if clash:
            raise KeyError(f"{self.kind} '{section['type']}': args {clash} are set by the program, not the config")
        factory = self.get(section["type"])
        config_class = getattr(factory, "config_class", None)
        if config_class is not None:
            return factory(config_class(**kwargs, **injected), *args)
        return factory(*args, **kwargs, **injected)


def arguments_of(factory: Callable[..., Any]) -> Callable[..., Any]:
    """What a factory's config arguments are checked against: its ``config_class`` if it has one."""
    return getattr(factory, "config_class", factory)


MODELS = Registry("model")
LOSSES = Registry("loss")
OPTIMIZERS = Registry("optimizer")
SCHEDULERS = Registry("lr_scheduler")
DATASETS = Registry("data loader")
VISUALIZERS = Registry("visualizer")
METRICS = Registry("metric")
