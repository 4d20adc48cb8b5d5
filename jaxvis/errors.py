"""Exception hierarchy for jaxvis.

Every error raised deliberately by jaxvis derives from :class:`JaxvisError`, so
callers can catch the library's failures without also swallowing bugs.
"""

from __future__ import annotations


class JaxvisError(Exception):
    """Base class of all errors raised on purpose by jaxvis."""


class WeightFileError(JaxvisError, ValueError):
    """A weight file is missing, truncated, corrupt or in an unsupported format.

    Also a :class:`ValueError`, because the problem lies in the input data.
    """


class UnsafePickleError(WeightFileError):
    """A pickle asked for a global outside the allow-list; nothing was executed."""


class LayerError(JaxvisError, ValueError):
    """A layer name or index does not exist in the network (message lists close matches)."""


class ImageError(JaxvisError, ValueError):
    """An input image has the wrong rank, channel count, dtype, is over the pixel budget, or cannot be read."""


class MissingWeightsError(JaxvisError, ValueError):
    """A computation needs a layer whose pretrained weights were not loaded."""


class TargetError(JaxvisError, ValueError):
    """An attribution target (class index/name or (layer, channel) unit) does not exist or is ambiguous."""


class AttributionError(JaxvisError, ValueError):
    """A bad option to an attribution method (mask larger than the image, negative sample count, …)."""


class ChannelError(JaxvisError, ValueError):
    """A channel index is outside the layer's channels (message gives the valid range)."""


class NetworkError(JaxvisError, ValueError):
    """A network given to jaxvis does not satisfy the protocol (e.g. a function that returns no dict)."""


class VisualizationError(JaxvisError, ValueError):
    """A bad objective, parameterisation, transform or preset for the feature-visualization engine."""


class OutputError(JaxvisError, OSError):
    """An output path cannot be written (a folder, a parent that is a file, no permission, disk full, ``''``).

    Also an :class:`OSError`, because the problem lies in the file system; nothing half-written is left behind.
    """


class GalleryError(JaxvisError, ValueError):
    """A bad gallery request (no layers, an output folder made by another job's settings, …)."""


class PatchesError(JaxvisError, ValueError):
    """A bad option to top-k dataset patches (k < 1, no images, a cache written for other settings)."""


class EmbeddingError(JaxvisError, ValueError):
    """A bad option to the embedding atlas, or its optional extra (``jaxvis[atlas]``) is not installed."""
