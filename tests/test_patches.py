"""Top-k dataset patches (jaxvis.top_patches) against a numpy brute force over all activations in memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import jaxvis
from jaxvis.errors import DatasetError, LayerError, PatchesError
from jaxvis.patches import top_patches
from jaxvis.patches.result import outline, reconstruct
from tiny_nets import SIZE, pure_net

LAYERS = ["relu1", "conv2", "logits"]
N, K, BATCH = 22, 3, 4
REPO = Path(__file__).resolve().parent.parent


def write_folder(root: Path, n: int = N, seed: int = 0) -> list[Path]:
    """n SIZE×SIZE images (PNG, JPEG-free so pixels are exact; image 2 = image 1 for a tie; some in a
    subfolder, one WebP), plus a text file, a corrupt PNG and an empty JPEG that must be skipped."""
    rng = np.random.default_rng(seed)
    ims = rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)
    ims[2] = ims[1]
    paths = []
    for i, a in enumerate(ims):
        p = root / ("sub" if i % 3 == 0 else "") / f"im{i:02d}.{'webp' if i == 5 else 'png'}"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).save(p, lossless=True) if i == 5 else Image.fromarray(a).save(p)
        paths.append(p)
    (root / "notes.txt").write_text("not an image")
    (root / "im10_broken.png").write_bytes(b"\x89PNG\r\n garbage")
    (root / "sub" / "zz_empty.jpg").write_bytes(b"")
    return paths


def brute_force(net, root: Path, layers, k):
    """Every image decoded with PIL, all activations in memory, per unit argsort by (-max, image id); and per
    unit the mean activation (float64) over positions and readable images."""
    files = sorted((p for p in root.rglob("*") if p.suffix in (".png", ".webp", ".jpg") and p.stat().st_size),
                   key=lambda p: p.relative_to(root).as_posix())  # empty files are skipped when the folder is listed
    ids, ims = [], []
    for i, p in enumerate(files):
        try:
            ims.append(np.asarray(Image.open(p).convert("RGB")))
            ids.append(i)
        except Exception:  # noqa: BLE001  the unreadable ones
            pass
    acts = net.jitted(layers)(net.params, np.stack(ims).astype(np.float32))
    out, means = {}, {}
    for l in layers:
        a = np.asarray(acts[l])
        a = a[:, None, None, :] if a.ndim == 2 else a
        flat = a.reshape(len(ims), -1, a.shape[-1])
        m, pos = flat.max(1), flat.argmax(1)  # N×C
        order = np.lexsort((np.broadcast_to(np.arange(len(ims))[:, None], m.shape), -m), axis=0)[:k]  # k×C
        out[l] = (np.take_along_axis(m, order, 0).T, np.asarray(ids)[order].T,
                  np.take_along_axis(pos, order, 0).T, a.shape[1:3])
        means[l] = flat.astype(np.float64).mean(axis=(0, 1))
    return out, means, len(files), len(files) - len(ims)


@pytest.fixture(scope="module")
def tiny():
    return pure_net()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    write_folder(root)
    return root


@pytest.fixture(scope="module")
def ref(tiny, folder):
    return brute_force(tiny, folder, LAYERS, K)


def assert_means(got: dict, means: dict) -> None:
    """fp32 per-image means summed over 22 images: a few ulps of the layer's scale."""
    for l in LAYERS:
        assert got[l].shape == means[l].shape, l
        np.testing.assert_allclose(got[l], means[l], rtol=0, atol=1e-5 * np.abs(means[l]).max(), err_msg=l)


@pytest.fixture(scope="module")
def run(tiny, folder):
    return top_patches(tiny, folder, LAYERS, k=K, batch_size=BATCH, progress=False)


