"""jaxvis: see what convolutional networks have learned — MATLAB-style tools in JAX.

`import jaxvis` is cheap: every public name below is imported on first use (PEP 562), so JAX, Flax and
optax load when a tool is first called, not at import. `from jaxvis import X` works as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it (the one place a reader finds where a name lives)
_WHERE = {
    "jaxvis.errors": ("JaxvisError", "LayerError", "ImageError", "MissingWeightsError", "WeightFileError",
                      "NetworkError", "VisualizationError", "TargetError", "AttributionError", "ChannelError",
                      "PatchesError", "EmbeddingError", "GalleryError", "OutputError", "OnnxError", "DisplayError",
                      "DreamError", "ModelError", "WeightsNotFoundError", "ArgumentTypeError", "UsageError",
                      "DatasetError", "LockedError"),
    "jaxvis.datasets": ("Dataset", "open_dataset", "image_folder", "list_file", "shards"),
    "jaxvis.nets.network": ("Network", "load_model"),
    "jaxvis.nets.models": ("MODELS",),
    "jaxvis.nets.protocol": ("Net",),
    "jaxvis.nets.function": ("FunctionNetwork", "from_flax", "from_function"),
    "jaxvis.nets.onnx": ("from_onnx",),
    "jaxvis.nets.receptive": ("ReceptiveField", "receptive_field"),
    "jaxvis.nets.analysis": ("analyze_network",),
    "jaxvis.nets.cpu": ("configure_cpu",),
    "jaxvis.maps.activations": ("activations", "classify"),
    "jaxvis.maps.channel_views": ("activation_grid", "channel_image", "heatmap_overlay", "side_by_side",
                                  "strongest_channel"),
    "jaxvis.maps.filters": ("FilterImage", "filter_image"),
    "jaxvis.maps.embedding": ("Embedding", "atlas_image", "embedding"),
    "jaxvis.imaging.display": ("imresize", "imtile", "mat2gray"),
    "jaxvis.attribution": ("Attribution", "AttributionMap", "grad_cam", "occlusion_sensitivity", "saliency"),
    "jaxvis.dream": ("DreamResult", "deep_dream", "deep_dream_image"),
    "jaxvis.engine": ("Visualization", "objectives", "visualize"),
    "jaxvis.engine.spectrum": ("Spectrum", "natural_spectrum"),
    "jaxvis.recipes": ("DreamPhotoResult", "FoolResult", "class_model", "dream_photo", "fool", "Inversion",
                       "StyleTransfer", "invert", "ssim", "style_transfer", "Accentuation", "accentuate"),
    "jaxvis.patches": ("TopPatches", "top_patches"),
    "jaxvis.site": ("GalleryResult", "gallery"),
}
_MODULE_OF = {name: mod for mod, names in _WHERE.items() for name in names}
_SUBPACKAGES = ("attribution", "cli", "datasets", "dream", "engine", "imaging", "maps", "nets", "patches", "recipes", "site",
                "errors")

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name in _MODULE_OF:
        value = getattr(importlib.import_module(_MODULE_OF[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    if name in _SUBPACKAGES:  # `jaxvis.dream.seamless` without importing jaxvis.dream first
        return importlib.import_module(f"jaxvis.{name}")
    raise AttributeError(f"module 'jaxvis' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_SUBPACKAGES))


if TYPE_CHECKING:  # the same names, eagerly, for type checkers and IDEs
    from .attribution import Attribution, AttributionMap, grad_cam, occlusion_sensitivity, saliency
    from .datasets import Dataset, image_folder, list_file, open_dataset, shards
    from .dream import DreamResult, deep_dream, deep_dream_image
    from .engine import Visualization, objectives, visualize
    from .engine.spectrum import Spectrum, natural_spectrum
    from .errors import (ArgumentTypeError, AttributionError, ChannelError, DatasetError, DisplayError, DreamError,
                         EmbeddingError, GalleryError, ImageError, JaxvisError, LayerError, LockedError,
                         MissingWeightsError, ModelError,
                         NetworkError, OnnxError, OutputError, PatchesError, TargetError, UsageError,
                         VisualizationError, WeightFileError, WeightsNotFoundError)
    from .imaging.display import imresize, imtile, mat2gray
    from .maps.activations import activations, classify
    from .maps.channel_views import activation_grid, channel_image, heatmap_overlay, side_by_side, strongest_channel
    from .maps.embedding import Embedding, atlas_image, embedding
    from .maps.filters import FilterImage, filter_image
    from .nets.analysis import analyze_network
    from .nets.cpu import configure_cpu
    from .nets.function import FunctionNetwork, from_flax, from_function
    from .nets.models import MODELS
    from .nets.network import Network, load_model
    from .nets.onnx import from_onnx
    from .nets.protocol import Net
    from .nets.receptive import ReceptiveField, receptive_field
    from .patches import TopPatches, top_patches
    from .recipes import (Accentuation, DreamPhotoResult, FoolResult, Inversion, StyleTransfer, accentuate,
                          class_model, dream_photo, fool, invert, ssim, style_transfer)
    from .site import GalleryResult, gallery
