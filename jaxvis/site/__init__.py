"""A browsable per-unit atlas of a whole network (jaxvis.site): render.py the job, site.py the pages."""

from .render import GalleryResult, gallery

__all__ = ["gallery", "GalleryResult"]
