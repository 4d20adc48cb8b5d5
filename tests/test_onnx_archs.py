"""torchvision's classification CNNs in plain torch.nn (torchvision itself does not load here), for ONNX export.

Written after torchvision's definitions (same modules, same forward order, so the same
ONNX graphs); weights are seeded random. Test-only: imported by tests/test_onnx*.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def alexnet(num_classes=1000):
    m = nn.Module()
    m.features = nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(inplace=True), nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))
    m.avgpool = nn.AdaptiveAvgPool2d((6, 6))
    m.classifier = nn.Sequential(nn.Dropout(0.5), nn.Linear(256 * 36, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
                                 nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Linear(4096, num_classes))
    return _Seq(m, lambda s, x: s.classifier(torch.flatten(s.avgpool(s.features(x)), 1)))


class _Seq(nn.Module):
    def __init__(self, body, fwd):
        super().__init__()
        self.body, self._fwd = body, fwd

    def forward(self, x):
        return self._fwd(self.body, x)


class Fire(nn.Module):
    def __init__(self, cin, sq, e1, e3):
        super().__init__()
        self.squeeze, self.squeeze_activation = nn.Conv2d(cin, sq, 1), nn.ReLU(inplace=True)
        self.expand1x1, self.expand1x1_activation = nn.Conv2d(sq, e1, 1), nn.ReLU(inplace=True)
        self.expand3x3, self.expand3x3_activation = nn.Conv2d(sq, e3, 3, padding=1), nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)), self.expand3x3_activation(self.expand3x3(x))], 1)


def squeezenet1_1(num_classes=1000):
    m = nn.Module()
    m.features = nn.Sequential(
        nn.Conv2d(3, 64, 3, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, ceil_mode=True),
        Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), nn.MaxPool2d(3, 2, ceil_mode=True),
        Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), nn.MaxPool2d(3, 2, ceil_mode=True),
        Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256), Fire(512, 64, 256, 256))
    m.classifier = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(512, num_classes, 1), nn.ReLU(inplace=True),
                                 nn.AdaptiveAvgPool2d((1, 1)))
    return _Seq(m, lambda s, x: torch.flatten(s.classifier(s.features(x)), 1))


class BasicBlock(nn.Module):
    def __init__(self, cin, c, stride=1):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, c, 3, stride, 1, bias=False), nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, c, 1, stride, bias=False), nn.BatchNorm2d(c))
                           if stride != 1 or cin != c else None)

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + idt)


class ResNet18(nn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64)
        self.relu, self.maxpool = nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256))
        self.layer4 = nn.Sequential(BasicBlock(256, 512, 2), BasicBlock(512, 512))
        self.avgpool, self.fc = nn.AdaptiveAvgPool2d((1, 1)), nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(num_classes=1000):
    return ResNet18(num_classes)


class Bottleneck(nn.Module):
    def __init__(self, cin, c, stride=1):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, c, 1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, stride, 1, bias=False), nn.BatchNorm2d(c)
        self.conv3, self.bn3 = nn.Conv2d(c, 4 * c, 1, bias=False), nn.BatchNorm2d(4 * c)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, 4 * c, 1, stride, bias=False), nn.BatchNorm2d(4 * c))
                           if stride != 1 or cin != 4 * c else None)

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + idt)


class ResNet50(ResNet18):
    """torchvision's resnet50 (v1.5: the stride on the 3×3 convolution), 25.6 M parameters, 4.1 GMAC at 224."""

    def __init__(self, num_classes=1000):
        super().__init__(num_classes)
        blocks, cin = [], 64
        for c, n, s in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            blocks.append(nn.Sequential(*[Bottleneck(cin if i == 0 else 4 * c, c, s if i == 0 else 1)
                                          for i in range(n)]))
            cin = 4 * c
        self.layer1, self.layer2, self.layer3, self.layer4 = blocks
        self.fc = nn.Linear(2048, num_classes)


def resnet50(num_classes=1000):
    return ResNet50(num_classes)


