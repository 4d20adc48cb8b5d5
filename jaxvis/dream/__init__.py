"""MATLAB's deepDreamImage, as the `matlab` preset of the engine."""

from .matlab import DreamResult, deep_dream, deep_dream_image, pyramid_sizes

__all__ = ["deep_dream_image", "deep_dream", "DreamResult", "pyramid_sizes"]
