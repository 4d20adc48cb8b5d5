"""Time one `jaxvis.activations` call on a large photo (run under /usr/bin/time -v for peak RSS).

    /usr/bin/time -v python scripts/bench/activations_large.py --layer conv1 [--tile 0]

The photo is examples/images/grace_hopper.jpg upscaled (bilinear) to --size WxH (default 6000x4000).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run from a source checkout

import jaxvis  # noqa: E402

PHOTO = ROOT / "examples" / "images" / "grace_hopper.jpg"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="squeezenet")
    p.add_argument("--layer", default="conv1")
    p.add_argument("--size", default="6000x4000", help="WIDTHxHEIGHT")
    p.add_argument("--tile", default="auto", help="auto (tile=None), 0 (whole image at once) or pixels")
    p.add_argument("--xla-defaults", action="store_true",
                   help="JAXVIS_XLA_DEFAULTS=0: XLA's default YNNPACK convolutions instead of jaxvis's per-compilation options")
    a = p.parse_args()
    if a.xla_defaults:
        os.environ["JAXVIS_XLA_DEFAULTS"] = "0"  # read by jaxvis when it compiles (jaxvis/nets/cpu.py)
    w, h = (int(v) for v in a.size.split("x"))
    img = np.asarray(Image.open(PHOTO).convert("RGB").resize((w, h), Image.Resampling.BILINEAR))
    net = jaxvis.load_model(a.model)
    kw = {} if a.tile == "auto" else {"tile": int(a.tile)}
    t0 = time.perf_counter()
    try:
        act = jaxvis.activations(net, img, a.layer, **kw)
    except TypeError:  # before `tile=` existed
        act = jaxvis.activations(net, img, a.layer)
    dt = time.perf_counter() - t0
    print(f"{a.model} {a.layer} {w}x{h} tile={a.tile} xla_defaults={a.xla_defaults}: "
          f"{act.shape} {act.nbytes / 2**30:.2f} GiB out, "
          f"{dt:.1f} s, checksum {float(np.float64(act[::7, ::7]).sum()):.6g}")


if __name__ == "__main__":
    main()
