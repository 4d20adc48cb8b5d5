"""Run the jaxvis fuzz targets (tests/fuzz/targets.py) for a while and report inputs and findings.

    python scripts/fuzz.py --minutes 10
    python scripts/fuzz.py --minutes 2 --targets pth,ndf --out fuzz-findings
    python scripts/fuzz.py --minutes 30 --targets onnx      # hostile ONNX graphs only

Targets run in turn, each for a time slice in a spawned child process with
fresh random seeds: a segfault or abort in a C library (HDF5, Pillow, zlib) kills
only the child and is reported as a crash with the input that caused it, and a
child that outlives its time is killed and reported as a hang. Children of the
isolated targets (hostile ONNX graphs) also run under an address-space limit, so an
allocation a size check missed is a finding, not a swapping host. Findings (input
bytes or repr, and the message) are written to --out.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import pickle
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


# Names of tests/fuzz/targets.py's TARGETS, LONG_ONLY and ISOLATED (the parent never imports jaxvis: children
# are spawned).
NAMES = ("pth", "ndf", "caffe", "h5", "image", "cli_parse", "cli_convert", "h5_bytes", "onnx")


def _slice(name: str, n: int, seed: int, seconds: float, out: str, queue) -> None:
    """Child process: runs of `n` examples with fresh seeds for `seconds`; reports after each run."""
    import warnings
    warnings.simplefilter("ignore")  # Pillow/h5py warn about odd inputs; findings are what counts
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    from tests.fuzz.targets import ISOLATED, LONG_ONLY, TARGETS, Finding, Runner, limit_address_space
    target = {**TARGETS, **LONG_ONLY, **ISOLATED}[name]
    if name in ISOLATED:
        limit_address_space()
    rng = random.Random(seed)
    current = Path(out) / f"current-{name}-{os.getpid()}.pkl"
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        runner, run_seed, found = Runner(), rng.randrange(2**32), []

        @hseed(run_seed)
        @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(target.strategy)
        def check(example):
            current.write_bytes(pickle.dumps(example))  # survives a crash of this process
            runner(target, example)  # noqa: B023 - called within this iteration

        try:
            check()
        except Finding as e:
            keep = Path(out) / f"finding-{name}-{run_seed}.pkl"
            current.replace(keep)
            found.append(f"{e} (input: {keep})")
        except Exception as e:  # noqa: BLE001 - the harness itself must report, not die
            inner = "; ".join(f"{type(x).__name__}: {str(x)[:300]}" for x in getattr(e, "exceptions", ()))
            found.append(f"harness error {type(e).__name__}: {str(e)[:300]}" + (f" [{inner}]" if inner else ""))
        queue.put((runner.count, found))
    current.unlink(missing_ok=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0, help="total time (default 10)")
    p.add_argument("--targets", default=",".join(NAMES), help=f"comma-separated, from {', '.join(NAMES)}")
    p.add_argument("--slice", type=float, default=60.0, help="seconds per target per child process (default 60)")
    p.add_argument("--chunk", type=int, default=100, help="examples per hypothesis run (default 100)")
    p.add_argument("--out", default="fuzz-findings", help="folder for findings (default fuzz-findings)")
    p.add_argument("--seed", type=int, default=None, help="seed of the seeds (default: random)")
    args = p.parse_args()
    names = [t for t in args.targets.split(",") if t]
    unknown = set(names) - set(NAMES)
    if unknown:
        p.error(f"unknown targets {sorted(unknown)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    ctx = mp.get_context("spawn")  # a fresh interpreter: no fork of JAX's threads
    end = time.monotonic() + 60 * args.minutes
    counts = dict.fromkeys(names, 0)
    findings: list[str] = []
    i = 0
    while time.monotonic() < end - 5:
        name, seed = names[i % len(names)], rng.randrange(2**32)
        i += 1
        seconds = min(args.slice, end - time.monotonic())
        queue = ctx.Queue()
        child = ctx.Process(target=_slice, args=(name, args.chunk, seed, seconds, str(out), queue))
        child.start()
        deadline = time.monotonic() + seconds + 120  # start-up (imports) and the last run's overrun
        while child.is_alive() and time.monotonic() < deadline:
            child.join(1.0)
            while not queue.empty():
                n, found = queue.get()
                counts[name] += n
                findings += [f"{name}: {f}" for f in found]
        killed = child.is_alive()
        if killed:
            child.kill()
            child.join()
            findings.append(f"{name}: hang: child (seed {seed}) still running {seconds + 120:.0f} s after its start; "
                            f"input: {out / f'current-{name}-{child.pid}.pkl'}")
        while not queue.empty():
            n, found = queue.get()
            counts[name] += n
            findings += [f"{name}: {f}" for f in found]
        if child.exitcode not in (0, None) and not killed:
            crash = sorted(out.glob(f"current-{name}-{child.pid}.pkl"))
            findings.append(f"{name}: process died with exit code {child.exitcode} (seed {seed}); "
                            f"input: {crash[0] if crash else 'unknown'}")
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {counts[name]} inputs so far; {len(findings)} findings; "
              f"{(end - time.monotonic()) / 60:.1f} min left", flush=True)
    total = sum(counts.values())
    print(f"\n{total} inputs in {args.minutes:g} min: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print(f"{len(findings)} findings" + (":" if findings else ""))
    for f in findings:
        print("  " + f)
    (out / "summary.txt").write_text(f"inputs {total}: {counts}\nfindings {len(findings)}\n" + "\n".join(findings))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