def test_matches_brute_force(tiny, run, ref):
    ref, means, n_files, n_bad = ref
    assert run.n_images == n_files == N + 1
    assert len(run.skipped) == n_bad + 2 == 3  # broken PNG (unreadable), empty JPEG + notes.txt (listing)
    assert {Path(s.source).name for s in run.skipped} == {"notes.txt", "im10_broken.png", "zz_empty.jpg"}
    for l in LAYERS:
        v, ids, pos, hw = ref[l]
        np.testing.assert_array_equal(run.image[l], ids, err_msg=l)
        # fp32: the same convolutions in another batch layout; relative to the layer's scale
        np.testing.assert_allclose(run.value[l], v, rtol=0, atol=1e-5 * np.abs(v).max(), err_msg=l)
        y, x = np.unravel_index(pos, hw)
        np.testing.assert_array_equal(run.position[l], np.stack([y, x], -1), err_msg=l)
    # the duplicated pair (im01, im02) ties exactly: wherever both are hits, the lower id comes first
    a, b = (next(i for i, s in enumerate(run.sources) if s.endswith(f"im0{j}.png")) for j in (1, 2))
    assert a < b
    both = [(l, u) for l in LAYERS for u in range(run.image[l].shape[0]) if {a, b} <= set(run.image[l][u].tolist())]
    assert both
    for l, u in both:
        row = run.image[l][u].tolist()
        assert row.index(a) + 1 == row.index(b) and run.value[l][u][row.index(a)] == run.value[l][u][row.index(b)]
    assert_means(run.means, means)  # from the same pass: every layer's units averaged over positions and images
    dev = jaxvis.patches.topk.jax.local_devices()[0]
    key = ("top_patches", "step", tuple(LAYERS), K, (dev.id,), jaxvis.patches.topk.block_size(BATCH, (dev,)))
    assert tiny.trace_counts[key] == 1  # 7 batches (the last one padded), one compile


@pytest.mark.parametrize("batch", [16, 12])
def test_blocks_inside_a_step_change_nothing(tiny, folder, ref, batch):
    """A step's batch runs as blocks of ≤ 8 images on one CPU (16 → 2 × 8, 12 → 2 × 6; the last batch padded):
    the same hits, positions (first maximum) and means as the brute force."""
    dev = jaxvis.patches.topk.jax.local_devices()[0]
    assert jaxvis.patches.topk.block_size(batch, (dev,)) < batch
    r = top_patches(tiny, folder, LAYERS, k=K, batch_size=batch, progress=False)
    refs, means = ref[0], ref[1]
    for l in LAYERS:
        v, ids, pos, hw = refs[l]
        np.testing.assert_array_equal(r.image[l], ids, err_msg=l)
        np.testing.assert_allclose(r.value[l], v, rtol=0, atol=1e-5 * np.abs(v).max(), err_msg=l)
        np.testing.assert_array_equal(r.position[l], np.stack(np.unravel_index(pos, hw), -1), err_msg=l)
    assert_means(r.means, means)


def test_batch_maxima_position_is_argmax_with_ties_and_nans():
    a = np.zeros((3, 4, 5, 6), np.float32)
    a[0, 1, 2, :] = 1.0  # a plain maximum
    a[1, :, :, 0] = 2.0  # every position ties: the first (row-major) wins
    a[2, 3, 4, 1], a[2, 0, 1, 1] = np.nan, np.nan  # NaN is the maximum: its first position, as argmax
    m, pos = jaxvis.patches.topk.batch_maxima(jnp.asarray(a), jnp.asarray([True, True, False]))
    flat = a.reshape(3, -1, 6)
    np.testing.assert_array_equal(np.asarray(pos), flat.argmax(1).T)
    assert np.isneginf(np.asarray(m)[:, 2]).all()  # an invalid image never becomes a hit


