"""jaxvis: see what convolutional networks have learned — MATLAB-style tools in JAX."""

from .api import activations, classify
from .display import imresize, imtile, mat2gray
from .errors import ImageError, JaxvisError, LayerError, MissingWeightsError, WeightFileError
from .models import MODELS
from .network import Network, load_model

__version__ = "0.1.0"

__all__ = [
    "Network", "load_model", "MODELS", "activations", "classify", "imtile", "mat2gray", "imresize",
    "JaxvisError", "LayerError", "ImageError", "MissingWeightsError", "WeightFileError",
]
