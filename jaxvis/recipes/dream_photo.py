"""DeepDream on photos (Mordvintsev et al.'s original recipe), any size, with an exactly tiled gradient.

The recipe (the 2015 DeepDream notebook): an octave pyramid of the photo (each octave
`octave_scale`× smaller), processed smallest first; at each octave the image is the octave's
base plus the detail dreamed so far (upscaled), `steps_per_octave` steps are taken, and the new
detail (image − base) is carried to the next, larger octave. A step rolls the image by a random
shift of up to ±`jitter` px, computes the objective's gradient, rolls it back and adds
`step_size · g / mean|g|`, clipped to the pixel range. The default objective of a layer is
DeepDream's L2: ½ Σ a² (mean over positions here).

Large photos: the gradient is computed tile by tile (the geometry is :mod:`jaxvis.maps.tiling`, shared
with :func:`jaxvis.activations`). The output positions of the layer are split into tiles of about
`tile` input pixels; each tile's network input is its crop plus a halo of the receptive field
(aligned to the layer's stride), and only the tile's own positions carry gradient (the others are
`stop_gradient`). For objectives that are means over positions (layer L2, `channel`, `direction`)
the sum of the tiles' gradients *is* the whole image's gradient — exact, not an approximation
(tested against the untiled gradient) — while memory is bounded by one crop's activations. The
random roll moves the image under the fixed tile grid every step.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from ..engine import objectives as O
from ..engine.visualize import check_units
from ..errors import ImageError, VisualizationError
from ..imaging.images import ImageLike, to_batch
from ..imaging.notebook import Picture
from ..imaging.progress import Progress
from ..nets.receptive import receptive_field
from ..maps.tiling import field_halo
from ..maps.tiling import tiles_1d as _tiles_1d  # the shared tiling geometry (tests import it from here)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class LayerL2(O.Objective):
    """DeepDream's objective: ½ Σ_c a² averaged over the layer's positions."""

    layer: str | int = dataclasses.field(metadata=dict(static=True))  # a name; an index until resolve(net)

    def __call__(self, acts):
        a = acts[self.layer]
        return 0.5 * jnp.mean(jnp.sum(a * a, axis=-1), axis=(1, 2))

    @property
    def layers(self):
        return (self.layer,)

    def resolve(self, net):
        return LayerL2(net.layer_name(self.layer))


def layer_l2(layer: str | int) -> O.Objective:
    """DeepDream's L2 objective of a layer (the default of :func:`dream_photo` for a layer name)."""
    return LayerL2(layer)


_TILEABLE = (LayerL2, O.Channel, O.Direction)


def _check_objective(o: O.Objective) -> str | int:
    """The one layer a spatial-mean objective reads (else VisualizationError)."""
    if isinstance(o, O.Sum):
        layers = {_check_objective(t) for t in o.terms}
    elif isinstance(o, O.Scale):
        layers = {_check_objective(o.obj)}
    elif isinstance(o, _TILEABLE):
        layers = {o.layer}
    else:
        raise VisualizationError(
            f"dream_photo takes a layer name (DeepDream's L2), objectives.channel or objectives.direction "
            f"(and sums/multiples of them on one layer): objectives that are means over positions, so the "
            f"gradient can be tiled exactly; got {type(o).__name__}")
    if len(layers) != 1:
        raise VisualizationError(f"dream_photo objectives must read one layer, got {sorted(layers)}")
    return layers.pop()


def _gradient_fn(net, layer: str, obj_def):
    fn = net.function([layer])

    def make():
        def grad(params, crop, obj, j0y, j1y, j0x, j1x, weight):
            def f(x):
                a = fn(params, x)[layer]
                yy = jnp.arange(a.shape[1])[:, None]
                xx = jnp.arange(a.shape[2])[None, :]
                own = ((yy >= j0y) & (yy < j1y) & (xx >= j0x) & (xx < j1x))[None, :, :, None]
                a = jnp.where(own, a, jax.lax.stop_gradient(a))  # only this tile's positions carry gradient
                return weight * obj({layer: a})[0]
            return jax.grad(f)(crop)
        return grad

    return net.cache.jit(("dream_photo", "grad", layer, obj_def), make)


def objective_gradient(net, image: np.ndarray, objective: O.Objective, *, tile: int | None = 512) -> np.ndarray:
    """∂ objective / ∂ image (H×W×3, pixels 0..255) computed tile by tile (`tile` px; None: whole image at once).

    Exact for objectives that are means over positions (see the module docstring).
    """
    obj = objective.resolve(net)
    layer = _check_objective(obj)
    x = np.asarray(image, np.float32)
    h, w = x.shape[:2]
    shape = jax.eval_shape(net.function([layer]), net.params, jax.ShapeDtypeStruct((1, h, w, 3), jnp.float32))
    m = shape[layer].shape
    if len(m) != 4 or min(m[1:3]) < 1:
        raise ImageError(f"layer {layer!r} has no spatial grid for a {h}×{w} image (shape {m}); pick a "
                         f"convolutional layer or a larger image")
    if tile is None:
        ty, tx = [(0, h, 0, m[1])], [(0, w, 0, m[2])]
    else:
        rf = receptive_field(net, layer)
        halo = [field_halo(rf.size[i], rf.offset[i], rf.stride[i]) for i in (0, 1)]
        ty = _tiles_1d(h, m[1], rf.stride[0], halo[0], int(tile))
        tx = _tiles_1d(w, m[2], rf.stride[1], halo[1], int(tile))
    fn = _gradient_fn(net, str(layer), jax.tree.structure(obj))  # resolved: a name
    g = np.zeros_like(x)
    total = m[1] * m[2]
    for a, b, j0y, j1y in ty:
        for c, d, j0x, j1x in tx:
            crop = jnp.asarray(x[None, a:b, c:d])
            sub = jax.eval_shape(net.function([layer]), net.params, crop)[layer].shape
            # A tile's objective is a mean over its crop's positions: weight it to the image's mean.
            weight = sub[1] * sub[2] / total
            g[a:b, c:d] += np.asarray(fn(net.params, crop, obj, j0y, j1y, j0x, j1x, jnp.float32(weight))[0])
    return g


