"""`jaxvis.visualize`: feature visualization of any network, with presets; the `Visualization` result."""

from __future__ import annotations

import dataclasses
import numbers
import os
import zlib
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..errors import ChannelError, VisualizationError
from ..imaging.display import imtile, save_png
from ..imaging.fileio import make_folder
from ..imaging.images import render_rgb, to_batch
from ..imaging.notebook import Picture, grid_for
from . import objectives as O
from . import presets as P
from . import transforms as T
from .optimize import RunResult, StepConfig, optimize
from .param import Param
from .spectrum import Spectrum, default_spectrum


@dataclasses.dataclass
class Visualization(Picture):
    """Result of :func:`visualize`.

    Attributes:
      images: uint8 for display (N = units × batch, unit-major), scaled by `output_scaling`: N×H×W×3 RGB for a
        3-channel network, N×H×W×1 grayscale for a 1-channel one, and for any other channel count an RGB
        rendering of the C channels (:func:`jaxvis.imaging.images.render_rgb`: channel i coloured by hue i/C,
        equal channels gray).
      raw: float32 N×H×W×C images (C = the network's input channels) on the 0..1 scale before display
        scaling (×255 = network pixels).
      trace: float32 levels×steps×units: each unit's objective (mean over its batch) before each step.
      labels: one label per unit.
      settings: everything that produced it (preset, param, transforms, optimizer, steps, seed, …).
      transparency: float32 N×H×W×3 or None: MACO's transparency map, Σ over the steps of |∂L/∂x| (where,
        and how much, the image mattered to the objective); `preset="maco"` gives it.

    ``.save(path, **imtile_kwargs)`` writes :meth:`picture` as PNG; a notebook shows it inline.
    """

    images: np.ndarray
    raw: np.ndarray
    trace: np.ndarray
    labels: list[str]
    settings: dict[str, Any]
    transparency: np.ndarray | None = None

    def tile(self, **imtile_kwargs) -> np.ndarray:
        """All images tiled with :func:`jaxvis.imtile` (uint8)."""
        return imtile(self.images, **imtile_kwargs)

    def picture(self, **imtile_kwargs) -> np.ndarray:
        """:meth:`tile` (by default on a grid without empty cells where one exists, e.g. 8 images 2×4):
        what `.save` writes and a notebook shows."""
        imtile_kwargs.setdefault("grid_size", grid_for(len(self.images)))
        return self.tile(**imtile_kwargs)

    def save_each(self, folder: str | os.PathLike, prefix: str = "unit") -> list[str]:
        """One PNG per image in `folder` (created if missing; its parent must exist); returns the paths."""
        make_folder(folder)
        b = len(self.images) // max(len(self.labels), 1)
        out = []
        for i, im in enumerate(self.images):
            lab = _safe(self.labels[i // b]) + (f"_{i % b}" if b > 1 else "")
            out.append(os.path.join(folder, f"{prefix}_{i:04d}_{lab}.png"))
            save_png(out[-1], im)
        return out


def _safe(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in s)[:60]


def scale_for_display(raw: np.ndarray, how: str) -> np.ndarray:
    """0..1-scale images → uint8: 'clip', 'linear' (each image min–max, MATLAB's), 'percentile'
    (each image 0.5–99.5 % stretch) or 'none' (clip, as raw pixels)."""
    x = np.asarray(raw, np.float32)
    if how in ("clip", "none"):
        y = np.clip(x, 0, 1)
    elif how in ("linear", "percentile"):
        q = (0.0, 100.0) if how == "linear" else (0.5, 99.5)
        lo = np.percentile(x, q[0], axis=(1, 2, 3), keepdims=True)
        hi = np.percentile(x, q[1], axis=(1, 2, 3), keepdims=True)
        y = np.clip((x - lo) / np.where(hi > lo, hi - lo, 1.0), 0, 1)
    else:
        raise VisualizationError(f"output_scaling must be 'clip', 'linear', 'percentile' or 'none', got {how!r}")
    return np.round(y * 255).astype(np.uint8)


def objectives_for(net, objective, hw) -> list[O.Objective]:
    """`objective` as a list of resolved objectives: a layer name or index gives every unit of the layer
    (:func:`jaxvis.objectives.unit_objectives`), an objective or a list of objectives is resolved against `net`."""
    if isinstance(objective, (str, numbers.Integral)) and not isinstance(objective, bool):
        layer = net.layer_name(objective)
        shape = _layer_shape(net, layer, hw)
        if shape is None:
            raise VisualizationError(f"layer {layer!r} cannot be computed from a {hw[0]}×{hw[1]} image; "
                                     f"give image_size={tuple(net.input_size)} (the network's input size)")
        return O.unit_objectives(net, layer, range(shape[-1]))  # centre neurons for linear early layers
    if isinstance(objective, O.Objective):
        return [objective.resolve(net)]
    if isinstance(objective, Sequence) and objective and all(isinstance(o, O.Objective) for o in objective):
        return [o.resolve(net) for o in objective]
    raise VisualizationError("objective must be an objective (jaxvis.objectives.channel(...), …), a list of them, "
                             f"or a layer name (every channel); got {type(objective).__name__}")


def _layer_shape(net, layer: str, hw) -> tuple[int, ...] | None:
    fn = net.function([layer])
    try:
        spec = jax.ShapeDtypeStruct((1, *hw, net.input_channels), jnp.float32)
        return tuple(jax.eval_shape(fn, net.params, spec)[layer].shape)
    except (TypeError, ValueError):  # a fixed-size flatten meets another size
        return None


def check_units(net, objs: Sequence[O.Objective], hw) -> None:
    """Channel indices inside each layer's channels (ChannelError names the valid range)."""
    seen: dict[str, int] = {}

    def visit(o):
        if isinstance(o, (O.Sum,)):
            for t in o.terms:
                visit(t)
        elif isinstance(o, O.Scale):
            visit(o.obj)
        elif isinstance(o, (O.Channel, O.Neuron, O.Spatial)):
            if o.layer not in seen:
                shape = _layer_shape(net, o.layer, hw) or _layer_shape(net, o.layer, net.input_size)
                seen[o.layer] = shape[-1]
            c, n = int(np.asarray(o.c)), seen[o.layer]
            if not 0 <= c < n:
                raise ChannelError(f"channel {c} is out of range for layer {o.layer!r}: it has {n} channels, "
                                   f"valid indices are 0..{n - 1} (0-based)")

    for o in objs:
        visit(o)


def label(o: O.Objective, net) -> str:
    if isinstance(o, (O.Channel, O.Neuron, O.Spatial)):
        return f"{o.layer}:{int(np.asarray(o.c))}"
    if isinstance(o, O.ClassScore):
        i = int(np.asarray(o.index))
        return net.classes[i] if net.classes else f"class {i}"
    if isinstance(o, O.Scale):
        return label(o.obj, net)
    if isinstance(o, O.Sum):
        return " + ".join(label(t, net) for t in o.terms if not isinstance(t, (O.Lp, O.TotalVariation, O.Blur)))
    return type(o).__name__


def _hw(image_size, net) -> tuple[int, int]:
    if image_size is None:
        return tuple(net.input_size)
    if isinstance(image_size, numbers.Integral):
        return (int(image_size), int(image_size))
    hw = tuple(int(v) for v in image_size)
    if len(hw) != 2 or min(hw) < 1:
        raise VisualizationError(f"image_size must be a positive int or (H, W), got {image_size!r}")
    return hw


def fit_transforms(net, layers: Sequence[str], tf: T.Compose, hw) -> T.Compose:
    """`tf`, plus a resize to the network's input size if a layer cannot take the transformed size."""
    out = tf.out_size(hw)
    if min(out) < 1:
        raise VisualizationError(f"the transforms crop {hw[0]}×{hw[1]} images to nothing; use larger images")
    if all(_layer_shape(net, l, out) is not None for l in layers):
        return tf
    return tf + T.Resize(tuple(net.input_size))


def visualize(net, objective, *, preset: str | P.Preset = "lucid", param: str | None = None,
              decorrelate: bool | None = None, transforms=None, steps: int | None = None,
              optimizer: optax.GradientTransformation | None = None, learning_rate: float | None = None,
              batch: int = 1, seed: int = 0,
              image_size: int | tuple[int, int] | None = None, redirected_relu_steps: int | None = None,
              output_scaling: str | None = None, start_image=None, levels: int | None = None,
              level_scale: float | None = None, batch_size: int | None = None, devices=None,
              progress: bool | None = None, on_level=None, spectrum=None) -> Visualization:
    """Feature visualization: images that maximise each objective, all optimised in one batch.

    Args:
      net: any jaxvis network (`load_model`, `from_function`, `from_onnx`).
      objective: an objective (`jaxvis.objectives.channel("conv5", 3) - 1e-3 * objectives.l1()`),
        a list of objectives of one form (one image set each: every unit in one vmapped,
        jit-compiled loop), or a layer name (every unit of it, with the objective that fits the layer:
        the centre neuron of a layer linear in the image with a small receptive field, such as conv1,
        else the channel mean; `jaxvis.objectives.unit_objectives`).
      preset: 'lucid' (default), 'maco', 'matlab', 'keras_vis' or 'cs231n' (see `jaxvis.engine.presets`);
        the arguments below override it.
      param: 'fft', 'pixel' or 'maco'.
      decorrelate: colour decorrelation (RGB networks only: for other channel counts the preset's is off, and
        True is an error).
      transforms: 'standard', 'none', 'keras_vis', 'roll16', or transforms from `jaxvis.engine.transforms`.
      steps: optimisation steps (per pyramid level).
      optimizer: an optax GradientTransformation minimising −objective (reuse one object to reuse
        compiled steps); default the preset's.
      learning_rate: multiplies the optimizer's updates (default: the preset's with its optimizer, 1.0
        with yours); traced, so other values reuse the compiled loop.
      batch: images per objective (use with `objectives.diversity` for a diverse set).
      seed: all randomness (starts, transforms); the same seed gives the same bytes.
      image_size: H×W (or int); default the network's input size.
      redirected_relu_steps: first steps run with RedirectedReLU (dead units move).
      output_scaling: 'clip', 'linear', 'percentile' or 'none' (see :func:`scale_for_display`).
      start_image: start from this photo (pixel param; any image jaxvis reads for this network, 0..255).
      levels, level_scale: pyramid levels (pixel param), each `level_scale`× larger.
      batch_size: units per compiled call (default from a memory estimate); devices: shard over these.
      progress: a progress bar on stderr: None (default) where stderr is a terminal or a notebook, True always, False never.
      on_level: `on_level(k, trace steps×units)` after each level.
      spectrum: param 'maco': the fixed magnitude, a :class:`~jaxvis.engine.spectrum.Spectrum` from
        :func:`jaxvis.natural_spectrum` (any size: resampled to the image's); default the one jaxvis ships.

    Returns:
      :class:`Visualization`.
    """
    pre = P.get(preset)
    hw = _hw(image_size, net)
    objs = objectives_for(net, objective, hw)
    pen = pre.penalty(hw, net.input_channels)
    if pen is not None:
        objs = [o - pen for o in objs]
    layers = tuple(dict.fromkeys(l for o in objs[:1] for l in o.layers))
    net.require_weights(layers)
    check_units(net, objs, hw)
    kind = param or pre.param
    c = int(net.input_channels)
    dec = (pre.decorrelate and c == 3) if decorrelate is None else bool(decorrelate)
    out = pre.output if kind == pre.param else "sigmoid"
    mean = pre.mean if kind == pre.param else None
    sd = pre.sd if kind == pre.param else 0.01
    own = kind == "fft" and kind == pre.param
    margin = pre.margin if own else 0
    # the preset's border replaces its transforms' padding: with other transforms it is not added
    border = pre.border if own and transforms is None else 0
    opt_hw = (hw[0] + 2 * border, hw[1] + 2 * border)
    spec = None
    if kind == "maco":
        if spectrum is not None and not isinstance(spectrum, Spectrum):
            raise VisualizationError(f"spectrum must be a Spectrum (jaxvis.natural_spectrum), got {type(spectrum).__name__}")
        spec = default_spectrum(opt_hw).with_channels(c) if spectrum is None else spectrum.resized(opt_hw)
        if spec.channels != c:
            raise VisualizationError(f"the spectrum has {spec.channels} channels but {net.name!r} takes {c}: compute "
                                     f"one from its own images, jaxvis.natural_spectrum(images, size)")
        sd = pre.sd if pre.param == "maco" else P.MACO_SD
    prm = Param(opt_hw, int(batch), kind, dec, out, sd, (0.0 if out == "sigmoid" else 0.5) if mean is None else mean,
                margin=margin, channels=c, spectrum=spec)
    opt = optimizer if optimizer is not None else P.optimizer(*pre.optimizer)
    lr = learning_rate if learning_rate is not None else (pre.learning_rate if optimizer is None else 1.0)
    n_levels = pre.levels if levels is None else int(levels)
    scale = pre.level_scale if level_scale is None else float(level_scale)
    n_steps = pre.steps if steps is None else int(steps)
    if n_steps < 1 or n_levels < 1:
        raise VisualizationError(f"steps and levels must be >= 1, got steps={n_steps}, levels={n_levels}")
    sizes = [(int(round(opt_hw[0] * scale ** k)), int(round(opt_hw[1] * scale ** k))) for k in range(n_levels)]
    base = T.get(pre.transforms if transforms is None else transforms)
    tf = base  # resized to the input size if the layers cannot take some pyramid level (a fixed-size flatten)
    for s in dict.fromkeys(sizes):
        tf = fit_transforms(net, layers, base, s)
        if tf is not base:
            break
    start = None
    if start_image is not None:
        b, _ = to_batch(start_image, channels=c)
        if b.shape[1:3] != hw:
            b = np.asarray(jax.image.resize(jnp.asarray(b), (b.shape[0], *hw, c), "bilinear"))
        start = np.broadcast_to((b / 255.0)[:, None], (b.shape[0], int(batch), *hw, c))
    config = StepConfig(prm, tf, opt, layers, pre.projection, transparency=pre.transparency and kind == "maco")
    red = pre.redirected_relu_steps if redirected_relu_steps is None else int(redirected_relu_steps)
    labels = [label(o, net) for o in objs]
    res: RunResult = optimize(net, objs, config, levels=[(s, n_steps) for s in sizes], learning_rate=lr,
                              seed=seed, unit_ids=unit_ids(labels), start=start,
                              redirected_relu_steps=red, batch_size=batch_size, devices=devices,
                              progress=progress, on_level=on_level,
                              label=f"visualize {net.name} ({len(objs)} unit{'' if len(objs) == 1 else 's'})")
    raw = res.images.reshape(-1, *res.images.shape[2:])
    if border:
        raw = raw[:, border:raw.shape[1] - border, border:raw.shape[2] - border]
    alpha = None if res.transparency is None else res.transparency.reshape(raw.shape)
    scaling = output_scaling or pre.output_scaling
    settings = dict(preset=pre.name, objective=_kind(objs[0]), param=kind, decorrelate=dec, output=out, margin=margin,
                    border=border, transforms=repr(tf),
                    optimizer=repr(pre.optimizer) if optimizer is None else repr(optimizer), learning_rate=lr,
                    steps=n_steps,
                    levels=sizes, seed=seed, batch=batch, redirected_relu_steps=red, output_scaling=scaling,
                    batch_size=res.batch_size)
    if spec is not None:
        settings["spectrum"] = repr(spec)
    return Visualization(scale_for_display(raw if c in (1, 3) else render_rgb(raw), scaling), raw,
                         np.asarray(res.trace), labels, settings, alpha)


def _kind(o: O.Objective) -> str:
    """What a unit's objective maximises ('channel', 'neuron', 'classscore', …; its first term's kind)."""
    while isinstance(o, (O.Sum, O.Scale)):
        o = o.terms[0] if isinstance(o, O.Sum) else o.obj
    return type(o).__name__.lower()


def unit_ids(labels: Sequence[str]) -> list[int]:
    """A unit's random stream follows from what it is (its label, and which repeat of it), not where it
    sits in the batch: the same unit alone or in any batch gets the same start and transforms."""
    seen: dict[str, int] = {}
    out = []
    for lab in labels:
        seen[lab] = seen.get(lab, -1) + 1
        out.append(zlib.crc32(f"{lab}#{seen[lab]}".encode()))
    return out
