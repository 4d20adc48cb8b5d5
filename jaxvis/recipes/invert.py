"""Feature inversion (Mahendran & Vedaldi 2015; CS231n) on the engine.

Reconstruct an image from its code Φ0 at a layer by minimising

    ‖Φ(x) − Φ0‖² / ‖Φ0‖²  +  λ_α · N_α(x)  +  λ_TV · N_TV(x)

with N_α = Σ |(x − ½)/B|^α / (H·W·3) (α = 6: a soft bound on the pixel range, B = ½ on the
0..1 scale) and N_TV = Σ (Δx² + Δy²) / (H·W·V²) (β = 2, V = B/6.5: their normalisation).
Every (image, layer) pair is one unit of one vmapped, jit-compiled :func:`jaxvis.engine.optimize`
run: each unit's objective holds the feature terms of all requested layers, weighted 1 for its
own layer and 0 for the others, so units of different layers share one form and one compile
(each unit then runs the network to the deepest layer; `per_layer=True` runs one vmapped call
per layer instead, which saves that compute when the layers' depths differ a lot).
"""

from __future__ import annotations

import dataclasses
import numbers
import time
import zlib
from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from ..engine import objectives as O
from ..engine import optimize as engine
from ..engine.param import Param
from ..engine.presets import optimizer
from ..engine.transforms import Compose
from ..errors import VisualizationError
from ..imaging.display import imtile
from ..imaging.images import ImageLike, fit_to_size, to_batch
from ..imaging.notebook import Picture
from .similarity import ssim

ALPHA_BOUND = 0.5            # B: half the 0..1 range (pixels are centred on ½)
TV_V = ALPHA_BOUND / 6.5     # V = B / 6.5 (Mahendran & Vedaldi)


