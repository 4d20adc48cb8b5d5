"""Run examples/quickstart.ipynb top to bottom in place (its outputs are what GitHub shows) and tile the
pictures it shows into docs/images/quickstart.png (the README's view of the notebook).

    python scripts/figures/quickstart.py                 # STEPS = 64 as committed: ~10 min on 2 vCPUs
    python scripts/figures/quickstart.py --steps 8 --figure /tmp/q.png --no-write

Needs nbclient and ipykernel (the `test` extra). The notebook runs with examples/ as its folder.
"""

from __future__ import annotations

import argparse
import base64
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import nbformat  # noqa: E402
import numpy as np  # noqa: E402
from nbclient import NotebookClient  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"


def set_steps(nb, steps: int) -> None:
    """The cell tagged 'parameters' holds `STEPS = …` (papermill's convention)."""
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source = "\n".join(f"STEPS = {steps}" if line.startswith("STEPS =") else line
                            for line in cell.source.splitlines())


def run(nb, cwd: Path, timeout: int = 1800):
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def settle_streams(nb) -> None:
    """Keep what a live notebook shows at the end: one stream output per cell and stream, each line after its
    last carriage return (a progress bar's final state, not every redraw)."""
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        merged: list = []
        for o in c.outputs:
            if o.output_type == "stream" and merged and merged[-1].output_type == "stream" \
                    and merged[-1].name == o.name:
                merged[-1].text += o.text
            else:
                merged.append(o)
        for o in merged:
            if o.output_type == "stream":
                o.text = "\n".join(line.rsplit("\r", 1)[-1].rstrip() for line in o.text.split("\n"))
        c.outputs = merged


def pictures(nb) -> list[tuple[str, np.ndarray]]:
    """(caption: the cell's first comment, picture) for every PNG or inline <img> the notebook shows."""
    out = []
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        first = c.source.splitlines()[0] if c.source else ""
        caption = first[1:].strip() if first.startswith("#") else first
        for o in c.get("outputs", []):
            data = o.get("data", {})
            blobs = [data["image/png"]] if "image/png" in data else []
            if not blobs and "text/html" in data:
                html = data["text/html"] if isinstance(data["text/html"], str) else "".join(data["text/html"])
                blobs = [b.split('"')[0] for b in html.split("data:image/png;base64,")[1:]]
            for b in blobs:
                out.append((caption, np.asarray(Image.open(io.BytesIO(base64.b64decode(b))).convert("RGB"))))
    return out


def _fold(im: np.ndarray) -> np.ndarray:
    """A picture over twice as tall as wide (a column of top-patch rows) cut into side-by-side halves at a
    white gap between rows, so it is drawn at a readable size in a row of equal height."""
    h, w = im.shape[:2]
    if h <= 2 * w:
        return im
    white = np.flatnonzero((im.min(axis=(1, 2)) >= 250))
    cut = int(white[np.argmin(np.abs(white - h // 2))]) if len(white) else h // 2
    top, bottom = im[:cut], im[cut:]
    out = np.full((max(len(top), len(bottom)), 2 * w + 16, 3), 255, np.uint8)
    out[:len(top), :w], out[:len(bottom), w + 16:] = top, bottom
    return out


def figure(pics: list[tuple[str, np.ndarray]], width: int = 1280, row_height: int = 220) -> np.ndarray:
    """Pictures in rows of equal height with their captions above, on white."""
    rows, row, used = [], [], 0
    pics = [(cap, _fold(im)) for cap, im in pics]
    for cap, im in pics:
        w = max(1, round(im.shape[1] * row_height / im.shape[0]))
        slot = max(w, 6 * len(cap))  # the caption fits above a narrow picture
        if row and used + slot > width:
            rows.append(row)
            row, used = [], 0
        row.append((cap, slot, np.asarray(Image.fromarray(im).resize((w, row_height), Image.Resampling.LANCZOS))))
        used += slot + 8
    rows.append(row)
    canvas = Image.new("RGB", (width, len(rows) * (row_height + 24) + 8), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for r, items in enumerate(rows):
        x, y = 8, 8 + r * (row_height + 24)
        for cap, slot, im in items:
            draw.text((x, y), cap, fill=(60, 60, 60))
            canvas.paste(Image.fromarray(im), (x, y + 14))
            x += slot + 8
    return np.asarray(canvas)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=64, help="STEPS of the parameters cell (default 64)")
    ap.add_argument("--figure", type=Path, default=ROOT / "docs" / "images" / "quickstart.png",
                    help="the tiled pictures (default docs/images/quickstart.png)")
    ap.add_argument("--no-write", action="store_true", help="leave the notebook file as it is (default: rewrite it)")
    ap.add_argument("--tile-only", action="store_true", help="tile the notebook's stored pictures, run nothing")
    a = ap.parse_args()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    if not a.tile_only:
        set_steps(nb, a.steps)
        run(nb, NOTEBOOK.parent)
        settle_streams(nb)
    if not a.no_write and not a.tile_only:
        nbformat.write(nb, NOTEBOOK)
        print(f"wrote {NOTEBOOK}")
    Image.fromarray(figure(pictures(nb))).save(a.figure)
    print(f"wrote {a.figure}")


if __name__ == "__main__":
    main()