@dataclasses.dataclass
class DreamPhotoResult(Picture):
    """Output of :func:`dream_photo`: `image` uint8 H×W×3 (the input's size), `raw` float32 pixels, `settings`.
    ``.save(path)`` writes the image as PNG; a notebook shows it."""

    image: np.ndarray
    raw: np.ndarray
    settings: dict[str, Any]

    def picture(self) -> np.ndarray:
        """The dreamed photo (uint8)."""
        return self.image


def _resize(x: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of H×W×3 float32 (PIL, per channel: no float64 copies of a large photo)."""
    if x.shape[:2] == tuple(hw):
        return x
    return np.stack([np.asarray(Image.fromarray(x[..., c], mode="F").resize((hw[1], hw[0]), Image.Resampling.BILINEAR))
                     for c in range(x.shape[2])], axis=-1)


def dream_photo(net, image: ImageLike, layer_or_objective, *, octaves: int = 4, octave_scale: float = 1.4,
                steps_per_octave: int = 10, step_size: float = 1.5, jitter: int = 32, tile: int | None = 512,
                seed: int = 0, progress: bool | None = None) -> DreamPhotoResult:
    """DeepDream a photo (the original recipe: octaves, detail carried between scales, random roll).

    Args:
      net: any jaxvis network.
      image: the photo (path, PIL, H×W×3 array 0..255 RGB); any size the pixel budget allows.
      layer_or_objective: a layer name/index (DeepDream's L2 objective of it) or an objective that is a
        mean over positions (`objectives.channel(layer, c)`, `objectives.direction(...)`, sums of them).
      octaves: pyramid levels (the notebook's 4); octave_scale: size ratio between them (1.4).
      steps_per_octave: gradient steps per octave (10).
      step_size: pixels per step times `g / mean|g|` (1.5, the notebook's).
      jitter: largest random roll per step in pixels (32).
      tile: tile size in input pixels for the gradient (512; None: the whole image at once).
      seed: the rolls' randomness.
      progress: a progress bar over all steps, the octave's H×W beside it: None (default) where stderr is a
        terminal or a notebook, True always, False never.

    Returns:
      :class:`DreamPhotoResult`, the same size as the input.
    """
    for name, v, lo in (("octaves", octaves, 1), ("steps_per_octave", steps_per_octave, 1), ("jitter", jitter, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise VisualizationError(f"{name} must be an integer >= {lo}, got {v!r}")
    if not (np.isfinite(octave_scale) and octave_scale > 1):
        raise VisualizationError(f"octave_scale must be > 1 (each octave this much smaller), got {octave_scale!r}")
    if not (np.isfinite(step_size) and step_size > 0):
        raise VisualizationError(f"step_size must be > 0 (pixels), got {step_size!r}")
    if tile is not None and (isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or tile < 16):
        raise VisualizationError(f"tile must be an integer >= 16 (pixels) or None, got {tile!r}")
    batch, single = to_batch(image)
    if not single and len(batch) != 1:
        raise ImageError(f"dream_photo takes one photo (H×W×3), got a batch of {len(batch)}")
    if isinstance(layer_or_objective, O.Objective):
        obj = layer_or_objective.resolve(net)
    else:
        obj = LayerL2(net.layer_name(layer_or_objective))
    layer = _check_objective(obj)
    net.require_weights([layer])
    base = batch[0]
    check_units(net, [obj], base.shape[:2])
    h, w = base.shape[:2]
    sizes = [(max(1, round(h / octave_scale ** k)), max(1, round(w / octave_scale ** k))) for k in range(octaves)]
    try:
        jax.eval_shape(net.function([layer]), net.params, jax.ShapeDtypeStruct((1, *sizes[-1], 3), jnp.float32))
    except (TypeError, ValueError):
        raise ImageError(f"the smallest octave ({sizes[-1][0]}×{sizes[-1][1]}) is too small for layer {layer!r}: "
                         f"use fewer octaves or a smaller octave_scale") from None
    rng = np.random.default_rng(seed)
    bases = [base]
    for hw in sizes[1:]:
        bases.append(_resize(bases[-1], hw))
    detail = np.zeros_like(bases[-1])
    bar = Progress(octaves * steps_per_octave, f"dream_photo {layer}", "steps", enabled=progress)
    img = base
    for k, ob in enumerate(reversed(bases)):
        detail = _resize(detail, ob.shape[:2])
        img = ob + detail
        bar.note = f"octave {k + 1}/{octaves}, {ob.shape[0]}×{ob.shape[1]}"
        for _ in range(steps_per_octave):
            dy, dx = (int(v) for v in rng.integers(-jitter, jitter + 1, 2))
            g = np.roll(objective_gradient(net, np.roll(img, (dy, dx), (0, 1)), obj, tile=tile), (-dy, -dx), (0, 1))
            img += (step_size / max(float(np.mean(np.abs(g))), 1e-8)) * g
            np.clip(img, 0.0, 255.0, out=img)
            del g
            bar.update(1)
        detail = img - ob
    bar.close()
    settings = dict(layer=layer, objective=repr(obj), octaves=octaves, octave_scale=octave_scale,
                    steps_per_octave=steps_per_octave, step_size=step_size, jitter=jitter, tile=tile, seed=seed,
                    sizes=sizes)
    return DreamPhotoResult(np.round(img).astype(np.uint8), img.astype(np.float32), settings)
