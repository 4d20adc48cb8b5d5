"""`jaxvis.gallery`: render every unit of a network into a static site, as one resumable job.

Work is split into fixed blocks of units per layer (plan.py). Each block is one call of the
engine (all its units in one vmapped, jit-compiled loop, sharded over the local devices); its
images are written atomically and then a small state file records the block as done, so a
killed job restarted with the same command renders only the missing blocks. With photos, one
:func:`jaxvis.top_patches` pass (data.py) comes first and gives both the top patches and the
mean activations. With ``jax.distributed`` every process reads its share of the photos in that
pass and takes every P-th block; process 0 waits for all blocks' state files and writes the site
(pages.py) from them.
"""

from __future__ import annotations

import dataclasses
import html
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from PIL import Image

from ..engine import objectives as O
from ..engine.visualize import visualize
from ..datasets import Dataset, is_dataset_like, open_dataset
from ..errors import GalleryError
from ..imaging.display import imtile, save_png
from ..imaging.fileio import atomic_path, check_folder, exclusive, make_folder, remove_stale_temps_under
from ..imaging.notebook import Picture, img_tag
from ..imaging.progress import Progress, wanted
from .data import data_pass, filter_data, unit_data
from .estimate import GalleryEstimate, estimate
from .pages import write_site
from .plan import STATE, LayerPlan, plan_layers


@dataclasses.dataclass
class GalleryResult(Picture):
    """What :func:`gallery` did; a notebook shows the layers' first thumbnails and a link to the site.

    Attributes:
      out: the site folder (``index.html``, ``index.json``).
      manifest: the content of ``index.json`` (None on processes other than 0, or when stopped early).
      rendered: units rendered by this call; skipped: units found already done.
      complete: whether every block is done (False after ``stop_after_blocks``).
      seconds: wall time of this call.
      skipped_files: the photos that were not used, with the reason (:class:`~jaxvis.datasets.Skipped`).
      estimate: the plan and time estimate printed before rendering (None when not made).
    """

    out: Path
    manifest: dict[str, Any] | None
    rendered: int
    skipped: int
    complete: bool
    seconds: float
    skipped_files: list = dataclasses.field(default_factory=list)
    estimate: GalleryEstimate | None = None

    def picture(self, per_layer: int = 8) -> np.ndarray:
        """A contact sheet: one row per layer, its first `per_layer` units' thumbnails (uint8); what
        ``.save(path)`` writes. Needs the finished site (``manifest``)."""
        if self.manifest is None:
            raise GalleryError(f"the gallery in {self.out} is not finished (or belongs to another process): no "
                               "pictures to show yet; rerun gallery() to complete it")
        rows = [[np.asarray(Image.open(self.out / r["thumb"]).convert("RGB")) for r in L["units"][:per_layer]]
                for L in self.manifest["layers"]]
        blank = np.full_like(next(t for row in rows for t in row), 255)
        cells = [row[i] if i < len(row) else blank for row in rows for i in range(per_layer)]
        return imtile(cells, grid_size=(len(rows), per_layer), border_size=2, background_color=(255, 255, 255))

    def _repr_png_(self) -> bytes | None:
        return None  # the HTML view holds the picture: a notebook would store it twice

    def _repr_html_(self) -> str:
        e = html.escape
        index = (self.out / "index.html").resolve()
        head = (f"<p>gallery <a href=\"{e(index.as_uri())}\">{e(str(self.out))}/index.html</a>: "
                f"{self.rendered} units rendered, {self.skipped} already done, {self.seconds:.0f} s"
                f"{'' if self.complete else ' (stopped early)'}</p>")
        if self.manifest is None:
            return head
        names = ", ".join(L["name"] for L in self.manifest["layers"])
        return head + f"<p>rows: {e(names)}</p>" + img_tag(self.picture(), "first units of each layer")


def _write_json(path: Path, obj) -> None:
    with atomic_path(path, parents=True) as tmp:  # inside the site folder gallery() made
        tmp.write_text(json.dumps(obj, indent=1, sort_keys=True), encoding="utf-8")


def _thumb(img: np.ndarray, size: int) -> np.ndarray:
    gray = img.ndim == 3 and img.shape[-1] == 1  # a grayscale network's images: N×H×W×1
    small = np.asarray(Image.fromarray(img[..., 0] if gray else img).resize((size, size), Image.Resampling.LANCZOS))
    return small[..., None] if gray else small


