"""The benchmark's pieces: FLOP counts (closed form), peak rules, and the
PyTorch reference being the same network and algorithm as jaxvis's deep dream."""

import json

import numpy as np
import pytest

import jaxvis
from scripts.bench import device, flops


def test_alexnet_conv5_macs_closed_form(alexnet):
    macs = flops.forward_macs(alexnet, "conv5", (224, 224))
    # torchvision AlexNet: 224 → conv1 55² → pool 27² → conv2 27² → pool 13² → conv3..5 13².
    want = {"conv1": 55 * 55 * 64 * 11 * 11 * 3, "conv2": 27 * 27 * 192 * 5 * 5 * 64,
            "conv3": 13 * 13 * 384 * 3 * 3 * 192, "conv4": 13 * 13 * 256 * 3 * 3 * 384,
            "conv5": 13 * 13 * 256 * 3 * 3 * 256}
    assert macs == want
    assert flops.dream_flops_per_image_step(alexnet, "conv5", (224, 224)) == 4 * sum(want.values())
    assert 2.6e9 < 4 * sum(want.values()) < 2.65e9  # REFERENCES.md §6: ≈2.6 GFLOP per image-step


def test_squeezenet_macs_cover_only_the_needed_layers(squeezenet):
    macs = flops.forward_macs(squeezenet, "fire2-expand3x3", (227, 227))
    # conv1 3×3/2 on 227 → 113², pool → 56²; fire2 squeeze 64→16, expand3x3 16→64; expand1x1 not needed.
    assert macs == {"conv1": 113 * 113 * 64 * 9 * 3, "fire2-squeeze1x1": 56 * 56 * 16 * 64,
                    "fire2-expand3x3": 56 * 56 * 64 * 9 * 16}


def test_cpu_peak_rules():
    assert device.cpu_flops_per_cycle({"avx512f", "avx2", "fma"}) == 64
    assert device.cpu_flops_per_cycle({"avx2", "fma", "avx"}) == 32
    assert device.cpu_flops_per_cycle({"avx"}) == 16
    assert device.peak_gflops(override=123.0) == (123.0, "given by --peak-gflops")


@pytest.mark.parametrize("model,layer,size", [("alexnet", "conv5", 67), ("squeezenet", "fire9-concat", 67)])
def test_torch_reference_is_the_same_network(model, layer, size, request):
    torch = pytest.importorskip("torch")
    from scripts.bench.dream_bench import torch_reference
    TorchNet = torch_reference().TorchNet
    net = request.getfixturevalue(model)
    x = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype(np.float32)
    want = jaxvis.activations(net, x, layer)
    got = TorchNet(net, layer)(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_torch_laplacian_normalisation_matches_jaxvis():
    torch = pytest.importorskip("torch")
    from scripts.bench.dream_bench import torch_reference
    LapNorm = torch_reference().LapNorm
    from jaxvis.engine.laplacian import laplacian_normalize
    g = np.random.default_rng(1).normal(size=(2, 37, 50, 3)).astype(np.float32)
    want = np.asarray(laplacian_normalize(g, 4, padding="zero", rel_eps=0))
    got = LapNorm()(torch.from_numpy(g.transpose(0, 3, 1, 2).copy()), 4).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_benchmark_script_runs_both_frameworks_on_the_same_algorithm(tmp_path, capsys):
    pytest.importorskip("torch")
    from scripts.bench.cli import main
    out = tmp_path / "bench.json"
    assert main(["--model", "alexnet", "--channels", "2", "--iterations", "3", "--size", "67",
                 "--repeats", "1", "--out", str(out)]) == 0
    r = json.loads(out.read_text())["results"][0]
    assert r["channels"] == 2 and r["image_iterations"] == 6 and r["sizes"] == [[67, 67]]
    # Same start, same steps: the activation strengths of the first steps agree to float rounding.
    assert r["strength_rel_diff_first_steps"] < 1e-4
    assert r["jax_image_iterations_per_s"] > 0 and r["torch_image_iterations_per_s"] > 0
    assert r["speedup_jax_over_torch"] == pytest.approx(r["torch_s"] / r["jax_s"])
    printed = capsys.readouterr().out
    assert "JAX / PyTorch throughput" in printed and f"wrote {out}" in printed
