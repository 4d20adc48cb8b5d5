"""Feature accentuation (Hamblin, Fel, Saha, Konkle, Alvarez 2024; PyPI `faccent`) on the engine.

"What in *this* photo would make the unit fire more": start from the photo's own spectrum (lucid's
Fourier parameterisation, decorrelated colours, sigmoid — its parameters at the start reproduce the
photo exactly), push the objective with Adam on the spectrum scaled by 1/f^1.5 (Adam moves every
coefficient alike, so the image's step per frequency follows the scaling: a 1/f^1.5 preconditioned
gradient), and keep the image near the photo with an L2 penalty on the distance to the seed in that
same parameter space, ``weight · ‖P − P_photo‖²`` (high frequencies, whose coefficients are scaled
least, cost most: the accentuation changes the photo's structure, not its noise). Lucid's standard
transforms make the change robust. Every objective is one unit of one vmapped, jit-compiled run.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from ..engine import optimize as engine
from ..engine.param import Param
from ..engine.presets import optimizer
from ..engine.transforms import get as get_transforms
from ..engine.visualize import objectives_for, unit_ids, check_units, fit_transforms, label, scale_for_display
from ..errors import VisualizationError
from ..imaging.display import imtile
from ..imaging.notebook import Picture
from ..imaging.images import ImageLike, fit_to_size, to_batch

DECAY_POWER = 1.5    # Hamblin et al.'s 1/f^1.5 preconditioning
WEIGHT = 0.02        # default pull towards the photo (docs/visualize.md: how far it lets the image move)
LEARNING_RATE = 0.05  # lucid's Adam step


@dataclasses.dataclass
class Accentuation(Picture):
    """Result of :func:`accentuate`.

    Attributes:
      images: uint8 N×H×W×3, one accentuated photo per objective.
      raw: float32 N×H×W×3 on the 0..1 scale.
      photo: uint8 H×W×3, the seed (resized/cropped to the size the network saw).
      trace: float32 steps×N, each objective before each step (the first row: on the photo itself).
      distance: float N, RMS pixel change from the photo (0..1 scale).
      labels: one label per objective.
      seconds: wall time (compile included).
      settings: everything that produced it.
    """

    images: np.ndarray
    raw: np.ndarray
    photo: np.ndarray
    trace: np.ndarray
    distance: np.ndarray
    labels: list[str]
    seconds: float
    settings: dict[str, Any]

    def picture(self, with_photo: bool = True, **imtile_kwargs) -> np.ndarray:
        """The photo (first, unless `with_photo` is False) and every accentuation, uint8 (:func:`jaxvis.imtile`)."""
        ims = np.concatenate([self.photo[None], self.images]) if with_photo else self.images
        if len(ims) <= 6:
            imtile_kwargs.setdefault("grid_size", (1, len(ims)))  # one row: photo, then its accentuations
        return imtile(ims, **imtile_kwargs)


def accentuate(net, photo: ImageLike, objective, *, weight: float = WEIGHT, steps: int = 128,
               learning_rate: float = LEARNING_RATE, decay_power: float = DECAY_POWER, transforms="standard",
               image_size: int | tuple[int, int] | None = None, seed: int = 0, batch_size: int | None = None,
               devices=None, progress: bool | None = None) -> Accentuation:
    """Feature accentuation: change `photo` so each objective grows, staying near the photo.

    Args:
      net: any jaxvis network.
      photo: one image (path, array, PIL image; 0..255 RGB), centre-cropped and resized to the image size.
      objective: an objective (`jaxvis.objectives.class_logit("espresso")`, `.channel("fire8-concat", 7)`),
        a list of objectives of one form (one accentuation each, batched), or a layer name (every channel).
      weight: weight of ‖P − P_photo‖² (P: the 1/f^decay_power-scaled spectrum); larger stays closer.
      steps: Adam steps.
      learning_rate: Adam's step on the scaled spectrum.
      decay_power: the spectrum scaling 1/f^decay_power (1.5: Hamblin et al.).
      transforms: the random views per step ('standard': lucid's; 'none'; or transforms).
      image_size: H×W (int: square); default the network's input size.
      seed: the transforms' randomness.
      batch_size: objectives per compiled call (default from a memory estimate); devices: shard over these.
      progress: a progress bar on stderr: None (default) where stderr is a terminal or a notebook, True always, False never.

    Returns:
      :class:`Accentuation` (`.images`, `.photo`, `.trace`, `.distance`, `.save(path)`).

    Raises:
      VisualizationError: bad arguments; ImageError: an unreadable photo.
    """
    t0 = time.perf_counter()
    if not (isinstance(weight, (int, float)) and weight >= 0 and np.isfinite(weight)):
        raise VisualizationError(f"weight must be a finite number >= 0, got {weight!r}")
    if int(steps) < 1:
        raise VisualizationError(f"steps must be >= 1, got {steps!r}")
    if image_size is None:
        image_size = tuple(net.input_size)
    if isinstance(image_size, (int, np.integer)):
        image_size = (int(image_size), int(image_size))
    hw: tuple[int, int] = (int(image_size[0]), int(image_size[1]))
    batch, _ = to_batch(photo)
    if len(batch) != 1:
        raise VisualizationError(f"accentuate takes one photo, got {len(batch)} (run one call per photo)")
    seed_img = fit_to_size(batch.astype(np.float32), hw)[0]
    objs = objectives_for(net, objective, hw)
    layers = tuple(dict.fromkeys(l for o in objs[:1] for l in o.layers))
    net.require_weights(layers)
    check_units(net, objs, hw)
    prm = Param(hw, 1, "fft", True, "sigmoid", 0.01, 0.0, float(decay_power))
    tf = fit_transforms(net, layers, get_transforms(transforms), hw)
    config = engine.StepConfig(prm, tf, optimizer("adam"), layers, anchor=float(weight))
    labels = [label(o, net) for o in objs]
    ids = unit_ids(labels)  # an objective's random stream follows from what it is: alone = in a batch
    res = engine.optimize(net, objs, config, levels=[(hw, int(steps))], learning_rate=float(learning_rate), seed=seed,
                          unit_ids=ids, start=(seed_img / 255.0)[None, None], batch_size=batch_size, devices=devices,
                          progress=progress,
                          label=f"accentuate {net.name} ({len(objs)} objective{'' if len(objs) == 1 else 's'})")
    raw = res.images[:, 0]
    photo01 = np.clip(np.round(seed_img), 0, 255) / 255.0
    dist = np.sqrt(np.mean((raw - photo01) ** 2, axis=(1, 2, 3)))
    settings = dict(weight=float(weight), steps=int(steps), learning_rate=float(learning_rate),
                    decay_power=float(decay_power), transforms=repr(tf), image_size=hw, seed=seed,
                    batch_size=res.batch_size)
    return Accentuation(scale_for_display(raw, "clip"), raw, np.clip(np.round(seed_img), 0, 255).astype(np.uint8),
                        np.asarray(res.trace)[0], dist, labels, time.perf_counter() - t0, settings)

