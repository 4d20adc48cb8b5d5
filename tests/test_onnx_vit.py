"""A ViT-style transformer through from_onnx (issue 21 item 6): a small seeded ViT (patch-embedding Conv, class
token, LayerNormalization, attention as MatMul/Softmax, MLP with Gelu) exported by torch.onnx.export.

Its token layers (N×T×C) are layers like any other and are shown as h×w maps of the T = h·w patch tokens (the
class token aside): values against onnxruntime, Grad-CAM over tokens against torch autograd, top patches
against a brute-force ranking of onnxruntime's activations, a channel objective raised (measured by
onnxruntime), and receptive fields (the patch before the first attention, the whole image after it).
"""

from __future__ import annotations

import types

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="test needs onnx (pip install 'jaxvis[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="test needs onnxruntime (test extra)")
torch = pytest.importorskip("torch", reason="test needs torch (test extra)")

import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import jaxvis  # noqa: E402
from jaxvis.nets.onnx import from_onnx  # noqa: E402
from jaxvis.nets.receptive import receptive_field  # noqa: E402

SIZE, PATCH, DIM = 32, 8, 32
GRID = SIZE // PATCH
EMBED = "/Add"  # patch tokens + position embedding, before any attention
FIRST = "/blocks/blocks.0/Add_1"  # the output of the first block (the class token reads it in the second)
LAST = "/blocks/blocks.1/Add_1"  # the output of the last block


class Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.n1, self.n2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.heads = heads

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(self.n1(x)).reshape(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5
        x = x + self.proj((att.softmax(-1) @ v).transpose(1, 2).reshape(b, t, c))
        return x + self.fc2(F.gelu(self.fc1(self.n2(x))))


class ViT(nn.Module):
    def __init__(self, depth: int = 2, heads: int = 2, classes: int = 10):
        super().__init__()
        self.patch = nn.Conv2d(3, DIM, PATCH, PATCH)
        self.cls = nn.Parameter(torch.randn(1, 1, DIM) * 0.5)
        self.pos = nn.Parameter(torch.randn(1, 1 + GRID * GRID, DIM) * 0.5)
        self.blocks = nn.Sequential(*[Block(DIM, heads) for _ in range(depth)])
        self.norm, self.head = nn.LayerNorm(DIM), nn.Linear(DIM, classes)

    def embed(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        return torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos

    def tokens(self, x, blocks: int = 2):
        """The output of the first `blocks` blocks (LAST: 2, FIRST: 1); for the references."""
        x = self.embed(x)
        for b in list(self.blocks)[:blocks]:
            x = b(x)
        return x

    def forward(self, x):
        return self.head(self.norm(self.blocks(self.embed(x)))[:, 0])


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    torch.manual_seed(0)
    model = ViT().eval()
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.LayerNorm):  # not the default ones and zeros
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.3, 0.3)
    path = tmp_path_factory.mktemp("vit") / "vit.onnx"
    torch.onnx.export(model, torch.randn(1, 3, SIZE, SIZE), str(path), dynamo=False, opset_version=20,
                      input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
    net = from_onnx(path, preprocess="unit")
    m = onnx.load(str(path))
    for t in (EMBED, LAST):
        m.graph.output.append(onnx.helper.make_empty_tensor_value_info(net.plan.layers[t]))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])

    def run(images_nhwc):
        x = (np.asarray(images_nhwc, np.float32) / 255).transpose(0, 3, 1, 2)
        out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"image": x})))
        return {"logits": out["logits"], **{t: out[net.plan.layers[t]] for t in (EMBED, LAST)}}

    return types.SimpleNamespace(torch=model, net=net, ort=run, onnx=m)


def grid(tokens: np.ndarray) -> np.ndarray:
    """N×(1+h·w)×C tokens → N×h×w×C patch tokens (class token dropped)."""
    return tokens[:, 1:].reshape(len(tokens), GRID, GRID, -1)


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, SIZE, SIZE, 3)).astype(np.float32)


def test_vit_imports_and_matches_onnxruntime(vit):
    net = vit.net
    assert {"Conv", "LayerNormalization", "MatMul", "Softmax", "Gelu"} <= {net.layer_type(n) for n in net.layer_names}
    x = images(3)
    ref = vit.ort(x)
    out = net.jitted([EMBED, LAST, net.logits_layer])(net.params, x)
    for name, want in ((EMBED, grid(ref[EMBED])), (LAST, grid(ref[LAST])),
                       (net.logits_layer, ref["logits"][:, None, None])):
        got = np.asarray(out[name])
        assert got.shape == want.shape, name
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max(), name


