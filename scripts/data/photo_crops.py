"""A folder of photos for the top-patches benchmark and walkthrough: the shared photos plus random crops/flips.

  python scripts/data/photo_crops.py OUT_DIR [--n 240] [--skimage]

The four photos of ../shared/images (or examples/images) are few; random crops (40–100 % of the short
side, anywhere in the photo) and horizontal flips of them make a folder of `n` distinct JPEGs at their
own sizes, so decoding and resizing cost what real photos cost. `--skimage` adds scikit-image's
sample photographs (rocket, motorcycles, coins, …) as sources when scikit-image is installed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SKIMAGE_PHOTOS = ("rocket.jpg", "motorcycle_left.png", "motorcycle_right.png", "coins.png", "camera.png",
                  "hubble_deep_field.jpg", "retina.jpg", "brick.png", "grass.png", "gravel.png", "ihc.png", "moon.png")


def sources(skimage: bool = False) -> list[Path]:
    """The source photos: ../shared/images (else examples/images), plus scikit-image's with `skimage`."""
    shared = REPO.parent / "shared" / "images"
    folder = shared if shared.is_dir() else REPO / "examples" / "images"
    out = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    if skimage:
        try:
            import skimage
        except ImportError:
            print("scikit-image is not installed: using the shared photos only", file=sys.stderr)
        else:
            data = Path(skimage.__file__).parent / "data"
            out += [data / n for n in SKIMAGE_PHOTOS if (data / n).exists()]
    return out


def augmented_folder(dst: str | Path, n: int = 240, seed: int = 0, skimage: bool = False) -> list[Path]:
    """Write `n` JPEGs (the sources, then random crops/flips of them) into `dst`; return their paths."""
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    photos = [Image.open(p).convert("RGB") for p in sources(skimage)]
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        im = photos[i % len(photos)]
        if i >= len(photos):
            s = int(min(im.size) * rng.uniform(0.4, 1.0))
            x0, y0 = rng.integers(0, im.width - s + 1), rng.integers(0, im.height - s + 1)
            im = im.crop((int(x0), int(y0), int(x0) + s, int(y0) + s))
            if rng.random() < 0.5:
                im = im.transpose(Image.FLIP_LEFT_RIGHT)
        p = dst / f"photo_{i:04d}.jpg"
        im.save(p, quality=90)
        paths.append(p)
    return paths


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=240)
    ap.add_argument("--skimage", action="store_true")
    a = ap.parse_args()
    print(len(augmented_folder(a.out, a.n, skimage=a.skimage)), "photos in", a.out)
