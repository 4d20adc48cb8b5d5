"""Any network through every public entry point, with no hook (issue 21).

A plain JAX function written with `jax.nn.relu`, a Flax NNX module and a Flax Linen module (the same weights),
and 1-, 4- and 5-channel networks (the plain function with that many input channels) go through activations,
classify, deep_dream_image, visualize with every preset, saliency with every method, grad_cam, occlusion
sensitivity, top_patches, gallery and analyze_network. Values are checked against the plain function called
directly on the array the network should see (`direct`): the image as given for 3, 4 and 5 channels, its
ITU-R 601 luma for the 1-channel network (checked against Pillow's own conversion).

The engine (visualize, deep_dream_image, gallery) sees only `net.apply`, which the value tests check per kind,
and its parameterisations depend only on the channel count: by default every preset runs on the plain function,
and on the 1- and 5-channel networks the default preset plus one pixel preset each (cs231n, matlab) and the
dream on 5 channels; the rest of the matrix (NNX, Linen, 4 channels, the other presets) is slow-only.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import jaxvis
from jaxvis.engine.visualize import scale_for_display
from jaxvis.errors import ImageError, PatchesError
from jaxvis.imaging.images import channel_colors
from jaxvis.nets.ops import relu_fn

SIZE, CLASSES = 16, ["ant", "bee", "cat"]
ALL_RULES = {"standard", "guided", "deconvnet", "redirected"}


def weights(c: int, seed: int = 0) -> dict:
    r = np.random.default_rng(seed)
    f = lambda *s, sd=0.4: jnp.asarray(r.normal(0, sd, s), jnp.float32)  # noqa: E731
    return {"w1": f(3, 3, c, 4), "b1": f(4, sd=0.1), "w2": f(3, 3, 4, 4), "b2": f(4, sd=0.1), "w3": f(4, 3),
            "b3": f(3, sd=0.1)}


def conv(x, w, b, stride):
    return jax.lax.conv_general_dilated(x, w, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")) + b


def plain(p, x, relu=jax.nn.relu):
    """The reference function; jaxvis is given it without the `relu` keyword."""
    c1 = conv(x, p["w1"], p["b1"], 1)
    r1 = relu(c1)
    c2 = conv(r1, p["w2"], p["b2"], 2)
    r2 = relu(c2)
    return {"conv1": c1, "relu1": r1, "conv2": c2, "relu2": r2, "logits": r2.mean(axis=(1, 2)) @ p["w3"] + p["b3"]}


def preprocess(x):  # no ImageNet statistics: 0..255 → -0.5..0.5 in every channel
    return x / 255.0 - 0.5


def direct(p, raw, layer, relu="standard"):
    """`layer` of the plain function on N×H×W×C 0..255 arrays."""
    return plain(p, preprocess(jnp.asarray(raw, jnp.float32)), relu_fn(relu))[layer]


def nnx_net(p):
    from flax import nnx

    class Tiny(nnx.Module):
        def __init__(self, rngs):
            self.conv1 = nnx.Conv(3, 4, (3, 3), rngs=rngs)
            self.conv2 = nnx.Conv(4, 4, (3, 3), strides=2, rngs=rngs)
            self.fc = nnx.Linear(4, 3, rngs=rngs)

        def __call__(self, x):
            return self.fc(nnx.relu(self.conv2(nnx.relu(self.conv1(x)))).mean(axis=(1, 2)))

    m = Tiny(nnx.Rngs(0))
    for mod, w, b in ((m.conv1, "w1", "b1"), (m.conv2, "w2", "b2"), (m.fc, "w3", "b3")):
        mod.kernel.value, mod.bias.value = p[w], p[b]
    return jaxvis.from_flax(m, input_size=SIZE, classes=CLASSES, preprocess=preprocess)


def linen_net(p):
    import flax.linen as nn

    class Tiny(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.relu(nn.Conv(4, (3, 3))(x))
            x = nn.relu(nn.Conv(4, (3, 3), strides=2)(x))
            return nn.Dense(3)(x.mean(axis=(1, 2)))

    v = {"params": {"Conv_0": {"kernel": p["w1"], "bias": p["b1"]}, "Conv_1": {"kernel": p["w2"], "bias": p["b2"]},
                    "Dense_0": {"kernel": p["w3"], "bias": p["b3"]}}}
    return jaxvis.from_function(Tiny(), v, input_size=SIZE, classes=CLASSES, preprocess=preprocess)


@dataclasses.dataclass
class Case:
    net: object
    channels: int
    params: dict
    image: object  # what the user passes
    raw: np.ndarray  # 1×H×W×C: what the network must see
    layers: dict  # the network's layer name -> the plain function's
    unit_layer: str  # a spatial layer for the engine and top patches

    def __post_init__(self):
        self.inv = {v: k for k, v in self.layers.items()}


def photo(tmp: Path) -> tuple[Path, np.ndarray]:
    rgb = np.random.default_rng(7).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    path = tmp / "photo.png"
    Image.fromarray(rgb).save(path)
    return path, rgb


def make_case(kind: str, tmp: Path) -> Case:
    rng = np.random.default_rng(11)
    same = {k: k for k in ("conv1", "relu1", "conv2", "relu2", "logits")}
    if kind in ("plain", "nnx", "linen"):
        p = weights(3)
        x = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        if kind == "plain":
            net = jaxvis.from_function(lambda q, y: plain(q, y), p, input_size=SIZE, classes=CLASSES,
                                       preprocess=preprocess, name="plain")
            return Case(net, 3, p, x, x[None].astype(np.float32), same, "relu2")
        if kind == "nnx":
            return Case(nnx_net(p), 3, p, x, x[None].astype(np.float32),
                        {"conv1": "conv1", "conv2": "conv2", "output": "logits"}, "conv2")
        return Case(linen_net(p), 3, p, x, x[None].astype(np.float32),
                    {"Conv_0": "conv1", "Conv_1": "conv2", "output": "logits"}, "Conv_1")
    c = {"gray": 1, "rgba": 4, "bands": 5}[kind]
    p = weights(c, seed=c)
    net = jaxvis.from_function(lambda q, y: plain(q, y), p, input_size=SIZE, classes=CLASSES, preprocess=preprocess,
                               name=kind)
    if kind == "gray":  # a colour photo for a grayscale network: its luma
        path, rgb = photo(tmp)
        luma = (rgb.astype(np.float64) @ [0.299, 0.587, 0.114]).astype(np.float32)
        assert np.abs(luma - np.asarray(Image.open(path).convert("L"), np.float32)).max() <= 0.5  # Pillow's, rounded
        return Case(net, 1, p, str(path), luma[None, ..., None], same, "relu2")
    x = rng.uniform(0, 255, (SIZE, SIZE, c)).astype(np.float32)  # for 4 channels: all four used, no alpha dropped
    return Case(net, c, p, x, x[None], same, "relu2")


KINDS = ["plain", "nnx", "linen", "gray", "rgba", "bands"]
PRESETS = ["lucid", "keras_vis", "cs231n", "matlab", "maco"]
# (kind, engine run) pairs of the default suite; every other pair is slow-only (see the module docstring)
FAST_ENGINE = {("plain", p) for p in [*PRESETS, "dream", "gallery"]} | {
    ("gray", "lucid"), ("gray", "cs231n"), ("gray", "gallery"),
    ("gray", "maco"), ("bands", "lucid"), ("bands", "maco"), ("bands", "matlab"), ("bands", "dream"), ("bands", "gallery")}


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("anynet")
    return {k: make_case(k, tmp) for k in KINDS}


@pytest.fixture(params=KINDS)
def case(request, cases) -> Case:
    return cases[request.param]


def engine_kinds(run: str) -> list:
    return [k if (k, run) in FAST_ENGINE else pytest.param(k, marks=pytest.mark.slow) for k in KINDS]


def tol(ref) -> float:
    return 1e-5 * max(float(np.abs(ref).max()), 1e-6)


# ----------------------------------------------------------------------- the network and its values
def test_protocol_channels_and_rules(case):
    net = case.net
    assert isinstance(net, jaxvis.Net) and net.input_channels == case.channels
    assert net.relu_rules == ALL_RULES  # recognised in the jaxpr: no hook
    assert set(case.layers) <= set(net.layer_names)
    rows = {r.name: r for r in jaxvis.analyze_network(net).rows}
    first = case.inv["conv1"]
    assert rows[first].learnables["Weights"] == (3, 3, case.channels, 4)
    assert rows[first].activation_size == (SIZE, SIZE, 4)
    assert net.graph().input_channels == case.channels


def test_activations_and_classify_equal_the_function(case):
    names = list(case.layers)
    acts = jaxvis.activations(case.net, case.image, layers=names)
    for name, ref_name in case.layers.items():
        ref = np.asarray(direct(case.params, case.raw, ref_name))[0]
        got = acts[name]
        np.testing.assert_allclose(got.reshape(ref.shape), ref, rtol=0, atol=tol(ref), err_msg=name)
    p = np.asarray(jax.nn.softmax(direct(case.params, case.raw, "logits")[0]))
    top = jaxvis.classify(case.net, case.image, top=3)
    assert [n for n, _ in top] == [CLASSES[i] for i in np.argsort(-p)]
    np.testing.assert_allclose([q for _, q in top], np.sort(p)[::-1], rtol=1e-5)


def test_saliency_every_method(case):
    """The gradient and guided/deconvnet gradients equal the plain function's (guided/deconvnet: through its ReLU
    hook, which jaxvis was not given); SmoothGrad and integrated gradients have the input's shape."""
    cls, x = 1, jnp.asarray(case.raw)
    for method, rule in (("gradient", "standard"), ("guided_backprop", "guided"), ("deconvnet", "deconvnet")):
        ref = np.asarray(jax.jit(jax.grad(lambda y: direct(case.params, y, "logits", rule)[0, cls]))(x))[0]
        got = jaxvis.saliency(case.net, case.image, "bee", method=method).raw
        np.testing.assert_allclose(got, ref, rtol=0, atol=tol(ref), err_msg=method)
        assert got.shape == (SIZE, SIZE, case.channels)
    for method in ("smoothgrad", "integrated_gradients"):
        m = jaxvis.saliency(case.net, case.image, "bee", method=method, num_samples=4, steps=8)
        assert m.raw.shape == (SIZE, SIZE, case.channels) and m.map.shape == (SIZE, SIZE)
        assert np.isfinite(m.raw).all() and np.abs(m.raw).max() > 0


