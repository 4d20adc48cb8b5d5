"""The gallery job: a site from a tiny network, resumable byte for byte, the same from two
`jax.distributed` processes, and browsable in a real headless Chromium."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import jaxvis
from jaxvis.errors import GalleryError, OutputError
from jaxvis.site import gallery

sys.path.insert(0, os.path.dirname(__file__))
import tiny_nets as T  # noqa: E402
from browser import Browser, chromium_path  # noqa: E402

KW = dict(layers=["conv1", "logits"], units=3, block=2, steps=4, image_size=32, progress=False)
HERE = Path(__file__).resolve().parent


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny():
    return T.pure_net()


@pytest.fixture(scope="module")
def site(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    r = gallery(tiny, out, diversity=2, **KW)
    return out, r


def test_site_manifest_pages_and_images(site, tiny):
    out, r = site
    assert r.complete and r.rendered == 2 * 3 and r.skipped == 0
    m = json.loads((out / "index.json").read_text())
    assert m == r.manifest
    assert [L["name"] for L in m["layers"]] == ["conv1", "logits"]
    conv1 = m["layers"][0]
    assert conv1["receptive_field"] == {"size": [3, 3], "stride": [2, 2], "offset": [1.0, 1.0], "spatial": True}
    assert m["layers"][-1]["receptive_field"]["spatial"] is False  # logits see the whole image
    logits = m["layers"][-1]["units"]
    assert [u["label"] for u in logits] == T.CLASSES[:3]  # class units are named by class
    for L in m["layers"]:
        assert (out / L["page"]).is_file()
        for u in L["units"]:
            for key in ("image", "thumb", "page"):
                assert (out / u[key]).is_file(), u[key]
            assert len(u["diversity"]) == 2
    # the unit image is what jaxvis.visualize makes for that unit alone (same settings, same bytes); conv1 is linear
    # in the image with a 3-px field, so its objective is the centre neuron (its channel mean peaks at a flat colour)
    from PIL import Image
    import numpy as np
    assert [u["kind"] for u in conv1["units"]] == ["neuron"] * 3 and logits[0]["kind"] == "channel"
    v = jaxvis.visualize(tiny, jaxvis.objectives.unit_objectives(tiny, "conv1", [0, 1]), steps=4, image_size=32,
                         progress=False)
    assert v.labels == ["conv1:0", "conv1:1"] and isinstance(
        jaxvis.objectives.unit_objectives(tiny, "conv1", [0])[0], jaxvis.objectives.Neuron)
    assert np.array_equal(np.asarray(Image.open(out / "img/conv1/1.png")), v.images[1])
    assert "centre neuron" in (out / conv1["units"][0]["page"]).read_text()


def test_resume_after_a_kill_is_byte_identical(tiny, tmp_path, site):
    full, _ = site
    out = tmp_path / "resumed"
    first = gallery(tiny, out, diversity=2, stop_after_blocks=3, **KW)  # blocks of 2, 1, 2, 1 units
    assert not first.complete and first.rendered == 5 and not (out / "index.json").exists()
    second = gallery(tiny, out, diversity=2, **KW)
    assert second.complete and second.skipped == 5 and second.rendered == 1
    assert _files(out) == _files(full)
    third = gallery(tiny, out, diversity=2, **KW)  # nothing left to do
    assert third.rendered == 0 and _files(out) == _files(full)


def test_bad_requests(tiny, tmp_path, site):
    full, _ = site
    with pytest.raises(GalleryError, match="other settings.*steps"):
        gallery(tiny, full, diversity=2, **{**KW, "steps": 5})
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        gallery(tiny, f, **KW)
    with pytest.raises(jaxvis.LayerError, match="conv1"):
        gallery(tiny, tmp_path / "x", **{**KW, "layers": ["conv_1"]})
    with pytest.raises(GalleryError, match="block >= 1"):
        gallery(tiny, tmp_path / "x", **{**KW, "block": 0})


RUN = """
import sys
sys.path[:0] = [{tests!r}, {root!r}]
import jax
pid, n = int(sys.argv[1]), int(sys.argv[2])
if n > 1:
    jax.distributed.initialize("127.0.0.1:" + sys.argv[3], num_processes=n, process_id=pid)
import tiny_nets as T
from jaxvis.site import gallery
r = gallery(T.pure_net(), sys.argv[4], layers=["conv2"], units=4, block=2, steps=4, image_size=32,
            images=sys.argv[5], k=3, progress=False)
