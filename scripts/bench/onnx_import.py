"""Imported ONNX SqueezeNet 1.1 vs jaxvis's Flax squeezenet1_1 (same weights) vs onnxruntime CPU.

  python scripts/bench/onnx_import.py [--batch 4] [--size 224] [--repeats 3] [--iters 5]

The graph is the ONNX-zoo SqueezeNet 1.1 rebuilt from ../shared/testdata/squeezenet1_1_onnxzoo
(or --zoo DIR; scripts/data/onnx_zoo.py); the hand port loads the same arrays through `jaxvis convert npy-folder`.
Forward (logits) and forward+backward (gradient of the summed logits with respect to the
images, what saliency and the dream compute), all in one process, interleaved, best of
`--repeats` rounds of `--iters` calls each. onnxruntime has no backward: forward only. It also
checks that XLA optimizes both JAX versions to the same instructions (then the ratio is 1 up to noise).
Needs onnx and onnxruntime (test extra).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts" / "data")]  # run from a source checkout; the zoo graph

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from onnx_zoo import ZOO, zoo_squeezenet  # noqa: E402


def hlo_instructions(compiled_text: str):
    """Multiset of (shape, opcode, window/dims) of an optimized HLO module, names and metadata dropped."""
    import collections
    import re
    out = []
    for line in compiled_text.splitlines():
        m = re.search(r"= (\S+(?:\{[^}]*\})?) ([a-z][\w-]*)\(", line)
        if m:
            extra = re.search(r"(window=\{[^}]*\}|dim_labels=\S+|feature_group_count=\d+|dimensions=\{[^}]*\})", line)
            out.append((re.sub(r"\{[^}]*\}", "", m.group(1)), m.group(2), extra.group(1) if extra else ""))
    return collections.Counter(out)


def best(fn, iters: int) -> float:
    """Seconds per call of `fn` (already compiled), over `iters` calls."""
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - t) / iters


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zoo", type=Path, default=ZOO)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--iters", type=int, default=5)
    a = p.parse_args(argv)
    if not a.zoo.is_dir():
        print(f"no zoo arrays at {a.zoo} (give --zoo DIR)", file=sys.stderr)
        return 2
    import onnxruntime as ort

    import jaxvis
    from jaxvis.nets.convert import convert_npy_folder
    model = zoo_squeezenet(a.zoo, a.size)
    with tempfile.TemporaryDirectory() as d:
        convert_npy_folder(a.zoo / "weights", Path(d) / "sq.h5")
        hand = jaxvis.load_model("squeezenet1_1", weights=Path(d) / "sq.h5")
    t = time.perf_counter()
    imported = jaxvis.from_onnx(model)
    t_import = time.perf_counter() - t
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(a.batch, a.size, a.size, 3)).astype(np.float32)
    xj, x_nchw = jnp.asarray(x), np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    hlo = {}

    def fwd_bwd(net, layer, key):
        f = net.function([layer], normalize=False)
        fwd = jax.jit(lambda p, v: f(p, v)[layer])
        grad = jax.jit(jax.grad(lambda v, p: f(p, v)[layer].sum()))
        hlo[key] = [hlo_instructions(fwd.lower(net.params, xj).compile().as_text()),
                         hlo_instructions(grad.lower(xj, net.params).compile().as_text())]
        return (lambda: fwd(net.params, xj).block_until_ready(),
                lambda: grad(xj, net.params).block_until_ready())

    cases = {}
    cases["hand forward"], cases["hand fwd+bwd"] = fwd_bwd(hand, "pool10", "hand")
    cases["onnx forward"], cases["onnx fwd+bwd"] = fwd_bwd(imported, "gap", "onnx")
    cases["onnxruntime forward"] = lambda: sess.run(None, {"data": x_nchw})
    ref = sess.run(None, {"data": x_nchw})[0]
    got = np.asarray(imported.jitted(["flatten"], normalize=False)(imported.params, xj)["flatten"]).reshape(ref.shape)
    err = float(np.abs(got - ref).max() / np.abs(ref).max())
    for fn in cases.values():  # compile + warm up
        fn()
    times = {k: float("inf") for k in cases}
    for _ in range(a.repeats):  # interleaved rounds, best of each
        for k, fn in cases.items():
            times[k] = min(times[k], best(fn, a.iters))
    print(f"SqueezeNet 1.1, batch {a.batch}×{a.size}×{a.size}, {jax.devices()[0].platform}; import {t_import:.2f} s; "
          f"imported vs onnxruntime max rel err {err:.1e}")
    for k, v in times.items():
        print(f"  {k:<22} {1e3 * v:8.1f} ms   {a.batch / v:8.1f} images/s")
    for what in ("forward", "fwd+bwd"):
        print(f"  imported/hand-port speed ratio, {what}: {times[f'hand {what}'] / times[f'onnx {what}']:.3f}")
    print(f"  imported/onnxruntime speed ratio, forward: {times['onnxruntime forward'] / times['onnx forward']:.3f}")
    same = [a == b for a, b in zip(hlo["hand"], hlo["onnx"])]
    print(f"  optimized XLA identical to the hand port's (instruction multisets): forward {same[0]}, "
          f"fwd+bwd {same[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
