"""Background image loading: decode and resize in a bounded thread pool while the accelerator computes.

:class:`BatchLoader` turns a :class:`~jaxvis.datasets.Dataset` (a folder, ImageFolder tree, list file,
tar shards or list of paths) or an iterable of arrays into fixed-size uint8 batches at the network's
input size. Every image keeps its id (its place in the dataset), unreadable ones become masked slots
of their batch, so batch ``b`` always holds the same images: what makes runs resumable and shardable
by batch. Memory: (prefetch + 1) batches of decoded images plus, per decoding thread, one file being
decoded (bounded by :data:`jaxvis.datasets.MAX_PHOTO_BYTES` and the pixel budget).
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import dataclasses
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from ..datasets import IMAGE_SUFFIXES, Dataset, Skipped, is_dataset_like, open_dataset
from ..datasets.listing import walk
from ..errors import DatasetError, ImageError, PatchesError
from ..imaging.images import fit_to_size, read_image, to_image

__all__ = ["DECODED_MAX", "IMAGE_SUFFIXES", "Batch", "BatchLoader", "Skipped", "list_images", "load_one", "resolve"]

# Decoded images a caller keeps across units (TopPatches.crops(decoded=...)) before starting afresh:
# bounds memory (~40 MB at 227 px) while neighbouring units, which often share photos, decode them once.
DECODED_MAX = 256


@dataclasses.dataclass
class Batch:
    """One batch: ``index`` (B,) image ids (-1 for padding), ``images`` B×H×W×C (uint8 RGB for 3 channels, else
    float32: a colour photo's luma is not a whole number), ``valid`` (B,)."""

    number: int
    index: np.ndarray
    images: np.ndarray
    valid: np.ndarray
    skipped: list[Skipped]


def list_images(folder: str | os.PathLike) -> tuple[list[Path], list[Skipped]]:
    """Image files under `folder` (recursive, sorted by relative path) and the other files, as skipped.

    Raises:
      DatasetError: `folder` is not a folder.
    """
    found, skipped = walk(folder)
    return [Path(p) for _, p, _ in found], skipped


def resolve(images) -> tuple[Dataset | Sequence | Iterable, Dataset | None]:
    """`images` as (items, dataset or None): files of any layout become a :class:`~jaxvis.datasets.Dataset`
    (:func:`~jaxvis.datasets.open_dataset`); arrays, PIL images and iterables of them stay as they are.

    Raises:
      DatasetError: an empty list, or files that cannot be listed (see open_dataset).
      PatchesError: an array that is not N×H×W×C, or another type.
    """
    if is_dataset_like(images):
        ds = open_dataset(images)
        return ds, ds
    if isinstance(images, np.ndarray):
        if images.ndim != 4:
            raise PatchesError(f"an array of images must be N×H×W×C, got shape {images.shape}")
        return images, None
    if isinstance(images, (list, tuple)):
        if not images:
            raise DatasetError("an empty list of images was given")
        return images, None
    if isinstance(images, Iterable):
        return images, None
    raise PatchesError(f"images must be a folder, a list file, tar shards, a list of paths or an iterable of "
                       f"arrays, not {type(images).__name__}")


def load_one(item, size: tuple[int, int], resize: str = "crop", channels: int = 3) -> np.ndarray:
    """One image (path, PIL image or array) at `size` (:func:`jaxvis.imaging.images.fit_to_size`): uint8 H×W×3 RGB,
    or for other channel counts float32 H×W×C (1: grayscale, colour converted to luma; others: arrays only)."""
    if channels == 3 and isinstance(item, (str, os.PathLike)):
        a = read_image(item)
        if a.shape[:2] == tuple(size):
            return a
        a = a.astype(np.float32)
    else:
        a = to_image(item, "image", channels=channels)
    a = fit_to_size(a[None], size, resize)[0]
    return np.clip(a, 0, 255).round().astype(np.uint8) if channels == 3 else a.astype(np.float32)


class BatchLoader:
    """Iterate fixed-size uint8 batches, decoding `prefetch` batches ahead in a thread pool.

    Args:
      items: a :class:`~jaxvis.datasets.Dataset`, or arrays (a sequence, or any iterable read once).
      size: (H, W) every image is resized to.
      batch_size: images per batch; the last batch is padded with masked slots.
      resize: "crop" (keep aspect, centre crop) or "stretch".
      workers: decoding threads (default: CPU count, at most 8). Pillow releases the GIL while decoding.
      prefetch: batches decoded ahead of the consumer (bounds memory to (prefetch + 1) batches).
      start: first batch number to yield (earlier ones are skipped without decoding).
      select: keep only batch numbers ``b`` with ``select(b)`` (a process's shard).
      sources: names of the items for skip reports (default: the dataset's names).
      channels: the network's input channels (images are read for it: :func:`load_one`).
    """

    def __init__(self, items, size, batch_size: int, *, resize: str = "crop", workers: int | None = None,
                 prefetch: int = 2, start: int = 0, select=None, sources: Sequence[str] | None = None,
                 channels: int = 3):
        if batch_size < 1:
            raise PatchesError(f"batch_size must be at least 1, got {batch_size}")
        self.items, self.size, self.batch_size, self.resize = items, tuple(size), int(batch_size), resize
        self.workers = workers or min(8, os.cpu_count() or 1)
        self.prefetch, self.start, self.select = max(1, prefetch), start, select
        self.sources = items.sources if sources is None and isinstance(items, Dataset) else sources
        # decode_seconds: decoding time summed over threads; wait_seconds: time the consumer waited for a
        # decoded image (the network idle): wait / wall time is the decode share of a run.
        self.decode_seconds = self.wait_seconds = 0.0
        self.channels = int(channels)

    def _jobs(self) -> Iterator[tuple[int, int, object]]:
        """(batch number, image index, item) for the batches this loader yields."""
        items = range(len(self.items)) if isinstance(self.items, Dataset) else self.items
        for i, item in enumerate(items):
            b = i // self.batch_size
            if b < self.start or (self.select is not None and not self.select(b)):
                continue
            yield b, i, item

    def _load(self, i: int, item):
        t0 = time.perf_counter()
        try:
            if isinstance(self.items, Dataset):
                return self.items.load(i, self.size, self.resize, self.channels), None
            return load_one(item, self.size, self.resize, self.channels), None
        except ImageError as e:
            return None, Skipped(i, self.sources[i] if self.sources else f"image {i}", str(e))
        finally:
            self.decode_seconds += time.perf_counter() - t0  # float += under the GIL: a lost update is harmless

    def __iter__(self) -> Iterator[Batch]:
        bs, (h, w) = self.batch_size, self.size
        pending: collections.deque = collections.deque()
        jobs = self._jobs()
        with cf.ThreadPoolExecutor(self.workers, thread_name_prefix="jaxvis-loader") as pool:
            def fill():
                while len(pending) < (self.prefetch + 1) * bs:
                    job = next(jobs, None)
                    if job is None:
                        return
                    b, i, item = job
                    pending.append((b, i, pool.submit(self._load, i, item)))

            fill()
            while pending:
                b = pending[0][0]
                c = self.channels
                batch = Batch(b, np.full(bs, -1, np.int32), np.zeros((bs, h, w, c), np.uint8 if c == 3 else np.float32),
                              np.zeros(bs, bool), [])
                while pending and pending[0][0] == b:
                    _, i, fut = pending.popleft()
                    t0 = time.perf_counter()
                    a, skip = fut.result()
                    self.wait_seconds += time.perf_counter() - t0
                    slot = i - b * bs
                    batch.index[slot] = i
                    if skip is None:
                        batch.images[slot], batch.valid[slot] = a, True
                    else:
                        batch.skipped.append(skip)
                    fill()
                yield batch
