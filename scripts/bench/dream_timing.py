"""Timed deep dream for scripts/bench/dream.py: `jaxvis.deep_dream` and, in the same process, the PyTorch
reference (tests/torch_dream.py; tests/ and scripts/bench/ on sys.path, as dream.py sets them).

Timing protocol: one cold call (tracing + XLA compilation + run; compile time is read
from JAX's own monitoring events), then `repeats` warm calls of which the fastest is
reported (the minimum is the least disturbed by other processes on a shared machine;
the median is kept too). PyTorch gets one warm-up call (oneDNN primitive caches) and
the same number of timed calls, interleaved with JAX's so that both see the same load.
"""

from __future__ import annotations

import importlib.util
import statistics
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from flops import dream_flops_per_image_step
from machine import peak_memory_bytes
from peak_flops import peak_gflops

from jaxvis.dream import seamless as S
from jaxvis.dream.matlab import deep_dream, pyramid_sizes

START_MEAN, START_STD = 127.5, 10.0  # the library's random start: mid-gray plus Gaussian noise


class CompileTimer:
    """Sums JAX's tracing, lowering and XLA compile durations while active."""

    EVENTS = {"/jax/core/compile/jaxpr_trace_duration": "trace",
              "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
              "/jax/core/compile/backend_compile_duration": "compile"}

    def __init__(self):
        self.totals = dict.fromkeys(self.EVENTS.values(), 0.0)
        self.active = False
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, event, duration, **_):
        if self.active and event in self.EVENTS:
            self.totals[self.EVENTS[event]] += duration

    def __enter__(self):
        self.totals = dict.fromkeys(self.EVENTS.values(), 0.0)
        self.active = True
        return self

    def __exit__(self, *exc):
        self.active = False


_compile_timer: CompileTimer | None = None


def _timer() -> CompileTimer:
    global _compile_timer  # listeners cannot be unregistered: register once per process
    if _compile_timer is None:
        _compile_timer = CompileTimer()
    return _compile_timer


def torch_reference():
    """The PyTorch baseline (tests/torch_dream.py), or None when torch is not installed."""
    if importlib.util.find_spec("torch") is None:
        return None
    import torch_dream
    return torch_dream


def _torch_device(torch) -> str:
    return "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"


