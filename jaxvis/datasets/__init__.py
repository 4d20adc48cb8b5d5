"""Sets of photos as users have them: folders, ImageFolder trees, list files, WebDataset tar shards.

Listing and reading never trust the file system: see :mod:`jaxvis.datasets.listing` and
:mod:`jaxvis.datasets.read`.
"""

from .dataset import Dataset, folder, image_folder, is_dataset_like, list_file, open_dataset, paths, shards
from .listing import IMAGE_SUFFIXES, Entry, Skipped, shown
from .read import MAX_PHOTO_BYTES

__all__ = ["IMAGE_SUFFIXES", "MAX_PHOTO_BYTES", "Dataset", "Entry", "Skipped", "folder", "image_folder",
           "is_dataset_like", "list_file", "open_dataset", "paths", "shards", "shown"]
