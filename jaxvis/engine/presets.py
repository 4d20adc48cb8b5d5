"""Presets: named settings of the one engine — nothing else.

Each reproduces a tool's published defaults on jaxvis's 0..1 image scale (the network
sees 255×; pixel-unit numbers below are converted):

- `lucid` (lucid/lucent `render_vis`): FFT parameterisation, decorrelated colours,
  sigmoid; `standard_transforms`; Adam 0.05; 512 steps; RedirectedReLU for 16 steps. Against
  the bright frame lucid's recipe leaves on early-layer units (docs/quality.md), the 12 px its
  grey pad adds are optimised with the image and cropped off the result (`border`), and the
  Fourier image is 16 px larger again (`margin`), so no image pixel is an edge of what is
  optimised or seen. The network sees images of the same size as lucid's.
- `matlab` (`deepDreamImage`): pixels, mid-grey + N(0, 10²/255²) start, Laplacian-normalised
  gradient ascent of 3 pixel units per step (reflect padding, unclipped), 3-level pyramid ×1.4
  of 10 steps each, per-image min–max output ('linear').
- `keras_vis` (tf-keras-vis ActivationMaximization): pixels, RMSprop(1.0 pixel, ρ 0.999),
  jitter 4 + rotate ±1°, TotalVariation2D (weight 1) and L1 Norm (weight 0.3) per pixel,
  200 steps, output clipped to the pixel range.
- `cs231n` (CS231n `create_class_visualization`, Simonyan et al.): pixels from ImageNet-
  normalised N(0, 1), L2 penalty λ 1e-3 (in normalised units), roll jitter 16, Gaussian
  blur σ 0.5 every 10 steps, clipping to the valid range, normalised step `lr·g/‖g‖`
  with lr 25 (normalised units), 100 steps.
- `maco` (Fel et al. 2023, MAgnitude Constrained Optimization): the Fourier magnitude fixed to a
  natural-image spectrum (`jaxvis.natural_spectrum`; default the one jaxvis ships), only the phase
  optimised, decorrelated colours with std 2 before the sigmoid; per step 6 random crops (from the whole image shrinking
  to 0.8 of its side over the run, centres near the middle) with noise 0.05; Nadam lr 1.0; 256 steps; the
  transparency map Σ |∂L/∂x| over the steps on the result.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax

from ..errors import VisualizationError
from . import objectives as obj
from .laplacian import scale_by_laplacian_norm
from .optimize import Projection

IMAGENET_MEAN, IMAGENET_STD = 0.449, 0.226  # grey-level mean/std of ImageNet's normalisation (0..1)
# std of MACO's image in the decorrelated basis, before the sigmoid. Xplique standardises to 1, which through the sigmoid
# leaves a pixel std of 0.13 (photos: ≈ 0.25): washed out, and it transferred worse (docs/quality.md); 2 gives 0.22.
MACO_SD = 2.0


def scale_by_l2_norm(eps: float = 1e-12) -> optax.GradientTransformation:
    """g / ‖g‖ per image (over H, W, C): CS231n's and DeepDream's normalised step."""
    def update(g, state, params=None):
        del params
        n = lambda x: x / jnp.maximum(jnp.sqrt(jnp.sum(x * x, axis=(-3, -2, -1), keepdims=True)), eps)  # noqa: E731
        return jax.tree.map(n, g), state

    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)


@functools.cache
def optimizer(name: str, *args) -> optax.GradientTransformation:
    """Cached optax optimizers with learning rate 1 (the engine multiplies by a traced learning rate),
    so repeated calls and other step sizes reuse compiled steps.

    'adam', 'nadam', 'rmsprop' (decay), 'sgd', 'laplacian' (levels, padding: Laplacian-normalised ascent),
    'normalized' (g/‖g‖ steps). Learning rates are on the 0..1 image scale.
    """
    if name == "adam":
        return optax.adam(1.0)
    if name == "nadam":
        return optax.nadam(1.0)
    if name == "rmsprop":
        return optax.rmsprop(1.0, decay=args[0], eps=1e-7)
    if name == "sgd":
        return optax.sgd(1.0)
    if name == "laplacian":
        levels, padding = args
        return optax.chain(scale_by_laplacian_norm(levels, padding=padding), optax.scale(-1.0))
    if name == "normalized":
        return optax.chain(scale_by_l2_norm(), optax.scale(-1.0))
    raise VisualizationError(f"unknown optimizer {name!r}; known: adam, nadam, rmsprop, sgd, laplacian, normalized "
                             f"(or pass an optax GradientTransformation)")


@dataclasses.dataclass(frozen=True)
class Preset:
    """Named engine settings; :func:`jaxvis.visualize` arguments override them."""

    name: str
    param: str = "fft"
    decorrelate: bool = True
    output: str = "sigmoid"
    sd: float = 0.01
    mean: float | None = None
    margin: int = 0  # fft param: hidden margin of the Fourier canvas (see Param.margin)
    border: int = 0  # fft param: pixels optimised around the image, seen by the network, cropped off the result
    transforms: str = "standard"
    optimizer: tuple = ("adam",)
    learning_rate: float = 0.05
    steps: int = 512
    redirected_relu_steps: int = 16
    levels: int = 1
    level_scale: float = 1.4
    projection: Projection = Projection()
    output_scaling: str = "clip"
    # (kind, weight): image regularisers subtracted from the objective, weights per pixel where noted.
    regularizers: tuple[tuple[str, float], ...] = ()
    transparency: bool = False  # accumulate MACO's transparency map Σ |∂L/∂x|

    def penalty(self, hw: tuple[int, int], channels: int = 3) -> obj.Objective | None:
        """The preset's regularisers as one objective for images of size hw with `channels` channels (None if none)."""
        terms = []
        px = hw[0] * hw[1]
        for kind, w in self.regularizers:
            if kind == "tv_per_pixel_255":      # tf-keras-vis TotalVariation2D on 0..255 pixels
                terms.append((w * 255.0 / px) * obj.total_variation())
            elif kind == "l1_per_value_255":    # tf-keras-vis Norm(p=1) on 0..255 pixels
                terms.append((w * 255.0 / (channels * px)) * obj.l1())  # the mean over every value
            elif kind == "l2_normalized":       # CS231n: λ‖(x − μ)/σ‖²
                terms.append((w / IMAGENET_STD ** 2) * obj.l2(IMAGENET_MEAN))
            else:
                raise VisualizationError(f"unknown regulariser {kind!r}")
        return sum(terms[1:], terms[0]) if terms else None


