"""Collect licence-clean real photos that PyPI packages ship into one folder, with SOURCES.md.

Sources (only files already installed; nothing is downloaded):
  * scikit-image's sample photos (skimage/data/: astronaut, chelsea, coffee, rocket, Hubble deep field,
    retina, camera, grass, gravel, brick, immunohistochemistry). The licence recorded for each is the
    statement in its loader's docstring (``skimage.data.<name>``), read at run time.
  * scikit-learn's sample images (sklearn/datasets/images/china.jpg, flower.jpg; CC BY 2.0, attribution
    from the README.txt beside them, read at run time).
  * ``--shared`` folders (default ../shared/images beside the repository), with the rows of their own
    SOURCES.md.
  * ``--tuxpaint``: the ~500 photographs of Debian's ``tuxpaint-stamps-default`` package (GPL-2; installed
    with ``apt-get install tuxpaint-stamps-default`` under /usr/share/tuxpaint/stamps/), read from the
    installed package at run time and never committed. Cartoons and drawn symbols (alphabets, math,
    shapes) are left out. Each stamp is a photo cut out on a transparent background: it is composited
    on a background that varies from photo to photo (a random crop of a natural texture from the
    licence-clean photos above: scikit-image's grass, gravel and brick, tinted with a random colour;
    or a soft colour gradient) and written as ``<category>/<name>.jpg`` (an ImageFolder tree: category = label).
  * ``--photos DIR``: every usable image of a folder of your own (``--licence`` says under what terms).
    Files that are not usable (empty, truncated, decompression bombs, FIFOs, devices, symlink loops,
    files that change or vanish, …) are skipped and listed with the reason, as jaxvis's readers do.

``--augment N`` adds crops (50–90 % of a side, random position) with random horizontal flips, resized
to 256 pixels on the short side and saved as JPEG, until the folder holds at least N images (the
top-patches benchmark wants ≥ 200). Each is recorded as derived from its source, same licence.

scikit-image and scikit-learn are script-only dependencies (the extra ``jaxvis[data]``); jaxvis itself
does not need them. Usage:

    python scripts/data/collect_photos.py --out photos --augment 200
    python scripts/data/collect_photos.py --out photos500 --tuxpaint   # ≥ 500 photos, ImageFolder layout
"""

from __future__ import annotations

import argparse
import inspect
import re
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # jaxvis from this checkout: its safe folder listing and image reader

from jaxvis.datasets import open_dataset, shown  # noqa: E402
from jaxvis.errors import DatasetError, ImageError  # noqa: E402

TUXPAINT = Path("/usr/share/tuxpaint/stamps")
TUXPAINT_COPYRIGHT = Path("/usr/share/doc/tuxpaint-stamps-default/copyright")
TUXPAINT_SKIP = ("cartoon", "symbols/alphabets", "symbols/math", "symbols/shapes")  # drawings, not photos
# Texture photos only: an object or a face in the background would be what a unit's top hits show.
TEXTURES = ("grass.png", "gravel.png", "brick.png")

# skimage.data loader → file in skimage/data (photographs only: no synthetic or binary images).
SKIMAGE = {"astronaut": "astronaut.png", "chelsea": "chelsea.png", "coffee": "coffee.png", "rocket": "rocket.jpg",
           "hubble_deep_field": "hubble_deep_field.jpg", "retina": "retina.jpg", "camera": "camera.png",
           "grass": "grass.png", "gravel": "gravel.png", "brick": "brick.png", "immunohistochemistry": "ihc.png"}
LICENCE_WORDS = re.compile(r"(copyright|public domain|CC0|Creative Commons|licen[sc]ed)", re.I)


def _licence_sentence(doc: str) -> str:
    """The sentence(s) of a docstring that state the licence, joined on one line."""
    parts = re.split(r"\n\s*(\w+)\s*\n\s*-{3,}\s*\n", "\n" + doc)  # numpydoc: intro, name, body, …
    doc = "\n".join([parts[0]] + [body for name, body in zip(parts[1::2], parts[2::2]) if name == "Notes"])
    text = " ".join(doc.split())
    text = re.sub(r"`([^`<]*?)\s*<([^>]+)>`_*", r"\1 (\2)", text)  # RST links → "text (url)"
    sentences = re.split(r"(?<=\.)\s+", text)
    hits = [s for s in sentences if LICENCE_WORDS.search(s) and "versionchanged" not in s]
    return " ".join(hits).strip()


def skimage_photos() -> list[tuple[Path, str, str]]:
    """(file, source, licence) of scikit-image's sample photos present in the installed package."""
    try:
        import skimage
        import skimage.data as data
    except ImportError:
        sys.exit("scikit-image is not installed: pip install 'jaxvis[data]' (or scikit-image)")
    root = Path(skimage.__file__).parent / "data"
    out = []
    for fn, name in SKIMAGE.items():
        path = root / name
        loader = getattr(data, fn, None)
        if not path.is_file() or loader is None:
            continue
        lic = _licence_sentence(inspect.getdoc(loader) or "")
        if not lic:
            continue  # no licence statement: not licence-clean as far as we can tell
        out.append((path, f"scikit-image {skimage.__version__} (skimage/data/{name}; skimage.data.{fn})", lic))
    return out


