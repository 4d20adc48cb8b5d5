"""One error tree: every deliberate error is a jaxvis.errors.JaxvisError subclass, defined in jaxvis/errors.py.

The source checks walk the library with `ast`, so they see every `raise`, reached by a test or not.
"""

import ast
import builtins
import inspect
from pathlib import Path

import pytest

import jaxvis
from jaxvis import errors

ROOT = Path(jaxvis.__file__).parent

# (file, line) of a bare built-in raise that is deliberate. Keep it empty: raise a jaxvis.errors subclass.
ALLOW_LIST: set[tuple[str, int]] = set()

# Built-in exceptions a library error must not be raised as. BaseException-only types (KeyboardInterrupt,
# SystemExit, GeneratorExit) are signals, not errors, and stay allowed.
BUILTIN_ERRORS = {name for name, v in vars(builtins).items()
                  if isinstance(v, type) and issubclass(v, Exception) and not issubclass(v, Warning)}


def _sources():
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        yield rel, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _raised_name(node: ast.Raise) -> str | None:
    exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
    return exc.id if isinstance(exc, ast.Name) else None


def _protocol_raise(func: ast.AST | None, name: str) -> bool:
    # Python's protocols demand these exact types: `__getattr__` must raise AttributeError (PEP 562, hasattr).
    return isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)) and func.name == "__getattr__" \
        and name == "AttributeError"


def _bare_raises(tree: ast.Module):
    """(line, exception name) of each `raise <built-in error>` in `tree`, protocol-mandated ones excepted."""
    found = []

    def visit(node: ast.AST, func: ast.AST | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else func
            if isinstance(child, ast.Raise) and child.exc is not None:
                name = _raised_name(child)
                if name in BUILTIN_ERRORS and not _protocol_raise(func, name):
                    found.append((child.lineno, name))
            visit(child, inner)

    visit(tree, None)
    return found


def test_the_checker_finds_bare_raises():
    """The walker flags what it must (so an empty result below means something) and spares the protocol."""
    tree = ast.parse("def f(x):\n    if x:\n        raise ValueError('bad')\n    raise KeyError\n"
                     "def g():\n    raise errors.LayerError('x')\n"
                     "def __getattr__(name):\n    raise AttributeError(name)\n"
                     "def h():\n    raise AttributeError('h')\n    raise KeyboardInterrupt\n")
    assert _bare_raises(tree) == [(3, "ValueError"), (4, "KeyError"), (10, "AttributeError")]


def test_no_bare_builtin_raise_in_the_library():
    found = [f"jaxvis/{rel}:{line}: raise {name}" for rel, tree in _sources() for line, name in _bare_raises(tree)
             if (rel, line) not in ALLOW_LIST]
    assert not found, "raise a jaxvis.errors subclass instead:\n" + "\n".join(found)


def test_error_types_are_defined_in_errors_py_only():
    """Outside errors.py only private control-flow exceptions (`class _Done(Exception)`) may be defined."""
    error_names = BUILTIN_ERRORS | {n for n, v in vars(errors).items() if isinstance(v, type)}
    stray = []
    for rel, tree in _sources():
        if rel == "errors.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                bases = {b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else None
                         for b in node.bases}
                if bases & error_names:
                    stray.append(f"jaxvis/{rel}:{node.lineno}: class {node.name}")
    assert not stray, "define error types in jaxvis/errors.py:\n" + "\n".join(stray)


def test_every_error_is_a_jaxvis_error_with_a_builtin_base():
    classes = [v for v in vars(errors).values() if inspect.isclass(v) and v.__module__ == errors.__name__]
    assert len(classes) >= 20
    for cls in classes:
        assert issubclass(cls, errors.JaxvisError), cls
        assert cls.__doc__, cls
        if cls is not errors.JaxvisError:  # callers may catch the built-in type the problem is
            assert issubclass(cls, (ValueError, TypeError, OSError)), cls
    assert issubclass(errors.WeightsNotFoundError, FileNotFoundError)
    assert issubclass(errors.OutputError, OSError)
    assert issubclass(errors.ArgumentTypeError, TypeError)


def test_moved_errors_are_still_importable_from_their_old_modules():
    from jaxvis.imaging.display import DisplayError
    from jaxvis.nets.onnx.errors import OnnxError
    assert DisplayError is errors.DisplayError and OnnxError is errors.OnnxError
    assert jaxvis.OnnxError is errors.OnnxError


def test_misspelt_model_name_lists_close_matches():
    with pytest.raises(errors.ModelError, match=r"unknown model 'squeezenett'.*did you mean squeezenet") as e:
        jaxvis.load_model("squeezenett")
    assert isinstance(e.value, errors.JaxvisError) and isinstance(e.value, ValueError)
    assert "squeezenet1_1" in str(e.value)  # the known names, for a name with no close match too
    with pytest.raises(errors.ModelError, match="known:") as e:
        jaxvis.load_model("xyzzy")
    assert "did you mean" not in str(e.value)


def test_deep_dream_bad_option_names_the_valid_range(squeezenet):
    with pytest.raises(errors.DreamError, match=r"num_iterations must be an integer >= 1, got 0") as e:
        jaxvis.deep_dream_image(squeezenet, "conv1", [0], num_iterations=0, verbose=False)
    assert isinstance(e.value, errors.JaxvisError) and isinstance(e.value, ValueError)
    with pytest.raises(errors.ArgumentTypeError, match="integers") as e:
        jaxvis.deep_dream_image(squeezenet, "conv1", ["a"], verbose=False)
    assert isinstance(e.value, TypeError)
