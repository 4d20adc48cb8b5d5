"""File access shared by every reader and writer.

Outputs: :func:`check_writable` (files) and :func:`check_folder` (folders) validate
every output path before anything is computed or written, by creating and removing a
probe file where the output will go (the one check that holds for root, read-only
mounts and ``/proc``); :func:`make_folder` creates only the folder a user named, never
the folders above it; :func:`atomic_path` makes each file appear whole or not at all.
All raise :class:`~jaxvis.errors.OutputError` naming the path.

Concurrency: :func:`exclusive` holds a lock file (with the holder's pid) for a long job's output, so
a second process pointed at the same site or cache is refused by name instead of interleaving writes.

Inputs: :func:`regular_file_size` and :func:`read_regular_file` refuse what is
not a regular file (``/dev/zero``, FIFOs, folders) and files over a size limit,
so no reader can be made to read forever or allocate without bound.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import json
import os
import re
import socket
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import JaxvisError, LockedError, OutputError, WeightFileError

__all__ = ["MAX_INPUT_BYTES", "atomic_path", "check_folder", "check_writable", "exclusive", "make_folder",
           "read_regular_file", "regular_file_size", "remove_stale_temps", "remove_stale_temps_under"]

# atomic_path's temporary files: ".<target>." + mkstemp's 8 random characters + this suffix.
_TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}" + re.escape(_TEMP_SUFFIX))

# Largest input file any reader loads into memory (weight files, pickles, caffemodels):
# VGG-16's caffemodel, the largest classic CNN, is 0.55 GB.
MAX_INPUT_BYTES = 8 << 30


def _why(exc: OSError) -> str:
    """A short reason for an OSError ('disk full', 'permission denied', …)."""
    reasons = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
               errno.EACCES: "permission denied", errno.EPERM: "permission denied",
               errno.EROFS: "the file system is read-only", errno.EISDIR: "it is a folder",
               errno.ENOTDIR: "a parent in the path is a file, not a folder",
               errno.ENAMETOOLONG: "the name is too long"}
    return reasons.get(exc.errno or 0, exc.strerror or str(exc))


def _probe(folder: Path, target: Path) -> None:
    """Create and remove a file in `folder`: the only check that holds for every writer.

    Why not ``os.access``: for root it says yes to folders no file can be made in (``/proc``, ``/sys``),
    and it cannot see read-only mounts mounted after a check either; trying is what writing will do.
    """
    try:
        fd, tmp = tempfile.mkstemp(prefix=".jaxvis-probe-", dir=folder)
    except OSError as e:
        raise OutputError(f"cannot write {str(target)!r}: no file can be created in folder {str(folder)!r} "
                          f"({_why(e)})") from e
    os.close(fd)
    os.unlink(tmp)


def _existing_folder(folder: Path, target: Path) -> None:
    """`folder` must already exist and be a folder (jaxvis creates no folder above the one a user named)."""
    if folder.is_dir():
        return
    if folder.exists() or folder.is_symlink():
        what = "a broken link" if not folder.exists() else "a file, not a folder"
        raise OutputError(f"cannot write {str(target)!r}: {str(folder)!r} is {what}")
    above = folder.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if above.exists() and not above.is_dir():
        raise OutputError(f"cannot write {str(target)!r}: {str(above)!r} is a file, not a folder")
    raise OutputError(f"cannot write {str(target)!r}: folder {str(folder)!r} does not exist; create it first "
                      f"(jaxvis creates no folders above the output you name)")


def _file_target(raw, seen: list[Path]) -> Path:
    if os.fspath(raw) == "":
        raise OutputError("output path is empty ('') ; give a file name such as out.png")
    p = Path(raw)
    if p in seen:
        raise OutputError(f"output path {str(p)!r} is given twice; each output needs its own file")
    if p.is_dir():
        raise OutputError(f"output path {str(p)!r} is a folder; give a file name inside it, "
                          f"e.g. {str(p / 'out.png')!r}")
    if p.exists() and not p.is_file():
        raise OutputError(f"output path {str(p)!r} exists and is not a regular file")
    return p


def check_folder(folder: str | os.PathLike) -> Path:
    """Check that `folder` can be an output folder, before any work; nothing is created.

    It may exist (then it must be a folder files can be created in) or not (then its parent must be an
    existing folder files can be created in: :func:`make_folder` creates `folder` itself, never the
    folders above it).

    Args:
      folder: the output folder a user named (a site, an HTML page's folder, ``--save-each``).

    Returns:
      `folder` as a :class:`~pathlib.Path`.

    Raises:
      OutputError: naming the folder and why (a file, a missing parent, nothing can be created there).
    """
    if os.fspath(folder) == "":
        raise OutputError("output folder is empty ('') ; give a folder name such as site/")
    f = Path(folder)
    if f.exists() and not f.is_dir():
        raise OutputError(f"output folder {str(f)!r} is a file; give a folder")
    if f.is_dir():
        _probe(f, f)
    else:
        _existing_folder(f.parent, f)
        _probe(f.parent, f)
    return f


def make_folder(folder: str | os.PathLike) -> Path:
    """:func:`check_folder`, then create `folder` (only it: its parent must exist); returns it."""
    f = check_folder(folder)
    try:
        f.mkdir(exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create output folder {str(f)!r}: {_why(e)}") from e
    return f


def check_writable(paths: Iterable[str | os.PathLike | None], *,
                   folders: Iterable[str | os.PathLike | None] = ()) -> list[Path]:
    """Check that every output could be written, before anything is written; nothing is created.

    Call it first in a command that writes several files, so that one bad path (``--out`` a folder, a
    parent that is a file or does not exist, a folder no file can be created in, ``''``, the same path
    twice) fails the command before any work and before any output appears.

    Args:
      paths: output file paths; ``None`` entries (unused optional outputs) are skipped. Each one's folder
        must exist, or be one of `folders`.
      folders: output folders the caller will create with :func:`make_folder` (each checked with
        :func:`check_folder`); files inside them are checked against them.

    Returns:
      The file paths as :class:`~pathlib.Path` objects (``None`` entries dropped).

    Raises:
      OutputError: naming the first unwritable path and why.
    """
    planned = {check_folder(f) for f in folders if f is not None}
    out: list[Path] = []
    probed: set[Path] = set()
    for raw in paths:
        if raw is None:
            continue
        p = _file_target(raw, out)
        parent = p.parent
        if parent not in planned:
            _existing_folder(parent, p)
            if parent not in probed:
                _probe(parent, p)
                probed.add(parent)
        out.append(p)
    return out


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, parents: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only on success.

    Why: a crash, Ctrl-C or full disk mid-write must never leave a half-written
    weight file or PNG where a later run would read it.

    Args:
      path: the destination file. Its folder must exist, unless `parents`.
      parents: create missing folders above `path` first: only for files inside an output folder the
        caller made itself (a site's ``units/<layer>/``), never for a path a user named.

    Raises:
      OutputError: `path` cannot be written (a folder, a missing or non-folder parent), or writing
        failed with an OSError (e.g. the disk is full); the temporary file is removed and `path` is
        left as it was.
    """
    path = _file_target(path, [])
    tmp = None
    try:
        try:
            if parents:
                path.parent.mkdir(parents=True, exist_ok=True)
            else:
                _existing_folder(path.parent, path)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TEMP_SUFFIX, dir=path.parent)
            os.close(fd)
        except OSError as e:
            if isinstance(e, OutputError):
                raise
            raise OutputError(f"cannot write {str(path)!r}: {_why(e)}") from e
        try:
            yield Path(tmp)
        except JaxvisError:
            raise
        except OSError as e:  # the writer failed: disk full, quota, I/O error
            raise OutputError(f"cannot write {str(path)!r}: {_why(e)}; nothing was written") from e
        try:
            # mkstemp makes 0600 files; give the result the permissions a plain open() would.
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, path)
        except OSError as e:
            raise OutputError(f"cannot write {str(path)!r}: {_why(e)}") from e
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def remove_stale_temps(path: str | os.PathLike) -> int:
    """Remove the temporary files :func:`atomic_path` left beside `path` when a process writing it was killed
    (SIGKILL, power loss: no ``finally`` runs). Call it only while holding the lock that makes the caller the
    one writer of `path` (:func:`exclusive`), so no live writer's file is taken. Returns how many were removed.
    """
    path = Path(path)
    return _unlink_all(p for p in path.parent.glob(f".{glob.escape(path.name)}.*{_TEMP_SUFFIX}") if _is_temp(p))


