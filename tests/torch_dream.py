"""The deep dream algorithm of jaxvis.dream in PyTorch eager: the benchmark's reference.

Same network (built from the jaxvis step graph, with the same weights), same objective
(each image's mean activation of its own channel), same Laplacian Pyramid Gradient
Normalization (5-tap binomial kernel, TF 'SAME' stride-2 pyramid, per-band RMS), same
roll jitter, step and clipping, same bilinear upscaling between pyramid levels.

It lives in tests/ because the jaxvis library never imports torch and the tests never import scripts/:
tests/test_benchmark.py checks it against jaxvis, scripts/bench/dream.py (dream_timing.torch_reference)
and scripts/bench/vgg16.py time it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

_K1 = np.array([1.0, 4.0, 6.0, 4.0, 1.0], np.float32) / 16.0


class TorchNet:
    """The network of a :class:`jaxvis.Network` up to `layer`, in NCHW torch ops."""

    def __init__(self, net, layer: str, device: str = "cpu"):
        self.layer = net.layer_name(layer)
        need = net.ancestors(self.layer)
        self.steps = [s for s in net.steps if s.name in need]
        self.device = device
        self.w = {}
        from jaxvis.nets.steps import param_key
        for s in self.steps:
            if s.kind in ("conv", "fc"):
                p = net.params[param_key(s.name)]
                k, b = np.asarray(p["kernel"]), np.asarray(p["bias"])
                # jaxvis conv kernels are HWIO, torch's OIHW; fc kernels are (in, out) over NHWC-flattened inputs.
                k = k.transpose(3, 2, 0, 1) if s.kind == "conv" else k.T
                self.w[s.name] = (torch.from_numpy(np.ascontiguousarray(k)).to(device),
                                  torch.from_numpy(b.copy()).to(device))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x: N×3×H×W pixels 0..255 → the layer's activation N×C×h×w (fc: N×C×1×1)."""
        out = {}
        for s in self.steps:
            o, k = s.o, s.kind
            xs = [out[i] for i in s.inputs]
            if k == "input":
                mean = torch.tensor(o["mean"], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
                std = torch.tensor(o["std"], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
                y = (x * o["scale"] - mean) / std
            elif k == "conv":
                w, b = self.w[s.name]
                y = F.conv2d(xs[0], w, b, o.get("stride", 1), o.get("pad", 0), 1, o.get("groups", 1))
            elif k == "fc":
                w, b = self.w[s.name]
                h = xs[0].permute(0, 2, 3, 1).reshape(xs[0].shape[0], -1)
                y = F.linear(h, w, b)[:, :, None, None]
            elif k == "relu":
                y = F.relu(xs[0])
            elif k == "lrn":
                y = F.local_response_norm(xs[0], o["size"], o["alpha"], o["beta"], o["k"])
            elif k == "maxpool":
                y = F.max_pool2d(xs[0], o["kernel"], o["stride"], o.get("pad", 0), ceil_mode=o.get("ceil", False))
            elif k == "gap":
                y = xs[0].mean(dim=(2, 3), keepdim=True)
            elif k == "adaptive_avgpool":
                y = F.adaptive_avg_pool2d(xs[0], o["size"])
            elif k == "concat":
                y = torch.cat(xs, 1)
            elif k == "softmax":
                y = torch.softmax(xs[0], 1)
            else:  # dropout, output: identity at inference
                y = xs[0]
            out[s.name] = y
        return out[self.layer]


def _same(n: int) -> tuple[int, int]:
    """TF 'SAME' padding (before, after) of a 5-tap stride-2 filter on length n."""
    out = -(-n // 2)
    total = max((out - 1) * 2 + 5 - n, 0)
    return total // 2, total - total // 2


class LapNorm:
    """Laplacian Pyramid Gradient Normalization as the TF deep dream tutorial, in torch.

    The 5×5 binomial blur runs with the channels folded into the batch (one
    single-channel convolution), 17 % faster here than the tutorial's grouped one.
    `padding` 'zero' is the tutorial's; 'wrap' treats the gradient as periodic (jaxvis's
    seamless dreams), as jaxvis.engine.laplacian does.
    """

    def __init__(self, device: str = "cpu", padding: str = "zero"):
        self.k = torch.from_numpy(np.outer(_K1, _K1)).view(1, 1, 5, 5).to(device)
        if padding not in ("zero", "wrap"):
            raise ValueError(f"padding must be 'zero' or 'wrap', got {padding!r}")
        self.wrap = padding == "wrap"

    def down(self, x):
        n, c, h, w = x.shape
        (t, b), (l, r) = _same(h), _same(w)
        x = x.reshape(n * c, 1, h, w)
        y = F.conv2d(F.pad(x, (l, r, t, b), mode="circular") if self.wrap else F.pad(x, (l, r, t, b)), self.k, stride=2)
        return y.reshape(n, c, *y.shape[2:])

    def up(self, lo, like):
        n, c, h, w = like.shape
        (t, _), (l, _) = _same(h), _same(w)
        lo = lo.reshape(n * c, 1, *lo.shape[2:])
        if self.wrap:  # periodic: the low band wrapped by 2 samples a side, the transpose's output shifted by 4
            y = F.conv_transpose2d(F.pad(lo, (2, 2, 2, 2), mode="circular"), self.k * 4, stride=2)
            return y[..., 4 + t:4 + t + h, 4 + l:4 + l + w].reshape(n, c, h, w)
        y = F.conv_transpose2d(lo, self.k * 4, stride=2)
        return y[..., t:t + h, l:l + w].reshape(n, c, h, w)

    def __call__(self, g, levels: int = 4, eps: float = 1e-10):
        bands, x = [], g
        for _ in range(levels):
            lo = self.down(x)
            bands.append(x - self.up(lo, x))
            x = lo
        bands.append(x)
        bands = [b / b.square().mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(eps) for b in bands[::-1]]
        x = bands[0]
        for hi in bands[1:]:
            x = self.up(x, hi) + hi
        return x


class Seamless:
    """jaxvis.dream.seamless in torch: how the network sees the image ('pad' or 'shift' with a wrap margin).

    `geometry` is (stride, offset, receptive field) of the layer (jaxvis.dream.seamless.layer_geometry);
    `shifts(level, it)` gives the per-image circular shifts of a step ('shift'), e.g. JAX's own offsets.
    """

    def __init__(self, how: str, geometry, margin: int | None = None, shifts=None):
        from jaxvis.dream.seamless import pad_width, periodic_resize_matrix
        self.how, (self.stride, self.offset, rf) = how, geometry
        self.pad = pad_width(rf) if how == "pad" else int(margin or 0)
        self.shifts, self._resize = shifts, periodic_resize_matrix

    def __call__(self, tnet, x, level: int, it: int):
        """The layer's activation (N×C×h×w) for images x (N×3×H×W) at this step."""
        import math
        h, w = x.shape[2:]
        if self.how == "shift":
            offs = self.shifts(level, it)
            x = torch.stack([torch.roll(x[i], (int(dy), int(dx)), (1, 2)) for i, (dy, dx) in enumerate(offs)])
            hs, ws = h, w
        else:
            s = self.stride
            hs, ws = -(-h // s) * s, -(-w // s) * s
            if (hs, ws) != (h, w):
                my = torch.from_numpy(self._resize(h, hs)).to(x.device)
                mx = torch.from_numpy(self._resize(w, ws)).to(x.device)
                x = torch.einsum("yh,nchw,xw->ncyx", my, x, mx)
        p = self.pad
        act = tnet(F.pad(x, (p, p, p, p), mode="circular") if p else x)
        i0 = int(math.ceil((p - self.offset) / self.stride))
        ny, nx = (int(math.ceil((p + n - self.offset) / self.stride)) - i0 for n in (hs, ws))
        return act[:, :, i0:i0 + ny, i0:i0 + nx]


def dream(tnet: TorchNet, start: np.ndarray, channels, *, sizes, num_iterations: int, step_size: float,
          jitter: int, lap_levels: int, pixel_range=(0.0, 255.0), seed: int = 0, batch_size: int | None = None,
          seamless: Seamless | None = None):
    """Deep dream of `channels` (one image each) in torch eager; the jaxvis.dream algorithm.

    Args:
      tnet: the network.
      start: 1×H×W×3 or C×H×W×3 start pixels (NHWC, as jaxvis); H×W = sizes[0].
      channels: channel indices.
      sizes: (H, W) per pyramid level.
      num_iterations, step_size, jitter, lap_levels, pixel_range: as jaxvis.deep_dream_image.
      seed: seed of the jitter offsets (torch's generator: offsets differ from JAX's).
      batch_size: channels per batch (default all; with `seamless` 'shift' its offsets are per image of
        the whole call, so keep all channels in one batch).
      seamless: None for MATLAB's plain objective with the tutorial's zero-padded normalisation; else
        jaxvis's seamless objective with wrap-padded normalisation.

    Returns:
      (C×H'×W'×3 numpy images, levels×iterations mean strengths).
    """
    dev = tnet.device
    lap = LapNorm(dev, "zero" if seamless is None else "wrap")
    gen = torch.Generator().manual_seed(seed)
    lo, hi = pixel_range if pixel_range is not None else (-np.inf, np.inf)
    channels = list(channels)
    bs = batch_size or len(channels)
    images, strengths = [], np.zeros((len(sizes), num_iterations, len(channels)), np.float32)
    for c0 in range(0, len(channels), bs):
        ch = torch.tensor(channels[c0:c0 + bs], device=dev)
        n = len(ch)
        s0 = start if start.shape[0] == 1 else start[c0:c0 + bs]
        x = torch.from_numpy(np.ascontiguousarray(s0.transpose(0, 3, 1, 2))).to(dev).expand(n, -1, -1, -1).contiguous()
        rows = torch.arange(n, device=dev)
        for level, hw in enumerate(sizes):
            if tuple(x.shape[2:]) != tuple(hw):
                x = F.interpolate(x, size=tuple(hw), mode="bilinear", align_corners=False)
            vals = []  # kept on the device: no synchronisation inside the loop
            for it in range(num_iterations):
                dy, dx = (torch.randint(-jitter, jitter + 1, (2,), generator=gen).tolist() if jitter else (0, 0))
                xr = torch.roll(x, (dy, dx), (2, 3)).requires_grad_(True)
                act = tnet(xr) if seamless is None else seamless(tnet, xr, level, it)
                v = act[rows, ch].mean(dim=(1, 2))
                (g,) = torch.autograd.grad(v.sum(), xr)
                g = torch.roll(g, (-dy, -dx), (2, 3))
                with torch.no_grad():
                    x = (x + step_size * lap(g, lap_levels)).clamp(lo, hi)
                vals.append(v.detach())
            strengths[level, :, c0:c0 + n] = torch.stack(vals).cpu().numpy()
        images.append(x.permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(images), strengths.mean(axis=2)
