"""The gallery's static site: index (layer table), one page per layer, one per unit, index.json.

Plain HTML and one CSS file with relative links, so it works from ``file://`` and any static host.
Every page is written atomically; the manifest is the single source the pages are made from.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from ..imaging.fileio import atomic_path
from ..nets.receptive import receptive_field
from .plan import LayerPlan

CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}
a{color:#0b57d0;text-decoration:none}a:hover{text-decoration:underline}
table{border-collapse:collapse;font-size:14px}th,td{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f1f1f1}td.n{text-align:right}.grid{display:flex;flex-wrap:wrap;gap:10px}
.cell{width:110px;font-size:12px;text-align:center}.cell img{display:block;margin:0 auto;image-rendering:auto}
.big img{border:1px solid #ccc}.row{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
figure{margin:0;font-size:12px;text-align:center}nav{margin:.5em 0 1em}small{color:#666}
.big figure{display:table}.big figcaption{display:table-caption;caption-side:bottom}
"""


def _page(title: str, body: str, depth: int) -> str:
    up = "../" * depth
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width\"><title>{html.escape(title)}</title>"
            f"<link rel=\"stylesheet\" href=\"{up}style.css\"></head><body>{body}</body></html>\n")


def _write(path: Path, text: str) -> None:
    with atomic_path(path, parents=True) as tmp:  # inside the site folder gallery() made
        tmp.write_text(text, encoding="utf-8")


def _dims(shape) -> str:
    return "×".join(str(d) for d in shape)


