"""Colour statistics of class models against photos (docs/quality.md, "Colour of the cs231n class models").

Per image set: the mean colour (a cast moves it off grey), and the opponent-colour contrast of each
image — std of green–magenta (2G − R − B)/√6 and of red–blue (R − B)/√2 over the std of luminance
(R + G + B)/√3 — averaged over the images. Sets: the four preset tiles of docs/quality (30 classes,
112-px cells), the photos of ../shared/images (112-px centre crops), and fresh `cs231n` class models
of 8 classes on the shipped SqueezeNet (Caffe weights, BGR-trained, mean-only input) and on the
independent torchvision SqueezeNet 1.1 (RGB, mean/std input), shrunk to 112 px the same way.

    python scripts/quality/colour_stats.py [--steps 100] [--out docs/quality/colour.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts" / "data")]  # run from a source checkout; the judge network
SHARED = ROOT.parent / "shared"
if not SHARED.is_dir():
    SHARED = ROOT.parents[1] / "shared"
CLASSES = ["goldfish", "flamingo", "tarantula", "king penguin", "monarch", "school bus", "strawberry", "volcano"]
CELL = 112


def stats(images: np.ndarray) -> dict:
    """images N×H×W×3 uint8 → mean RGB (0..1) and opponent/luminance contrast ratios (mean over images)."""
    x = images.astype(np.float64) / 255.0
    lum = x.sum(-1) / np.sqrt(3)
    gm = (2 * x[..., 1] - x[..., 0] - x[..., 2]) / np.sqrt(6)
    rb = (x[..., 0] - x[..., 2]) / np.sqrt(2)
    s = lambda a: a.reshape(len(a), -1).std(1)  # noqa: E731
    return {"n": int(len(x)), "mean_rgb": [round(float(v), 3) for v in x.mean((0, 1, 2))],
            "green_magenta_over_luminance": round(float(np.mean(s(gm) / s(lum))), 3),
            "red_blue_over_luminance": round(float(np.mean(s(rb) / s(lum))), 3)}


def cells(path: Path, n: int) -> np.ndarray:
    from PIL import Image
    t = np.asarray(Image.open(path).convert("RGB"))
    per_row = t.shape[1] // CELL
    return np.stack([t[(i // per_row) * CELL:(i // per_row + 1) * CELL, (i % per_row) * CELL:(i % per_row + 1) * CELL]
                     for i in range(n)])


def shrink(images) -> np.ndarray:
    from jaxvis.imaging.display import imtile
    t = imtile(np.asarray(images), grid_size=(1, len(images)), thumbnail_size=(CELL, CELL))
    return np.stack([t[:, i * CELL:(i + 1) * CELL] for i in range(len(images))])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=100, help="class-model steps (default 100, the preset's)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "quality" / "colour.json"))
    args = ap.parse_args(argv)
    import jaxvis
    from onnx_zoo import judge_network
    out: dict = {}
    for preset in ("lucid", "cs231n", "keras_vis", "matlab"):
        out[f"tile {preset} (30 classes, SqueezeNet)"] = stats(cells(ROOT / "docs" / "quality" / f"{preset}.png", 30))
    photos = [p for p in sorted((SHARED / "images").iterdir()) if p.suffix.lower() in (".png", ".jpg", ".jpeg")]
    from jaxvis.imaging.images import fit_to_size, read_image
    out["photos (../shared/images)"] = stats(shrink([fit_to_size(read_image(p)[None].astype(np.float32), (227, 227))[0]
                                                     .round().astype(np.uint8) for p in photos]))
    judge = judge_network(SHARED / "testdata" / "squeezenet1_1_onnxzoo")
    for name, net in (("SqueezeNet (Caffe, BGR-trained)", jaxvis.load_model("squeezenet")),
                      ("torchvision SqueezeNet 1.1 (RGB, mean/std)", judge)):
        v = jaxvis.class_model(net, CLASSES, steps=args.steps, progress=False)
        out[f"cs231n class models, 8 classes, {name}"] = stats(shrink(v.images))
        from jaxvis.imaging.display import imtile, save_png
        slug = "caffe" if "Caffe" in name else "torchvision"
        save_png(Path(args.out).with_name(f"cs231n_{slug}.png"), imtile(v.images, grid_size=(2, 4),
                                                                         thumbnail_size=(CELL, CELL)))
    for k, v in out.items():
        print(f"{k}: {v}")
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