def _label(net, lp: LayerPlan, c: int) -> str:
    classes = net.classes
    if classes and lp.name == net.logits_layer and lp.shape[-1] == len(classes):
        return str(classes[c])
    return f"{lp.name} unit {c}"


def _render_block(net, lp: LayerPlan, block: tuple[int, ...], out: Path, cfg: dict, devices) -> list[dict]:
    # A short last block is padded with repeats of its first unit: every block of a layer then runs
    # one compiled program (a unit's result does not depend on its batch: visualize keys it by label).
    padded = block + (block[0],) * (cfg["block"] - len(block))
    common = dict(preset=cfg["preset"], steps=cfg["steps"], image_size=cfg["image_size"], seed=cfg["seed"],
                  batch_size=len(padded), devices=devices, progress=False)
    objs = O.unit_objectives(net, lp.name, padded)  # the centre neuron of a linear early layer, else the channel
    kind = "neuron" if isinstance(objs[0], O.Neuron) else "channel"
    vis = visualize(net, objs, **common)
    div = None
    if cfg["diversity"] > 1:
        div = visualize(net, [o + O.diversity(lp.name, 1e2) for o in objs], batch=cfg["diversity"], **common)
    records = []
    folder = out / "img" / lp.slug
    for i, c in enumerate(block):
        rec: dict[str, Any] = {"unit": c, "label": _label(net, lp, c), "image": f"img/{lp.slug}/{c}.png",
               "thumb": f"img/{lp.slug}/{c}_t.png", "objective": float(vis.trace[-1, -1, i]), "kind": kind}
        save_png(folder / f"{c}.png", vis.images[i], parents=True)
        save_png(folder / f"{c}_t.png", _thumb(vis.images[i], cfg["thumbnail"]), parents=True)
        if div is not None:
            b = cfg["diversity"]
            for j in range(b):
                save_png(folder / f"{c}_d{j}.png", div.images[i * b + j], parents=True)
            rec["diversity"] = [f"img/{lp.slug}/{c}_d{j}.png" for j in range(b)]
        records.append(rec)
    return records


def _settings(net, layers: list[LayerPlan], **kw) -> dict:
    return {"model": net.name, "input_size": list(net.input_size),
            # a count for the first n units (the format of earlier sites), the indices for any other selection
            "layers": [{"name": l.name, "units": len(l.units) if l.units == tuple(range(len(l.units))) else list(l.units)}
                       for l in layers], **kw}


# What a gallery writes into its folder besides STATE: removed by rebuild=True, nothing else is touched.
OUTPUTS = ("img", "patches", "layers", "units", "index.html", "index.json", "style.css")


