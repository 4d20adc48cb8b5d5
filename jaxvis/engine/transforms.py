"""Random, differentiable image transforms with explicit keys (lucid's transformation robustness).

Each transform is a hashable description called as `t(key, images) -> images` on a
B×H×W×3 batch (one random draw per call, shared by the batch, as lucid's). Shapes are
static: `jitter(d)` crops d pixels, `pad(w)` adds 2w; scale and rotation resample into
one canvas (zoom and turn about the centre, bilinear) large enough for the largest zoom,
so the network sees one size and one compiled function serves every step.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import ClassVar

import jax
import jax.numpy as jnp
from jax.scipy.ndimage import map_coordinates

from ..errors import VisualizationError


class Transform(abc.ABC):
    # Scheduled transforms are also given the run's progress (0 at the first step, 1 at the last, traced).
    scheduled: ClassVar[bool] = False

    @abc.abstractmethod
    def __call__(self, key: jax.Array, x: jax.Array) -> jax.Array:
        """`x` (B×H×W×3) transformed by one random draw from `key`."""

    def out_size(self, hw: tuple[int, int]) -> tuple[int, int]:
        return hw


@dataclasses.dataclass(frozen=True)
class Pad(Transform):
    """Pad by `width` on every side with a constant (lucid: 0.5 grey) or 'reflect'."""

    width: int
    value: float | str = 0.5

    def __call__(self, key, x):
        p = ((0, 0), (self.width, self.width), (self.width, self.width), (0, 0))
        if self.value == "reflect":
            return jnp.pad(x, p, mode="reflect")
        return jnp.pad(x, p, constant_values=float(self.value))

    def out_size(self, hw):
        return (hw[0] + 2 * self.width, hw[1] + 2 * self.width)


@dataclasses.dataclass(frozen=True)
class Jitter(Transform):
    """Random crop of size (H−d, W−d) at offsets 0..d−1: lucid's jitter(d)."""

    d: int

    def __call__(self, key, x):
        if self.d <= 0:
            return x
        oy, ox = jax.random.randint(key, (2,), 0, self.d)
        b, h, w, c = x.shape
        return jax.lax.dynamic_slice(x, (0, oy, ox, 0), (b, h - self.d, w - self.d, c))

    def out_size(self, hw):
        return (hw[0] - max(self.d, 0), hw[1] - max(self.d, 0))


@dataclasses.dataclass(frozen=True)
class Roll(Transform):
    """Circular shift by up to ±d pixels per axis (CS231n's and DeepDream's jitter); size kept."""

    d: int

    def __call__(self, key, x):
        if self.d <= 0:
            return x
        dy, dx = jax.random.randint(key, (2,), -self.d, self.d + 1)
        return jnp.roll(x, (dy, dx), axis=(1, 2))


def affine(x: jax.Array, scale: jax.Array | float, angle_deg: jax.Array | float, fill: float = 0.5,
           out_hw: tuple[int, int] | None = None, reach: float | None = None) -> jax.Array:
    """Zoom by `scale` and rotate by `angle_deg` about the centre, bilinear, onto an `out_hw` canvas
    (default the input's size) centred on the input's centre; outside the input → `fill`.

    Args:
        x: B×H×W×C images.
        scale, angle_deg: the zoom and the turn (degrees); may be traced (random draws). Not differentiated.
        fill: the value outside the input.
        out_hw: the canvas (default H×W).
        reach: a static bound on scale·(|cos a| + |sin a|) over the values `scale` and `angle_deg` can take.
            Given (or computable because both are concrete), the image gradient is a gather of at most
            ⌊2·reach + 1⌋² output pixels per input pixel instead of autodiff's scatter-add (faster on
            XLA:CPU: docs/benchmarks.md, S1); a traced pair without it gets autodiff's.

    Returns:
        B×out_h×out_w×C.
    """
    oh, ow = out_hw or x.shape[1:3]
    if reach is None:
        try:
            s_, a_ = float(scale), math.radians(float(angle_deg))
            reach = abs(s_) * (abs(math.cos(a_)) + abs(math.sin(a_)))
        except (TypeError, jax.errors.ConcretizationTypeError):
            return _bilinear(x, jnp.float32(scale), jnp.deg2rad(jnp.float32(angle_deg)), (oh, ow), fill)
    return _affine(x, jnp.float32(scale), jnp.deg2rad(jnp.float32(angle_deg)), (oh, ow), float(fill), float(reach))


def _source(qy, qx, scale, t, hw, ohw):
    """The input position output pixel (qy, qx) samples: R(−t)·q / scale about the centres."""
    yy, xx = qy - (ohw[0] - 1) / 2.0, qx - (ohw[1] - 1) / 2.0
    return ((jnp.cos(t) * yy - jnp.sin(t) * xx) / scale + (hw[0] - 1) / 2.0,
            (jnp.sin(t) * yy + jnp.cos(t) * xx) / scale + (hw[1] - 1) / 2.0)


