"""The gallery's data columns: per unit the top-k dataset patches and the mean activation over the
photos (both from one :func:`jaxvis.top_patches` pass, in which every process reads its share),
and for the first convolution the filter itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..datasets import Dataset, shown
from ..errors import LayerError, MissingWeightsError
from ..imaging.display import save_png
from ..maps.filters import conv_kernel
from ..patches import TopPatches, top_patches
from ..patches.loader import DECODED_MAX
from ..patches.result import outline
from .plan import STATE, LayerPlan


def data_pass(net, plans: list[LayerPlan], images, out: Path, *, k: int, devices, progress: bool | None,
              rebuild: bool = False) -> TopPatches:
    """The one pass over the photos for every planned layer: top-`k` hits and means (``.means``).

    Called on every process: under ``jax.distributed`` each reads every P-th batch and all get the
    merged result. A pass over files is resumable (its cache lives in the gallery's state folder).
    """
    cache = out / STATE / "patches.npz" if isinstance(images, Dataset) else None
    return top_patches(net, images, [lp.name for lp in plans], k=k, cache=cache, devices=devices,
                       progress=progress, rebuild=rebuild)


def _first_conv(net, plans: list[LayerPlan]) -> tuple[str, np.ndarray] | None:
    """(layer, kernel kh×kw×3×C) of the first planned layer that convolves the image, if any."""
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
    h, w = im.shape[:2]
    f = max(1, -(-96 // max(min(h, w), 1)))
    return outline(np.kron(im, np.ones((f, f, 1), im.dtype)), [int(v) * f for v in box])


def unit_data(net, plans: list[LayerPlan], tp: TopPatches, out: Path) -> dict:
    """{layer: {unit: {"patches": [...], "mean": float, "filter": path}}} from `tp`, images written under `out`."""
    data: dict = {}
    for lp in plans:
        per = data.setdefault(lp.name, {})
        decoded: dict = {}  # neighbouring units share photos: decode each once, up to DECODED_MAX at a time
        for c in lp.units:
            if len(decoded) > DECODED_MAX:
                decoded.clear()
            crops = tp.crops(lp.name, c, reconstruction=False, decoded=decoded)
            patches = []
            rf = tp.receptive_field(lp.name)
            grown = crops.images.shape[1] > rf.size[0] or crops.images.shape[2] > rf.size[1]
            for i, (hit, im, box) in enumerate(zip(crops.hits, crops.images, crops.fields)):
                rel = f"patches/{lp.slug}/{c}_{i}.png"
                save_png(out / rel, _with_field(im, box) if grown else im, parents=True)
                src = shown(Path(hit.source).name) if hit.source else f"image {hit.image}"
                patch = {"image": rel, "source": src, "value": float(hit.value), "y": hit.y, "x": hit.x}
                if tp.classes is not None and tp.labels is not None and tp.labels[hit.image] >= 0:
                    patch["label"] = tp.classes[int(tp.labels[hit.image])]
                patches.append(patch)
            per[c] = {"patches": patches, "mean": float(tp.means[lp.name][c])}
            if not patches:  # a unit that never fired on the data (its hits were all 0): say so, show none
                per[c]["never_fired"] = True
    for layer, units in filter_data(net, plans, out).items():
        for c, rec in units.items():
            data.setdefault(layer, {}).setdefault(c, {}).update(rec)
    return data


def filter_data(net, plans: list[LayerPlan], out: Path) -> dict:
    """{layer: {unit: {"filter": path}}} for the first planned layer if it convolves the image (images written
    under `out`); shown beside the unit's visualisation, with or without photos."""
    conv = _first_conv(net, plans)
    if conv is None:
        return {}
    lp = next(l for l in plans if l.name == conv[0])
    per: dict = {}
    for c in lp.units:
        w = conv[1][..., c]
        img = 0.5 + w / (2 * max(float(np.abs(w).max()), 1e-12))  # CS231n: symmetric around grey
        rel = f"img/{lp.slug}/{c}_filter.png"
        save_png(out / rel, np.kron(np.clip(img, 0, 1), np.ones((8, 8, 1))), parents=True)
        per[c] = {"filter": rel}
    return {lp.name: per}
