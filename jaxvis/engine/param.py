"""Image parameterisations: `make(key) -> (params, image_fn)`, lucid style.

`image_fn(params)` gives B×H×W×C images in the 0..1 scale (the network sees 255×); C is the
network's input channels (3 for RGB, 1 for gray, any other count).
A :class:`Param` is a hashable description (so compiled functions are cached by it);
calling it with a key returns the lucid pair. The engine `vmap`s `Param.init` over
units, so every unit gets its own start from its own key.

- `pixel`: the pixels themselves.
- `fft`: lucid's spectrum (`rfft` coefficients scaled by 1/frequency, `irfft`, /4): gradient
  steps favour low frequencies, so images lack the high-frequency noise of pixel ascent.
- `decorrelate`: colours as coordinates in ImageNet's decorrelated colour basis (the square
  root of the colour covariance), so a step changes colours as natural images vary. RGB only
  (C = 3): other channel counts have no such basis, their spectrum is per channel.
- `output`: 'sigmoid' (lucid: bounded, never clipped), 'clip' (clipped into 0..1 after each
  step by the engine) or 'none' (unbounded: MATLAB's deepDreamImage).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import VisualizationError

# lucid's ImageNet colour correlation square root (columns scaled to unit max norm).
COLOR_CORRELATION_SVD_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32)
_COLOR = COLOR_CORRELATION_SVD_SQRT / np.max(np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0))
OUTPUTS = ("sigmoid", "clip", "none")


def rfft2d_freqs(h: int, w: int) -> np.ndarray:
    """|frequency| of each coefficient of `rfft2` on an h×w image (cycles per pixel)."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    return np.sqrt(fx * fx + fy * fy)


@dataclasses.dataclass(frozen=True)
class Param:
    """How an image is parameterised (hashable; see the module docstring).

    Attributes:
      size: (H, W).
      batch: images per unit.
      kind: 'pixel' or 'fft'.
      decorrelate: colour decorrelation.
      output: 'sigmoid', 'clip' or 'none'.
      sd: std of the random start (pixel: of the pixels; fft: of the spectrum).
      mean: value the random pixel start is centred on (0..1 scale; sigmoid/decorrelated: 0 = grey).
      decay_power: fft spectrum scaling 1/f**decay_power.
      channels: image channels C (decorrelation needs 3).
      margin: fft only: the Fourier canvas is (H + 2·margin)×(W + 2·margin) and the image its centre.
        The inverse FFT is periodic, so without a margin the image's top row neighbours its bottom row;
        any step in the gradient there (the transforms see the border less often than the interior,
        the grey padding meets it) is a sharp feature that Adam, normalising each Fourier coefficient
        alone, grows as fast as the image's content: a bright frame. With a margin the seam lies
        outside the image.
    """

    size: tuple[int, int]
    batch: int = 1
    kind: str = "fft"
    decorrelate: bool = True
    output: str = "sigmoid"
    sd: float = 0.01
    mean: float = 0.0
    decay_power: float = 1.0
    margin: int = 0
    channels: int = 3

    def __post_init__(self):
        if self.kind not in ("pixel", "fft"):
            raise VisualizationError(f"param must be 'pixel' or 'fft', got {self.kind!r}")
        if self.output not in OUTPUTS:
            raise VisualizationError(f"output must be one of {OUTPUTS}, got {self.output!r}")
        if len(self.size) != 2 or min(self.size) < 1:
            raise VisualizationError(f"image size must be (H, W) of positive ints, got {self.size!r}")
        if int(self.margin) < 0:
            raise VisualizationError(f"margin must be >= 0, got {self.margin!r}")
        if int(self.batch) < 1:
            raise VisualizationError(f"batch must be >= 1, got {self.batch!r}")
        if int(self.channels) < 1:
            raise VisualizationError(f"channels must be >= 1, got {self.channels!r}")
        if self.decorrelate and int(self.channels) != 3:
            raise VisualizationError(f"colour decorrelation needs 3 (RGB) channels, not {self.channels}; "
                                     "use decorrelate=False")

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (int(self.batch), int(self.size[0]), int(self.size[1]), int(self.channels))

    def init(self, key: jax.Array) -> jax.Array:
        """Random start parameters from `key`."""
        b, h, w, c = self.shape
        if self.kind == "pixel":
            return self.mean + self.sd * jax.random.normal(key, (b, h, w, c), jnp.float32)
        f = rfft2d_freqs(h + 2 * self.margin, w + 2 * self.margin)
        return self.sd * jax.random.normal(key, (2, b, c, *f.shape), jnp.float32)

    def image(self, params: jax.Array) -> jax.Array:
        """B×H×W×C image (0..1 scale) from parameters."""
        b, h, w, c = self.shape
        if self.kind == "fft":
            m = int(self.margin)
            hm, wm = h + 2 * m, w + 2 * m
            f = rfft2d_freqs(hm, wm)
            # × √(hw / canvas area): Adam moves every coefficient alike, so an image's change per step
            # grows with the canvas' side; this keeps the shown image's step as without a margin.
            scale = jnp.asarray(np.sqrt(h * w / (hm * wm)) / np.maximum(f, 1.0 / max(hm, wm)) ** self.decay_power,
                                jnp.float32)
            spectrum = jax.lax.complex(params[0], params[1]) * scale
            x = jnp.fft.irfft2(spectrum, s=(hm, wm), norm="ortho") / 4.0  # B×C×H×W; lucid's "magic" 4
            x = jnp.moveaxis(x[:, :, m:m + h, m:m + w], 1, -1)
        else:
            x = params
        if self.decorrelate:
            x = x @ jnp.asarray(_COLOR.T)
        if self.output == "sigmoid":
            return jax.nn.sigmoid(x)
        return x

    def from_image(self, image01: jax.Array) -> jax.Array:
        """Parameters whose image is `image01` (B×H×W×C, 0..1) — a photo as the start (pixel only)."""
        if self.kind != "pixel":
            raise VisualizationError("a start image needs param='pixel' (the fft parameterisation starts from noise)")
        x = jnp.asarray(image01, jnp.float32)
        if self.output == "sigmoid":
            x = jnp.log(jnp.clip(x, 1e-3, 1 - 1e-3) / (1 - jnp.clip(x, 1e-3, 1 - 1e-3)))
        if self.decorrelate:
            x = x @ jnp.asarray(np.linalg.inv(_COLOR.T))
        return x

    def __call__(self, key: jax.Array) -> tuple[jax.Array, Callable[[jax.Array], jax.Array]]:
        """lucid's pair: `(params, image_fn)`."""
        return self.init(key), self.image


def pixel(size, *, batch: int = 1, decorrelate: bool = False, output: str = "sigmoid", sd: float = 0.01,
          mean: float | None = None, channels: int = 3) -> Param:
    """Pixel parameterisation (see :class:`Param`); `mean` defaults to grey in the output's scale."""
    if mean is None:
        mean = 0.0 if output == "sigmoid" else 0.5
    return Param(_size(size), batch, "pixel", decorrelate, output, sd, mean, channels=int(channels))


def fft(size, *, batch: int = 1, decorrelate: bool = True, output: str = "sigmoid", sd: float = 0.01,
        decay_power: float = 1.0, margin: int = 0, channels: int = 3) -> Param:
    """lucid's default: Fourier parameterisation, decorrelated colours (RGB), sigmoid (see :class:`Param`)."""
    return Param(_size(size), batch, "fft", decorrelate, output, sd, 0.0, decay_power, int(margin), int(channels))


def _size(size) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        return (int(size), int(size))
    h, w = (int(v) for v in size)
    return (h, w)