def remove_stale_temps_under(folder: str | os.PathLike) -> int:
    """:func:`remove_stale_temps` for every file under `folder` (an output tree jaxvis made, whose one writer
    the caller is). Returns how many were removed."""
    return _unlink_all(p for p in Path(folder).rglob(f".*{_TEMP_SUFFIX}") if _is_temp(p) and p.is_file())


def _is_temp(p: Path) -> bool:
    """`p` is named as :func:`atomic_path` names its temporary files: ``.<target>.<8 mkstemp chars>.tmp``
    (a user's own ``.notes.tmp`` is not)."""
    return _TEMP_NAME.fullmatch(p.name) is not None


def _unlink_all(paths: Iterable[Path]) -> int:
    n = 0
    for p in list(paths):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            n += 1
    return n


def regular_file_size(path: str | os.PathLike, *, what: str = "weight file",
                      error: type[JaxvisError] = WeightFileError,
                      max_bytes: int | None = MAX_INPUT_BYTES) -> int:
    """Size in bytes of `path`, which must be an existing regular file of at most `max_bytes`.

    Raises:
      `error`: the file is missing, a folder, a device or FIFO (``/dev/zero``
        would be read forever), unreadable, or larger than `max_bytes`.
    """
    name = os.fspath(path)
    try:
        st = os.stat(path)
    except OSError as e:
        raise error(f"{name}: cannot read {what} ({_why(e) if e.errno != errno.ENOENT else 'no such file'})") from e
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{name}: is a folder, not a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{name}: is not a regular file (a device, pipe or socket); a {what} must be a file")
    if max_bytes is not None and st.st_size > max_bytes:
        raise error(f"{name}: {st.st_size} bytes is over the {max_bytes}-byte limit for a {what} "
                    f"(jaxvis.imaging.fileio.MAX_INPUT_BYTES)")
    return st.st_size


