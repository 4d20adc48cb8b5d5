"""Listing a photo folder or a list file without trusting the file system.

The walk never opens a file (only ``stat``), follows symlinked folders once (a folder met again
through a link is a loop and is reported), and sorts entries by their path relative to the root,
so image ids do not depend on the order the file system returns names in. What is not a usable
image file is returned as :class:`Skipped` with the reason. Memory: one small record per entry
(~0.3 kB), so a folder of 100,000 files lists in ~30 MB.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import stat
from pathlib import Path

from ..errors import DatasetError
from ..imaging.fileio import read_regular_file
from .read import file_kind, why

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
MAX_LIST_BYTES = 256 << 20  # a list file of 256 MB names ~4 million photos


@dataclasses.dataclass(frozen=True)
class Skipped:
    """An input that was not used: its image id (-1: found while listing, before ids were given), where it
    came from, and why."""

    index: int
    source: str
    reason: str


@dataclasses.dataclass(frozen=True)
class Entry:
    """One image of a dataset: the file to read (`offset`/`length` inside it for a tar member), its name
    (the path, or ``shard.tar/member``), its size when listed (None: not listed) and its label (-1: none)."""

    path: str
    name: str
    size: int | None = None
    offset: int = 0
    length: int | None = None
    label: int = -1


def shown(name: str) -> str:
    """A name as text that can always be printed or written as UTF-8 (undecodable bytes as ``\\xNN``)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def walk(root: str | os.PathLike) -> tuple[list[tuple[str, str, int]], list[Skipped]]:
    """Image files under `root` as (relative posix path, path, size), sorted by relative path, and what was skipped.

    Raises:
      DatasetError: `root` is not a folder.
    """
    top = os.fspath(root)
    try:
        st = os.stat(top)
    except OSError as e:
        raise DatasetError(f"images folder {shown(top)!r} is not a folder ({why(e)})") from e
    if not stat.S_ISDIR(st.st_mode):
        raise DatasetError(f"images folder {shown(top)!r} is not a folder")
    found: list[tuple[str, str, int]] = []
    skipped: list[Skipped] = []
    seen = {(st.st_dev, st.st_ino)}
    todo = [(top, "")]
    while todo:
        folder, rel = todo.pop()
        try:
            with os.scandir(folder) as it:
                names = [(e.name, e.path, e.is_symlink()) for e in it]
        except OSError as e:
            skipped.append(Skipped(-1, folder, f"folder cannot be listed: {why(e)}"))
            continue
        for name, path, link in names:
            r = f"{rel}/{name}" if rel else name
            try:
                s = os.stat(path)
            except OSError as e:
                reason = ("a broken symlink" if link and e.errno == errno.ENOENT else why(e))
                skipped.append(Skipped(-1, path, reason))
                continue
            if stat.S_ISDIR(s.st_mode):
                if (s.st_dev, s.st_ino) in seen:
                    skipped.append(Skipped(-1, path, "a symlink loop (a link to a folder already listed)"))
                else:
                    seen.add((s.st_dev, s.st_ino))
                    todo.append((path, r))
            elif not stat.S_ISREG(s.st_mode):
                skipped.append(Skipped(-1, path, f"{file_kind(s.st_mode)}, not an image file"))
            elif os.path.splitext(name)[1].lower() not in IMAGE_SUFFIXES:
                skipped.append(Skipped(-1, path, f"not an image file (suffix not one of {', '.join(IMAGE_SUFFIXES)})"))
            elif s.st_size == 0:
                skipped.append(Skipped(-1, path, "an empty file (0 bytes)"))
            else:
                found.append((r, path, s.st_size))
    found.sort(key=lambda f: f[0])
    skipped.sort(key=lambda s: s.source)
    return found, skipped


def class_of(rel: str) -> str | None:
    """The ImageFolder class of a relative path: its first folder (None for a file at the top)."""
    head, sep, _ = rel.partition("/")
    return head if sep else None


def read_list(path: str | os.PathLike) -> list[tuple[str, str | None]]:
    """A list file's (path, label or None) lines, paths relative to the list file's folder.

    Each line is ``path``, ``path<TAB>label`` or ``path label`` (the last word is a label unless the
    whole line names an existing file); blank lines and lines starting with ``#`` are ignored.
    """
    raw = read_regular_file(path, what="list file", error=DatasetError, max_bytes=MAX_LIST_BYTES)
    base = Path(path).parent
    out: list[tuple[str, str | None]] = []
    for line in raw.decode("utf-8", "surrogateescape").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "\t" in line:
            p, _, label = line.partition("\t")
            out.append((p.strip(), label.strip() or None))
            continue
        parts = line.rsplit(None, 1)
        if len(parts) == 2 and not (base / line).exists():
            out.append((parts[0], parts[1]))
        else:
            out.append((line, None))
    return [(os.fspath(base / p), label) for p, label in out]