PRESETS = {
    "lucid": Preset("lucid", margin=16, border=12, transforms="standard_unpadded"),
    "matlab": Preset("matlab", param="pixel", decorrelate=False, output="none", sd=10 / 255, mean=0.5,
                     transforms="none", optimizer=("laplacian", 4, "reflect"), learning_rate=3.0 / 255, steps=10,
                     redirected_relu_steps=0, levels=3, output_scaling="linear"),
    "keras_vis": Preset("keras_vis", param="pixel", decorrelate=False, output="none", sd=0.15, mean=0.5,
                        transforms="keras_vis", optimizer=("rmsprop", 0.999), learning_rate=1.0 / 255, steps=200,
                        redirected_relu_steps=0, output_scaling="clip",
                        regularizers=(("tv_per_pixel_255", 1.0), ("l1_per_value_255", 0.3))),
    "cs231n": Preset("cs231n", param="pixel", decorrelate=False, output="none", sd=IMAGENET_STD,
                     mean=IMAGENET_MEAN, transforms="roll16", optimizer=("normalized",),
                     learning_rate=25 * IMAGENET_STD,
                     steps=100, redirected_relu_steps=0, projection=Projection((0.0, 1.0), 10, 0.5),
                     output_scaling="clip", regularizers=(("l2_normalized", 1e-3),)),
    "maco": Preset("maco", param="maco", sd=MACO_SD, transforms="maco", optimizer=("nadam",), learning_rate=1.0,
                   steps=256, redirected_relu_steps=0, transparency=True),
}


def get(preset: str | Preset) -> Preset:
    if isinstance(preset, Preset):
        return preset
    if preset not in PRESETS:
        raise VisualizationError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    return PRESETS[preset]
