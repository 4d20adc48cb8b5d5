"""Results that show themselves: one `picture()` gives `.save(path)` and Jupyter's inline display.

Every result type that is a picture (a :class:`jaxvis.Visualization`, an attribution map, top patches,
filters, inversions, …) derives from :class:`Picture` and defines only :meth:`Picture.picture`; the
PNG file and the notebook image are then the same picture, drawn by one code path. Results that are
tables (``analyze_network``'s report, a gallery) give ``_repr_html_`` themselves.
"""

from __future__ import annotations

import abc
import base64
import dataclasses
import html
import io
import os
from typing import Any

import numpy as np
from PIL import Image

from .display import save_png, to_uint8

# Longest side of a picture shown inline; larger ones are shrunk for display (files keep every pixel).
DISPLAY_MAX = 1024


def grid_for(n: int, max_ratio: float = 4.0) -> tuple[int, int] | None:
    """(rows, cols) with rows·cols == n, closest to square and at most `max_ratio` wide (8 → 2×4, 30 → 5×6),
    so a tiled result has no empty cells; None where no such grid exists (then imtile's default)."""
    for rows in range(int(np.sqrt(n)), 0, -1):
        if n % rows == 0:
            return (rows, n // rows) if n // rows <= max_ratio * rows else None
    return None


def png_bytes(array, max_side: int | None = DISPLAY_MAX) -> bytes:
    """PNG bytes of an H×W(×3) uint8 or [0, 1] float picture, shrunk to `max_side` pixels (None: as is)."""
    a = to_uint8(np.asarray(array))
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    im = Image.fromarray(np.ascontiguousarray(a))
    if max_side is not None and max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def img_tag(array, alt: str = "", max_side: int | None = DISPLAY_MAX) -> str:
    """An ``<img>`` with the picture inline (a data URI): HTML reprs that need no files."""
    data = base64.b64encode(png_bytes(array, max_side)).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


class Picture(abc.ABC):
    """Mixin of result types that are pictures: define :meth:`picture`, get `.save` and notebook display.

    ``result.save(path, **options)`` writes ``result.picture(**options)`` as a PNG (atomically; the folder
    must exist) and returns the path; in Jupyter the result displays as that picture (``_repr_png_``),
    at most :data:`DISPLAY_MAX` pixels a side.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # IPython takes a class's own __repr__ (which @dataclass writes) before a base's _repr_pretty_: put
        # the one-line text view in each result class itself.
        cls._repr_pretty_ = Picture._repr_pretty_  # type: ignore[method-assign]

    @abc.abstractmethod
    def picture(self) -> np.ndarray:
        """The result as one picture: uint8 H×W×3 (or floats in [0, 1]). Subclasses add keyword options."""

    def save(self, path: str | os.PathLike, **options: Any) -> str:
        """Write :meth:`picture` (with `options`) as PNG, atomically; returns the path."""
        save_png(path, self.picture(**options))
        return str(path)

    def _display_picture(self) -> np.ndarray:
        """What the notebook shows: :meth:`picture` with its defaults (a subclass may pick cheaper options)."""
        return self.picture()

    def _repr_png_(self) -> bytes | None:
        return png_bytes(self._display_picture())

    def _repr_pretty_(self, p, cycle: bool) -> None:
        """IPython's text view: one line (arrays by shape), not the pixels of every array."""
        p.text(summary(self))


def summary(obj) -> str:
    """`Name(field=value, …)` with arrays shown by shape and dtype and long values cut: a readable one-liner."""
    parts = []
    for f in dataclasses.fields(obj) if dataclasses.is_dataclass(obj) else ():
        if not f.repr:
            continue
        v = getattr(obj, f.name)
        if isinstance(v, np.ndarray) or type(v).__module__.split(".")[0] in ("jax", "jaxlib"):  # a jax.Array
            text = f"{'×'.join(map(str, np.shape(v)))} {getattr(v, 'dtype', '')}".strip()
        else:
            text = repr(v)
            text = text if len(text) <= 60 else text[:57] + "…"
        parts.append(f"{f.name}={text}")
    return f"{type(obj).__name__}({', '.join(parts)})"