def _rows(x):  # B×H×W×C → (H·W)×(B·C): every image and channel shares the sampling positions
    b, h, w, c = x.shape
    return x.transpose(1, 2, 0, 3).reshape(h * w, b * c)


def _unrows(r, b, h, w, c):
    return r.reshape(h, w, b, c).transpose(2, 0, 1, 3)


def _tent(d):
    return jnp.maximum(0.0, 1.0 - jnp.abs(d))


def _bilinear(x, scale, t, ohw, fill):
    """Bilinear sampling as scipy's map_coordinates(order=1, mode='constant', cval=fill): each of the four
    corners outside the input counts as `fill`. One row gather per corner for all images and channels."""
    b, h, w, c = x.shape
    qy, qx = jnp.meshgrid(jnp.arange(ohw[0], dtype=jnp.float32), jnp.arange(ohw[1], dtype=jnp.float32),
                          indexing="ij")
    sy, sx = _source(qy, qx, scale, t, (h, w), ohw)
    y0, x0 = jnp.floor(sy), jnp.floor(sx)
    rows, out, outside = _rows(x), 0.0, 0.0
    for dy in (0, 1):
        for dx in (0, 1):
            iy, ix = y0 + dy, x0 + dx
            wgt = _tent(sy - iy) * _tent(sx - ix)
            inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
            idx = (jnp.clip(iy, 0, h - 1) * w + jnp.clip(ix, 0, w - 1)).astype(jnp.int32).reshape(-1)
            out = out + jnp.where(inside, wgt, 0.0).reshape(-1, 1) * jnp.take(rows, idx, axis=0, mode="clip")
            outside = outside + jnp.where(inside, 0.0, wgt)
    return _unrows(out + fill * outside.reshape(-1, 1), b, *ohw, c)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _affine(x, scale, t, ohw, fill, reach):
    return _bilinear(x, scale, t, ohw, fill)


def _affine_fwd(x, scale, t, ohw, fill, reach):
    return _bilinear(x, scale, t, ohw, fill), (x.shape, scale, t)


def _affine_bwd(ohw, fill, reach, res, ct):
    """The transpose of the sampling as a gather (autodiff's is a scatter-add, slow on XLA:CPU).

    Input pixel p gets ct[q]·tent(s_y(q) − p_y)·tent(s_x(q) − p_x) from every output pixel q; those with a
    non-zero weight lie within `reach` of the inverse map's image of p along each axis, so the ⌊2·reach⌋ + 1
    integers after ⌊centre − reach⌋ per axis hold them all; the weights are recomputed exactly as the
    forward's (same `_source`), so the result is the forward's transpose, not an approximation."""
    (b, h, w, c), scale, t = res
    n = int(math.floor(2 * reach)) + 1
    py, px = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij")
    vy, vx = py - (h - 1) / 2.0, px - (w - 1) / 2.0
    cy = scale * (jnp.cos(t) * vy + jnp.sin(t) * vx) + (ohw[0] - 1) / 2.0
    cx = scale * (jnp.cos(t) * vx - jnp.sin(t) * vy) + (ohw[1] - 1) / 2.0
    by, bx = jnp.floor(cy - reach) + 1, jnp.floor(cx - reach) + 1
    rows, acc = _rows(ct), 0.0
    for i in range(n):
        for j in range(n):
            qy, qx = by + i, bx + j
            sy, sx = _source(qy, qx, scale, t, (h, w), ohw)
            inside = (qy >= 0) & (qy < ohw[0]) & (qx >= 0) & (qx < ohw[1])
            wgt = jnp.where(inside, _tent(sy - py) * _tent(sx - px), 0.0)
            idx = (jnp.clip(qy, 0, ohw[0] - 1) * ohw[1] + jnp.clip(qx, 0, ohw[1] - 1)).astype(jnp.int32).reshape(-1)
            acc = acc + wgt.reshape(-1, 1) * jnp.take(rows, idx, axis=0, mode="clip")
    return _unrows(acc, b, h, w, c), jnp.zeros_like(scale), jnp.zeros_like(t)


_affine.defvjp(_affine_fwd, _affine_bwd)


