"""The network protocol every public jaxvis function accepts, and the jit cache networks share.

A network is anything that maps images to named activations. `load_model` networks
(:class:`jaxvis.Network`), `from_function` networks and imported graphs all satisfy
:class:`Net`; algorithms ask it for activations, its graph view (:meth:`Net.graph`) and its
declared capabilities (:attr:`Net.relu_rules`), and never look inside.
"""

from __future__ import annotations

import collections
import contextlib
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol, Sequence, runtime_checkable

import jax

from ..errors import ImageError, JaxvisError
from . import cpu
from .graph import LayerGraph
from .ops import RELU_MODES
from .traced import param_value, traced_graph

LayerRef = str | int
ActivationFn = Callable[..., dict[str, jax.Array]]


@runtime_checkable
class Net(Protocol):
    """What jaxvis needs of a network.

    Attributes:
      name: a label for messages and outputs.
      input_size: (H, W) the network was trained at.
      input_channels: channels of the images it takes (3: RGB; 1: grayscale; others: arrays only).
      classes: class names (index = class id), or None.
      params: the weights, a pytree: the first argument of :meth:`apply`.
      layer_names: every addressable layer, in graph order.
      logits_layer: the pre-softmax class scores layer, or None.
      relu_rules: the ReLU backward rules `apply(..., relu=)` supports: 'standard' always, and any of
        'guided', 'deconvnet', 'redirected'.
      cache: the network's :class:`Cache` (compiled functions and memoised facts).
      classes_hint: how to give this kind of network its class names (the constructor call), for messages.
    """

    name: str
    input_size: tuple[int, int]
    input_channels: int
    classes: list[str] | None
    params: Any
    logits_layer: str | None
    relu_rules: frozenset[str]
    classes_hint: str

    @property
    def cache(self) -> Cache: ...

    @property
    def layer_names(self) -> tuple[str, ...]: ...

    def layer_name(self, layer: LayerRef) -> str:
        """Name of a layer given by name or 0-based index (LayerError with close matches)."""

    def require_weights(self, layers: Sequence[str]) -> None:
        """Raise MissingWeightsError if `layers` need weights that are not loaded."""

    def apply(self, params: Any, images: jax.Array, layers: Sequence[str], *, normalize: bool = True,
              relu: str = "standard", taps: dict[str, jax.Array] | None = None) -> dict[str, jax.Array]:
        """Pure: N×H×W×`input_channels` float images (RGB/gray 0..255 for 3/1 channels) → {layer: N×h×w×C};
        traceable by jit/vmap/grad."""

    def function(self, layers: Sequence[LayerRef], *, normalize: bool = True,
                 relu: str = "standard") -> ActivationFn:
        """Checked `(params, images, taps=None) -> {name: activation}` for these layers."""

    def jitted(self, layers: Sequence[LayerRef], *, normalize: bool = True, relu: str = "standard"):
        """Cached `jax.jit` of :meth:`function`."""

    def graph(self, input_size: tuple[int, int] | None = None) -> LayerGraph:
        """The layer graph for one image of `input_size` (default the network's), memoised per size."""

    def layer_params(self, layer: LayerRef) -> dict[str, jax.Array]:
        """The parameters `layer` applies itself, by role: 'kernel' (HWIO for convolutions, in×out for
        dense layers) and 'bias' where the network knows them; {} for layers without parameters."""


