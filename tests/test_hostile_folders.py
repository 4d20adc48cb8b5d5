"""Photo folders as users have them: every tool finishes with the good photos and lists each bad file with
its reason, never hangs, and stays within its memory bound.

The folder holds a real decompression bomb (a 7000×7000 PNG of 150 kB), a header-only one, 0-byte and
truncated files, a FIFO, a device (a symlink to /dev/zero), symlink loops (a folder link to its parent,
a file link to itself), a dangling link, an unreadable file, a file that vanishes and one that changes
between the listing and the read, a non-UTF-8 name (a good photo: used), and a text file.

Unreadable files: `chmod 000` makes a file unreadable for everyone but root; root (as in CI here) reads
it anyway, so where the tests run as root the same failure (EACCES from open) is injected with a shim
on `os.open` for that one path: the reader's handling of the error is what is tested.
"""

from __future__ import annotations

import io
import os
import signal
import struct
import subprocess
import sys
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import jaxvis
import jaxvis.datasets.read as reader
from jaxvis.datasets import open_dataset, shown
from jaxvis.datasets.listing import walk
from jaxvis.patches import top_patches

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import tiny_nets as T  # noqa: E402

GOOD = 6
NON_UTF8 = b"caf\xe9.png"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb(width: int, height: int, rows: int | None = None) -> bytes:
    """An RGB PNG of width×height zeros (`rows` of them only: a header-only bomb), compressed to almost nothing."""
    z = zlib.compressobj(9)
    row = b"\0" * (1 + 3 * width)
    body = b"".join(z.compress(row) for _ in range(height if rows is None else rows)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def _photo(rng, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (T.SIZE + 6, T.SIZE + 2, 3), dtype=np.uint8)).save(buf, fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """(folder, {name: expected reason fragment}); good photos are good_*.png and the non-UTF-8 name."""
    root = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(0)
    for i in range(GOOD):
        (root / f"good_{i}.png").write_bytes(_photo(rng))
    with open(os.path.join(os.fsencode(root), NON_UTF8), "wb") as fh:
        fh.write(_photo(rng))
    big = bomb(7000, 7000)
    assert len(big) < 300_000  # 147 MB of pixels in a small file
    (root / "bomb.png").write_bytes(big)
    (root / "header_bomb.png").write_bytes(bomb(100_000, 100_000, rows=2))
    (root / "empty.jpg").write_bytes(b"")
    jpeg = _photo(rng, "JPEG")
    (root / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    png = _photo(rng)
    (root / "truncated.png").write_bytes(png[: len(png) * 3 // 5])
    os.mkfifo(root / "fifo.png")
    (root / "device.png").symlink_to("/dev/zero")
    (root / "sub").mkdir()
    (root / "sub" / "good_sub.png").write_bytes(_photo(rng))
    (root / "sub" / "up").symlink_to("..")  # a folder loop
    (root / "self.png").symlink_to("self.png")  # a file loop
    (root / "dangling.png").symlink_to("nowhere.png")
    (root / "unreadable.png").write_bytes(_photo(rng))
    os.chmod(root / "unreadable.png", 0)
    (root / "vanishes.png").write_bytes(_photo(rng))
    (root / "changes.png").write_bytes(_photo(rng))
    (root / "notes.txt").write_text("not a photo")
    reasons = {"bomb.png": "megapixels, over the limit", "header_bomb.png": "over the pixel limit, a possible decompression bomb",
               "empty.jpg": "empty file (0 bytes)", "truncated.jpg": "not a readable image",
               "truncated.png": "not a readable image", "fifo.png": "a FIFO (named pipe), not an image file",
               "device.png": "a character device, not an image file", "up": "a symlink loop",
               "self.png": "a symlink loop", "dangling.png": "a broken symlink",
               "unreadable.png": "permission denied", "vanishes.png": "vanished after the folder was listed",
               "changes.png": "changed during the scan", "notes.txt": "not an image file"}
    return root, reasons


@pytest.fixture
def deny_unreadable(hostile, monkeypatch):
    """EACCES on opening unreadable.png, also for root (see the module docstring)."""
    if os.geteuid() != 0:
        return
    real = os.open

    def shim(path, flags, *args, **kw):
        if os.fspath(path).endswith("unreadable.png"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path, flags, *args, **kw)

    monkeypatch.setattr(reader.os, "open", shim)


@pytest.fixture
def racing(hostile):
    """The folder listed, then one file removed and one rewritten with another size before any is read."""
    root, _ = hostile
    rng = np.random.default_rng(1)
    (root / "vanishes.png").write_bytes(_photo(rng))
    (root / "changes.png").write_bytes(_photo(rng))
    ds = open_dataset(root)
    (root / "vanishes.png").unlink()
    (root / "changes.png").write_bytes(_photo(rng) + b"\0" * 100)
    return ds


@pytest.fixture(autouse=True)
def no_hang():
    """A hang (a FIFO opened for a blocking read) fails the test instead of stalling the suite."""
    def boom(*_):
        raise TimeoutError("a hostile folder made a tool hang")
    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(300)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def _reasons(skipped) -> dict[str, str]:
    return {os.path.basename(s.source): s.reason for s in skipped}


def _check_skipped(skipped, reasons) -> None:
    got = _reasons(skipped)
    for name, why in reasons.items():
        assert name in got, f"{name} is not listed as skipped: {sorted(got)}"
        assert why in got[name], f"{name}: {got[name]!r} does not say {why!r}"
    assert not {n for n in got if n.startswith("good") or n == os.fsdecode(NON_UTF8)}  # good ones are used


def _good(root: Path) -> list[Path]:
    return sorted([*root.glob("good_*.png"), root / "sub" / "good_sub.png", Path(os.fsdecode(
        os.path.join(os.fsencode(root), NON_UTF8)))], key=lambda p: p.relative_to(root).as_posix())


def test_top_patches_uses_the_good_photos_and_lists_the_rest(hostile, racing, deny_unreadable):
    root, reasons = hostile
    net = T.pure_net()
    r = top_patches(net, racing, ["conv2", "logits"], k=3, batch_size=4, progress=False)
    _check_skipped(r.skipped, reasons)
    used = {shown(os.path.relpath(r.sources[i], root)) for l in r.layers for i in r.image[l].ravel() if i >= 0}
    good = {shown(os.path.relpath(p, root)) for p in _good(root)}
    assert used <= good and "caf\\xe9.png" in good
    # the means are those of the good photos alone (numpy over the images decoded by PIL)
    ims = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in _good(root)])
    from jaxvis.imaging.images import fit_to_size
    x = np.clip(fit_to_size(ims.astype(np.float32), net.input_size, "crop"), 0, 255).round()
    acts = net.jitted(["conv2"])(net.params, x)["conv2"]
    want = np.asarray(acts, np.float64).mean(axis=(0, 1, 2))
    np.testing.assert_allclose(r.means["conv2"], want, rtol=0, atol=1e-5 * np.abs(want).max())
    r.skipped_report().encode("utf-8")  # printable whatever the bytes of the names


def test_embedding_and_gallery_finish_and_list_the_skipped(hostile, racing, deny_unreadable, tmp_path):
    root, reasons = hostile
    net = T.pure_net()
    e = jaxvis.embedding(net, racing, "conv2", method="pca")
    assert len(e.coords) == len(_good(root))
    _check_skipped(e.skipped, reasons)
    atlas = jaxvis.atlas_image(e, grid=(3, 3), cell=16)
    assert atlas.shape == (48, 48, 3)
    g = jaxvis.gallery(net, tmp_path / "site", layers=["conv1"], units=2, steps=2, image_size=32, images=racing,
                       k=2, progress=False)
    assert g.complete
    _check_skipped(g.skipped_files, reasons)
    (tmp_path / "site" / "index.json").read_text(encoding="utf-8")


def test_a_fifo_that_replaces_a_listed_file_is_refused_without_blocking(tmp_path):
    (tmp_path / "a.png").write_bytes(_photo(np.random.default_rng(0)))
    ds = open_dataset(tmp_path)
    (tmp_path / "a.png").unlink()
    os.mkfifo(tmp_path / "a.png")  # no writer: a blocking open would wait forever
    t = time.perf_counter()
    with pytest.raises(jaxvis.ImageError, match="a FIFO"):
        ds.read(0)
    assert time.perf_counter() - t < 5


def test_a_decompression_bomb_is_refused_before_decoding(hostile):
    root, _ = hostile
    ds = jaxvis.datasets.paths([root / "bomb.png"])
    tracemalloc.start()
    with pytest.raises(jaxvis.ImageError, match="49.0 megapixels, over the limit"):
        ds.read(0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 * (root / "bomb.png").stat().st_size + (2 << 20)  # the file, never its 147 MB of pixels


def test_the_command_line_lists_each_skipped_file(hostile, tmp_path, capsys, monkeypatch):
    root, reasons = hostile
    import jaxvis.cli.patches as cli_patches
    from jaxvis.cli import main
    monkeypatch.setattr(cli_patches, "load", lambda args: T.pure_net())
    assert main(["patches", "--model", "squeezenet", "--layers", "conv2", "--images", str(root), "--k", "2",
                 "--units", "0:2", "--no-reconstruction", "--out", str(tmp_path / "html"), "--quiet"]) == 0
    out = capsys.readouterr().out
    for name, why in reasons.items():
        if name in ("vanishes.png", "changes.png", "unreadable.png"):
            continue  # no race and no shim here: those are read fine
        line = next((ln for ln in out.splitlines() if ln.startswith("  skipped") and name in ln), None)
        assert line is not None and why in line, (name, out)
    listing = (tmp_path / "html" / "skipped.txt").read_text(encoding="utf-8")
    assert "bomb.png: " in listing and "fifo.png: a FIFO" in listing


def test_collect_photos_takes_the_good_ones(hostile, tmp_path):
    root, reasons = hostile
    p = subprocess.run([sys.executable, str(HERE.parent / "scripts" / "data" / "collect_photos.py"), "--out",
                        str(tmp_path / "out"), "--shared", "--photos", str(root)], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    copied = {os.fsencode(n) for n in os.listdir(os.fsencode(tmp_path / "out"))}
    for g in _good(root):
        assert os.fsencode(g.name) in copied
    for name, why in reasons.items():
        if name in ("vanishes.png", "changes.png", "unreadable.png"):
            continue
        assert os.fsencode(name) not in copied
        assert any(name in ln and why in ln for ln in p.stderr.splitlines()), (name, p.stderr)


def _junk(folder: Path, n: int) -> None:
    folder.mkdir()
    base = os.fsencode(folder)
    for i in range(n):
        os.close(os.open(os.path.join(base, b"%06d.%s" % (i, b"jpg" if i % 2 else b"txt")), os.O_CREAT | os.O_WRONLY))


def test_a_folder_of_100k_files(tmp_path):
    """100,000 junk files (empty .jpg and .txt) around 3 photos: listed in seconds, each skipped with its
    reason; the listing's memory (measured on 10,000 files: tracemalloc slows a walk tenfold) < 0.6 kB a file."""
    _junk(tmp_path / "small", 10_000)
    tracemalloc.start()
    walk(tmp_path / "small")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 10_000 * 600, peak
    root = tmp_path / "many"
    _junk(root, 100_000)
    rng = np.random.default_rng(0)
    for i in range(3):
        (root / f"zz_photo{i}.png").write_bytes(_photo(rng))
    t = time.perf_counter()
    ds = open_dataset(root)
    assert time.perf_counter() - t < 30
    assert len(ds) == 3 and len(ds.skipped) == 100_000
    r = top_patches(T.pure_net(), ds, "conv2", k=2, progress=False)
    assert r.n_images == 3 and len(r.skipped) == 100_000
    assert {s.reason for s in r.skipped} == {"an empty file (0 bytes)",
                                             "not an image file (suffix not one of .jpg, .jpeg, .png, .webp)"}
    assert r.skipped_report(limit=5).endswith("… and 99995 more")
