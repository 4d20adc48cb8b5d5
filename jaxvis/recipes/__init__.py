"""CS231n's image toolbox and feature accentuation on the engine: one module per recipe."""

from .accentuate import Accentuation, accentuate  # noqa: F401

from .class_model import class_model  # noqa: F401
from .fool import FoolResult, fool  # noqa: F401
from .dream_photo import DreamPhotoResult, dream_photo  # noqa: F401
from .invert import Inversion, invert  # noqa: F401
from .similarity import ssim  # noqa: F401
from .style import StyleTransfer, style_transfer  # noqa: F401
