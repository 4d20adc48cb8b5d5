"""Sharded tar archives in the WebDataset layout, read in place.

A sample is the group of members sharing a key (the member name up to the first dot of its base
name): ``000123.jpg`` with ``000123.cls`` (its class, as text). Shards are indexed once (tar headers
only; the data is skipped by seeking) and members are then read by offset, so decoding runs in
parallel and in any order. Only uncompressed ``.tar`` shards can be read by offset: a compressed
shard is refused with a message saying so. Members that are links or devices are skipped.
"""

from __future__ import annotations

import glob
import os
import re
import tarfile

from ..errors import DatasetError
from .listing import IMAGE_SUFFIXES, Entry, Skipped, shown

LABEL_SUFFIXES = (".cls", ".label")  # WebDataset's class member: the class index or name as text
MAX_LABEL_BYTES = 1024
TAR_SUFFIXES = (".tar",)
COMPRESSED = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar.zst")


def is_shard_spec(spec: str) -> bool:
    """Whether a string names tar shards: a .tar path, a brace range ``{000..009}`` or a glob of them."""
    low = spec.lower()
    return low.endswith(TAR_SUFFIXES + COMPRESSED)


def expand(spec: str) -> list[str]:
    """Shard paths of `spec`: WebDataset's brace ranges (``train-{000000..000127}.tar``, zero-padded as
    written) and glob patterns, in sorted order."""
    m = re.search(r"\{(\d+)\.\.(\d+)\}", spec)
    if m:
        lo, hi = int(m.group(1)), int(m.group(2))
        if hi < lo or hi - lo > 1_000_000:
            raise DatasetError(f"shard range {m.group(0)!r} in {spec!r} is empty or too long")
        width = len(m.group(1))
        return [p for i in range(lo, hi + 1) for p in expand(spec[:m.start()] + str(i).zfill(width) + spec[m.end():])]
    if glob.has_magic(spec):
        found = sorted(glob.glob(spec))
        if not found:
            raise DatasetError(f"no shard matches {shown(spec)!r}")
        return found
    return [spec]


def _key(name: str) -> tuple[str, str]:
    """(key, extension) of a member: ``a/b/0001.seg.png`` -> (``a/b/0001``, ``.seg.png``)."""
    head, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    return (f"{head}/{stem}" if head else stem), (dot + ext).lower()


def index(shards: list[str]) -> tuple[list[Entry], list[str | None], list[Skipped]]:
    """Every image member of `shards` (in shard order, then member order) with its label text, and what was skipped.

    Raises:
      DatasetError: a shard is missing, compressed or not a tar archive.
    """
    entries: list[Entry] = []
    labels: list[str | None] = []
    skipped: list[Skipped] = []
    for shard in shards:
        if shard.lower().endswith(COMPRESSED):
            raise DatasetError(f"shard {shown(shard)!r} is compressed; jaxvis reads uncompressed .tar shards "
                               "by offset (WebDataset's usual layout): decompress it (e.g. gunzip) first")
        try:
            size = os.stat(shard).st_size
            with tarfile.open(shard, mode="r:") as tar:
                members = tar.getmembers()
                texts: dict[str, str] = {}
                for m in members:
                    key, ext = _key(m.name)
                    if ext in LABEL_SUFFIXES and m.isfile() and m.size <= MAX_LABEL_BYTES:
                        fh = tar.extractfile(m)
                        if fh is not None:
                            texts[key] = fh.read(MAX_LABEL_BYTES).decode("utf-8", "replace").strip()
        except FileNotFoundError as e:
            raise DatasetError(f"shard {shown(shard)!r} does not exist") from e
        except (OSError, tarfile.TarError) as e:
            raise DatasetError(f"shard {shown(shard)!r} is not a readable tar archive ({type(e).__name__}: {e})") from e
        for m in members:
            key, ext = _key(m.name)
            name = f"{shard}/{m.name}"
            if ext in LABEL_SUFFIXES or ext in (".json", ".txt"):
                continue  # a sample's metadata
            if not ext.endswith(IMAGE_SUFFIXES) or ext.count(".") > 1:
                if m.isfile():
                    skipped.append(Skipped(-1, name, f"not an image member (suffix not one of {', '.join(IMAGE_SUFFIXES)})"))
                continue
            if not m.isfile():
                skipped.append(Skipped(-1, name, "a link or device member in the tar, not an image file"))
            elif m.size == 0:
                skipped.append(Skipped(-1, name, "an empty member (0 bytes)"))
            elif m.offset_data + m.size > size:
                skipped.append(Skipped(-1, name, "truncated: the member runs past the end of the shard"))
            else:
                entries.append(Entry(shard, name, size, m.offset_data, m.size))
                labels.append(texts.get(key))
    return entries, labels, skipped