def test_grad_cam_and_occlusion(case):
    cam = jaxvis.grad_cam(case.net, case.image, "cat")
    assert cam.map.shape == (SIZE, SIZE) and np.isfinite(cam.map).all() and cam.map.min() >= 0
    occ = jaxvis.occlusion_sensitivity(case.net, case.image, "cat", mask_size=8, stride=8, mask_value=0.0,
                                       placement="captum")
    score = lambda y: float(direct(case.params, y, "logits")[0, 2])  # noqa: E731
    covered = case.raw.copy()
    covered[:, :8, 8:16] = 0.0
    assert occ.raw[0, 1] == pytest.approx(score(case.raw) - score(covered), abs=1e-4 * abs(score(case.raw)) + 1e-6)
    assert occ.overlay().shape == (SIZE, SIZE, 3)  # displayable whatever the channel count


def test_top_patches(case, tmp_path):
    rng = np.random.default_rng(3)
    if case.channels in (1, 3):  # image files: a folder of photos (colour photos for the gray network: luma)
        rgb = rng.integers(0, 256, (5, SIZE, SIZE, 3), dtype=np.uint8)
        for i, im in enumerate(rgb):
            Image.fromarray(im).save(tmp_path / f"{i}.png")
        images, seen = tmp_path, rgb.astype(np.float64) @ [0.299, 0.587, 0.114] if case.channels == 1 else rgb
        seen = np.asarray(seen, np.float32).reshape(5, SIZE, SIZE, case.channels)
    else:
        images = seen = rng.uniform(0, 255, (5, SIZE, SIZE, case.channels)).astype(np.float32)
        with pytest.raises(PatchesError, match=f"takes {case.channels}-channel images"):
            jaxvis.top_patches(case.net, [str(tmp_path / "x.png")], case.unit_layer, k=2, progress=False)
    tp = jaxvis.top_patches(case.net, images, case.unit_layer, k=2, progress=False)
    ref = np.asarray(direct(case.params, seen, case.layers[case.unit_layer]))  # 5×h×w×4
    for u in range(4):
        best = ref[..., u].reshape(5, -1).max(1)
        got = [h.value for h in tp.hits(case.unit_layer, u)]
        np.testing.assert_allclose(got, np.sort(best)[::-1][:2], rtol=1e-5, atol=tol(best))
    assert tp.tile(case.unit_layer, [0, 1], thumbnail=16).shape[-1] == 3


