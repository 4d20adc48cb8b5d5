"""The result of an attribution method: the map, the image it explains, and every setting used."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import AttributionError
from ..imaging.display import apply_colormap, mat2gray, overlay
from ..imaging.images import render_rgb
from ..imaging.notebook import Picture
from .targets import Target


@dataclasses.dataclass
class AttributionMap(Picture):
    """An attribution map and what produced it: what every attribution method returns.

    Deprecated alias: `jaxvis.Attribution` (this class's name up to 0.1.0) still names it, for one more release;
    use `AttributionMap`. captum uses "Attribution" for the base class of the *methods*, which jaxvis calls
    :class:`jaxvis.attribution.AttributionMethod`.

    Attributes:
      map: H×W float32 map aligned with `image` (positive = supports the target).
      image: H×W×3 float32 0..255: the image exactly as the network saw it (resized/cropped).
      method: 'gradient', 'smoothgrad', 'integrated_gradients', 'guided_backprop',
        'deconvnet', 'grad_cam' or 'occlusion'.
      target: the resolved :class:`Target` (layer, channel, class index and name).
      score: the target's score on `image`.
      options: every setting used, defaults filled in (noise sigma, steps, layer, mask size, …).
      raw: method-specific unreduced result: H×W×3 per-colour attributions (saliency
        methods), the feature-map-resolution map (Grad-CAM), or the grid of score changes
        per mask position (occlusion).
    """

    map: np.ndarray
    image: np.ndarray
    method: str
    target: Target
    score: float
    options: dict
    raw: np.ndarray | None = None

    def display_map(self) -> np.ndarray:
        """The map scaled to [0, 1] for display.

        Gradient maps are sparse with a few extreme pixels, so |map| is divided by its
        99th percentile and clipped (as the SmoothGrad authors' code displays them);
        Grad-CAM and occlusion maps are mat2gray'd (min → 0, max → 1), as MATLAB's examples show them.
        """
        if self.method in ("grad_cam", "occlusion"):
            return mat2gray(self.map)
        return np.clip(np.abs(self.map) / _p99(self.map), 0.0, 1.0)

    def overlay(self, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
        """:meth:`display_map` blended over the image: H×W×3 float in [0, 1]."""
        photo = np.clip(render_rgb(self.image), 0, 255).astype(np.uint8)  # gray / C-channel inputs rendered as RGB
        return overlay(photo, self.display_map(), alpha=alpha, cmap=cmap, normalize=False)

    def picture(self, *, style: str = "overlay", alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
        """The map as a picture: what ``.save(path, style=, alpha=, cmap=)`` writes and a notebook shows.

        Args:
          style: 'overlay' (map over the photo), 'map' (colour-mapped map alone) or 'rgb'
            (per-colour attributions of the saliency methods, the usual guided-backprop
            picture: grey = 0, clipped at the 99th percentile of |value|).
          alpha: weight of the map in the overlay.
          cmap: colormap name.

        Returns:
          H×W×3 float in [0, 1].
        """
        if style == "overlay":
            return self.overlay(alpha, cmap)
        if style == "map":
            return apply_colormap(self.display_map(), cmap)
        if style == "rgb":
            if self.raw is None or self.raw.ndim != 3 or self.raw.shape[:2] != self.image.shape[:2]:
                raise AttributionError(f"style='rgb' needs per-colour attributions; {self.method} has none")
            raw = render_rgb(self.raw)  # per input channel, rendered as RGB (linear: the sign is kept)
            return np.clip(raw / (2 * _p99(raw)) + 0.5, 0.0, 1.0)
        raise AttributionError(f"style must be 'overlay', 'map' or 'rgb', not {style!r}")


def _p99(a: np.ndarray) -> float:
    return max(float(np.percentile(np.abs(a), 99)), 1e-12)


Attribution = AttributionMap  # deprecated alias (the result's old name), kept for one release
