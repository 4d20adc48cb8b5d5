"""The one feature-visualization engine: objectives, parameterisations, transforms, the loop, presets."""

from . import objectives, param, presets, transforms
from .laplacian import laplacian_normalize, scale_by_laplacian_norm
from .optimize import Projection, StepConfig
from .visualize import Visualization, visualize

__all__ = ["objectives", "param", "presets", "transforms", "visualize", "Visualization", "StepConfig", "Plan",
           "Projection", "scale_by_laplacian_norm", "laplacian_normalize"]

Plan = StepConfig  # its former name, kept for callers of jaxvis.engine.Plan
