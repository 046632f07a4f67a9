"""The package's shape: no import cycle between its parts, a bottom layer that
depends on nothing, policy and sandbox apart, one exception tree.

Imports are read from the source (every ``import``, lazy ones inside
functions and ``TYPE_CHECKING`` blocks included), so a cycle cannot hide in
an import that only runs later.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import luminaguard
from luminaguard import errors
from luminaguard.agent.outcomes import RunEnded
from luminaguard.errors import LuminaGuardError

SRC = Path(luminaguard.__file__).parent
# Scripts run inside a sandbox (importing them would run them), and the
# demo's sample project, which is data.
NOT_MODULES = ("bridge_main", "supervisor_main", "relay_main", "__main__")


def part_of(module: str) -> str | None:
    """``luminaguard.sandbox.bwrap`` -> ``sandbox``; None outside the package."""
    parts = module.split(".")
    if parts[0] != "luminaguard" or len(parts) < 2:
        return None
    return parts[1].removesuffix(".py")


def imports() -> dict[str, set[str]]:
    """Each part of the package and the other parts it imports."""
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        if rel.parts[0] == "demo":
            continue
        here = rel.parts[0].removesuffix(".py")
        deps = graph.setdefault(here, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
                if node.module == "luminaguard":
                    names = [f"luminaguard.{a.name}" for a in node.names]
            for name in names:
                part = part_of(name)
                if (
                    part is not None
                    and part != here
                    and (SRC / part).exists() | (SRC / f"{part}.py").exists()
                ):
                    deps.add(part)
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_two_parts_of_the_package_import_each_other() -> None:
    found = cycle(imports())
    assert found is None, "import cycle: " + " -> ".join(found or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_the_bottom_layer_depends_on_nothing_but_the_error_tree_and_messages() -> None:
    graph = imports()
    assert graph["core"] <= {"errors", "messages"}, graph["core"]
    assert graph["errors"] == set() and graph["messages"] == set()
    assert graph["protocols"] <= {"core", "messages"}, graph["protocols"]


def test_policy_and_sandbox_know_nothing_of_each_other_or_of_the_ui() -> None:
    graph = imports()
    assert not graph["policy"] & {"sandbox", "ui", "tools", "agent", "mcp"}, graph["policy"]
    assert not graph["sandbox"] & {"policy", "ui", "tools", "agent", "mcp"}, graph["sandbox"]


def modules() -> list[object]:
    found = []
    for info in pkgutil.walk_packages(luminaguard.__path__, "luminaguard."):
        if info.name.startswith("luminaguard.demo") or info.name.endswith(NOT_MODULES):
            continue
        found.append(importlib.import_module(info.name))
    return found


def test_every_exception_the_package_defines_is_in_the_one_tree_and_drawn() -> None:
    drawing = errors.__doc__ or ""
    outside, undrawn = [], []
    for module in modules():
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if not issubclass(cls, BaseException) or not cls.__module__.startswith("luminaguard"):
                continue
            if issubclass(cls, RunEnded):
                continue  # run outcomes, not errors (agent/outcomes.py)
            if not issubclass(cls, LuminaGuardError):
                outside.append(f"{cls.__module__}.{name}")
            elif name not in drawing:
                undrawn.append(name)
    assert not outside, f"outside the error tree: {outside}"
    assert not undrawn, f"missing from the drawing in errors.py: {undrawn}"
