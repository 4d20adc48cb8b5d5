"""Embedding atlas (CS231n's t-SNE grid): each image's code at one layer, laid out in 2-D, then
snapped to a grid of thumbnails.

Codes are a layer's activations averaged over positions (a C-vector per image), computed
in batches with ``net.jitted``. The 2-D layout is PCA (numpy only), t-SNE (openTSNE) or
UMAP (umap-learn); the last two are the optional extra ``jaxvis[atlas]``. The grid puts
each image in at most one cell: an optimal linear assignment (scipy's
``linear_sum_assignment``; scipy is a dependency of jax) of images to cell centres by
squared distance, or a greedy one (closest pair first) on request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..datasets import Dataset, Skipped, is_dataset_like, open_dataset
from ..errors import EmbeddingError, ImageError, LayerError, MissingWeightsError
from ..imaging.images import ImageLike, fit_to_size, to_batch
from ..imaging.notebook import Picture
from ..imaging.progress import Progress
from ..nets.receptive import graph_field
from ..patches.loader import BatchLoader

METHODS = ("pca", "tsne", "umap")


@dataclasses.dataclass(frozen=True)
class Embedding(Picture):
    """2-D layout of images by their codes.

    ``.atlas(images)`` is CS231n's grid of the images (:func:`atlas_image`); ``.save(path)`` writes the
    layout as a scatter plot (:meth:`picture`), which a notebook shows inline.

    Attributes:
      coords: N×2 float64 positions (PCA: scores on the first two components).
      codes: N×C codes (the layer averaged over positions).
      layer: the layer the codes come from.
      method: "pca", "tsne" or "umap".
      seed: random seed of t-SNE / UMAP (unused by PCA).
      explained: PCA only: fraction of the codes' variance on each of the two axes.
      ids: for a dataset, the image id (in `dataset`) of each row; None for a list or array of images.
      labels: each row's class index (-1: none) for a labelled dataset, else None; classes: their names.
      skipped: the dataset's files that were not used, with the reason.
      dataset: the :class:`~jaxvis.datasets.Dataset` read, or None.
    """

    coords: np.ndarray
    codes: np.ndarray
    layer: str
    method: str
    seed: int
    explained: tuple[float, float] | None = None
    ids: np.ndarray | None = dataclasses.field(default=None, repr=False)
    labels: np.ndarray | None = dataclasses.field(default=None, repr=False)
    classes: tuple[str, ...] | None = None
    skipped: list[Skipped] = dataclasses.field(default_factory=list, repr=False)
    dataset: Dataset | None = dataclasses.field(default=None, repr=False)

    def atlas(self, images=None, grid: tuple[int, int] = (20, 20), **options) -> np.ndarray:
        """:func:`atlas_image` at these coordinates: of `images` (the embedded ones, in the same order; default
        the dataset the embedding was made from)."""
        return atlas_image(self, images, grid, **options)

    def picture(self, size: int = 360, dot: int = 3) -> np.ndarray:
        """The coordinates as a scatter plot, `size` pixels square, one dot per image: dark blue, or its class's
        colour (:data:`PALETTE`) for a labelled dataset (uint8)."""
        if not 32 <= int(size) <= 4096:
            raise EmbeddingError(f"size must be in 32..4096 pixels, got {size}")
        im = Image.new("RGB", (size, size), (255, 255, 255))
        draw = ImageDraw.Draw(im)
        pad = 4 * dot
        xy = np.asarray(self.coords, np.float64)
        lo, span = xy.min(axis=0), np.ptp(xy, axis=0)
        u = (xy - lo) / np.where(span > 0, span, 1.0)
        lab = np.full(len(u), -1) if self.labels is None else np.asarray(self.labels)
        for (x, y), c in zip(u, lab):  # y up, as a plot
            cx, cy = pad + x * (size - 2 * pad), size - pad - y * (size - 2 * pad)
            draw.ellipse([cx - dot, cy - dot, cx + dot, cy + dot], fill=label_colour(c) if c >= 0 else (31, 78, 140))
        draw.text((4, 2), f"{self.method} of {self.layer} ({len(xy)} images)", fill=(90, 90, 90))
        return np.asarray(im)


def default_layer(net) -> str:
    """The layer :func:`embedding` uses when none is given: CS231n's fc7 where its weights are loaded,
    else the last spatial feature layer (a concat, pool or ReLU output) before the classifier, averaged
    over positions (SqueezeNet: fire9-concat; torchvision AlexNet, whose fc weights are not shipped: pool5).
    Read from the network's layer graph."""
    g = net.graph()

    def spatial(node) -> bool:  # a grid of positions (unknown geometry: more than one position)
        field = graph_field(g, node.name)
        return node.shape[1] * node.shape[2] > 1 if field is None else field.spatial

    if "fc7" in g.layers:
        try:
            net.require_weights(["fc7"])
            return "fc7"
        except MissingWeightsError:
            pass
    ncls = len(net.classes or ())
    best = None
    for name in g.layers:
        node = g[name]
        if node.kind not in ("concat", "pool", "relu") or not spatial(node):
            continue
        src = node
        while src.kind == "relu" and len(src.inputs) == 1:
            src = g[src.inputs[0]]
        if src.kind == "conv" and src.channels == ncls:  # a classifier convolution (SqueezeNet's conv10)
            continue
        try:
            net.require_weights([name])
        except MissingWeightsError:
            break
        best = name
    if best is None:
        raise LayerError(f"no spatial feature layer with loaded weights in {net.name!r}; pass layer=")
    return best