def test_inputs_that_do_not_fit_are_refused(cases, tmp_path):
    path, rgb = photo(tmp_path)
    Image.fromarray(np.dstack([rgb, np.full((SIZE, SIZE), 200, np.uint8)])).save(tmp_path / "rgba.png")
    with pytest.raises(ImageError, match="takes 4 channels"):  # an RGBA file is no 4-band raster
        jaxvis.activations(cases["rgba"].net, str(tmp_path / "rgba.png"), "conv1")
    with pytest.raises(ImageError, match="has 4 channels.*takes 5"):
        jaxvis.activations(cases["bands"].net, np.zeros((SIZE, SIZE, 4)), "conv1")
    with pytest.raises(ImageError, match="takes 5 channels"):
        jaxvis.classify(cases["bands"].net, str(path))
    # RGBA for an RGB network drops alpha, as before; a gray file for a gray network is read exactly.
    a = jaxvis.activations(cases["plain"].net, str(tmp_path / "rgba.png"), "conv1")
    np.testing.assert_allclose(a, jaxvis.activations(cases["plain"].net, rgb, "conv1"), rtol=0, atol=1e-6)
    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")
    g = jaxvis.activations(cases["gray"].net, str(tmp_path / "gray.png"), "conv1")
    ref = np.asarray(direct(cases["gray"].params, rgb[None, ..., :1].astype(np.float32), "conv1"))[0]
    np.testing.assert_allclose(g, ref, rtol=0, atol=tol(ref))