def _cbr(cin, cout, k=3, s=1, g=1, act=nn.ReLU6):
    layers = [nn.Conv2d(cin, cout, k, s, (k - 1) // 2, groups=g, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, act(inplace=True)) if act is not None else nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, s, t):
        super().__init__()
        hid = cin * t
        self.use_res = s == 1 and cin == cout
        layers = [_cbr(cin, hid, 1)] if t != 1 else []
        self.conv = nn.Sequential(*layers, _cbr(hid, hid, 3, s, hid), nn.Conv2d(hid, cout, 1, bias=False),
                                  nn.BatchNorm2d(cout))

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


def mobilenet_v2(num_classes=1000):
    cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    feats, cin = [_cbr(3, 32, 3, 2)], 32
    for t, c, n, s in cfg:
        for i in range(n):
            feats.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
            cin = c
    feats.append(_cbr(cin, 1280, 1))
    m = nn.Module()
    m.features = nn.Sequential(*feats)
    m.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))
    return _Seq(m, lambda s, x: s.classifier(torch.flatten(F.adaptive_avg_pool2d(s.features(x), (1, 1)), 1)))


def _div8(v):
    n = max(8, int(v + 4) // 8 * 8)
    return n + 8 if n < 0.9 * v else n


class SqueezeExcitation(nn.Module):
    def __init__(self, c, sq, act=nn.ReLU, scale=nn.Hardsigmoid):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1, self.fc2 = nn.Conv2d(c, sq, 1), nn.Conv2d(sq, c, 1)
        self.activation, self.scale_activation = act(), scale()

    def forward(self, x):
        return self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x))))) * x


