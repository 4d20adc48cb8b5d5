"""jaxvis's own import graph, read from the source with `ast`: no cycles, no private names across modules.

Every import counts, at the top of a module or inside a function (a lazy import inside a cycle is still a
cycle, only hidden until some call order trips it); imports under `if TYPE_CHECKING:` never run and do not.
"""

import ast
from pathlib import Path

import jaxvis

ROOT = Path(jaxvis.__file__).parent



def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _imports(tree: ast.Module):
    """Import nodes that run: everywhere but under `if TYPE_CHECKING:`."""
    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for c in child.orelse:
                    yield from visit_one(c)
                continue
            yield from visit_one(child)

    def visit_one(node):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from visit(node)

    yield from visit(tree)


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if _is_package(module) else module.split(".")[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(2, len(parts))]  # `jaxvis` itself imports nothing eagerly


def _edges(module: str, tree: ast.Module):
    """(imported jaxvis module, names taken from it) for each import in `module`."""
    for node in _imports(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    yield alias.name, ()
            continue
        target = _resolve(module, node)
        if target not in MODULES:
            continue
        plain = []
        for alias in node.names:
            sub = f"{target}.{alias.name}"
            if sub in MODULES:  # `from . import ops`: the submodule
                yield sub, ()
            else:
                plain.append(alias.name)
        if plain:
            yield target, tuple(plain)


def import_graph() -> dict[str, set[str]]:
    """module → the jaxvis modules importing it runs (incl. the packages above a target, as Python does)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        own = set(_ancestors(module))
        for target, _ in _edges(module, ast.parse(path.read_text(encoding="utf-8"))):
            graph[module].add(target)
            # Importing a.b.c first runs a and a.b; those already running above `module` are no new edge.
            graph[module].update(a for a in _ancestors(target) if a not in own and a != module)
    for module in graph:
        graph[module].discard(module)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def strong(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_cycle_finder_finds_a_cycle_and_only_that():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(g) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_graph_sees_relative_function_level_and_package_imports():
    g = import_graph()
    assert "jaxvis.nets.ops" in g["jaxvis.nets.steps"]  # `from . import ops`
    assert "jaxvis.errors" in g["jaxvis.nets.network"]  # `from ..errors import ...`
    assert "jaxvis.engine" in g["jaxvis.dream.matlab"]  # the package above a target module
    assert not g["jaxvis"]  # the root package imports lazily (importlib), under TYPE_CHECKING only
    cli = {m for m in g if m.startswith("jaxvis.cli.")}
    assert any(t.startswith("jaxvis.maps") for m in cli for t in g[m])  # the CLI's imports inside functions


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" ↔ ".join(c) for c in found)


def _private_uses(module: str, tree: ast.Module):
    """(other jaxvis module, _name) for `from m import _name` and `m._name` on an imported jaxvis module."""
    bound = {}
    for node in _imports(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES and alias.asname:
                    bound[alias.asname] = alias.name
            continue
        target = _resolve(module, node)
        if target not in MODULES:
            continue
        for alias in node.names:
            sub = f"{target}.{alias.name}"
            if sub in MODULES:
                bound[alias.asname or alias.name] = sub
            elif alias.name.startswith("_") and target != module:
                yield target, alias.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound
                and node.attr.startswith("_") and not node.attr.startswith("__") and bound[node.value.id] != module):
            yield bound[node.value.id], node.attr


def test_no_private_names_imported_across_modules():
    found = sorted({f"{m} uses {t}.{n}" for m, p in MODULES.items()
                    for t, n in _private_uses(m, ast.parse(p.read_text(encoding="utf-8")))})
    assert not found, "make the shared piece public in the module that owns it:\n" + "\n".join(found)


def test_public_class_names_are_unique():
    """One name, one class: a reader (or `from x import *`) never meets two `Plan`s or `Step`s."""
    where: dict[str, list[str]] = {}
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                where.setdefault(node.name, []).append(module)
    twice = {name: mods for name, mods in where.items() if len(mods) > 1}
    assert not twice, f"class names defined in more than one module: {twice}"
    import jaxvis.engine
    assert jaxvis.engine.Plan is jaxvis.engine.StepConfig  # the engine's former name stays importable


# Installed with jaxvis (pyproject's dependencies), by import name: nothing to keep optional.
REQUIRED = {"jax", "flax", "optax", "numpy", "PIL", "h5py"}
# Another engineer's, until their branch is merged (they hold function-level imports of jaxvis modules then).


def test_function_level_imports_only_keep_extras_optional():
    """Outside the CLI (which imports lazily to keep `jaxvis --help` fast), an import inside a function is only
    there to keep an optional extra optional (onnx, matplotlib, openTSNE, umap): jaxvis modules, the standard
    library and required dependencies are imported at the top."""
    import sys
    found = []
    for module, path in MODULES.items():
        if module.startswith("jaxvis.cli"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in _imports(func):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [_resolve(module, node) if node.level else node.module or ""])
                for name in names:
                    top = name.split(".")[0]
                    if top == "jaxvis" or top in REQUIRED or top in sys.stdlib_module_names:
                        found.append(f"{module}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "import at the top of the module:\n" + "\n".join(sorted(set(found)))


# The modules that implement the network protocol: only they may look at a network's internals.
ADAPTERS = {"jaxvis.nets.network", "jaxvis.nets.function", "jaxvis.nets.flax_modules"}


def _probes(tree: ast.Module) -> list[str]:
    """`getattr(net…, …)`, `hasattr(net…, …)`, `isinstance(net…, …)` calls: asking a network what it is."""
    out = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr", "isinstance") and node.args
                and isinstance(node.args[0], ast.Name) and node.args[0].id.startswith("net")):
            out.append(f"line {node.lineno}: {ast.unparse(node)}")
    return out


def test_probe_finder_finds_probes():
    tree = ast.parse("a = getattr(net, 'steps', None)\nif hasattr(net2, 'plan'): pass\nisinstance(net, X)\nnet.graph()")
    assert len(_probes(tree)) == 3


def test_no_tool_probes_a_network_adapter():
    """Tools use the protocol (nets/protocol.py) only; adapter internals stay inside the adapters."""
    bad = {name: found for name, path in MODULES.items()
           if name not in ADAPTERS and not name.startswith("jaxvis.nets.onnx")
           and (found := _probes(ast.parse(path.read_text())))}
    assert not bad, bad
