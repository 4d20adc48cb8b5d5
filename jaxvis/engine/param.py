"""Image parameterisations: `make(key) -> (params, image_fn)`, lucid style.

`image_fn(params)` gives B×H×W×C images in the 0..1 scale (the network sees 255×); C is the
network's input channels (3 for RGB, 1 for gray, any other count).
A :class:`Param` is a hashable description (so compiled functions are cached by it);
calling it with a key returns the lucid pair. The engine `vmap`s `Param.init` over
units, so every unit gets its own start from its own key.

- `pixel`: the pixels themselves.
- `fft`: lucid's spectrum (`rfft` coefficients scaled by 1/frequency, `irfft`, /4): gradient
  steps favour low frequencies, so images lack the high-frequency noise of pixel ascent.
- `maco` (Fel et al. 2023): the same Fourier image with its magnitude fixed to a natural-image spectrum
  (:mod:`jaxvis.engine.spectrum`) and only the phase optimised; the image is standardised (zero mean,
  `sd` std in the decorrelated basis — with a fixed magnitude that is a constant factor).
- `decorrelate`: colours as coordinates in ImageNet's decorrelated colour basis (the square
  root of the colour covariance), so a step changes colours as natural images vary. RGB only
  (C = 3): other channel counts have no such basis, their spectrum is per channel.
- `output`: 'sigmoid' (lucid: bounded, never clipped), 'clip' (clipped into 0..1 after each
  step by the engine) or 'none' (unbounded: MATLAB's deepDreamImage).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import VisualizationError

if TYPE_CHECKING:  # annotations only: spectrum.py reads this module's colour basis
    from .spectrum import Spectrum

# lucid's ImageNet colour correlation square root (columns scaled to unit max norm).
COLOR_CORRELATION_SVD_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32)
# the colour basis the fft/maco images are recorrelated with (columns scaled to unit max norm)
COLOR = COLOR_CORRELATION_SVD_SQRT / np.max(np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0))
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
    spectrum: Spectrum | None = None

    def __post_init__(self):
        if self.kind not in ("pixel", "fft", "maco"):
            raise VisualizationError(f"param must be 'pixel', 'fft' or 'maco', got {self.kind!r}")
        if self.kind == "maco" and (self.spectrum is None or not self.spectrum.fits(self.size)):
            raise VisualizationError(f"param 'maco' needs a magnitude spectrum of an image of {self.size} (C×H×(W//2+1)), "
                                     f"got {self.spectrum!r}; make one with jaxvis.natural_spectrum(photos, size)")
        if self.kind == "maco" and self.decorrelate and self.spectrum is not None and self.spectrum.channels != 3:
            raise VisualizationError(f"colour decorrelation needs 3 channels; this spectrum has "
                                     f"{self.spectrum.channels}: use decorrelate=False")
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
        c = self.spectrum.channels if self.kind == "maco" and self.spectrum is not None else self.channels
        return (int(self.batch), int(self.size[0]), int(self.size[1]), int(c))

    def init(self, key: jax.Array) -> jax.Array:
        """Random start parameters from `key` (maco: uniform phases, a random-phase natural image)."""
        b, h, w, c = self.shape
        if self.kind == "pixel":
            return self.mean + self.sd * jax.random.normal(key, (b, h, w, c), jnp.float32)
        if self.kind == "maco":
            return jax.random.uniform(key, (b, c, h, w // 2 + 1), jnp.float32, -np.pi, np.pi)
        f = rfft2d_freqs(h + 2 * self.margin, w + 2 * self.margin)
        return self.sd * jax.random.normal(key, (2, b, c, *f.shape), jnp.float32)

    def image(self, params: jax.Array) -> jax.Array:
        """B×H×W×C image (0..1 scale) from parameters."""
        b, h, w, c = self.shape
        if self.kind == "maco":
            z = jnp.fft.irfft2(jnp.asarray(self.magnitude) * jnp.exp(1j * hermitian_phase(params, w)), s=(h, w),
                               norm="ortho")
            x = jnp.moveaxis(z, 1, -1)
        elif self.kind == "fft":
            m = int(self.margin)
            hm, wm = h + 2 * m, w + 2 * m
            # × √(hw / canvas area): Adam moves every coefficient alike, so an image's change per step
            # grows with the canvas' side; this keeps the shown image's step as without a margin.
            scale = jnp.asarray(self._fft_scale(), jnp.float32)
            spectrum = jax.lax.complex(params[0], params[1]) * scale
            x = jnp.fft.irfft2(spectrum, s=(hm, wm), norm="ortho") / 4.0  # B×C×H×W; lucid's "magic" 4
            x = jnp.moveaxis(x[:, :, m:m + h, m:m + w], 1, -1)
        else:
            x = params
        if self.decorrelate:
            x = x @ jnp.asarray(COLOR.T)
        if self.output == "sigmoid":
            return jax.nn.sigmoid(x)
        return x

    @property
    def magnitude(self) -> np.ndarray:
        """maco: the magnitude the image keeps, C×H×(W//2+1): the spectrum with DC 0 (zero mean), the
        ±frequency pairs of the real columns made equal (exactly Hermitian), scaled to image std `sd`."""
        if self.spectrum is None:
            raise VisualizationError("only param 'maco' has a fixed magnitude")
        return _standard_magnitude(self.spectrum, int(self.size[1]), float(self.sd))

    def from_image(self, image01: jax.Array) -> jax.Array:
        """Parameters whose image is `image01` (B×H×W×C, 0..1) — a photo as the start (pixel, or fft
        without a margin: the photo's own spectrum, as feature accentuation starts)."""
        if self.kind == "maco" or (self.kind == "fft" and self.margin):
            raise VisualizationError("a start image needs param='pixel' or 'fft' without a margin (maco keeps a fixed "
                                     "magnitude; a margin has no photo to start from)")
        x = jnp.asarray(image01, jnp.float32)
        if self.output == "sigmoid":
            x = jnp.log(jnp.clip(x, 1e-3, 1 - 1e-3) / (1 - jnp.clip(x, 1e-3, 1 - 1e-3)))
        if self.decorrelate:
            x = x @ jnp.asarray(np.linalg.inv(COLOR.T))
        if self.kind == "fft":  # the inverse of image(): rfft2 of the decorrelated image, ×4, ÷ the frequency scaling
            h, w = self.size
            spec = jnp.fft.rfft2(jnp.moveaxis(x, -1, 1), norm="ortho") * 4.0 / jnp.asarray(self._fft_scale(), jnp.float32)
            return jnp.stack([spec.real, spec.imag])
        return x

    def anchor_weights(self) -> np.ndarray | float:
        """Per-parameter weights w with Σ w·(p − p0)² = ‖latent(p) − latent(p0)‖², the squared distance of the
        images before the output function (fft: Parseval over the stored half spectrum, each coefficient that
        stands for its mirror counted twice; pixel: 1). Feature accentuation's pull towards the photo."""
        if self.kind != "fft":
            return 1.0
        w = self.size[1] + 2 * int(self.margin)
        half = np.full(w // 2 + 1, 2.0)
        half[0] = 1.0
        if w % 2 == 0:
            half[-1] = 1.0
        return (self._fft_scale() / 4.0) ** 2 * half[None, :]

    def _fft_scale(self) -> np.ndarray:
        m = int(self.margin)
        h, w = self.size
        hm, wm = h + 2 * m, w + 2 * m
        f = rfft2d_freqs(hm, wm)
        return np.sqrt(h * w / (hm * wm)) / np.maximum(f, 1.0 / max(hm, wm)) ** self.decay_power

    def __call__(self, key: jax.Array) -> tuple[jax.Array, Callable[[jax.Array], jax.Array]]:
        """lucid's pair: `(params, image_fn)`."""
        return self.init(key), self.image


def hermitian_phase(phase: jax.Array, w: int) -> jax.Array:
    """Phases (…×H×(W//2+1)) made odd, φ(−ky) = −φ(ky), on the columns `rfft2` stores without their
    mirror (kx = 0, and kx = W/2 for even W). With an even magnitude the spectrum is then exactly the
    `rfft2` of a real image, so `irfft2` keeps the magnitude (it would otherwise take the real part
    of those columns, and the image's magnitude would drift from the fixed one)."""
    h = phase.shape[-2]
    neg = (-np.arange(h)) % h
    cols = [0] + ([w // 2] if w % 2 == 0 and w // 2 > 0 else [])
    odd = 0.5 * (phase[..., cols] - phase[..., neg, :][..., cols])
    return phase.at[..., cols].set(odd)


@functools.cache
def _standard_magnitude(spectrum: Spectrum, w: int, sd: float) -> np.ndarray:
    m = np.array(spectrum.magnitude, np.float64)
    c, h, wr = m.shape
    cols = [0] + ([w // 2] if w % 2 == 0 and w // 2 > 0 else [])
    neg = (-np.arange(h)) % h
    m[:, :, cols] = 0.5 * (m[:, :, cols] + m[:, neg][:, :, cols])
    m[:, 0, 0] = 0.0
    weight = np.full(wr, 2.0)  # each stored column stands for itself and its mirror …
    weight[cols] = 1.0         # … except the real ones
    mean_square = float(np.sum(m * m * weight)) / (c * h * w)  # Parseval (orthonormal): the image's mean square
    return (m * (sd / np.sqrt(max(mean_square, 1e-30)))).astype(np.float32)


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
