"""`Dataset`: the one way `top_patches`, `embedding` / `atlas_image` and `gallery` see a set of photos.

:func:`open_dataset` accepts what users have: a flat folder, an ImageFolder tree (one subfolder per
class: the labels), a list file (``path [label]`` per line), WebDataset tar shards, a list of paths,
or a :class:`Dataset` built with :func:`image_folder`, :func:`list_file` or :func:`shards`. Image ids
are positions in the dataset's fixed order (a folder: sorted relative paths; shards: shard order, then
member order), so batch ``b`` always holds the same images: what makes runs resumable.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Sequence

import numpy as np

from ..errors import DatasetError
from ..imaging.images import fit_to_size, luma
from .listing import IMAGE_SUFFIXES, Entry, Skipped, class_of, read_list, shown, walk
from .read import decode, read_file
from .shards import expand, index, is_shard_spec

LIST_SUFFIXES = (".txt", ".lst", ".list", ".csv", ".tsv")


@dataclasses.dataclass
class Dataset:
    """A fixed, ordered set of image files (or tar members), their labels and what was skipped while listing.

    Attributes:
      entries: the images, by id.
      classes: class names (labels index into them), or None for an unlabelled set.
      skipped: files found while listing that are not usable images, with the reason.
      kind: "folder", "imagefolder", "list", "shards" or "paths".
      spec: what it was opened from (for messages and resume checks).
    """

    entries: list[Entry]
    classes: tuple[str, ...] | None = None
    skipped: list[Skipped] = dataclasses.field(default_factory=list)
    kind: str = "paths"
    spec: str = ""

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def sources(self) -> list[str]:
        """Each image's name: its path, or ``shard.tar/member``."""
        return [e.name for e in self.entries]

    @property
    def labels(self) -> np.ndarray | None:
        """Each image's class index (int32, -1 = none), or None for an unlabelled set."""
        if self.classes is None:
            return None
        return np.array([e.label for e in self.entries], np.int32)

    def fingerprint(self) -> str:
        """A digest of the names and labels, in order (what a resumed run must see again)."""
        h = hashlib.sha256()
        for e in self.entries:
            h.update(e.name.encode("utf-8", "surrogateescape") + b"\0" + str(e.label).encode() + b"\n")
        if self.classes:
            h.update("\0".join(self.classes).encode("utf-8", "surrogateescape"))
        return h.hexdigest()[:16]

    def read(self, i: int, max_pixels: int | None = None) -> np.ndarray:
        """Image `i` at its own size, uint8 H×W×3.

        Raises:
          ImageError: it cannot be used now (vanished, changed, a FIFO, over the pixel budget, corrupt, …).
        """
        e = self.entries[i]
        return decode(read_file(e.path, expect_size=e.size, offset=e.offset, length=e.length), max_pixels)

    def load(self, i: int, size: tuple[int, int], resize: str = "crop", channels: int = 3) -> np.ndarray:
        """Image `i` at `size` (H, W), brought there by `resize` ("crop" or "stretch"): uint8 RGB, or for a
        1-channel network (`channels` 1) its float32 luma H×W×1 (:func:`jaxvis.imaging.images.luma`)."""
        a = self.read(i)
        if channels == 1:
            a = luma(a)
        if a.shape[:2] == tuple(size):
            return a
        out = fit_to_size(a[None].astype(np.float32), size, resize)[0]
        return out if channels == 1 else np.clip(out, 0, 255).round().astype(np.uint8)


def _labelled(entries: list[Entry], labels: Sequence[str | None]) -> tuple[list[Entry], tuple[str, ...] | None]:
    """Entries with label indices into the sorted class names (numeric names in numeric order)."""
    names = sorted({l for l in labels if l is not None}, key=lambda s: (0, int(s), "") if s.isdigit() else (1, 0, s))
    if not names:
        return entries, None
    at = {n: i for i, n in enumerate(names)}
    return [dataclasses.replace(e, label=-1 if l is None else at[l]) for e, l in zip(entries, labels)], tuple(names)


