"""`top_patches`: what excites each unit in real data, streamed over a folder of photos."""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import math
import os
import time
from collections.abc import Sequence, Sized
from pathlib import Path

import jax
import numpy as np
from jax.experimental import multihost_utils

from ..datasets import Dataset, Skipped
from ..errors import LayerError, PatchesError
from ..imaging.fileio import atomic_path, check_writable, exclusive, read_regular_file, remove_stale_temps
from ..imaging.progress import Progress
from .loader import BatchLoader, resolve
from .result import TopPatches
from .topk import init_state, jitted_step, merge_host

DEFAULT_BATCH = 32  # images per step on CPU; rounded up to a multiple of the device count
CACHE_SECONDS = 5.0  # the cache is rewritten at most this often (and at the end / on interrupt)
INPUT_NAMES = ("data", "input")  # the image itself: not a layer to find patches for
# Cache format: 1 = top-k state only (no field in the file); 2 = also the per-unit sums of the mean activation;
# 3 = those sums per class (G×C), images used per class, the dataset's fingerprint with its labels.
CACHE_FORMAT = 3

# (images used per group (G,) int64, per layer G×C float64 sums of per-image mean activations). The groups
# are the dataset's classes plus one for unlabelled images (one group in all for an unlabelled set).
Sums = tuple[np.ndarray, dict[str, np.ndarray]]


def _layers(net, layers) -> tuple[str, ...]:
    if isinstance(layers, str) and layers == "all":
        names = [n for n in net.layer_names if n not in INPUT_NAMES]
    else:
        refs = [layers] if isinstance(layers, (str, int)) else list(layers)
        if not refs:
            raise LayerError("no layers given; name one (e.g. 'conv5'), a list, or 'all'")
        names = []
        for r in refs:
            try:
                names.append(net.layer_name(r))
            except LayerError:
                raise
            except Exception as e:  # a protocol net with a terser layer_name
                close = difflib.get_close_matches(str(r), net.layer_names, 3)
                raise LayerError(f"unknown layer {r!r}; close matches: {close}") from e
    order = {n: i for i, n in enumerate(net.layer_names)}
    return tuple(sorted(dict.fromkeys(names), key=lambda n: order.get(n, len(order))))


def _fingerprint(net, layers, k, batch_size, resize, ds: Dataset, n_proc, pid) -> dict:
    # the network's parameters count too: a cache of another checkpoint of the same architecture is foreign
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(net.params):
        a = np.asarray(leaf)
        h.update(str((a.shape, a.dtype)).encode() + a.tobytes()[:4096])
    return {"format": CACHE_FORMAT, "net": net.name, "params_sha256": h.hexdigest()[:16], "layers": list(layers),
            "k": k, "batch_size": batch_size, "resize": resize, "n_sources": len(ds), "sources_sha256": ds.fingerprint(),
            "processes": n_proc, "process": pid}


def _fold(sums: Sums, pending) -> Sums:
    """`sums` plus a batch's ``(images used, device sums)`` (None: nothing pending), as new arrays: the
    caller swaps it in with one assignment, so an interrupt never leaves a batch half added."""
    if pending is None:
        return sums
    n, got = pending[0], jax.device_get(pending[1])
    return sums[0] + n, {l: v + np.asarray(got[l], np.float64) for l, v in sums[1].items()}


def _groups(labels: np.ndarray | None, n_groups: int, batch) -> np.ndarray:
    """B×G one-hot rows of a batch's groups (the last group: unlabelled images); masked images all zero."""
    g = np.zeros((len(batch.index), n_groups), np.float32)
    ids = np.maximum(batch.index, 0)
    col = np.full(len(ids), n_groups - 1) if labels is None else np.where(labels[ids] >= 0, labels[ids], n_groups - 1)
    g[np.arange(len(ids)), col] = batch.valid
    return g


def _save_cache(path: Path, meta: dict, next_batch: int, state, sums: Sums, skipped: list[Skipped]) -> None:
    arrays = {}
    for l, (v, i, p) in state.items():
        arrays[f"{l}/value"], arrays[f"{l}/image"], arrays[f"{l}/position"] = (np.asarray(a) for a in (v, i, p))
        arrays[f"{l}/mean_sum"] = sums[1][l]
    arrays["__used__"] = sums[0]
    doc = dict(meta, next_batch=next_batch,
               skipped=[[s.index, s.source, s.reason] for s in skipped])
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, __meta__=np.frombuffer(json.dumps(doc).encode(), np.uint8), **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle


def _load_cache(path: Path, meta: dict):
    """The state of a cache written for `meta`; anything else is refused by name (what differs, or why the
    file is not a cache), with the way out: ``rebuild=True`` (``--rebuild``) or another path."""
    try:
        with np.load(io.BytesIO(read_regular_file(path, what="top-patches cache", error=PatchesError)),
                     allow_pickle=False) as z:
            doc = json.loads(bytes(z["__meta__"]).decode())
            if doc.get("format", 1) != CACHE_FORMAT:
                raise PatchesError(
                    f"cache {str(path)!r} has format {doc.get('format', 1)} (written by an older jaxvis); this "
                    f"version reads format {CACHE_FORMAT}: pass rebuild=True (--rebuild) to recompute it, or give "
                    "another cache path")
            diff = [f"{key}: cache {doc.get(key)!r}, now {v!r}" for key, v in meta.items() if doc.get(key) != v]
            if diff:  # before reading arrays: other layers would otherwise read as a broken file
                raise PatchesError(f"cache {str(path)!r} was written for other settings ({'; '.join(diff)}); "
                                   "pass rebuild=True (--rebuild) to recompute it, or give another cache path")
            state = {l: tuple(np.asarray(z[f"{l}/{f}"]) for f in ("value", "image", "position")) for l in meta["layers"]}
            sums = (np.asarray(z["__used__"], np.int64), {l: np.asarray(z[f"{l}/mean_sum"], np.float64)
                                                         for l in meta["layers"]})
    except PatchesError:
        raise
    except Exception as e:
        raise PatchesError(f"cache {str(path)!r} is not a readable top-patches cache, e.g. truncated "
                           f"({type(e).__name__}: {str(e)[:200]}); pass rebuild=True (--rebuild) to recompute it, "
                           "or give another cache path") from e
    return doc["next_batch"], state, sums, [Skipped(*s) for s in doc["skipped"]]


def top_patches(net, images, layers, *, k: int = 9, batch_size: int | None = None, cache=None,
                rebuild: bool = False, progress: bool | None = None, resize: str = "crop", relu: str = "guided",
                workers: int | None = None, devices: Sequence | None = None,
                _stop_after: int | None = None) -> TopPatches:
    """The k images (and positions) that excite each unit of `layers` most, streamed over `images`.

    Per unit: the top-k over images of the unit's maximum over positions (one hit per image, as
    Zeiler & Fergus and OpenAI Microscope), position ties to the first in row-major order,
    value ties to the lower image id. One jitted forward pass per batch computes every layer and
    merges the batch's per-unit maxima into the running top-k on the device (``lax.top_k``):
    memory does not grow with the number of images. The same pass sums each unit's activation
    averaged over positions, per class for a labelled set: its mean activation over the images
    read (``.means``, ``.class_means``). Images are decoded and resized in a background thread
    pool; batches are sharded over `devices`; with ``jax.distributed`` each process reads every
    ``process_count``-th batch and the results are merged exactly.

    Args:
      net: any network of the protocol.
      images: a folder (recursive; .jpg/.jpeg/.png/.webp; an ImageFolder tree of class subfolders gives
        labels), a list file (``path [label]`` per line), WebDataset tar shards (``"train-{000..009}.tar"``),
        a list of paths, a :class:`jaxvis.datasets.Dataset`, or an iterable of arrays / PIL images (ids =
        positions). Unusable files (not images, empty, truncated, FIFOs, loops, over the pixel budget,
        vanished or changed during the scan) are skipped and listed in ``.skipped`` with the reason.
        Files are read as RGB for 3-channel networks and as grayscale (luma) for 1-channel ones; networks
        of other channel counts take arrays (N×H×W×C, or an iterable of H×W×C) only.
      layers: a layer name or index, a list of them, or "all".
      k: hits per unit (≥ 1).
      batch_size: images per step (default 32, rounded up to a multiple of the device count).
      cache: an .npz path: the running state is written there (atomically, every few seconds and on
        interrupt); a rerun with the same settings continues after the last batch written and gives the
        result of an uninterrupted run. Needs image files. While a run uses it, ``<cache>.lock`` holds
        its pid: a second run on the same cache is refused (:class:`~jaxvis.errors.LockedError`).
      rebuild: recompute from the start when the cache was written for other settings or is damaged
        (default: such a cache is refused, by name).
      progress: a progress bar on stderr: None (default) where stderr is a terminal or a notebook, True always, False never.
      resize: "crop" (scale the short side, centre-crop) or "stretch" to the network's input size.
      relu: backward rule of the reconstructions: "guided" (guided backprop) or "deconvnet".
      workers: decoding threads (default: CPU count, at most 8).
      devices: local devices to shard batches over (default all local devices).

    Returns:
      :class:`TopPatches` (``.hits``, ``.means``, ``.class_means``, ``.hit_classes``, ``.skipped``,
      ``.crops``, ``.tile``, ``.save_html``).

    Raises:
      PatchesError: k < 1, no images, a cache written for other settings, by an older jaxvis, or damaged
        (without `rebuild`).
      DatasetError: a folder, list file or shard that cannot be opened or holds no image.
      LockedError: another process is writing the same cache.
      OutputError: the cache cannot be written (e.g. the disk is full: the cache last written stays whole,
        and a rerun continues from it).
      LayerError: an unknown layer (close matches in the message).
    """
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise PatchesError(f"k must be an integer ≥ 1, got {k!r}")
    if relu not in ("guided", "deconvnet"):
        raise PatchesError(f"relu must be 'guided' or 'deconvnet', got {relu!r}")
    if resize not in ("crop", "stretch"):
        raise PatchesError(f"resize must be 'crop' or 'stretch', got {resize!r}")
    k = int(k)
    names = _layers(net, layers)
    net.require_weights(names)
    items, ds = resolve(images)
    if ds is not None and net.input_channels not in (1, 3):
        raise PatchesError(f"{net.name!r} takes {net.input_channels}-channel images, which image files do not hold: "
                           f"give an array N×H×W×{net.input_channels} (or an iterable of H×W×{net.input_channels} "
                           "arrays) on the 0..255 scale")
    if cache is not None and ds is None:
        raise PatchesError("cache= needs image files (a folder, list file, shards or paths), so a rerun can read "
                           "them again")
    devices = tuple(jax.local_devices() if devices is None else devices)
    n_proc, pid = jax.process_count(), jax.process_index()
    path = None
    if cache is not None:
        path = Path(os.fspath(cache) + (f".process{pid}of{n_proc}" if n_proc > 1 else ""))
        check_writable([path])
        with exclusive(Path(f"{path}.lock"), f"top-patches cache {str(path)!r}"):
            remove_stale_temps(path)  # a killed earlier run's half-written cache: we are now its one writer
            return _run(net, items, ds, names, k, batch_size, path, rebuild, progress, resize, relu, workers,
                        devices, _stop_after)
    return _run(net, items, ds, names, k, batch_size, None, rebuild, progress, resize, relu, workers, devices,
                _stop_after)


