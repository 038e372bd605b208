"""The package's import graph against its layout: every `import` of cpc code, module-level or inside a function,
must follow the arrows below, and no module may reach itself through imports.

    python tools/check_imports.py          # prints the layer graph; exit 1 with each violation and cycle

Arrows: cli -> recipe / eval; recipe -> train / methods -> models / losses; eval -> models (never a training
method); data is used by recipe, train and eval; checkpoint by train, eval and cpc.load; config, errors, devices,
progress, signals and version by anyone; models and losses import nothing else of cpc.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cpc"
ALWAYS = {"config", "version", "errors", "devices", "progress", "signals"}
ALLOWED = {  # layer -> the layers it may import (besides itself and ALWAYS)
    "cpc": {"checkpoint"},
    "cli": {"recipe", "eval", "data", "checkpoint", "models"},
    "recipe": {"train", "methods", "data", "checkpoint", "models"},
    "eval": {"data", "checkpoint", "models"},
    "train": {"data", "checkpoint"},
    "methods": {"models", "losses"},
    "checkpoint": {"models"},
    "data": set(),
    "models": set(),
    "losses": set(),
    "config": set(),
    "version": set(),
    "errors": set(),
    "devices": set(),
    "progress": set(),
    "signals": set(),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "cpc"


def imports(path: Path, modules: set[str]) -> set[str]:
    """The cpc modules `path` imports anywhere in its body (resolved to modules, not names)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "cpc"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "cpc":
            for alias in node.names:  # `from cpc import checkpoint` imports a module, `from cpc.x import f` a name
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in modules else node.module)
    return found


def graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports(p, modules) - {module_name(p)} for p in paths}


def violations(edges: dict[str, set[str]]) -> list[str]:
    wrong = []
    for source, targets in sorted(edges.items()):
        for target in sorted(targets):
            a, b = layer(source), layer(target)
            if a != b and b not in ALLOWED[a] | ALWAYS:
                wrong.append(f"{source} imports {target}: layer {a!r} may not import {b!r}")
    return wrong


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle found by depth-first search, each reported once (from its smallest module)."""
    found, seen = [], set()

    def visit(node: str, path: list[str]):
        for nxt in sorted(edges.get(node, ())):
            if nxt == path[0]:
                key = frozenset(path)
                if key not in seen:
                    seen.add(key)
                    found.append(path + [nxt])
            elif nxt not in path and nxt > path[0]:
                visit(nxt, path + [nxt])

    for start in sorted(edges):
        visit(start, [start])
    return found


def main() -> int:
    edges = graph()
    layers = defaultdict(set)
    for source, targets in edges.items():
        layers[layer(source)] |= {layer(t) for t in targets} - {layer(source)}
    for name in sorted(layers):
        print(f"{name:<10} -> {', '.join(sorted(layers[name])) or '-'}")
    problems = violations(edges) + [" -> ".join(c) for c in cycles(edges)]
    for problem in problems:
        print("PROBLEM:", problem)
    print(f"{len(edges)} modules, {sum(map(len, edges.values()))} imports, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
