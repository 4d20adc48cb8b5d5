"""The one error type of the ONNX importer."""

from __future__ import annotations

from ...errors import JaxvisError


class OnnxError(JaxvisError, ValueError):
    """An ONNX file cannot be imported: unreadable, unsupported, or inconsistent (names the file and node)."""
