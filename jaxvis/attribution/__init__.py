"""Attribution maps: which pixels made the network say this class?

Network-level functions (each returns an :class:`AttributionMap` holding the map at the
network's input size, the image as the network saw it, and what was used):
:func:`saliency` (gradient, SmoothGrad, integrated gradients, guided backprop, deconvnet),
:func:`grad_cam` and :func:`occlusion_sensitivity` (MATLAB semantics, captum's on request).
Each is one :class:`AttributionMethod` subclass (captum's shape: prepared once per call for a
network, image and target, then `.attribute(...)`): :class:`Saliency`, :class:`SmoothGrad`,
:class:`IntegratedGradients`, :class:`GuidedBackprop`, :class:`Deconvolution`,
:class:`GradCam`, :class:`Occlusion`. Semantics for captum and MATLAB users: docs/attribution.md.

The cores (:func:`gradient`, :func:`smoothgrad`, :func:`integrated_gradients`,
:func:`grad_cam_core`, :func:`occlusion_scores`) work on any pure
`fn(params, images) -> {layer: N×H×W×C}`.
"""

from ..nets.classes import class_index, suggest_classes
from .base import AttributionMethod, unit_score
from .gradcam import GradCam, check_feature_layer, default_feature_layer, grad_cam, grad_cam_core
from .gradients import (
    METHODS,
    Deconvolution,
    GuidedBackprop,
    IntegratedGradients,
    Saliency,
    SmoothGrad,
    gradient,
    integrated_gradients,
    reduce_channels,
    saliency,
    smoothgrad,
)
from .occlusion import Occlusion, mask_starts, occlusion_scores, occlusion_sensitivity, window_mean
from .result import Attribution, AttributionMap
from .targets import Target, resolve

__all__ = [
    "METHODS",
    "Attribution",
    "AttributionMap",
    "AttributionMethod",
    "Deconvolution",
    "GradCam",
    "GuidedBackprop",
    "IntegratedGradients",
    "Occlusion",
    "Saliency",
    "SmoothGrad",
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
    "unit_score",
    "window_mean",
]
