"""CS231n's "what excites a unit in real data", part 1: first-layer filters and the embedding atlas.

Writes into --out (default docs/cs231n/):
  alexnet_conv1.png        AlexNet (torchvision) conv1: 64 RGB 11×11 filters, 0.5 + w/(2·max|w|)
  squeezenet_conv1.png     SqueezeNet 1.1 conv1: 64 RGB 3×3 filters, same scaling
  squeezenet_fire2_norms.png  SqueezeNet fire2-expand3x3: per-filter L2 norm over its 16 input channels
  atlas_pca.png            photos laid out by PCA of their SqueezeNet fire9-concat codes, snapped to a grid
  atlas_tsne.png           the same by t-SNE (only with openTSNE installed: pip install 'jaxvis[atlas]')

and prints, for each layout, how often an image's nearest neighbour in 2-D shares its label: its class
for an ImageFolder tree (each cell then framed in its class's colour, with a legend), else the photo
it was cropped from.

    python scripts/data/collect_photos.py --out /tmp/tux500 --tuxpaint     # the committed atlases: 502 photos
    python scripts/figures/cs231n_data.py --photos /tmp/tux500 --grid 20
    python scripts/data/collect_photos.py --out photos --augment 200       # without the Debian package
    python scripts/figures/cs231n_data.py --photos photos
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a source checkout

import jaxvis  # noqa: E402
from jaxvis.imaging.display import save_png  # noqa: E402
from jaxvis.maps.embedding import embedding, layout  # noqa: E402

MAX_BYTES = 300_000


def save_small(path: Path, img: np.ndarray) -> None:
    """PNG under MAX_BYTES: as is, else with an adaptive 256-colour palette (photo mosaics)."""
    save_png(path, img)
    if path.stat().st_size > MAX_BYTES:
        Image.fromarray(img).quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"wrote {path} ({img.shape[1]}×{img.shape[0]}, {path.stat().st_size / 1000:.0f} kB)")


def source_of(name: str) -> str:
    """'aug_0012_chelsea.jpg' → 'chelsea'; 'chelsea.png' → 'chelsea'."""
    return re.sub(r"^aug_\d+_", "", Path(name).stem)


def same_source_nn(coords: np.ndarray, labels: list[str]) -> float:
    d = ((coords[:, None] - coords[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nn = d.argmin(1)
    return float(np.mean([labels[i] == labels[j] for i, j in enumerate(nn)]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", required=True, help="folder of photos (scripts/data/collect_photos.py)")
    p.add_argument("--out", default="docs/cs231n")
    p.add_argument("--grid", type=int, default=14, help="atlas rows = columns (default 14)")
    p.add_argument("--cell", type=int, default=28, help="atlas thumbnail size (default 28)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    alex, sq = jaxvis.load_model("alexnet"), jaxvis.load_model("squeezenet")
    save_small(out / "alexnet_conv1.png", jaxvis.filter_image(alex, "conv1", upsample=3, gap=1).image)
    save_small(out / "squeezenet_conv1.png", jaxvis.filter_image(sq, "conv1", upsample=10, gap=2).image)
    save_small(out / "squeezenet_fire2_norms.png",
               jaxvis.filter_image(sq, "fire2-expand3x3", upsample=10, gap=2, cmap="gray").image)

    ds = jaxvis.open_dataset(args.photos)
    if len(ds) < 3:
        sys.exit(f"{args.photos} holds {len(ds)} photos; run scripts/data/collect_photos.py first")
    tuxpaint = "tuxpaint" in ((Path(args.photos) / "SOURCES.md").read_text(encoding="utf-8")
                              if (Path(args.photos) / "SOURCES.md").is_file() else "")
    methods = ["pca"]
    try:
        import openTSNE  # noqa: F401
        methods.append("tsne")
    except ImportError:
        print("openTSNE not installed: no t-SNE atlas (pip install 'jaxvis[atlas]')")
    base = embedding(sq, ds, method="pca", batch_size=16)  # codes once (decoded in a thread pool); layouts reuse them
    if base.labels is not None and base.classes is not None:
        labels = [base.classes[i] for i in base.labels]
    else:
        labels = [source_of(Path(ds.sources[i]).name) for i in base.ids]
    print(f"{len(base.coords)} photos ({len(base.skipped)} skipped), {len(set(labels))} "
          f"{'classes' if base.classes else 'originals'}")
    for m in methods:
        xy, explained = layout(base.codes, m)
        e = dataclasses.replace(base, coords=xy, method=m, explained=explained)
        img = jaxvis.atlas_image(e, grid=(args.grid, args.grid), cell=args.cell)
        if tuxpaint:
            img = _caption(img, "Photos: Debian tuxpaint-stamps-default (GPL-2) on scikit-image textures; "
                                "frame colour = stamp category")
        save_small(out / f"atlas_{m}.png", img)
        extra = f", explained variance {e.explained[0]:.2f} + {e.explained[1]:.2f}" if e.explained else ""
        print(f"  {m}: layer {e.layer} ({e.codes.shape[1]}-d codes), nearest 2-D neighbour with the same label "
              f"{same_source_nn(e.coords, labels):.2f} (chance {_chance(labels):.2f}){extra}")
    return 0


def _caption(image: np.ndarray, text: str) -> np.ndarray:
    strip = Image.new("RGB", (image.shape[1], 14), (255, 255, 255))
    ImageDraw.Draw(strip).text((3, 1), text, fill=(60, 60, 60))
    return np.concatenate([image, np.asarray(strip)], axis=0)


def _chance(labels: list[str]) -> float:
    _, counts = np.unique(labels, return_counts=True)
    n = len(labels)
    return float(((counts * (counts - 1)).sum()) / (n * (n - 1)))


if __name__ == "__main__":
    sys.exit(main())
