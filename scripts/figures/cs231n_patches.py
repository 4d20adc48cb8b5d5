"""Walkthrough: what excites SqueezeNet units in real photos (Zeiler & Fergus 2014 / CS231n "visualizing" figure).

  python scripts/data/collect_photos.py --out /tmp/tux500 --tuxpaint     # 502 photos (Debian package, GPL-2)
  python scripts/figures/cs231n_patches.py --photos /tmp/tux500 [--out docs/cs231n] [--units 16]

Top-9 patches of 16 units of fire4-concat, fire7-concat and fire9-concat over a photo set: with
``--photos`` any folder / ImageFolder tree (the committed figures: the 502 tuxpaint-stamps-default
photos, each a different photograph, so a unit's nine hits come from nine photos; a caption strip
under the figure names the source and licence); without it the shared photos plus scikit-image's,
augmented with random crops and flips into a temporary folder (scripts/data/photo_crops.py). One
PNG per layer, each crop beside its guided-backprop reconstruction (normalised per crop, zero = grey),
the activation under each pair. The 16 units are the first 16 whose strongest hit is positive (dead
units would show 9 blank reconstructions).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts" / "data")]  # run from a source checkout; the photo folder
from photo_crops import augmented_folder  # noqa: E402

import jaxvis  # noqa: E402
from jaxvis.imaging.fileio import atomic_path  # noqa: E402

LAYERS = ("fire4-concat", "fire7-concat", "fire9-concat")


def save_small_png(path: Path, image: np.ndarray) -> int:
    """PNG quantised to 256 colours (crops and grey reconstructions survive it; keeps files < 400 KB)."""
    im = Image.fromarray(image).quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    with atomic_path(path) as tmp:
        im.save(tmp, format="PNG", optimize=True)
    return path.stat().st_size


def caption(image: np.ndarray, text: str) -> np.ndarray:
    """`image` over a white strip with `text` (the photos' source and licence, part of the figure)."""
    strip = Image.new("RGB", (image.shape[1], 14), (255, 255, 255))
    ImageDraw.Draw(strip).text((3, 1), text, fill=(60, 60, 60))
    return np.concatenate([image, np.asarray(strip)], axis=0)


TUXPAINT_CAPTION = ("Photos: Debian package tuxpaint-stamps-default (GPL-2), composited on scikit-image textures "
                    "(scripts/data/collect_photos.py --tuxpaint)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="docs/cs231n")
    ap.add_argument("--photos", default=None, help="a photo folder or ImageFolder tree (default: augmented shared photos)")
    ap.add_argument("--n", type=int, default=240, help="photos after augmentation (default 240)")
    ap.add_argument("--units", type=int, default=16)
    ap.add_argument("--thumbnail", type=int, default=44)
    a = ap.parse_args(argv)
    out = Path(a.out)
    net = jaxvis.load_model("squeezenet")
    with tempfile.TemporaryDirectory() as tmp:
        if a.photos is None:
            augmented_folder(tmp, a.n, skimage=True)
        t = time.perf_counter()
        r = jaxvis.top_patches(net, a.photos or tmp, list(LAYERS), k=9)
        tuxpaint = a.photos is not None and "tuxpaint" in (Path(a.photos) / "SOURCES.md").read_text(encoding="utf-8")
        print(f"top_patches: {r.n_images} photos, {len(r.skipped)} skipped, {len(LAYERS)} layers in "
              f"{time.perf_counter() - t:.1f} s (decoding {r.timing['decode_seconds']:.1f} s over the threads, "
              f"network waiting for images {r.timing['wait_seconds']:.1f} s)")
        for layer in LAYERS:
            live = [u for u in range(r.value[layer].shape[0]) if r.value[layer][u, 0] > 0][: a.units]
            t = time.perf_counter()
            tile = r.tile(layer, live, thumbnail=a.thumbnail)
            if tuxpaint:
                tile = caption(tile, TUXPAINT_CAPTION)
            distinct = [len({h.image for h in r.hits(layer, u)}) for u in live]
            print(f"  {layer}: distinct photos among each unit's 9 hits: min {min(distinct)}; hit classes of the "
                  f"first units: {[r.hit_classes(layer, u) for u in live[:3]]}")
            path = out / f"{layer}.png"
            size = save_small_png(path, tile)
            rf = r.receptive_field(layer)
            print(f"wrote {path} ({size // 1024} KB, {tile.shape[1]}×{tile.shape[0]}): units {live}, "
                  f"receptive field {rf.size}, stride {rf.stride}; tile in {time.perf_counter() - t:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
