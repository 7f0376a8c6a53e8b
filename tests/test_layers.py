"""The import structure: one direction of dependencies, no cycles.

Layers from the bottom: utils, base, logger; then report (the results site); then data_loader and
model (which know nothing of each other, nor of the site); then trainer; then the command lines
(train.py, test.py) and misc/. A module may import its own layer or a lower one only, and no group of modules imports itself back.
"""
from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

LAYERS = {"utils": 0, "base": 0, "logger": 0, "report": 1, "data_loader": 2, "model": 2, "trainer": 3,
          "train": 4, "test": 4, "misc": 4}
STRANGERS = {("data_loader", "model"), ("model", "data_loader"), ("data_loader", "report"), ("model", "report")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    files = [REPO / "train.py", REPO / "test.py"]
    for package in LAYERS:
        if (REPO / package).is_dir():
            files += sorted((REPO / package).rglob("*.py"))
    return {module_name(path): path for path in files}


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules imported anywhere in ``path`` (``from a import b`` counts a.b when it is a
    module, else a)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                     for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def test_graph_sees_the_known_imports():
    graph = import_graph()
    assert "utils.registry" in graph["model.ce"]
    assert "trainer.build" in graph["train"] and "data_loader.prepare" in graph["trainer.build"]


def test_no_import_climbs_a_layer():
    climbing = []
    for module, imported in import_graph().items():
        top = module.split(".")[0]
        for target in imported:
            other = target.split(".")[0]
            if LAYERS[other] > LAYERS[top] or (top, other) in STRANGERS:
                climbing.append(f"{module} -> {target}")
    assert not climbing, climbing


def test_no_import_cycles():
    graph = import_graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack + [target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles
