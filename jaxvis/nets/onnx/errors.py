"""The ONNX importer's error type; defined in jaxvis.errors, importable here as before."""

from __future__ import annotations

from ...errors import OnnxError

__all__ = ["OnnxError"]
