"""The engine's modules import one another without a cycle, counting imports made only for type
checking and imports inside functions: each role can be read, and imported, on its own."""

from __future__ import annotations

import ast
from pathlib import Path

import loyaltykit_local

PACKAGE = Path(loyaltykit_local.__file__).parent


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level == 1:
            found.update([node.module.split(".")[0]] if node.module else (a.name for a in node.names))
        elif node.level == 0 and node.module and node.module.startswith("loyaltykit_local."):
            found.add(node.module.split(".")[1])
    return found


def _graph() -> dict[str, set[str]]:
    modules = {path.stem: path for path in PACKAGE.glob("*.py")}
    return {name: _imports(path) & modules.keys() for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    trail: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = "open"
        trail.append(name)
        for dep in sorted(graph[name]):
            if state.get(dep) == "open":
                return [*trail[trail.index(dep):], dep]
            if dep not in state and (found := visit(dep)):
                return found
        state[name] = "done"
        trail.pop()
        return None

    for name in sorted(graph):
        if name not in state and (found := visit(name)):
            return found
    return None


def test_the_engine_modules_import_without_a_cycle() -> None:
    assert _cycle(_graph()) is None


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_the_roles_stand_on_accounts_and_not_on_service() -> None:
    graph = _graph()
    for role in ("accounts", "checkout", "admin", "members"):
        assert "service" not in graph[role], role
    assert {"checkout", "admin"} <= graph["service"]
