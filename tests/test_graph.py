"""The protocol's graph view (`net.graph()`) of the three adapters, each against an independent reference:
the weights and activations of the shipped ports and MATLAB's/torchvision's published geometry; onnx's own
node list and onnxruntime's shapes for an import; the function's own outputs and hand-computed geometry for
`from_function`. MACs against closed forms; receptive fields against measured gradients; the declared ReLU
rules against what the engine runs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import jaxvis
from jaxvis.errors import ImageError, LayerError
from jaxvis.nets.receptive import receptive_field

import tiny_nets as T

NHWC = ("NHWC", "HWIO", "NHWC")


def _leaves(tree) -> int:
    return sum(int(np.prod(np.shape(a))) for a in jax.tree.leaves(tree))


# ----------------------------------------------------------------------- shipped ports
def test_squeezenet_graph_nodes_kinds_shapes_and_parameters(squeezenet):
    g = squeezenet.graph()
    assert g is squeezenet.graph((227, 227))  # memoised per input size
    assert len(g) == len(g.layers) == 68 and g.layers == squeezenet.layer_names  # MATLAB: "68×1 Layer array"
    kinds = [n.kind for n in g]
    assert {k: kinds.count(k) for k in set(kinds)} == {
        "input": 1, "conv": 26, "relu": 26, "concat": 8, "pool": 3, "global_pool": 1, "dropout": 1, "softmax": 1,
        "output": 1}
    assert (g.input_size, g.input_channels, g.input.name) == ((227, 227), 3, "data")
    x = np.random.default_rng(0).uniform(0, 255, (227, 227, 3)).astype(np.float32)
    acts = jaxvis.activations(squeezenet, x, layers=list(g.layers))
    for n in g:
        assert n.shape == (1, *acts[n.name].shape), n.name
        assert n.params == _leaves(squeezenet.params.get(n.name, {})), n.name  # the loaded weights' sizes
    assert g.total_params == _leaves(squeezenet.params) == 1_235_496
    # MATLAB's listing of squeezenet: conv1 "64 3×3×3 convolutions with stride [2 2] and padding [0 0 0 0]",
    # pool1 "3×3 max pooling with stride [2 2] and padding [0 0 0 0]" (Caffe rounds up), fire2-expand3x3
    # "64 3×3×16 convolutions with stride [1 1] and padding [1 1 1 1]", conv10 "1000 1×1×512 convolutions".
    c1, p1, e3, c10 = g["conv1"], g["pool1"], g["fire2-expand3x3"], g["conv10"]
    assert (c1.kernel, c1.stride, c1.padding, c1.groups, c1.type) == ((3, 3), (2, 2), ((0, 0), (0, 0)), 1, "Convolution")
    assert (p1.kernel, p1.stride, p1.padding, p1.ceil, p1.type) == ((3, 3), (2, 2), ((0, 0), (0, 0)), True, "Max Pooling")
    assert (e3.kernel, e3.padding, e3.inputs) == ((3, 3), ((1, 1), (1, 1)), ("fire2-relu_squeeze1x1",))
    assert (c10.kernel, c10.shape, c10.params) == ((1, 1), (1, 14, 14, 1000), 512 * 1000 + 1000)
    assert g["fire2-concat"].inputs == ("fire2-relu_expand1x1", "fire2-relu_expand3x3")
    # data flow: ancestors and cuts
    assert "fire2-expand1x1" not in g.ancestors("fire2-expand3x3") and "conv1" in g.ancestors("fire2-expand3x3")
    assert g.dominates("fire9-relu_squeeze1x1", "fire9-concat")
    assert not g.dominates("fire9-relu_expand1x1", "fire9-concat")


def test_alexnet_graph_against_torchvision_architecture(alexnet):
    """torchvision's AlexNet: Conv2d(3, 64, 11, 4, 2), MaxPool2d(3, 2), Conv2d(64, 192, 5, padding=2), MaxPool,
    Conv2d(192, 384, 3, padding=1), Conv2d(384, 256, 3, padding=1), Conv2d(256, 256, 3, padding=1), MaxPool,
    AdaptiveAvgPool2d(6), Linear(9216, 4096), Linear(4096, 4096), Linear(4096, 1000). The fc weights are
    not shipped: their nodes still have shapes and counts from the architecture."""
    g = alexnet.graph()
    want = {"conv1": (11, 4, 2, 64, 3), "conv2": (5, 1, 2, 192, 64), "conv3": (3, 1, 1, 384, 192),
            "conv4": (3, 1, 1, 256, 384), "conv5": (3, 1, 1, 256, 256)}
    for name, (k, s, p, cout, cin) in want.items():
        n = g[name]
        assert (n.kind, n.kernel, n.stride, n.padding, n.channels) == ("conv", (k, k), (s, s), ((p, p), (p, p)), cout)
        assert n.params == k * k * cin * cout + cout == _leaves(alexnet.params[name])
    for name in ("pool1", "pool2", "pool5"):
        assert (g[name].kind, g[name].kernel, g[name].stride, g[name].ceil) == ("pool", (3, 3), (2, 2), False)
    assert g["avgpool"].kind == "global_pool" and g["avgpool"].shape == (1, 6, 6, 256)
    fc = {"fc6": (9216, 4096), "fc7": (4096, 4096), "fc8": (4096, 1000)}
    for name, (cin, cout) in fc.items():
        assert (g[name].kind, g[name].shape, g[name].params, g[name].macs) == (
            "fc", (1, 1, 1, cout), cin * cout + cout, cin * cout)
    assert g.total_params == 61_100_840  # torchvision's published count
    assert alexnet.layer_params("relu1") == {}
    with pytest.raises(jaxvis.MissingWeightsError, match="fc6"):
        alexnet.layer_params("fc6")


def test_graph_at_another_input_size_and_errors(squeezenet):
    g = squeezenet.graph((454, 340))
    assert g.input_size == (454, 340) and g["conv1"].shape == (1, 226, 169, 64)
    assert squeezenet.graph() is not g and squeezenet.graph().input_size == (227, 227)
    with pytest.raises(ImageError, match="too small"):
        squeezenet.graph((2, 2))
    with pytest.raises(ImageError, match="two positive integers"):
        squeezenet.graph((0, 5))
    with pytest.raises(LayerError, match="did you mean 'conv1', 'conv10'"):
        g["conv01"]


# ----------------------------------------------------------------------- MACs (as scripts/bench/flops.py counts)
def test_alexnet_conv5_macs_closed_form(alexnet):
    macs = alexnet.graph((224, 224)).macs("conv5")
    # torchvision AlexNet: 224 → conv1 55² → pool 27² → conv2 27² → pool 13² → conv3..5 13².
    want = {"conv1": 55 * 55 * 64 * 11 * 11 * 3, "conv2": 27 * 27 * 192 * 5 * 5 * 64,
            "conv3": 13 * 13 * 384 * 3 * 3 * 192, "conv4": 13 * 13 * 256 * 3 * 3 * 384,
            "conv5": 13 * 13 * 256 * 3 * 3 * 256}
    assert macs == want
    assert 2.6e9 < 4 * sum(want.values()) < 2.65e9  # REFERENCES.md §6: ≈2.6 GFLOP per image-step


def test_squeezenet_macs_cover_only_the_needed_layers(squeezenet):
    macs = squeezenet.graph((227, 227)).macs("fire2-expand3x3")
    # conv1 3×3/2 on 227 → 113², pool → 56²; fire2 squeeze 64→16, expand3x3 16→64; expand1x1 not needed.
    assert macs == {"conv1": 113 * 113 * 64 * 9 * 3, "fire2-squeeze1x1": 56 * 56 * 16 * 64,
                    "fire2-expand3x3": 56 * 56 * 64 * 9 * 16}


# ----------------------------------------------------------------------- from_function: read from the jaxpr
def _params():
    r = np.random.default_rng(1)
    f = lambda *s: jnp.asarray(r.normal(0, 0.3, s), jnp.float32)  # noqa: E731
    return {"w1": f(3, 5, 3, 8), "b1": f(8), "wa": f(3, 3, 8, 8), "wb": f(1, 1, 4, 8), "wd": f(16, 10), "bd": f(10)}


def _apply(p, x):
    """conv (3×5, stride 2, explicit asymmetric pads) → ReLU → max pool (3×3/2, pad 1) → two branches (a 3×3
    conv dilated 2 with 'SAME' padding; a grouped 1×1 conv without bias) → concat → global mean → dense."""
    c1 = lax.conv_general_dilated(x, p["w1"], (2, 2), ((1, 2), (0, 1)), dimension_numbers=NHWC) + p["b1"]
    r1 = jax.nn.relu(c1)
    pool = lax.reduce_window(r1, -jnp.inf, lax.max, (1, 3, 3, 1), (1, 2, 2, 1), ((0, 0), (1, 1), (1, 1), (0, 0)))
    a = jax.nn.relu(lax.conv_general_dilated(pool, p["wa"], (1, 1), "SAME", rhs_dilation=(2, 2), dimension_numbers=NHWC))
    b = lax.conv_general_dilated(pool, p["wb"], (1, 1), "VALID", dimension_numbers=NHWC, feature_group_count=2)
    cat = jnp.concatenate([a, b], axis=-1)
    gap = cat.mean(axis=(1, 2))
    return {"conv1": c1, "relu1": r1, "pool1": pool, "a": a, "b": b, "cat": cat, "gap": gap, "logits": gap @ p["wd"] + p["bd"]}


@pytest.fixture(scope="module")
def fnet():
    return jaxvis.from_function(_apply, _params(), input_size=(29, 31))


def test_function_graph_kinds_geometry_and_edges(fnet):
    g = fnet.graph()
    assert g.layers == fnet.layer_names == ("conv1", "relu1", "pool1", "a", "b", "cat", "gap", "logits")
    assert g.input.name == "input" and "input" not in g.layers and g.input.shape == (1, 29, 31, 3)
    kinds = {n.name: (n.kind, n.type, n.inputs) for n in g}
    assert kinds == {
        "input": ("input", "image", ()),
        "conv1": ("conv", "conv_general_dilated", ("input",)), "relu1": ("relu", "max", ("conv1",)),
        "pool1": ("pool", "reduce_window_max", ("relu1",)), "a": ("conv", "conv_general_dilated", ("pool1",)),
        "b": ("conv", "conv_general_dilated", ("pool1",)), "cat": ("concat", "concatenate", ("a", "b")),
        "gap": ("global_pool", "reduce_sum", ("cat",)), "logits": ("fc", "dot_general", ("gap",))}
    c1, pool, a, b = g["conv1"], g["pool1"], g["a"], g["b"]
    assert (c1.kernel, c1.stride, c1.padding, c1.dilation, c1.groups) == ((3, 5), (2, 2), ((1, 2), (0, 1)), (1, 1), 1)
    assert (pool.kernel, pool.stride, pool.padding) == ((3, 3), (2, 2), ((1, 1), (1, 1)))
    assert (a.kernel, a.dilation, a.padding) == ((3, 3), (2, 2), ((2, 2), (2, 2)))  # 'SAME': (k-1)·d = 4
    assert (b.kernel, b.groups, b.params) == ((1, 1), 2, 1 * 1 * 4 * 8)
    # shapes: what the function returns (dense outputs as N×1×1×C, as activations gives them)
    out = jax.eval_shape(lambda p, x: fnet.apply(p, x, list(g.layers)), fnet.params,
                         jax.ShapeDtypeStruct((1, 29, 31, 3), jnp.float32))
    assert {n: g[n].shape for n in g.layers} == {n: tuple(v.shape) for n, v in out.items()}
    oh, ow = (29 + 1 + 2 - 3) // 2 + 1, (31 + 0 + 1 - 5) // 2 + 1
    assert c1.shape == (1, oh, ow, 8) and c1.macs == oh * ow * 8 * 3 * 5 * 3
    assert a.macs == pool.shape[1] * pool.shape[2] * 8 * 9 * 8 and b.macs == pool.shape[1] * pool.shape[2] * 8 * 4
    assert g["logits"].macs == 16 * 10
    # parameters: the leaves each node reads, by role
    p = _params()
    assert (c1.params, g["logits"].params, g.total_params) == (3 * 5 * 3 * 8 + 8, 16 * 10 + 10, _leaves(p))
    np.testing.assert_array_equal(fnet.layer_params("conv1")["kernel"], p["w1"])
    np.testing.assert_array_equal(fnet.layer_params("conv1")["bias"], p["b1"])
    np.testing.assert_array_equal(fnet.layer_params("logits")["kernel"], p["wd"])
    assert fnet.layer_params("relu1") == {}


def test_function_graph_of_flax_modules_is_the_same():
    want = T.pure_net().graph()
    for make in (T.nnx_net, T.linen_net):
        g = make().graph()
        assert [(n.name, n.kind, n.inputs, n.shape, n.params, n.kernel, n.stride, n.padding, n.macs) for n in g] == \
               [(n.name, n.kind, n.inputs, n.shape, n.params, n.kernel, n.stride, n.padding, n.macs) for n in want]


# ----------------------------------------------------------------------- ONNX: the nodes' attributes
def _onnx_model():
    onnx = pytest.importorskip("onnx", reason="onnx (jaxvis[onnx]) not installed")
    h = onnx.helper
    r = np.random.default_rng(0)
    w = {n: r.normal(size=s).astype(np.float32) for n, s in
         {"w1": (8, 3, 3, 3), "b1": (8,), "w2": (8, 4, 3, 3), "w3": (8, 8, 1, 1), "wf": (5, 16), "bf": (5,)}.items()}
    nodes = [h.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="c1", strides=[2, 2], pads=[0, 1, 1, 2]),
             h.make_node("Relu", ["c1"], ["r1"], name="r1"),
             h.make_node("MaxPool", ["r1"], ["p1"], name="p1", kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
             h.make_node("Conv", ["p1", "w2"], ["g2"], name="g2", group=2, auto_pad="SAME_UPPER"),
             h.make_node("Conv", ["p1", "w3"], ["c3"], name="c3"),
             h.make_node("Concat", ["g2", "c3"], ["cat"], name="cat", axis=1),
             h.make_node("GlobalAveragePool", ["cat"], ["gap"], name="gap"),
             h.make_node("Flatten", ["gap"], ["flat"], name="flat"),
             h.make_node("Gemm", ["flat", "wf", "bf"], ["fc"], name="fc", transB=1),
             h.make_node("Softmax", ["fc"], ["prob"], name="prob", axis=1)]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 37, 30])],
                     [h.make_tensor_value_info("prob", onnx.TensorProto.FLOAT, None)],
                     [onnx.numpy_helper.from_array(a, k) for k, a in w.items()])
    return h.make_model(g, opset_imports=[h.make_opsetid("", 13)]), w


def test_onnx_graph_against_onnx_nodes_and_onnxruntime_shapes():
    onnx = pytest.importorskip("onnx", reason="onnx (jaxvis[onnx]) not installed")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    model, w = _onnx_model()
    net = jaxvis.from_onnx(model)
    g = net.graph()
    assert [n.name for n in g] == ["x"] + [n.name for n in model.graph.node]
    assert [n.type for n in g][1:] == [n.op_type for n in model.graph.node]
    assert [n.kind for n in g] == ["input", "conv", "relu", "pool", "conv", "conv", "concat", "global_pool",
                                   "flatten", "fc", "softmax"]
    assert [n.inputs for n in g][1:] == [tuple(i for i in n.input if i not in w) for n in model.graph.node]
    # shapes: onnxruntime's, every node output asked for
    m = onnx.load_from_string(model.SerializeToString())
    for n in model.graph.node[:-1]:
        m.graph.output.append(onnx.helper.make_empty_tensor_value_info(n.output[0]))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(1, 3, 37, 30)).astype(np.float32)
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"x": x})))
    for name, a in got.items():
        want = a.transpose(0, 2, 3, 1).shape if a.ndim == 4 else (1, 1, 1, a.shape[1])
        assert g[name].shape == want, name
    # geometry and parameters: the node attributes (onnx's own reader) and the initializers
    attrs = {n.name: {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute} for n in model.graph.node}
    c1 = g["c1"]
    p = attrs["c1"]["pads"]
    assert (c1.kernel, c1.stride, c1.padding) == ((3, 3), tuple(attrs["c1"]["strides"]), ((p[0], p[2]), (p[1], p[3])))
    assert c1.params == w["w1"].size + w["b1"].size and c1.macs == c1.shape[1] * c1.shape[2] * 8 * 9 * 3
    g2 = g["g2"]  # SAME_UPPER, 3×3, stride 1: one pixel each side
    assert (g2.kernel, g2.padding, g2.groups, g2.params) == ((3, 3), ((1, 1), (1, 1)), 2, w["w2"].size)
    assert (g["p1"].ceil, g["p1"].kernel, g["fc"].macs, g["fc"].params) == (True, (3, 3), 16 * 5, 16 * 5 + 5)
    np.testing.assert_array_equal(net.layer_params("c1")["kernel"], w["w1"].transpose(2, 3, 1, 0))  # HWIO
    np.testing.assert_array_equal(net.layer_params("fc")["kernel"], w["wf"].T)  # in×out
    assert net.relu_rules == {"standard", "guided", "deconvnet", "redirected"}


def test_onnx_squeezenet_graph_is_the_hand_port_graph(squeezenet):
    """The ONNX zoo's SqueezeNet 1.1 (the same architecture) at 224: every convolution and pool has the hand
    port's geometry, shape and parameter count at that size (DeepScale's weights have the same shapes)."""
    pytest.importorskip("onnx", reason="onnx (jaxvis[onnx]) not installed")
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    from test_onnx import ZOO, zoo_squeezenet
    if not ZOO.is_dir():
        pytest.skip("../shared/testdata/squeezenet1_1_onnxzoo is absent")
    zoo = jaxvis.from_onnx(zoo_squeezenet(ZOO)).graph()
    port = squeezenet.graph((224, 224))

    def windows(g):
        return [(n.kind, n.kernel, n.stride, n.padding, n.groups, n.ceil, n.shape, n.params, n.macs)
                for n in g if n.kind in ("conv", "pool")]
    assert len(windows(port)) == 26 + 3 and windows(zoo) == windows(port)
    assert zoo.total_macs == port.total_macs


# ----------------------------------------------------------------------- receptive fields: graph = measured
def test_receptive_fields_of_the_three_adapters_match_measured(squeezenet, fnet):
    """One merged (concat) layer per adapter: composed along its graph and measured from gradients."""
    _model, _ = _onnx_model()
    onnx_net = jaxvis.from_onnx(_model)
    for net, layer in ((squeezenet, "fire2-concat"), (fnet, "cat"), (onnx_net, "cat")):
        g = receptive_field(net, layer)
        m = receptive_field(net, layer, method="measured")
        assert g.method == "graph" and m.method == "measured"
        assert (g.size, g.stride, g.offset, g.spatial) == (m.size, m.stride, m.offset, m.spatial), (net.name, g, m)
    # the function network by hand: conv1 3×5/2 pads (1, 0) → size (3, 5), centre (0, 2); the pool (3, pad 1)
    # → (7, 9), jump 4, centre (0, 2); the dilated 3×3 branch (reach 5 at jump 4) → (23, 25)
    assert receptive_field(fnet, "cat").size == (23, 25) and receptive_field(fnet, "cat").offset == (0.0, 2.0)


# ----------------------------------------------------------------------- declared ReLU rules
def test_relu_rules_are_declared_and_the_lucid_preset_runs_on_a_plain_function(squeezenet):
    assert squeezenet.relu_rules == T.pure_net().relu_rules == {"standard", "guided", "deconvnet", "redirected"}
    plain = jaxvis.from_function(lambda p, x: T.apply(p, x), T.params(), input_size=32)  # jax.nn.relu inside
    assert plain.relu_rules == {"standard", "guided", "deconvnet", "redirected"}  # recognised in its jaxpr (issue 21)
    leaky = jaxvis.from_function(lambda p, x: T.apply(p, x, relu=jax.nn.leaky_relu), T.params(), input_size=32)
    assert leaky.relu_rules == {"standard"}  # a ReLU-like pattern no rule can replace
    # The default (lucid) preset starts with RedirectedReLU steps; a function whose ReLU-like activations are not
    # recognised cannot run them: they are skipped, not an error.
    v = jaxvis.visualize(leaky, jaxvis.objectives.channel("relu2", 2), steps=8, progress=False)
    assert v.images.shape[-3:] == (32, 32, 3) and v.images.dtype == np.uint8
    assert v.trace.shape == (1, 8, 1) and np.isfinite(v.trace).all() and v.trace[0, -1, 0] > v.trace[0, 0, 0]
