"""Class-model visualisation (Simonyan et al. 2014; CS231n's `create_class_visualization`) on the engine.

An image per class that maximises the class's pre-softmax score minus an L2 penalty, with CS231n's
jitter (random roll ±16), blur every 10 steps and normalised gradient step — the engine's `cs231n`
preset; every class is one unit of one vmapped, jit-compiled :func:`jaxvis.visualize` run.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

from ..engine import objectives as O
from ..engine import presets as P
from ..engine.objectives import class_index
from ..engine.visualize import Visualization, visualize
from ..errors import VisualizationError


def _indices(net, classes) -> list[int]:
    if isinstance(classes, (str, numbers.Integral)) and not isinstance(classes, bool):
        classes = [classes]
    if not isinstance(classes, Sequence) and not hasattr(classes, "__iter__"):
        raise VisualizationError(f"classes must be a class name, a 0-based index or a list of them, got {classes!r}")
    classes = list(classes)
    if not classes:
        raise VisualizationError("classes is empty: give at least one class name or 0-based index")
    if net.logits_layer is None:
        raise VisualizationError(f"{net.name!r} has no class-score layer: give from_function(..., logits=...)")
    n = len(net.classes) if net.classes else None
    out = []
    for c in classes:
        if isinstance(c, numbers.Integral) and not isinstance(c, bool) and n is None:
            out.append(int(c))
        else:
            out.append(class_index(net.classes, c.item() if hasattr(c, "item") else c))
    return out


def class_model(net, classes, *, preset: str | P.Preset = "cs231n", steps: int | None = None,
                learning_rate: float | None = None, image_size: int | tuple[int, int] | None = None,
                batch: int = 1, seed: int = 0, progress: bool | None = None, **visualize_kwargs) -> Visualization:
    """Class models: for each class, an image the network scores highly for it (all in one batched run).

    Objective: the class's pre-softmax score (logit, not softmax, as Simonyan et al.), minus the
    preset's regularisers. The default `cs231n` preset is CS231n's `create_class_visualization`:
    start from ImageNet-normalised N(0, 1) noise, L2 penalty 1e-3 (normalised units), random roll
    ±16 px, Gaussian blur σ 0.5 every 10 steps, clip to the valid range, step `25·g/‖g‖`
    (normalised units), 100 steps.

    Args:
      net: any jaxvis network with a class-score layer (`load_model`, `from_function(..., logits=...)`).
      classes: a class name ('espresso'), a 0-based index, or a list of them; unknown names raise
        VisualizationError with close matches.
      preset: engine preset ('cs231n' default; 'lucid' transfers better to other networks, see
        docs/quality.md).
      steps: optimisation steps (default the preset's).
      learning_rate: step multiplier on the 0..1 image scale (default the preset's).
      image_size: H×W (or int); default the network's input size.
      batch: images per class.
      seed: all randomness; the same seed gives the same bytes, and a class alone gives the same image
        as in any batch.
      progress: a progress bar on stderr: None (default) where stderr is a terminal or a notebook, True always, False never.
      **visualize_kwargs: any other :func:`jaxvis.visualize` argument (transforms, optimizer, …).

    Returns:
      :class:`jaxvis.Visualization`, one image per class (unit-major for batch > 1); `settings['classes']`
      holds the 0-based indices.
    """
    idx = _indices(net, classes)
    v = visualize(net, [O.class_logit(i) for i in idx], preset=preset, steps=steps, learning_rate=learning_rate,
                  image_size=image_size, batch=batch, seed=seed, progress=progress, **visualize_kwargs)
    v.labels = [net.classes[i] if net.classes else f"class {i}" for i in idx]
    v.settings["classes"] = idx
    v.settings["recipe"] = "class_model"
    return v
