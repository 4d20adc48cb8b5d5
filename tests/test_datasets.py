"""Datasets as users have them: an ImageFolder tree, a list file and WebDataset tar shards give the same
images and labels as the flat folder they were made from; per-class statistics against numpy; the atlas
coloured by label; the gallery's patches carry their class; the decode share of a pass measured."""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import jaxvis
from jaxvis.datasets import image_folder, list_file, open_dataset, shards
from jaxvis.errors import DatasetError
from jaxvis.imaging.images import fit_to_size
from jaxvis.maps.embedding import label_colour
from jaxvis.patches import top_patches

sys.path.insert(0, os.path.dirname(__file__))
import tiny_nets as T  # noqa: E402

CLASSES = ("bird", "cat", "dog")
PER = 5  # images per class
LAYERS = ["conv2", "logits"]


def _image(rng, c: int) -> np.ndarray:
    a = rng.integers(0, 256, (T.SIZE + 4, T.SIZE + 8, 3), dtype=np.uint8)
    a[..., c] = np.maximum(a[..., c], 200)  # each class leans to one colour: class means differ
    return a


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The same 15 images as an ImageFolder tree, a list file (labels in a column) and 2 tar shards."""
    root = tmp_path_factory.mktemp("datasets")
    rng = np.random.default_rng(0)
    images = {}
    for c, name in enumerate(CLASSES):
        for i in range(PER):
            images[f"{name}/{name}_{i}.png"] = _image(rng, c)
    tree = root / "tree"
    for rel, a in images.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).save(tree / rel)
    (tree / "cat" / "readme.txt").write_text("not a photo")
    lines = [f"tree/{rel}\t{rel.split('/')[0]}" for rel in sorted(images)] + ["# a comment", "", "tree/missing.png\tdog"]
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    order = sorted(images)
    for s in range(2):  # WebDataset: key.png + key.cls, samples in order, split over two shards
        with tarfile.open(root / f"shard-{s:03d}.tar", "w") as tar:
            for j, rel in enumerate(order[s * 8:(s + 1) * 8]):
                key = f"{s * 8 + j:06d}"
                for ext, payload in (("png", (tree / rel).read_bytes()),
                                     ("cls", rel.split("/")[0].encode())):
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
    return root, order, images


@pytest.fixture(scope="module")
def net():
    return T.pure_net()


def test_layouts_give_the_same_images_and_labels(data):
    root, order, images = data
    tree, lst, tars = open_dataset(root / "tree"), open_dataset(root / "list.txt"), \
        open_dataset(str(root / "shard-{000..001}.tar"))
    assert tree.kind == "imagefolder" and lst.kind == "list" and tars.kind == "shards"
    for ds in (tree, lst, tars):
        assert ds.classes == CLASSES and len(ds) == 3 * PER + (ds is lst)
        want = [CLASSES.index(rel.split("/")[0]) for rel in order]
        assert ds.labels[:15].tolist() == want
        for i, rel in enumerate(order):
            np.testing.assert_array_equal(ds.read(i), images[rel])
    assert [os.path.basename(s.source) for s in tree.skipped] == ["readme.txt"]
    assert tars.sources[0].endswith("shard-000.tar/000000.png")
    assert open_dataset(str(root / "shard-*.tar")).sources == tars.sources  # a glob of shards
    flat = jaxvis.datasets.folder(root / "tree", labels=False)
    assert flat.classes is None and flat.labels is None and flat.sources == tree.sources
    assert image_folder(root / "tree").classes == CLASSES and list_file(root / "list.txt").classes == CLASSES
    assert shards([str(root / "shard-000.tar"), str(root / "shard-001.tar")]).sources == tars.sources


def test_bad_datasets_are_named(data, tmp_path):
    root, _, _ = data
    with pytest.raises(DatasetError, match="compressed.*decompress"):
        open_dataset(str(tmp_path / "x.tar.gz"))
    (tmp_path / "bad.tar").write_bytes(b"not a tar archive at all" * 40)
    with pytest.raises(DatasetError, match="bad.tar' .*not a readable tar archive|holds no image member"):
        open_dataset(str(tmp_path / "bad.tar"))
    with pytest.raises(DatasetError, match="does not exist"):
        open_dataset(str(tmp_path / "none-{0..2}.tar"))
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(DatasetError, match="names no image file"):
        open_dataset(tmp_path / "empty.txt")
    (tmp_path / "photo.bmp").write_bytes(b"x")
    with pytest.raises(DatasetError, match="is a file, not a folder, a list file"):
        open_dataset(tmp_path / "photo.bmp")


def test_per_class_statistics_against_numpy(data, net):
    root, order, images = data
    r = top_patches(net, root / "tree", LAYERS, k=4, batch_size=4, progress=False)
    assert r.classes == CLASSES and r.class_counts.tolist() == [PER] * 3
    x = np.stack([np.clip(fit_to_size(images[rel][None].astype(np.float32), net.input_size, "crop")[0], 0, 255).round()
                  for rel in order])
    acts = net.jitted(LAYERS)(net.params, x)
    labels = np.array([CLASSES.index(rel.split("/")[0]) for rel in order])
    for l in LAYERS:
        a = np.asarray(acts[l], np.float64)
        per_image = a.reshape(len(a), -1, a.shape[-1]).mean(1)  # N×C
        want = np.stack([per_image[labels == c].mean(0) for c in range(3)])
        np.testing.assert_allclose(r.class_means[l], want, rtol=0, atol=1e-5 * np.abs(want).max(), err_msg=l)
        np.testing.assert_allclose(r.means[l], per_image.mean(0), rtol=0, atol=1e-5 * np.abs(want).max())
        for u in range(r.value[l].shape[0]):
            hits = r.hits(l, u)
            counts = {}
            for h in hits:
                counts[CLASSES[labels[h.image]]] = counts.get(CLASSES[labels[h.image]], 0) + 1
            assert r.hit_classes(l, u) == dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
            best = [c for c, _ in r.top_classes(l, u, 3)]
            assert best == [CLASSES[i] for i in np.argsort(-want[:, u], kind="stable")]
    # the three layouts give the same hits and class means (ids are the same images in the same order)
    for spec in (root / "list.txt", str(root / "shard-{000..001}.tar")):
        o = top_patches(net, spec, LAYERS, k=4, batch_size=4, progress=False)
        for l in LAYERS:
            np.testing.assert_array_equal(o.image[l], r.image[l])
            np.testing.assert_array_equal(o.value[l], r.value[l])
            np.testing.assert_allclose(o.class_means[l], r.class_means[l], rtol=0, atol=1e-6)
    assert o.timing["seconds"] > 0 and 0 <= o.timing["wait_seconds"] <= o.timing["seconds"]
    assert o.timing["decode_seconds"] > 0


def test_cache_resumes_over_shards(data, net, tmp_path):
    root, _, _ = data
    spec = str(root / "shard-{000..001}.tar")
    full = top_patches(net, spec, LAYERS, k=3, batch_size=2, progress=False)
    cache = tmp_path / "c.npz"
    with pytest.raises(KeyboardInterrupt):
        top_patches(net, spec, LAYERS, k=3, batch_size=2, progress=False, cache=cache, _stop_after=3)
    again = top_patches(net, spec, LAYERS, k=3, batch_size=2, progress=False, cache=cache)
    for l in LAYERS:
        np.testing.assert_array_equal(again.image[l], full.image[l])
        np.testing.assert_array_equal(again.class_means[l], full.class_means[l])
    # the same files under another labelling are another dataset: refused by name
    flat = jaxvis.datasets.folder(root / "tree", labels=False)
    top_patches(net, flat, LAYERS, k=3, batch_size=2, progress=False, cache=tmp_path / "d.npz")
    with pytest.raises(jaxvis.PatchesError, match="sources_sha256"):
        top_patches(net, root / "tree", LAYERS, k=3, batch_size=2, progress=False, cache=tmp_path / "d.npz")


def test_atlas_is_coloured_by_label(data, net):
    root, order, _ = data
    e = jaxvis.embedding(net, str(root / "shard-{000..001}.tar"), "conv2", method="pca")
    assert e.classes == CLASSES and e.labels.tolist() == [CLASSES.index(r.split("/")[0]) for r in order]
    cell = 32
    im = jaxvis.atlas_image(e, grid=(4, 4), cell=cell)
    assert im.shape[0] > 4 * cell and im.shape[1] == 4 * cell  # the grid and a legend under it
    table = jaxvis.maps.embedding.assign_grid(e.coords, (4, 4))
    for (rr, cc), i in np.ndenumerate(table):
        if i >= 0:  # the frame of each cell is its class's colour
            np.testing.assert_array_equal(im[rr * cell, cc * cell + cell // 2], label_colour(int(e.labels[i])))
    legend = im[4 * cell:]
    for c in range(3):
        assert (legend == np.array(label_colour(c), np.uint8)).all(-1).sum() >= 100  # each class's swatch
    plain = jaxvis.atlas_image(e.coords, [str(root / "tree" / r) for r in order], grid=(4, 4), cell=cell)
    assert plain.shape == (4 * cell, 4 * cell, 3)


def test_gallery_patches_carry_their_class(data, net, tmp_path):
    root, _, _ = data
    g = jaxvis.gallery(net, tmp_path / "site", layers=["conv1"], units=2, steps=2, image_size=32, k=3,
                       images=root / "list.txt", progress=False)
    assert [os.path.basename(s.source) for s in g.skipped_files] == ["missing.png"]
    m = json.loads((tmp_path / "site" / "index.json").read_text())
    patches = [p for L in m["layers"] for u in L["units"] for p in u.get("patches", [])]
    assert patches and all(p["label"] in CLASSES for p in patches)
    page = (tmp_path / "site" / m["layers"][0]["units"][0]["page"]).read_text()
    assert patches[0]["label"] in page


def test_loader_keeps_the_network_busy_decode_share(tmp_path, net):
    """Decoding in the thread pool overlaps the network: the time the network waited for images (the decode
    share) is reported; with 4 workers it is below the summed decode time."""
    rng = np.random.default_rng(0)
    for i in range(64):
        Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(tmp_path / f"{i:03d}.jpg", quality=90)
    r = top_patches(net, tmp_path, LAYERS, k=2, batch_size=8, workers=4, progress=False)
    t = r.timing
    assert t["wait_seconds"] < t["decode_seconds"], t
    assert Path(r.sources[0]).name == "000.jpg"


TUXPAINT = Path("/usr/share/tuxpaint/stamps")


@pytest.mark.slow  # composites 502 photos: ~45 s on the shared 2 vCPUs
@pytest.mark.skipif(not TUXPAINT.is_dir(), reason="needs Debian's tuxpaint-stamps-default "
                    "(apt-get install tuxpaint-stamps-default)")
def test_collect_photos_tuxpaint_gives_500_licence_recorded_photos(tmp_path):
    import subprocess
    script = Path(__file__).resolve().parent.parent / "scripts" / "data" / "collect_photos.py"
    p = subprocess.run([sys.executable, str(script), "--out", str(tmp_path / "tux"), "--tuxpaint", "--shared"],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    ds = open_dataset(tmp_path / "tux")
    assert ds.kind == "imagefolder" and len(ds) >= 500 and "animals" in ds.classes
    assert [os.path.basename(s.source) for s in ds.skipped] == ["SOURCES.md"]
    rows = [r for r in (tmp_path / "tux" / "SOURCES.md").read_text().splitlines() if r.startswith("| ") and ".jpg" in r]
    assert len(rows) == len(ds) and all("GPL-2" in r and "tuxpaint-stamps-default" in r for r in rows)
    assert not any("cartoon" in r or "alphabets" in r for r in rows)
    a = ds.read(0)
    assert a.shape == (256, 256, 3) and a.std() > 10  # composited on a background, not a flat or empty frame
