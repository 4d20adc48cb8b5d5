"""The benchmarks' pieces: peak rules, the PyTorch reference being the same network and algorithm as
jaxvis's deep dream, and the deep dream benchmark script run as a user runs it (tests never import scripts/:
the rules and the reference live in tests/, scripts/bench/ imports them from here)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import jaxvis
import peak_flops

ROOT = Path(__file__).resolve().parent.parent


def test_cpu_peak_rules():
    assert peak_flops.cpu_flops_per_cycle({"avx512f", "avx2", "fma"}) == 64
    assert peak_flops.cpu_flops_per_cycle({"avx2", "fma", "avx"}) == 32
    assert peak_flops.cpu_flops_per_cycle({"avx"}) == 16
    assert peak_flops.peak_gflops(override=123.0) == (123.0, "given by --peak-gflops")


@pytest.mark.parametrize("model,layer,size", [("alexnet", "conv5", 67), ("squeezenet", "fire9-concat", 67)])
def test_torch_reference_is_the_same_network(model, layer, size, request):
    torch = pytest.importorskip("torch")
    from torch_dream import TorchNet
    net = request.getfixturevalue(model)
    x = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype(np.float32)
    want = jaxvis.activations(net, x, layer)
    got = TorchNet(net, layer)(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_torch_laplacian_normalisation_matches_jaxvis():
    torch = pytest.importorskip("torch")
    from torch_dream import LapNorm
    from jaxvis.engine.laplacian import laplacian_normalize
    g = np.random.default_rng(1).normal(size=(2, 37, 50, 3)).astype(np.float32)
    want = np.asarray(laplacian_normalize(g, 4, padding="zero", rel_eps=0))
    got = LapNorm()(torch.from_numpy(g.transpose(0, 3, 1, 2).copy()), 4).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_torch_wrap_laplacian_normalisation_matches_jaxvis():
    torch = pytest.importorskip("torch")
    from torch_dream import LapNorm
    from jaxvis.engine.laplacian import laplacian_normalize
    g = np.random.default_rng(2).normal(size=(2, 37, 50, 3)).astype(np.float32)
    want = np.asarray(laplacian_normalize(g, 4, padding="wrap", rel_eps=0))
    got = LapNorm(padding="wrap")(torch.from_numpy(g.transpose(0, 3, 1, 2).copy()), 4).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("layer,how", [("conv1", "pad"), ("fire4-concat", "shift")])
def test_torch_seamless_views_match_jaxvis(squeezenet, layer, how):
    """The torch reference's seamless objective is jaxvis's: 'pad' (resampled to a multiple of the stride,
    wrap-padded, cropped) and 'shift' (a circular shift, a wrap margin, cropped)."""
    torch = pytest.importorskip("torch")
    from torch_dream import Seamless, TorchNet
    S = jaxvis.dream.seamless
    x = np.random.default_rng(3).uniform(0, 255, (2, 45, 45, 3)).astype(np.float32)
    margin = 3 if how == "shift" else None
    run = S.seamless(squeezenet, layer, margin)
    xs = np.stack([np.roll(x[0], (5, 7), (0, 1)), np.roll(x[1], (40, 1), (0, 1))]) if how == "shift" else x
    want = np.asarray(run.function([layer])(run.params, xs)[layer])
    view = Seamless(how, S.layer_geometry(squeezenet, layer), margin, lambda level, it: [(5, 7), (40, 1)])
    got = view(TorchNet(squeezenet, layer), torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), 0, 0)
    np.testing.assert_allclose(got.numpy().transpose(0, 2, 3, 1), want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_benchmark_script_runs_both_frameworks_on_the_same_algorithm(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "bench.json"
    # As documented: by path from the repository root, no PYTHONPATH (the script puts the root and tests/ first).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "scripts/bench/dream.py", "--model", "alexnet", "--channels", "2",
                          "--iterations", "3", "--size", "67", "--repeats", "1", "--out", str(out)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    r = json.loads(out.read_text())["results"][0]
    assert r["channels"] == 2 and r["image_iterations"] == 6 and r["sizes"] == [[67, 67]]
    assert r["seamless"] == "shift" and r["shift_margin"] == 1  # the library's default for conv5
    # Same start, same steps, JAX's own shifts: the strengths of the first steps agree to float rounding.
    assert r["strength_rel_diff_first_steps"] < 1e-4
    assert r["jax_image_iterations_per_s"] > 0 and r["torch_image_iterations_per_s"] > 0
    assert r["speedup_jax_over_torch"] == pytest.approx(r["torch_s"] / r["jax_s"])
    assert "JAX / PyTorch throughput" in run.stdout and f"wrote {out}" in run.stdout
