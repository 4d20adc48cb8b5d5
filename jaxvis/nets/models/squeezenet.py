"""SqueezeNet v1.0 and v1.1 as step graphs, with DeepScale's (= MATLAB's) layer names.

v1.1 is the architecture of DeepScale's Caffe release, MATLAB's `squeezenet` and
torchvision's `squeezenet1_1` alike; the three differ only in weights and
preprocessing (see the model cards in :mod:`jaxvis.nets.models.registry`).
"""

from __future__ import annotations

from ...errors import ModelError
from ..steps import Step, step

# (squeeze, expand1x1, expand3x3) channels of fire2..fire9.
FIRE_CHANNELS = {2: (16, 64, 64), 3: (16, 64, 64), 4: (32, 128, 128), 5: (32, 128, 128),
                 6: (48, 192, 192), 7: (48, 192, 192), 8: (64, 256, 256), 9: (64, 256, 256)}


def fire(n: int, prev: str, cin: int) -> tuple[list[Step], str, int]:
    """Fire module `fire{n}`: squeeze 1×1 → ReLU → (expand 1×1 ‖ expand 3×3) → ReLU → concat."""
    sq, e1, e3 = FIRE_CHANNELS[n]
    p = f"fire{n}-"
    steps = [
        step(p + "squeeze1x1", "conv", prev, cin=cin, cout=sq, kernel=1),
        step(p + "relu_squeeze1x1", "relu", p + "squeeze1x1"),
        step(p + "expand1x1", "conv", p + "relu_squeeze1x1", cin=sq, cout=e1, kernel=1),
        step(p + "relu_expand1x1", "relu", p + "expand1x1"),
        step(p + "expand3x3", "conv", p + "relu_squeeze1x1", cin=sq, cout=e3, kernel=3, pad=1),
        step(p + "relu_expand3x3", "relu", p + "expand3x3"),
        step(p + "concat", "concat", (p + "relu_expand1x1", p + "relu_expand3x3")),
    ]
    return steps, p + "concat", e1 + e3


def squeezenet_steps(version: str, preprocessing: dict, num_classes: int = 1000) -> tuple[Step, ...]:
    """Layer graph of SqueezeNet `version` ('1.0' or '1.1'); pools round up (ceil mode)."""
    if version == "1.1":
        conv1 = dict(cout=64, kernel=3, stride=2)
        pools = {2: "pool1", 4: "pool3", 6: "pool5"}  # pool before fire n
    elif version == "1.0":
        conv1 = dict(cout=96, kernel=7, stride=2)
        pools = {2: "pool1", 5: "pool4", 9: "pool8"}
    else:
        raise ModelError(f"SqueezeNet version must be '1.0' or '1.1', got {version!r}")
    steps = [step("data", "input", **preprocessing),
             step("conv1", "conv", "data", cin=3, **conv1),
             step("relu_conv1", "relu", "conv1")]
    prev, cin = "relu_conv1", conv1["cout"]
    for n in range(2, 10):
        if n in pools:
            steps.append(step(pools[n], "maxpool", prev, kernel=3, stride=2, ceil=True))
            prev = pools[n]
        fs, prev, cin = fire(n, prev, cin)
        steps += fs
    steps += [step("drop9", "dropout", prev),
              step("conv10", "conv", "drop9", cin=cin, cout=num_classes, kernel=1),
              step("relu_conv10", "relu", "conv10"),
              step("pool10", "gap", "relu_conv10"),
              step("prob", "softmax", "pool10"),
              step("output", "output", "prob")]
    return tuple(steps)
