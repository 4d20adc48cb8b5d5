"""`TopPatches`: the hits of a top-k run, their crops and what in each crop drove the unit."""

from __future__ import annotations

import dataclasses
import html
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageDraw

from ..datasets import Dataset, Skipped, shown
from ..errors import ChannelError, LayerError, PatchesError
from ..imaging.display import imresize, imtile
from ..imaging.images import render_rgb
from ..imaging.notebook import Picture, img_tag
from ..nets.receptive import receptive_field
from .html import write_html
from .loader import load_one
from .topk import spatial

RECON_CHUNK = 8  # backward passes per jitted call: bounds memory (SqueezeNet at 227×227: ~0.3 GB)
# Smallest crop side shown (pixels of the network input): a 3-pixel conv1 field alone, upscaled, shows
# a colour and nothing else; with context around it (its box outlined, as OpenAI Microscope) one sees
# which edge or blob of the photo it sits on. Fields at least this large are cropped exactly.
CONTEXT = 32


class Hit(NamedTuple):
    """One of a unit's top-k: image id, its path (None for arrays), output position (y, x), activation."""

    image: int
    source: str | None
    y: int
    x: int
    value: float


class Crops(NamedTuple):
    """A unit's hits with their crops (n×h×w×3 uint8 RGB for display: a gray or C-channel network's input is
    rendered by :func:`jaxvis.imaging.images.render_rgb`), reconstructions (n×h×w×3 float in 0..1, grey = 0,
    rendered alike) and where in each crop the receptive field lies (n×4 int: y0, x0, y1, x1, half-open)."""

    hits: list[Hit]
    images: np.ndarray
    reconstructions: np.ndarray | None
    fields: np.ndarray


def outline(image: np.ndarray, box, color=(255, 0, 0)) -> np.ndarray:
    """`image` (h×w×3 uint8) with a 1-pixel rectangle just outside `box` (y0, x0, y1, x1), clipped to the image;
    unchanged when the box is the whole image."""
    h, w = image.shape[:2]
    y0, x0, y1, x1 = (int(v) for v in box)
    if (y0, x0, y1, x1) == (0, 0, h, w):
        return image
    out = image.copy()
    t, b, l, r = max(y0 - 1, 0), min(y1, h - 1), max(x0 - 1, 0), min(x1, w - 1)
    out[t, l:r + 1] = out[b, l:r + 1] = color
    out[t:b + 1, l] = out[t:b + 1, r] = color
    return out


def _recon_step(net, layer: str, relu: str):
    fn = net.function([layer], relu=relu)

    def grads(params, images, ys, xs, cs):
        def total(x):
            a = spatial(fn(params, x)[layer])
            return a[jnp.arange(a.shape[0]), ys, xs, cs].sum()
        return jax.grad(total)(images.astype(jnp.float32))
    return grads


def reconstruct(net, layer: str, images: np.ndarray, ys, xs, cs, relu: str = "guided") -> np.ndarray:
    """Input gradients of unit ``cs[i]`` at ``(ys[i], xs[i])`` of image i through `relu` backward rules.

    One jitted function per (layer, relu), called on chunks of :data:`RECON_CHUNK` (padded), so
    any number of hits compiles once. Returns n×H×W×C float32 (C: the network's input channels).
    """
    n = len(images)
    fn = net.cache.jit(("top_patches", "recon", layer, relu), lambda: _recon_step(net, layer, relu))
    out = []
    for lo in range(0, n, RECON_CHUNK):
        idx = np.minimum(np.arange(lo, lo + RECON_CHUNK), n - 1)
        g = fn(net.params, jnp.asarray(images[idx]), *(jnp.asarray(np.asarray(a, np.int32)[idx]) for a in (ys, xs, cs)))
        out.append(np.asarray(g)[: min(RECON_CHUNK, n - lo)])
    return np.concatenate(out) if out else np.zeros((0, *images.shape[1:]), np.float32)


