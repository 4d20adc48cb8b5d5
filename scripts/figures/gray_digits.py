"""Walkthrough: a 1-channel (grayscale) CNN written as a plain JAX function with `jax.nn.relu`, no hooks.

  python scripts/figures/gray_digits.py [--out out/gray_digits] [--steps 1000]

1. trains a small CNN on scikit-learn's 8×8 handwritten digits (1797 images, upscaled to 24×24 gray,
   0..255; the last 297 held out) for a few hundred Adam steps,
2. wraps it with `jaxvis.from_function` (the function takes no `relu` keyword: guided backprop and the
   default preset's RedirectedReLU come from the function's jaxpr; `input_channels` = 1 from its shapes),
3. classifies held-out digits, and renders, for the figure docs/images/any_network_digits.png:
   row 1: one class visualisation per digit (`visualize`, preset 'matlab': deepDreamImage's pyramid and
   Laplacian-normalised ascent on the class logit, gray images), row 2: the first held-out example of
   each digit, row 3: its guided-backprop map for the predicted class (`saliency`), over the digit.
   (The 'lucid' preset's sigmoid saturates on this small net's unbounded logits: black and white blobs.)

Needs scikit-learn (pip install 'jaxvis[data]').
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run from a source checkout

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import jaxvis  # noqa: E402
from jaxvis import objectives as O  # noqa: E402
from jaxvis.imaging.display import imresize, imtile, save_png  # noqa: E402

SIZE = 24
HELD_OUT = 297


def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as N×24×24×1 float32 0..255 (bilinear upscale of the 8×8, 0..16 values) and labels."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x = jax.image.resize(jnp.asarray(d.images[..., None] * (255.0 / 16.0), jnp.float32), (len(d.images), SIZE, SIZE, 1),
                         "bilinear")
    return np.clip(np.asarray(x), 0, 255), d.target.astype(np.int32)


def conv(x, w, b):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")) + b


def pool(x):
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def apply(p, x):
    """The network as a user writes it: named outputs, `jax.nn.relu`, no hook."""
    c1 = conv(x, p["w1"], p["b1"])
    r1 = jax.nn.relu(c1)
    c2 = conv(pool(r1), p["w2"], p["b2"])
    r2 = jax.nn.relu(c2)
    flat = pool(r2).reshape(x.shape[0], -1)
    return {"conv1": c1, "relu1": r1, "conv2": c2, "relu2": r2, "logits": flat @ p["w3"] + p["b3"]}


def preprocess(x):
    return x / 255.0


def init(seed: int = 0) -> dict:
    r = np.random.default_rng(seed)
    f = lambda *s: jnp.asarray(r.normal(0, np.sqrt(2 / np.prod(s[:-1])), s), jnp.float32)  # noqa: E731
    return {"w1": f(3, 3, 1, 16), "b1": jnp.zeros(16), "w2": f(3, 3, 16, 32), "b2": jnp.zeros(32),
            "w3": f(6 * 6 * 32, 10) * 0.5, "b3": jnp.zeros(10)}


def train(x, y, steps: int, seed: int = 0) -> dict:
    p, opt = init(seed), optax.adam(2e-3)
    state = opt.init(p)

    @jax.jit
    def step(p, state, xb, yb):
        loss = lambda q: optax.softmax_cross_entropy_with_integer_labels(apply(q, preprocess(xb))["logits"], yb).mean()  # noqa: E731
        g = jax.grad(loss)(p)
        upd, state = opt.update(g, state)
        return optax.apply_updates(p, upd), state

    r = np.random.default_rng(seed)
    for _ in range(steps):
        i = r.integers(0, len(x), 128)
        p, state = step(p, state, x[i], y[i])
    return p


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("out/gray_digits"))
    ap.add_argument("--steps", type=int, default=1000, help="training steps")
    ap.add_argument("--figure", type=Path, default=ROOT / "docs" / "images" / "any_network_digits.png")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    x, y = digits()
    params = train(x[:-HELD_OUT], y[:-HELD_OUT], a.steps)
    net = jaxvis.from_function(apply, params, input_size=SIZE, classes=[str(i) for i in range(10)],
                               preprocess=preprocess, name="digits")
    print(f"{net.name}: input_channels={net.input_channels}, relu_rules={sorted(net.relu_rules)}")
    test_x, test_y = x[-HELD_OUT:], y[-HELD_OUT:]
    pred = np.array([int(top[0][0]) for top in jaxvis.classify(net, list(test_x), top=1)])
    print(f"held-out accuracy: {np.mean(pred == test_y):.3f} ({HELD_OUT} digits)")

    vis = jaxvis.visualize(net, [O.class_logit(str(c)) for c in range(10)], preset="matlab", progress=False)
    pick = [int(np.flatnonzero(test_y == c)[0]) for c in range(10)]  # the first held-out example of each digit
    maps = [jaxvis.saliency(net, test_x[i], None, method="guided_backprop") for i in pick]
    big = lambda im: imresize(np.asarray(im, np.float32) / 255.0, (72, 72), method="nearest")  # noqa: E731
    rows = [big(np.repeat(v, 3, -1)) for v in vis.images]
    rows += [big(np.repeat(test_x[i], 3, -1)) for i in pick]
    rows += [big(m.overlay(alpha=0.6) * 255) for m in maps]
    fig = imtile(rows, grid_size=(3, 10), border_size=2, background_color=(255, 255, 255))
    for path in (a.out / "digits.png", a.figure):
        save_png(path, fig)
        print(f"wrote {path}")
    print("predicted for the shown digits:", [m.target.class_name for m in maps])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