print("rendered", pid, r.rendered, r.manifest is not None)
"""


def test_two_distributed_processes_make_the_same_site(tmp_path):
    """Blocks alternate between the processes and so do the photo batches of the data pass (40 photos: batch 0
    of 32 on process 0, batch 1 on process 1); process 0 writes the pages, the same bytes as one process."""
    import numpy as np
    from PIL import Image
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 256, (T.SIZE, T.SIZE, 3), dtype=np.uint8)).save(photos / f"p{i:02d}.png")
    script = tmp_path / "run.py"
    script.write_text(RUN.format(tests=str(HERE), root=str(HERE.parent)))
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    one = subprocess.run([sys.executable, script, "0", "1", "0", tmp_path / "one", photos], env=env,
                         capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-2000:]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    procs = [subprocess.Popen([sys.executable, script, str(i), "2", port, tmp_path / "two", photos], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    # both processes rendered a share (blocks alternate), process 0 wrote the site
    assert "rendered 0 " in outs[0][0] and "True" in outs[0][0] and "rendered 1 " in outs[1][0]
    assert int(outs[1][0].split()[2]) > 0
    # each process's data-pass cache: process 0 read batch 0 only, process 1 batch 1 only
    for i, after in ((0, 1), (1, 2)):
        with np.load(tmp_path / "two" / ".jaxvis-gallery" / f"patches.npz.process{i}of2") as z:
            assert json.loads(bytes(z["__meta__"]).decode())["next_batch"] == after
    site = lambda root: {f: b for f, b in _files(root).items() if not f.startswith(".jaxvis-gallery/patches.npz")}  # noqa: E731
    one_files = site(tmp_path / "one")
    assert sum(f.startswith("patches/") for f in one_files) == 4 * 3
    assert one_files == site(tmp_path / "two")


@pytest.mark.skipif(chromium_path() is None, reason="needs a chromium binary (Debian: apt-get install chromium)")
def test_site_in_a_real_browser(site):
    pytest.importorskip("websocket", reason="needs websocket-client (the [test] extra)")
    out, _ = site
    with Browser() as b:
        b.open((out / "index.html").as_uri())
        assert b.eval("document.querySelectorAll('table a').length") == 2
        layer_url = b.href("table a[href$='conv1.html']")
        b.open(layer_url)
        imgs = b.images()
        assert len(imgs) == 3 and all(done and w == 96 for _, done, w in imgs), imgs
        b.open(b.href(".grid a"))
        imgs = b.images()  # the visualisation, two diversity images, the 3×3 filter (8 px per weight)
        assert [w for _, done, w in imgs if done] == [32, 32, 32, 24], imgs
        assert b.eval("document.querySelector('nav a').getAttribute('href')") == "../../index.html"
        assert b.errors == []
        b.open((out / "missing.html").as_uri())  # the check can fail: a broken link is reported
        assert b.errors


def test_all_layers_are_the_ones_with_units_of_their_own(tiny, squeezenet):
    from jaxvis.site.plan import plan_layers
    # a function network's kinds come from its jaxpr: the convolutions and the dense layer, as for a port
    assert [(p.name, p.type) for p in plan_layers(tiny, "all")] == [
        ("conv1", "conv_general_dilated"), ("conv2", "conv_general_dilated"), ("logits", "dot_general")]
    plans = plan_layers(squeezenet, "all", units=4)
    names = [p.name for p in plans]
    assert names[:3] == ["conv1", "fire2-squeeze1x1", "fire2-expand1x1"] and "fire9-concat" in names
    assert names[-1] == "conv10" and not any("relu" in n or "pool" in n for n in names)
    assert len(names) == 1 + 8 * 4 + 1  # conv1, 8 fire modules × (squeeze, 2 expands, concat), conv10
    assert plans[-1].shape == (14, 14, 1000) and plans[-1].units == (0, 1, 2, 3)


def test_data_columns_top_patches_and_means_against_numpy(tiny, tmp_path):
    """With --images: each unit's patches are its top-k images by max activation (numpy brute force over
    the photos, resized as top_patches resizes them) and its mean is the position-and-image mean."""
    import numpy as np

    from jaxvis.patches.loader import load_one
    photos = tmp_path / "photos"
    photos.mkdir()
    src = HERE.parent / "examples" / "images"
    names = ["chelsea.png", "coffee.png", "grace_hopper.jpg"]
    for n in names:
        (photos / n).write_bytes((src / n).read_bytes())
    (photos / "notes.txt").write_text("not an image")  # skipped, never fatal
    out = tmp_path / "site"
    r = gallery(tiny, out, images=photos, k=2, **{**KW, "layers": ["conv2"]})
    x = np.stack([load_one(photos / n, tiny.input_size) for n in sorted(names)]).astype(np.float32)
    a = np.asarray(tiny.apply(tiny.params, x, ["conv2"])["conv2"])  # N×H×W×C
    best = a.reshape(len(names), -1, a.shape[-1]).max(1)  # N×C
    for u in r.manifest["layers"][0]["units"]:
        c = u["unit"]
        order = np.argsort(-best[:, c], kind="stable")[:2]
        assert [p["source"] for p in u["patches"]] == [sorted(names)[i] for i in order]
        np.testing.assert_allclose([p["value"] for p in u["patches"]], best[order, c], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(u["mean"], a[..., c].mean(), rtol=1e-5, atol=1e-6)
        assert all((out / p["image"]).is_file() for p in u["patches"])


def test_first_layer_shows_its_neuron_beside_the_filter(squeezenet, tmp_path):
    """SqueezeNet conv1 (linear in the image, 3-px field): the centre neuron is visualised and its filter is
    shown beside it, also without photos."""
    r = gallery(squeezenet, tmp_path, layers=["conv1"], units=2, block=2, steps=2, image_size=48, progress=False)
    units = r.manifest["layers"][0]["units"]
    assert [u["kind"] for u in units] == ["neuron", "neuron"]
    for u in units:
        assert (tmp_path / u["filter"]).is_file()
        page = (tmp_path / u["page"]).read_text()
        assert page.index("centre neuron") < page.index(u["filter"].split("/")[-1])  # the filter right after it