@dataclasses.dataclass(frozen=True)
class RandomAffine(Transform):
    """Random zoom from `scales` and rotation from `angles` (degrees), each drawn uniformly from its list.

    As lucid's `random_scale` (a resize: zooming in enlarges the image, nothing is cut), the canvas
    grows to hold a zoom of `canvas` (default the largest, max(scales); rounded up to keep its parity),
    with `fill` around smaller zooms. A
    same-size canvas would cut up to (max(scales) − 1)/2 of the canvas off every side on zoom-in, so
    the image's border pixels would be seen in fewer steps than its interior; that weaker, stepped
    gradient at the border is what Adam in Fourier space turns into a bright frame (conv1 units).
    A canvas for zoom 1.045 (lucid's standard transforms here) keeps the border seen 0.92 as often as the
    interior at lucid's average cost: the network sees 251 px where lucid's resize averages 239 and
    reaches 263 (docs/quality.md: the frame statistic 0.119 against 0.102 for the full 1.1 canvas, 0.276
    for lucid's recipe).
    """

    scales: tuple[float, ...] = (1.0,)
    angles: tuple[float, ...] = (0.0,)
    fill: float = 0.5
    canvas: float | None = None

    def __call__(self, key, x):
        ks, ka = jax.random.split(key)
        s = jax.random.choice(ks, jnp.asarray(self.scales, jnp.float32))
        a = jax.random.choice(ka, jnp.asarray(self.angles, jnp.float32))
        return affine(x, s, a, self.fill, self.out_size(x.shape[1:3]), self.reach)

    @property
    def reach(self) -> float:
        """scale·(|cos a| + |sin a|) at its largest over the lists: the backward gather's window (affine)."""
        turn = max(abs(math.cos(math.radians(a))) + abs(math.sin(math.radians(a))) for a in self.angles)
        return max(abs(s) for s in self.scales) * turn

    def out_size(self, hw):
        # grown by an even number of pixels, so the canvas' centre stays on the input's pixel grid (an odd
        # growth would put every sample half a pixel off: a [½ ½] blur at zoom 1)
        m = max(1.0, *self.scales) if self.canvas is None else max(1.0, float(self.canvas))
        return tuple(int(n + 2 * math.ceil(n * (m - 1) / 2 - 1e-6)) for n in hw)


@dataclasses.dataclass(frozen=True)
class RandomCrops(Transform):
    """`n` random crops of every image, resized (bilinear) to `out` (default the image's size), plus
    Gaussian noise: MACO's per-step views (Fel et al. 2023). Images out: B·n, image-major.

    A crop's side is the fraction f of the image's (both axes: the crop keeps the aspect), f drawn from
    N(mean, box_sd²) clipped to [0.05, 1], the mean moving linearly from `box[0]` at the first step to
    `box[1]` at the last (the engine passes the progress); its centre from N(½, centre_sd²) per axis,
    clipped so the crop lies inside the image. `noise` is the noise's std on the 0..1 scale.
    """

    n: int = 6
    box: tuple[float, float] = (1.0, 0.8)
    box_sd: float = 0.05
    centre_sd: float = 0.15
    noise: float = 0.05
    out: tuple[int, int] | None = None
    scheduled: ClassVar[bool] = True

    def __call__(self, key, x, progress=0.0):
        b, h, w, c = x.shape
        oh, ow = self.out_size((h, w))
        kf, kc, kn = jax.random.split(key, 3)
        mean = self.box[0] + (self.box[1] - self.box[0]) * jnp.clip(progress, 0.0, 1.0)
        f = jnp.clip(mean + self.box_sd * jax.random.normal(kf, (b, self.n)), 0.05, 1.0)
        ctr = jnp.clip(0.5 + self.centre_sd * jax.random.normal(kc, (b, self.n, 2)), f[..., None] / 2,
                       1 - f[..., None] / 2)
        iy = (jnp.arange(oh, dtype=jnp.float32) + 0.5) / oh - 0.5  # output pixel centres, −½…½ of the crop
        ix = (jnp.arange(ow, dtype=jnp.float32) + 0.5) / ow - 0.5

        def one(img, fk, ck):  # img H×W×C → C×oh×ow
            sy = (ck[0] + fk * iy) * h - 0.5
            sx = (ck[1] + fk * ix) * w - 0.5
            yy, xx = jnp.meshgrid(sy, sx, indexing="ij")
            return jax.vmap(lambda ch: map_coordinates(ch, [yy, xx], order=1, mode="nearest"))(jnp.moveaxis(img, -1, 0))

        crops = jax.vmap(lambda img, fb, cb: jax.vmap(lambda fk, ck: one(img, fk, ck))(fb, cb))(x, f, ctr)
        crops = jnp.moveaxis(crops, 2, -1).reshape(b * self.n, oh, ow, c)
        return crops + self.noise * jax.random.normal(kn, crops.shape, crops.dtype)

    def out_size(self, hw):
        return tuple(self.out) if self.out is not None else hw