def _images(images) -> list[ImageLike]:
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images)
    if isinstance(images, (list, tuple)):
        return list(images)
    raise EmbeddingError("images must be a list of images (paths, PIL images, arrays), an N×H×W×3 array, a folder, "
                         "a list file or tar shards")


def dataset_codes(net, ds: Dataset, layer, *, batch_size: int = 16, resize: str = "crop",
                  workers: int | None = None, progress: bool | None = None) -> tuple[np.ndarray, np.ndarray, list[Skipped]]:
    """Codes of a dataset's readable images, decoded in a thread pool while the network computes.

    Returns:
      (N×C float32 codes, the N image ids they belong to, the images skipped with the reason).
    """
    if not 1 <= int(batch_size) <= 4096:
        raise EmbeddingError(f"batch_size must be in 1..4096, got {batch_size}")
    name = net.layer_name(layer)
    fn = net.jitted([name])
    out, ids, skipped = [], [], list(ds.skipped)
    bar = Progress(len(ds), f"embedding codes {name}", "images", enabled=progress)
    for b in BatchLoader(ds, net.input_size, int(batch_size), resize=resize, workers=workers,
                         channels=net.input_channels):
        bar.update(int((b.index >= 0).sum()))  # padding rows carry id -1
        skipped += b.skipped
        if not b.valid.any():
            continue
        act = np.asarray(fn(net.params, b.images.astype(np.float32))[name])[b.valid]
        out.append(act.reshape(len(act), -1, act.shape[-1]).mean(axis=1))
        ids.append(b.index[b.valid])
    bar.close()
    if not out:
        raise EmbeddingError(f"none of the {len(ds)} images of {ds.spec!r} could be read; e.g. "
                             f"{skipped[-1].source}: {skipped[-1].reason}" if skipped else "no image could be read")
    return np.concatenate(out).astype(np.float32), np.concatenate(ids).astype(np.int64), skipped


def codes(net, images, layer, *, batch_size: int = 16, resize: str = "crop", progress: bool | None = False) -> np.ndarray:
    """Each image's code: `layer`'s activation averaged over positions.

    Args:
      net: any protocol network.
      images: list of images (any sizes; each is brought to ``net.input_size`` by `resize`) or an
        N×H×W×3 array of 0..255 pixels.
      layer: layer name or index.
      batch_size: images per jitted call (1..4096).
      resize: "crop" (scale, centre crop) or "stretch".
      progress: a progress bar over the images (None: where stderr is a terminal or a notebook).

    Returns:
      N×C float32 codes.
    """
    ims = _images(images)
    if not 1 <= int(batch_size) <= 4096:
        raise EmbeddingError(f"batch_size must be in 1..4096, got {batch_size}")
    name = net.layer_name(layer)
    fn = net.jitted([name])
    out = []
    bar = Progress(len(ims), f"embedding codes {name}", "images", enabled=progress)
    for i in range(0, len(ims), batch_size):
        chunk = [fit_to_size(to_batch(x, channels=net.input_channels)[0], net.input_size, resize)[0]
                 for x in ims[i:i + batch_size]]
        batch = np.stack(chunk).astype(np.float32)
        n = len(batch)
        if n < batch_size and i > 0:  # pad the last chunk: one compiled shape for every batch
            batch = np.concatenate([batch, np.repeat(batch[-1:], batch_size - n, axis=0)])
        act = np.asarray(fn(net.params, batch)[name])[:n]
        out.append(act.reshape(n, -1, act.shape[-1]).mean(axis=1))
        bar.update(n)
    bar.close()
    return np.concatenate(out).astype(np.float32)


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """Scores of the rows of `x` on its first two principal components (numpy SVD), each axis's sign
    fixed so that its largest-magnitude loading is positive; and the variance fraction per axis."""
    x = np.asarray(x, np.float64)
    xc = x - x.mean(axis=0)
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    k = min(2, len(s))
    sign = np.sign(vt[np.arange(k), np.abs(vt[:k]).argmax(axis=1)])
    coords = np.zeros((len(x), 2))
    coords[:, :k] = u[:, :k] * s[:k] * sign
    total = float((s ** 2).sum()) or 1.0
    ev = [float(s[i] ** 2 / total) if i < k else 0.0 for i in range(2)]
    return coords, (ev[0], ev[1])


