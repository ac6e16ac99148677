"""The package's shape: no import cycles, no import reaching up a layer, every module placed and documented.

The import graph is read from the source with `ast` (nothing is imported): `import bot.x`,
`from bot.x import y` and relative imports, at module level or inside functions alike. An import
`from P import name` points at the module `P.name` when that module exists, else at `P`.

Layers, low to high (a module may import its own layer and the layers below it):

    L0  bot (the package), bot.config, bot.bounce_config, bot.models, bot.text, bot.clock, bot.logs, bot.topics,
        bot.addresses, bot.i18n, bot.catalogs
    L1  bot.store.*, bot.tokens
    L2  bot.ingest.*, bot.render.*
    L3  bot.delivery.*, bot.bounces.*
    L4  bot.pipeline, bot.digest
    L5  bot.web.*
    L6  bot.service.*
    L7  bot.demo.*, bot.cli.*, bot.__main__

A new module must be given a layer here and a line in README.md's "Layout" section.
"""
from __future__ import annotations

import ast
import re
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "bot"

# (layer, exact module names, package prefixes: the package itself and everything under it)
LAYERS: list[tuple[int, set[str], set[str]]] = [
    (0, {"bot", "bot.config", "bot.bounce_config", "bot.models", "bot.text", "bot.clock", "bot.logs", "bot.topics",
         "bot.addresses", "bot.i18n", "bot.catalogs"}, set()),
    (1, {"bot.tokens"}, {"bot.store"}),
    (2, set(), {"bot.ingest", "bot.render"}),
    (3, set(), {"bot.delivery", "bot.bounces"}),
    (4, {"bot.pipeline", "bot.digest"}, set()),
    (5, set(), {"bot.web"}),
    (6, set(), {"bot.service"}),
    (7, {"bot.__main__"}, {"bot.demo", "bot.cli"}),
]


@dataclass(frozen=True)
class Import:
    importer: str
    target: str
    line: int

    def where(self) -> str:
        return f"{_path_of(self.importer)}:{self.line}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@lru_cache(maxsize=None)
