"""The tests' PyTorch reference networks, in plain torch (tests and benchmarks only; torchvision does
not import beside torch 2.13 here).

* `SqueezeNet`, `AlexNet`, `BVLCAlexNet`: written from the published architectures (torchvision,
  Caffe), not from jaxvis's step graph. State-dict keys match torchvision's, so
  `torch.save(m.state_dict())` gives the same file layout as the real torchvision checkpoints.
  `forward_all` returns every layer under jaxvis's (MATLAB-style) names, NHWC, for
  layer-by-layer parity. Every ReLU is its own non-inplace `nn.ReLU` module, so backward hooks
  (guided backprop, deconvnet) and captum's ReLU-overriding methods apply to all of them.
* `squeezenet_from_jaxvis(params)`: SqueezeNet v1.1 holding jaxvis's shipped weights, taking
  0..255 RGB pixels (jaxvis's input) and returning the pre-softmax class scores.
* `TinyCNN` / `tiny_cnn_from_params`: the attribution tests' small network, built from the
  same arrays as their JAX function.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

FIRES = {"1_1": [(64, 16, 64), (128, 16, 64), "P", (128, 32, 128), (256, 32, 128), "P",
                 (256, 48, 192), (384, 48, 192), (384, 64, 256), (512, 64, 256)],
         "1_0": [(96, 16, 64), (128, 16, 64), (128, 32, 128), "P", (256, 32, 128), (256, 48, 192),
                 (384, 48, 192), (384, 64, 256), "P", (512, 64, 256)]}
POOL_NAMES = {"1_1": ["pool1", "pool3", "pool5"], "1_0": ["pool1", "pool4", "pool8"]}


class Fire(nn.Module):
    def __init__(self, cin, sq, ex):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, sq, 1)
        self.expand1x1 = nn.Conv2d(sq, ex, 1)
        self.expand3x3 = nn.Conv2d(sq, ex, 3, padding=1)
        # torchvision's names; parameter-free, so the state dict is unchanged.
        self.squeeze_activation, self.expand1x1_activation, self.expand3x3_activation = nn.ReLU(), nn.ReLU(), nn.ReLU()

    def forward(self, x):
        s = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(s)), self.expand3x3_activation(self.expand3x3(s))], 1)


class SqueezeNet(nn.Module):
    def __init__(self, version="1_1"):
        super().__init__()
        self.version = version
        first = nn.Conv2d(3, 64, 3, stride=2) if version == "1_1" else nn.Conv2d(3, 96, 7, stride=2)
        layers = [first, nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True)]
        for f in FIRES[version]:
            layers.append(nn.MaxPool2d(3, 2, ceil_mode=True) if f == "P" else Fire(*f))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(), nn.Conv2d(512, 1000, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))

    def forward(self, x):
        """Pre-softmax class scores N×1000 (torchvision's forward; dropout is off in eval mode)."""
        return torch.flatten(self.classifier(self.features(x)), 1)

    def forward_all(self, x):
        out = {}
        x = out["conv1"] = self.features[0](x)
        x = out["relu_conv1"] = self.features[1](x)
        pools, n = iter(POOL_NAMES[self.version]), 2
        for m in self.features[2:]:
            if isinstance(m, nn.MaxPool2d):
                x = out[next(pools)] = m(x)
                continue
            p = f"fire{n}-"
            s = out[p + "squeeze1x1"] = m.squeeze(x)
            s = out[p + "relu_squeeze1x1"] = m.squeeze_activation(s)
            e1 = out[p + "expand1x1"] = m.expand1x1(s)
            e1 = out[p + "relu_expand1x1"] = m.expand1x1_activation(e1)
            e3 = out[p + "expand3x3"] = m.expand3x3(s)
            e3 = out[p + "relu_expand3x3"] = m.expand3x3_activation(e3)
            x = out[p + "concat"] = torch.cat([e1, e3], 1)
            n += 1
        out["drop9"] = x
        x = out["conv10"] = self.classifier[1](x)
        x = out["relu_conv10"] = self.classifier[2](x)
        x = out["pool10"] = x.mean((2, 3), keepdim=True)
        out["prob"] = out["output"] = torch.softmax(x, 1)
        return {k: v.permute(0, 2, 3, 1) for k, v in out.items()}


class AlexNet(nn.Module):
    """torchvision AlexNet: features / avgpool / classifier with torchvision's indices."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(), nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(nn.Dropout(), nn.Linear(9216, 4096), nn.ReLU(), nn.Dropout(),
                                        nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 1000))

    NAMES = ("conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "conv3", "relu3", "conv4", "relu4",
             "conv5", "relu5", "pool5")

    def forward_all(self, x):
        out = {}
        for name, m in zip(self.NAMES, self.features):
            x = out[name] = m(x)
        x = out["avgpool"] = out["drop6"] = self.avgpool(x)  # dropout is the identity at inference
        x = torch.flatten(x, 1)
        for name, m in zip(["fc6", "relu6", "drop7", "fc7", "relu7", "fc8"], self.classifier[1:]):
            x = out[name] = m(x)
        out["prob"] = out["output"] = torch.softmax(x, 1)
        return {k: (v.permute(0, 2, 3, 1) if v.ndim == 4 else v[:, None, None, :]) for k, v in out.items()}


class BVLCAlexNet(nn.Module):
    """BVLC Caffe AlexNet (MATLAB's): LRN, two-group conv2/4/5, ceil-mode pools; input BGR minus mean."""

    NAMES = ("conv1", "relu1", "norm1", "pool1", "conv2", "relu2", "norm2", "pool2", "conv3", "relu3",
             "conv4", "relu4", "conv5", "relu5", "pool5")

    def __init__(self):
        super().__init__()
        lrn = lambda: nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, 11, 4), nn.ReLU(), lrn(), pool(),
            nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(), lrn(), pool(),
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(), pool())
        self.fc6, self.fc7, self.fc8 = nn.Linear(9216, 4096), nn.Linear(4096, 4096), nn.Linear(4096, 1000)

    def forward_all(self, x):
        out = {}
        for name, m in zip(self.NAMES, self.features):
            x = out[name] = m(x)
        x = torch.flatten(x, 1)
        for n in (6, 7):
            x = out[f"fc{n}"] = getattr(self, f"fc{n}")(x)
            x = out[f"relu{n}"] = out[f"drop{n}"] = torch.relu(x)
        x = out["fc8"] = self.fc8(x)
        out["prob"] = out["output"] = torch.softmax(x, 1)
        return {k: (v.permute(0, 2, 3, 1) if v.ndim == 4 else v[:, None, None, :]) for k, v in out.items()}

    def caffe_layers(self):
        """(name, type, [weight, bias]) in Caffe's layout for `encode_caffemodel`."""
        convs = [m for m in self.features if isinstance(m, nn.Conv2d)]
        rows = [(f"conv{i + 1}", "Convolution", [c.weight.detach().numpy(), c.bias.detach().numpy()])
                for i, c in enumerate(convs)]
        rows += [(f"fc{n}", "InnerProduct", [getattr(self, f"fc{n}").weight.detach().numpy(),
                                             getattr(self, f"fc{n}").bias.detach().numpy()]) for n in (6, 7, 8)]
        return rows


