"""Neural style transfer (Gatys et al. 2016; CS231n's assignment) on the engine.

Minimise, over the image x (0..1 scale, clipped after each step):

    content_weight · ‖Φ_c(x) − Φ_c(content)‖²
      + Σ_l w_l · ‖G_l(x) − G_l(style)‖²_F          G = FᵀF / (H·W·C)   (CS231n's gram_matrix)
      + tv_weight · Σ (Δx² + Δy²)

With `normalize=False` these are CS231n's losses exactly (its `content_loss`, `style_loss`,
`tv_loss`; only the image scale differs: jaxvis optimises the 0..1 image the network sees ×255).
With `normalize=True` (default) the content term is divided by ‖Φ_c(content)‖², each style term
by ‖G_l(style)‖² and the TV term by H·W, so the weights mean the same on any network (CS231n's
weights are tuned to torchvision SqueezeNet's activation scale).

Several sets of style weights run as one vmapped, jit-compiled engine call: each set is a unit
whose objective differs only in numbers.
"""

from __future__ import annotations

import dataclasses
import numbers
import time
import zlib
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from ..engine import objectives as O
from ..engine import optimize as engine
from ..engine.param import Param
from ..engine.presets import optimizer
from ..engine.transforms import Compose
from ..errors import VisualizationError
from ..imaging.display import imtile
from ..imaging.images import ImageLike
from ..imaging.notebook import Picture
from .invert import codes, layer_list, load_images, non_negative_number, size_of


@dataclasses.dataclass
class StyleTransfer(Picture):
    """Result of :func:`style_transfer`.

    Attributes:
      images: uint8 K×H×W×3, one per set of style weights.
      raw: float32 K×H×W×3 on the 0..1 scale.
      content, style: uint8 the content image (H×W×3) and the style image as used (resized).
      style_weights: float K×L, the weights per style layer of each result.
      losses: {"content", "style", "tv", "total"} → float K arrays, each result's weighted terms of the
        objective it minimised (as in the objective: normalised when `normalize`).
      start_losses: the same terms for the start image.
      trace: float32 steps×K, minus the total loss before each step.
      seconds: wall time of the optimisation (compile included).
      settings: everything that produced it.
    """

    images: np.ndarray
    raw: np.ndarray
    content: np.ndarray
    style: np.ndarray
    style_weights: np.ndarray
    losses: dict[str, np.ndarray]
    start_losses: dict[str, np.ndarray]
    trace: np.ndarray
    seconds: float
    settings: dict[str, Any]

    def picture(self, with_inputs: bool = True, **imtile_kwargs) -> np.ndarray:
        """One row: the content and style images (`with_inputs`), then each result; uint8. What
        ``.save(path, ...)`` writes and a notebook shows."""
        h, w = self.images.shape[1:3]
        ims = ([self.content, np.asarray(Image.fromarray(self.style).resize((w, h), Image.Resampling.LANCZOS))]
               if with_inputs else []) + list(self.images)
        return imtile(ims, grid_size=(1, len(ims)), **imtile_kwargs)


