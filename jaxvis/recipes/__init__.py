"""CS231n's image toolbox on the engine: one module per recipe."""

from .invert import Inversion, invert  # noqa: F401
from .similarity import ssim  # noqa: F401
from .style import StyleTransfer, style_transfer  # noqa: F401
