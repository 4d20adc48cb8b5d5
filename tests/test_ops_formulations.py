"""The XLA:CPU-friendly formulations in jaxvis.nets.ops compute the same functions as the plain ones.

References: `lax.conv_general_dilated` (with `feature_group_count`) and `lax.reduce_window`
differentiated by JAX itself, and PyTorch's LRN where torch is installed.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxvis.nets import ops

DN = ("NHWC", "HWIO", "NHWC")


def plain_conv(x, k, stride, pad, groups):
    return lax.conv_general_dilated(x, k, (stride, stride), [(pad, pad)] * 2, dimension_numbers=DN,
                                    feature_group_count=groups)


def rel(a, b):
    return float(jnp.abs(a - b).max() / jnp.abs(b).max())


@pytest.mark.parametrize("shape,k,cout,stride,pad,groups", [
    ((2, 35, 35, 3), 11, 8, 4, 2, 1),   # AlexNet conv1 (torchvision)
    ((2, 35, 33, 3), 11, 6, 4, 0, 1),   # BVLC conv1, odd/unequal sizes
    ((2, 21, 21, 3), 3, 5, 2, 0, 1),    # SqueezeNet conv1
    ((1, 17, 19, 5), 4, 6, 3, 1, 1),    # kernel not a multiple of the stride
    ((2, 9, 9, 8), 5, 6, 1, 2, 2),      # grouped (BVLC conv2)
    ((2, 7, 7, 6), 3, 4, 2, 1, 2),      # grouped and strided
    ((2, 6, 6, 4), 1, 4, 1, 0, 1),      # 1×1
])
def test_conv2d_matches_plain_convolution(shape, k, cout, stride, pad, groups):
    r = np.random.default_rng(0)
    x = jnp.asarray(r.normal(size=shape), jnp.float32)
    w = jnp.asarray(r.normal(size=(k, k, shape[3] // groups, cout)), jnp.float32)
    b = jnp.asarray(r.normal(size=cout), jnp.float32)
    ref = plain_conv(x, w, stride, pad, groups) + b
    y = jax.jit(ops.conv2d, static_argnums=(3, 4, 5))(x, w, b, stride, pad, groups)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5 * float(jnp.abs(ref).max()))
    ct = jnp.asarray(r.normal(size=ref.shape), jnp.float32)
    gx, gw, gb = jax.vjp(lambda x, w, b: ops.conv2d(x, w, b, stride, pad, groups), x, w, b)[1](ct)
    rx, rw, rb = jax.vjp(lambda x, w, b: plain_conv(x, w, stride, pad, groups) + b, x, w, b)[1](ct)
    assert rel(gx, rx) < 1e-5 and rel(gw, rw) < 1e-5 and rel(gb, rb) < 1e-6


def test_strided_conv_gradient_under_vmap_and_jit():
    r = np.random.default_rng(1)
    x = jnp.asarray(r.normal(size=(3, 23, 23, 3)), jnp.float32)
    w = jnp.asarray(r.normal(size=(11, 11, 3, 4)), jnp.float32)
    f = lambda img: jnp.sum(jnp.sin(ops.conv2d(img[None], w, None, 4, 2)))  # noqa: E731
    g = jax.jit(jax.vmap(jax.grad(f)))(x)
    ref = jax.vmap(jax.grad(lambda img: jnp.sum(jnp.sin(plain_conv(img[None], w, 4, 2, 1)))))(x)
    assert rel(g, ref) < 1e-5


@pytest.mark.parametrize("shape,k,s,p,ceil", [
    ((2, 13, 13, 4), 3, 2, 0, False),  # AlexNet pools
    ((2, 14, 14, 3), 3, 2, 0, True),   # ceil mode (SqueezeNet)
    ((2, 12, 15, 3), 3, 2, 1, True),   # padding + ceil mode
    ((1, 10, 9, 2), 2, 2, 0, True),
    ((1, 9, 9, 2), 3, 1, 1, False),    # overlapping, stride 1
    ((1, 9, 9, 2), 2, 3, 0, False),    # stride > kernel: some inputs in no window
])
def test_max_pool_gradient_matches_select_and_scatter(shape, k, s, p, ceil):
    r = np.random.default_rng(2)
    # Integers with many ties (and a ReLU's zeros): the gradient must go to the same (first) maximum.
    x = jnp.asarray(np.maximum(np.round(r.normal(size=shape) * 1.5), 0), jnp.float32)
    oh, ow = (ops.pool_out_size(n, k, s, p, ceil) for n in shape[1:3])
    ph, pw = max((oh - 1) * s + k - shape[1] - p, 0), max((ow - 1) * s + k - shape[2] - p, 0)

    def ref_pool(x):
        return lax.reduce_window(x, -jnp.inf, lax.max, (1, k, k, 1), (1, s, s, 1),
                                 ((0, 0), (p, ph), (p, pw), (0, 0)))

    y = ops.max_pool(x, k, s, p, ceil)
    np.testing.assert_array_equal(y, ref_pool(x))
    ct = jnp.asarray(r.normal(size=y.shape), jnp.float32)
    g = jax.jit(lambda x, c: jax.vjp(lambda v: ops.max_pool(v, k, s, p, ceil), x)[1](c)[0])(x, ct)
    np.testing.assert_allclose(g, jax.vjp(ref_pool, x)[1](ct)[0], rtol=1e-6, atol=1e-6)


def test_max_pool_gradient_under_vmap():
    r = np.random.default_rng(3)
    x = jnp.asarray(r.normal(size=(4, 11, 11, 3)), jnp.float32)
    f = lambda v: jnp.sum(ops.max_pool(v[None], 3, 2, 0, True) ** 2)  # noqa: E731
    ref = lambda v: jnp.sum(lax.reduce_window(v[None], -jnp.inf, lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "VALID") ** 2)  # noqa: E731
    np.testing.assert_allclose(jax.vmap(jax.grad(f))(x), jax.vmap(jax.grad(ref))(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("beta", [0.75, 0.5])
def test_lrn_matches_torch(beta):
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(4)
    x = np.maximum(r.normal(size=(2, 5, 5, 9)) * 60, 0).astype(np.float32)
    ref = torch.nn.functional.local_response_norm(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), 5,
                                                  alpha=1e-4, beta=beta, k=1.0).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(ops.lrn(jnp.asarray(x), 5, 1e-4, beta, 1.0), ref, rtol=2e-6, atol=1e-5)


@pytest.mark.parametrize("widths", [(64, 64), (16, 48, 32), (8, 24), (3, 5), (64, 12)])
def test_concat_channels_is_concatenate(widths):
    """Grouped (gcd ≥ 8) and plain (gcd < 8) forms are the same array as jnp.concatenate; its gradient too."""
    r = np.random.default_rng(4)
    xs = [jnp.asarray(r.normal(size=(2, 5, 3, w)), jnp.float32) for w in widths]
    np.testing.assert_array_equal(ops.concat_channels(xs), jnp.concatenate(xs, -1))
    ct = jnp.asarray(r.normal(size=(2, 5, 3, sum(widths))), jnp.float32)
    got = jax.vjp(lambda *v: ops.concat_channels(v), *xs)[1](ct)
    want = jax.vjp(lambda *v: jnp.concatenate(v, -1), *xs)[1](ct)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_max_pool_with_nans_and_an_input_smaller_than_the_window():
    x = jnp.asarray(np.random.default_rng(5).normal(size=(1, 7, 7, 2)), jnp.float32).at[0, 2, 3, 1].set(jnp.nan)
    ref = lax.reduce_window(x, -jnp.inf, lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "VALID")
    np.testing.assert_array_equal(np.isnan(ops.max_pool(x, 3, 2)), np.isnan(ref))
    g = jax.grad(lambda v: jnp.nansum(ops.max_pool(v, 3, 2)))(x)
    assert np.isfinite(np.asarray(g)).all()  # a NaN window routes nothing; no NaN leaks into other windows
    assert ops.max_pool(x[:, :2, :2], 3, 2).shape == (1, 0, 0, 2)  # empty, as reduce_window's (graph: "too small")