def _weights(weights, n_layers: int) -> np.ndarray:
    """K×L non-negative style weights from one list (L) or several (K×L)."""
    if weights is None:
        return np.ones((1, n_layers))
    try:
        w = np.asarray(weights, np.float64)
    except (TypeError, ValueError):
        w = None
    if w is None or w.dtype == object or w.ndim not in (1, 2) or w.shape[-1] != n_layers or w.size == 0:
        raise VisualizationError(f"weights must be one style weight per style layer ({n_layers}) or a list of such "
                                 f"lists (one result each); got {weights!r}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise VisualizationError(f"style weights must be finite and non-negative, got {weights!r}")
    return np.atleast_2d(w)


def _terms(content_layer: str, p: np.ndarray, style_layers: Sequence[str], grams: dict[str, np.ndarray],
           w: np.ndarray, content_weight: float, tv_weight: float, hw, normalize: bool):
    """(content, [style per layer], tv) objectives of one unit (penalties)."""
    content = O.feature_distance(content_layer, p, normalize=normalize, weight=content_weight)
    style = [O.style_distance(l, grams[l], normalize=normalize, weight=float(wl)) for l, wl in zip(style_layers, w)]
    tv = (tv_weight / (hw[0] * hw[1]) if normalize else tv_weight) * O.total_variation(2.0)
    return content, style, tv


def _loss_values(net, images01: np.ndarray, terms_per_unit, layers) -> dict[str, np.ndarray]:
    """Each unit's content/style/tv/total terms on its image (K×H×W×3, 0..1)."""
    acts = codes(net, 255.0 * images01, layers)
    out = {k: np.zeros(len(images01)) for k in ("content", "style", "tv")}
    for k, (c, ss, tv) in enumerate(terms_per_unit):
        a = {l: jnp.asarray(v[k:k + 1]) for l, v in acts.items()}
        a[O.INPUT] = jnp.asarray(images01[k:k + 1])
        out["content"][k] = float(c(a)[0])
        out["style"][k] = float(sum(float(s(a)[0]) for s in ss))
        out["tv"][k] = float(tv(a)[0])
    out["total"] = out["content"] + out["style"] + out["tv"]
    return out


def style_transfer(net, content: ImageLike, style: ImageLike, *, content_layer, style_layers, weights=None,
                   content_weight: float = 1.0, tv_weight: float = 1.0, steps: int = 200,
                   learning_rate: float = 0.02, image_size: int | tuple[int, int] | None = None,
                   style_size: int | tuple[int, int] | None = None, normalize: bool = True, init: str = "content",
                   seed: int = 0, batch_size: int | None = None, devices=None,
                   progress: bool | None = None) -> StyleTransfer:
    """Paint `content` in the style of `style` (Gatys et al.; CS231n), one result per set of style weights.

    Args:
      net: any jaxvis network (`load_model`, `from_function`, `from_onnx`).
      content: the content image (path, PIL, H×W×3 array 0..255); resized to `image_size` ('crop').
      style: the style image; resized to `style_size`.
      content_layer: the layer whose activations must stay those of the content (name or index).
      style_layers: layers whose Gram matrices must match the style's.
      weights: one weight per style layer, or a list of such lists: each set gives one result,
        all optimised in one batched call (default: 1 per layer).
      content_weight: weight of the content term.
      tv_weight: weight of the total variation (β = 2) term.
      steps: Adam steps.
      learning_rate: Adam step on the 0..1 pixel scale.
      image_size: H×W of the result (default the network's input size).
      style_size: H×W the style image is resized to (default `image_size`).
      normalize: divide the terms by their targets' squared norms (see the module docstring);
        False: CS231n's losses.
      init: 'content' (start from the content image, CS231n's default) or 'noise' (uniform 0..1 noise from `seed`).
      seed: randomness of the noise start; the same seed gives the same bytes.
      batch_size: units per compiled call (default from a memory estimate); devices: shard over these.
      progress: a progress bar on stderr: None (default) where stderr is a terminal or a notebook, True always, False never.

    Returns:
      :class:`StyleTransfer` (images, losses before and after, settings).

    Raises:
      LayerError: unknown layer (with close matches). ImageError: an image of the wrong rank or channels.
      VisualizationError: bad numbers (negative weights, steps < 1, …) or an unknown `init`.
    """
    c_layer = layer_list(net, content_layer)[0] if not isinstance(content_layer, (list, tuple)) else None
    if c_layer is None:
        raise VisualizationError(f"content_layer is one layer name or index, got {content_layer!r}")
    s_layers = layer_list(net, style_layers)
    w = _weights(weights, len(s_layers))
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise VisualizationError(f"steps must be an integer >= 1, got {steps!r}")
    content_weight = non_negative_number(content_weight, "content_weight")
    tv_weight = non_negative_number(tv_weight, "tv_weight")
    learning_rate = non_negative_number(learning_rate, "learning_rate", positive=True)
    if init not in ("content", "noise"):
        raise VisualizationError(f"init must be 'content' or 'noise', got {init!r}")
    hw = size_of(net, image_size)
    shw = hw if style_size is None else size_of(net, style_size)
    c_img = load_images(content, hw, "crop")
    s_img = load_images(style, shw, "crop")
    if len(c_img) != 1 or len(s_img) != 1:
        raise VisualizationError(f"give one content and one style image, got {len(c_img)} and {len(s_img)}")
    p = codes(net, c_img, [c_layer])[c_layer][0]
    s_codes = codes(net, s_img, s_layers)
    grams = {l: np.asarray(O.gram(jnp.asarray(s_codes[l])))[0] for l in s_layers}
    k = len(w)
    terms = [_terms(c_layer, p, s_layers, grams, wk, content_weight, tv_weight, hw, normalize) for wk in w]
    objs = [-1.0 * (c + sum(ss[1:], ss[0]) + tv) for c, ss, tv in terms]
    layers = tuple(dict.fromkeys([c_layer, *s_layers]))
    if init == "content":
        start = (c_img / 255.0)[None]
    else:
        start = np.asarray(jax.random.uniform(jax.random.PRNGKey(int(seed) % 2 ** 32), (1, 1, *hw, 3)))
    config = engine.StepConfig(Param(hw, 1, "pixel", False, "none", 0.0, 0.5), Compose(()), optimizer("adam"), layers,
                       engine.Projection((0.0, 1.0)))
    ids = [zlib.crc32(np.asarray(wk, np.float64).tobytes()) for wk in w]
    t0 = time.perf_counter()
    res = engine.optimize(net, objs, config, levels=[(hw, int(steps))], learning_rate=learning_rate, seed=seed,
                          unit_ids=ids, start=start, batch_size=batch_size, devices=devices, progress=progress,
                          label=f"style_transfer {net.name} ({k} weight sets)")
    seconds = time.perf_counter() - t0
    raw = res.images[:, 0]
    losses = _loss_values(net, raw, terms, layers)
    start_losses = _loss_values(net, np.broadcast_to(start[0], raw.shape).copy(), terms, layers)
    u8 = lambda a: np.round(np.clip(a, 0, 255)).astype(np.uint8)  # noqa: E731
    settings = dict(content_layer=c_layer, style_layers=s_layers, content_weight=content_weight,
                    tv_weight=tv_weight, steps=int(steps), learning_rate=learning_rate, image_size=hw,
                    style_size=shw, normalize=normalize, init=init, seed=seed, optimizer="adam",
                    network=net.name)
    return StyleTransfer(u8(raw * 255.0), raw, u8(c_img[0]), u8(s_img[0]), w, losses, start_losses,
                         np.asarray(res.trace)[0], seconds, settings)