@dataclasses.dataclass
class Inversion(Picture):
    """Result of :func:`invert`.

    Attributes:
      images: uint8 N×L×H×W×3 reconstructions (N images, L layers).
      raw: float32 N×L×H×W×3 on the 0..1 scale.
      original: uint8 N×H×W×3, the images whose codes were inverted (after resizing).
      layers: the L layer names.
      feature_error: float N×L, ‖Φ(x) − Φ0‖² / ‖Φ0‖² of each reconstruction.
      ssim: float N×L, SSIM of each reconstruction to its original (Wang et al.'s Gaussian window).
      trace: float32 steps×(N·L), each unit's objective (minus the loss) before each step.
      seconds: wall time of the optimisation (compile included).
      settings: everything that produced it.
    """

    images: np.ndarray
    raw: np.ndarray
    original: np.ndarray
    layers: list[str]
    feature_error: np.ndarray
    ssim: np.ndarray
    trace: np.ndarray
    seconds: float
    settings: dict[str, Any]

    def tile(self, with_original: bool = True, **imtile_kwargs) -> np.ndarray:
        """One row per image (the original first, then one reconstruction per layer), uint8."""
        rows = [np.concatenate([o[None], r]) if with_original else r for o, r in zip(self.original, self.images)]
        ims = np.concatenate(rows)
        return imtile(ims, grid_size=(len(rows), len(ims) // len(rows)), **imtile_kwargs)

    def picture(self, with_original: bool = True, **imtile_kwargs) -> np.ndarray:
        """:meth:`tile`: what ``.save(path, ...)`` writes and a notebook shows."""
        return self.tile(with_original, **imtile_kwargs)


def non_negative_number(v, name: str, *, positive: bool = False) -> float:
    """`v` as a float after checking it is a finite number >= 0 (> 0 if `positive`); else a VisualizationError
    naming `name`."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not np.isfinite(float(v)) or v < 0 or (positive and v == 0):
        raise VisualizationError(f"{name} must be a {'positive' if positive else 'non-negative'} finite number, "
                                 f"got {v!r}")
    return float(v)


def per_layer_values(v, n: int, name: str) -> list[float]:
    """A number or one number per layer, each checked non-negative."""
    vals = [v] * n if isinstance(v, numbers.Real) and not isinstance(v, bool) else list(np.ravel(v)) \
        if isinstance(v, (Sequence, np.ndarray)) and not isinstance(v, str) else None
    if vals is None or len(vals) != n:
        raise VisualizationError(f"{name} must be a number or one number per layer ({n}), got {v!r}")
    return [non_negative_number(x if not isinstance(x, np.generic) else x.item(), name) for x in vals]


def layer_list(net, layer) -> list[str]:
    """Layer names (LayerError with close matches for unknown ones), without repeats."""
    if isinstance(layer, (str, numbers.Integral)) and not isinstance(layer, bool):
        layer = [layer]
    if not isinstance(layer, Sequence) or not layer:
        raise VisualizationError(f"layer must be a layer name/index or a non-empty list of them, got {layer!r}")
    names = [net.layer_name(l) for l in layer]
    if len(set(names)) != len(names):
        raise VisualizationError(f"layers repeat: {names}")
    return names


def load_images(image: ImageLike, size: tuple[int, int], resize: str, what: str = "image") -> np.ndarray:
    """N×H×W×3 float32 0..255 pixels of `size` (ImageError for wrong rank/channels, as jaxvis.imaging.images);
    a list may hold images of different sizes (each is fitted on its own)."""
    if isinstance(image, (list, tuple)) and image:
        return np.concatenate([load_images(im, size, resize, what) for im in image])
    b, _ = to_batch(image)
    return fit_to_size(b, size, resize).astype(np.float32)


def size_of(net, size) -> tuple[int, int]:
    """(H, W) from None (the network's input size), an int or a pair."""
    if size is None:
        return (int(net.input_size[0]), int(net.input_size[1]))
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (size, size)
    hw = tuple(size)
    if len(hw) != 2 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1 for v in hw):
        raise VisualizationError(f"image_size must be a positive int or (H, W), got {size!r}")
    return (int(hw[0]), int(hw[1]))


def codes(net, images255: np.ndarray, layers: Sequence[str]) -> dict[str, np.ndarray]:
    """Each layer's activations of the images (N×h×w×C), one jitted call."""
    net.require_weights(layers)
    try:
        out = net.jitted(tuple(layers))(net.params, jnp.asarray(images255))
    except (TypeError, ValueError) as e:  # a fixed-size flatten meets another size
        raise VisualizationError(f"layers {list(layers)} of {net.name!r} cannot be computed on "
                                 f"{images255.shape[1]}×{images255.shape[2]} images ({e}); use the network's "
                                 f"input size {tuple(net.input_size)}") from None
    return {l: np.asarray(out[l], np.float32) for l in layers}


def feature_errors(net, raw01: np.ndarray, targets: dict[str, np.ndarray], layers: Sequence[str]) -> np.ndarray:
    """N×L ‖Φ_l(x_nl) − Φ0‖² / ‖Φ0‖² for reconstructions raw01 N×L×H×W×3 (0..1)."""
    n, nl = raw01.shape[:2]
    got = codes(net, 255.0 * raw01.reshape(n * nl, *raw01.shape[2:]), layers)
    err = np.empty((n, nl))
    for i in range(n):
        for j, l in enumerate(layers):
            t = targets[l][i]
            err[i, j] = np.sum((got[l][i * nl + j] - t) ** 2) / max(np.sum(t * t), 1e-12)
    return err


def _regularisers(hw, alpha_norm: float, alpha_weight: float, tv_weight: float) -> O.Objective:
    px = hw[0] * hw[1]
    return ((alpha_weight / (3 * px * ALPHA_BOUND ** alpha_norm)) * O.lp(alpha_norm, 0.5)
            + (tv_weight / (px * TV_V ** 2)) * O.total_variation(2.0))


def invert(net, image: ImageLike, layer, *, steps: int = 200, tv_weight=0.5, alpha_norm: float = 6.0,
           alpha_weight: float = 1e-3, learning_rate: float = 0.02, image_size: int | tuple[int, int] | None = None,
           resize: str = "crop", seed: int = 0, start_sd: float = 0.1, per_layer: bool = False,
           batch_size: int | None = None, devices=None, progress: bool | None = None) -> Inversion:
    """Reconstruct images from their codes at one or more layers (Mahendran & Vedaldi; see the module docstring).

    All (image, layer) pairs are optimised together: one vmapped, jit-compiled engine run
    (Adam on the pixels, clipped to 0..1 after each step).

    Args:
      net: any jaxvis network (`load_model`, `from_function`, `from_onnx`).
      image: an image or batch (path, PIL, H×W×3 / N×H×W×3 array 0..255, list); resized to `image_size`.
      layer: a layer name or 0-based index, or a list of them (one reconstruction per layer).
      steps: Adam steps.
      tv_weight: λ_TV (β = 2), one number or one per layer; deeper layers need more.
      alpha_norm: α of the α-norm regulariser (6, Mahendran & Vedaldi).
      alpha_weight: λ_α.
      learning_rate: Adam step on the 0..1 pixel scale.
      image_size: H×W to invert at (default the network's input size).
      resize: how images are fitted to the size: 'crop' (keep aspect, centre crop), 'stretch' or 'none'.
      seed: the random starts (grey ½ + N(0, start_sd²) per pixel): the same seed gives the same bytes.
      start_sd: standard deviation of the start noise.
      per_layer: one vmapped call per layer instead of one for all (see the module docstring).
      batch_size: units per compiled call (default from a memory estimate); devices: shard over these.
      progress: a progress bar on stderr: None (default) where stderr is a terminal or a notebook, True always, False never.

    Returns:
      :class:`Inversion` (reconstructions, feature errors and SSIM per image and layer, settings).

    Raises:
      LayerError: unknown layer (with close matches). ImageError: an image of the wrong rank or channels.
      VisualizationError: bad numbers (negative weights, steps < 1, …).
    """
    layers = layer_list(net, layer)
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise VisualizationError(f"steps must be an integer >= 1, got {steps!r}")
    tvs = per_layer_values(tv_weight, len(layers), "tv_weight")
    alpha_norm = non_negative_number(alpha_norm, "alpha_norm", positive=True)
    alpha_weight = non_negative_number(alpha_weight, "alpha_weight")
    learning_rate = non_negative_number(learning_rate, "learning_rate", positive=True)
    start_sd = non_negative_number(start_sd, "start_sd")
    hw = size_of(net, image_size)
    batch = load_images(image, hw, resize)
    targets = codes(net, batch, layers)
    n = len(batch)
    # Units are image-major: unit (i, j) inverts image i at layer j.
    groups = [list(range(len(layers)))] if not per_layer else [[j] for j in range(len(layers))]
    raw = np.empty((n, len(layers), *hw, 3), np.float32)
    trace = np.empty((steps, n * len(layers)), np.float32)
    t0 = time.perf_counter()
    for g in groups:
        gl = [layers[j] for j in g]
        objs, ids = [], []
        for i in range(n):
            for j in g:
                terms = [O.feature_distance(l, targets[l][i], weight=float(l == layers[j])) for l in gl]
                feat = sum(terms[1:], terms[0])
                objs.append(-1.0 * feat - _regularisers(hw, alpha_norm, alpha_weight, tvs[j]))
                ids.append(zlib.crc32(f"{layers[j]}#{i}".encode()))
        config = engine.StepConfig(Param(hw, 1, "pixel", False, "none", start_sd, 0.5), Compose(()), optimizer("adam"),
                           tuple(gl), engine.Projection((0.0, 1.0)))
        res = engine.optimize(net, objs, config, levels=[(hw, int(steps))], learning_rate=learning_rate, seed=seed,
                              unit_ids=ids, batch_size=batch_size, devices=devices, progress=progress,
                              label=f"invert {net.name} ({len(objs)} unit{'' if len(objs) == 1 else 's'})")
        imgs = res.images[:, 0].reshape(n, len(g), *hw, 3)
        tr = np.asarray(res.trace)[0].reshape(steps, n, len(g))
        for k, j in enumerate(g):
            raw[:, j] = imgs[:, k]
            trace[:, j::len(layers)] = tr[:, :, k]
    seconds = time.perf_counter() - t0
    images = np.round(np.clip(raw, 0, 1) * 255).astype(np.uint8)
    original = np.round(np.clip(batch, 0, 255)).astype(np.uint8)
    err = feature_errors(net, raw, targets, layers)
    sim = np.array([[ssim(original[i], images[i, j], gaussian=True) for j in range(len(layers))] for i in range(n)])
    settings = dict(steps=int(steps), tv_weight=tvs, alpha_norm=alpha_norm, alpha_weight=alpha_weight,
                    learning_rate=learning_rate, image_size=hw, resize=resize, seed=seed, start_sd=start_sd,
                    per_layer=per_layer, optimizer="adam", alpha_bound=ALPHA_BOUND, tv_v=TV_V,
                    network=net.name)
    return Inversion(images, raw, original, layers, err, sim, trace, seconds, settings)
