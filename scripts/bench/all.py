"""Every peer benchmark of docs/benchmarks.md, one after the other, each in its own process (for a quiet machine).

  python scripts/bench/all.py [--out bench-results/] [--only dream,visualize] [--quick]

Runs, with the library's defaults and a plain `import jaxvis` (each script compares in one process,
interleaved, best of 3): dream.py (AlexNet conv5, SqueezeNet fire9-concat, 30 channels × 10 iterations,
vs PyTorch eager), visualize.py (12 class images × 32 lucid steps vs torch-lucent 0.1.8), vgg16.py
(filter step and saliency vs PyTorch eager), patches.py (from files and from memory vs a DataLoader
pipeline), attribution.py (every method vs captum 0.9), onnx_import.py (the imported SqueezeNet vs
onnxruntime). Each script's output goes to OUT/NAME.log (JSON where the script writes one) and a summary
with the load average before and after each run to OUT/summary.log. `--quick` uses smaller sizes (a check
that everything runs, not figures to quote). Needs the test extra (torch, captum, onnxruntime) and
torch-lucent (see visualize.py).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "scripts" / "bench"


def jobs(out: Path, quick: bool) -> dict[str, list[str]]:
    q = quick
    return {
        "dream": ["dream.py", "--iterations", "3" if q else "10", "--channels", "6" if q else "30",
                  "--out", str(out / "dream.json")],
        "visualize": ["visualize.py", "--units", "4" if q else "12", "--steps", "4" if q else "32"],
        "vgg16": ["vgg16.py", "--steps", "2" if q else "5", "--out", str(out / "vgg16.json")],
        "patches": ["patches.py", "--n", "32" if q else "160", "--json", str(out / "patches.json")],
        "attribution": ["attribution.py", "--repeats", "1" if q else "3"],
        "onnx": ["onnx_import.py", "--graphs", "squeezenet", "--batch", "4"],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench-results", help="folder for the logs (created)")
    ap.add_argument("--only", default=None, help="comma-separated subset of: dream, visualize, vgg16, patches, "
                    "attribution, onnx")
    ap.add_argument("--quick", action="store_true", help="small sizes: checks that everything runs")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(exist_ok=True)
    todo = jobs(out, a.quick)
    names = list(todo) if a.only is None else [n.strip() for n in a.only.split(",")]
    unknown = sorted(set(names) - set(todo))
    if unknown:
        ap.error(f"--only: unknown {unknown}; known: {', '.join(todo)}")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    failed = 0
    with open(out / "summary.log", "a") as summary:
        for name in names:
            load = " ".join(f"{v:.2f}" for v in os.getloadavg())
            t = time.perf_counter()
            with open(out / f"{name}.log", "w") as log:
                rc = subprocess.run([sys.executable, str(BENCH / todo[name][0]), *todo[name][1:]], cwd=ROOT, env=env,
                                    stdout=log, stderr=subprocess.STDOUT).returncode
            line = (f"{name}: rc {rc}, {time.perf_counter() - t:.0f} s, load before {load}, after "
                    + " ".join(f"{v:.2f}" for v in os.getloadavg()))
            print(line, flush=True)
            summary.write(line + "\n")
            failed += rc != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
