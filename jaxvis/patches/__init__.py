"""Top-k dataset patches: the images (and where in them) that excite each unit most.

* :mod:`.loader`: background image loader (thread pool, fixed-size batches), usable by others;
* :mod:`.topk`: the streaming per-unit top-k (one jitted merge per batch, exact host merge);
* :mod:`.api`: :func:`top_patches`;
* :mod:`.result`: :class:`TopPatches` (hits, crops, reconstructions, tiles);
* :mod:`.html`: the HTML report.
"""

from ..errors import PatchesError
from .scan import top_patches
from .loader import BatchLoader, Skipped, list_images
from .result import Crops, Hit, TopPatches

__all__ = ["top_patches", "PatchesError", "TopPatches", "Hit", "Crops", "BatchLoader", "Skipped", "list_images"]