def _tsne(x: np.ndarray, seed: int, **kw) -> np.ndarray:
    try:
        from openTSNE import TSNE
    except ImportError:
        raise EmbeddingError("method='tsne' needs openTSNE: pip install 'jaxvis[atlas]' "
                             "(or use method='pca', which needs nothing more)") from None
    perplexity = kw.pop("perplexity", min(30.0, max(2.0, (len(x) - 1) / 3.0)))
    return np.asarray(TSNE(n_components=2, perplexity=perplexity, random_state=seed, n_jobs=1, verbose=False,
                           **kw).fit(np.asarray(x, np.float64)))


def _umap(x: np.ndarray, seed: int, **kw) -> np.ndarray:
    try:
        import umap
    except ImportError:
        raise EmbeddingError("method='umap' needs umap-learn: pip install 'jaxvis[atlas]' "
                             "(or use method='pca', which needs nothing more)") from None
    kw.setdefault("n_neighbors", min(15, len(x) - 1))
    return np.asarray(umap.UMAP(n_components=2, random_state=seed, **kw).fit_transform(np.asarray(x, np.float32)))


def embedding(net, images, layer=None, *, method: str = "tsne", batch_size: int = 16, seed: int = 0,
              resize: str = "crop", progress: bool | None = None, **options) -> Embedding:
    """2-D coordinates of each image's code at `layer` (CS231n's t-SNE of AlexNet fc7 codes).

    Args:
      net: any protocol network.
      images: list of images or an N×H×W×3 array (see :func:`codes`), or a dataset: a folder, an ImageFolder
        tree (labels: the atlas colours cells by class), a list file, tar shards or a
        :class:`~jaxvis.datasets.Dataset` (read in a thread pool; unusable files are skipped and listed in
        ``.skipped``); at least 3 usable images.
      layer: layer name or index; default :func:`default_layer`.
      method: "tsne" (openTSNE), "umap" (umap-learn) — both the extra ``jaxvis[atlas]`` — or "pca" (numpy).
      batch_size: images per jitted call.
      seed: random seed of t-SNE / UMAP.
      resize: how images are brought to the network's input size ("crop" or "stretch").
      progress: a progress bar over the images: None (default) where stderr is a terminal or a notebook,
        True always, False never.
      **options: passed to openTSNE.TSNE / umap.UMAP (e.g. perplexity=, n_neighbors=).

    Returns:
      :class:`Embedding` (``.coords`` N×2).
    """
    if method not in METHODS:
        raise EmbeddingError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method in ("tsne", "umap"):  # fail on a missing extra before any network work
        try:
            __import__("openTSNE" if method == "tsne" else "umap")
        except ImportError:
            (_tsne if method == "tsne" else _umap)(np.zeros((3, 2)), seed)
    ds = open_dataset(images) if is_dataset_like(images) and not _is_path_list(images) else None
    name = net.layer_name(default_layer(net) if layer is None else layer)
    if ds is not None:
        c, ids, skipped = dataset_codes(net, ds, name, batch_size=batch_size, resize=resize, progress=progress)
        if len(c) < 3:
            raise EmbeddingError(f"an embedding needs at least 3 images; {len(c)} of {ds.spec!r} could be read")
        xy, explained = layout(c, method, seed=seed, **options)
        labels = None if ds.labels is None else ds.labels[ids]
        return Embedding(xy, c, name, method, int(seed), explained, ids, labels, ds.classes, skipped, ds)
    ims = _images(images)
    if len(ims) < 3:
        raise EmbeddingError(f"an embedding needs at least 3 images, got {len(ims)}")
    c = codes(net, ims, name, batch_size=batch_size, resize=resize, progress=progress)
    xy, explained = layout(c, method, seed=seed, **options)
    return Embedding(xy, c, name, method, int(seed), explained)