class MBv3Block(nn.Module):
    def __init__(self, cin, k, exp, cout, se, hs, s):
        super().__init__()
        act = nn.Hardswish if hs else nn.ReLU
        self.use_res = s == 1 and cin == cout
        layers = [_cbr(cin, exp, 1, act=act)] if exp != cin else []
        layers.append(_cbr(exp, exp, k, s, exp, act=act))
        if se:
            layers.append(SqueezeExcitation(exp, _div8(exp // 4)))
        layers.append(_cbr(exp, cout, 1, act=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        y = self.block(x)
        return y + x if self.use_res else y


def mobilenet_v3_small(num_classes=1000):
    cfg = [(16, 3, 16, 16, True, False, 2), (16, 3, 72, 24, False, False, 2), (24, 3, 88, 24, False, False, 1),
           (24, 5, 96, 40, True, True, 2), (40, 5, 240, 40, True, True, 1), (40, 5, 240, 40, True, True, 1),
           (40, 5, 120, 48, True, True, 1), (48, 5, 144, 48, True, True, 1), (48, 5, 288, 96, True, True, 2),
           (96, 5, 576, 96, True, True, 1), (96, 5, 576, 96, True, True, 1)]
    m = nn.Module()
    m.features = nn.Sequential(_cbr(3, 16, 3, 2, act=nn.Hardswish), *[MBv3Block(*c) for c in cfg],
                               _cbr(96, 576, 1, act=nn.Hardswish))
    m.avgpool = nn.AdaptiveAvgPool2d(1)
    m.classifier = nn.Sequential(nn.Linear(576, 1024), nn.Hardswish(inplace=True), nn.Dropout(0.2),
                                 nn.Linear(1024, num_classes))
    return _Seq(m, lambda s, x: s.classifier(torch.flatten(s.avgpool(s.features(x)), 1)))


class BasicConv2d(nn.Module):
    def __init__(self, cin, cout, **kw):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(cin, cout, bias=False, **kw), nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    def __init__(self, cin, c1, c3r, c3, c5r, c5, pp):
        super().__init__()
        self.branch1 = BasicConv2d(cin, c1, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(cin, c3r, kernel_size=1), BasicConv2d(c3r, c3, kernel_size=3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(cin, c5r, kernel_size=1), BasicConv2d(c5r, c5, kernel_size=3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), BasicConv2d(cin, pp, kernel_size=1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class GoogLeNet(nn.Module):
    """torchvision googlenet(aux_logits=False, transform_input=False)."""

    def __init__(self, num_classes=1000):
        super().__init__()
        self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)
        self.avgpool, self.dropout = nn.AdaptiveAvgPool2d((1, 1)), nn.Dropout(0.2)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x):
        x = self.maxpool2(self.conv3(self.conv2(self.maxpool1(self.conv1(x)))))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        for n in ("4a", "4b", "4c", "4d", "4e"):
            x = getattr(self, "inception" + n)(x)
        x = self.inception5b(self.inception5a(self.maxpool4(x)))
        return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))


def googlenet(num_classes=1000):
    return GoogLeNet(num_classes)


class DenseLayer(nn.Module):
    def __init__(self, cin, growth, bn_size):
        super().__init__()
        self.norm1, self.relu1 = nn.BatchNorm2d(cin), nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, bn_size * growth, 1, bias=False)
        self.norm2, self.relu2 = nn.BatchNorm2d(bn_size * growth), nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

    def forward(self, feats):
        x = torch.cat(feats, 1)
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class DenseBlock(nn.ModuleDict):
    def __init__(self, n, cin, growth, bn_size):
        super().__init__({f"denselayer{i + 1}": DenseLayer(cin + i * growth, growth, bn_size) for i in range(n)})

    def forward(self, x):
        feats = [x]
        for layer in self.values():
            feats.append(layer(feats))
        return torch.cat(feats, 1)


def densenet121(num_classes=1000, growth=32, cfg=(6, 12, 24, 16), init=64):
    layers = [("conv0", nn.Conv2d(3, init, 7, 2, 3, bias=False)), ("norm0", nn.BatchNorm2d(init)),
              ("relu0", nn.ReLU(inplace=True)), ("pool0", nn.MaxPool2d(3, 2, 1))]
    c = init
    for i, n in enumerate(cfg):
        layers.append((f"denseblock{i + 1}", DenseBlock(n, c, growth, 4)))
        c += n * growth
        if i != len(cfg) - 1:
            layers.append((f"transition{i + 1}", nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                                                               nn.Conv2d(c, c // 2, 1, bias=False),
                                                               nn.AvgPool2d(2, 2))))
            c //= 2
    layers.append(("norm5", nn.BatchNorm2d(c)))
    m = nn.Module()
    m.features = nn.Sequential(*[l for _, l in layers])
    m.classifier = nn.Linear(c, num_classes)
    return _Seq(m, lambda s, x: s.classifier(torch.flatten(F.adaptive_avg_pool2d(F.relu(s.features(x)), (1, 1)), 1)))


class MBConv(nn.Module):
    def __init__(self, cin, cout, k, s, e):
        super().__init__()
        exp = cin * e
        self.use_res = s == 1 and cin == cout
        layers = [_cbr(cin, exp, 1, act=nn.SiLU)] if exp != cin else []
        layers += [_cbr(exp, exp, k, s, exp, act=nn.SiLU),
                   SqueezeExcitation(exp, max(1, cin // 4), act=nn.SiLU, scale=nn.Sigmoid),
                   _cbr(exp, cout, 1, act=None)]
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        y = self.block(x)
        return y + x if self.use_res else y  # stochastic depth is the identity in eval


def efficientnet_b0(num_classes=1000):
    cfg = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
           (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]
    feats = [_cbr(3, 32, 3, 2, act=nn.SiLU)]
    for e, k, s, cin, cout, n in cfg:
        for i in range(n):
            feats.append(MBConv(cin if i == 0 else cout, cout, k, s if i == 0 else 1, e))
    feats.append(_cbr(320, 1280, 1, act=nn.SiLU))
    m = nn.Module()
    m.features, m.avgpool = nn.Sequential(*feats), nn.AdaptiveAvgPool2d(1)
    m.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))
    return _Seq(m, lambda s, x: s.classifier(torch.flatten(s.avgpool(s.features(x)), 1)))


def vgg11_bn(num_classes=1000):
    feats, cin = [], 3
    for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"):
        if v == "M":
            feats.append(nn.MaxPool2d(2, 2))
        else:
            feats += [nn.Conv2d(cin, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
            cin = v
    m = nn.Module()
    m.features, m.avgpool = nn.Sequential(*feats), nn.AdaptiveAvgPool2d((7, 7))
    m.classifier = nn.Sequential(nn.Linear(512 * 49, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, 4096),
                                 nn.ReLU(True), nn.Dropout(), nn.Linear(4096, num_classes))
    return _Seq(m, lambda s, x: s.classifier(torch.flatten(s.avgpool(s.features(x)), 1)))


ARCHS = {f.__name__: f for f in (alexnet, squeezenet1_1, resnet18, mobilenet_v2, mobilenet_v3_small, googlenet,
                                 densenet121, efficientnet_b0, vgg11_bn, resnet50)}


def seeded(arch: str, seed: int = 0, num_classes: int = 1000) -> nn.Module:
    """Architecture with seeded random weights and non-trivial BN statistics, in eval mode."""
    torch.manual_seed(seed)
    m = ARCHS[arch](num_classes)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
            nn.init.uniform_(mod.weight, 0.5, 1.5)
            nn.init.uniform_(mod.bias, -0.1, 0.1)
        elif isinstance(mod, nn.Conv2d):  # variance-preserving, so deep nets keep a usable scale
            nn.init.normal_(mod.weight, 0, math.sqrt(2.0 / (mod.weight[0].numel())))
    return m.eval()
