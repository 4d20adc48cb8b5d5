"""An independent PyTorch SqueezeNet v1.1 holding jaxvis's shipped weights (tests and benchmarks only).

Written from the architecture (Iandola et al.; torchvision `squeezenet1_1`), not from
jaxvis's step graph: conv1 3×3/2 64 → 3×3/2 ceil-mode max pool → fire2, fire3 → pool →
fire4, fire5 → pool → fire6..fire9 → conv10 1×1 1000 → ReLU → global average.
Weights: jaxvis kernels are HWIO → torch OIHW; jaxvis's conv1 takes RGB, and the Caffe
mean (R, G, B) = (123, 117, 104) is subtracted from 0..255 pixels.
ReLUs are separate non-inplace modules so backward hooks can rewrite their gradients
(the classic guided-backprop / deconvnet implementation).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

MEAN_RGB = (123.0, 117.0, 104.0)
FIRES = {2: (64, 16, 64), 3: (128, 16, 64), 4: (128, 32, 128), 5: (256, 32, 128),
         6: (256, 48, 192), 7: (384, 48, 192), 8: (384, 64, 256), 9: (512, 64, 256)}


class Fire(nn.Module):
    def __init__(self, cin, sq, ex):
        super().__init__()
        self.squeeze, self.expand1x1, self.expand3x3 = nn.Conv2d(cin, sq, 1), nn.Conv2d(sq, ex, 1), nn.Conv2d(sq, ex, 3, padding=1)
        self.r_s, self.r_1, self.r_3 = nn.ReLU(), nn.ReLU(), nn.ReLU()

    def forward(self, x):
        s = self.r_s(self.squeeze(x))
        return torch.cat([self.r_1(self.expand1x1(s)), self.r_3(self.expand3x3(s))], 1)


class SqueezeNet11(nn.Module):
    """Input: N×3×H×W RGB pixels in 0..255. Output: N×1000 pre-softmax scores (pool10)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN_RGB).view(1, 3, 1, 1))
        self.conv1, self.relu1 = nn.Conv2d(3, 64, 3, stride=2), nn.ReLU()
        self.fires = nn.ModuleDict({str(n): Fire(*FIRES[n]) for n in FIRES})
        self.conv10, self.relu10 = nn.Conv2d(512, 1000, 1), nn.ReLU()
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)

    def features(self, x):
        x = self.pool(self.relu1(self.conv1(x - self.mean)))
        for n in (2, 3):
            x = self.fires[str(n)](x)
        x = self.pool(x)
        for n in (4, 5):
            x = self.fires[str(n)](x)
        x = self.pool(x)
        for n in (6, 7, 8, 9):
            x = self.fires[str(n)](x)
        return x

    def forward(self, x):
        return self.relu10(self.conv10(self.features(x))).mean(dim=(2, 3))


def from_jaxvis(params: dict) -> SqueezeNet11:
    """SqueezeNet11 with the weights of `jaxvis.load_model('squeezenet').params`."""
    m = SqueezeNet11().eval()

    def put(conv, name):
        p = params[name]
        conv.weight.data = torch.from_numpy(np.ascontiguousarray(np.transpose(np.asarray(p["kernel"]), (3, 2, 0, 1))))
        conv.bias.data = torch.from_numpy(np.asarray(p["bias"]).copy())

    put(m.conv1, "conv1")
    put(m.conv10, "conv10")
    for n, f in m.fires.items():
        put(f.squeeze, f"fire{n}_squeeze1x1")
        put(f.expand1x1, f"fire{n}_expand1x1")
        put(f.expand3x3, f"fire{n}_expand3x3")
    return m


def relu_hooks(model: nn.Module, rule: str) -> list:
    """Backward hooks on every nn.ReLU: 'guided' (grad_in clamped ≥ 0) or 'deconvnet' (grad_out clamped ≥ 0)."""
    def guided(_, grad_in, grad_out):
        return (grad_in[0].clamp(min=0),)

    def deconv(_, grad_in, grad_out):
        return (grad_out[0].clamp(min=0),)

    hook = {"guided": guided, "deconvnet": deconv}[rule]
    return [m.register_full_backward_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]


def input_gradient(model: nn.Module, image_hwc: np.ndarray, cls: int) -> np.ndarray:
    """∂ score[cls] / ∂ image for one H×W×3 image, returned H×W×3."""
    dtype = next(model.parameters()).dtype  # float64 models give a reference free of float32 rounding
    x = torch.from_numpy(np.ascontiguousarray(image_hwc.transpose(2, 0, 1)[None])).to(dtype).requires_grad_(True)
    model(x)[0, cls].backward()
    return x.grad[0].numpy().transpose(1, 2, 0)
