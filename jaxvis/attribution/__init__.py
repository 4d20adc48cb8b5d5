"""Attribution maps: which pixels made the network say this class?

Network-level functions (each returns an :class:`Attribution` holding the map at the
network's input size, the image as the network saw it, and what was used):
:func:`saliency` (gradient, SmoothGrad, integrated gradients, guided backprop, deconvnet),
:func:`grad_cam` and :func:`occlusion_sensitivity` (MATLAB semantics, captum's on request).
Semantics for captum and MATLAB users: docs/attribution.md.

The cores (:func:`gradient`, :func:`smoothgrad`, :func:`integrated_gradients`,
:func:`grad_cam_core`, :func:`occlusion_scores`) work on any pure
`fn(params, images) -> {layer: N×H×W×C}`.
"""

from .base import Attribution, trace_counts, unit_score
from .gradcam import check_feature_layer, default_feature_layer, grad_cam, grad_cam_core
from .gradients import (
    METHODS,
    gradient,
    integrated_gradients,
    reduce_channels,
    saliency,
    smoothgrad,
)
from .occlusion import mask_starts, occlusion_scores, occlusion_sensitivity, window_mean
from .targets import Target, class_index, resolve, suggest_classes

__all__ = [
    "METHODS",
    "Attribution",
    "Target",
    "check_feature_layer",
    "class_index",
    "default_feature_layer",
    "grad_cam",
    "grad_cam_core",
    "gradient",
    "integrated_gradients",
    "mask_starts",
    "occlusion_scores",
    "occlusion_sensitivity",
    "reduce_channels",
    "resolve",
    "saliency",
    "smoothgrad",
    "suggest_classes",
    "trace_counts",
    "unit_score",
    "window_mean",
]