# ----------------------------------------------------------------------- the engine
@pytest.mark.parametrize("kind", engine_kinds("dream"))
def test_deep_dream_image(cases, kind):
    case = cases[kind]
    d = jaxvis.deep_dream_image(case.net, case.unit_layer, [0, 2], pyramid_levels=1, num_iterations=2, verbose=False)
    assert d.shape == (2, SIZE, SIZE, case.channels) and np.isfinite(d).all()


@pytest.mark.parametrize("kind, preset", [(k, p) if (k, p) in FAST_ENGINE else pytest.param(k, p, marks=pytest.mark.slow)
                                          for p in PRESETS for k in KINDS])
def test_visualize_every_preset(cases, kind, preset):
    case = cases[kind]
    v = jaxvis.visualize(case.net, case.unit_layer, preset=preset, steps=2, levels=1, batch_size=4, progress=False)
    shown = 1 if case.channels == 1 else 3  # gray for 1 channel, an RGB rendering for 4 and 5
    assert v.images.shape == (4, SIZE, SIZE, shown) and v.images.dtype == np.uint8
    assert v.raw.shape == (4, SIZE, SIZE, case.channels) and np.isfinite(v.trace).all()
    assert v.settings["decorrelate"] == (preset in ("lucid", "maco") and case.channels == 3)
    if case.channels not in (1, 3):  # the rendering: a linear mix of the raw channels, then the preset's scaling
        mix = channel_colors(case.channels)
        np.testing.assert_array_equal(v.images, scale_for_display(v.raw @ mix, v.settings["output_scaling"]))


@pytest.mark.parametrize("kind", engine_kinds("gallery"))
def test_gallery(cases, kind, tmp_path):
    case = cases[kind]
    rng = np.random.default_rng(9)
    images = list(rng.uniform(0, 255, (3, SIZE, SIZE, case.channels)).astype(np.float32))
    # block = the layer's 4 units and steps as test_visualize_every_preset: the engine's compiled loop is reused
    g = jaxvis.gallery(case.net, tmp_path / "site", layers=[case.unit_layer], steps=2, block=4, images=images, k=2,
                       progress=False)
    assert g.complete and g.rendered == 4
    unit = g.manifest["layers"][0]["units"][1]
    png = Image.open(tmp_path / "site" / unit["image"])
    assert png.size == (SIZE, SIZE) and png.mode == ("L" if case.channels == 1 else "RGB")
    assert len(unit["patches"]) == 2 and (tmp_path / "site" / "index.html").is_file()