class Cache:
    """One per network: its compiled functions and the facts tools memoise about it, with trace counts.

    Every key is `(area, name, *static)`: `area` the subsystem that owns the entry ('net', 'visualize',
    'attribution', 'receptive', 'dream', 'patches', 'recipes', 'graph', …), `name` what is cached, then the
    static arguments that identify it. `trace_counts[key]` rises each time a jitted entry is traced
    (= compiled for a new shape), so tests can assert that repeated calls do not recompile.
    The cache lives on the network object and goes when it goes.
    """

    def __init__(self):
        self._fns: dict = {}
        self._memo: dict = {}
        self.trace_counts: collections.Counter = collections.Counter()

    @staticmethod
    def _check(key) -> None:
        assert isinstance(key, tuple) and len(key) >= 2 and isinstance(key[0], str), \
            f"cache keys are (area, name, *static), got {key!r}"

    def jit(self, key: tuple, make: Callable[[], Callable], **jit_kwargs) -> Callable:
        """`jax.jit(make(), **jit_kwargs)` built once per `key`; its traces are counted under `key`.

        Compiled with jaxvis's XLA options for the platform each call runs on (:func:`jaxvis.nets.cpu.jit`:
        XLA:CPU's on CPU, none on accelerators), so every jaxvis program is fast without global settings.
        """
        if key not in self._fns:
            self._check(key)
            fn = make()

            def counted(*args, **kwargs):
                self.trace_counts[key] += 1  # runs only while tracing
                return fn(*args, **kwargs)

            self._fns[key] = cpu.jit(counted, **jit_kwargs)
        return self._fns[key]

    def memo(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """`compute()` once per `key`. Values live on the network; one that refers back to it makes a
        cycle, which the garbage collector frees with the network."""
        if key not in self._memo:
            self._check(key)
            self._memo[key] = compute()
        return self._memo[key]


class NetBase:
    """Shared behaviour of protocol networks: `function` and `jitted` on top of `apply`; `graph` and
    `layer_params` read from one trace of `apply` unless the network knows its graph better."""

    _cache: Cache
    name: str
    params: Any
    input_size: tuple[int, int]
    input_channels: int = 3
    relu_rules: frozenset[str] = frozenset(RELU_MODES)
    classes_hint: str = "jaxvis.from_function(..., logits=layer, classes=[...])"

    if TYPE_CHECKING:  # provided by each network class (declared here for the type checker only)
        @property
        def layer_names(self) -> tuple[str, ...]: ...
        def layer_name(self, layer: LayerRef) -> str: ...
        def require_weights(self, layers: Sequence[str]) -> None: ...
        def apply(self, params: Any, images: jax.Array, layers: Sequence[str], *, normalize: bool = True,
                  relu: str = "standard", taps: dict[str, jax.Array] | None = None) -> dict[str, jax.Array]: ...

    @property
    def cache(self) -> Cache:
        if "_cache" not in self.__dict__:
            self._cache = Cache()
        return self._cache

    @property
    def trace_counts(self) -> collections.Counter:
        return self.cache.trace_counts

    def function(self, layers: Sequence[LayerRef], *, normalize: bool = True,
                 relu: str = "standard") -> ActivationFn:
        names = tuple(self.layer_name(l) for l in layers)
        self.require_weights(names)
        return lambda params, images, taps=None: self.apply(params, images, names, normalize=normalize,
                                                            relu=relu, taps=taps)

    def jitted(self, layers: Sequence[LayerRef], *, normalize: bool = True, relu: str = "standard"):
        names = tuple(self.layer_name(l) for l in layers)
        fn = self.function(names, normalize=normalize, relu=relu)
        return self.cache.jit(("net", "forward", names, normalize, relu), lambda: lambda params, images: fn(params, images))

    def graph(self, input_size: tuple[int, int] | None = None) -> LayerGraph:
        """The layer graph for one image of `input_size` (H, W) (default the network's), memoised per size.

        Raises:
          ImageError: the network cannot take an image of that size (too small, or a dense layer fixed
            to another size).
        """
        hw = check_size(self.input_size if input_size is None else input_size)
        return self.cache.memo(("graph", "graph", hw), lambda: check_nonempty(self, self._build_graph(hw)))

    def _build_graph(self, hw: tuple[int, int]) -> LayerGraph:
        return self._traced(hw)[0]

    def _traced(self, hw: tuple[int, int]):
        names = tuple(self.layer_names)

        def build():
            with shape_errors(self, hw):
                return traced_graph(lambda p, x: self.apply(p, x, names, normalize=False), self.params, hw,
                                    self.input_channels, names)
        return self.cache.memo(("graph", "traced", hw), build)

    def layer_params(self, layer: LayerRef) -> dict[str, jax.Array]:
        """The parameters `layer` applies itself, by role ('kernel' in HWIO / in×out, 'bias'), as far as the
        primitives computing it show them; {} for layers without parameters."""
        name = self.layer_name(layer)
        roles = self._traced(check_size(self.input_size))[1].get(name, {})
        return {role: param_value(self.params, ref) for role, ref in roles.items()}


def check_size(hw) -> tuple[int, int]:
    """(H, W) as ints; ImageError unless two positive integers."""
    try:
        h, w = (int(v) for v in hw)
    except (TypeError, ValueError):
        raise ImageError(f"input_size must be two positive integers (H, W), got {hw!r}") from None
    if h < 1 or w < 1:
        raise ImageError(f"input_size must be two positive integers (H, W), got {hw!r}")
    return h, w


@contextlib.contextmanager
def shape_errors(net, hw: tuple[int, int]) -> Iterator[None]:
    """A shape failure while tracing `net` at hw (TypeError/ValueError from JAX) becomes an ImageError naming
    the size and the network's own."""
    try:
        yield
    except JaxvisError:  # the network's own errors say what is wrong
        raise
    except (TypeError, ValueError) as e:
        h, w = hw
        raise ImageError(f"{net.name!r} cannot take a {h}×{w} input ({e}); its input size is "
                         f"{net.input_size[0]}×{net.input_size[1]}") from e


def check_nonempty(net, graph: LayerGraph) -> LayerGraph:
    """ImageError if an input is so small that some layer's output would be empty."""
    empty = [n for n in graph if 0 in n.shape]
    if empty:
        h, w = graph.input_size
        raise ImageError(f"a {h}×{w} input is too small for {net.name!r}: {empty[0].name!r} would have an empty "
                         f"{'×'.join(map(str, empty[0].shape[1:]))} output; its input size is "
                         f"{net.input_size[0]}×{net.input_size[1]}")
    return graph
