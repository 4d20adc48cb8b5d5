"""The gallery (`jaxvis.gallery`): a browsable per-unit atlas of a whole network as a static site — plan.py what
is rendered, render.py the resumable job, data.py the dataset columns, pages.py the HTML."""

from .render import GalleryResult, gallery

__all__ = ["gallery", "GalleryResult"]
