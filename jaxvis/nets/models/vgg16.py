"""VGG16 as one step graph with two layer-name layouts: Keras's and torchvision's.

Keras (`keras.applications.VGG16`): each Conv2D/Dense layer *fuses* its activation,
so a Keras name is the value after the activation (`block5_conv3` after its ReLU,
`predictions` after the softmax). jaxvis splits a fused layer into two rows:

    <name>:preact   the convolution / dense product before the ReLU (holds the weights)
    <name>:logits   the same for a softmax layer: the class scores before the softmax
    <name>          the activation's output, exactly what Keras calls <name>

This naming (:data:`PREACT`, :data:`LOGITS`) is the rule for every model that fuses
activations. Keras's `flatten` is in (H, W, C) order, which is also the order jaxvis's
fully connected layers flatten in, so `fc1`'s weight rows are Keras's unchanged.

torchvision (`torchvision.models.vgg16`): the names of its modules (`features.0` …
`features.30`, `avgpool`, `classifier.0` … `classifier.6`; convolutions and ReLUs are
separate modules there), then `prob` (a softmax torchvision leaves to the user). The
adaptive 7×7 average pool is the identity at 224×224.
"""

from __future__ import annotations

from ...errors import ModelError
from ..steps import Step, step

PREACT, LOGITS = ":preact", ":logits"

# Output channels of the 13 convolutions, by block.
BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
FC = ((25088, 4096), (4096, 4096), (4096, None))  # None: the number of classes


def fused_name(layer: str) -> str:
    """The framework layer a jaxvis row belongs to: 'block1_conv1:preact' → 'block1_conv1' (the rule
    converters use to find where a fused layer's weights go)."""
    return layer.split(":", 1)[0]


def vgg16_steps(preprocessing: dict, layout: str = "keras", num_classes: int = 1000) -> tuple[Step, ...]:
    """VGG16's step graph with `layout` 'keras' or 'torchvision' layer names.

    Args:
      preprocessing: the input layer's normalisation (see `jaxvis.nets.models.registry`).
      layout: 'keras' (block1_conv1 … predictions) or 'torchvision' (features.0 … classifier.6).
      num_classes: outputs of the last fully connected layer.

    Returns:
      The steps, input first.
    """
    if layout not in ("keras", "torchvision"):
        raise ModelError(f"VGG16 layout must be 'keras' or 'torchvision', not {layout!r}")
    keras = layout == "keras"
    steps, prev, cin, idx = [step("data", "input", **preprocessing)], "data", 3, 0

    def add(name: str, kind: str, **opts) -> None:
        nonlocal prev
        steps.append(step(name, kind, prev, **opts))
        prev = name

    for b, chans in enumerate(BLOCKS, 1):
        for i, cout in enumerate(chans, 1):
            if keras:
                add(f"block{b}_conv{i}{PREACT}", "conv", cin=cin, cout=cout, kernel=3, pad=1)
                add(f"block{b}_conv{i}", "relu")
            else:
                add(f"features.{idx}", "conv", cin=cin, cout=cout, kernel=3, pad=1)
                add(f"features.{idx + 1}", "relu")
                idx += 2
            cin = cout
        add(f"block{b}_pool" if keras else f"features.{idx}", "maxpool", kernel=2, stride=2)
        idx += 1
    if keras:
        add("flatten", "flatten")
        for name, (fin, fout) in zip(("fc1", "fc2", "predictions"), FC):
            last = fout is None
            add(name + (LOGITS if last else PREACT), "fc", cin=fin, cout=num_classes if last else fout)
            add(name, "softmax" if last else "relu")
    else:
        add("avgpool", "adaptive_avgpool", size=(7, 7))
        for j, (fin, fout) in enumerate(FC):
            add(f"classifier.{3 * j}", "fc", cin=fin, cout=fout or num_classes)
            if fout is not None:
                add(f"classifier.{3 * j + 1}", "relu")
                add(f"classifier.{3 * j + 2}", "dropout")
        add("prob", "softmax")
    return tuple(steps)
