"""`TopPatches.save_html`: an index page with one PNG per unit (crops beside their reconstructions)."""

from __future__ import annotations

import html
import os

from ..datasets import shown
from ..imaging.display import save_png
from ..imaging.fileio import atomic_path, make_folder
from .loader import DECODED_MAX

SHOWN_SKIPPED = 1000  # skipped files listed on the page (all of them are in skipped.txt)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def write_html(result, folder, *, layers=None, units=None, reconstruction: bool = True, thumbnail: int = 64,
               context: int = 32) -> list:
    """Write ``folder/<layer>/unit_NNNN.png`` for each unit and ``folder/index.html``; return the paths."""
    folder = make_folder(folder)  # only the folder named; its parent must exist
    layers = result.layers if layers is None else [result._layer(l) for l in layers]
    written, body = [], []
    for layer in layers:
        us = range(result.value[layer].shape[0]) if units is None else [result._unit(layer, u) for u in units]
        if reconstruction:
            result.reconstruct(layer, us, context)
        rf = result.receptive_field(layer)
        beside = f", each beside its {result.settings['relu']} reconstruction" if reconstruction else ""
        body.append(f"<h2>{html.escape(layer)}</h2><p>receptive field {rf.size[0]}×{rf.size[1]} px, "
                    f"stride {rf.stride[0]}; crops at the field's box"
                    + (f" (at least {context} px, the field outlined in red)" if context > min(rf.size) else "")
                    + f"{beside}.</p>")
        decoded: dict = {}  # photos decoded once across units, up to DECODED_MAX at a time
        for u in us:
            if len(decoded) > DECODED_MAX:
                decoded.clear()
            p = folder / _safe(layer) / f"unit_{u:04d}.png"
            save_png(p, result.tile(layer, [u], reconstruction=reconstruction, thumbnail=thumbnail, context=context,
                                    decoded=decoded), parents=True)
            written.append(p)
            hits = result.hits(layer, u)
            title = "; ".join(f"#{h.image} {shown(os.path.basename(h.source)) if h.source else ''} ({h.y},{h.x}) "
                              f"{h.value:.4g}" for h in hits)
            classes = ", ".join(f"{html.escape(c)} {n}" for c, n in result.hit_classes(layer, u).items())
            fired = " — never fired on these images (activation 0 everywhere)" if result.never_fired(layer, u) else ""
            body.append(f'<div><b>unit {u}</b>{fired}{" (hits: " + classes + ")" if classes else ""}<br>'
                        f'<img src="{html.escape(p.relative_to(folder).as_posix())}" title="{html.escape(title)}"></div>')
    skipped = "".join(f"<li>{html.escape(shown(s.source))}: {html.escape(s.reason)}</li>"
                      for s in result.skipped[:SHOWN_SKIPPED])
    if result.skipped:  # every skipped file, one per line: a folder of 100,000 junk files stays out of the page
        listing = folder / "skipped.txt"
        with atomic_path(listing) as tmp:
            tmp.write_text(result.skipped_report() + "\n", encoding="utf-8")
        written.append(listing)
        if len(result.skipped) > SHOWN_SKIPPED:
            skipped += f"<li>… and {len(result.skipped) - SHOWN_SKIPPED} more: all in skipped.txt</li>"
    s = result.settings
    doc = (f"<!doctype html><html><head><meta charset='utf-8'><title>top-{result.k} patches: {html.escape(s['net'])}"
           f"</title></head><body><h1>Top-{result.k} dataset patches of {html.escape(s['net'])}</h1>"
           f"<p>{result.n_images} images, {len(result.skipped)} skipped; input {s['input_size'][0]}×{s['input_size'][1]} "
           f"({s['resize']}); batch {s['batch_size']}. Per unit: the k images with the largest maximum activation "
           f"(one hit per image), value under each crop.</p>{''.join(body)}"
           f"{'<h2>Skipped</h2><ul>' + skipped + '</ul>' if skipped else ''}</body></html>")
    index = folder / "index.html"
    with atomic_path(index) as tmp:
        tmp.write_text(doc, encoding="utf-8")
    written.append(index)
    return written


__all__ = ["write_html"]