# ----------------------------------------------------------------------- jaxvis weights in torch
MEAN_RGB = (123.0, 117.0, 104.0)  # the shipped SqueezeNet's Caffe mean, RGB order


class Pixels(nn.Module):
    """`net(x − mean)`: takes N×3×H×W RGB pixels in 0..255, as jaxvis networks do."""

    def __init__(self, net: nn.Module, mean=MEAN_RGB):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))

    def forward(self, x):
        return self.net(x - self.mean.to(x.dtype))


def _put(conv: nn.Conv2d, p: dict) -> None:
    # jaxvis kernels are HWIO, torch's OIHW.
    conv.weight.data = torch.from_numpy(np.ascontiguousarray(np.transpose(np.asarray(p["kernel"]), (3, 2, 0, 1))))
    conv.bias.data = torch.from_numpy(np.asarray(p["bias"]).copy())


def squeezenet_from_jaxvis(params: dict) -> Pixels:
    """SqueezeNet v1.1 with the weights of `jaxvis.load_model('squeezenet').params` (RGB conv1;
    the Caffe mean is subtracted from 0..255 pixels). `.net.classifier[2]` is relu_conv10."""
    m = SqueezeNet("1_1")
    _put(m.features[0], params["conv1"])
    _put(m.classifier[1], params["conv10"])
    fires = [f for f in m.features if isinstance(f, Fire)]
    for n, f in enumerate(fires, start=2):
        _put(f.squeeze, params[f"fire{n}-squeeze1x1"])
        _put(f.expand1x1, params[f"fire{n}-expand1x1"])
        _put(f.expand3x3, params[f"fire{n}-expand3x3"])
    return Pixels(m).eval()


class TinyCNN(nn.Module):
    """conv3×3 → ReLU → maxpool 2 → conv3×3 → ReLU ('feat') → conv1×1 → ReLU → spatial mean ('logits')."""

    def __init__(self, cin=3, mid=6, out=4):
        super().__init__()
        self.c1, self.r1 = nn.Conv2d(cin, mid, 3, padding=1), nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.c2, self.feat = nn.Conv2d(mid, mid, 3, padding=1), nn.ReLU()
        self.c3, self.r3 = nn.Conv2d(mid, out, 1), nn.ReLU()

    def forward(self, x):
        h = self.feat(self.c2(self.pool(self.r1(self.c1(x)))))
        return self.r3(self.c3(h)).mean(dim=(2, 3))


def tiny_cnn_from_params(p: dict) -> TinyCNN:
    """TinyCNN with the arrays {'w1', 'b1', 'w2', 'b2', 'w3', 'b3'} (HWIO kernels) of the tests' JAX twin."""
    m = TinyCNN(p["w1"].shape[2], p["w1"].shape[3], p["w3"].shape[3])
    for conv, w, b in ((m.c1, "w1", "b1"), (m.c2, "w2", "b2"), (m.c3, "w3", "b3")):
        _put(conv, {"kernel": p[w], "bias": p[b]})
    return m.eval()


# ----------------------------------------------------------------------- gradients with hooks
def relu_hooks(model: nn.Module, rule: str) -> list:
    """Backward hooks on every nn.ReLU: 'guided' (grad_in clamped ≥ 0) or 'deconvnet' (grad_out clamped ≥ 0)."""
    def guided(_, grad_in, grad_out):
        return (grad_in[0].clamp(min=0),)

    def deconv(_, grad_in, grad_out):
        return (grad_out[0].clamp(min=0),)

    hook = {"guided": guided, "deconvnet": deconv}[rule]
    return [m.register_full_backward_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]


def input_gradient(model: nn.Module, image_hwc: np.ndarray, cls: int) -> np.ndarray:
    """∂ score[cls] / ∂ image for one H×W×3 image, returned H×W×3 (in the model's dtype)."""
    dtype = next(model.parameters()).dtype  # float64 models give a reference free of float32 rounding
    x = torch.from_numpy(np.ascontiguousarray(image_hwc.transpose(2, 0, 1)[None])).to(dtype).requires_grad_(True)
    model(x)[0, cls].backward()
    return x.grad[0].numpy().transpose(1, 2, 0)
