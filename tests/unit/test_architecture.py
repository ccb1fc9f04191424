"""The layering the README describes, checked on the source: no import cycles, a pure ``models/``,
DAG files that import only the task seam, and one composition root that reads the settings.

Imports inside functions count: a lazy import is still a dependency, and a cycle through one is
still a cycle. So do imports under ``if TYPE_CHECKING:``: a type that one module needs from another
is a dependency too, even if it never runs.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("pipelines", "models")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def _imports(tree: ast.AST) -> Iterator[str]:
    """Every module named by an import statement anywhere in ``tree``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        yield from _imports(node)


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {target for target in _imports(ast.parse(path.read_text())) if target in modules}
        graph[name] = targets - {name}
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or ``None`` (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles() -> None:
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_models_import_nothing_from_pipelines() -> None:
    offenders = {name: sorted(t for t in targets if t.startswith("pipelines"))
                 for name, targets in _graph().items() if name.startswith("models")}
    assert not {k: v for k, v in offenders.items() if v}


@pytest.mark.parametrize("dag_file", sorted((ROOT / "dags").glob("*.py")), ids=lambda p: p.name)
def test_dags_import_only_the_task_seam(dag_file: Path) -> None:
    project = [m for m in _imports(ast.parse(dag_file.read_text())) if m.split(".")[0] in PACKAGES]
    assert all(m.startswith("pipelines.tasks") for m in project), project


def test_only_the_composition_root_and_the_command_line_read_the_settings() -> None:
    readers = sorted(name for name, path in _modules().items()
                     if "get_settings()" in path.read_text()
                     and name not in {"pipelines.settings", "pipelines.composition"}
                     and not name.startswith("pipelines.cli"))
    assert readers == []