def test_hits_and_crops(tiny, run, monkeypatch):
    hits = run.hits("relu1", 4)
    assert [h.image for h in hits] == run.image["relu1"][4].tolist() and hits[0].value >= hits[-1].value
    # relu1 = relu(conv3×3 stride 2, SAME: no top/left padding at 32 px) → input rows 2y..2y+2: the field read from
    # the function's graph (its conv_general_dilated's padding) is that closed form.
    rf = run.receptive_field("relu1")
    assert (rf.size, rf.stride, rf.offset, rf.method) == ((3, 3), (2, 2), (1.0, 1.0), "graph")
    c = run.crops("relu1", 4, context=0)
    assert c.images.shape == (K, *rf.size, 3) and c.reconstructions.shape == c.images.shape
    h = hits[0]
    img = np.asarray(Image.open(h.source).convert("RGB"))
    np.testing.assert_array_equal(c.images[0], img[2 * h.y: 2 * h.y + 3, 2 * h.x: 2 * h.x + 3])
    assert c.fields.tolist()[0] == [0, 0, 3, 3]
    # context 8: an 8×8 crop around the 3×3 field (grown 2 up/left, 3 down/right, then moved inside the 32×32
    # image), the field's place in it in `fields`; the reconstruction is zero (grey) outside the field
    wide = run.crops("relu1", 4, context=8)
    for j, hj in enumerate(hits):
        y0 = min(max(2 * hj.y - 2, 0), 32 - 8)
        x0 = min(max(2 * hj.x - 2, 0), 32 - 8)
        im = np.asarray(Image.open(hj.source).convert("RGB"))
        np.testing.assert_array_equal(wide.images[j], im[y0:y0 + 8, x0:x0 + 8])
        assert wide.fields[j].tolist() == [2 * hj.y - y0, 2 * hj.x - x0, 2 * hj.y - y0 + 3, 2 * hj.x - x0 + 3]
        fy0, fx0, fy1, fx1 = wide.fields[j]
        out = np.ones((8, 8), bool)
        out[fy0:fy1, fx0:fx1] = False
        np.testing.assert_allclose(wide.reconstructions[j][out], 0.5, atol=1e-6)
    red = outline(np.zeros((8, 8, 3), np.uint8), (2, 2, 5, 5))
    assert (red[..., 0] > 0).sum() == 5 * 4 - 4 and red[2:5, 2:5].max() == 0  # a 5×5 ring around the 3×3 field
    # guided backprop of an active relu1 unit, closed form: its conv1 kernel / 255 (preprocess x / 255 − 0.5) on the
    # unit's 3×3 window of the input, zero elsewhere; the crop shows it scaled symmetrically around grey
    g = reconstruct(tiny, "relu1", img[None], [h.y], [h.x], [4])[0]
    expect = np.zeros_like(g)
    expect[2 * h.y: 2 * h.y + 3, 2 * h.x: 2 * h.x + 3] = np.asarray(tiny.params["w1"])[..., 4] / 255.0
    np.testing.assert_allclose(g, expect, rtol=0, atol=1e-6 * np.abs(expect).max())
    crop = expect[2 * h.y: 2 * h.y + 3, 2 * h.x: 2 * h.x + 3]
    s = np.percentile(np.abs(crop), 99.5)
    np.testing.assert_allclose(c.reconstructions[0], np.clip(0.5 + crop / (2 * s), 0, 1), atol=1e-5)
    loads = []  # tile decodes each photo once, for the crops and the reconstructions of all its units
    monkeypatch.setattr(run, "load", lambda i, load=run.load: loads.append(i) or load(i))
    t = run.tile("relu1", [4, 5], thumbnail=16)
    assert t.dtype == np.uint8 and t.shape == (2 * (16 + 12 + 4), K * (32 + 4), 3)
    assert sorted(loads) == sorted({h.image for u in (4, 5) for h in run.hits("relu1", u)})