def _is_path_list(images) -> bool:
    """A list of paths keeps its old meaning (images read as given, any error fatal)."""
    return isinstance(images, (list, tuple))


def layout(x, method: str = "pca", *, seed: int = 0, **options) -> tuple[np.ndarray, tuple[float, float] | None]:
    """2-D layout of the rows of `x` (codes): "pca", "tsne" or "umap" (see :func:`embedding`).

    Returns:
      (N×2 float64 coordinates, PCA's explained-variance fractions or None).
    """
    if method == "pca":
        return pca_2d(x)
    if method == "tsne":
        return np.asarray(_tsne(np.asarray(x), seed, **options), np.float64), None
    if method == "umap":
        return np.asarray(_umap(np.asarray(x), seed, **options), np.float64), None
    raise EmbeddingError(f"method must be one of {', '.join(METHODS)}, got {method!r}")


def assign_grid(coords, grid: tuple[int, int] = (20, 20), *, assign: str = "linear") -> np.ndarray:
    """Which image goes in each grid cell, no image twice.

    Coordinates are scaled to the unit square (each axis by its min and max); cell (r, c) has its
    centre at ((c + 0.5)/cols, (r + 0.5)/rows) with x to the right and y up the page reversed (row 0 at
    the top holds the largest y). With more images than cells some images are left out; with fewer,
    some cells stay empty.

    Args:
      coords: N×2 positions.
      grid: (rows, cols).
      assign: "linear" (minimum total squared distance, scipy.optimize.linear_sum_assignment) or
        "greedy" (repeatedly the closest free (cell, image) pair).

    Returns:
      rows×cols int array of image indices, -1 for an empty cell.
    """
    xy = np.asarray(coords, np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2 or len(xy) == 0:
        raise EmbeddingError(f"coords must be N×2 with N ≥ 1, got shape {xy.shape}")
    rows, cols = (int(v) for v in grid)
    if not (1 <= rows <= 256 and 1 <= cols <= 256):
        raise EmbeddingError(f"grid rows and columns must be in 1..256, got {grid!r}")
    lo, span = xy.min(axis=0), np.ptp(xy, axis=0)
    u = (xy - lo) / np.where(span > 0, span, 1.0)
    cy, cx = np.meshgrid((np.arange(rows) + 0.5) / rows, (np.arange(cols) + 0.5) / cols, indexing="ij")
    centres = np.stack([cx.ravel(), 1.0 - cy.ravel()], axis=1)  # row 0 at the top = largest y
    cost = ((centres[:, None, :] - u[None, :, :]) ** 2).sum(-1)  # cells × images
    cell_of = np.full(rows * cols, -1, np.int64)
    if assign == "linear":
        from scipy.optimize import linear_sum_assignment
        r, c = linear_sum_assignment(cost)
        cell_of[r] = c
    elif assign == "greedy":
        order = np.argsort(cost, axis=None, kind="stable")
        used_cell, used_img = np.zeros(len(centres), bool), np.zeros(len(u), bool)
        left = min(len(centres), len(u))
        for flat in order:
            ci, ii = divmod(int(flat), len(u))
            if not used_cell[ci] and not used_img[ii]:
                cell_of[ci], used_cell[ci], used_img[ii] = ii, True, True
                left -= 1
                if not left:
                    break
    else:
        raise EmbeddingError(f"assign must be 'linear' or 'greedy', got {assign!r}")
    return cell_of.reshape(rows, cols)


def _thumb(x: ImageLike, cell: int) -> np.ndarray:
    a = to_batch(x)[0][0]
    return np.asarray(Image.fromarray(np.clip(fit_to_size(a[None], (cell, cell), "crop")[0], 0, 255)
                                      .round().astype(np.uint8)))


# Label colours (Tableau 10, then 10 more): distinct on photos; a cell's frame carries its class.
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (174, 199, 232), (255, 187, 120),
           (152, 223, 138), (255, 152, 150), (197, 176, 213), (196, 156, 148), (247, 182, 210), (199, 199, 199),
           (219, 219, 141), (158, 218, 229))


def label_colour(label: int) -> tuple[int, int, int]:
    """The frame colour of class `label` (cycling through :data:`PALETTE`)."""
    return PALETTE[int(label) % len(PALETTE)]


