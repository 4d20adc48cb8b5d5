"""Small pure objectives in the style of lucid: functions of a layer's activations.

An :class:`Objective` maps the activation dict `{layer: N×H×W×C}` returned by a
network function to one value per image (shape (N,)). Objectives add, subtract,
negate and scale, so `channel_mean("conv5", 3) - 0.5 * channel_mean("conv5", 7)`
is again an objective. The channel may be a traced integer, which is how one
compiled dream serves every channel: under `jax.vmap` each image gets its own.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

Acts = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class Objective:
    """A function `acts -> (N,)` with the layers it reads (so the network can be cut after them)."""

    fn: Callable[[Acts], jax.Array]
    layers: tuple[str, ...]

    def __call__(self, acts: Acts) -> jax.Array:
        return self.fn(acts)

    def __add__(self, other: "Objective") -> "Objective":
        return Objective(lambda a: self(a) + other(a), tuple(dict.fromkeys(self.layers + other.layers)))

    def __sub__(self, other: "Objective") -> "Objective":
        return self + (-1.0) * other

    def __neg__(self) -> "Objective":
        return (-1.0) * self

    def __mul__(self, k: float) -> "Objective":
        return Objective(lambda a: k * self(a), self.layers)

    __rmul__ = __mul__


def channel_mean(layer: str, channel) -> Objective:
    """Mean activation of `channel` of `layer` over spatial positions, per image.

    For a fully connected layer (N×1×1×C) this is the neuron itself; for `fc8`
    it is the pre-softmax class score.

    Args:
      layer: layer name.
      channel: 0-based channel index; a Python int or a (traced) integer scalar.
    """
    def fn(acts: Acts) -> jax.Array:
        # Spatial mean first, then pick: the gradient is then a cheap broadcast of a
        # one-hot vector, not a scatter into a full N×H×W×C array.
        return jnp.take(jnp.mean(acts[layer], axis=(1, 2)), channel, axis=-1)

    return Objective(fn, (layer,))


def image_objective(net_fn: Callable[[dict, jax.Array], Acts], objective: Objective):
    """`(params, image H×W×3) -> scalar` for one image, the form `jax.vmap(jax.grad(...))` wants."""
    def f(params, image: jax.Array) -> jax.Array:
        return objective(net_fn(params, image[None]))[0]

    return f


def dream_objective(net_fn: Callable[[dict, jax.Array], Acts], layer: str):
    """The deep-dream objective for a vmapped batch: `(params, image, channel) -> scalar`.

    `jax.vmap(dream_objective(fn, layer), in_axes=(None, 0, 0))(params, images, channels)`
    gives image i's mean activation of channel `channels[i]`.
    """
    def f(params, image: jax.Array, channel: jax.Array) -> jax.Array:
        return image_objective(net_fn, channel_mean(layer, channel))(params, image)

    return f