def test_resume_after_interrupt(tiny, folder, run, ref, tmp_path):
    cache = tmp_path / "state.npz"
    with pytest.raises(KeyboardInterrupt):
        top_patches(tiny, folder, LAYERS, k=K, batch_size=BATCH, progress=False, cache=cache, _stop_after=3)
    assert cache.exists()
    again = top_patches(tiny, folder, LAYERS, k=K, batch_size=BATCH, progress=False, cache=cache)
    for l in LAYERS:
        np.testing.assert_array_equal(again.image[l], run.image[l])
        np.testing.assert_array_equal(again.value[l], run.value[l])
        np.testing.assert_array_equal(again.position[l], run.position[l])
    assert again.skipped == run.skipped
    assert_means(again.means, ref[1])  # the sums of the batches before the interrupt came back from the cache
    with pytest.raises(PatchesError, match="other settings.*k: cache 3, now 2"):
        top_patches(tiny, folder, LAYERS, k=2, batch_size=BATCH, progress=False, cache=cache)
    # a cache of the format before the means (no "format" field, no sums) is refused, naming the format
    with np.load(cache) as z:
        arrays = {n: z[n] for n in z.files if not n.endswith("/mean_sum") and n != "__used__"}
    meta = json.loads(bytes(arrays.pop("__meta__")).decode())
    del meta["format"]
    old = tmp_path / "old.npz"
    np.savez(old, __meta__=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
    with pytest.raises(PatchesError, match="format 1 .*older jaxvis.*reads format 3.*rebuild=True"):
        top_patches(tiny, folder, LAYERS, k=K, batch_size=BATCH, progress=False, cache=old)


def test_arrays_and_generator(tiny, folder, run):
    paths = [folder / s for s in sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png")
                                        if "broken" not in p.name)]
    ims = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    r = top_patches(tiny, (a for a in ims), ["conv2"], k=K, batch_size=BATCH, progress=False)
    assert r.n_images == len(ims) and r.sources is None
    u = 7
    got = [ims[h.image] for h in r.hits("conv2", u)]
    np.testing.assert_array_equal(np.stack([r.load(h.image) for h in r.hits("conv2", u)]), np.stack(got))


def test_bad_inputs(tiny, folder, tmp_path):
    with pytest.raises(LayerError, match="conv2"):
        top_patches(tiny, folder, "conv_2", progress=False)
    with pytest.raises(PatchesError, match="k must be"):
        top_patches(tiny, folder, "conv2", k=0, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no image files"):
        top_patches(tiny, tmp_path / "empty", "conv2", progress=False)
    with pytest.raises(DatasetError, match="is not a folder"):
        top_patches(tiny, tmp_path / "missing", "conv2", progress=False)
    with pytest.raises(DatasetError, match="empty list"):
        top_patches(tiny, [], "conv2", progress=False)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"nope")
    with pytest.raises(PatchesError, match="none of the 1 images could be read"):
        top_patches(tiny, bad, "conv2", progress=False)


CHILD = """
import json, sys
sys.path.insert(0, {tests!r})
import jax
if {nproc} > 1:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize("localhost:" + sys.argv[2], num_processes={nproc}, process_id=int(sys.argv[1]))
from jaxvis.patches import top_patches
from jaxvis.patches.result import reconstruct
from tiny_nets import pure_net
r = top_patches(pure_net(), {folder!r}, {layers!r}, k={k}, batch_size={batch}, progress=False)
print("RESULT", json.dumps({{"devices": jax.local_device_count(), "processes": jax.process_count(),
    "skipped": len(r.skipped), "image": {{l: r.image[l].tolist() for l in r.layers}},
    "value": {{l: r.value[l].tolist() for l in r.layers}}, "means": {{l: r.means[l].tolist() for l in r.layers}}}}))
"""


