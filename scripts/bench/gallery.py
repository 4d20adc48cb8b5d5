"""Gallery throughput: feature-visualisation units/s, batched blocks vs one unit per call, same run.

  python scripts/bench/gallery.py [--model squeezenet] [--layer fire6-concat] [--units 16] [--steps 64]
                                  [--block 16] [--repeats 3] [--out bench_gallery.json]

Both arms render the same units with the same settings through `jaxvis.site`'s block renderer
(the lucid preset, `--steps` steps at the network's input size); the baseline is the same engine
called once per unit (block 1), which is what a per-unit loop over lucid/lucent amounts to.
Arms are interleaved, best of `--repeats`, after one warm-up each (compile excluded and reported
separately). The per-unit cost then projects the time of whole-network galleries.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a source checkout


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="squeezenet")
    p.add_argument("--layer", default="fire6-concat")
    p.add_argument("--units", type=int, default=16)
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--block", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=None, help="JSON results file")
    a = p.parse_args(argv)
    import jaxvis
    import jax

    from jaxvis.site.plan import plan_layers
    from jaxvis.site.render import _render_block

    net = jaxvis.load_model(a.model)
    lp = plan_layers(net, [a.layer], a.units)[0]
    units = lp.units
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"jaxvis-bench-gallery-{os.getpid()}"

    def run(block: int) -> float:
        cfg = {"preset": "lucid", "steps": a.steps, "image_size": None, "seed": 0, "diversity": 0,
               "thumbnail": 96, "block": block}
        t = time.perf_counter()
        for i in range(0, len(units), block):
            _render_block(net, lp, units[i:i + block], tmp, cfg, jax.local_devices())
        return time.perf_counter() - t

    compile_s = {b: run(b) for b in (a.block, 1)}  # warm-up: compiles once per block size
    best = {a.block: float("inf"), 1: float("inf")}
    for _ in range(a.repeats):
        for b in (a.block, 1):
            best[b] = min(best[b], run(b))
    per_unit = best[a.block] / len(units)
    res = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                      f"{jax.devices()[0].device_kind}",
           "model": a.model, "layer": a.layer, "units": len(units), "steps": a.steps,
           "image": list(net.input_size), "block": a.block,
           "batched_units_per_s": len(units) / best[a.block], "one_by_one_units_per_s": len(units) / best[1],
           "speedup": best[1] / best[a.block], "first_call_s": compile_s,
           "per_unit_s": per_unit, "per_unit_step_ms": 1000 * per_unit / a.steps}
    print(json.dumps(res, indent=1))
    if a.out:
        from jaxvis.imaging.fileio import atomic_path
        with atomic_path(a.out) as t:
            t.write_text(json.dumps(res, indent=1))
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