def sklearn_photos() -> list[tuple[Path, str, str]]:
    """(file, source, licence) of scikit-learn's sample images, licence and attribution from its README."""
    try:
        import sklearn
    except ImportError:
        sys.exit("scikit-learn is not installed: pip install 'jaxvis[data]' (or scikit-learn)")
    root = Path(sklearn.__file__).parent / "datasets" / "images"
    readme = (root / "README.txt").read_text(encoding="utf-8")
    out = []
    for block in re.split(r"\n(?=Image: )", readme):
        m = re.match(r"Image: (\S+)", block)
        if not m or not (root / m.group(1)).is_file():
            continue
        refs = dict(re.findall(r"\[(\d)\] (\S+)", block))
        attribution = re.search(r"Attribution: (.*)", block)
        who = re.sub(r" \[\d\]", "", attribution.group(1)).strip() if attribution else ""
        lic = (f"Creative Commons licence {refs.get('1', '')}; attribution: {who} {refs.get('2', '')}; "
               f"original {refs.get('3', '')}").strip()
        out.append((root / m.group(1), f"scikit-learn {sklearn.__version__} (sklearn/datasets/images/{m.group(1)})",
                    lic))
    return out


def shared_photos(folder: Path) -> list[tuple[Path, str, str]]:
    """(file, source, licence) from a folder with a SOURCES.md table `| file | package | licence |`."""
    table = folder / "SOURCES.md"
    if not table.is_file():
        print(f"skipped {folder}: no SOURCES.md", file=sys.stderr)
        return []
    out = []
    for line in table.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and (folder / cells[0]).is_file():
            out.append((folder / cells[0], f"{cells[1]}, via {folder}", cells[2]))
    return out


def tuxpaint_licence() -> str:
    """The licence statement of the installed package (its Debian copyright file), on one line."""
    text = TUXPAINT_COPYRIGHT.read_text(encoding="utf-8", errors="replace") if TUXPAINT_COPYRIGHT.is_file() else ""
    lic = re.findall(r"^License: (\S+)", text, re.M)
    return (f"{lic[0] if lic else 'GPL-2'} (Debian package tuxpaint-stamps-default, {TUXPAINT_COPYRIGHT}); "
            "composited on a background, see the source column")


def _background(rng, textures: list[np.ndarray], size: int) -> tuple[Image.Image, str]:
    """A size×size background: a random crop of a texture photo (3 in 4) or a soft two-colour gradient."""
    if textures and rng.random() < 0.75:
        j = int(rng.integers(len(textures)))
        t = textures[j]
        h, w = t.shape[:2]
        side = int(min(h, w) * rng.uniform(0.35, 1.0))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        tint = rng.uniform(0.55, 1.25, 3)  # the grey textures in a colour: green grass, brown gravel, red brick
        crop = np.clip(t[y:y + side, x:x + side].astype(np.float32) * tint, 0, 255).astype(np.uint8)
        im = Image.fromarray(crop).resize((size, size), Image.BICUBIC)
        return im, (f"texture {TEXTURES[j] if j < len(TEXTURES) else j} crop {x},{y} side {side}, tint "
                    f"{', '.join(f'{v:.2f}' for v in tint)}")
    a, b = rng.integers(40, 230, 3), rng.integers(40, 230, 3)
    f = np.linspace(0, 1, size)[:, None, None] if rng.random() < 0.5 else np.linspace(0, 1, size)[None, :, None]
    g = np.broadcast_to(a * (1 - f) + b * f, (size, size, 3))
    return Image.fromarray(g.astype(np.uint8)), f"gradient {a.tolist()}→{b.tolist()}"


def tuxpaint_photos(out: Path, textures: list[np.ndarray], seed: int, size: int = 256) -> list[tuple[str, str, str]]:
    """Composite the package's photos into out/<category>/<name>.jpg; (file, source, licence) rows."""
    if not TUXPAINT.is_dir():
        sys.exit(f"{TUXPAINT} is missing: apt-get install tuxpaint-stamps-default (Debian), or leave out --tuxpaint")
    ds = open_dataset(str(TUXPAINT))
    lic, rng, rows = tuxpaint_licence(), np.random.default_rng(seed), []
    for i, e in enumerate(ds.entries):
        rel = Path(e.path).relative_to(TUXPAINT).as_posix()
        if not rel.endswith(".png") or any(f"/{s}/" in f"/{rel}" for s in TUXPAINT_SKIP):
            continue
        try:
            with Image.open(e.path) as im:
                stamp = im.convert("RGBA")
        except Exception as err:  # noqa: BLE001  a damaged stamp is skipped, as any unreadable photo
            print(f"skipped {rel}: {type(err).__name__}: {err}", file=sys.stderr)
            continue
        bg, how = _background(rng, textures, size)
        scale = rng.uniform(0.6, 0.92) * size / max(stamp.size)
        stamp = stamp.resize((max(1, round(stamp.width * scale)), max(1, round(stamp.height * scale))), Image.LANCZOS)
        x, y = int(rng.integers(0, size - stamp.width + 1)), int(rng.integers(0, size - stamp.height + 1))
        bg.paste(stamp, (x, y), stamp)
        name = f"{rel.split('/')[0]}/{Path(rel).stem}.jpg"
        while (out / name).exists():  # the same stem in two subfolders of a category
            name = name[:-4] + "_.jpg"
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        bg.convert("RGB").save(out / name, quality=90)
        rows.append((name, f"tuxpaint-stamps-default: {rel}, on {how}", lic))
    return rows


