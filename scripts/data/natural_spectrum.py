"""Compute the natural-image magnitude spectrum jaxvis ships (jaxvis/data/natural_spectrum_256.npy).

MACO's fixed Fourier magnitude (jaxvis.natural_spectrum, docs/visualize.md) from the licence-clean colour
photographs installed here: scikit-image's astronaut (public domain, NASA), chelsea (CC0), coffee (CC0),
rocket (public domain, SpaceX); scikit-learn's china.jpg and flower.jpg (CC BY 2.0, attribution in
sklearn/datasets/images/README.txt); ../shared/images/grace_hopper.jpg (public domain, US Navy). Each gives
32 random crops at 256×256 (seed 0). jaxvis/data/README.md records the sources and this command:

    python scripts/data/natural_spectrum.py --out jaxvis/data/natural_spectrum_256.npy
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT)]  # run from a source checkout

SHARED_DIR = ROOT.parent / "shared" if (ROOT.parent / "shared").is_dir() else ROOT.parents[1] / "shared"
SKIMAGE = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"]
SKLEARN = ["china.jpg", "flower.jpg"]
SHARED = ["grace_hopper.jpg"]


def photos(shared: Path) -> list[Path]:
    """The photos' paths (scikit-image and scikit-learn must be installed: pip install 'jaxvis[data]')."""
    try:
        import skimage
        import sklearn
    except ImportError:
        sys.exit("needs scikit-image and scikit-learn: pip install 'jaxvis[data]'")
    out = [Path(skimage.__file__).parent / "data" / f for f in SKIMAGE]
    out += [Path(sklearn.__file__).parent / "datasets" / "images" / f for f in SKLEARN]
    out += [shared / f for f in SHARED]
    missing = [str(p) for p in out if not p.is_file()]
    if missing:
        sys.exit(f"missing photos: {', '.join(missing)}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "jaxvis" / "data" / "natural_spectrum_256.npy"))
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--crops", type=int, default=32)
    ap.add_argument("--shared", default=str(SHARED_DIR / "images"))
    args = ap.parse_args(argv)
    from jaxvis.engine.spectrum import natural_spectrum
    paths = photos(Path(args.shared))
    s = natural_spectrum(paths, args.size, crops=args.crops, seed=0)
    s.save(args.out)
    m = s.magnitude
    print(f"{len(paths)} photos × {args.crops} crops → {args.out}: {m.shape}, {Path(args.out).stat().st_size} bytes; "
          f"mean magnitude per channel {[round(float(v), 4) for v in m[:, 1:, 1:].mean((1, 2))]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