def modules() -> dict[str, Path]:
    """Every module of bot/ by dotted name (a package by its __init__.py)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "__pycache__" not in path.parts:
            found[_module_name(path)] = path
    return found


def _path_of(module: str) -> str:
    return modules()[module].relative_to(ROOT).as_posix()


def _is_package(module: str) -> bool:
    return modules()[module].name == "__init__.py"


def _resolve(module: str, base: str | None, names: list[str], level: int) -> list[str]:
    """Targets of one import statement inside `module` (bot.* only; other imports are ignored)."""
    if level:  # relative: start from the importing module's package
        package = module if _is_package(module) else module.rpartition(".")[0]
        for _ in range(level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    if base is None or not (base == "bot" or base.startswith("bot.")):
        return []
    if not names:  # `import bot.x.y`
        return [base]
    out = []
    for name in names:
        sub = f"{base}.{name}"
        out.append(sub if sub in modules() else base)
    return out


@lru_cache(maxsize=None)
def imports() -> tuple[Import, ...]:
    found = []
    for module, path in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [t for alias in node.names for t in _resolve(module, alias.name, [], 0)]
            elif isinstance(node, ast.ImportFrom):
                targets = _resolve(module, node.module, [a.name for a in node.names], node.level)
            else:
                continue
            found += [Import(module, t, node.lineno) for t in targets if t != module]
    return tuple(found)


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in modules()}
    for imp in imports():
        if imp.target in modules():
            edges[imp.importer].add(imp.target)
    return edges


def layer_of(module: str) -> int | None:
    for layer, exact, prefixes in LAYERS:
        if module in exact or any(module == p or module.startswith(p + ".") for p in prefixes):
            return layer
    return None


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative); components of more than one module, or with a self-import."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
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
                    if len(component) > 1 or node in edges[node]:
                        result.append(sorted(component))
    return sorted(result)


def _shortest_cycle(edges: dict[str, set[str]], start: str, within: set[str]) -> list[str]:
    """The shortest import path start → … → start staying inside one component (BFS)."""
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(edges[node] & within):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return list(reversed(path)) + [start]
            if child not in parent:
                parent[child] = node
                queue.append(child)
    return []


def cycles() -> list[str]:
    """One line per distinct shortest cycle through each module of each component."""
    edges = graph()
    lines = []
    for component in _strongly_connected(edges):
        members = set(component)
        seen = set()
        for start in component:
            cycle = _shortest_cycle(edges, start, members)
            ring = cycle[:-1]
            key = min(tuple(ring[i:] + ring[:i]) for i in range(len(ring)))
            if key not in seen:
                seen.add(key)
                lines.append(" → ".join(list(key) + [key[0]]))
    return lines


def layer_violations() -> list[str]:
    found = []
    for imp in sorted(imports(), key=lambda i: (i.importer, i.line, i.target)):
        low, high = layer_of(imp.importer), layer_of(imp.target)
        if low is not None and high is not None and high > low:
            found.append(f"{imp.where()}: {imp.importer} (L{low}) imports {imp.target} (L{high})")
    return found


def readme_layout_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^(#+)\s+Layout\b.*$", text, flags=re.MULTILINE)
    assert match, "README.md has no 'Layout' section"
    level = len(match.group(1))
    rest = text[match.end():]
    end = re.search(rf"^#{{1,{level}}}\s", rest, flags=re.MULTILINE)
    return rest[: end.start()] if end else rest


# --- the tests ------------------------------------------------------------------------------------

def test_the_graph_sees_imports():
    """Guard against a parser that silently finds nothing: known edges are there."""
    edges = graph()
    assert len(modules()) > 50
    assert "bot.demo.feedserver" in edges["bot.demo.story"]
    assert "bot.demo.story" in edges["bot.cli.service"]  # an import inside a function
    assert "bot" in edges["bot.render.renderer"]  # `import bot`


def test_relative_imports_resolve():
    assert _resolve("bot.store.items", None, ["schema"], 1) == ["bot.store.schema"]
    assert _resolve("bot.store.items", "schema", ["items"], 1) == ["bot.store.schema"]
    assert _resolve("bot.store", None, ["db"], 1) == ["bot.store.db"]  # from a package's __init__
    assert _resolve("bot.delivery.channels.email", None, ["fanout", "engine"], 2) == [
        "bot.delivery.fanout", "bot.delivery.engine"]
    assert _resolve("bot.delivery.channels.email", "models", ["Item"], 3) == ["bot.models"]
    assert _resolve("bot.pipeline", "httpx", [], 0) == []


def test_every_bot_import_resolves_to_a_module():
    missing = [f"{i.where()}: {i.target}" for i in imports()
               if i.target not in modules() and not (PACKAGE.parent / i.target.replace(".", "/")).is_dir()]
    assert not missing, "imports of bot modules that do not exist:\n  " + "\n  ".join(missing)


def test_no_import_cycles():
    found = cycles()
    assert not found, f"{len(found)} import cycle(s) in bot/:\n  " + "\n  ".join(found)


def test_every_module_has_a_layer():
    unplaced = [_path_of(m) for m in modules() if layer_of(m) is None]
    assert not unplaced, ("modules without a layer (add them to LAYERS in tests/test_layout.py):\n  "
                          + "\n  ".join(unplaced))


def test_no_module_imports_a_higher_layer():
    found = layer_violations()
    assert not found, f"{len(found)} import(s) reaching up a layer:\n  " + "\n  ".join(found)


def test_readme_layout_lists_every_module():
    section = readme_layout_section()
    missing = [p for p in (_path_of(m) for m in modules())
               if not re.search(rf"(?<![\w/.]){re.escape(p)}(?!\w)", section)]
    assert not missing, "modules missing from README.md's Layout section:\n  " + "\n  ".join(missing)
