"""Natural-image magnitude spectra for MACO (`jaxvis.natural_spectrum`) and the one jaxvis ships.

MACO (Fel et al. 2023) fixes the Fourier magnitude of the visualisation to the average magnitude of
natural images and optimises only the phase. The average is taken here as lucid's parameterisation
sees images: colours in ImageNet's decorrelated basis (the inverse of the recorrelation the image
goes through), per channel, `rfft2` with orthonormal scaling — so a spectrum computed at one size
holds per-coefficient values that another size can interpolate (for a stationary image the expected
|coefficient|² at a frequency does not depend on the canvas with `norm="ortho"`).

A photo is not periodic, and the jump between its opposite edges puts a bright cross on the
frequency axes of its spectrum that is no property of natural scenes; images with that magnitude
would be full of horizontal and vertical streaks. Each crop is therefore first replaced by its
periodic component (Moisan 2011, "Periodic plus smooth image decomposition").
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from PIL import Image

from ..errors import VisualizationError
from ..imaging.images import read_image
from ..patches.loader import list_images
from .param import COLOR

DATA = Path(__file__).resolve().parent.parent / "data"
SHIPPED = DATA / "natural_spectrum_256.npy"


@dataclasses.dataclass(frozen=True, eq=False)
class Spectrum:
    """A magnitude spectrum C×H×(W//2+1) (float32, `rfft2` layout, orthonormal scaling).

    Hashable by content (a digest), so parameterisations holding one are jit-cache keys.

    Attributes:
      magnitude: the array (read-only).
      source: how it was made (for settings and reports).
    """

    magnitude: np.ndarray
    source: str = ""

    def __post_init__(self):
        m = np.array(self.magnitude, np.float32)
        if m.ndim != 3 or m.shape[2] < 1 or not np.all(np.isfinite(m)) or np.any(m < 0):
            raise VisualizationError(f"a magnitude spectrum is C×H×(W//2+1) of finite values >= 0, got shape "
                                     f"{np.shape(self.magnitude)}")
        m.setflags(write=False)
        object.__setattr__(self, "magnitude", m)
        object.__setattr__(self, "_digest", hashlib.sha1(m.tobytes() + str(m.shape).encode()).hexdigest())

    def __hash__(self) -> int:
        return hash(self._digest)  # type: ignore[attr-defined]

    def __eq__(self, other) -> bool:
        return isinstance(other, Spectrum) and self._digest == other._digest  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"Spectrum({'×'.join(map(str, self.magnitude.shape))}, {self.source or self._digest[:8]})"  # type: ignore[attr-defined]

    @property
    def channels(self) -> int:
        return int(self.magnitude.shape[0])

    @property
    def rows(self) -> int:
        return int(self.magnitude.shape[1])

    def fits(self, size: tuple[int, int]) -> bool:
        """Whether this is the `rfft2` layout of an H×W image."""
        return self.magnitude.shape[1:] == (size[0], size[1] // 2 + 1)

    def resized(self, size: tuple[int, int]) -> Spectrum:
        """The spectrum at another image size: log-magnitude interpolated bilinearly at the new grid's
        frequencies (cycles per pixel). The source's width is taken as 2·(columns − 1)."""
        h, w = int(size[0]), int(size[1])
        if self.fits((h, w)):
            return self
        m = np.log(np.maximum(_fill_dc(self.magnitude), 1e-12))
        sh, sw = m.shape[1], 2 * (m.shape[2] - 1)
        m = np.fft.fftshift(m, axes=1)  # rows in increasing frequency: index = f·sh + sh//2
        fy = np.fft.fftfreq(h) * sh + sh // 2
        fx = np.fft.rfftfreq(w) * sw
        y0 = np.clip(np.floor(fy).astype(int), 0, sh - 1)
        x0 = np.clip(np.floor(fx).astype(int), 0, m.shape[2] - 1)
        y1, x1 = np.minimum(y0 + 1, sh - 1), np.minimum(x0 + 1, m.shape[2] - 1)
        ty, tx = np.clip(fy - y0, 0, 1)[:, None], np.clip(fx - x0, 0, 1)[None, :]
        out = ((1 - ty) * (1 - tx) * m[:, y0][:, :, x0] + (1 - ty) * tx * m[:, y0][:, :, x1]
               + ty * (1 - tx) * m[:, y1][:, :, x0] + ty * tx * m[:, y1][:, :, x1])
        out = np.exp(out)
        neg = (-np.arange(h)) % h  # a real image's spectrum is even on the columns without a mirror: keep it so
        cols = [0] + ([w // 2] if w % 2 == 0 else [])
        out[:, :, cols] = 0.5 * (out[:, :, cols] + out[:, neg][:, :, cols])
        return Spectrum(out, f"{self.source} resized to {h}×{w}")

    def with_channels(self, channels: int) -> Spectrum:
        """This spectrum for a network of `channels` input channels: itself if the count matches, else the
        root-mean-square over its channels for each one (a natural image's 1/f falloff; the engine scales the
        magnitude to the image's std anyway, and non-RGB images have no colour basis to keep)."""
        if channels == self.channels:
            return self
        rms = np.sqrt(np.mean(np.square(self.magnitude, dtype=np.float64), axis=0, keepdims=True))
        return Spectrum(np.repeat(rms, int(channels), axis=0), f"{self.source}, per channel ×{channels}")

    def save(self, path: str | os.PathLike) -> str:
        """Write the magnitude as float16 `.npy` (about 200 KB for 3×256×129); returns the path."""
        np.save(path, self.magnitude.astype(np.float16))
        return str(path)


def _fill_dc(m: np.ndarray) -> np.ndarray:
    """The magnitude with each channel's DC (the mean brightness, far above its neighbours) replaced by
    its neighbours' mean, so interpolation near zero frequency follows the spectrum's slope."""
    m = np.array(m, np.float64)
    nb = [m[:, 1, 0], m[:, -1, 0]] + ([m[:, 0, 1]] if m.shape[2] > 1 else [])
    m[:, 0, 0] = np.mean(nb, axis=0)
    return m


def periodic_component(u: np.ndarray) -> np.ndarray:
    """Moisan's periodic component of H×W×C images: the image minus the smooth image whose Laplacian
    carries the jumps between opposite edges, so its DFT has no cross of edge artefacts."""
    u = np.asarray(u, np.float64)
    h, w = u.shape[:2]
    v = np.zeros_like(u)
    v[0] += u[-1] - u[0]
    v[-1] += u[0] - u[-1]
    v[:, 0] += u[:, -1] - u[:, 0]
    v[:, -1] += u[:, 0] - u[:, -1]
    q = np.arange(h)[:, None]
    r = np.arange(w)[None, :]
    den = 2 * np.cos(2 * np.pi * q / h) + 2 * np.cos(2 * np.pi * r / w) - 4
    den[0, 0] = 1.0
    s_hat = np.fft.fft2(v, axes=(0, 1)) / den[..., None]
    s_hat[0, 0] = 0.0
    return u - np.real(np.fft.ifft2(s_hat, axes=(0, 1)))


def decorrelate(x01: np.ndarray) -> np.ndarray:
    """H×W×3 colours (0..1) → coordinates in lucid's decorrelated colour basis (the inverse of the
    recorrelation `x @ COLOR.T` the fft/maco parameterisations apply)."""
    return (np.asarray(x01, np.float64) - 0.5) @ np.linalg.inv(COLOR.T.astype(np.float64))


def _images(images) -> list[np.ndarray]:
    """float64 H×W×C images on the 0..1 scale from a folder, paths, an N×H×W×C array or a list of arrays."""
    if isinstance(images, (str, os.PathLike)):
        folder = Path(images)
        if folder.is_dir():
            paths, _ = list_images(folder)
            if not paths:
                raise VisualizationError(f"no images in {str(folder)!r} to compute a spectrum from")
            return [read_image(p).astype(np.float64) / 255.0 for p in paths]
        return [read_image(folder).astype(np.float64) / 255.0]
    if isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)
    if isinstance(images, np.ndarray):
        images = [images]
    out = []
    for im in images if isinstance(images, Sequence) else list(images):
        if isinstance(im, (str, os.PathLike)):
            out.append(read_image(im).astype(np.float64) / 255.0)
            continue
        a = np.asarray(im, np.float64)
        if a.ndim == 2:
            a = a[..., None]
        if a.ndim != 3:
            raise VisualizationError(f"images must be H×W or H×W×C arrays (0..255) or paths, got shape {a.shape}")
        out.append(a / 255.0)
    if not out:
        raise VisualizationError("natural_spectrum needs at least one image")
    return out


def _crop(im: np.ndarray, size: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A random crop of `im` with the aspect of `size`, between `size` and the largest that fits (uniform
    in side), resized to `size` with an antialiasing filter (per channel, so any channel count)."""
    h, w = im.shape[:2]
    th, tw = size
    most = min(h / th, w / tw)
    k = rng.uniform(min(1.0, most), most) if most > 1 else most
    ch, cw = max(1, int(round(th * k))), max(1, int(round(tw * k)))
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    c = im[y:y + ch, x:x + cw]
    return np.stack([np.asarray(Image.fromarray(c[..., i].astype(np.float32), mode="F").resize(
        (tw, th), Image.Resampling.LANCZOS), np.float64) for i in range(c.shape[2])], axis=-1)


def natural_spectrum(images, size: int | tuple[int, int], *, crops: int = 16, decorrelate_colors: bool = True,
                     seed: int = 0) -> Spectrum:
    """The average Fourier magnitude of natural images: MACO's fixed magnitude, from your own photos.

    Each image gives `crops` random crops (from `size` up to the largest that fits, resized to `size`);
    each crop's colours are decorrelated (3-channel images; lucid's ImageNet basis, the one the
    parameterisation recorrelates with) unless `decorrelate_colors` is False, replaced by its periodic
    component (no edge cross), and its per-channel `rfft2` magnitude (orthonormal) averaged. Images
    with any number of channels work (each channel on its own); mix no channel counts.

    Args:
      images: a folder, an image path, a list of paths, an N×H×W×C array or a list of H×W×C arrays
        (0..255).
      size: H×W of the visualisation (int: square).
      crops: crops per image.
      decorrelate_colors: decorrelate 3-channel images first (set False for non-RGB data).
      seed: the crops' randomness.

    Returns:
      :class:`Spectrum` C×H×(W//2+1).

    Raises:
      VisualizationError: no images, images of different channel counts, bad sizes.
    """
    hw = (int(size), int(size)) if isinstance(size, (int, np.integer)) else tuple(int(v) for v in size)
    if len(hw) != 2 or min(hw) < 2 or int(crops) < 1:
        raise VisualizationError(f"size must be >= 2 pixels (int or (H, W)) and crops >= 1, got {size!r}, {crops!r}")
    ims = _images(images)
    channels = {im.shape[2] for im in ims}
    if len(channels) != 1:
        raise VisualizationError(f"images of different channel counts {sorted(channels)}: give one kind")
    rng = np.random.default_rng(seed)
    total: np.ndarray | float = 0.0
    n = 0
    for im in ims:
        for _ in range(int(crops)):
            c = _crop(im, hw, rng)
            if decorrelate_colors and c.shape[2] == 3:
                c = decorrelate(c)
            else:
                c = c - 0.5
            total = total + np.abs(np.fft.rfft2(periodic_component(c), axes=(0, 1), norm="ortho"))
            n += 1
    mag = np.moveaxis(np.asarray(total) / n, -1, 0)
    return Spectrum(mag, f"natural_spectrum of {len(ims)} images × {crops} crops at {hw[0]}×{hw[1]}")


def default_spectrum(size: tuple[int, int]) -> Spectrum:
    """The spectrum jaxvis ships (jaxvis/data/README.md: licence-clean photos, 256×256), at `size`."""
    return _shipped().resized(size)


@functools.cache
def _shipped() -> Spectrum:
    if not SHIPPED.is_file():
        raise VisualizationError(f"the shipped spectrum {SHIPPED} is missing; compute one with "
                                 f"jaxvis.natural_spectrum(photos, size) and pass it as spectrum=")
    return Spectrum(np.load(SHIPPED).astype(np.float32), "jaxvis natural spectrum (256×256)")