def bench_dream(net, layer: str, channels: list[int], *, levels: int = 1, iterations: int = 30,
                size: int | None = None, scale: float = 1.4, batch_size: int | None = None, repeats: int = 3,
                seed: int = 0, torch_ref: bool = True, peak_override: float | None = None,
                log: Callable[[str], None] = print) -> dict:
    """Benchmark deep dream of `channels` of `layer`; returns a JSON-able dict of results.

    Args:
      net: the network.
      layer: layer name (or index).
      channels: channel indices, one image each.
      levels, iterations, scale: pyramid levels, steps per level, pyramid scale.
      size: start size (square; default the network's input size).
      batch_size: channels per compiled call (default: the library's automatic choice;
        PyTorch then runs all channels as one batch).
      repeats: timed warm runs per framework (the fastest is reported).
      seed: seed of the shared start image.
      torch_ref: also run the PyTorch reference if torch is installed.
      peak_override: the device's peak GFLOP/s, instead of the detected one.
      log: progress printer.
    """
    layer = net.layer_name(layer)
    size = size or net.input_size[0]
    start = (START_MEAN + START_STD * np.random.default_rng(seed).standard_normal((1, size, size, 3))).astype(np.float32)
    sizes = pyramid_sizes((size, size), levels, scale)
    n = len(channels)
    flops = sum(n * iterations * dream_flops_per_image_step(net, layer, hw) for hw in sizes)
    peak, peak_how = peak_gflops(override=peak_override)
    # The library's defaults (seamless objective: 'pad' or 'shift' by layer); the PyTorch reference runs the
    # same algorithm, with JAX's own random shifts, so the first steps' strengths agree to float rounding.
    kw = dict(pyramid_levels=levels, pyramid_scale=scale, num_iterations=iterations, verbose=False,
              initial_image=start, batch_size=batch_size)
    how = S.choose(net, layer, sizes[0])
    res = {"model": net.name, "layer": layer, "channels": n, "iterations": iterations, "levels": levels,
           "sizes": sizes, "batch_size": batch_size, "image_iterations": n * iterations * levels,
           "gflop": flops / 1e9, "flop_rule": "2 FLOPs/MAC × conv+fc MACs × 2 (forward + input gradient)",
           "seamless": how, "shift_margin": S.shift_margin(sizes[0], S.layer_geometry(net, layer)[2]) if how == "shift" else None,
           "peak_gflops": peak, "peak_source": peak_how}

    log(f"{net.name} {layer}: {n} channels × {iterations} iterations × {levels} level(s) at {sizes}, "
        f"{flops / 1e9:.1f} GFLOP")
    timer = _timer()
    t = time.perf_counter()
    with timer:
        jax_strengths = deep_dream(net, layer, channels, **kw).strengths
    cold = time.perf_counter() - t
    res["jax_first_call_s"] = cold
    # Before PyTorch runs in this process: the max RSS is then JAX's alone (and the rest of the process).
    res.update({f"jax_{k}": v for k, v in peak_memory_bytes().items()})
    res["jax_trace_s"], res["jax_lower_s"], res["jax_compile_s"] = (timer.totals[k] for k in ("trace", "lower", "compile"))
    log(f"  JAX first call {cold:.2f} s (trace {res['jax_trace_s']:.2f} s, lower {res['jax_lower_s']:.2f} s, "
        f"XLA compile {res['jax_compile_s']:.2f} s)")

    torch_run = None
    if torch_ref:
        torch_dream = torch_reference()
        torch = torch_dream.torch if torch_dream else None
        if torch is None:
            log("  no PyTorch reference (torch is not installed)")
        else:
            dev = _torch_device(torch)
            tnet = torch_dream.TorchNet(net, layer, dev)
            sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
            seam = None
            if how:
                margin = res["shift_margin"]
                offs = jax_shifts(channels, sizes, iterations, S.layer_geometry(net, layer)[0]) if how == "shift" else None
                seam = torch_dream.Seamless(how, S.layer_geometry(net, layer), margin,
                                            None if offs is None else (lambda level, it: offs[level][it]))

            def torch_run():
                out = torch_dream.dream(tnet, start, channels, sizes=sizes, num_iterations=iterations,
                                        step_size=core_defaults()["step_size"], jitter=core_defaults()["jitter"],
                                        lap_levels=core_defaults()["lap_levels"],
                                        pixel_range=core_defaults()["pixel_range"], batch_size=batch_size,
                                        seamless=seam)
                sync()
                return out

            res["torch_device"] = dev
            res["torch_threads"] = torch.get_num_threads()
            t = time.perf_counter()
            _, torch_strengths = torch_run()
            res["torch_first_call_s"] = time.perf_counter() - t
            res.update(agreement(np.asarray(jax_strengths), torch_strengths))
            log(f"  PyTorch ({dev}, {res['torch_threads']} threads) first call {res['torch_first_call_s']:.2f} s; "
                f"activation strength JAX vs PyTorch: {res['strength_rel_diff_first_steps']:.1e} relative over the "
                f"first steps, final {res['strength_final_jax']:.3f} vs {res['strength_final_torch']:.3f}")

    jax_times, torch_times = [], []
    for r in range(repeats):
        t = time.perf_counter()
        deep_dream(net, layer, channels, **kw)
        jax_times.append(time.perf_counter() - t)
        if torch_run is not None:
            t = time.perf_counter()
            torch_run()
            torch_times.append(time.perf_counter() - t)
        log(f"  run {r + 1}/{repeats}: JAX {jax_times[-1]:.2f} s"
            + (f", PyTorch {torch_times[-1]:.2f} s" if torch_times else ""))
    res.update(_rates("jax", jax_times, n, res["image_iterations"], flops, peak))
    res["jax_compile_total_s"] = res["jax_trace_s"] + res["jax_lower_s"] + res["jax_compile_s"]
    if "jax_device_peak_bytes" in res:  # the warm runs may peak higher on an accelerator
        res["jax_device_peak_bytes"] = peak_memory_bytes()["device_peak_bytes"]
    if torch_times:
        res.update(_rates("torch", torch_times, n, res["image_iterations"], flops, peak))
        res["speedup_jax_over_torch"] = res["torch_s"] / res["jax_s"]
        res["host_max_rss_bytes_after_torch"] = peak_memory_bytes()["host_max_rss_bytes"]
        if res.get("torch_device") == "cuda":
            res["torch_device_peak_bytes"] = int(torch.cuda.max_memory_allocated())
    return res


