"""Layer operations shared by the networks: convolution, ceil-mode pooling, LRN, ReLU variants.

All functions take NHWC arrays. They are plain JAX functions so the networks stay
differentiable, `vmap`-able and `jit`-able.

Some are formulated for speed on XLA:CPU, where the obvious lowering of a few
gradients is several times slower than the rest of the network (measurements in
docs/benchmarks.md). Each reformulation computes the same function (convolution and
pooling outputs bit-identical, gradients equal up to float summation order):

* grouped convolutions run as one convolution per group (XLA:CPU's
  `feature_group_count` path was 1.2–1.3× slower with Eigen, 5× with YNNPACK);
* the input gradient of a strided convolution is computed as a stride-1
  convolution on space-to-depth blocks (XLA lowers it to an input-dilated
  convolution on a slow generic path: 3.8× slower for AlexNet's conv1);
* the input gradient of every convolution uses an explicitly transposed kernel, so
  that inside loops XLA keeps it on its fast convolution path (2× for the dream);
* max pooling runs separably (columns, then rows: strided slices) instead of `reduce_window`
  (4–7× slower), and its gradient routes each window's cotangent by first-maximum indices the
  forward saved, in the same two steps, instead of `select_and_scatter` (3.5× slower for AlexNet's pools);
* channel concatenation moves g-channel groups (:func:`concat_channels`: 9× faster for SqueezeNet's
  28×28 fire concatenations);
* LRN with beta = 0.75 uses rsqrt instead of pow (30 % faster; 1e-7 relative).

The custom gradients are `jax.custom_vjp` rules: `grad`/`vjp` work under `vmap`
and `jit`; forward-mode differentiation (`jax.jvp`) through them does not.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..errors import ModelError

RELU_MODES = ("standard", "guided", "deconvnet", "redirected")


def pool_out_size(n: int, k: int, s: int, p: int, ceil_mode: bool) -> int:
    """Output length of a pooling window (Caffe/PyTorch rounding rules)."""
    num = n + 2 * p - k
    out = (-(-num // s) if ceil_mode else num // s) + 1
    # Caffe and PyTorch drop a last window that would start inside the right padding.
    if ceil_mode and p > 0 and (out - 1) * s >= n + p:
        out -= 1
    return out


def max_pool(x: jax.Array, k: int, s: int, p: int = 0, ceil_mode: bool = False) -> jax.Array:
    """k×k max pooling, stride s, symmetric padding p; ceil_mode as in Caffe/PyTorch.

    The gradient goes to the first maximum of each window in row-major order, as
    XLA's and PyTorch's do (see :func:`_pool_valid_bwd`).
    """
    h, w = x.shape[1], x.shape[2]
    oh, ow = pool_out_size(h, k, s, p, ceil_mode), pool_out_size(w, k, s, p, ceil_mode)
    # Ceil mode is floor mode plus extra -inf padding on the bottom/right edge.
    ph = max((oh - 1) * s + k - h - p, 0)
    pw = max((ow - 1) * s + k - w - p, 0)
    if p or ph or pw:
        x = jnp.pad(x, ((0, 0), (p, ph), (p, pw), (0, 0)), constant_values=-jnp.inf)
    return _pool_valid(x, k, s)


def _window_slices(x, k, s, axis):
    """The k strided slices x[d::s] (d < k) of the valid windows along `axis`, each as long as the output."""
    o = (x.shape[axis] - k) // s + 1
    return [lax.slice_in_dim(x, d, d + s * (o - 1) + 1, s, axis) for d in range(k)]


def _first_max(parts):
    """(max over parts, index of the first part equal to it; len(parts) where none is: a NaN maximum).
    The index is int8 (a quarter of the memory the backward reads) up to 126 parts."""
    m = functools.reduce(jnp.maximum, parts)
    dtype = jnp.int8 if len(parts) < 127 else jnp.int32
    idx = jnp.full(m.shape, len(parts), dtype)
    for d in reversed(range(len(parts))):
        idx = jnp.where(parts[d] == m, jnp.asarray(d, dtype), idx)
    return m, idx


def _pool_forward(x, k, s):
    """k×k max, stride s, valid windows: separable, along columns then rows, each a max of k strided slices
    (the values of `lax.reduce_window`, which XLA:CPU ran 4–7× slower: 6.2 vs 0.9 ms for SqueezeNet's pool1
    at batch 8)."""
    n, h, w, c = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    if oh <= 0 or ow <= 0:  # an input smaller than the window: an empty output, as reduce_window's
        return jnp.zeros((n, max(oh, 0), max(ow, 0), c), x.dtype)
    cols = functools.reduce(jnp.maximum, _window_slices(x, k, s, 2))
    return functools.reduce(jnp.maximum, _window_slices(cols, k, s, 1))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _pool_valid(x, k, s):
    return _pool_forward(x, k, s)


def _pool_valid_fwd(x, k, s):
    if min(x.shape[1:3]) < k:
        return _pool_forward(x, k, s), (None, None, x.shape)
    cols, dj = _first_max(_window_slices(x, k, s, 2))  # per row: the first column holding the row's max
    y, di = _first_max(_window_slices(cols, k, s, 1))  # per window: the first row holding the max
    return y, (dj, di, x.shape)


def _place(g, idx, k, s, axis, length):
    """The transpose of taking window tap idx along `axis`: g[o] goes to position s·o + idx[o] (idx = k: nowhere).

    Taps with the same d % s land on the same phase, shifted by d // s outputs, so each phase is a sum of
    plainly padded arrays; the s phases are interleaved by a reshape. Everything fuses into elementwise loops.
    """
    o = g.shape[axis]
    a = max(-(-length // s), o + (k - 1) // s)  # phase length: covers the input and every shift
    zero = jnp.zeros((), g.dtype)
    phases: dict[int, jax.Array] = {}
    for d in range(k):
        pad = [(0, 0, 0)] * g.ndim
        pad[axis] = (d // s, a - o - d // s, 0)
        placed = lax.pad(jnp.where(idx == d, g, zero), zero, pad)
        phases[d % s] = placed + phases[d % s] if d % s in phases else placed
    none = jnp.zeros(placed.shape, g.dtype)  # phases no tap reaches (s > k)
    out = jnp.stack([phases.get(q, none) for q in range(s)], axis=axis + 1)
    return lax.slice_in_dim(out.reshape(*g.shape[:axis], a * s, *g.shape[axis + 1:]), 0, length, axis=axis)


def _pool_valid_bwd(k, s, res, ct):
    """Max pooling's VJP: ct goes to the first maximum of each window in row-major order (as XLA's
    select_and_scatter and PyTorch), in two separable steps: to the window's first row holding the max
    (`di`), then within that row to its first column holding it (`dj`), both saved by the forward (int8).
    Reads no input: alone 2–4× faster than the 9-mask form that read x (itself 3.5× faster than XLA's
    select_and_scatter on CPU); level with it inside whole networks (docs/benchmarks.md, S7)."""
    dj, di, (n, h, w, c) = res
    if dj is None:
        return (jnp.zeros((n, h, w, c), ct.dtype),)
    rows = _place(ct, di, k, s, 1, h)  # n×h×ow×c: the gradient of the column maxima
    return (_place(rows, dj, k, s, 2, w),)


_pool_valid.defvjp(_pool_valid_fwd, _pool_valid_bwd)


# -- concatenation ----------------------------------------------------------------
def concat_channels(xs: list[jax.Array] | tuple[jax.Array, ...]) -> jax.Array:
    """`jnp.concatenate(xs, axis=-1)`, formulated for XLA:CPU.

    XLA's concatenation along the minor (channel) axis picks the source per element; concatenating
    g-channel groups along a new second-to-last axis (g the channels' greatest common divisor, ≥ 8) copies
    whole vectors and gives the same array: SqueezeNet's fire concatenations of two ReLU'd 28×28×128
    halves at batch 32 took 1.4 instead of 13.1 ms, 56×56×64 halves 15.6 instead of 27.8 ms.
    """
    if len(xs) == 1:
        return xs[0]
    widths = [int(x.shape[-1]) for x in xs]
    g = math.gcd(*widths)
    lead = xs[0].shape[:-1]
    if g < 8 or any(x.shape[:-1] != lead for x in xs):
        return jnp.concatenate(xs, axis=-1)
    groups = [x.reshape(*lead, w // g, g) for x, w in zip(xs, widths)]
    return jnp.concatenate(groups, axis=-2).reshape(*lead, sum(widths))


# -- convolution ------------------------------------------------------------------
_DN = ("NHWC", "HWIO", "NHWC")


def conv2d(x: jax.Array, kernel: jax.Array, bias: jax.Array | None = None, stride: int = 1, pad: int = 0,
           groups: int = 1) -> jax.Array:
    """2-D convolution, NHWC input, HWIO kernel (in/groups input channels), symmetric zero padding.

    Computes what `flax.nnx.Conv` (and `lax.conv_general_dilated`) computes, formulated
    for XLA:CPU (see the module docstring): groups run as separate convolutions, and a
    strided convolution's input gradient is a stride-1 convolution on space-to-depth blocks.

    Args:
      x: N×H×W×Cin.
      kernel: kh×kw×(Cin/groups)×Cout.
      bias: (Cout,) or None.
      stride, pad: the same in both spatial dimensions.
      groups: Cin and Cout split into this many independent groups (Caffe `group`).

    Returns:
      N×H'×W'×Cout.
    """
    if groups > 1:
        xs, ks = jnp.split(x, groups, axis=3), jnp.split(kernel, groups, axis=3)
        y = jnp.concatenate([_conv(a, b, stride, pad) for a, b in zip(xs, ks)], axis=3)
    else:
        y = _conv(x, kernel, stride, pad)
    return y if bias is None else y + bias


def _conv(x, kernel, stride, pad):
    return _conv_strided(x, kernel, stride, pad) if stride > 1 else _conv_s1(x, kernel, pad)


def _conv_plain(x, kernel, stride, pad):
    return lax.conv_general_dilated(x, kernel, (stride, stride), [(pad, pad)] * 2, dimension_numbers=_DN)


def _input_grad_s1(ct, kernel, pad):
    """Input gradient of a stride-1 convolution: ct convolved with the flipped kernel, in/out swapped.

    The swapped kernel is materialised (optimization_barrier) in HWIO order. Otherwise,
    inside a loop (the dream's lax.scan), XLA folds the swap into the convolution's
    dimension labels, which both of XLA:CPU's convolution paths run slowly (YNNPACK
    rejects them): AlexNet's dream step took 1.66 s instead of 0.68 s (Eigen).
    """
    kh, kw = kernel.shape[:2]
    swapped = lax.optimization_barrier(jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2))
    return lax.conv_general_dilated(ct, swapped, (1, 1), [(kh - 1 - pad,) * 2, (kw - 1 - pad,) * 2],
                                    dimension_numbers=_DN)


def _kernel_grad(x, kernel, stride, pad, ct):
    # As XLA derives it; dead code under jit when only the images are differentiated.
    (dk,) = jax.linear_transpose(lambda v: _conv_plain(x, v, stride, pad), kernel)(ct)
    return dk


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_s1(x, kernel, pad):
    return _conv_plain(x, kernel, 1, pad)


def _conv_s1_fwd(x, kernel, pad):
    return _conv_plain(x, kernel, 1, pad), (x, kernel)


def _conv_s1_bwd(pad, res, ct):
    x, kernel = res
    if pad > min(kernel.shape[:2]) - 1:  # the input gradient would need negative padding: XLA's own
        (dx,) = jax.linear_transpose(lambda v: _conv_plain(v, kernel, 1, pad), x)(ct)
    else:
        dx = _input_grad_s1(ct, kernel, pad)
    return dx, _kernel_grad(x, kernel, 1, pad, ct)


_conv_s1.defvjp(_conv_s1_fwd, _conv_s1_bwd)


def _s2d_geometry(x_shape, k, s, pad):
    """(kb, output h, w, blocked h, w) of the space-to-depth form."""
    h, w = x_shape[1], x_shape[2]
    kb = -(-k // s)
    oh, ow = (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1
    hb, wb = max(-(-(h + 2 * pad) // s), oh + kb - 1), max(-(-(w + 2 * pad) // s), ow + kb - 1)
    return kb, oh, ow, hb, wb


def _s2d_input(x, k, s, pad):
    """Zero-pad x and make each s×s pixel block one pixel of s·s·C channels."""
    n, h, w, c = x.shape
    _, _, _, hb, wb = _s2d_geometry(x.shape, k, s, pad)
    xp = jnp.pad(x, ((0, 0), (pad, hb * s - h - pad), (pad, wb * s - w - pad), (0, 0)))
    return xp.reshape(n, hb, s, wb, s, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, hb, wb, s * s * c)


def _s2d_kernel(kernel, s):
    """The kernel zero-padded to a multiple of s and blocked like :func:`_s2d_input`."""
    k, _, c, co = kernel.shape
    kb = -(-k // s)
    kp = jnp.pad(kernel, ((0, kb * s - k), (0, kb * s - k), (0, 0), (0, 0)))
    return kp.reshape(kb, s, kb, s, c, co).transpose(0, 2, 1, 3, 4, 5).reshape(kb, kb, s * s * c, co)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_strided(x, kernel, stride, pad):
    return _conv_plain(x, kernel, stride, pad)


def _conv_strided_fwd(x, kernel, stride, pad):
    return _conv_plain(x, kernel, stride, pad), (x, kernel)


def _conv_strided_bwd(stride, pad, res, ct):
    x, kernel = res
    # Input gradient through the space-to-depth form: a plain padded stride-1 convolution
    # on blocks (XLA's own transpose of the strided form is an input-dilated convolution),
    # then the blocks moved back to pixels.
    k = kernel.shape[0]
    kb, oh, ow, hb, wb = _s2d_geometry(x.shape, k, stride, pad)
    ct_full = jnp.pad(ct, ((0, 0), (0, hb - kb + 1 - oh), (0, wb - kb + 1 - ow), (0, 0)))
    dxb = _input_grad_s1(ct_full, _s2d_kernel(kernel, stride), 0)
    (dx,) = jax.linear_transpose(lambda v: _s2d_input(v, k, stride, pad), x)(dxb)
    return dx, _kernel_grad(x, kernel, stride, pad, ct)


_conv_strided.defvjp(_conv_strided_fwd, _conv_strided_bwd)


def global_avg_pool(x: jax.Array) -> jax.Array:
    """Mean over the spatial axes, keeping them as 1×1."""
    return jnp.mean(x, axis=(1, 2), keepdims=True)


def adaptive_avg_pool(x: jax.Array, out_hw: tuple[int, int]) -> jax.Array:
    """PyTorch's AdaptiveAvgPool2d: bin i spans [floor(i*H/o), ceil((i+1)*H/o))."""
    h, w = x.shape[1], x.shape[2]
    oh, ow = out_hw
    if (h, w) == (oh, ow):
        return x
    if h % oh == 0 and w % ow == 0:
        return x.reshape(x.shape[0], oh, h // oh, ow, w // ow, x.shape[3]).mean(axis=(2, 4))

    def bins(n, o):
        m = np.zeros((o, n), np.float32)
        for i in range(o):
            a, b = (i * n) // o, -(-((i + 1) * n) // o)
            m[i, a:b] = 1.0 / (b - a)
        return jnp.asarray(m)

    # Separable averaging matrices: exact, and a plain matmul for XLA.
    return jnp.einsum("nhwc,ih,jw->nijc", x, bins(h, oh), bins(w, ow))


def lrn(x: jax.Array, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> jax.Array:
    """Cross-channel local response normalisation, Caffe/PyTorch definition.

    b_c = a_c / (k + alpha/size * sum_{c' in window(c)} a_{c'}^2) ** beta
    """
    sq = lax.reduce_window(x * x, 0.0, lax.add, (1, 1, 1, size), (1, 1, 1, 1),
                           ((0, 0), (0, 0), (0, 0), ((size - 1) // 2, size // 2)))
    t = k + (alpha / size) * sq
    if beta == 0.75:  # AlexNet's: t**-0.75 = rsqrt(t) * sqrt(rsqrt(t)), 30 % faster (fwd + grad) than pow on CPU
        r = lax.rsqrt(t)
        return x * (r * jnp.sqrt(r))
    return x * t ** (-beta)


@jax.custom_vjp
def _guided_relu(x):
    return jnp.maximum(x, 0)


def _guided_fwd(x):
    return jnp.maximum(x, 0), x


def _guided_bwd(x, g):
    # Springenberg et al.: pass gradient only where both the input and the gradient are positive.
    return (jnp.where((x > 0) & (g > 0), g, 0.0),)


_guided_relu.defvjp(_guided_fwd, _guided_bwd)


@jax.custom_vjp
def _deconv_relu(x):
    return jnp.maximum(x, 0)


def _deconv_fwd(x):
    return jnp.maximum(x, 0), None


def _deconv_bwd(_, g):
    # Zeiler & Fergus: the backward pass is a ReLU of the gradient, ignoring the forward mask.
    return (jnp.maximum(g, 0),)


_deconv_relu.defvjp(_deconv_fwd, _deconv_bwd)


@jax.custom_vjp
def _redirected_relu(x):
    return jnp.maximum(x, 0)


def _redirected_fwd(x):
    return jnp.maximum(x, 0), x


def _redirected_bwd(x, g):
    # lucid's RedirectedReLU (g is the gradient of a loss being minimised): an image whose ReLU passes
    # no gradient at all (a dead unit) would never move; for it, let through the gradient components
    # that push a negative input up (g < 0), so optimisation can leave the dead region.
    relu_g = jnp.where(x > 0, g, 0.0)
    redirected = jnp.where((x < 0) & (g > 0), 0.0, g)
    alive = jnp.any(relu_g != 0, axis=tuple(range(1, x.ndim)), keepdims=True)
    return (jnp.where(alive, relu_g, redirected),)


_redirected_relu.defvjp(_redirected_fwd, _redirected_bwd)


@functools.cache
def relu_fn(mode: str):
    """ReLU whose backward rule is `mode`: 'standard', 'guided' (guided backprop), 'deconvnet' or
    'redirected' (lucid's RedirectedReLU, for the first steps of feature visualisation)."""
    if mode == "standard":
        return jax.nn.relu
    if mode == "redirected":
        return _redirected_relu
    if mode == "guided":
        return _guided_relu
    if mode == "deconvnet":
        return _deconv_relu
    raise ModelError(f"relu mode {mode!r} is not one of {RELU_MODES}")