def folder_photos(folder: Path) -> list[tuple[Path, str, str]]:
    """(file, source, '') of every usable image under `folder`; the rest listed on stderr with the reason."""
    try:
        ds = open_dataset(str(folder))
    except DatasetError as e:
        print(f"skipped {folder}: {e}", file=sys.stderr)
        return []
    out = []
    for i, e in enumerate(ds.entries):
        try:
            ds.read(i)  # decoded once here: what cannot be used is listed now, not copied
        except ImageError as err:
            print(f"skipped {shown(e.name)}: {err}", file=sys.stderr)
            continue
        out.append((Path(e.path), f"{shown(e.name)}, via --photos", ""))
    for s in ds.skipped:
        print(f"skipped {shown(s.source)}: {s.reason}", file=sys.stderr)
    print(f"{len(out)} usable images in {folder}, {len(ds.skipped) + len(ds) - len(out)} skipped", file=sys.stderr)
    return out


def augment(items: list[tuple[str, str, str]], out: Path, total: int, seed: int) -> list[tuple[str, str, str]]:
    """Crops with random flips of the collected photos until there are `total` images."""
    r = np.random.default_rng(seed)
    added, k = [], 0
    while len(items) + len(added) < total:
        name, source, lic = items[k % len(items)]
        k += 1
        im = Image.open(out / name).convert("RGB")
        w, h = im.size
        f = r.uniform(0.5, 0.9)
        cw, ch = max(1, int(w * f)), max(1, int(h * f))
        x0, y0 = int(r.integers(0, w - cw + 1)), int(r.integers(0, h - ch + 1))
        crop = im.crop((x0, y0, x0 + cw, y0 + ch))
        flip = bool(r.integers(0, 2))
        if flip:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        s = 256 / min(cw, ch)
        crop = crop.resize((max(1, round(cw * s)), max(1, round(ch * s))), Image.BICUBIC)
        new = f"aug_{len(added):04d}_{Path(name).stem}.jpg"
        crop.save(out / new, quality=90)
        how = f"crop x={x0} y={y0} w={cw} h={ch}{', flipped left-right' if flip else ''}, resized to short side 256"
        added.append((new, f"derived from {name} ({how}); original: {source}", lic))
    return added


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="photos", help="output folder (created)")
    p.add_argument("--shared", nargs="*", default=[str(REPO.parent / "shared" / "images")],
                   help="extra folders with a SOURCES.md (default ../shared/images)")
    p.add_argument("--tuxpaint", action="store_true",
                   help="only the photos of Debian's tuxpaint-stamps-default (GPL-2), composited on textures of the "
                        "other sources, as an ImageFolder tree by stamp category")
    p.add_argument("--photos", default=None, metavar="DIR", help="also every usable image of this folder")
    p.add_argument("--licence", default="as given by the folder's owner", help="licence recorded for --photos")
    p.add_argument("--augment", type=int, default=0, metavar="N",
                   help="add crops/flips until there are at least N images (0: none)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    found = skimage_photos() + sklearn_photos()
    for folder in args.shared:
        if Path(folder).is_dir():
            found += shared_photos(Path(folder))
        else:
            print(f"skipped {folder}: not a folder", file=sys.stderr)
    if args.tuxpaint:  # the other photos become backgrounds
        by_name = {path.name: path for path, _, _ in found}
        textures = [np.asarray(Image.open(by_name[n]).convert("RGB")) for n in TEXTURES if n in by_name]
        items = tuxpaint_photos(out, textures, args.seed)
        found = []
    else:
        items = []
    if args.photos:
        found += [(path, source, args.licence) for path, source, _ in folder_photos(Path(args.photos))]
    seen = set()
    for path, source, lic in found:
        if path.name in seen:  # the same photo from two places (shared/images holds skimage's too)
            continue
        seen.add(path.name)
        shutil.copyfile(path, out / path.name)
        items.append((path.name, source, lic))
    if args.augment > len(items):
        items += augment(list(items), out, args.augment, args.seed)
    rows = ["# Photos and their sources", "",
            "Collected by `scripts/data/collect_photos.py` from files that installed packages ship; the licence "
            "column quotes the package's own statement. Keep this file beside the photos.", "",
            "| file | source | licence |", "|---|---|---|"]
    rows += [f"| {shown(n)} | {shown(s)} | {lic.replace('|', '/')} |" for n, s, lic in items]
    (out / "SOURCES.md").write_text("\n".join(rows) + "\n", encoding="utf-8")
    print(f"{len(items)} images in {out} (sources in {out / 'SOURCES.md'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
