"""The gallery's data side as a figure: a unit page with its top-9 dataset patches over ≥ 500 photos.

  apt-get install tuxpaint-stamps-default chromium
  python scripts/data/collect_photos.py --out /tmp/tux500 --tuxpaint
  python scripts/figures/gallery_data.py --photos /tmp/tux500 [--out docs/images/gallery_data.png]

Renders a small SqueezeNet gallery (fire9-concat, a few units) with ``--images`` an ImageFolder tree
(the committed figure: the 502 tuxpaint-stamps-default photos, GPL-2, composited on scikit-image
textures; each patch shows its stamp category), opens one unit page in headless Chromium
(tests/browser.py) and writes the screenshot with a caption strip naming the photos' source and
licence. Needs chromium and websocket-client (the [test] extra).
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
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # run from a source checkout; the headless browser helper
from browser import Browser, chromium_path  # noqa: E402

import jaxvis  # noqa: E402
from jaxvis.imaging.display import save_png  # noqa: E402

CAPTION = ("Photos: Debian package tuxpaint-stamps-default (GPL-2), composited on scikit-image textures "
           "(scripts/data/collect_photos.py --tuxpaint); the category under each patch")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", required=True, help="photo folder or ImageFolder tree")
    p.add_argument("--out", default="docs/images/gallery_data.png")
    p.add_argument("--layer", default="fire9-concat")
    p.add_argument("--units", type=int, default=4, help="units rendered (default 4)")
    p.add_argument("--unit", type=int, default=None, help="unit page to show (default: the unit whose hits share "
                                                             "a category most)")
    p.add_argument("--steps", type=int, default=128)
    args = p.parse_args(argv)
    if chromium_path() is None:
        sys.exit("needs a chromium binary (Debian: apt-get install chromium)")
    net = jaxvis.load_model("squeezenet")
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        r = jaxvis.gallery(net, tmp, layers=[args.layer], units=args.units, block=args.units, steps=args.steps,
                           image_size=160, images=args.photos)
        print(f"gallery: {r.rendered} units in {r.seconds:.0f} s; {len(r.skipped_files)} files skipped")
        units = r.manifest["layers"][0]["units"]
        if args.unit is None:
            def purity(u):
                labels = [q.get("label") for q in u.get("patches", [])]
                return max(labels.count(x) for x in set(labels)) if labels else 0
            unit = max(units, key=purity)
        else:
            unit = next(u for u in units if u["unit"] == args.unit)
        print(f"unit {unit['unit']}: patches from {len({q['source'] for q in unit['patches']})} photos, categories "
              f"{[q.get('label') for q in unit['patches']]}; {time.perf_counter() - t:.0f} s")
        with Browser(width=1000, height=780) as b:
            b.open((Path(tmp) / unit["page"]).as_uri())
            b.images()
            shot = Path(tmp) / "shot.png"
            b.screenshot(shot)
        img = np.asarray(Image.open(shot).convert("RGB"))
    strip = Image.new("RGB", (img.shape[1], 16), (255, 255, 255))
    ImageDraw.Draw(strip).text((4, 2), CAPTION, fill=(60, 60, 60))
    save_png(Path(args.out), np.concatenate([img, np.asarray(strip)], axis=0))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
