"""A browsable per-unit atlas of a whole network (jaxvis.gallery): render.py the job, site.py the pages."""

from .render import GalleryResult, gallery

__all__ = ["gallery", "GalleryResult"]