def normalise_signed(r: np.ndarray, percentile: float = 99.5, floor: float = 0.0) -> np.ndarray:
    """Per crop: ``0.5 + r / (2 s)`` clipped to 0..1, s = the `percentile` of ``|r|`` in the crop.

    Zero is grey and the scale symmetric, so the sign stays visible (the deconvnet figures); a high
    percentile rather than the maximum, because guided gradients have a few sharp peaks that would
    leave every other pixel grey. A crop that holds no structure — constant, or no value above `floor`
    — is flat grey: stretching it would only show float rounding (a black/white grid around a map
    that is exactly grey, as the second stretch of a shrunken all-zero reconstruction did).
    """
    flat = r.reshape(len(r), -1)
    a = np.abs(flat)
    s = np.percentile(a, percentile, axis=1) if a.shape[1] else np.zeros(len(r))
    s = np.where(s > 0, s, np.where(a.max(axis=1, initial=0) > 0, a.max(axis=1, initial=0), 1))
    peak = a.max(axis=1, initial=0)
    spread = np.ptp(flat, axis=1) if flat.shape[1] else np.zeros(len(r))
    empty = (peak <= floor) | (spread <= 1e-6 * peak)
    out = np.clip(0.5 + r / (2 * s.reshape(-1, *([1] * (r.ndim - 1)))), 0, 1).astype(np.float32)
    out[empty] = 0.5
    return out