def write_site(net, plans: list[LayerPlan], out: Path, settings: dict, units: dict[str, list[dict]],
               extra: dict[str, Any]) -> dict:
    """Write index.html, layers/*.html, units/*/*.html, style.css and index.json; return the manifest."""
    e = html.escape
    layers: list[dict[str, Any]] = []
    for lp in plans:
        rf = receptive_field(net, lp.name)
        ex = extra.get(lp.name, {})
        recs = []
        for r in units[lp.name]:
            r = dict(r, page=f"units/{lp.slug}/{r['unit']}.html")
            r.update(ex.get(r["unit"], {}))
            recs.append(r)
        layers.append({"name": lp.name, "slug": lp.slug, "type": lp.type, "shape": list(lp.shape),
                       "page": f"layers/{lp.slug}.html",
                       "receptive_field": {"size": list(rf.size), "stride": list(rf.stride),
                                           "offset": list(rf.offset), "spatial": rf.spatial},
                       "units": recs})
    manifest = {"model": net.name, "input_size": list(net.input_size), "settings": settings, "layers": layers}

    rows = []
    for L in layers:
        rfd = L["receptive_field"]
        rows.append(f"<tr><td><a href=\"{e(L['page'])}\">{e(L['name'])}</a></td><td>{e(L['type'])}</td>"
                    f"<td>{_dims(L['shape'])}</td><td class=n>{len(L['units'])}</td>"
                    f"<td>{_dims(rfd['size'])}</td><td>{_dims(rfd['stride'])}</td></tr>")
    s = settings
    intro = (f"<h1>{e(net.name)}</h1><p>Feature visualisations (preset <b>{e(str(s.get('preset')))}</b>, "
             f"{e(str(s.get('steps') or 'preset'))} steps, seed {e(str(s.get('seed')))}) of every unit of "
             f"{len(layers)} layers, input {_dims(net.input_size)}. Made by jaxvis; data: "
             f"{e(str(s.get('images') or 'none'))}. <a href=\"index.json\">index.json</a></p>")
    table = ("<table><thead><tr><th>Layer</th><th>Type</th><th>Activations</th><th>Units</th>"
             "<th>Receptive field</th><th>Stride</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
    _write(out / "style.css", CSS)
    _write(out / "index.html", _page(f"{net.name} — jaxvis gallery", intro + table, 0))
    for L in layers:
        _write(out / L["page"], _layer_page(net, L))
        for i, r in enumerate(L["units"]):
            prev = L["units"][i - 1] if i else None
            nxt = L["units"][i + 1] if i + 1 < len(L["units"]) else None
            _write(out / r["page"], _unit_page(net, L, r, prev, nxt))
    _write(out / "index.json", json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def _layer_page(net, L: dict) -> str:
    e = html.escape
    cells = []
    for r in L["units"]:
        mean = f"<br><small>mean {r['mean']:.3g}</small>" if "mean" in r else ""
        cells.append(f"<div class=cell><a href=\"../{e(r['page'])}\"><img src=\"../{e(r['thumb'])}\" "
                     f"width=96 height=96 loading=lazy alt=\"{e(r['label'])}\">{e(str(r['unit']))}</a>"
                     f"<br><small>{e(r['label'] if not r['label'].startswith(L['name']) else '')}</small>{mean}</div>")
    rf = L["receptive_field"]
    body = (f"<nav><a href=\"../index.html\">{e(net.name)}</a> › {e(L['name'])}</nav><h1>{e(L['name'])}</h1>"
            f"<p>{e(L['type'])} · activations {_dims(L['shape'])} · receptive field {_dims(rf['size'])}, "
            f"stride {_dims(rf['stride'])} · {len(L['units'])} units</p><div class=grid>" + "".join(cells) + "</div>")
    return _page(f"{net.name} {L['name']}", body, 1)


def _caption(r: dict) -> str:
    """The visualisation's caption: which objective (the centre neuron for a layer linear in the image with a
    small receptive field: its channel mean would be a flat colour) and its final value."""
    if r.get("kind") == "neuron":
        return (f"feature visualisation of the centre neuron (objective {r['objective']:.3g}; this layer is linear "
                "in the image, so its channel mean would peak at a flat colour)")
    return f"feature visualisation (objective {r['objective']:.3g})"


def _unit_page(net, L: dict, r: dict, prev: dict | None, nxt: dict | None) -> str:
    e = html.escape
    up = "../../"
    nav = [f"<a href=\"{up}index.html\">{e(net.name)}</a> › <a href=\"{up}{e(L['page'])}\">{e(L['name'])}</a> › "
           f"unit {r['unit']}"]
    if prev:
        nav.append(f" · <a href=\"{up}{e(prev['page'])}\">← {prev['unit']}</a>")
    if nxt:
        nav.append(f" · <a href=\"{up}{e(nxt['page'])}\">{nxt['unit']} →</a>")
    parts = [f"<nav>{''.join(nav)}</nav><h1>{e(r['label'])}</h1>",
             f"<div class=\"row big\"><figure><img src=\"{up}{e(r['image'])}\" alt=\"feature visualisation\">"
             f"<figcaption>{_caption(r)}</figcaption></figure>"]
    for j, d in enumerate(r.get("diversity", [])):
        parts.append(f"<figure><img src=\"{up}{e(d)}\" width=160 height=160 alt=\"diversity {j}\">"
                     f"<figcaption>diversity {j}</figcaption></figure>")
    if "filter" in r:
        parts.append(f"<figure><img src=\"{up}{e(r['filter'])}\" width=110 height=110 alt=\"filter\" "
                     "style=\"image-rendering:pixelated\"><figcaption>filter</figcaption></figure>")
    parts.append("</div>")
    if "mean" in r:
        parts.append(f"<p>Mean activation over the data: {r['mean']:.4g}</p>")
    if r.get("never_fired"):
        parts.append("<p><b>This unit never fired on the data</b>: its activation was 0 at every position of every "
                     "photo, so it has no top patches.</p>")
    if r.get("patches"):
        parts.append("<h2>Top dataset patches</h2><div class=row>")
        for p in r["patches"]:
            parts.append(f"<figure><img src=\"{up}{e(p['image'])}\" width=110 alt=\"patch\">"
                         f"<figcaption>{p['value']:.3g}<br><small>{e(p['source'])}"
                         f"{'<br>' + e(p['label']) if 'label' in p else ''}</small></figcaption></figure>")
        parts.append("</div>")
    return _page(f"{net.name} {L['name']} {r['unit']}", "".join(parts), 2)
