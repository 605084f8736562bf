"""The package's import structure: no import cycles, and every module imports on its own.

``test_no_import_cycles``: a small AST walk collects, for every module of ``coamd`` (the generated
gRPC code excluded), the ``coamd`` modules it imports, at module level and inside functions alike
(a function-level import cycle is still a design cycle: two modules that need each other), and
checks that this graph has no cycle (Tarjan's strongly connected components).

``test_every_module_imports_first``: in a fresh interpreter, each module is imported as the first
``coamd`` module (all ``coamd`` modules are dropped from ``sys.modules`` before each one; third-party
modules stay cached to keep it fast), so an import that only works after some other module was
imported first fails here.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "coamd"
GENERATED = "_proto"  # code generated from the .proto on first import (coamd.api.codegen)


def all_modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the coamd package (packages by their __init__)."""
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        if GENERATED in parts:
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def imported_modules(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The coamd modules that ``name`` (file ``path``) imports anywhere in its code, except under
    ``if TYPE_CHECKING:``. ``from pkg import x`` counts as importing ``pkg.x`` when that is a
    module, else ``pkg``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()

    def nearest_module(dotted: str) -> str | None:
        while dotted:
            if dotted in modules:
                return dotted
            dotted = dotted.rsplit(".", 1)[0] if "." in dotted else ""
        return None

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] == "coamd" and (m := nearest_module(alias.name)):
                        found.add(m)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    mod = ".".join(base + ([child.module] if child.module else []))
                else:
                    mod = child.module or ""
                if mod.split(".")[0] != "coamd":
                    continue
                for alias in child.names:
                    sub = f"{mod}.{alias.name}"
                    if sub in modules:
                        found.add(sub)
                    elif m := nearest_module(mod):
                        found.add(m)
            visit(child)

    visit(tree)
    found.discard(name)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_cycle_finder_finds_a_cycle():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(g) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    modules = all_modules()
    assert "coamd.runtime.engine" in modules and "coamd.api" in modules
    graph = {m: imported_modules(p, m, modules) for m, p in modules.items()}
    found = cycles(graph)
    assert not found, "import cycles between coamd modules: " + "; ".join(" <-> ".join(c) for c in found)


_IMPORT_EACH = r"""
import importlib, sys, traceback
names = sys.argv[1:]
failed = []
for name in names:
    for m in [m for m in sys.modules if (m == "coamd" or m.startswith("coamd.")) and not m.startswith("coamd._proto")]:
        del sys.modules[m]
    try:
        importlib.import_module(name)
    except BaseException:
        failed.append(name + ":\n" + traceback.format_exc(limit=-3))
print("\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_first():
    names = sorted(all_modules())
    out = subprocess.run([sys.executable, "-c", _IMPORT_EACH, *names], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, f"modules that fail when imported first:\n{out.stdout}\n{out.stderr[-3000:]}"
