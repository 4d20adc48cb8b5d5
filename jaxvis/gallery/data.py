"""The gallery's data columns: per unit the top-k dataset patches, the mean activation over the
photos, and for the first convolution the filter itself."""

from __future__ import annotations

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ..display import save_png
from ..errors import LayerError, MissingWeightsError
from .plan import LayerPlan


def mean_activations(net, images, layers: list[str], batch_size: int = 32) -> dict[str, np.ndarray]:
    """Per layer, each unit's activation averaged over positions and over every readable image."""
    from ..patches.loader import BatchLoader, resolve
    items, sources, _ = resolve(images)

    def make():
        fn = net.function(layers)

        def sums(params, x, valid):
            acts = fn(params, x.astype(jnp.float32))
            w = valid.astype(jnp.float32)
            return {l: jnp.einsum("n,nc->c", w, a.reshape(a.shape[0], -1, a.shape[-1]).mean(1))
                    for l, a in acts.items()}
        return sums

    step = net.cache.get(("gallery-mean", tuple(layers)), make)
    total, n = None, 0
    for b in BatchLoader(items, tuple(net.input_size), batch_size, sources=sources):
        s = step(net.params, jnp.asarray(b.images), jnp.asarray(b.valid))
        total = s if total is None else jax.tree.map(jnp.add, total, s)
        n += int(b.valid.sum())
    return {l: np.asarray(v) / max(n, 1) for l, v in (total or {}).items()}


def _first_conv(net, plans: list[LayerPlan]) -> tuple[str, np.ndarray] | None:
    """(layer, kernel kh×kw×3×C) of the first planned layer that convolves the image, if any."""
    try:
        from ..filters import conv_kernel
    except ImportError:
        return None
    for lp in plans[:1]:
        try:
            name, k = conv_kernel(net, lp.name)
        except (LayerError, MissingWeightsError):  # not a convolution with loaded weights: no filter column
            return None
        k = np.asarray(k)
        if k.ndim == 4 and k.shape[2] == 3:
            return name, k
    return None


def _with_field(im: np.ndarray, box) -> np.ndarray:
    """A crop with context around its receptive field: upscaled (nearest, to >= 96 px; the page shows 110)
    with the field outlined 1 px thin."""
    from ..patches.result import outline
    h, w = im.shape[:2]
    f = max(1, -(-96 // max(min(h, w), 1)))
    return outline(np.kron(im, np.ones((f, f, 1), im.dtype)), [int(v) * f for v in box])


def unit_data(net, plans: list[LayerPlan], images, out: Path, *, k: int, progress: bool) -> dict:
    """{layer: {unit: {"patches": [...], "mean": float, "filter": path}}}, images written under `out`."""
    from ..patches import top_patches
    from .render import STATE
    names = [lp.name for lp in plans]
    cache = out / STATE / "patches.npz" if isinstance(images, (str, os.PathLike)) else None
    tp = top_patches(net, images, names, k=k, cache=cache, progress=progress)
    means = mean_activations(net, images, names)
    conv = _first_conv(net, plans)
    data: dict = {}
    for lp in plans:
        per = data.setdefault(lp.name, {})
        for c in lp.units:
            crops = tp.crops(lp.name, c, reconstruction=False)
            patches = []
            rf = tp.receptive_field(lp.name)
            grown = crops.images.shape[1] > rf.size[0] or crops.images.shape[2] > rf.size[1]
            for i, (hit, im, box) in enumerate(zip(crops.hits, crops.images, crops.fields)):
                rel = f"patches/{lp.slug}/{c}_{i}.png"
                save_png(out / rel, _with_field(im, box) if grown else im)
                src = Path(hit.source).name if hit.source else f"image {hit.image}"
                patches.append({"image": rel, "source": src, "value": float(hit.value), "y": hit.y, "x": hit.x})
            per[c] = {"patches": patches, "mean": float(means[lp.name][c])}
            if conv is not None and conv[0] == lp.name:
                w = conv[1][..., c]
                img = 0.5 + w / (2 * max(float(np.abs(w).max()), 1e-12))  # CS231n: symmetric around grey
                rel = f"img/{lp.slug}/{c}_filter.png"
                save_png(out / rel, np.kron(np.clip(img, 0, 1), np.ones((8, 8, 1))))
                per[c]["filter"] = rel
    return data