def test_token_layers_are_patch_grids(vit):
    net = vit.net
    assert jaxvis.activations(net, images(1)[0], layer=LAST).shape == (GRID, GRID, DIM)
    assert net.graph()[LAST].shape == (1, GRID, GRID, DIM)
    embed, last = receptive_field(vit.net, EMBED), receptive_field(vit.net, LAST)
    assert (embed.size, embed.stride, embed.box(1, 2)) == ((PATCH, PATCH), (PATCH, PATCH), (8, 16, 16, 24))
    assert not last.spatial and last.box(1, 2) == (0, 0, SIZE, SIZE)  # attention: every token sees the image


def test_grad_cam_over_tokens_equals_torch(vit):
    """Grad-CAM at the first block's output: ReLU(Σ_c mean_tokens(∂logit/∂A_c) · A_c) over the h×w patch tokens
    (the class token reads them in the second block's attention); reference from torch autograd on the same
    weights. (At the last block's output the patch tokens do not reach the logits: only the class token does.)"""
    img = images(1, 5)[0]
    x = torch.tensor(img[None].transpose(0, 3, 1, 2) / 255, dtype=torch.float32)
    checked = 0
    for cls in range(10):
        tokens = vit.torch.tokens(x, 1)
        tokens.retain_grad()
        vit.torch.head(vit.torch.norm(vit.torch.blocks[1](tokens))[:, 0])[0, cls].backward()
        a, g = tokens[0, 1:].detach().numpy(), tokens.grad[0, 1:].numpy()
        want = np.maximum((a * g.mean(0)).sum(1), 0).reshape(GRID, GRID)
        if want.max() == 0:  # an all-negative map: nothing to compare
            continue
        got = np.asarray(jaxvis.grad_cam(vit.net, img, cls, feature_layer=FIRST, upsampling="none").raw)
        assert got.shape == (GRID, GRID)
        assert np.abs(got - want).max() <= 1e-4 * want.max(), cls
        checked += 1
        if checked == 3:
            break
    assert checked == 3


def test_top_patches_over_tokens_equal_brute_force(vit):
    imgs = images(5, 7).round().astype(np.uint8)
    k = 2
    tp = jaxvis.top_patches(vit.net, list(imgs), [EMBED], k=k, progress=False)
    acts = grid(vit.ort(imgs.astype(np.float32))[EMBED])  # N×h×w×C
    per_image = acts.reshape(len(acts), -1, DIM).max(1)
    for unit in (0, 7, 31):
        order = np.argsort(-per_image[:, unit], kind="stable")[:k]
        assert list(tp.image[EMBED][unit]) == list(order)
        for j, i in enumerate(order):
            assert tuple(tp.position[EMBED][unit, j]) == np.unravel_index(acts[i, :, :, unit].argmax(), (GRID, GRID))
    assert tp.box(EMBED, 1, 2) == (8, 16, 16, 24)  # the token's own patch


def test_channel_objective_gradient_over_tokens_equals_torch(vit):
    """A channel objective on a token layer is the channel's mean over the h×w patch tokens: its input gradient
    equals torch autograd's of that mean."""
    import jax

    img, chan = images(1, 3), 7
    got = jax.jit(jax.grad(lambda x: vit.net.apply(vit.net.params, x, [LAST])[LAST][..., chan].mean()))(img)
    x = torch.tensor(img, requires_grad=True)
    vit.torch.tokens(x.permute(0, 3, 1, 2) / 255)[:, 1:, chan].mean().backward()
    want = x.grad.numpy()
    assert np.abs(np.asarray(got) - want).max() <= 1e-4 * np.abs(want).max()


@pytest.mark.slow  # one lucid optimisation-loop compilation (~40 s on 2 shared cores)
def test_visualize_channel_on_tokens_raises_it(vit):
    chan = 7
    v = jaxvis.visualize(vit.net, jaxvis.objectives.channel(LAST, chan), steps=48, image_size=SIZE, progress=False)
    assert np.isfinite(v.raw).all()
    got = grid(vit.ort(v.raw[:1] * 255)[LAST])[..., chan].mean()
    grey = grid(vit.ort(127.5 + images(4, 9) / 25)[LAST])[..., chan].mean()
    assert got > grey + 0.1, (got, grey)
