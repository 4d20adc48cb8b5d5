"""The headline benchmarks on one accelerator, in a few minutes: JSON + one markdown row (issue 22, item 6).

  python scripts/bench/gpu.py [--out bench_gpu.json] [--md bench_gpu.md]    # on a GPU machine
  python scripts/bench/gpu.py --small                                         # CPU smoke test (seconds)

Three jobs, each timed after a warm-up call (compilation reported separately), with the library's defaults:

* lucid: all 512 channels of SqueezeNet's fire9-concat × 512 lucid steps at 224 px in ONE
  `jaxvis.visualize` call (the engine sizes its blocks to the device's memory);
* dream: `deep_dream` of 30 channels × 10 iterations, one level, on SqueezeNet fire9-concat and
  (when weights/alexnet.h5 is present) AlexNet conv5: scripts/bench/dream.py's jobs without PyTorch;
* gallery: units/s of the gallery's block renderer (jaxvis.site) on fire9-concat, 64 units × 128 lucid
  steps, blocks of 64 (the projection of a whole network's gallery: units × steps ÷ this rate).

`--small` shrinks every job (4 channels, 4 steps, 64 px) so the script itself is tested on a CPU
(tests/test_scripts.py). No PyTorch here: the peer ratios are CPU-only (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "scripts" / "bench")]  # machine.py, peak_flops.py

FULL = {"lucid": (512, 512, 224), "dream": (30, 10, None), "gallery": (64, 128, 64)}
SMALL = {"lucid": (4, 4, 64), "dream": (4, 2, 64), "gallery": (4, 4, 4)}


def _timed(fn) -> tuple[float, float]:
    """(first call, second call) seconds: the first includes tracing and compilation."""
    out = []
    for _ in range(2):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out[0], out[1]


def lucid(net, units: int, steps: int, size: int) -> dict:
    import jaxvis
    from jaxvis.engine import objectives as O

    objs = O.units("fire9-concat", range(units))
    first, warm = _timed(lambda: jaxvis.visualize(net, objs, preset="lucid", steps=steps, image_size=size,
                                                  progress=False).images)
    return {"units": units, "steps": steps, "size": size, "seconds": warm, "compile_seconds": first - warm,
            "units_per_s": units / warm, "unit_steps_per_s": units * steps / warm}


def dream(net, layer: str, channels: int, iterations: int, size: int | None) -> dict:
    import jaxvis

    kw = dict(pyramid_levels=1, num_iterations=iterations, verbose=False, progress=False)
    if size is not None:
        kw["image_size"] = size
    first, warm = _timed(lambda: jaxvis.deep_dream(net, layer, range(channels), **kw).images)
    return {"layer": layer, "channels": channels, "iterations": iterations, "seconds": warm,
            "compile_seconds": first - warm, "image_steps_per_s": channels * iterations / warm}


def gallery(net, units: int, steps: int, block: int, size: int | None) -> dict:
    import jax

    from jaxvis.site.plan import plan_layers
    from jaxvis.site.render import _render_block

    lp = plan_layers(net, ["fire9-concat"], units)[0]
    cfg = {"preset": "lucid", "steps": steps, "image_size": size, "seed": 0, "diversity": 0, "thumbnail": 96,
           "block": block}
    with tempfile.TemporaryDirectory(prefix="jaxvis-bench-gpu-") as tmp:
        def run():
            for i in range(0, len(lp.units), block):
                _render_block(net, lp, lp.units[i:i + block], Path(tmp), cfg, jax.local_devices())
        first, warm = _timed(run)
    return {"units": len(lp.units), "steps": steps, "block": block, "seconds": warm,
            "compile_seconds": first - warm, "units_per_s": len(lp.units) / warm}


def markdown_row(r: dict) -> str:
    d = r["dream"]
    cells = [r["machine"]["date"][:10], r["machine"]["device"],
             f"{r['lucid']['units']}×{r['lucid']['steps']} @ {r['lucid']['size']}: {r['lucid']['seconds']:.1f} s "
             f"({r['lucid']['unit_steps_per_s']:.0f} unit-steps/s)",
             ", ".join(f"{k} {v['image_steps_per_s']:.0f}" for k, v in d.items()) + " image-steps/s",
             f"{r['gallery']['units_per_s']:.2f} units/s ({r['gallery']['steps']} steps)"]
    return "| " + " | ".join(cells) + " |"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="tiny sizes: a smoke test that runs on a CPU in seconds")
    ap.add_argument("--out", default=None, help="JSON results file (default: print only)")
    ap.add_argument("--md", default=None, help="append the markdown row to this file")
    a = ap.parse_args(argv)

    import jaxvis
    from machine import machine_info

    sizes = SMALL if a.small else FULL
    sq = jaxvis.load_model("squeezenet")
    res: dict = {"machine": machine_info(), "small": a.small}
    t0 = time.perf_counter()
    res["lucid"] = lucid(sq, *sizes["lucid"])
    print(f"lucid: {res['lucid']}", flush=True)
    c, it, size = sizes["dream"]
    res["dream"] = {"squeezenet fire9-concat": dream(sq, "fire9-concat", c, it, size)}
    alexnet = ROOT / "weights" / "alexnet.h5"
    if alexnet.is_file() and not a.small:
        res["dream"]["alexnet conv5"] = dream(jaxvis.load_model("alexnet", weights=alexnet), "conv5", c, it, size)
    print(f"dream: {res['dream']}", flush=True)
    u, st, block = sizes["gallery"]
    res["gallery"] = gallery(sq, u, st, block, sizes["lucid"][2] if a.small else None)
    print(f"gallery: {res['gallery']}", flush=True)
    res["total_seconds"] = time.perf_counter() - t0
    row = markdown_row(res)
    print(row)
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1))
        print(f"wrote {a.out}")
    if a.md:
        with open(a.md, "a") as f:
            f.write(row + "\n")
        print(f"appended to {a.md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
