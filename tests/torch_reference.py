"""Reference torchvision-architecture networks in plain torch (tests only; torchvision does not
import beside torch 2.13 here). State-dict keys match torchvision's, so `torch.save(m.state_dict())`
gives the same file layout as the real torchvision checkpoints. `forward_all` returns every
layer under jaxvis's (MATLAB-style) names, NHWC, for layer-by-layer parity."""

from __future__ import annotations

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

    def forward_all(self, x):
        out, relu = {}, torch.relu
        x = out["conv1"] = self.features[0](x)
        x = out["relu_conv1"] = relu(x)
        pools, n = iter(POOL_NAMES[self.version]), 2
        for m in self.features[2:]:
            if isinstance(m, nn.MaxPool2d):
                x = out[next(pools)] = m(x)
                continue
            p = f"fire{n}-"
            s = out[p + "squeeze1x1"] = m.squeeze(x)
            s = out[p + "relu_squeeze1x1"] = relu(s)
            e1 = out[p + "expand1x1"] = m.expand1x1(s)
            e1 = out[p + "relu_expand1x1"] = relu(e1)
            e3 = out[p + "expand3x3"] = m.expand3x3(s)
            e3 = out[p + "relu_expand3x3"] = relu(e3)
            x = out[p + "concat"] = torch.cat([e1, e3], 1)
            n += 1
        out["drop9"] = x
        x = out["conv10"] = self.classifier[1](x)
        x = out["relu_conv10"] = relu(x)
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

    NAMES = ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "conv3", "relu3", "conv4", "relu4",
             "conv5", "relu5", "pool5"]

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

    NAMES = ["conv1", "relu1", "norm1", "pool1", "conv2", "relu2", "norm2", "pool2", "conv3", "relu3",
             "conv4", "relu4", "conv5", "relu5", "pool5"]

    def __init__(self):
        super().__init__()
        lrn = lambda: nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)  # noqa: E731
        pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)  # noqa: E731
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
