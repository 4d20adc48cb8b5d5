"""Benchmark: top-9 dataset patches over a folder of photos, jaxvis against a PyTorch eager loop.

  python scripts/bench/patches.py [--n 240] [--repeats 3] [--batch 32] [--json out.json]

Both sides do the same work on the same weights (tests/torch_reference.py's squeezenet_from_jaxvis):
per batch one SqueezeNet forward pass to fire9-concat and conv10, per unit and image the maximum
over positions (and its position), merged into a running top-9 per unit. Two settings:

* files: from a folder of `n` JPEGs (../shared photos + random crops/flips, scripts/data/photo_crops.py),
  decoding and resizing included: jaxvis's background thread pool (`jaxvis.top_patches`) against a
  torch DataLoader with 2 worker processes running the same PIL decode + resize;
* memory: the same images already decoded at 227×227 (forward + top-k only).

Runs alternate (jaxvis, torch, jaxvis, …) after one warm-up each (compilation excluded); the best of
`repeats` is reported, in images/s. torch is not a jaxvis dependency (tests extra).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts" / "data"), str(ROOT / "tests")]  # the photo folder; the torch network

LAYERS = ("fire9-concat", "conv10")
K = 9


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name"))
    except Exception:  # noqa: BLE001
        return platform.processor() or "unknown"


def torch_topk(model, batches, k: int = K):
    """The torch eager loop: forward to fire9-concat and conv10, per-unit max + position, running top-k."""
    import torch
    m = model.net
    state, base = {}, 0
    with torch.inference_mode():
        for x in batches:  # N×3×227×227 float 0..255
            feats = m.features(x - model.mean)
            acts = {"fire9-concat": feats, "conv10": m.classifier[1](feats)}
            n = x.shape[0]
            ids = torch.arange(base, base + n, dtype=torch.int32)
            base += n
            for l, a in acts.items():
                v, pos = a.flatten(2).max(dim=2)  # N×C: max over positions, first position on ties
                v, pos = v.T, pos.T.to(torch.int32)
                if l in state:
                    v0, i0, p0 = state[l]
                    v, i, pos = torch.cat([v0, v], 1), torch.cat([i0, ids.expand_as(pos)], 1), torch.cat([p0, pos], 1)
                else:
                    i = ids.expand_as(pos)
                top, j = torch.topk(v, min(k, v.shape[1]), dim=1)
                state[l] = (top, i.gather(1, j), pos.gather(1, j))
    return {l: tuple(t.numpy() for t in s) for l, s in state.items()}


class _Files:
    """torch Dataset: the same PIL decode + resize as jaxvis's loader, as C×H×W float tensors."""

    def __init__(self, paths, size):
        self.paths, self.size = paths, size

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        import torch

        from jaxvis.patches.loader import load_one
        return torch.from_numpy(load_one(self.paths[i], self.size).transpose(2, 0, 1).astype(np.float32))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=240, help="photos (≥ 200; default 240)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2, help="torch DataLoader worker processes (default 2)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)

    import torch

    import jaxvis
    from jaxvis.patches.loader import load_one
    from photo_crops import augmented_folder
    from torch_reference import squeezenet_from_jaxvis

    net = jaxvis.load_model("squeezenet")
    model = squeezenet_from_jaxvis(net.params)
    size = tuple(net.input_size)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = augmented_folder(tmp, a.n)
        decoded = [load_one(p, size) for p in paths]
        tensors = torch.from_numpy(np.stack(decoded).transpose(0, 3, 1, 2).astype(np.float32))

        def jax_files():
            return jaxvis.top_patches(net, tmp, list(LAYERS), k=K, batch_size=a.batch, progress=False)

        def jax_memory():
            return jaxvis.top_patches(net, decoded, list(LAYERS), k=K, batch_size=a.batch, progress=False)

        # Worker processes started once and kept (their start-up is not timed); forked: they run only PIL/numpy
        dl = torch.utils.data.DataLoader(_Files([str(p) for p in paths], size), batch_size=a.batch,
                                         num_workers=a.workers, persistent_workers=a.workers > 0,
                                         multiprocessing_context="fork" if a.workers else None)

        def torch_files():
            return torch_topk(model, dl)

        def torch_memory():
            return torch_topk(model, (tensors[i:i + a.batch] for i in range(0, len(tensors), a.batch)))

        jax_files(), torch_files()  # warm-up: compilation, oneDNN primitive caches, worker start-up
        results = {}
        for setting, (jf, tf) in {"memory": (jax_memory, torch_memory), "files": (jax_files, torch_files)}.items():
            times = {"jaxvis": [], "torch": []}
            for _ in range(a.repeats):
                for name, f in (("jaxvis", jf), ("torch", tf)):
                    t = time.perf_counter()
                    results[(setting, name)] = f()
                    times[name].append(time.perf_counter() - t)
            rows[setting] = {name: a.n / min(ts) for name, ts in times.items()}
            rows[setting]["times"] = times
        # the two agree: same hits wherever the values are not within float32 rounding of a tie
        r, t = results[("files", "jaxvis")], results[("files", "torch")]
        agree = {l: float(np.mean(r.image[l] == t[l][1])) for l in LAYERS}
        close = {l: float(np.abs(r.value[l] - t[l][0]).max() / np.abs(t[l][0]).max()) for l in LAYERS}

    load = os.getloadavg()[0]
    print(f"\nSqueezeNet top-{K} over {a.n} photos, layers {', '.join(LAYERS)}, batch {a.batch}; "
          f"CPU {cpu_name()} ({os.cpu_count()} cores), torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"load average {load:.1f}\n")
    print("| setting | jaxvis (images/s) | torch eager (images/s) | speed-up |")
    print("|---|---|---|---|")
    for setting, row in rows.items():
        print(f"| {setting} | {row['jaxvis']:.1f} | {row['torch']:.1f} | {row['jaxvis'] / row['torch']:.2f}× |")
    from flops import forward_flops
    from peak_flops import peak_gflops
    gf = forward_flops(net, "conv10", size) / 1e9  # per image: the forward pass to conv10 (fire9 on the way)
    peak = peak_gflops()[0] or float("nan")
    mem = rows["memory"]["jaxvis"] * gf
    print(f"\nforward {gf:.2f} GFLOP per image: from memory jaxvis {mem:.0f} GFLOP/s ({100 * mem / peak:.0f} % of "
          f"{peak:.0f}), torch {rows['memory']['torch'] * gf:.0f} GFLOP/s")
    print(f"same hit ids as torch: {agree}; max relative value difference {close}")
    if a.json:
        Path(a.json).write_text(json.dumps({"rows": rows, "agree": agree, "close": close, "cpu": cpu_name(),
                                            "load": load, "n": a.n, "batch": a.batch}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
