"""Objectives: small pure functions of a network's activations, composable with `+ - *`.

An objective maps `acts` — `{layer: B×H×W×C, "input": B×H×W×3 image in 0..1}` — to one
value per image, shape (B,); the engine maximises the sum. Objectives are pytrees
whose numbers (channel, position, weights, vectors) are leaves and whose layer names
are static, so a list of objectives that differ only in numbers — every channel of a
layer — stacks into one batched objective and runs under one `vmap`, one compile.

Class objectives name a class by name or index and are resolved against the network
(`resolve(net)`) before they run.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:  # only type checkers read it
    def dataclass_transform(**_):
        return lambda f: f

import jax
import jax.numpy as jnp

from ..errors import VisualizationError
from ..nets.classes import class_index
from ..nets.receptive import receptive_field
from .transforms import gaussian_blur  # one blur for objectives and the cs231n projection

Acts = dict[str, jax.Array]
INPUT = "input"  # the image being optimised, B×H×W×3 in 0..1 (before transforms)


@dataclass_transform(frozen_default=True)  # type checkers: the decorated classes are frozen dataclasses
def _pytree(data: Sequence[str], meta: Sequence[str]):
    def deco(cls):
        cls = dataclasses.dataclass(frozen=True)(cls)
        return jax.tree_util.register_dataclass(cls, data_fields=list(data), meta_fields=list(meta))
    return deco


class Objective(abc.ABC):
    """Base of all objectives: `obj(acts) -> (B,)` values to maximise; compose with + - * and unary -."""

    @abc.abstractmethod
    def __call__(self, acts: Acts) -> jax.Array:
        """(B,) values to maximise, from `acts` (see the module docstring)."""

    @property
    def layers(self) -> tuple[str, ...]:
        """Network layers read (the image, "input", is not one)."""
        return ()

    def resolve(self, net) -> Objective:
        """This objective with class names and defaults bound to `net` (checked)."""
        return self

    def __add__(self, other: Objective) -> Objective:
        return Sum((self, _as_objective(other)))

    def __radd__(self, other) -> Objective:
        return self if isinstance(other, (int, float)) and other == 0 else _as_objective(other) + self

    def __sub__(self, other: Objective) -> Objective:
        return self + (-1.0) * _as_objective(other)

    def __neg__(self) -> Objective:
        return Scale(jnp.float32(-1.0), self)

    def __mul__(self, k) -> Objective:
        if isinstance(k, Objective):
            raise VisualizationError("objectives multiply by numbers, not by other objectives")
        return Scale(jnp.asarray(k, jnp.float32), self)

    __rmul__ = __mul__


def _as_objective(o) -> Objective:
    if not isinstance(o, Objective):
        raise VisualizationError(f"expected an objective (jaxvis.objectives.*), got {type(o).__name__}")
    return o


@_pytree(["terms"], [])
class Sum(Objective):
    terms: tuple[Objective, ...]

    def __call__(self, acts):
        return sum(t(acts) for t in self.terms)

    @property
    def layers(self):
        return tuple(dict.fromkeys(l for t in self.terms for l in t.layers))

    def resolve(self, net):
        return Sum(tuple(t.resolve(net) for t in self.terms))


@_pytree(["k", "obj"], [])
class Scale(Objective):
    k: Any
    obj: Objective

    def __call__(self, acts):
        return self.k * self.obj(acts)

    @property
    def layers(self):
        return self.obj.layers

    def resolve(self, net):
        return Scale(self.k, self.obj.resolve(net))


def _layer(net, layer) -> str:
    return net.layer_name(layer)


# -- units -------------------------------------------------------------------------
@_pytree(["c"], ["layer"])
class Channel(Objective):
    """Mean activation of channel `c` over all positions (a dense layer's neuron)."""

    layer: str | int  # a name; an index until resolve(net)
    c: Any

    def __call__(self, acts):
        # Spatial mean first, then pick: the gradient is a broadcast, not a scatter.
        return jnp.take(jnp.mean(acts[self.layer], axis=(1, 2)), self.c, axis=-1)

    @property
    def layers(self):
        return (self.layer,)

    def resolve(self, net):
        return Channel(_layer(net, self.layer), self.c)


@_pytree(["c", "x", "y"], ["layer"])
class Neuron(Objective):
    """Activation of channel `c` at one position (default: the centre), as lucid's `neuron`."""

    layer: str | int  # a name; an index until resolve(net)
    c: Any
    x: Any = None
    y: Any = None

    def __call__(self, acts):
        a = acts[self.layer]
        y = a.shape[1] // 2 if self.y is None else self.y
        x = a.shape[2] // 2 if self.x is None else self.x
        return jnp.take(a[:, y, x, :], self.c, axis=-1)

    @property
    def layers(self):
        return (self.layer,)

    def resolve(self, net):
        return Neuron(_layer(net, self.layer), self.c, self.x, self.y)


@_pytree(["c", "mask"], ["layer"])
class Spatial(Objective):
    """Mask-weighted mean of channel `c` (mask h×w over the layer's positions)."""

    layer: str | int  # a name; an index until resolve(net)
    c: Any
    mask: Any

    def __call__(self, acts):
        a = jnp.take(acts[self.layer], self.c, axis=-1)
        m = jnp.asarray(self.mask, a.dtype)
        return jnp.sum(a * m, axis=(1, 2)) / jnp.maximum(jnp.sum(m), 1e-12)

    @property
    def layers(self):
        return (self.layer,)

    def resolve(self, net):
        return Spatial(_layer(net, self.layer), self.c, self.mask)


@_pytree(["vector"], ["layer"])
class Direction(Objective):
    """Mean over positions of the activation's dot product with `vector` (C,), as lucid's `direction`."""

    layer: str | int  # a name; an index until resolve(net)
    vector: Any

    def __call__(self, acts):
        return jnp.mean(acts[self.layer] @ jnp.asarray(self.vector, jnp.float32), axis=(1, 2))

    @property
    def layers(self):
        return (self.layer,)

    def resolve(self, net):
        return Direction(_layer(net, self.layer), self.vector)


@_pytree(["index"], ["layer", "target", "softmax"])
class ClassScore(Objective):
    """A class's pre-softmax score (`softmax=False`, Simonyan et al.) or probability."""

    layer: str | None
    index: Any
    target: Any = None
    softmax: bool = False

    def __call__(self, acts):
        z = acts[self.layer].reshape(acts[self.layer].shape[0], -1)
        if self.softmax:
            z = jax.nn.softmax(z, axis=-1)
        return jnp.take(z, self.index, axis=-1)

    @property
    def layers(self):
        if self.layer is None:
            raise VisualizationError("class objective used before resolve(net)")
        return (self.layer,)

    def resolve(self, net):
        if net.logits_layer is None:
            raise VisualizationError(f"{net.name!r} has no class-score layer: give from_function(..., logits=...) "
                                     f"or maximise a channel of a named layer")
        i = self.index if self.target is None else class_index(net.classes, self.target)
        return ClassScore(net.logits_layer, jnp.int32(i), None, self.softmax)


# -- batch objectives ----------------------------------------------------------------
@_pytree(["weight"], ["layer"])
class Diversity(Objective):
    """lucid's diversity: minus the mean pairwise cosine similarity of the batch's Gram matrices.

    The batch total equals lucid's; it is shared out evenly over the batch's images.
    """

    layer: str | int  # a name; an index until resolve(net)
    weight: Any = 1.0

    def __call__(self, acts):
        a = acts[self.layer]
        b = a.shape[0]
        f = a.reshape(b, -1, a.shape[-1])
        g = jnp.einsum("bpc,bpd->bcd", f, f).reshape(b, -1)
        g = g / jnp.maximum(jnp.linalg.norm(g, axis=1, keepdims=True), 1e-12)
        sim = g @ g.T
        total = -(jnp.sum(sim) - jnp.trace(sim)) / b
        return jnp.full((b,), self.weight * total / b)

    @property
    def layers(self):
        return (self.layer,)

    def resolve(self, net):
        return Diversity(_layer(net, self.layer), self.weight)


# -- image regularisers (penalties: subtract them) --------------------------------------
@_pytree(["p", "constant"], [])
class Lp(Objective):
    """Σ |x − constant|^p over the image (0..1 scale); `p=1` lucid's L1, `p=2` L2."""

    p: Any = 2.0
    constant: Any = 0.0

    def __call__(self, acts):
        return jnp.sum(jnp.abs(acts[INPUT] - self.constant) ** self.p, axis=(1, 2, 3))


@_pytree(["beta"], [])
class TotalVariation(Objective):
    """Σ (|Δx|^β + |Δy|^β) over neighbouring pixels (β=1: TF's total_variation, lucid's)."""

    beta: Any = 1.0

    def __call__(self, acts):
        x = acts[INPUT]
        dy = jnp.abs(x[:, 1:] - x[:, :-1]) ** self.beta
        dx = jnp.abs(x[:, :, 1:] - x[:, :, :-1]) ** self.beta
        return jnp.sum(dy, axis=(1, 2, 3)) + jnp.sum(dx, axis=(1, 2, 3))


@_pytree(["sigma"], [])
class Blur(Objective):
    """½ Σ (x − stop_grad(blur_σ(x)))²: pulls the image towards its blurred self (lucid's blur_input_each_step)."""

    sigma: Any = 0.5

    def __call__(self, acts):
        x = acts[INPUT]
        return 0.5 * jnp.sum((x - jax.lax.stop_gradient(gaussian_blur(x, self.sigma))) ** 2, axis=(1, 2, 3))


# -- reconstruction (inversion, style transfer): penalties, subtract them ---------------------
def gram(a: jax.Array) -> jax.Array:
    """Gram matrices B×C×C of activations B×H×W×C, normalised by H·W·C (CS231n's `gram_matrix`)."""
    b, c = a.shape[0], a.shape[-1]
    f = a.reshape(b, -1, c)
    return jnp.einsum("bpc,bpd->bcd", f, f) / (f.shape[1] * c)


@_pytree(["target", "scale"], ["layer"])
class FeatureDistance(Objective):
    """scale · ‖Φ(x) − target‖² over all of a layer's values (target: the layer's shape without the batch axis,
    shared by the unit's images). A penalty: subtract it."""

    layer: str | int  # a name; an index until resolve(net)
    target: Any
    scale: Any = 1.0

    def __call__(self, acts):
        d = acts[self.layer] - jnp.asarray(self.target, jnp.float32)
        return self.scale * jnp.sum(d * d, axis=tuple(range(1, d.ndim)))

    @property
    def layers(self):
        return (self.layer,)

    def resolve(self, net):
        return FeatureDistance(_layer(net, self.layer), self.target, self.scale)


@_pytree(["target", "scale"], ["layer"])
class StyleDistance(Objective):
    """scale · ‖G(Φ(x)) − target‖²_F: Gatys et al.'s style loss of one layer (G = :func:`gram`, target C×C).
    A penalty: subtract it."""

    layer: str | int  # a name; an index until resolve(net)
    target: Any
    scale: Any = 1.0

    def __call__(self, acts):
        d = gram(acts[self.layer]) - jnp.asarray(self.target, jnp.float32)
        return self.scale * jnp.sum(d * d, axis=(1, 2))

    @property
    def layers(self):
        return (self.layer,)

    def resolve(self, net):
        return StyleDistance(_layer(net, self.layer), self.target, self.scale)


# -- public constructors (lucid's names) -------------------------------------------------
def channel(layer: str | int, c: int) -> Objective:
    """Mean activation of channel `c` of `layer` (0-based)."""
    return Channel(layer, jnp.int32(c))


def neuron(layer: str | int, c: int, x: int | None = None, y: int | None = None) -> Objective:
    """Channel `c` of `layer` at position (y, x); default the centre."""
    return Neuron(layer, jnp.int32(c), None if x is None else jnp.int32(x), None if y is None else jnp.int32(y))


def spatial(layer: str | int, c: int, mask) -> Objective:
    """Channel `c` weighted by `mask` (h×w, the layer's spatial size)."""
    return Spatial(layer, jnp.int32(c), jnp.asarray(mask, jnp.float32))


def class_logit(target: str | int) -> Objective:
    """Pre-softmax score of a class (name or index): Simonyan et al.'s class model objective."""
    return ClassScore(None, None, target, False)


def class_prob(target: str | int) -> Objective:
    """Softmax probability of a class (name or index)."""
    return ClassScore(None, None, target, True)


def direction(layer: str | int, vector) -> Objective:
    """Activation along `vector` (C,) in `layer`'s channel space."""
    return Direction(layer, jnp.asarray(vector, jnp.float32))


def diversity(layer: str | int, weight: float = 1.0) -> Objective:
    """Reward dissimilar styles (Gram matrices) across the batch of one unit (`batch` > 1)."""
    return Diversity(layer, jnp.float32(weight))


def l1(constant: float = 0.0) -> Objective:
    """Σ |x − constant| over the image (0..1 scale). Subtract it: `obj - 1e-3 * l1()`."""
    return Lp(jnp.float32(1.0), jnp.float32(constant))


def l2(constant: float = 0.0) -> Objective:
    """Σ (x − constant)² over the image."""
    return Lp(jnp.float32(2.0), jnp.float32(constant))


def lp(p: float, constant: float = 0.0) -> Objective:
    """Σ |x − constant|^p over the image."""
    return Lp(jnp.float32(p), jnp.float32(constant))


def total_variation(beta: float = 1.0) -> Objective:
    """Total variation of the image (β=1 as TF/lucid; β=2 as Mahendran–Vedaldi)."""
    return TotalVariation(jnp.float32(beta))


def blur(sigma: float = 0.5) -> Objective:
    """Distance of the image to its Gaussian-blurred self."""
    return Blur(jnp.float32(sigma))


def feature_distance(layer: str | int, target, *, normalize: bool = True, weight: float = 1.0) -> Objective:
    """‖Φ_layer(x) − target‖² (a penalty: subtract it); `normalize` divides by ‖target‖² (Mahendran–Vedaldi)."""
    t = jnp.asarray(target, jnp.float32)
    k = weight / jnp.maximum(jnp.sum(t * t), 1e-12) if normalize else weight
    return FeatureDistance(layer, t, jnp.float32(k))


def style_distance(layer: str | int, target_gram, *, normalize: bool = False, weight: float = 1.0) -> Objective:
    """‖G(Φ_layer(x)) − target_gram‖²_F with G the H·W·C-normalised Gram matrix (a penalty: subtract it);
    `normalize` divides by ‖target_gram‖²."""
    t = jnp.asarray(target_gram, jnp.float32)
    k = weight / jnp.maximum(jnp.sum(t * t), 1e-12) if normalize else weight
    return StyleDistance(layer, t, jnp.float32(k))


def units(layer: str | int, cs: Sequence[int]) -> list[Objective]:
    """One `channel(layer, c)` per c: the usual batch (every unit of a layer in one call)."""
    return [channel(layer, c) for c in cs]


# A layer's receptive field is "small" up to this share of the network's input side.
SMALL_FIELD = 0.25


def linear_in_image(net, layer: str | int) -> bool:
    """Whether `layer`'s activations are affine in the image: for random images x1, x2 and a random step d,
    f(x1 + d) − f(x1) = f(x2 + d) − f(x2) (to float rounding). A ReLU, pooling or normalisation on the way
    breaks it; a convolution straight on the image (SqueezeNet and AlexNet `conv1`) keeps it. Memoised."""
    name = net.layer_name(layer)

    def compute() -> bool:
        h, w = net.input_size
        x1, x2, d = (127.5 + 60.0 * jax.random.normal(k, (1, h, w, 3)) for k in jax.random.split(jax.random.PRNGKey(0), 3))
        a = net.function([name])(net.params, jnp.concatenate([x1, x1 + d, x2, x2 + d]))[name]
        lhs, rhs = a[1] - a[0], a[3] - a[2]
        return bool(jnp.max(jnp.abs(lhs - rhs)) <= 1e-4 * jnp.maximum(jnp.max(jnp.abs(a)), 1e-12))

    return net.cache.memo(("objectives", "linear_in_image", name), compute)


def fits_neuron(net, layer: str | int) -> bool:
    """The rule for a layer's default objective (docs/visualize.md): a layer that is linear in the image and
    has a small receptive field (at most :data:`SMALL_FIELD` of the input side) is visualised by its centre
    neuron. Its channel mean is linear in the pixels, so the mean's optimum is a flat, saturated colour —
    the objective, not the optimiser, would be wrong; one neuron's optimum is the filter's pattern."""
    name = net.layer_name(layer)
    rf = receptive_field(net, name)
    if not rf.spatial or max(rf.size[0] / net.input_size[0], rf.size[1] / net.input_size[1]) > SMALL_FIELD:
        return False
    return linear_in_image(net, name)


def unit_objectives(net, layer: str | int, cs: Sequence[int]) -> list[Objective]:
    """The objective that fits each unit c of `layer`: `neuron(layer, c)` where :func:`fits_neuron`,
    else `channel(layer, c)`. What `visualize(net, layer)` and the gallery use."""
    name = net.layer_name(layer)
    make = neuron if fits_neuron(net, name) else channel
    return [make(name, c) for c in cs]


def stack(objectives: Sequence[Objective]) -> Objective:
    """Objectives that differ only in numbers, as one objective with a leading unit axis (for `vmap`)."""
    objectives = list(objectives)
    defs = {jax.tree.structure(o) for o in objectives}
    if len(defs) != 1:
        raise VisualizationError(
            "objectives optimised in one batch must have the same form (same layers and terms, different "
            f"numbers); got {len(defs)} different forms. Run differently-shaped objectives in separate calls.")
    return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *objectives)
