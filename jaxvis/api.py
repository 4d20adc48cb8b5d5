"""MATLAB-style entry points on a Network: `activations` and `classify`."""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np

from .images import ImageLike, fit_to_size, to_batch
from .protocol import LayerRef, Net


def activations(net: Net, image: ImageLike, layer: LayerRef | None = None, *,
                layers: Sequence[LayerRef] | None = None):
    """Activations of one layer (MATLAB's `activations(net, im, layer)`) or several in one pass.

    Args:
      net: the network.
      image: path, PIL image or array of 0..255 RGB pixels (H×W, H×W×C; N×H×W×C or a
        list for a batch). Any size: larger images give larger maps on convolutional
        layers; layers after a fixed-size flatten need the network's input size.
      layer: one layer, by name or 0-based index.
      layers: several layers instead; all computed by one jitted call.

    Returns:
      numpy H×W×C (N×H×W×C for a batch); with `layers`, a dict name → such array.
    """
    if (layer is None) == (layers is None):
        raise TypeError("give exactly one of `layer` or `layers=[...]`")
    if isinstance(layers, (str, int)):  # a bare name would otherwise be read letter by letter
        raise TypeError(f"layers= takes a list of layers, e.g. layers=[{layers!r}]; for one layer use layer={layers!r}")
    names = [net.layer_name(l) for l in ([layer] if layers is None else layers)]  # type: ignore[arg-type]  # exactly one is given
    batch, single = to_batch(image)
    out = net.jitted(names)(net.params, jnp.asarray(batch))
    res = {n: np.asarray(out[n])[0] if single else np.asarray(out[n]) for n in names}
    return res[names[0]] if layers is None else res


def classify(net: Net, image: ImageLike, top: int = 5, *, resize: str = "crop"):
    """Top-k classes with probabilities (MATLAB's `classify`, with scores).

    Args:
      net: the network.
      image: one image or a batch (see :func:`activations`).
      top: how many classes to return.
      resize: how images are brought to `net.input_size`: 'crop' (shorter side
        scaled, centre crop), 'stretch' (MATLAB's `imresize(im, inputSize(1:2))`) or 'none'.

    Returns:
      [(class name, probability), …] best first; a list of such lists for a batch.
    """
    batch, single = to_batch(image)
    batch = fit_to_size(batch, net.input_size, resize)
    if net.logits_layer is None or not net.classes:
        from .errors import NetworkError
        raise NetworkError(f"{net.name!r} does not classify: it has no class names or class-score layer "
                           f"(from_function(..., classes=..., logits=...))")
    z = np.asarray(net.jitted([net.logits_layer])(net.params, jnp.asarray(batch))[net.logits_layer], np.float64)
    z = z.reshape(len(batch), -1)
    prob = np.exp(z - z.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    top = max(1, min(int(top), prob.shape[1]))
    res = [[(net.classes[i], float(p[i])) for i in np.argsort(-p)[:top]] for p in prob]
    return res[0] if single else res
