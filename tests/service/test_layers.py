"""The layering (README's layout table, DESIGN.md's picture): no package imports one on
a higher floor, the packages import no cycle, and the front ends (api, web) reach the
engine and the store only through cronhive.service."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import cronhive

SRC = Path(cronhive.__file__).parent

# Lowest first; a package may import its own floor and those below.
FLOORS = [
    {"errors", "schedule", "runner"},
    {"model"},
    {"store"},
    {"auth", "blobs", "notify", "sqljobs", "config"},
    {"engine"},
    {"service", "metrics"},
    {"api", "web"},
    {"node"},
    {"cli", "__main__", "__init__"},
]
FLOOR = {pkg: i for i, pkgs in enumerate(FLOORS) for pkg in pkgs}


def _imports() -> list[tuple[str, str, str]]:
    """(importing module path, its package, imported cronhive module) for every import."""
    found = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        if "_generated" in rel.parts:
            continue
        pkg = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            found += [(str(rel), pkg, n) for n in names if n.startswith("cronhive.")]
    return found


def test_no_package_imports_a_higher_floor() -> None:
    wrong = [
        (where, target)
        for where, pkg, target in _imports()
        if FLOOR[target.split(".")[1]] > FLOOR[pkg]
    ]
    assert wrong == []


def test_the_packages_import_no_cycle() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for _, pkg, target in _imports():
        if target.split(".")[1] != pkg:
            edges[pkg].add(target.split(".")[1])

    def reaches(start: str, goal: str) -> bool:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for nxt in edges[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return goal in seen

    assert [(a, b) for a in list(edges) for b in edges[a] if reaches(b, a)] == []


def test_the_front_ends_reach_engine_and_store_only_through_the_service() -> None:
    wrong = [
        (where, target)
        for where, pkg, target in _imports()
        if pkg in ("api", "web") and target.split(".")[1] in ("engine", "store")
    ]
    assert wrong == []
