"""Fooling images (CS231n's `make_fooling_image`), targeted FGSM and L∞ PGD, batched over (image, target) pairs.

All pairs run in one jit-compiled `lax.while_loop` (cached in the network's jit cache): each
iteration computes every pair's logits and input gradient at once, marks the pairs the network
already classifies as their target as done, and moves only the others. A done pair never changes
again, and the loop ends when every pair is done or after `max_steps`. The steps are optax
transformations as in the engine (`g/‖g‖` for CS231n, `sign(g)` for FGSM/PGD), the objective the
engine's class score.

Why not :func:`jaxvis.engine.optimize`: that loop runs a fixed number of steps with a fixed
projection; fooling stops each pair on the network's prediction and projects onto a ball around
each pair's own photo.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..engine import objectives as O
from ..engine.presets import IMAGENET_STD, optimizer
from ..errors import ImageError, VisualizationError
from ..imaging.images import ImageLike, to_batch
from ..imaging.notebook import Picture

METHODS = ("cs231n", "fgsm", "pgd")
CS231N_STEP = 255.0 * IMAGENET_STD  # CS231n's learning rate 1 in ImageNet-normalised units, in pixels (L2)


@dataclasses.dataclass
class FoolResult(Picture):
    """Output of :func:`fool`, one row per (image, target) pair.

    Attributes:
      images: float32 N×H×W×3 fooling images, 0..255 RGB (the network's input scale).
      originals: float32 N×H×W×3 the images they started from.
      targets: int N, 0-based target classes.
      success: bool N, the network's top-1 for the fooling image is the target (False: not reached
        within `max_steps`, or FGSM's single step missed).
      steps: int N, gradient steps taken (0: the image already was the target).
      top5: per pair [(class name, probability), …] of the fooling image, best first.
      settings: method, eps, step_size, max_steps, clip.
    """

    images: np.ndarray
    originals: np.ndarray
    targets: np.ndarray
    success: np.ndarray
    steps: np.ndarray
    top5: list[list[tuple[str, float]]]
    settings: dict[str, Any]

    @property
    def perturbation(self) -> np.ndarray:
        """images − originals, pixel units (float32 N×H×W×3)."""
        return self.images - self.originals

    @property
    def l2(self) -> np.ndarray:
        """‖perturbation‖₂ per pair (pixel units)."""
        return np.sqrt(np.sum(self.perturbation.astype(np.float64) ** 2, axis=(1, 2, 3)))

    @property
    def linf(self) -> np.ndarray:
        """max |perturbation| per pair (pixel units)."""
        return np.max(np.abs(self.perturbation), axis=(1, 2, 3))

    def magnified(self, factor: float | None = None, percentile: float = 99.5) -> np.ndarray:
        """The perturbation as a picture: uint8 N×H×W×3, mid-grey = no change, `factor`× amplified
        (default: each pair's `percentile` of |change| maps to full range, as CS231n's rescaled difference
        but robust: with the maximum, the few pixels a normalised step changes most set the scale and
        leave the rest of the picture flat grey)."""
        d = self.perturbation
        if factor is None:
            a = np.abs(d).reshape(len(d), -1)
            m = np.percentile(a, percentile, axis=1) if a.shape[1] else np.zeros(len(d))
            m = np.maximum(np.where(m > 0, m, a.max(axis=1, initial=0)), 1e-6).reshape(-1, 1, 1, 1)
            return np.round(np.clip(127.5 + 127.5 * d / m, 0, 255)).astype(np.uint8)
        return np.round(np.clip(127.5 + float(factor) * d, 0, 255)).astype(np.uint8)

    def picture(self, index: int | None = None) -> np.ndarray:
        """original | fooling image | magnified difference, one row per pair (`index`: that pair only): what
        ``.save(path, index=)`` writes and a notebook shows. uint8."""
        rows = range(len(self.images)) if index is None else [index]
        mag = self.magnified()
        return np.concatenate([np.concatenate([np.round(np.clip(self.originals[i], 0, 255)).astype(np.uint8),
                                               np.round(np.clip(self.images[i], 0, 255)).astype(np.uint8),
                                               mag[i]], axis=1) for i in rows], axis=0)


def scale_by_sign() -> optax.GradientTransformation:
    """sign(g): the FGSM/PGD step direction."""
    return optax.GradientTransformation(lambda p: optax.EmptyState(),
                                        lambda g, s, p=None: (jax.tree.map(jnp.sign, g), s))


_SIGN = optax.chain(scale_by_sign(), optax.scale(-1.0))


def _loop(net, method: str, clip: bool, ball: bool):
    """Cached jit `(params, x0, targets, index, step, eps, max_steps) -> (x, steps, logits)`."""
    layer = net.logits_layer
    fn = net.function([layer])
    opt = optimizer("normalized") if method == "cs231n" else _SIGN

    def make():
        def loss(x, params, targets, index):
            z = fn(params, x)[layer].reshape(x.shape[0], -1)
            if method == "cs231n":  # maximise the target's score (pre-softmax)
                v = jax.vmap(lambda o, zi: o({layer: zi[None]})[0])(index, z)
            else:                   # minimise the target's cross-entropy (targeted FGSM / PGD)
                v = jnp.take_along_axis(jax.nn.log_softmax(z, axis=-1), targets[:, None], axis=-1)[:, 0]
            return -jnp.sum(v), z

        vg = jax.value_and_grad(loss, has_aux=True)

        def run(params, x0, targets, index, step, eps, max_steps):
            n = x0.shape[0]

            def project(x):
                if ball:
                    x = jnp.clip(x, x0 - eps, x0 + eps)
                return jnp.clip(x, 0.0, 255.0) if clip else x

            def cond(c):
                k, _, done, _ = c
                return (k < max_steps) & ~jnp.all(done)

            def body(c):
                k, x, done, steps = c
                (_, z), g = vg(x, params, targets, index)
                done = done | (jnp.argmax(z, axis=-1) == targets)  # CS231n: test the prediction, then step
                upd, _ = opt.update(g, opt.init(x), x)
                moved = project(x + step * upd)
                active = ~done
                x = jnp.where(active[:, None, None, None], moved, x)
                return k + 1, x, done, steps + active.astype(jnp.int32)

            c0 = (jnp.int32(0), x0, jnp.zeros(n, bool), jnp.zeros(n, jnp.int32))
            _, x, _, steps = jax.lax.while_loop(cond, body, c0)
            z = fn(params, x)[layer].reshape(n, -1)
            return x, steps, z

        return run

    return net.cache.jit(("fool", "step", method, clip, ball), make)


def _pairs(net, image, target) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(image, np.ndarray) and image.ndim not in (2, 3, 4):
        raise ImageError(f"image has shape {image.shape}; expected H×W×3 (one image) or N×H×W×3 (a batch)")
    batch, _ = to_batch(image)
    ts = [target] if isinstance(target, (str, int, np.integer)) else list(np.asarray(target).tolist()
                                                                          if isinstance(target, np.ndarray)
                                                                          else target)
    if not ts:
        raise VisualizationError("target is empty: give a class name or 0-based index (or one per image)")
    idx = np.array([O.class_index(net.classes, t) for t in ts], np.int32)
    n = max(len(batch), len(idx))
    if len(batch) not in (1, n) or len(idx) not in (1, n):
        raise VisualizationError(f"{len(batch)} images and {len(idx)} targets: give one target per image, one "
                                 "target for all images, or one image for all targets")
    return np.broadcast_to(batch, (n, *batch.shape[1:])).copy(), np.broadcast_to(idx, (n,)).copy()


def fool(net, image: ImageLike, target, *, method: str = "cs231n", eps: float | None = None,
         max_steps: int = 100, step_size: float | None = None, clip: bool = True) -> FoolResult:
    """Fooling images: small changes to photos that make the network predict a target class.

    Methods (all pairs in one batched, jit-compiled loop; a pair stops once its top-1 is the target):

    - 'cs231n' (CS231n's `make_fooling_image`): ascend the target's pre-softmax score with
      normalised steps `step_size · g/‖g‖₂` until the network predicts the target, at most
      `max_steps` steps. Default step 57.6 pixel units (CS231n's learning rate 1 in
      ImageNet-normalised units). `eps`, if given, bounds the change per pixel (L∞).
    - 'fgsm' (targeted fast gradient sign): one step `x − eps · sign(∇x CE(x, target))`.
    - 'pgd' (targeted L∞ projected gradient descent, no random start): steps of
      `step_size · sign(∇)` (default eps/10) projected onto the eps-ball around the photo and the
      pixel range, until the target is predicted or `max_steps`.

    A pair already classified as its target returns unchanged with 0 steps. A pair that does not
    reach its target is reported (`success` False), not raised.

    Args:
      net: any jaxvis network with class scores.
      image: one image or a batch (path, PIL, H×W×3 or N×H×W×3 array, 0..255 RGB), fed at its size.
      target: class name or 0-based index, or one per image (or several targets for one image).
      method: 'cs231n', 'fgsm' or 'pgd'.
      eps: L∞ bound in pixel units (0..255); required for 'fgsm' and 'pgd', > 0.
      max_steps: most gradient steps per pair (≥ 1; FGSM takes one).
      step_size: per-step size in pixel units (cs231n: L2 norm of the step; pgd: per pixel).
      clip: keep images within 0..255 after every step (default True).

    Returns:
      :class:`FoolResult`.

    Raises:
      ImageError: images of the wrong rank/channels. VisualizationError: unknown class (close matches),
      unknown method, eps ≤ 0 or missing, max_steps < 1, a network without class scores.
    """
    if method not in METHODS:
        raise VisualizationError(f"unknown fooling method {method!r}; known: {', '.join(METHODS)}")
    if net.logits_layer is None:
        raise VisualizationError(f"{net.name!r} has no class-score layer: give from_function(..., logits=...)")
    if eps is not None and not (np.isfinite(eps) and eps > 0):
        raise VisualizationError(f"eps is the largest change per pixel in 0..255 units and must be > 0, got {eps!r}")
    if method in ("fgsm", "pgd") and eps is None:
        raise VisualizationError(f"method {method!r} needs eps > 0 (pixel units, 0..255; e.g. eps=2)")
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise VisualizationError(f"max_steps must be an integer >= 1, got {max_steps!r}")
    if step_size is not None and not (np.isfinite(step_size) and step_size > 0):
        raise VisualizationError(f"step_size must be > 0 (pixel units), got {step_size!r}")
    net.require_weights([net.logits_layer])
    x0, targets = _pairs(net, image, target)
    steps_max = 1 if method == "fgsm" else int(max_steps)
    step = float({"cs231n": CS231N_STEP, "fgsm": eps or 0.0, "pgd": (eps or 0) / 10.0}[method]
                 if step_size is None else step_size)
    if method == "fgsm":
        step = float(eps or 0.0)
    index = O.stack([O.class_logit(int(t)).resolve(net) for t in targets])  # the engine's class score, per pair
    run = _loop(net, method, bool(clip), eps is not None)
    x, steps, z = run(net.params, jnp.asarray(x0), jnp.asarray(targets), index, jnp.float32(step),
                      jnp.float32(eps or 0.0), jnp.int32(steps_max))
    z = np.asarray(z, np.float64)
    prob = np.exp(z - z.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    name = (lambda i: net.classes[i]) if net.classes else str
    top5 = [[(name(int(i)), float(p[i])) for i in np.argsort(-p)[:5]] for p in prob]
    success = np.argmax(z, axis=1) == targets
    settings = dict(method=method, eps=eps, step_size=float(step), max_steps=steps_max, clip=bool(clip),
                    network=net.name)
    return FoolResult(np.asarray(x, np.float32), x0.astype(np.float32), targets, success,
                      np.asarray(steps, np.int64), top5, settings)