def _read_json(path: Path, what: str) -> dict:
    """A state file of the gallery, or a GalleryError naming it (damaged: not written by a finished write)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        why = "" if isinstance(doc, dict) else "not a JSON object"
    except (OSError, ValueError) as e:
        doc, why = None, f"{type(e).__name__}: {str(e)[:120]}"
    if why:
        raise GalleryError(f"{what} {str(path)!r} is damaged ({why}); rerun with rebuild=True (--rebuild) to render "
                           "the site again, or use another --out folder")
    return doc


def _check_settings(state: Path, settings: dict) -> None:
    f = state / "settings.json"
    if f.exists():
        old = _read_json(f, "the gallery's settings file")
        diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        if diff:
            raise GalleryError(
                f"{state.parent} holds a gallery made with other settings ({', '.join(diff)} differ: "
                + "; ".join(f"{k}: {old.get(k)!r} there, {settings.get(k)!r} now" for k in diff[:3])
                + "); rerun with rebuild=True (--rebuild) to replace it, or use another --out folder")


def _clear(out: Path) -> None:
    """Remove what a gallery wrote into `out` (its state and outputs), nothing else; the lock files stay (held)."""
    state = out / STATE
    held = [p for p in state.iterdir() if p.name.startswith("lock.")] if state.is_dir() else []
    for p in state.iterdir() if state.is_dir() else ():
        if p not in held:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    for name in OUTPUTS:
        p = out / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def _images_setting(images) -> str | None:
    """How the photos enter the settings a resumed job is checked against."""
    if images is None:
        return None
    if isinstance(images, Dataset):
        return f"{images.kind} {images.spec} ({len(images)} images, {images.fingerprint()})"
    if isinstance(images, (str, os.PathLike)):
        return str(images)
    return f"{len(images)} images"


def gallery(net, out: str | os.PathLike, *, layers: str | Sequence[str] = "all", images=None,
            units: int | Sequence[int] | None = None, preset: str = "lucid", steps: int | None = None,
            image_size: int | None = None, diversity: int = 0, k: int = 9, block: int = 32,
            thumbnail: int = 96, seed: int = 0, devices=None, progress: bool | None = None, rebuild: bool = False,
            plan: bool | None = None,
            stop_after_blocks: int | None = None, wait_timeout: float = 3600.0) -> GalleryResult:
    """Render a browsable per-unit atlas of `net` into the folder `out` (OpenAI Microscope for your network).

    For every requested layer and unit: the engine's feature visualisation (`preset`), optionally a
    diversity set, and with `images` the top-`k` dataset patches at the unit's receptive field and its
    mean activation over the data; for the first convolution the filters. The site is plain HTML
    (works from ``file://``) with an ``index.json`` manifest.

    Args:
      net: any jaxvis network.
      out: site folder (created). Rerunning with the same settings resumes: only missing blocks render.
        While a job runs, ``out/.jaxvis-gallery/lock…`` holds its pid: a second job on the same folder is
        refused (:class:`~jaxvis.errors.LockedError`); the lock of a killed job is taken over.
      layers: "all" (layers with units of their own) or layer names.
      images: optional photos for the top patches and mean activations: a folder, an ImageFolder tree
        (the patches then show each hit's class), a list file, tar shards, a list of paths or a
        :class:`~jaxvis.datasets.Dataset` (see :func:`jaxvis.top_patches`; skipped files are listed in
        ``GalleryResult.skipped_files``), or a list of arrays.
      units: the units of each layer: indices (e.g. ``range(8)``, ``[1, 4, 9]``; those past a layer's width are
        left out for it), a count (the first ones) or None (all).
      preset, steps, image_size, seed: feature-visualization settings (:func:`jaxvis.visualize`).
      diversity: also render a diversity set of this many images per unit (0: none).
      k: top patches per unit.
      block: units per engine call (fixed, so resumed jobs give identical bytes).
      thumbnail: thumbnail size in pixels.
      devices: local devices to shard each block over (default all local devices).
      progress: a progress bar with units/s and ETA: None (default) where stderr is a terminal or a
        notebook, True always, False never.
      rebuild: when `out` holds a gallery of other settings or damaged state, remove what a gallery wrote
        there and render anew (default: refuse, naming what differs or the damaged file).
      plan: before rendering, measure a short warm-up and print the plan (units per layer, steps, the
        estimated time, how to make it cheaper) to stderr on process 0 (default: where the progress bar
        shows); nothing is asked, the job goes on. :func:`jaxvis.site.estimate.estimate` alone makes it.
      stop_after_blocks: stop after rendering this many blocks (a test hook simulating a kill).
      wait_timeout: seconds process 0 waits for other processes' blocks.

    Returns:
      :class:`GalleryResult`.

    Raises:
      GalleryError: bad options, or (without `rebuild`) a folder of another gallery or with damaged state.
      LockedError: another job is writing the same folder.
      OutputError: a file cannot be written (e.g. the disk is full): blocks written so far stay done, and
        the same command resumes once there is space.
    """
    t0 = time.perf_counter()
    out = check_folder(out)  # before any work: a file, a missing parent, a folder nothing can be written in
    if int(block) < 1 or int(thumbnail) < 8 or int(diversity) < 0 or int(k) < 1:
        raise GalleryError(f"block >= 1, thumbnail >= 8, diversity >= 0 and k >= 1 are needed; got block={block}, "
                           f"thumbnail={thumbnail}, diversity={diversity}, k={k}")
    plans = plan_layers(net, layers, units)
    if images is not None:  # listed once: its fingerprint is part of the settings a resumed job is checked against
        images = open_dataset(images) if is_dataset_like(images) else list(images)
    cfg = {"preset": preset, "steps": steps, "image_size": image_size, "seed": int(seed),
           "diversity": int(diversity), "thumbnail": int(thumbnail), "block": int(block), "k": int(k),
           "images": _images_setting(images)}
    settings = _settings(net, plans, **cfg)
    state = out / STATE
    pid, nproc = jax.process_index(), jax.process_count()
    with exclusive(state / f"lock.process{pid}of{nproc}", f"gallery site {str(out)!r}"):
        return _gallery(net, out, plans, images, cfg, settings, devices, progress, plan, rebuild,
                        stop_after_blocks, wait_timeout, t0)


def _gallery(net, out: Path, plans: list[LayerPlan], images, cfg: dict, settings: dict, devices, progress: bool | None,
             plan: bool | None, rebuild: bool, stop_after_blocks: int | None, wait_timeout: float, t0: float) -> GalleryResult:
    state = out / STATE
    pid, nproc = jax.process_index(), jax.process_count()
    try:
        _check_settings(state, settings)  # on every process: all stop before the data pass's collectives
    except GalleryError:
        if not rebuild or nproc > 1:
            raise
        _clear(out)
    if pid == 0:
        make_folder(out)  # only the folder named: never the folders above it
        if nproc == 1:  # the site's one writer (its lock is held): a killed earlier run's half-written files go
            remove_stale_temps_under(out)
        _write_json(state / "settings.json", settings)
    devices = list(jax.local_devices() if devices is None else devices)
    est = None
    if (wanted(progress) if plan is None else plan) and pid == 0:
        est = estimate(net, plans, preset=cfg["preset"], steps=cfg["steps"], image_size=cfg["image_size"],
                       block=int(cfg["block"]), devices=devices)
        print(est.text(), file=sys.stderr, flush=True)
    k, block = cfg["k"], cfg["block"]
    tp = None
    if images is not None:  # first, while every process is here: the pass merges all processes' shares
        tp = data_pass(net, plans, images, out, k=int(k), devices=devices, progress=progress, rebuild=rebuild)

    work = [(lp, b, blk) for lp in plans for b, blk in enumerate(lp.blocks(int(block)))]
    mine = [w for i, w in enumerate(work) if i % nproc == pid]
    done_file = lambda lp, b: state / lp.slug / f"block_{b:05d}.json"  # noqa: E731
    for lp, b, _ in mine:  # a damaged state file is refused by name before any work (or redone with rebuild)
        f = done_file(lp, b)
        if f.exists():
            try:
                _read_json(f, "the gallery's block state file")
            except GalleryError:
                if not rebuild:
                    raise
                f.unlink()
    todo = [w for w in mine if not done_file(w[0], w[1]).exists()]
    skipped = sum(len(blk) for lp, b, blk in mine if (lp, b, blk) not in todo)
    bar = Progress(sum(len(blk) for _, _, blk in todo), f"gallery {net.name}", "units", enabled=progress)
    rendered = 0
    try:
        for n, (lp, b, blk) in enumerate(todo):
            if stop_after_blocks is not None and n >= stop_after_blocks:
                return GalleryResult(out, None, rendered, skipped, False, time.perf_counter() - t0,
                                     [] if tp is None else tp.skipped, est)
            records = _render_block(net, lp, blk, out, cfg, devices)
            _write_json(done_file(lp, b), {"layer": lp.name, "block": b, "units": records})
            rendered += len(blk)
            bar.update(len(blk))
    finally:
        bar.close()
    if pid != 0:
        return GalleryResult(out, None, rendered, skipped, True, time.perf_counter() - t0,
                             [] if tp is None else tp.skipped, est)
    _wait_for(state, [(lp, b) for lp, b, _ in work], done_file, wait_timeout)
    extra = unit_data(net, plans, tp, out) if tp is not None else filter_data(net, plans, out)
    manifest = write_site(net, plans, out, settings, {lp.name: _load_units(lp, state) for lp in plans}, extra)
    return GalleryResult(out, manifest, rendered, skipped, True, time.perf_counter() - t0,
                         [] if tp is None else tp.skipped, est)


def _wait_for(state: Path, blocks, done_file, timeout: float) -> None:
    """Process 0 merges only when every process's blocks are on disk (the shared folder is the barrier)."""
    t_end = time.monotonic() + timeout
    missing = [(lp, b) for lp, b in blocks if not done_file(lp, b).exists()]
    while missing:
        if time.monotonic() > t_end:
            raise GalleryError(f"timed out waiting for {len(missing)} blocks from other processes "
                               f"(first: {missing[0][0].name} block {missing[0][1]}) in {state}")
        time.sleep(0.5)
        missing = [(lp, b) for lp, b in missing if not done_file(lp, b).exists()]


def _load_units(lp: LayerPlan, state: Path) -> list[dict]:
    recs = []
    for f in sorted((state / lp.slug).glob("block_*.json")):
        recs.extend(_read_json(f, "the gallery's block state file")["units"])
    recs.sort(key=lambda r: r["unit"])
    return recs

