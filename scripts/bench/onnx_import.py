"""Imported ONNX graphs against onnxruntime (forward) and against jaxvis's hand port (forward and forward+backward).

  python scripts/bench/onnx_import.py [--graphs squeezenet,resnet50] [--xla eigen,ynn] [--batch 4] [--size 224]
                                      [--repeats 3] [--iters 5] [--profile]

Graphs: the ONNX-zoo SqueezeNet 1.1 rebuilt from ../shared/testdata/squeezenet1_1_onnxzoo (or --zoo DIR;
scripts/data/onnx_zoo.py), whose hand port loads the same arrays through `jaxvis convert npy-folder`; and a
ResNet-50 (torchvision's architecture, seeded random weights; tests/test_onnx_archs.py) exported by
torch.onnx.export at opset 17. Forward (logits) and forward+backward (gradient of the summed logits with
respect to the images, what saliency and the dream compute), all in one process, interleaved, best of
`--repeats` rounds of `--iters` calls each; onnxruntime (CPU, its default threads and graph optimisations)
has no backward. Every jaxvis program is compiled once per `--xla` setting of XLA:CPU's convolution library,
passed per compilation (as `Net.cache.jit` passes jaxvis's options): `eigen` is jaxvis's choice
(`xla_cpu_experimental_ynn_fusion_type=""`: Eigen's convolutions, faster for forward + backward), `ynn` is
XLA's default (YNNPACK convolutions).
Achieved GFLOP/s (2 × the graph view's MACs per image) are printed against the fp32 peak of this CPU
(tests/peak_flops.py). `--profile` adds onnxruntime's per-op time
and XLA's for each convolution shape on its own.
Needs onnx, onnxruntime and (for ResNet-50) torch: the test extra.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts" / "data"), str(ROOT / "tests")]  # source checkout; helpers

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from onnx_zoo import ZOO, zoo_squeezenet  # noqa: E402
from peak_flops import peak_gflops  # noqa: E402

XLA = {"eigen": {"xla_cpu_experimental_ynn_fusion_type": ""},
       "ynn": {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"}}
PEAK_GFLOPS = peak_gflops()[0] or float("nan")  # this CPU's fp32 peak (tests/peak_flops.py)


def hlo_instructions(compiled_text: str):
    """Multiset of (shape, opcode, window/dims) of an optimized HLO module, names and metadata dropped."""
    out = []
    for line in compiled_text.splitlines():
        m = re.search(r"= (\S+(?:\{[^}]*\})?) ([a-z][\w-]*)\(", line)
        if m:
            extra = re.search(r"(window=\{[^}]*\}|dim_labels=\S+|feature_group_count=\d+|dimensions=\{[^}]*\})", line)
            out.append((re.sub(r"\{[^}]*\}", "", m.group(1)), m.group(2), extra.group(1) if extra else ""))
    return collections.Counter(out)


def per_call(fn, iters: int) -> float:
    """Seconds per call of `fn` (already compiled), over `iters` calls."""
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - t) / iters


def programs(net, layer, x, options):
    """(forward, forward+backward) callables of `net` to `layer` on `x`, compiled with `options`; their HLO."""
    f = net.function([layer], normalize=False)
    fwd = jax.jit(lambda p, v: f(p, v)[layer], compiler_options=options)
    grad = jax.jit(jax.grad(lambda v, p: f(p, v)[layer].sum()), compiler_options=options)
    hlo = [hlo_instructions(fwd.lower(net.params, x).compile().as_text()),
           hlo_instructions(grad.lower(x, net.params).compile().as_text())]
    return (lambda: fwd(net.params, x).block_until_ready(), lambda: grad(x, net.params).block_until_ready()), hlo


def build(name: str, a):
    """(imported network, ModelProto, hand port or None, the hand port's logits layer)."""
    import jaxvis
    if name == "squeezenet":
        from jaxvis.nets.convert import convert_npy_folder
        model = zoo_squeezenet(a.zoo, a.size)
        with tempfile.TemporaryDirectory() as d:
            convert_npy_folder(a.zoo / "weights", Path(d) / "sq.h5")
            hand = jaxvis.load_model("squeezenet1_1", weights=Path(d) / "sq.h5")
        return jaxvis.from_onnx(model), model, hand, "pool10"
    import onnx
    import torch
    from test_onnx_archs import seeded
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "resnet50.onnx"
        torch.onnx.export(seeded("resnet50"), torch.randn(1, 3, a.size, a.size), str(path), dynamo=False,
                          opset_version=17, input_names=["data"], output_names=["logits"],
                          dynamic_axes={"data": {0: "batch"}, "logits": {0: "batch"}})
        model = onnx.load(str(path))
    return jaxvis.from_onnx(model), model, None, None


def profile(net, sess_model, x, a) -> None:
    """onnxruntime's per-op-type time, and XLA's time for each convolution shape compiled on its own."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.enable_profiling = True
    with tempfile.TemporaryDirectory() as d:
        so.profile_file_prefix = str(Path(d) / "ort")
        sess = ort.InferenceSession(sess_model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: np.ascontiguousarray(x.transpose(0, 3, 1, 2))}
        for _ in range(a.iters):
            sess.run(None, feed)
        events = json.loads(Path(sess.end_profiling()).read_text())
    by_op: collections.Counter = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            by_op[e["args"]["op_name"]] += e["dur"] / a.iters / 1e3
    total = sum(by_op.values())
    print(f"    onnxruntime per op type (ms per call, {total:.1f} total): "
          + ", ".join(f"{k} {v:.1f}" for k, v in by_op.most_common(6)))
    g = net.graph()
    convs = collections.Counter()
    for node in g:
        if node.kind == "conv":
            src = g[node.inputs[0]].shape
            convs[(src[1:], node.shape[-1], node.kernel, node.stride, node.padding, node.groups)] += 1
    total_x, total_flops = 0.0, 0.0
    for (hwc, cout, k, s, p, groups), n in convs.items():
        xin = jnp.zeros((x.shape[0], *hwc), jnp.float32)
        w = jnp.zeros((*k, hwc[-1] // groups, cout), jnp.float32)
        f = jax.jit(lambda v, w, s=s, p=p, groups=groups: jax.lax.conv_general_dilated(
            v, w, s, p, dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=groups),
            compiler_options=XLA["eigen"])
        f(xin, w).block_until_ready()
        t = min(per_call(lambda: f(xin, w).block_until_ready(), a.iters) for _ in range(a.repeats))  # noqa: B023
        out = f(xin, w).shape
        flops = 2 * np.prod(out) * k[0] * k[1] * hwc[-1] // groups
        total_x += n * t
        total_flops += n * flops
    print(f"    XLA convolutions alone: {1e3 * total_x:.1f} ms per call over {sum(convs.values())} convolutions, "
          f"{total_flops / total_x / 1e9:.1f} GFLOP/s ({100 * total_flops / total_x / 1e9 / PEAK_GFLOPS:.0f} % "
          f"of peak); onnxruntime's Conv: {by_op.get('Conv', 0.0) + by_op.get('FusedConv', 0.0):.1f} ms")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--graphs", default="squeezenet,resnet50")
    p.add_argument("--zoo", type=Path, default=ZOO)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--xla", default="eigen,ynn", help="convolution libraries to compile with: eigen, ynn")
    p.add_argument("--profile", action="store_true")
    a = p.parse_args(argv)
    import onnxruntime as ort
    names = [g for g in a.graphs.split(",") if g]
    if "squeezenet" in names and not a.zoo.is_dir():
        print(f"no zoo arrays at {a.zoo} (give --zoo DIR); skipping squeezenet", file=sys.stderr)
        names.remove("squeezenet")
    x = np.random.default_rng(0).normal(size=(a.batch, a.size, a.size, 3)).astype(np.float32)
    xj, x_nchw = jnp.asarray(x), np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    cases, hlo, info = {}, {}, {}
    for name in names:
        t = time.perf_counter()
        net, model, hand, hand_layer = build(name, a)
        t_import = time.perf_counter() - t
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: x_nchw}
        for lib in a.xla.split(","):
            (cases[f"{name} imported forward {lib}"], cases[f"{name} imported fwd+bwd {lib}"]), \
                hlo[name, "onnx", lib] = programs(net, net.logits_layer, xj, XLA[lib])
            if hand is not None:
                (cases[f"{name} hand forward {lib}"], cases[f"{name} hand fwd+bwd {lib}"]), \
                    hlo[name, "hand", lib] = programs(hand, hand_layer, xj, XLA[lib])
        cases[f"{name} onnxruntime forward"] = lambda s=sess, f=feed: s.run(None, f)
        ref = sess.run(None, feed)[0]
        got = np.asarray(net.jitted([net.logits_layer], normalize=False)(net.params, xj)[net.logits_layer])
        macs = sum(n.macs or 0 for n in net.graph())
        info[name] = (t_import, float(np.abs(got.reshape(ref.shape) - ref).max() / np.abs(ref).max()), macs,
                      net, model)
    for fn in cases.values():  # compile + warm up
        fn()
    times = {k: float("inf") for k in cases}
    for _ in range(a.repeats):  # interleaved rounds, best of each
        for k, fn in cases.items():
            times[k] = min(times[k], per_call(fn, a.iters))
    try:
        load = Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        load = "?"
    print(f"batch {a.batch}×{a.size}×{a.size}, {jax.devices()[0].platform}, load average {load}")
    for name in names:
        t_import, err, macs, net, model = info[name]
        print(f"{name}: import {t_import:.2f} s; imported vs onnxruntime max rel err {err:.1e}; "
              f"{2 * macs / 1e9:.2f} GFLOP per image")
        for k, v in times.items():
            if k.startswith(name):
                gf = 2 * macs * a.batch / v / 1e9 if "forward" in k else None
                extra = f"   {gf:6.1f} GFLOP/s ({100 * gf / PEAK_GFLOPS:.0f} % of peak)" if gf else ""
                print(f"  {k[len(name) + 1:]:<26} {1e3 * v:8.1f} ms   {a.batch / v:8.1f} images/s{extra}")
        for lib in a.xla.split(","):
            print(f"  [{lib}] imported/onnxruntime speed ratio, forward: "
                  f"{times[f'{name} onnxruntime forward'] / times[f'{name} imported forward {lib}']:.3f}")
            if (name, "hand", lib) in hlo:
                for what in ("forward", "fwd+bwd"):
                    print(f"  [{lib}] imported/hand-port speed ratio, {what}: "
                          f"{times[f'{name} hand {what} {lib}'] / times[f'{name} imported {what} {lib}']:.3f}")
                same = [u == v for u, v in zip(hlo[name, "hand", lib], hlo[name, "onnx", lib])]
                print(f"  [{lib}] optimized XLA identical to the hand port's (instruction multisets): "
                      f"forward {same[0]}, fwd+bwd {same[1]}")
        if a.profile:
            profile(net, model, x, a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