def jax_shifts(channels: list[int], sizes, iterations: int, step: int = 1, seed: int = 0) -> list[np.ndarray]:
    """The circular shifts jaxvis's seamless 'shift' dream draws (per level: iterations × channels × (dy, dx)),
    from the engine's key derivation: unit key fold_in(PRNGKey(seed), channel), its step half of split, then
    fold_in(step) and fold_in(transform index 0) (jaxvis.engine.optimize, transforms.Compose, seamless.WrapShift)."""
    root = jax.random.PRNGKey(seed % 2 ** 32)
    units = jax.vmap(lambda i: jax.random.fold_in(root, i))(jnp.asarray(channels, jnp.uint32))
    step_keys = jax.vmap(jax.random.split, out_axes=1)(units)[1]
    out, step0 = [], 0
    for hw in sizes:
        def one(k, i, hw=hw):
            t = S.WrapShift(step)
            x = jnp.arange(hw[0] * hw[1], dtype=jnp.float32).reshape(1, *hw, 1)
            y = t(jax.random.fold_in(jax.random.fold_in(k, i), 0), x)[0, :, :, 0]
            flat = jnp.argmin(jnp.abs(y))  # where pixel 0 went: the offset
            return jnp.stack([flat // hw[1], flat % hw[1]])
        steps = jnp.arange(step0, step0 + iterations)
        out.append(np.asarray(jax.vmap(lambda i: jax.vmap(lambda k: one(k, i))(step_keys))(steps)))
        step0 += iterations
    return out


def agreement(jax_strengths: np.ndarray, torch_strengths: np.ndarray, first: int = 3) -> dict:
    """How closely the two runs agree, from their levels×iterations mean activation strengths.

    The first `first` steps of level 1 start from the same image, so they agree to float
    rounding when the algorithms are the same (a network, gradient or normalisation
    difference shows at once). Later the images themselves cannot be compared pixel by
    pixel: the ascent is chaotic (a 1e-3 pixel change of the start changes the final
    AlexNet conv5 images by up to 255), so only the final strengths are reported.
    """
    a, b = jax_strengths[0, :first], torch_strengths[0, :first]
    return {"strength_rel_diff_first_steps": float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-6))),
            "strength_final_jax": float(jax_strengths[-1, -1]), "strength_final_torch": float(torch_strengths[-1, -1])}


def core_defaults() -> dict:
    """deep_dream_image's defaults the reference must share."""
    from jaxvis.dream import matlab as api
    return {"step_size": api.STEP_SIZE, "jitter": api.JITTER, "lap_levels": api.LAP_LEVELS, "pixel_range": None}


def _rates(prefix: str, times: list[float], n: int, image_iterations: int, flops: float, peak) -> dict:
    best = min(times)
    out = {f"{prefix}_s": best, f"{prefix}_median_s": statistics.median(times), f"{prefix}_times_s": times,
           f"{prefix}_channel_images_per_s": n / best, f"{prefix}_image_iterations_per_s": image_iterations / best,
           f"{prefix}_gflops": flops / best / 1e9}
    if peak:
        out[f"{prefix}_percent_of_peak"] = 100 * flops / best / 1e9 / peak
    return out


def bench_breakdown(net, layer: str, n: int, size: int, *, repeats: int = 3, lap_levels: int = 4,
                    torch_ref: bool = True) -> dict:
    """Seconds per batch of n images for the two parts of a dream step: the network's forward +
    input gradient (the vmapped objective of jaxvis.dream), and the Laplacian normalisation."""
    from jaxvis.engine.laplacian import laplacian_normalize
    from jaxvis.engine.objectives import Channel
    layer = net.layer_name(layer)
    fn = net.function([layer])
    x = jnp.asarray(np.random.default_rng(0).uniform(0, 255, (n, size, size, 3)).astype(np.float32))
    ch_np = (np.arange(n) % _channel_count(net, layer, size)).astype(np.int32)
    ch = jnp.asarray(ch_np)
    def objective(params, image, c):
        return Channel(layer, c)(fn(params, image[None]))[0]

    grad = jax.jit(jax.vmap(jax.value_and_grad(objective, argnums=1), in_axes=(None, 0, 0)))
    lap = jax.jit(lambda g: laplacian_normalize(g, lap_levels, padding="zero"))
    g = grad(net.params, x, ch)[1].block_until_ready()
    lap(g).block_until_ready()
    parts = {"jax_network_s": lambda: grad(net.params, x, ch)[1].block_until_ready(),
             "jax_lapnorm_s": lambda: lap(g).block_until_ready()}
    if torch_ref:
        torch_dream = torch_reference()
        torch = torch_dream.torch if torch_dream else None
        if torch is not None:
            dev = _torch_device(torch)
            tnet, tlap = torch_dream.TorchNet(net, layer, dev), torch_dream.LapNorm(dev)
            xt = torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy()).to(dev)
            cht, rows = torch.from_numpy(ch_np).to(dev), torch.arange(n, device=dev)
            sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)

            def tgrad():
                xx = xt.detach().requires_grad_(True)
                (gg,) = torch.autograd.grad(tnet(xx)[rows, cht].mean(dim=(1, 2)).sum(), xx)
                sync()
                return gg

            gt = tgrad()
            parts["torch_network_s"] = tgrad
            parts["torch_lapnorm_s"] = lambda: (tlap(gt, lap_levels), sync())
    for f in parts.values():
        f()
    best = dict.fromkeys(parts, float("inf"))
    for _ in range(repeats):
        for k, f in parts.items():
            t = time.perf_counter()
            f()
            best[k] = min(best[k], time.perf_counter() - t)
    best["batch"] = n
    best["size"] = size
    return best


def _channel_count(net, layer: str, size: int) -> int:
    spec = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
    return jax.eval_shape(lambda p, x: net.apply(p, x, (layer,)), net.params, spec)[layer].shape[-1]
