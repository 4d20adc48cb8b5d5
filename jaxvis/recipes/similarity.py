"""Image similarity for judging reconstructions: SSIM (Wang et al. 2004), in numpy.

Two windows, as scikit-image's `structural_similarity`: a uniform 7×7 window with sample
covariances (its default) or Wang et al.'s 11×11 Gaussian σ 1.5 with population covariances
(`gaussian=True`, the paper's setting). Colour images: the mean of the per-channel SSIMs.
The mean is taken over the positions where the whole window fits (as skimage: a border of
half the window is cropped).
"""

from __future__ import annotations

import numpy as np

from ..errors import ImageError

K1, K2 = 0.01, 0.03


def _filter(x: np.ndarray, w1: np.ndarray) -> np.ndarray:
    """Separable correlation of H×W×C with the 1-D window `w1` along H and W, 'reflect' borders (as
    scipy.ndimage's default mode, which skimage uses; only the cropped interior is used anyway)."""
    r = len(w1) // 2
    p = np.pad(x, ((r, r), (r, r), (0, 0)), mode="symmetric")
    h, w = x.shape[:2]
    y = sum(w1[i] * p[i:i + h] for i in range(len(w1)))
    return sum(w1[i] * y[:, i:i + w] for i in range(len(w1)))


def ssim(a, b, *, data_range: float = 255.0, gaussian: bool = False, win_size: int | None = None) -> float:
    """Structural similarity of two images (H×W or H×W×C, same shape), 1.0 for identical images.

    Args:
      a, b: images on the same scale.
      data_range: the scale's range (255 for 0..255 pixels, 1 for 0..1).
      gaussian: Wang et al.'s 11×11 Gaussian window (σ 1.5, population covariance); False:
        skimage's default uniform 7×7 window with sample covariance.
      win_size: window side (odd, ≥ 3); default 7 (uniform) or 11 (Gaussian).

    Returns:
      The mean SSIM over positions and channels (float).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim not in (2, 3):
        raise ImageError(f"ssim needs two images of one shape, H×W or H×W×C; got {a.shape} and {b.shape}")
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    n = win_size or (11 if gaussian else 7)
    if n < 3 or n % 2 == 0 or n > min(a.shape[:2]):
        raise ImageError(f"ssim window must be odd, >= 3 and at most the image side {min(a.shape[:2])}; got {n}")
    if gaussian:
        t = np.arange(n) - n // 2
        w1 = np.exp(-t * t / (2 * 1.5 ** 2))
        w1 /= w1.sum()
        cov_norm = 1.0
    else:
        w1 = np.full(n, 1.0 / n)
        cov_norm = n * n / (n * n - 1.0)
    ux, uy = _filter(a, w1), _filter(b, w1)
    vx = cov_norm * (_filter(a * a, w1) - ux * ux)
    vy = cov_norm * (_filter(b * b, w1) - uy * uy)
    vxy = cov_norm * (_filter(a * b, w1) - ux * uy)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    r = (n - 1) // 2
    return float(s[r:-r, r:-r].mean())
