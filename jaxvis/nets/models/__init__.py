"""Network architectures (step graphs) and the registry of named pretrained models."""

from .registry import ARCHITECTURES, MODELS, ModelCard, build_steps

__all__ = ["ARCHITECTURES", "MODELS", "ModelCard", "build_steps"]
