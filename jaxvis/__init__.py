"""jaxvis: see what convolutional networks have learned — MATLAB-style tools in JAX."""

from .maps.channel_views import activation_grid, channel_image, heatmap_overlay, side_by_side, strongest_channel
from .nets.analysis import analyze_network
from .maps.activations import activations, classify
from .attribution import Attribution, AttributionMap, grad_cam, occlusion_sensitivity, saliency
from .imaging.display import imresize, imtile, mat2gray
from .dream import DreamResult, deep_dream, deep_dream_image
from .engine import Visualization, objectives, visualize
from .nets.function import FunctionNetwork, from_function
from .errors import (AttributionError, ChannelError, ImageError, JaxvisError, LayerError, MissingWeightsError,
                     NetworkError, TargetError, VisualizationError, WeightFileError)
from .nets.models import MODELS
from .nets.network import Network, load_model
from .nets.onnx import OnnxError, from_onnx
from .nets.protocol import Net
from .nets.receptive import ReceptiveField, receptive_field
from .recipes import DreamPhotoResult, FoolResult, class_model, dream_photo, fool
from .recipes import Inversion, StyleTransfer, invert, ssim, style_transfer
from .patches import PatchesError, TopPatches, top_patches
from .nets.cpu import configure_cpu
from .maps.filters import FilterImage, filter_image
from .maps.embedding import Embedding, EmbeddingError, atlas_image, embedding

__version__ = "0.1.0"

__all__ = [
    "Network", "load_model", "MODELS", "activations", "classify", "imtile", "mat2gray", "imresize",
    "strongest_channel", "channel_image", "side_by_side", "activation_grid", "heatmap_overlay", "analyze_network",
    "saliency", "grad_cam", "occlusion_sensitivity", "AttributionMap", "Attribution", "TargetError", "AttributionError",
    "deep_dream_image", "deep_dream", "DreamResult", "ChannelError",
    "JaxvisError", "LayerError", "ImageError", "MissingWeightsError", "WeightFileError", "NetworkError",
    "VisualizationError", "Net", "from_function", "FunctionNetwork", "visualize", "Visualization", "objectives",
    "from_onnx", "OnnxError", "receptive_field", "ReceptiveField",
    "class_model", "fool", "FoolResult", "dream_photo", "DreamPhotoResult",
    "invert", "Inversion", "style_transfer", "StyleTransfer", "ssim",
    "top_patches", "TopPatches", "PatchesError",
    "configure_cpu",
    "filter_image", "FilterImage",
    "embedding", "atlas_image", "Embedding", "EmbeddingError",
]
