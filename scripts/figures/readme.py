"""The README's pictures that no other script makes: the dream of command 1 and the gallery screenshot.

* `dream`: docs/images/dream_fire6.png — README command 1's deepDreamImage (SqueezeNet fire6-expand3x3,
  2 pyramid levels, 10 iterations, percentile display), channels 0–7 in a 2×4 grid of 192-px cells.
* `gallery`: docs/images/gallery.png — a gallery of the shipped SqueezeNet (conv1, fire5-concat,
  fire9-concat, conv10; 8 units each, 128 steps) over the photos in --photos, screenshotted by headless
  Chromium (tests/browser.py; needs the `chromium` binary and websocket-client): the conv1 layer page
  (centre neurons), a conv1 unit page (the neuron beside its filter) and a fire9-concat unit page (top
  patches), stacked. The site is written to --site.
  (The README's presets.png comes from scripts/quality/transfer.py --readme.)

    python scripts/figures/readme.py dream [--out docs/images/dream_fire6.png]
    python scripts/figures/readme.py gallery --photos PHOTOS [--site out/readme_site] [--out docs/images/gallery.png]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # run from a source checkout; the browser driver


def dream(out: Path) -> None:
    import jaxvis
    from jaxvis.imaging.display import imtile, save_png
    net = jaxvis.load_model("squeezenet")
    ims = jaxvis.deep_dream_image(net, "fire6-expand3x3", range(8), pyramid_levels=2, num_iterations=10,
                                  output_scaling="percentile", verbose=False)
    save_png(out, imtile((ims * 255).round().astype(np.uint8), grid_size=(2, 4), thumbnail_size=(192, 192)))


def shot(browser, url: str, height: int) -> np.ndarray:
    from PIL import Image
    browser.open(url)
    with tempfile.TemporaryDirectory() as d:
        browser.screenshot(Path(d) / "s.png")
        return np.asarray(Image.open(Path(d) / "s.png").convert("RGB"))[:height]


def gallery(photos: Path, site: Path, out: Path) -> None:
    import jaxvis
    from browser import Browser, chromium_path
    from jaxvis.imaging.display import save_png
    if chromium_path() is None:
        sys.exit("needs the chromium binary (Debian: apt-get install chromium)")
    net = jaxvis.load_model("squeezenet")
    r = jaxvis.gallery(net, site, layers=["conv1", "fire5-concat", "fire9-concat", "conv10"], images=photos, units=8,
                       block=8, steps=128, progress=True)
    print(f"gallery: {r.rendered} units rendered in {r.seconds:.0f} s")
    with Browser(width=800, height=900) as b:
        parts = [shot(b, (site / "layers" / "conv1.html").resolve().as_uri(), 250),
                 shot(b, (site / "units" / "conv1" / "3.html").resolve().as_uri(), 420),
                 shot(b, (site / "units" / "fire9-concat" / "3.html").resolve().as_uri(), 790)]
        if b.errors:
            sys.exit(f"browser errors: {b.errors}")
    rule = np.full((2, 800, 3), 200, np.uint8)
    save_png(out, np.concatenate([parts[0], rule, parts[1], rule, parts[2]]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("dream", "gallery"))
    ap.add_argument("--out", default=None)
    ap.add_argument("--photos", default=None, help="gallery: photo folder (scripts/data/collect_photos.py makes one)")
    ap.add_argument("--site", default="out/readme_site")
    args = ap.parse_args(argv)
    if args.what == "dream":
        dream(Path(args.out or ROOT / "docs" / "images" / "dream_fire6.png"))
    else:
        if not args.photos:
            sys.exit("gallery needs --photos FOLDER")
        gallery(Path(args.photos), Path(args.site), Path(args.out or ROOT / "docs" / "images" / "gallery.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
