"""Tiny networks for fast tests: the same small CNN as a plain JAX function, a Flax NNX module and a
Flax Linen module (conv 3→8 stride 2, ReLU, conv 8→16, ReLU, global average pool, dense 16→5)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

CLASSES = ["ant", "bee", "cat", "dog", "eel"]
SIZE = 32


def params(seed: int = 0) -> dict:
    r = np.random.default_rng(seed)
    return {"w1": jnp.asarray(r.normal(0, 0.3, (3, 3, 3, 8)), jnp.float32), "b1": jnp.zeros(8) + 0.05,
            "w2": jnp.asarray(r.normal(0, 0.3, (3, 3, 8, 16)), jnp.float32), "b2": jnp.zeros(16) + 0.05,
            "w3": jnp.asarray(r.normal(0, 0.3, (16, 5)), jnp.float32), "b3": jnp.zeros(5)}


def _conv(x, w, b, stride):
    return jax.lax.conv_general_dilated(x, w, (stride, stride), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC")) + b


def apply(p, x, relu=jax.nn.relu):
    """Pure JAX: images (0..1 scaled by `preprocess`) → named activations."""
    c1 = _conv(x, p["w1"], p["b1"], 2)
    r1 = relu(c1)
    c2 = _conv(r1, p["w2"], p["b2"], 1)
    r2 = relu(c2)
    pool = r2.mean(axis=(1, 2))
    return {"conv1": c1, "relu1": r1, "conv2": c2, "relu2": r2, "pool": pool, "logits": pool @ p["w3"] + p["b3"]}


def preprocess(x):
    return x / 255.0 - 0.5


def pure_net():
    import jaxvis
    return jaxvis.from_function(apply, params(), input_size=SIZE, classes=CLASSES, preprocess=preprocess,
                                name="tiny-jax")


def nnx_net():
    """The same network as a Flax NNX module (weights copied from `params()`)."""
    from flax import nnx

    import jaxvis

    class Tiny(nnx.Module):
        def __init__(self, rngs):
            self.c1 = nnx.Conv(3, 8, (3, 3), strides=2, padding="SAME", rngs=rngs)
            self.c2 = nnx.Conv(8, 16, (3, 3), padding="SAME", rngs=rngs)
            self.fc = nnx.Linear(16, 5, rngs=rngs)

        def __call__(self, x, relu=jax.nn.relu):
            c1 = self.c1(x)
            r1 = relu(c1)
            c2 = self.c2(r1)
            r2 = relu(c2)
            pool = r2.mean(axis=(1, 2))
            return {"conv1": c1, "relu1": r1, "conv2": c2, "relu2": r2, "pool": pool, "logits": self.fc(pool)}

    m = Tiny(nnx.Rngs(0))
    p = params()
    m.c1.kernel.value, m.c1.bias.value = p["w1"], p["b1"]
    m.c2.kernel.value, m.c2.bias.value = p["w2"], p["b2"]
    m.fc.kernel.value, m.fc.bias.value = p["w3"], p["b3"]
    graphdef, state = nnx.split(m)

    def fn(state, x, relu=jax.nn.relu):
        return nnx.merge(graphdef, state)(x, relu=relu)

    return jaxvis.from_function(fn, state, input_size=SIZE, classes=CLASSES, preprocess=preprocess, name="tiny-nnx")


def linen_net():
    """The same network as a Flax Linen module."""
    import flax.linen as nn

    import jaxvis

    class Tiny(nn.Module):
        @nn.compact
        def __call__(self, x, relu=jax.nn.relu):
            c1 = nn.Conv(8, (3, 3), strides=2, padding="SAME", name="c1")(x)
            r1 = relu(c1)
            c2 = nn.Conv(16, (3, 3), padding="SAME", name="c2")(r1)
            r2 = relu(c2)
            pool = r2.mean(axis=(1, 2))
            return {"conv1": c1, "relu1": r1, "conv2": c2, "relu2": r2, "pool": pool,
                    "logits": nn.Dense(5, name="fc")(pool)}

    p = params()
    variables = {"params": {"c1": {"kernel": p["w1"], "bias": p["b1"]}, "c2": {"kernel": p["w2"], "bias": p["b2"]},
                            "fc": {"kernel": p["w3"], "bias": p["b3"]}}}
    mod = Tiny()
    return jaxvis.from_function(lambda v, x, relu=jax.nn.relu: mod.apply(v, x, relu=relu), variables,
                                input_size=SIZE, classes=CLASSES, preprocess=preprocess, name="tiny-linen")