def _legend(classes: Sequence[str], used: set[int], width: int, background: int) -> np.ndarray:
    """Rows of colour swatches with class names, `width` pixels wide (only the classes shown)."""
    items = [(i, classes[i]) for i in sorted(used)]
    rows: list[list[tuple[int, str]]] = [[]]
    x = 4
    for i, name in items:
        w = 18 + 6 * len(name) + 12
        if x + w > width and rows[-1]:
            rows.append([])
            x = 4
        rows[-1].append((i, name))
        x += w
    img = Image.new("RGB", (width, 16 * len(rows) + 6), (background,) * 3)
    d = ImageDraw.Draw(img)
    for r, row in enumerate(rows):
        x = 4
        for i, name in row:
            y = 4 + 16 * r
            d.rectangle([x, y, x + 11, y + 11], fill=label_colour(i))
            d.text((x + 16, y), name, fill=(0, 0, 0) if background > 127 else (255, 255, 255))
            x += 18 + 6 * len(name) + 12
    return np.asarray(img)


def atlas_image(coords, images=None, grid: tuple[int, int] = (20, 20), *,
                cell: int = 48, assign: str = "linear", background: int = 255, labels=None,
                classes: Sequence[str] | None = None, legend: bool = True) -> np.ndarray:
    """CS231n's embedding grid: each cell shows the image whose 2-D position is closest (no repeats).

    Args:
      coords: N×2 positions, or an :class:`Embedding` (its coordinates; its images, labels and classes
        when those arguments are not given).
      images: the N images (list or N×H×W×3 array) in the same order, or the dataset the embedding was
        made from (default: the embedding's).
      grid: (rows, cols).
      cell: thumbnail side in pixels (1..512; images are centre-cropped square).
      assign: "linear" or "greedy" (see :func:`assign_grid`).
      background: grey level of empty cells.
      labels: N class indices (-1: none): each thumbnail is framed in its class's colour (:data:`PALETTE`).
      classes: class names for the legend.
      legend: with labels and classes, add a legend of the classes shown under the grid.

    Returns:
      (rows·cell [+ legend])×(cols·cell)×3 uint8.
    """
    emb = coords if isinstance(coords, Embedding) else None
    try:
        xy = np.asarray(emb.coords if emb is not None else coords, dtype=np.float64)
    except (TypeError, ValueError):
        xy = np.zeros(())
    if xy.ndim != 2 or xy.shape[1:] != (2,):
        raise EmbeddingError(f"coords must be an Embedding (jaxvis.embedding's result) or N×2 positions, "
                             f"got {type(coords).__name__} of shape {np.shape(xy)}")
    if emb is not None:
        labels = emb.labels if labels is None else labels
        classes = emb.classes if classes is None else classes
        if images is None:
            images = emb.dataset
    if images is None:
        raise EmbeddingError("atlas_image needs the images (or an Embedding made from a dataset)")
    ds = open_dataset(images) if is_dataset_like(images) and not _is_path_list(images) else None
    if ds is not None:
        ids = emb.ids if emb is not None and emb.ids is not None and emb.dataset is not None else np.arange(len(ds))
        pick: Sequence = [int(i) for i in ids]
    else:
        pick = _images(images)
    if len(pick) != len(xy):
        raise EmbeddingError(f"{len(pick)} images but {len(xy)} coordinates: they must pair up")
    if not 1 <= int(cell) <= 512:
        raise EmbeddingError(f"cell must be in 1..512 pixels, got {cell}")
    lab = None if labels is None else np.asarray(labels, np.int64).ravel()
    if lab is not None and len(lab) != len(xy):
        raise EmbeddingError(f"{len(lab)} labels but {len(xy)} coordinates: they must pair up")
    table = assign_grid(xy, grid, assign=assign)
    rows, cols = table.shape
    out = np.full((rows * cell, cols * cell, 3), background, np.uint8)
    frame = max(2, cell // 12) if cell >= 16 else 1
    used: set[int] = set()
    for (r, c), i in np.ndenumerate(table):
        if i < 0:
            continue
        try:
            t = _thumb(ds.read(pick[i]) if ds is not None else pick[i], cell)
        except ImageError:  # a dataset file that changed or vanished since its code was computed: an empty cell
            continue
        if lab is not None and lab[i] >= 0:
            t = t.copy()
            col = label_colour(int(lab[i]))
            t[:frame], t[-frame:], t[:, :frame], t[:, -frame:] = col, col, col, col
            used.add(int(lab[i]))
        out[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] = t
    if legend and lab is not None and classes and used:
        out = np.concatenate([out, _legend(classes, used, out.shape[1], background)], axis=0)
    return out