def _run(net, items, ds: Dataset | None, names, k, batch_size, path: Path | None, rebuild: bool, progress: bool | None,
         resize: str, relu: str, workers, devices, _stop_after) -> TopPatches:
    t_start = time.perf_counter()
    sources = None if ds is None else ds.sources
    skipped: list[Skipped] = [] if ds is None else list(ds.skipped)
    labels = None if ds is None else ds.labels
    n_groups = 1 + (len(ds.classes) if ds is not None and ds.classes else 0)
    nd, n_proc, pid = len(devices), jax.process_count(), jax.process_index()
    bs = DEFAULT_BATCH if batch_size is None else int(batch_size)
    if bs < 1:
        raise PatchesError(f"batch_size must be ≥ 1, got {batch_size!r}")
    bs = math.ceil(bs / nd) * nd
    size = tuple(net.input_size)

    def trace():  # a trace of the network (50 ms on SqueezeNet): once per network, layers and size
        spec = jax.ShapeDtypeStruct((1, *size, net.input_channels), np.float32)
        return jax.eval_shape(net.function(names), net.params, spec)

    shapes = net.cache.memo(("top_patches", "shapes", names, size), trace)
    channels = {l: int(shapes[l].shape[-1]) for l in names}
    state = init_state(channels, k)
    sums: Sums = (np.zeros(n_groups, np.int64), {l: np.zeros((n_groups, c), np.float64) for l, c in channels.items()})
    start = 0
    meta: dict = {}
    if path is not None and ds is not None:
        meta = _fingerprint(net, names, k, bs, resize, ds, n_proc, pid)
        if path.exists():
            try:
                start, state, sums, old = _load_cache(path, meta)
                skipped = skipped + [s for s in old if s.index >= 0]
            except PatchesError:
                if not rebuild:
                    raise
    step, _, shard, repl = jitted_step(net, names, k, devices, bs)
    params = jax.device_put(net.params, repl)
    state = jax.device_put(state, repl)
    keep = ds is None and not isinstance(items, Sequence) and not isinstance(items, np.ndarray)
    kept: dict[int, np.ndarray] = {}
    loader = BatchLoader(items, size, bs, resize=resize, workers=workers, start=start, sources=sources,
                         channels=net.input_channels,
                         select=(lambda b: b % n_proc == pid) if n_proc > 1 else None)
    total = len(items) if isinstance(items, Sized) else 0
    bar = Progress(max(total - start * bs, 1), f"top_patches {net.name}", "images", enabled=progress)
    next_batch, last_save, done, pending = start, time.monotonic(), 0, None
    n_seen = start * bs
    try:
        for batch in loader:
            groups = _groups(labels, n_groups, batch)
            new, new_sums = step(params, state, jax.device_put(batch.images, shard), jax.device_put(batch.index, repl),
                                 jax.device_put(batch.valid, shard), jax.device_put(groups, shard))
            # one assignment: an interrupt lands before or after it, so the cache never holds a batch twice.
            # The previous batch's sums are fetched while this batch computes (no wait on the device here).
            used = groups.sum(0).round().astype(np.int64)
            state, sums, pending, next_batch, skipped = (new, _fold(sums, pending), (used, new_sums),
                                                         batch.number + 1, skipped + batch.skipped)
            n_seen = max(n_seen, int(batch.index.max()) + 1)
            if keep:  # an iterator is read once: keep the images some unit still holds (at most units × k)
                held = set(np.concatenate([np.asarray(s[1]).ravel() for s in state.values()]).tolist())
                kept = {i: a for i, a in kept.items() if i in held}
                kept.update((int(i), a) for i, a, ok in zip(batch.index, batch.images, batch.valid) if ok and i in held)
            bar.update(int((batch.index >= 0).sum()))
            done += 1
            if path is not None and time.monotonic() - last_save > CACHE_SECONDS:
                _save_cache(path, meta, next_batch, state, _fold(sums, pending), skipped)
                last_save = time.monotonic()
            if _stop_after is not None and done >= _stop_after:  # test hook: an interrupt after N batches
                raise KeyboardInterrupt(f"stopped after {done} batches (test hook)")
    except KeyboardInterrupt:
        if path is not None:
            _save_cache(path, meta, next_batch, state, _fold(sums, pending), skipped)
        raise
    finally:
        bar.close()
    sums = _fold(sums, pending)
    if path is not None:
        _save_cache(path, meta, next_batch, state, sums, skipped)
    state = jax.device_get(state)
    if n_proc > 1:
        gathered = multihost_utils.process_allgather(state)
        state = merge_host([jax.tree.map(lambda a, j=j: a[j], gathered) for j in range(n_proc)], k)
        counts = multihost_utils.process_allgather(np.int64(n_seen))
        n_seen = int(np.max(counts))
        skipped = _gather_skipped(skipped, n_seen, pid)
        # float64 travels as uint32 pairs: collectives would cast it to float32 (no jax_enable_x64)
        raw = multihost_utils.process_allgather({l: v.view(np.uint32) for l, v in sums[1].items()})
        sums = (np.asarray(multihost_utils.process_allgather(sums[0].view(np.uint32))).view(np.int64).sum(0),
                {l: np.ascontiguousarray(raw[l]).view(np.float64).sum(0) for l in raw})
    if total:
        n_seen = total
    if n_seen == 0:
        raise PatchesError("no images were given (the iterable was empty)")
    if not any(np.any(s[1] >= 0) for s in state.values()):
        raise PatchesError(f"none of the {n_seen} images could be read; e.g. {skipped[-1].source}: {skipped[-1].reason}"
                           if skipped else "no image could be read")
    settings = {"net": net.name, "input_size": size, "k": k, "batch_size": bs, "resize": resize, "relu": relu,
                "devices": [str(d) for d in devices], "processes": n_proc}
    pos = {l: np.stack(np.unravel_index(np.maximum(s[2], 0), _hw(shapes[l])), -1).astype(np.int32)
           for l, s in state.items()}
    used = sums[0]
    class_means = None
    if ds is not None and ds.classes:
        with np.errstate(invalid="ignore", divide="ignore"):
            class_means = {l: (v[:-1] / used[:-1, None]).astype(np.float32) for l, v in sums[1].items()}
    timing = {"seconds": time.perf_counter() - t_start, "decode_seconds": loader.decode_seconds,
              "wait_seconds": loader.wait_seconds}
    return TopPatches(net, names, k, {l: s[0] for l, s in state.items()}, {l: s[1] for l, s in state.items()}, pos,
                      sources, n_seen, sorted(skipped, key=lambda s: (s.index, s.source)), settings,
                      means={l: (v.sum(0) / max(int(used.sum()), 1)).astype(np.float32) for l, v in sums[1].items()},
                      classes=None if ds is None else ds.classes, labels=labels, class_means=class_means,
                      class_counts=None if class_means is None else used[:-1].copy(), timing=timing,
                      dataset=ds, _arrays=kept if keep else (None if ds is not None else items))


def _hw(shape) -> tuple[int, int]:
    return (int(shape.shape[1]), int(shape.shape[2])) if len(shape.shape) == 4 else (1, 1)


def _gather_skipped(skipped: list[Skipped], n: int, pid: int) -> list[Skipped]:
    """Every process's unreadable images (their reasons stay with the process that read them)."""
    mine = np.zeros(n, bool)
    for s in skipped:
        if s.index >= 0:
            mine[s.index] = True
    every = np.asarray(multihost_utils.process_allgather(mine)).any(0)
    have = {s.index for s in skipped}
    return skipped + [Skipped(int(i), f"image {i}", "unreadable (reported by another process)")
                      for i in np.flatnonzero(every) if int(i) not in have]
