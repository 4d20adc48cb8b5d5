"""The network protocol every public jaxvis function accepts, and the jit cache networks share.

A network is anything that maps images to named activations. `load_model` networks
(:class:`jaxvis.Network`), `from_function` networks and imported graphs all satisfy
:class:`Net`; algorithms ask it for activations and never look inside.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence, runtime_checkable

import jax

from .ops import RELU_MODES  # noqa: F401  (re-exported)

LayerRef = str | int
ActivationFn = Callable[..., dict[str, jax.Array]]


@runtime_checkable
class Net(Protocol):
    """What jaxvis needs of a network.

    Attributes:
      name: a label for messages and outputs.
      input_size: (H, W) the network was trained at.
      classes: class names (index = class id), or None.
      params: the weights, a pytree: the first argument of :meth:`apply`.
      layer_names: every addressable layer, in graph order.
      logits_layer: the pre-softmax class scores layer, or None.
    """

    name: str
    input_size: tuple[int, int]
    classes: list[str] | None
    params: Any
    logits_layer: str | None

    @property
    def layer_names(self) -> tuple[str, ...]: ...

    def layer_name(self, layer: LayerRef) -> str:
        """Name of a layer given by name or 0-based index (LayerError with close matches)."""

    def require_weights(self, layers: Sequence[str]) -> None:
        """Raise MissingWeightsError if `layers` need weights that are not loaded."""

    def apply(self, params: Any, images: jax.Array, layers: Sequence[str], *, normalize: bool = True,
              relu: str = "standard", taps: dict[str, jax.Array] | None = None) -> dict[str, jax.Array]:
        """Pure: N×H×W×3 float RGB 0..255 images → {layer: N×h×w×C}; traceable by jit/vmap/grad."""

    def function(self, layers: Sequence[LayerRef], *, normalize: bool = True,
                 relu: str = "standard") -> ActivationFn:
        """Checked `(params, images, taps=None) -> {name: activation}` for these layers."""

    def jitted(self, layers: Sequence[LayerRef], *, normalize: bool = True, relu: str = "standard"):
        """Cached `jax.jit` of :meth:`function`."""


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
        """`jax.jit(make(**))` built once per `key`; its traces are counted under `key`."""
        if key not in self._fns:
            self._check(key)
            fn = make()

            def counted(*args, **kwargs):
                self.trace_counts[key] += 1  # runs only while tracing
                return fn(*args, **kwargs)

            self._fns[key] = jax.jit(counted, **jit_kwargs)
        return self._fns[key]

    def memo(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """`compute()` once per `key` (values must not hold the network strongly: they live on it)."""
        if key not in self._memo:
            self._check(key)
            self._memo[key] = compute()
        return self._memo[key]


class NetBase:
    """Shared behaviour of protocol networks: `function` and `jitted` on top of `apply`."""

    _cache: Cache

    if TYPE_CHECKING:  # provided by each network class (declared here for the type checker only)
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
