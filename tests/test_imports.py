"""The package's import graph: no cycles in trm_jax/ or benchmarks/, function-level imports counted.

Every `import` statement is an edge, wherever it sits (module level, inside a function, under
`if TYPE_CHECKING`), from the importing module to the module it names: `from a.b import c` points at
`a.b.c` when that is a module, else at `a.b` (whose `__init__` runs). Importing a module also runs
its parent packages' `__init__`, but those edges are not counted: a package that re-exports its
submodules would otherwise be a cycle with each of them.
"""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("trm_jax", "benchmarks")


def _modules() -> dict:
    """{module name: file path} of every module in PACKAGES."""
    out = {}
    for pkg in PACKAGES:
        for dirpath, _, files in os.walk(os.path.join(ROOT, pkg)):
            for f in files:
                if f.endswith(".py"):
                    rel = os.path.relpath(os.path.join(dirpath, f), ROOT)[:-3].split(os.sep)
                    if rel[-1] == "__init__":
                        rel = rel[:-1]
                    out[".".join(rel)] = os.path.join(dirpath, f)
    return out


def _resolve(module: str, path: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if path.endswith("__init__.py") else module.split(".")[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, path: str, modules: dict):
    """(target module, line, inside a function) for every import statement of `module`."""
    tree = ast.parse(open(path).read(), path)
    in_function = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            in_function.update(id(n) for n in ast.walk(fn) if n is not fn)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path, node)
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for name in names:
            yield name, node.lineno, id(node) in in_function


def _graph() -> dict:
    modules = _modules()
    graph = {m: set() for m in modules}
    for m, path in modules.items():
        for target, _, _ in _imports(m, path, modules):
            while target and target not in modules and "." in target:  # `import a.b.c` of a non-module name
                target = target.rsplit(".", 1)[0]
            if target in modules and target != m:
                graph[m].add(target)
    return graph


def _cycles(graph: dict) -> list:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles (function-level imports included): " + "; ".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize("package", PACKAGES)
def test_function_level_imports_are_for_optional_dependencies(package):
    """An import inside a function is for a heavy optional dependency, never to hide a cycle: no
    function-level import of the package's own modules. (Benchmark workers import trm_jax, and with it
    JAX, inside functions on purpose: a PyTorch worker process must not load JAX.)"""
    modules = _modules()
    inside = sorted({(m, line, target) for m, path in modules.items() if m.split(".")[0] == package
                     for target, line, nested in _imports(m, path, modules)
                     if nested and target.split(".")[0] == package})
    assert not inside, "function-level imports of the package itself: " + ", ".join(
        f"{m}:{line} -> {t}" for m, line, t in inside)