def read_regular_file(path: str | os.PathLike, *, what: str = "weight file",
                      error: type[JaxvisError] = WeightFileError,
                      max_bytes: int | None = MAX_INPUT_BYTES) -> bytes:
    """The bytes of a regular file, read with a bound (see :func:`regular_file_size`)."""
    size = regular_file_size(path, what=what, error=error, max_bytes=max_bytes)
    try:
        with open(path, "rb") as fh:
            return fh.read(size)  # bounded: a file growing under us is not read without end
    except OSError as e:
        raise error(f"{os.fspath(path)}: cannot read {what} ({_why(e)})") from e


def _holder(path: Path) -> str:
    """Who holds a lock file, in words (from the JSON the holder wrote into it)."""
    try:
        doc = json.loads(path.read_bytes()[:4096].decode("utf-8"))
        return (f"process {int(doc['pid'])} on {doc.get('host', '?')}, started "
                f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(float(doc.get('started', 0))))}")
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (its pid is not written yet)"


@contextlib.contextmanager
def exclusive(path: str | os.PathLike, what: str) -> Iterator[Path]:
    """Hold the lock file `path` for the duration of a job that writes `what`.

    The lock is an ``flock`` on the file, which records the holder's pid, host and start time: a second
    process is refused at once with those in the message, while the lock of a process that died (even
    by SIGKILL) is released by the kernel, so a stale lock file is simply taken over. The file is
    removed on release.

    Raises:
      LockedError: another live process holds the lock (message: its pid and what to do).
      OutputError: the lock file cannot be created.
    """
    path = Path(path)
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        except OSError as e:
            raise OutputError(f"cannot create the lock file {str(path)!r}: {_why(e)}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise OutputError(f"cannot lock {str(path)!r}: {_why(e)}") from e
            raise LockedError(f"{what} is in use by {_holder(path)} (lock file {str(path)!r}); wait for it to "
                              "finish, or stop it: one process at a time may write there") from None
        try:  # the holder before us may have removed the file between our open and our lock: lock the new one
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        doc = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, doc, 0)
    except OSError:
        pass  # a full disk: the lock holds without the note; a refused process then says "pid not written yet"
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)