@dataclasses.dataclass(frozen=True)
class Resize(Transform):
    """Bilinear resize to a fixed size (for networks that only take their input size)."""

    size: tuple[int, int]

    def __call__(self, key, x):
        return jax.image.resize(x, (x.shape[0], *self.size, x.shape[3]), "bilinear")

    def out_size(self, hw):
        return tuple(self.size)


@dataclasses.dataclass(frozen=True)
class Compose(Transform):
    """Apply transforms in order, each with its own key folded from the step's key."""

    transforms: tuple[Transform, ...] = ()

    def __call__(self, key, x, progress=0.0):
        for i, t in enumerate(self.transforms):
            k = jax.random.fold_in(key, i)
            x = t(k, x, progress) if t.scheduled else t(k, x)
        return x

    @property
    def copies(self) -> int:
        """Images out per image in (random crops make several)."""
        return math.prod(t.n for t in self.transforms if isinstance(t, RandomCrops))

    def out_size(self, hw):
        for t in self.transforms:
            hw = t.out_size(hw)
        return hw

    def __add__(self, other: Transform) -> Compose:
        return Compose(self.transforms + (other.transforms if isinstance(other, Compose) else (other,)))


def pad(width: int, value: float | str = 0.5) -> Pad:
    return Pad(int(width), value)


def jitter(d: int) -> Jitter:
    return Jitter(int(d))


def roll(d: int) -> Roll:
    return Roll(int(d))


def random_scale(scales: Sequence[float]) -> RandomAffine:
    return RandomAffine(tuple(float(s) for s in scales), (0.0,))


def random_rotate(angles: Sequence[float]) -> RandomAffine:
    return RandomAffine((1.0,), tuple(float(a) for a in angles))


# lucid's standard_transforms: pad 12 (grey), jitter 8, scale 0.9–1.1, rotate ±10° (0° weighted ×6), jitter 4.
# Scale and rotate are one resampling (same draws as lucid's two steps; one bilinear gather, not two) onto a
# canvas 1.045× the size (+12 px at 227): lucid's resize makes 0.9–1.1× (1.0× on average), so the network sees about as many
# pixels as lucid's (1.1× its average at 227 px; the 1.1× canvas was 1.22×).
STANDARD = Compose((pad(12), jitter(8), RandomAffine(tuple(1 + (i - 5) / 50.0 for i in range(11)),
                                                     tuple(float(a) for a in list(range(-10, 11)) + 5 * [0]), 0.5,
                                                     1.045),
                    jitter(4)))
# The same without the grey pad: for an image optimised 12 px larger on every side, which the network sees in
# the pad's place and the result does not show (the `lucid` preset's `border`; docs/quality.md).
STANDARD_UNPADDED = Compose(STANDARD.transforms[1:])
# MACO's views: 6 crops per step (horama's count; Xplique takes 32) from the whole image shrinking to 0.8 of its
# side, noise 0.05 (docs/visualize.md; the schedule chosen in a pilot, docs/quality.md).
MACO = Compose((RandomCrops(),))
NAMED = {"standard": STANDARD, "standard_unpadded": STANDARD_UNPADDED, "maco": MACO, "none": Compose(()),
         "keras_vis": Compose((jitter(4), random_rotate([-1.0, 1.0]))),
         "roll16": Compose((roll(16),))}


def get(transforms) -> Compose:
    """A :class:`Compose` from a name ('standard', 'standard_unpadded', 'maco', 'none', 'keras_vis', 'roll16'), a
    transform or a list."""
    if transforms is None:
        return NAMED["none"]
    if isinstance(transforms, str):
        if transforms not in NAMED:
            raise VisualizationError(f"unknown transforms {transforms!r}; known: {', '.join(NAMED)}")
        return NAMED[transforms]
    if isinstance(transforms, Compose):
        return transforms
    if isinstance(transforms, Transform):
        return Compose((transforms,))
    return Compose(tuple(transforms))


def gaussian_blur(x: jax.Array, sigma) -> jax.Array:
    """Separable Gaussian blur (5 taps, so for σ ≲ 1; reflect edges) of a B×H×W×C batch; σ may be traced."""
    r = 2
    taps = jnp.exp(-0.5 * (jnp.arange(-r, r + 1, dtype=jnp.float32) / jnp.maximum(sigma, 1e-3)) ** 2)
    taps = taps / taps.sum()
    xp = jnp.pad(x, ((0, 0), (r, r), (r, r), (0, 0)), mode="reflect")
    h, w = x.shape[1], x.shape[2]
    y = functools.reduce(jnp.add, [taps[i] * xp[:, i:i + h, :, :] for i in range(2 * r + 1)])
    return functools.reduce(jnp.add, [taps[i] * y[:, :, i:i + w, :] for i in range(2 * r + 1)])

