"""Gallery rendering time with 1 and with 2 `jax.distributed` processes on this machine (issue 22, item 5).

  python scripts/bench/gallery_processes.py [--units 16] [--block 8] [--steps 16] [--rounds 2]

Each arm renders the same SqueezeNet fire9-concat units (lucid preset, no photos) with `jaxvis.gallery`:
one process, or two processes on this machine joined by `jax.distributed` (blocks dealt round-robin). In
every process a first gallery call into one folder compiles (reported as warm-up), a second into another
folder is timed; process 0's time (it waits for every block) is the arm's. Arms alternate for `--rounds`
rounds; the best of each is reported with the load average. The projection for N devices is in
docs/gallery.md.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

WORKER = """
import sys, time
sys.path[:0] = [{root!r}]
import jax
pid, n = int(sys.argv[1]), int(sys.argv[2])
if n > 1:
    jax.distributed.initialize("127.0.0.1:" + sys.argv[3], num_processes=n, process_id=pid)
import jaxvis
from jaxvis.site import gallery
net = jaxvis.load_model("squeezenet")
kw = dict(layers=["fire9-concat"], units={units}, block={block}, steps={steps}, progress=False, plan=False)
t = time.perf_counter(); gallery(net, sys.argv[4] + "/warm", **kw); w = time.perf_counter() - t
t = time.perf_counter(); r = gallery(net, sys.argv[4] + "/timed", **kw); s = time.perf_counter() - t
print(f"RESULT {{w:.3f}} {{s:.3f}} {{r.rendered}}", flush=True)
"""


def _port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def run_arm(script: Path, n: int, out: Path) -> tuple[float, float]:
    """(warm-up s, timed s) of process 0 with n processes."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    port = _port()
    procs = [subprocess.Popen([sys.executable, str(script), str(i), str(n), port, str(out)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(n)]
    outs = [p.communicate(timeout=1800) for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit("a worker failed:\n" + "\n".join(o[1][-2000:] for o in outs))
    m = re.search(r"RESULT (\S+) (\S+) (\d+)", outs[0][0])
    assert m is not None, outs[0][0]
    return float(m.group(1)), float(m.group(2))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=16)
    ap.add_argument("--block", type=int, default=8)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args(argv)
    best = {1: (float("inf"), 0.0), 2: (float("inf"), 0.0)}
    with tempfile.TemporaryDirectory(prefix="jaxvis-bench-procs-") as tmp:
        script = Path(tmp) / "worker.py"
        script.write_text(WORKER.format(root=str(ROOT), units=a.units, block=a.block, steps=a.steps))
        for r in range(a.rounds):
            for n in (1, 2):
                out = Path(tmp) / f"r{r}n{n}"
                out.mkdir()
                load = os.getloadavg()[0]
                warm, timed = run_arm(script, n, out)
                print(f"round {r + 1}, {n} process(es): warm-up {warm:.1f} s, render {timed:.1f} s "
                      f"(load {load:.1f})", flush=True)
                best[n] = min(best[n], (timed, warm))
    print(f"{a.units} units × {a.steps} steps, block {a.block}: 1 process {best[1][0]:.1f} s, 2 processes "
          f"{best[2][0]:.1f} s, speed-up {best[1][0] / best[2][0]:.2f}× ({os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
