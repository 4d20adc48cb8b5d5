"""How long `import jaxvis` takes in a fresh interpreter, against `import jax` alone (the peer), same run.

    python scripts/bench/import_time.py [--repeats 3]

Each measurement is a new `python -c` process timing its own import with `time.perf_counter` (interpreter
start-up excluded), the two imports alternating; the best of `--repeats` is reported, with the 1-minute
load average. `import jaxvis` is lazy (jaxvis/__init__.py: each public name is imported on first use), so
it should cost a few milliseconds; the first tool call then pays for JAX, Flax and optax, which the third
row shows (`import jaxvis; jaxvis.load_model` resolved, i.e. jaxvis.nets.network imported).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CASES = {
    "import jaxvis": "import jaxvis",
    "import jax (peer)": "import jax",
    "import jaxvis; jaxvis.load_model": "import jaxvis; jaxvis.load_model",
}


def once(stmt: str) -> float:
    code = f"import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=ROOT)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="processes per case; the best is reported (default 3)")
    a = ap.parse_args()
    times: dict[str, list[float]] = {k: [] for k in CASES}
    for _ in range(a.repeats):
        for name, stmt in CASES.items():  # interleaved: load changes hit every case alike
            times[name].append(once(stmt))
    load = os.getloadavg()[0]
    best = {k: min(v) for k, v in times.items()}
    print(f"best of {a.repeats} fresh processes, 1-min load average {load:.1f}, Python {sys.version.split()[0]}")
    for name, t in best.items():
        print(f"  {name:36s} {1000 * t:8.1f} ms")
    print(f"  import jaxvis / import jax: {best['import jaxvis'] / best['import jax (peer)']:.3f}")


if __name__ == "__main__":
    main()
