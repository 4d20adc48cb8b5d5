"""Deep dream throughput: jaxvis (JAX) against the same algorithm in PyTorch eager, in one process.

  python scripts/bench/dream.py                       # the suite: AlexNet conv5, SqueezeNet fire9-concat
  python scripts/bench/dream.py --model alexnet --layer conv5 --channels 256 --levels 3 --size 227
  python scripts/bench/dream.py --breakdown --device-info --out bench.json

Without --model it runs the two benchmarks of docs/benchmarks.md: AlexNet conv5 and
SqueezeNet fire9-concat, 30 channels × 30 iterations, one pyramid level, at the
networks' input sizes. It reports channel-images/s, image-iterations/s, compile time,
achieved GFLOP/s and % of the device's peak, peak memory, and JAX's speed-up over PyTorch
(`--help` lists every option). Timed runs: dream_timing.py; FLOPs: flops.py; the PyTorch
reference: tests/torch_dream.py (needs torch, not a jaxvis dependency); peaks:
tests/peak_flops.py. Results and method: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # run from a source checkout; the torch reference is in tests/

from jaxvis.cli.args import bounded_int, channel_list  # noqa: E402

# (model, layer, size) of the standard suite.
SUITE = (("alexnet", "conv5", 224), ("squeezenet", "fire9-concat", 227))


def channel_spec(text: str) -> list[int]:
    """'30' → channels 0..29 (a count); '0:30', '5,9' → those 0-based channels."""
    text = text.strip()
    if text.isdigit():
        return list(range(int(text)))
    return channel_list(text)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dream.py", description="Benchmark deep dream (JAX vs PyTorch eager, same run).")
    p.add_argument("--model", default=None, help="registry name; default: the standard suite "
                   + ", ".join(f"{m} {l}" for m, l, _ in SUITE))
    p.add_argument("--weights", default=None, help="explicit jaxvis .h5 weight file")
    p.add_argument("--layer", default=None, help="layer to dream on (default: the suite's layer for --model)")
    p.add_argument("--channels", type=channel_spec, default=list(range(30)),
                   help="a count (30 = channels 0..29, the default; 256 = all of conv5) or a list (0:30, 5,9)")
    p.add_argument("--iterations", type=bounded_int(1, 10000, "iterations"), default=30,
                   help="gradient steps per pyramid level (default 30)")
    p.add_argument("--levels", type=bounded_int(1, 10, "levels"), default=1, help="pyramid levels (default 1)")
    p.add_argument("--scale", type=float, default=1.4, help="pyramid scale (default 1.4)")
    p.add_argument("--size", type=bounded_int(8, 4096, "size"), default=None,
                   help="start size in pixels (default: the network's input)")
    p.add_argument("--batch-size", type=bounded_int(1, 4096, "batch size"), default=None,
                   help="channels per compiled call (default: the library's choice; PyTorch then takes all at once)")
    p.add_argument("--repeats", type=bounded_int(1, 100, "repeats"), default=3,
                   help="timed runs per framework; the fastest counts (default 3)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    p.add_argument("--breakdown", action="store_true",
                   help="also time the network's forward+gradient and the Laplacian normalisation separately")
    p.add_argument("--peak-gflops", type=float, default=None, help="device peak FP32 GFLOP/s (default: detected)")
    p.add_argument("--device-info", action="store_true", help="print the machine and software versions first")
    p.add_argument("--out", "--json", dest="out", default=None, metavar="PATH",
                   help="also write all results as JSON (atomically)")
    return p


def run(args) -> int:
    from jaxvis.nets.network import load_model

    from dream_timing import bench_breakdown, bench_dream
    from machine import machine_info
    info = machine_info()
    if args.device_info:
        for k, v in info.items():
            print(f"{k:>14}: {v}")
    if args.model is None:
        if args.layer is not None:
            raise ValueError("--layer needs --model")
        configs = [(m, l, args.size or s) for m, l, s in SUITE]
    else:
        default_layer = {m: l for m, l, _ in SUITE}.get(args.model)
        layer = args.layer or default_layer
        if layer is None:
            raise ValueError(f"give --layer for model {args.model!r}")
        configs = [(args.model, layer, args.size)]
    results = []
    for model, layer, size in configs:
        net = load_model(model, weights=args.weights)
        r = bench_dream(net, layer, args.channels, levels=args.levels, iterations=args.iterations, size=size,
                        scale=args.scale, batch_size=args.batch_size, repeats=args.repeats,
                        torch_ref=not args.no_torch, peak_override=args.peak_gflops)
        if args.breakdown:
            r["breakdown"] = bench_breakdown(net, layer, args.batch_size or len(args.channels),
                                             size or net.input_size[0], repeats=args.repeats,
                                             torch_ref=not args.no_torch)
        results.append(r)
        print(summary(r))
    if args.out:
        from jaxvis.imaging.fileio import atomic_path
        with atomic_path(args.out) as tmp, open(tmp, "w") as f:
            json.dump({"machine": info, "results": results}, f, indent=1, default=str)
        print(f"wrote {args.out}")
    return 0


def summary(r: dict) -> str:
    """The result as a small text table."""
    rows = [("", "JAX", "PyTorch" if "torch_s" in r else "")]

    def row(name, key, fmt):
        j = r.get(f"jax_{key}")
        t = r.get(f"torch_{key}")
        rows.append((name, fmt.format(j) if j is not None else "", fmt.format(t) if t is not None else ""))

    row("time (s, best)", "s", "{:.2f}")
    row("channel-images/s", "channel_images_per_s", "{:.2f}")
    row("image-iterations/s", "image_iterations_per_s", "{:.1f}")
    row("GFLOP/s", "gflops", "{:.1f}")
    row("% of peak", "percent_of_peak", "{:.1f}")
    rows.append(("compile (s)", f"{r['jax_compile_total_s']:.2f}", ""))
    mem = r.get("jax_device_peak_bytes", r.get("jax_host_max_rss_bytes"))
    tmem = r.get("torch_device_peak_bytes", r.get("host_max_rss_bytes_after_torch"))
    what = "device" if "jax_device_peak_bytes" in r else "process max RSS, JAX ran first"
    rows.append((f"peak memory (MiB, {what})", f"{mem / 2**20:.0f}", f"{tmem / 2**20:.0f}" if tmem else ""))
    w = [max(len(x[i]) for x in rows) for i in range(3)]
    lines = [f"{r['model']} {r['layer']}: {r['channels']} channels × {r['iterations']} iterations × "
             f"{r['levels']} level(s), sizes {r['sizes']}, {r['gflop']:.1f} GFLOP "
             f"(peak {r['peak_gflops'] or 0:.0f} GFLOP/s: {r['peak_source']})"]
    lines += ["  " + "  ".join(x[i].rjust(w[i]) if i else x[i].ljust(w[i]) for i in range(3)) for x in rows]
    if "speedup_jax_over_torch" in r:
        lines.append(f"  JAX / PyTorch throughput: {r['speedup_jax_over_torch']:.2f}×   (activation strengths agree to "
                     f"{r['strength_rel_diff_first_steps']:.0e} over the first steps; final {r['strength_final_jax']:.2f} "
                     f"vs {r['strength_final_torch']:.2f})")
    if "breakdown" in r:
        b = r["breakdown"]
        parts = "  ".join(f"{k[:-2]} {v * 1e3:.0f} ms" for k, v in b.items() if k.endswith("_s"))
        lines.append(f"  per step of {b['batch']} images at {b['size']}: {parts}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of scripts/bench/dream.py; returns the exit status."""
    from jaxvis.errors import JaxvisError
    args = build_parser().parse_args(argv)
    if args.out:
        from jaxvis.imaging.fileio import check_writable
        check_writable([args.out])  # before minutes of benchmarking
    try:
        return run(args)
    except (JaxvisError, OSError, ValueError) as e:
        print(f"dream.py: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
