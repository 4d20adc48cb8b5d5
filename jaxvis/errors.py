"""Exception hierarchy for jaxvis: the one place every error type is defined.

Every error raised deliberately by jaxvis derives from :class:`JaxvisError`, so
callers can catch the library's failures without also swallowing bugs. Each area
has its own subclass, which also derives from the built-in type a caller would
expect (``ValueError`` for bad input, ``TypeError`` for a bad call, ``OSError``
/ ``FileNotFoundError`` for the file system). tests/test_errors.py fails on any
``raise`` of a bare built-in exception in the library.
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


class WeightsNotFoundError(JaxvisError, FileNotFoundError):
    """No weight file where one was looked for (the message says where, and how to get one).

    Also a :class:`FileNotFoundError`, because the file is absent.
    """


class ModelError(JaxvisError, ValueError):
    """An unknown model name, architecture or architecture option, or a ReLU mode or step kind a model lacks.

    The message lists the valid choices (and, for a model name, the close matches).
    """


class ArgumentTypeError(JaxvisError, TypeError):
    """A call with an argument of the wrong type, or the wrong combination of arguments.

    Also a :class:`TypeError`, as Python raises for a bad call.
    """


class LayerError(JaxvisError, ValueError):
    """A layer name or index does not exist in the network (message lists close matches)."""


class ImageError(JaxvisError, ValueError):
    """An input image has the wrong rank, channel count, dtype, is over the pixel budget, or cannot be read."""


class DisplayError(JaxvisError, ValueError):
    """A bad argument to a display helper (mat2gray, imresize, imtile, colormaps, overlays, channel views)."""


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


class DreamError(JaxvisError, ValueError):
    """A bad option to deep_dream_image (the message names the option and its valid range)."""


class OutputError(JaxvisError, OSError):
    """An output path cannot be written (a folder, a parent that is a file, no permission, disk full, ``''``).

    Also an :class:`OSError`, because the problem lies in the file system; nothing half-written is left behind.
    """


class GalleryError(JaxvisError, ValueError):
    """A bad gallery request (no layers, an output folder made by another job's settings, …)."""


class PatchesError(JaxvisError, ValueError):
    """A bad option to top-k dataset patches (k < 1, no images, a cache written for other settings)."""


class DatasetError(JaxvisError, ValueError):
    """A set of photos cannot be opened: not a folder, list file or tar shard, nothing readable in it, or a bad
    layout option (the message names the path and what would be accepted)."""


class LockedError(JaxvisError, OSError):
    """Another process holds the lock of a gallery site or top-patches cache (the message names its pid).

    Also an :class:`OSError`: the file is in use. A lock whose process has died is taken over silently.
    """


class EmbeddingError(JaxvisError, ValueError):
    """A bad option to the embedding atlas, or its optional extra (``jaxvis[atlas]``) is not installed."""


class OnnxError(JaxvisError, ValueError):
    """An ONNX file cannot be imported: unreadable, unsupported, or inconsistent (names the file and node)."""


class UsageError(JaxvisError, ValueError):
    """A bad combination of command-line options (the CLI prints it and exits with status 2)."""
