"""AlexNet as step graphs: torchvision's single-tower variant and BVLC's (= MATLAB's).

torchvision: 64-channel conv1 (11×11, stride 4, pad 2) on 224, no LRN, no groups,
an adaptive 6×6 average pool before the classifier, dropout *before* fc6/fc7.
BVLC Caffe: 96-channel conv1 on 227 (no pad), LRN after relu1/relu2, conv2/4/5 in
two groups, dropout after relu6/relu7, MATLAB's 25 layer names.
"""

from __future__ import annotations

from ..steps import Step, step

LRN = dict(size=5, alpha=1e-4, beta=0.75, k=1.0)


def _convs(spec, first_input="data"):
    steps, prev = [], first_input
    for name, kind, opts in spec:
        steps.append(step(name, kind, prev, **opts))
        prev = name
    return steps, prev


def torchvision_alexnet_steps(preprocessing: dict, num_classes: int = 1000) -> tuple[Step, ...]:
    """torchvision `alexnet` (the "one weird trick" single-GPU variant)."""
    spec = [
        ("conv1", "conv", dict(cin=3, cout=64, kernel=11, stride=4, pad=2)), ("relu1", "relu", {}),
        ("pool1", "maxpool", dict(kernel=3, stride=2)),
        ("conv2", "conv", dict(cin=64, cout=192, kernel=5, pad=2)), ("relu2", "relu", {}),
        ("pool2", "maxpool", dict(kernel=3, stride=2)),
        ("conv3", "conv", dict(cin=192, cout=384, kernel=3, pad=1)), ("relu3", "relu", {}),
        ("conv4", "conv", dict(cin=384, cout=256, kernel=3, pad=1)), ("relu4", "relu", {}),
        ("conv5", "conv", dict(cin=256, cout=256, kernel=3, pad=1)), ("relu5", "relu", {}),
        ("pool5", "maxpool", dict(kernel=3, stride=2)),
        ("avgpool", "adaptive_avgpool", dict(size=(6, 6))),
        ("drop6", "dropout", {}), ("fc6", "fc", dict(cin=9216, cout=4096)), ("relu6", "relu", {}),
        ("drop7", "dropout", {}), ("fc7", "fc", dict(cin=4096, cout=4096)), ("relu7", "relu", {}),
        ("fc8", "fc", dict(cin=4096, cout=num_classes)),
        ("prob", "softmax", {}), ("output", "output", {}),
    ]
    steps, _ = _convs(spec)
    return (step("data", "input", **preprocessing), *steps)


def bvlc_alexnet_steps(preprocessing: dict, num_classes: int = 1000) -> tuple[Step, ...]:
    """BVLC Caffe AlexNet with MATLAB's layer names (data … fc8 prob output)."""
    spec = [
        ("conv1", "conv", dict(cin=3, cout=96, kernel=11, stride=4)), ("relu1", "relu", {}),
        ("norm1", "lrn", LRN), ("pool1", "maxpool", dict(kernel=3, stride=2, ceil=True)),
        ("conv2", "conv", dict(cin=96, cout=256, kernel=5, pad=2, groups=2)), ("relu2", "relu", {}),
        ("norm2", "lrn", LRN), ("pool2", "maxpool", dict(kernel=3, stride=2, ceil=True)),
        ("conv3", "conv", dict(cin=256, cout=384, kernel=3, pad=1)), ("relu3", "relu", {}),
        ("conv4", "conv", dict(cin=384, cout=384, kernel=3, pad=1, groups=2)), ("relu4", "relu", {}),
        ("conv5", "conv", dict(cin=384, cout=256, kernel=3, pad=1, groups=2)), ("relu5", "relu", {}),
        ("pool5", "maxpool", dict(kernel=3, stride=2, ceil=True)),
        ("fc6", "fc", dict(cin=9216, cout=4096, needs_hw=(6, 6))), ("relu6", "relu", {}),
        ("drop6", "dropout", {}),
        ("fc7", "fc", dict(cin=4096, cout=4096)), ("relu7", "relu", {}), ("drop7", "dropout", {}),
        ("fc8", "fc", dict(cin=4096, cout=num_classes)),
        ("prob", "softmax", {}), ("output", "output", {}),
    ]
    steps, _ = _convs(spec)
    return (step("data", "input", **preprocessing), *steps)
