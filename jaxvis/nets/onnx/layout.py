"""Tensor records and layout bookkeeping: ONNX (NCHW) semantics, NHWC arrays at run time.

Every tensor of the graph is known at import as a :class:`Rec`: its ONNX shape and
how the run-time array is laid out relative to it. ``perm`` says run-time axis j is
ONNX axis ``perm[j]`` (so images and feature maps, NCHW in ONNX, run with perm
(0, 2, 3, 1)). Ops that move axes (Transpose, Squeeze, Unsqueeze) only change
``perm``; ops with an axis attribute map it through ``perm``. A 2-D tensor
flattened from an NHWC map keeps its features in (H, W, C) order (``feat`` = the
ONNX (C, H, W)); the Gemm/MatMul that consumes it permutes its weight rows once
at import, so the ONNX flatten order never costs a transpose at run time.

How a tensor is *shown* to jaxvis's tools (N×H×W×C) is a separate matter: a 4-D tensor is
NCHW in ONNX unless its record says channels last (``cl``: a tf2onnx/Keras NHWC input and
what is computed from it before its Transpose to NCHW), and a 3-D token tensor of a vision
transformer (``grid``) is shown as its h×w patch tokens (class tokens aside).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

NCHW_TO_NHWC = (0, 2, 3, 1)


@dataclasses.dataclass(frozen=True)
class Rec:
    """A tensor at import time.

    Attributes:
      name: ONNX tensor name.
      shape: ONNX shape (batch 1 at import).
      perm: run-time axis j holds ONNX axis perm[j].
      feat: for 2-D [N, C·H·W] held in NHWC flatten order, the ONNX (C, H, W); else None.
      const: the value when known at import (folded), in ONNX layout; None for run-time tensors.
      cl: a 4-D tensor whose ONNX axes are N, H, W, C (channels last), shown as it is.
      grid: a 3-D token tensor shown as a map: (token axis, leading tokens skipped, h, w).
    """

    name: str
    shape: tuple[int, ...]
    perm: tuple[int, ...]
    feat: tuple[int, int, int] | None = None
    const: np.ndarray | None = None
    cl: bool = False
    grid: tuple[int, int, int, int] | None = None

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_const(self) -> bool:
        return self.const is not None

    @property
    def canonical(self) -> bool:
        return self.feat is None and self.perm == tuple(range(self.rank))

    def axis(self, onnx_axis: int) -> int:
        """Run-time axis holding ONNX axis `onnx_axis` (negative counts from the end)."""
        return self.perm.index(onnx_axis % self.rank)


def identity(rank: int) -> tuple[int, ...]:
    return tuple(range(rank))


def default_perm(rank: int) -> tuple[int, ...]:
    """Layout for a new tensor of this rank: NHWC for 4-D feature maps, ONNX order otherwise."""
    return NCHW_TO_NHWC if rank == 4 else identity(rank)


def feat_order(feat: tuple[int, int, int]) -> np.ndarray:
    """ONNX feature index of each run-time (H, W, C-ordered) feature."""
    c, h, w = feat
    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).ravel()


def relayout(x, have: tuple[int, ...], want: tuple[int, ...]):
    """Run-time array with ONNX-relative layout `have` rearranged to layout `want`."""
    if have == want:
        return x
    return jnp.transpose(x, [have.index(a) for a in want])


def to_layout(x, rec: Rec, want: tuple[int, ...]):
    """The run-time value of `rec` in layout `want` (undoing a feature-order flatten first)."""
    if rec.feat is not None:
        c, h, w = rec.feat
        x = x.reshape(x.shape[0], h, w, c).transpose(0, 3, 1, 2).reshape(x.shape[0], -1)
        return relayout(x, identity(2), want)
    return relayout(x, rec.perm, want)


def canonical(x, rec: Rec):
    """The run-time value of `rec` in ONNX layout."""
    return to_layout(x, rec, identity(rec.rank))


def shown_perm(rec: Rec) -> tuple[int, ...]:
    """ONNX axes of a 4-D tensor in the N×H×W×C order it is shown in."""
    return identity(4) if rec.cl else NCHW_TO_NHWC


def shown_shape(rec: Rec) -> tuple[int, ...]:
    """The shape (batch 1) a tensor is shown in: N×H×W×C for maps and token grids, N×C·… for the rest."""
    if rec.rank == 4:
        return tuple(rec.shape[a] for a in shown_perm(rec))
    if rec.grid is not None:
        axis, _, h, w = rec.grid
        return (rec.shape[0], h, w, rec.shape[3 - axis])
    return (rec.shape[0] if rec.rank else 1, *rec.shape[1:])


def to_nhwc(x, rec: Rec):
    """An activation as jaxvis returns it: 4-D as N×H×W×C, token grids as N×h×w×C, others as
    N×1×1×(features in ONNX order)."""
    if rec.rank == 4:
        return to_layout(x, rec, shown_perm(rec))
    x = canonical(x, rec)
    if rec.grid is not None:
        axis, skip, h, w = rec.grid
        x = x if axis == 1 else jnp.swapaxes(x, 1, 2)
        return x[:, skip:skip + h * w].reshape(x.shape[0], h, w, x.shape[2])
    return x.reshape(x.shape[0], 1, 1, -1) if x.ndim else x.reshape(1, 1, 1, 1)


def from_nhwc(t, rec: Rec):
    """A tap given like :func:`to_nhwc`'s output, in `rec`'s run-time layout."""
    if rec.rank == 4:
        return relayout(t, shown_perm(rec), rec.perm)
    if rec.grid is not None:  # the h×w tokens; the skipped (class) tokens get no tap
        axis, skip, h, w = rec.grid
        n, c = t.shape[0], t.shape[3]
        tokens = t.reshape(n, h * w, c)
        full = jnp.pad(tokens, ((0, 0), (skip, rec.shape[axis] - skip - h * w), (0, 0)))
        return relayout(full if axis == 1 else jnp.swapaxes(full, 1, 2), identity(3), rec.perm)
    if rec.feat is not None:
        return t.reshape(t.shape[0], -1)[:, feat_order(rec.feat)]
    n = t.shape[0]
    onnx_shape = (n,) + tuple(rec.shape[1:]) if rec.rank else ()
    return relayout(t.reshape(onnx_shape), identity(rec.rank), rec.perm)


def onnx_shape(runtime_shape, perm: tuple[int, ...], feat) -> tuple[int, ...]:
    """ONNX shape of a run-time array laid out by `perm`."""
    if feat is not None:
        return tuple(runtime_shape)
    out = [0] * len(perm)
    for j, a in enumerate(perm):
        out[a] = int(runtime_shape[j])
    return tuple(out)


def bcast_const(c: np.ndarray, rank: int, perm: tuple[int, ...], feat=None) -> np.ndarray:
    """An ONNX-layout constant broadcast against a rank-`rank` tensor, in that tensor's run-time layout."""
    c = np.asarray(c)
    c = c.reshape((1,) * (rank - c.ndim) + c.shape)
    if feat is not None and c.shape[-1] > 1:
        return c[..., feat_order(feat)]
    return np.ascontiguousarray(c.transpose(perm))
