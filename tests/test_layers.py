"""The package layering of docs/architecture.md, enforced: every `llmkit` import (top-level or
inside a function) goes to the same package or one on an earlier layer, and no two files import
each other, directly or around a loop."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "llmkit"

# Earlier layers first. A package may import its own files and any package on an earlier layer;
# packages on one layer do not import each other.
LAYERS = [
    {"errors"},
    {"fileio", "config", "host"},
    {"data"},
    {"tokenizer"},
    {"model"},
    {"checkpoint"},
    {"quant"},
    {"decode"},
    {"dist"},
    {"train"},
    {"finetune", "compress"},
    {"infer"},
    {"serve", "eval"},
    {"demo"},
    {"cli"},
    {"__main__", "__init__"},
]
LEVEL = {package: level for level, packages in enumerate(LAYERS) for package in packages}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The llmkit modules this file imports (a `from pkg import name` of a submodule counts as it)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "llmkit":
            candidates = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found |= {name for name in candidates if name in modules}
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in SRC.rglob("*.py")}
    return {name: imports_of(path, set(files)) for name, path in files.items()}


def test_every_package_has_a_layer():
    packages = {package_of(m) for m in import_graph()}
    assert packages <= set(LEVEL), f"add these to LAYERS (and docs/architecture.md): {sorted(packages - set(LEVEL))}"


def test_imports_point_to_earlier_layers():
    upward = []
    for source, targets in import_graph().items():
        for target in targets:
            a, b = package_of(source), package_of(target)
            if a != b and LEVEL.get(b, 99) >= LEVEL.get(a, -1):
                upward.append(f"{source} -> {target}")
    assert not upward, "imports against the layering:\n" + "\n".join(sorted(upward))


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components of more than one module are import cycles."""
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_no_import_cycles_between_files():
    graph = import_graph()
    # A package's __init__ re-exports its files; a file importing a sibling through the package
    # name is counted as importing the __init__, which is what Python runs.
    cycles = strongly_connected(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("package", ["model"])
def test_model_code_imports_nothing_but_errors(package):
    graph = import_graph()
    outside = {t for s, ts in graph.items() if package_of(s) == package for t in ts if package_of(t) != package}
    assert outside <= {"llmkit.errors"}, sorted(outside)