def folder(path: str | os.PathLike, *, labels: bool | None = None) -> Dataset:
    """The image files under a folder (recursive), as a :class:`Dataset`.

    Args:
      path: the folder.
      labels: True: ImageFolder layout (each image's class is its first subfolder; images at the top are
        skipped); False: no labels; None (default): ImageFolder when every image lies in a subfolder and
        there are at least two of them, else no labels.

    Raises:
      DatasetError: not a folder, or no image file in it.
    """
    found, skipped = walk(path)
    spec = os.fspath(path)
    classes = [class_of(rel) for rel, _, _ in found]
    if labels is None:
        labels = bool(found) and None not in classes and len(set(classes)) > 1
    if labels:
        skipped += [Skipped(-1, p, "an image at the top of an ImageFolder tree (no class folder)")
                    for (rel, p, _), c in zip(found, classes) if c is None]
        keep = [(f, c) for f, c in zip(found, classes) if c is not None]
        found, classes = [f for f, _ in keep], [c for _, c in keep]
    if not found:
        raise DatasetError(f"images folder {shown(spec)!r} holds no image files "
                           f"({', '.join(IMAGE_SUFFIXES)}; {len(skipped)} other files)")
    entries = [Entry(p, p, size) for _, p, size in found]
    if labels:
        entries, names = _labelled(entries, classes)
        return Dataset(entries, names, skipped, "imagefolder", spec)
    return Dataset(entries, None, skipped, "folder", spec)


def image_folder(path: str | os.PathLike) -> Dataset:
    """An ImageFolder tree (torchvision's layout: ``root/<class>/.../<image>``): the classes are the
    subfolder names, sorted."""
    return folder(path, labels=True)


def list_file(path: str | os.PathLike) -> Dataset:
    """The images named in a list file: one ``path`` or ``path label`` (or ``path<TAB>label``) per line,
    paths relative to the list file's folder; a missing or unusable file is skipped, not fatal.

    Raises:
      DatasetError: the list file cannot be read or names no image.
    """
    rows = read_list(path)
    entries, labels, skipped = [], [], []
    for p, label in rows:
        if os.path.splitext(p)[1].lower() not in IMAGE_SUFFIXES:
            skipped.append(Skipped(-1, p, f"not an image file (suffix not one of {', '.join(IMAGE_SUFFIXES)})"))
            continue
        entries.append(Entry(p, p))
        labels.append(label)
    if not entries:
        raise DatasetError(f"list file {shown(os.fspath(path))!r} names no image file ({len(rows)} lines read)")
    entries, names = _labelled(entries, labels)
    return Dataset(entries, names, skipped, "list", os.fspath(path))


def shards(spec: str | Sequence[str]) -> Dataset:
    """WebDataset tar shards: ``"train-{000000..000099}.tar"``, a glob, one .tar path, or a list of them;
    labels from each sample's ``.cls`` member.

    Raises:
      DatasetError: a shard is missing, compressed or not a tar archive, or no shard holds an image.
    """
    paths = [p for s in ([spec] if isinstance(spec, (str, os.PathLike)) else spec) for p in expand(os.fspath(s))]
    entries, labels, skipped = index(paths)
    if not entries:
        raise DatasetError(f"the shards {shown(str(spec))!r} hold no image member ({len(skipped)} others)")
    entries, names = _labelled(entries, labels)
    return Dataset(entries, names, skipped, "shards", str(spec))


def paths(items: Sequence[str | os.PathLike]) -> Dataset:
    """A list of image paths, in the order given (each checked when it is read)."""
    if not items:
        raise DatasetError("an empty list of images was given")
    return Dataset([Entry(os.fspath(p), os.fspath(p)) for p in items], None, [], "paths",
                   f"{len(items)} paths")


def open_dataset(images) -> Dataset:
    """`images` as a :class:`Dataset`: a Dataset as is; a folder (flat, or an ImageFolder tree: see
    :func:`folder`); a list file (.txt .lst .list .csv .tsv); tar shards (.tar, a brace range or glob of
    them); a list of paths.

    Raises:
      DatasetError: none of these, or nothing usable in it.
    """
    if isinstance(images, Dataset):
        return images
    if isinstance(images, (str, os.PathLike)):
        spec = os.fspath(images)
        if is_shard_spec(spec):
            return shards(spec)
        if os.path.isdir(spec):
            return folder(spec)
        if spec.lower().endswith(LIST_SUFFIXES):
            return list_file(spec)
        if os.path.isfile(spec):
            raise DatasetError(f"{shown(spec)!r} is a file, not a folder, a list file ({', '.join(LIST_SUFFIXES)}) "
                               "or tar shards (.tar)")
        return folder(spec)  # the missing-folder message
    if isinstance(images, (list, tuple)) and all(isinstance(x, (str, os.PathLike)) for x in images):
        return paths(images)
    raise DatasetError(f"images must be a folder, a list file, tar shards or a list of paths, "
                       f"not {type(images).__name__}")


def is_dataset_like(images) -> bool:
    """Whether :func:`open_dataset` takes `images` (files, not in-memory arrays)."""
    return isinstance(images, (Dataset, str, os.PathLike)) or (
        isinstance(images, (list, tuple)) and bool(images) and all(isinstance(x, (str, os.PathLike)) for x in images))

