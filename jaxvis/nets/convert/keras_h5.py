"""Read Keras weight files with h5py only (Keras and TensorFlow are never imported).

Three formats hold the same per-layer arrays (Conv2D: kernel HWIO, bias; Dense: kernel
(in, out), bias):

* legacy HDF5 (`model.save_weights('x.h5')` in Keras 2, the Keras Applications files such
  as `vgg16_weights_tf_dim_ordering_tf_kernels.h5`): root attribute `layer_names` lists the
  layers in model order; group `<layer>` has attribute `weight_names`, each naming a dataset
  below that group (`block1_conv1/kernel:0`). A full-model legacy `.h5` keeps this under
  `model_weights/`.
* Keras 3 `.weights.h5`: `layers/<class_snake_case>[_n]/vars/<i>` (the n-th layer of that
  class), the Keras layer name in the `name` attribute of `vars`; nested models recurse
  into `layers/<x>/layers/`.
* Keras 3 `.keras`: a zip of `config.json` (the architecture as JSON: read, never run),
  `metadata.json` and `model.weights.h5` (the format above).

:func:`match_keras` then checks the layers against a jaxvis architecture: missing,
extra and misshaped layers are reported together, with the first layer (in model order)
where the file and the architecture part.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import zipfile
from pathlib import Path

import h5py
import numpy as np

from ...errors import WeightFileError
from ...imaging.fileio import regular_file_size
from ..models.registry import TORCHVISION, build_steps
from ..models.vgg16 import fused_name

__all__ = ["KerasWeights", "expected_keras_layers", "match_keras", "read_keras"]


@dataclasses.dataclass
class KerasWeights:
    """The weighted layers of a Keras file.

    Attributes:
      layers: Keras layer name → its arrays in Keras order (kernel, bias), model order.
      format: 'legacy HDF5', 'Keras 3 .weights.h5' or 'Keras 3 .keras'.
      keras_version: as recorded in the file ('' if it records none).
    """

    layers: dict[str, list[np.ndarray]]
    format: str
    keras_version: str = ""


def _text(v) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def _natural(name: str):
    # Keras 3 numbers a class's layers conv2d, conv2d_1, … conv2d_12: sort by (class, number).
    m = re.fullmatch(r"(.*?)(?:_(\d+))?", name)
    return (m.group(1), int(m.group(2) or 0))


def _read_legacy(f: h5py.Group, source: str) -> dict[str, list[np.ndarray]]:
    layers = {}
    for name in map(_text, f.attrs["layer_names"]):
        if name not in f:
            raise WeightFileError(f"{source}: layer {name!r} is listed in layer_names but has no group")
        g = f[name]
        arrays = []
        for wn in map(_text, g.attrs.get("weight_names", [])):
            if wn not in g:
                raise WeightFileError(f"{source}: weight {wn!r} of layer {name!r} is listed but absent")
            arrays.append(np.asarray(g[wn][()]))
        if arrays:
            layers[name] = arrays
    return layers


def _read_keras3(g: h5py.Group, out: dict, source: str) -> None:
    for key in sorted(g, key=_natural):
        sub = g[key]
        if not isinstance(sub, h5py.Group):
            continue
        if "vars" in sub and len(sub["vars"]):
            v = sub["vars"]
            name = _text(v.attrs.get("name", key))
            try:
                out[name] = [np.asarray(v[str(i)][()]) for i in range(len(v))]
            except KeyError as e:
                raise WeightFileError(f"{source}: layers/{key}/vars is not numbered 0..{len(v) - 1} ({e})") from e
        if "layers" in sub:
            _read_keras3(sub["layers"], out, source)


def _read_h5(fileobj, source: str) -> tuple[dict[str, list[np.ndarray]], str, str]:
    with h5py.File(fileobj, "r") as f:
        root = f["model_weights"] if "model_weights" in f and isinstance(f["model_weights"], h5py.Group) else f
        if "layer_names" in root.attrs:
            return _read_legacy(root, source), "legacy HDF5", _text(root.attrs.get("keras_version", ""))
        if "layers" in f:
            out: dict = {}
            _read_keras3(f["layers"], out, source)
            return out, "Keras 3 .weights.h5", ""
        raise WeightFileError(f"{source}: an HDF5 file but not Keras weights: neither a 'layer_names' attribute "
                              f"(legacy Keras HDF5) nor a 'layers' group (Keras 3 .weights.h5)")


def _config_layer_names(config: dict) -> list[str]:
    """Layer names of a Functional/Sequential config, in model order (nested models flattened)."""
    inner = config.get("config") if isinstance(config, dict) else None
    layers = inner.get("layers") if isinstance(inner, dict) else None
    names = []
    for layer in layers if isinstance(layers, list) else []:  # anything unexpected: no order, not an error
        cfg = layer.get("config") if isinstance(layer, dict) else None
        if isinstance(cfg, dict) and "layers" in cfg:
            names += _config_layer_names(layer)
        elif isinstance(cfg, dict):
            names.append(str(cfg.get("name", layer.get("name", ""))))
    return names


def read_keras(path: str | os.PathLike) -> KerasWeights:
    """Read a Keras weight file (legacy HDF5, Keras 3 `.weights.h5` or `.keras`).

    Args:
      path: the file.

    Returns:
      The weighted layers, in model order.

    Raises:
      WeightFileError: missing, truncated or corrupt file, or not Keras weights.
    """
    source = os.fspath(path)
    regular_file_size(path, what="Keras weight file")  # missing, a folder, a device, or too large
    try:
        if zipfile.is_zipfile(path):
            return _read_keras_zip(path, source)
        with open(path, "rb") as fh:
            if fh.read(4) == b"PK\x03\x04":  # a zip's first record but no central directory at the end
                raise WeightFileError(f"{source}: a truncated or corrupt .keras zip ({Path(path).stat().st_size:,} "
                                      f"bytes; its central directory is missing) — save or download it again")
        layers, fmt, version = _read_h5(path, source)
    except WeightFileError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError, EOFError) as e:
        raise WeightFileError(
            f"{source}: cannot be read as Keras HDF5 weights ({type(e).__name__}: {e}); the file is truncated "
            f"or corrupt ({Path(path).stat().st_size:,} bytes) — download or save it again") from e
    return KerasWeights(layers, fmt, version)


def _read_keras_zip(path, source: str) -> KerasWeights:
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            for member in ("config.json", "model.weights.h5"):
                if member not in names:
                    raise WeightFileError(f"{source}: a zip but not a .keras file: no {member!r} "
                                          f"(members: {', '.join(sorted(names)[:8])})")
            config = json.loads(z.read("config.json"))
            meta = json.loads(z.read("metadata.json")) if "metadata.json" in names else {}
            blob = z.read("model.weights.h5")
    except (zipfile.BadZipFile, OSError, EOFError, zipfile.LargeZipFile) as e:
        raise WeightFileError(f"{source}: corrupt or truncated .keras zip ({e})") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise WeightFileError(f"{source}: config.json/metadata.json is not valid JSON ({e})") from e
    try:
        layers, _, _ = _read_h5(io.BytesIO(blob), f"{source} (model.weights.h5)")
    except WeightFileError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as e:
        raise WeightFileError(f"{source}: its model.weights.h5 cannot be read as HDF5 ({e})") from e
    order = {n: i for i, n in enumerate(_config_layer_names(config))}
    layers = dict(sorted(layers.items(), key=lambda kv: order.get(kv[0], len(order))))
    return KerasWeights(layers, "Keras 3 .keras", str(meta.get("keras_version", "")) if isinstance(meta, dict) else "")


def expected_keras_layers(arch: str) -> dict[str, list[tuple[int, ...]]]:
    """Keras layer name → [kernel shape, bias shape] of `arch`'s conv/fc layers, in model order.

    A jaxvis step 'block1_conv1:preact' is the Keras layer 'block1_conv1' (see jaxvis.nets.models.vgg16).
    """
    out = {}
    for s in build_steps(arch, TORCHVISION):
        o = s.o
        if s.kind == "conv":
            shapes = [(o["kernel"], o["kernel"], o["cin"] // o.get("groups", 1), o["cout"]), (o["cout"],)]
        elif s.kind == "fc":
            shapes = [(o["cin"], o["cout"]), (o["cout"],)]
        else:
            continue
        out[fused_name(s.name)] = shapes
    return out


def _by_class_order(kw: KerasWeights, exp: dict) -> KerasWeights:
    """A .weights.h5 without layer-name attributes names layers by class (conv2d, conv2d_1, …, dense, …):
    Keras's own rule, the n-th Conv2D / Dense of the model, gives the architecture's n-th conv / dense layer."""
    keys = list(kw.layers)
    if not keys or any(k in exp for k in keys) or not all(re.fullmatch(r"(conv2d|dense)(_\d+)?", k) for k in keys):
        return kw
    convs = [n for n, s in exp.items() if len(s[0]) == 4]
    dense = [n for n, s in exp.items() if len(s[0]) == 2]
    out = {}
    for k in sorted(keys, key=_natural):
        base, i = _natural(k)
        names = convs if base == "conv2d" else dense
        out[names[i] if i < len(names) else k] = kw.layers[k]
    return dataclasses.replace(kw, layers=out)


def _shapes(arrays) -> str:
    return ", ".join(str(tuple(a)) for a in arrays)


def match_keras(kw: KerasWeights, arch: str, source: str, skip: tuple[str, ...] = ()) -> dict[str, list[np.ndarray]]:
    """Check a Keras file's layers against `arch`; return {Keras layer: [kernel, bias]}.

    Args:
      kw: from :func:`read_keras`.
      arch: jaxvis architecture ('vgg16').
      source: the file, for messages.
      skip: layers of `arch` the file may lack (e.g. the top of a `_notop` file).

    Raises:
      WeightFileError: naming the first layer (in model order) where file and `arch` part,
        with both shapes, and every missing, extra and misshaped layer.
    """
    exp = {n: s for n, s in expected_keras_layers(arch).items() if n not in skip}
    kw = _by_class_order(kw, exp)
    got = {n: [tuple(a.shape) for a in arrays] for n, arrays in kw.layers.items()}
    missing = [n for n in exp if n not in got]
    extra = [n for n in got if n not in exp]
    misshaped = [f"{n}: file {_shapes(got[n])}, {arch} {_shapes(exp[n])}" for n in exp if n in got and got[n] != exp[n]]
    if not (missing or extra or misshaped):
        return {n: kw.layers[n] for n in exp}
    el, gl = list(exp.items()), list(got.items())
    first = ""
    for i in range(max(len(el), len(gl))):
        en, es = el[i] if i < len(el) else (None, None)
        gn, gs = gl[i] if i < len(gl) else (None, None)
        if (en, es) != (gn, gs):
            file_part = f"file has {gn!r} [{_shapes(gs)}]" if gn else "file has no more weighted layers"
            exp_part = f"{arch} expects {en!r} [{_shapes(es)}]" if en else f"{arch} has no more"
            first = f"weighted layer #{i}: {file_part}; {exp_part}"
            break
    lines = [(f"{source}: {kw.format} weights ({len(got)} weighted layers) do not fit --arch {arch} "
              f"({len(exp)} weighted layers); nothing was written"),
             f"  first mismatching layer: {first}"]
    for title, items in (("missing", missing), ("extra", extra), ("wrong shape", misshaped)):
        if items:
            more = f" … (+{len(items) - 10} more)" if len(items) > 10 else ""
            lines.append(f"  {title} ({len(items)}): " + ", ".join(items[:10]) + more)
    top = [n for n, shapes in expected_keras_layers(arch).items() if len(shapes[0]) == 2]  # dense layers
    if missing and set(missing) == set(top) and not extra and not misshaped:
        lines.append("  (a convolution-only '_notop' file? convert it with --notop)")
    elif extra and len(extra) >= len(got) // 2:
        lines.append("  (is --arch right? these look like another network's weights)")
    raise WeightFileError("\n".join(lines))