@dataclasses.dataclass
class TopPatches(Picture):
    """Top-k dataset patches per unit of some layers (see :func:`jaxvis.top_patches`).

    Attributes:
      layers: the layers, in graph order.
      k: hits kept per unit.
      value / image / position: per layer C×k activation (float32, -inf = no hit), image id (-1 = none)
        and output position C×k×2 (y, x).
      sources: the image paths by id (None for arrays).
      n_images: images read (skipped ones included); skipped: what was not used and why.
      settings: what produced the result (net, k, batch size, resize, relu, devices, processes).
      means: per layer (C,) float32: each unit's activation averaged over its positions and over the images
        read (unreadable ones excluded), from the same pass as the hits.
      classes: class names of a labelled set (an ImageFolder tree, a list file or shards with labels), else None.
      labels: per image id its class index (-1: none), or None.
      class_means: per layer classes×C float32: the mean activation over each class's images (NaN for a class
        with no readable image), or None.
      class_counts: images used per class, or None.
      timing: seconds of the pass: ``seconds`` (wall), ``decode_seconds`` (decoding, summed over threads) and
        ``wait_seconds`` (the network waiting for decoded images: wait / wall is the decode share).
      dataset: the :class:`~jaxvis.datasets.Dataset` read (None for arrays).

    ``.save(path, layer=, units=)`` writes :meth:`picture` as PNG, ``.save_html(folder)`` a page per layer; a
    notebook shows each layer's first units (crops only: displaying costs no backward pass).
    """

    net: Any = dataclasses.field(repr=False)
    layers: tuple[str, ...]
    k: int
    value: dict[str, np.ndarray]
    image: dict[str, np.ndarray]
    position: dict[str, np.ndarray]
    sources: list[str] | None
    n_images: int
    skipped: list[Skipped]
    settings: dict
    means: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    classes: tuple[str, ...] | None = None
    labels: np.ndarray | None = dataclasses.field(default=None, repr=False)
    class_means: dict[str, np.ndarray] | None = dataclasses.field(default=None, repr=False)
    class_counts: np.ndarray | None = None
    timing: dict = dataclasses.field(default_factory=dict)
    dataset: Dataset | None = dataclasses.field(default=None, repr=False)
    _arrays: Any = dataclasses.field(default=None, repr=False)
    _recon: dict = dataclasses.field(default_factory=dict, repr=False)

    def receptive_field(self, layer):
        """The :class:`~jaxvis.ReceptiveField` crops of `layer` are taken at (memoised on the network)."""
        return receptive_field(self.net, self._layer(layer))

    # ------------------------------------------------------------------ lookup
    def _layer(self, layer) -> str:
        name = self.net.layer_name(layer)
        if name not in self.layers:
            raise LayerError(f"layer {name!r} was not part of this run; its layers: {', '.join(self.layers)}")
        return name

    def _unit(self, layer: str, unit: int) -> int:
        c = self.value[layer].shape[0]
        if not isinstance(unit, (int, np.integer)) or not 0 <= unit < c:
            raise ChannelError(f"unit {unit!r} of {layer!r} is outside 0..{c - 1}")
        return int(unit)

    def hits(self, layer, unit: int) -> list[Hit]:
        """The unit's hits, strongest first: fewer than k when fewer images were read, and none with value 0 (a
        ReLU that did not fire: every position ties at 0, so such a "top" patch would be arbitrary). A unit
        without hits after images were read never fired on them (:meth:`never_fired`)."""
        layer = self._layer(layer)
        unit = self._unit(layer, unit)
        out = []
        for v, i, (y, x) in zip(self.value[layer][unit], self.image[layer][unit], self.position[layer][unit]):
            if i >= 0 and np.isfinite(v) and v != 0:
                out.append(Hit(int(i), self.sources[i] if self.sources else None, int(y), int(x), float(v)))
        return out

    def never_fired(self, layer, unit: int) -> bool:
        """Whether images were read and the unit had no nonzero activation on any of them."""
        return self.n_images > len(self.skipped) and not self.hits(layer, unit)

    def hit_classes(self, layer, unit: int) -> dict[str, int]:
        """How many of the unit's hits come from each class, most first (a labelled set; {} otherwise)."""
        if self.classes is None or self.labels is None:
            return {}
        counts: dict[str, int] = {}
        for h in self.hits(layer, unit):
            lab = int(self.labels[h.image])
            name = self.classes[lab] if lab >= 0 else "(no label)"
            counts[name] = counts.get(name, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def top_classes(self, layer, unit: int, n: int = 3) -> list[tuple[str, float]]:
        """The `n` classes with the highest mean activation of the unit, with that mean (a labelled set; [] otherwise)."""
        if self.class_means is None or self.classes is None:
            return []
        layer = self._layer(layer)
        m = self.class_means[layer][:, self._unit(layer, unit)]
        order = [int(i) for i in np.argsort(-np.nan_to_num(m, nan=-np.inf), kind="stable") if np.isfinite(m[i])]
        return [(self.classes[i], float(m[i])) for i in order[:n]]

    def skipped_report(self, limit: int | None = None) -> str:
        """The skipped files, one ``name: reason`` per line (names printable whatever their bytes); with
        `limit`, the first `limit` lines and a count of the rest."""
        lines = [f"{shown(s.source)}: {s.reason}" for s in self.skipped]
        if limit is not None and len(lines) > limit:
            lines = lines[:limit] + [f"… and {len(lines) - limit} more"]
        return "\n".join(lines)

    def load(self, image: int) -> np.ndarray:
        """Image `image` as the network saw it at its input size: uint8 H×W×3 RGB (float32 H×W×C for other channel
        counts)."""
        size, resize, c = self.settings["input_size"], self.settings["resize"], self.net.input_channels
        if self.dataset is not None:
            return self.dataset.load(image, size, resize, c)
        if self.sources is not None:
            return load_one(self.sources[image], size, resize, c)
        if isinstance(self._arrays, dict):
            if image not in self._arrays:
                raise PatchesError(f"image {image} is no unit's hit here, so it was not kept")
            return self._arrays[image]
        return load_one(self._arrays[image], size, resize, c)

    def _decoded(self, image: int, decoded: dict[int, np.ndarray] | None) -> np.ndarray:
        """:meth:`load`, through `decoded` (image id → image) when given: callers share it to decode each photo once."""
        if decoded is None:
            return self.load(image)
        if image not in decoded:
            decoded[image] = self.load(image)
        return decoded[image]

    def box(self, layer, y: int, x: int, context: int = 0) -> tuple[int, int, int, int]:
        """Crop box (y0, x0, y1, x1) of output position (y, x): the receptive field, grown about its centre to at
        least `context` pixels a side, moved inside the image where it sticks out (so every crop of a layer has
        one size and holds the field's whole visible part)."""
        rf = self.receptive_field(layer)
        h, w = self.settings["input_size"]
        y0, x0, y1, x1 = rf.box(y, x)
        gy, gx = max(int(context) - (y1 - y0), 0), max(int(context) - (x1 - x0), 0)
        y0, x0, y1, x1 = y0 - gy // 2, x0 - gx // 2, y1 + gy - gy // 2, x1 + gx - gx // 2
        sh, sw = min(y1 - y0, h), min(x1 - x0, w)
        y0, x0 = min(max(y0, 0), h - sh), min(max(x0, 0), w - sw)
        return y0, x0, y0 + sh, x0 + sw

    def field_in_crop(self, layer, y: int, x: int, context: int = 0) -> tuple[int, int, int, int]:
        """The receptive field of (y, x) in the coordinates of its crop (:meth:`box` with `context`), clipped."""
        cy0, cx0, cy1, cx1 = self.box(layer, y, x, context)
        y0, x0, y1, x1 = self.receptive_field(layer).box(y, x)
        return (min(max(y0 - cy0, 0), cy1 - cy0), min(max(x0 - cx0, 0), cx1 - cx0),
                min(max(y1 - cy0, 0), cy1 - cy0), min(max(x1 - cx0, 0), cx1 - cx0))

    # ------------------------------------------------------------------ crops
    def reconstruct(self, layer, units=None, context: int = CONTEXT, *,
                    decoded: dict[int, np.ndarray] | None = None) -> None:
        """Compute (batched) the reconstructions of every hit of `units` (default all) of `layer`, cropped as
        :meth:`crops` with `context` (`decoded`: as in :meth:`crops`)."""
        layer = self._layer(layer)
        context = int(context)
        units = range(self.value[layer].shape[0]) if units is None else [self._unit(layer, u) for u in units]
        todo = [(u, h) for u in units if (layer, u, context) not in self._recon for h in self.hits(layer, u)]
        if not todo:
            return
        parts: list[np.ndarray] = []
        for lo in range(0, len(todo), 256):  # bounded host memory: 256 images at a time
            part = todo[lo:lo + 256]
            cache = {} if decoded is None else decoded  # without a shared one: each image once per part
            g = reconstruct(self.net, layer, np.stack([self._decoded(h.image, cache) for _, h in part]), [h.y for _, h in part],
                            [h.x for _, h in part], [u for u, _ in part], self.settings["relu"])
            parts.append(normalise_signed(np.stack([self._crop(layer, gi, h, context)
                                                    for gi, (_, h) in zip(render_rgb(g), part)])))
        crops = np.concatenate(parts)
        for u in dict.fromkeys(u for u, _ in todo):
            self._recon[(layer, u, context)] = crops[[j for j, (uu, _) in enumerate(todo) if uu == u]]

    def _crop(self, layer: str, image: np.ndarray, hit: Hit, context: int = 0) -> np.ndarray:
        y0, x0, y1, x1 = self.box(layer, hit.y, hit.x, context)
        return image[y0:y1, x0:x1]

    def crops(self, layer, unit: int, *, reconstruction: bool = True, context: int = CONTEXT,
              decoded: dict[int, np.ndarray] | None = None) -> Crops:
        """The unit's hits, the image crops at their receptive fields and (optionally) the guided-backprop
        (or deconvnet: ``relu=`` of :func:`jaxvis.top_patches`) reconstruction of the unit in each crop.

        Args:
          layer, unit: the unit.
          reconstruction: compute the reconstructions (one backward pass per hit, cached).
          context: smallest crop side in input pixels (default :data:`CONTEXT`, 32): smaller receptive
            fields are shown with the photo around them (their box in `fields`); 0 crops fields exactly.
          decoded: a dict (image id → image at the input size) filled and reused here: pass one dict to
            the calls for several units and each photo is decoded once (its size is the caller's to bound).

        Returns:
          :class:`Crops` (hits, images n×h×w×3 uint8, reconstructions n×h×w×3 float in 0..1 or None,
          fields n×4: the receptive field's box in each crop).
        """
        layer = self._layer(layer)
        unit = self._unit(layer, unit)
        context = int(context)
        if context < 0:
            raise PatchesError(f"context must be >= 0 pixels, got {context}")
        hits = self.hits(layer, unit)
        rf = self.receptive_field(layer)
        h, w = self.settings["input_size"]
        shape = (0, min(max(rf.size[0], context), h), min(max(rf.size[1], context), w), 3)
        ims = (np.stack([_display(self._crop(layer, self._decoded(x.image, decoded), x, context)) for x in hits])
               if hits else np.zeros(shape, np.uint8))
        fields = np.array([self.field_in_crop(layer, x.y, x.x, context) for x in hits], np.int64).reshape(-1, 4)
        rec = None
        if reconstruction:
            self.reconstruct(layer, [unit], context, decoded=decoded)
            rec = self._recon[(layer, unit, context)] if hits else np.zeros(shape, np.float32)
        return Crops(hits, ims, rec, fields)

    def tile(self, layer, units, *, reconstruction: bool = True, thumbnail: int = 64,
             context: int = CONTEXT, decoded: dict[int, np.ndarray] | None = None) -> np.ndarray:
        """One row per unit: its k crops (each beside its reconstruction), the activation value under each.

        Args:
          layer: a layer of the run.
          units: unit indices (rows).
          reconstruction: show the reconstruction beside each crop.
          thumbnail: pixels per crop side (crops are resized to it).
          context: smallest crop side in input pixels (see :meth:`crops`); a receptive field smaller
            than its crop is outlined in red.
          decoded: as in :meth:`crops` (default: a dict for this call, so each photo is decoded once).

        Returns:
          uint8 RGB image (:func:`jaxvis.imtile` of the cells, white background).
        """
        layer = self._layer(layer)
        units = [self._unit(layer, u) for u in np.atleast_1d(units).tolist()]
        if not units:
            raise ChannelError("tile needs at least one unit")
        decoded = {} if decoded is None else decoded
        if reconstruction:
            self.reconstruct(layer, units, context, decoded=decoded)
        cells: list[np.ndarray | None] = []
        rf = self.receptive_field(layer)
        for u in units:
            c = self.crops(layer, u, reconstruction=reconstruction, context=context, decoded=decoded)
            ch, cw = c.images.shape[1:3]
            grown = ch > rf.size[0] or cw > rf.size[1]  # context added: outline the field (big fields: as before)
            for j in range(self.k):
                if j < len(c.hits):
                    parts = [imresize(c.images[j], (thumbnail, thumbnail))]
                    if grown:
                        parts[0] = outline(parts[0], np.round(c.fields[j] * np.array([thumbnail / ch, thumbnail / cw] * 2)))
                    if c.reconstructions is not None:  # shrinking averages a signed, high-frequency map: stretch it again
                        small = imresize(c.reconstructions[j], (thumbnail, thumbnail)) - 0.5
                        parts.append(np.round(normalise_signed(small[None], floor=0.5 / 255)[0] * 255).astype(np.uint8))
                    label = f"{'u%d ' % u if j == 0 else ''}{c.hits[j].value:.3g}"
                    cells.append(_cell(parts, label))
                elif j == 0 and not c.hits:
                    cells.append(_cell([np.full((thumbnail, thumbnail, 3), 255, np.uint8)] * (1 + reconstruction),
                                       f"u{u} never fired" if self.never_fired(layer, u) else f"u{u}: no hits"))
                else:
                    cells.append(None)
        blank = np.full_like(next(c for c in cells if c is not None) if any(c is not None for c in cells)
                             else _cell([np.zeros((thumbnail, thumbnail, 3), np.uint8)] * (1 + reconstruction), ""), 255)
        cells = [blank if c is None else c for c in cells]
        return imtile(cells, grid_size=(len(units), self.k), border_size=2, background_color=(255, 255, 255))

    def picture(self, layer=None, units=None, *, reconstruction: bool = True, thumbnail: int = 64,
                context: int = CONTEXT) -> np.ndarray:
        """:meth:`tile` of `layer` (default the first) and `units` (default its first 8): what ``.save(path, ...)``
        writes. uint8."""
        layer = self._layer(self.layers[0] if layer is None else layer)
        units = range(min(8, self.value[layer].shape[0])) if units is None else units
        return self.tile(layer, units, reconstruction=reconstruction, thumbnail=thumbnail, context=context)

    def _display_picture(self) -> np.ndarray:
        return self.picture(reconstruction=False)

    def _repr_png_(self) -> bytes | None:
        return None  # the HTML view holds the pictures: a notebook would store them twice

    def _repr_html_(self) -> str:
        parts = [f"<p><b>Top-{self.k} patches</b> of {html.escape(str(self.settings.get('net', '')))} over "
                 f"{self.n_images} images ({len(self.skipped)} skipped)</p>"]
        for layer in self.layers:
            n = self.value[layer].shape[0]
            parts.append(f"<p>{html.escape(layer)}: units 0..{min(8, n) - 1} of {n}</p>"
                         + img_tag(self.picture(layer, reconstruction=False), f"top patches of {layer}"))
        return "".join(parts)

    def save_html(self, folder, *, layers=None, units=None, reconstruction: bool = True,
                  thumbnail: int = 64, context: int = CONTEXT) -> list:
        """Write ``folder/index.html`` and one PNG per unit (``<layer>/unit_0007.png``).

        Args:
          folder: output folder (created).
          layers: layers to write (default all of the run).
          units: units per layer (default all).
          reconstruction: include the reconstructions (one backward pass per hit).
          thumbnail: pixels per crop side.
          context: smallest crop side in input pixels (see :meth:`crops`).

        Returns:
          The paths written, index.html last.
        """
        return write_html(self, folder, layers=layers, units=units, reconstruction=reconstruction,
                          thumbnail=thumbnail, context=context)


def _display(crop: np.ndarray) -> np.ndarray:
    """A crop of the network's input as uint8 RGB (gray replicated, other channel counts rendered)."""
    return crop if crop.shape[-1] == 3 and crop.dtype == np.uint8 else \
        np.clip(render_rgb(crop), 0, 255).round().astype(np.uint8)


def _cell(parts: list[np.ndarray], label: str) -> np.ndarray:
    """Parts side by side over a 12-pixel white strip with `label`."""
    row = np.concatenate(parts, axis=1)
    strip = Image.new("RGB", (row.shape[1], 12), (255, 255, 255))
    ImageDraw.Draw(strip).text((1, 0), label, fill=(0, 0, 0))
    return np.concatenate([row, np.asarray(strip)], axis=0)

