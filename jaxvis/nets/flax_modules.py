"""Flax modules as they are: every named submodule's output as a layer, with no dict-returning wrapper.

:func:`module_function` turns a Flax NNX module or a Flax Linen module (with its variables) into the
`(apply_fn, params)` pair :func:`jaxvis.from_function` takes, `apply_fn(params, images) -> {layer: activation}`:

* Linen: ``module.apply(variables, x, capture_intermediates=True)`` records the output of every
  submodule's ``__call__``; layer names are the scope paths joined by '/' (``Block_0/Conv_1``). Values
  the module ``sow``s into 'intermediates' are layers too (``Block_0/features``).
* NNX: the module is split once (`params` is its ``nnx.State``); each call merges a fresh copy, puts
  it in eval mode (BatchNorm's running statistics, Dropout off) and records the output of every
  submodule's ``__call__`` by giving the copy's submodules a recording subclass of their own class
  (the user's module and classes are untouched); names are attribute paths joined by '.'
  (``layer1.0.conv1``). Values the module ``sow``s as ``nnx.Intermediate`` are layers too (``layer1.0.feat``).

The whole module's output is the layer 'output' (if the module returns a dict of arrays, its entries
are layers under their own keys). A submodule called several times gives 'name', 'name#2', ….
Only array outputs with the batch axis first are layers.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import flax.linen as linen
import jax
from flax import nnx

from ..errors import NetworkError

# The recorder of the NNX call being traced (set only inside `_recording`); the recording subclasses read it.
_SINK: contextvars.ContextVar[dict | None] = contextvars.ContextVar("jaxvis_flax_sink", default=None)
# One recording subclass per NNX module class (created on first use; each registers with NNX's graph types once).
_RECORDING: dict[type, type] = {}


def is_flax(obj: Any) -> bool:
    """Whether `obj` is a Flax NNX module, a Linen module, or a Linen module's bound `apply`."""
    return isinstance(obj, (nnx.Module, linen.Module)) or (
        inspect.ismethod(obj) and isinstance(obj.__self__, linen.Module) and obj.__name__ == "apply")


def module_function(module: Any, variables: Any = None, apply_kwargs: dict | None = None
                    ) -> tuple[Callable, Any, str]:
    """`(apply_fn, params, name)` for a Flax module (see the module docstring).

    Args:
      module: an NNX module, a Linen module, or a Linen module's `apply`.
      variables: Linen: the variables (`module.init(...)`'s dict); NNX: None.
      apply_kwargs: extra keyword arguments of every call (e.g. ``{"train": False}``).

    Raises:
      NetworkError: variables missing for Linen or given for NNX, or not a Flax module.
    """
    kwargs = dict(apply_kwargs or {})
    if isinstance(module, nnx.Module):
        if variables is not None:
            raise NetworkError("an NNX module holds its own weights: call from_flax(module) without variables "
                               "(or nnx.update(module, state) first)")
        graphdef, state = nnx.split(module)
        return _nnx_apply(graphdef, kwargs), state, type(module).__name__
    if inspect.ismethod(module) and isinstance(module.__self__, linen.Module):
        module = module.__self__
    if not isinstance(module, linen.Module):
        raise NetworkError(f"expected a Flax NNX module, a Linen module or a Linen module's apply, got "
                           f"{type(module).__name__}")
    if variables is None:
        raise NetworkError(f"a Linen module needs its variables: from_flax({type(module).__name__}(...), "
                           "variables) with variables = module.init(key, x)")
    variables = {k: v for k, v in dict(variables).items() if k != "intermediates"}
    return _linen_apply(module, kwargs), variables, type(module).__name__


def _add(out: dict, name: str, value: Any, batch: int) -> None:
    if not (isinstance(value, jax.Array) and value.ndim >= 2 and value.shape[0] == batch):
        return
    key, k = name, 1
    while key in out:
        k += 1
        key = f"{name}#{k}"
    out[key] = value


def _root(out: dict, result: Any, batch: int) -> None:
    if isinstance(result, dict):
        for k, v in result.items():
            out.pop(str(k), None)  # the module's own names win
            _add(out, str(k), v, batch)
    else:
        _add(out, "output", result, batch)


def _linen_apply(module: linen.Module, kwargs: dict) -> Callable:
    def apply_fn(variables, x):
        result, state = module.apply(variables, x, capture_intermediates=True, mutable=["intermediates"], **kwargs)
        out: dict = {}
        for path, values in _linen_calls(state.get("intermediates", {}), ()):
            for v in values:
                _add(out, "/".join(path), v, x.shape[0])
        _root(out, result, x.shape[0])
        return out
    return apply_fn


def _linen_calls(tree, path: tuple) -> Iterator[tuple[tuple, tuple]]:
    for k, v in tree.items():
        if k == "__call__":
            if path:  # the root's own output is `result`
                yield path, tuple(v)
        elif isinstance(v, tuple):  # sown by the module
            yield (*path, str(k)), v
        elif isinstance(v, dict) or hasattr(v, "items"):
            yield from _linen_calls(v, (*path, str(k)))


def _nnx_apply(graphdef, kwargs: dict) -> Callable:
    def apply_fn(state, x):
        model = nnx.merge(graphdef, state)
        model.eval()
        paths = {id(m): ".".join(map(str, p)) for p, m in nnx.iter_graph(model)
                 if isinstance(m, nnx.Module) and p}
        calls: list[tuple[str, Any]] = []
        with _recording(model, paths, calls):
            result = model(x, **kwargs)
        out: dict = {}
        for name, v in calls:
            _add(out, name, v, x.shape[0])
        for path, var in nnx.to_flat_state(nnx.state(model, nnx.Intermediate)):  # sown by the module
            value = var.get_value()
            for v in value if isinstance(value, tuple) else (value,):
                _add(out, ".".join(map(str, path)), v, x.shape[0])
        _root(out, result, x.shape[0])
        return out
    return apply_fn


@contextlib.contextmanager
def _recording(model, paths: dict[int, str], calls: list) -> Iterator[None]:
    """While inside, every call of a submodule of `model` (a fresh merged copy) appends (path, output) to `calls`."""
    for p, m in nnx.iter_graph(model):
        if isinstance(m, nnx.Module) and p and id(m) in paths:
            object.__setattr__(m, "__class__", _recording_class(type(m)))  # the copy only
    token = _SINK.set({"paths": paths, "calls": calls})
    try:
        yield
    finally:
        _SINK.reset(token)


def _recording_class(cls: type) -> type:
    if cls in _RECORDING.values():
        return cls
    if cls not in _RECORDING:
        def __call__(self, *args, **kwargs):
            out = cls.__call__(self, *args, **kwargs)
            sink = _SINK.get()
            if sink is not None and id(self) in sink["paths"]:
                sink["calls"].append((sink["paths"][id(self)], out))
            return out

        _RECORDING[cls] = type(cls)(cls.__name__, (cls,), {"__call__": __call__, "__module__": cls.__module__,
                                                           "__qualname__": cls.__qualname__})
    return _RECORDING[cls]