def _child(folder, nproc=1, devices=1, pid=0, port=0):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu",
               PYTHONPATH=str(REPO))
    code = CHILD.format(tests=str(REPO / "tests"), nproc=nproc, folder=str(folder), layers=LAYERS, k=K, batch=BATCH)
    return subprocess.Popen([sys.executable, "-c", code, str(pid), str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _result(proc):
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(next(line for line in out.splitlines() if line.startswith("RESULT"))[7:])


def _same(got, run, ref):
    for l in LAYERS:
        np.testing.assert_array_equal(np.asarray(got["image"][l]), run.image[l])
        np.testing.assert_allclose(np.asarray(got["value"][l]), run.value[l], rtol=0,
                                   atol=1e-5 * np.abs(run.value[l]).max())
    assert_means({l: np.asarray(v) for l, v in got["means"].items()}, ref[1])


def test_two_devices(folder, run, ref):
    got = _result(_child(folder, devices=2))
    assert got["devices"] == 2 and got["skipped"] == 3
    _same(got, run, ref)


@pytest.mark.slow
def test_two_processes(folder, run, ref):
    import socket
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    procs = [_child(folder, nproc=2, pid=i, port=port) for i in range(2)]
    results = [_result(p) for p in procs]
    for got in results:  # each process read half the batches; both hold the merged result
        assert got["processes"] == 2 and got["skipped"] == 3
        _same(got, run, ref)


def test_cli_errors(folder, tmp_path, capsys):
    from jaxvis.cli import main
    with pytest.raises(SystemExit):
        main(["patches", "--layers", "conv10", "--images", str(folder), "--k", "0", "--out", str(tmp_path / "o")])
    assert "k must be in 1..1000" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["patches", "--layers", "conv10", "--images", str(folder), "--out", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_writes_html(folder, tmp_path, capsys):
    from jaxvis.cli import main
    out = tmp_path / "html"
    assert main(["patches", "--model", "squeezenet", "--layers", "fire2-concat,fire3-concat", "--images", str(folder),
                 "--k", "2", "--units", "0:2", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "3 skipped" in printed
    written = [line[6:] for line in printed.splitlines() if line.startswith("wrote ")]
    assert len(written) == 5 and all(Path(w).is_file() for w in written) and written[-1].endswith("index.html")
    assert "fire2-concat/unit_0001.png" in (out / "index.html").read_text()


def test_a_unit_that_never_fires_has_no_top_patches(folder, tmp_path):
    """relu1 unit 0 with a bias of −1000 is 0 everywhere: its "top" hits used to be k arbitrary zero-valued
    patches with reconstructions stretched into a black/white grid; now it has none and says so."""
    import jax.numpy as jnp

    from jaxvis.patches.result import normalise_signed
    from tiny_nets import CLASSES, apply, params, preprocess
    p = params()
    p["b1"] = p["b1"].at[0].set(-1000.0)
    dead = jaxvis.from_function(apply, p, input_size=SIZE, classes=CLASSES, preprocess=preprocess, name="tiny-dead")
    tp = top_patches(dead, folder, ["relu1"], k=K, batch_size=BATCH, progress=False)
    assert np.all(tp.value["relu1"][0] == 0)  # the scan keeps them; hits() does not show them
    assert tp.hits("relu1", 0) == [] and tp.never_fired("relu1", 0)
    assert len(tp.hits("relu1", 1)) == K and not tp.never_fired("relu1", 1)
    t = tp.tile("relu1", [0, 1], thumbnail=16)
    cell = t[:16, :32]  # the dead unit's first cell: white (its label below says it never fired)
    assert cell.min() == 255
    html = (Path(tp.save_html(tmp_path / "html", units=[0, 1], thumbnail=16)[-1])).read_text()
    assert "unit 0</b> — never fired" in html and "unit 1</b><br>" in html
    # an exactly grey reconstruction shrunk for a thumbnail is flat grey, not its rounding noise stretched
    grey = jaxvis.imresize(np.full((9, 9, 3), 0.5, np.float32), (16, 16)) - 0.5
    assert np.all(normalise_signed(grey[None], floor=0.5 / 255) == 0.5)
    assert np.all(normalise_signed(np.full((1, 4, 4, 3), 3e-3)) == 0.5)  # constant: no structure to show
    signed = normalise_signed(np.array([[[[1e-9]], [[-2e-9]]]]))  # tiny but structured gradients keep their sign
    assert signed[0, 0, 0, 0] > 0.5 > signed[0, 1, 0, 0]
    assert jnp.all(jnp.asarray(tp.value["relu1"][1]) > 0)
