"""Deep dream (MATLAB's `deepDreamImage`): Laplacian-normalised gradient ascent, one jit per pyramid level."""

from .api import deep_dream, deep_dream_image
from .core import DreamResult, dream, dream_batch, level_function, pyramid_sizes
from .laplacian import lap_normalize, laplacian_normalize
from .objectives import Objective, channel_mean, dream_objective

__all__ = ["deep_dream_image", "deep_dream", "DreamResult", "dream", "dream_batch", "level_function",
           "pyramid_sizes", "lap_normalize", "laplacian_normalize", "Objective", "channel_mean", "dream_objective"]
