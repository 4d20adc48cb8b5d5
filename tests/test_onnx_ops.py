"""ONNX as exporters write it: each pattern of issue 21 item 4 in a graph built with onnx.helper, imported by
from_onnx and compared with onnxruntime at every node output it can expose (1e-4 of the reference's scale).

Patterns: NHWC inputs behind a Transpose (tf2onnx, Keras), Constant-node weights (paddle2onnx), old IR versions
with initializers among the graph inputs (Caffe2 zoo, opsets 7–9), Resize/Upsample in every coordinate mode,
Split, Range, Expand, Tile, Instance/Layer/GroupNormalization, Einsum, HardSwish/HardSigmoid, Clip with run-time
bounds, per-channel PReLU, DepthToSpace/SpaceToDepth, grouped and depthwise convolutions on any channel count,
Dropout with its mask, indexing ops, and outputs that are not class scores.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="test needs onnx (pip install 'jaxvis[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="test needs onnxruntime (test extra)")

import jax.numpy as jnp  # noqa: E402

import jaxvis  # noqa: E402
from jaxvis.errors import NetworkError  # noqa: E402
from jaxvis.nets.onnx import OnnxError, from_onnx  # noqa: E402

h, nh = onnx.helper, onnx.numpy_helper
F = onnx.TensorProto.FLOAT
RNG = np.random.default_rng(0)


def w(*shape, scale=0.5):
    return (RNG.normal(size=shape) * scale).astype(np.float32)


def model(nodes, inits=(), shape=(1, 3, 8, 8), opset=13, ir=None, inits_as_inputs=False, outputs=None):
    inputs = [h.make_tensor_value_info("x", F, ["N", *shape[1:]])]  # a dynamic batch, as exporters write it
    inits = [nh.from_array(np.asarray(a), n) for n, a in dict(inits).items()]
    if inits_as_inputs:  # old IR: every initializer is also a graph input
        inputs += [h.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in inits]
    outs = outputs or [nodes[-1].output[0]]
    g = h.make_graph(nodes, "g", inputs, [h.make_empty_tensor_value_info(o) for o in outs], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    if ir is not None:
        m.ir_version = ir
    return m


def reference(m, x, names):
    """onnxruntime's values of the named tensors."""
    m2 = onnx.ModelProto()
    m2.CopyFrom(m)
    have = {o.name for o in m2.graph.output}
    for t in names:
        if t not in have:
            m2.graph.output.append(h.make_empty_tensor_value_info(t))
    sess = ort.InferenceSession(m2.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"x": x})))


def shown(a, nhwc_input=False):
    """A reference tensor as jaxvis shows it: NCHW maps as NHWC, token/other tensors flattened."""
    if a.ndim == 4:
        return a if nhwc_input else a.transpose(0, 2, 3, 1)
    return a.reshape(a.shape[0] if a.ndim else 1, 1, 1, -1)


def check(m, x, nhwc=False, skip=(), **kw):
    """Every float node output of `m` (except `skip`) equals onnxruntime's on input `x` (N×C×H×W, or as given for
    NHWC graphs). Returns the network."""
    net = from_onnx(m, **kw)
    layers = [n for n in net.layer_names[1:] if net.plan.layers[n] not in skip]
    tensors = [net.plan.layers[n] for n in layers]
    ref = reference(m, x, tensors)
    feed = x if nhwc else x.transpose(0, 2, 3, 1)
    out = net.jitted(layers, normalize=False)(net.params, jnp.asarray(feed))
    for n, t in zip(layers, tensors):
        r = ref[t]
        if r.dtype.kind != "f":
            assert np.array_equal(np.asarray(out[n]).reshape(r.shape[0], -1), r.reshape(r.shape[0], -1)), n
            continue
        nh_in = nhwc and net.plan.recs[t].cl
        o, e = np.asarray(out[n]), shown(r, nh_in)
        assert o.shape == e.shape, (n, o.shape, e.shape)
        scale = float(np.abs(e).max()) or 1.0
        assert float(np.abs(o - e).max()) <= 1e-4 * scale, (n, float(np.abs(o - e).max()), scale)
    return net


def x_of(shape=(1, 3, 8, 8)):
    return RNG.normal(size=shape).astype(np.float32)


# -- the exporters' graph patterns ---------------------------------------------------------------------------
def test_nhwc_input_behind_a_transpose_is_fed_nhwc():
    """tf2onnx/Keras: an N×H×W×C input, scaled, then Transpose(0,3,1,2) into NCHW convolutions; the user feeds
    N×H×W×C as for any network, the input layer is that array, and the Transpose moves no data."""
    nodes = [h.make_node("Mul", ["x", "s"], ["xs"], name="scale"),
             h.make_node("Transpose", ["xs"], ["t"], name="to_nchw", perm=[0, 3, 1, 2]),
             h.make_node("Conv", ["t", "w"], ["c"], name="conv", pads=[1] * 4),
             h.make_node("Relu", ["c"], ["r"], name="relu"),
             h.make_node("Transpose", ["r"], ["back"], name="to_nhwc", perm=[0, 2, 3, 1]),
             h.make_node("Add", ["back", "b"], ["y"], name="bias")]
    m = model(nodes, {"s": np.float32(1 / 255), "w": w(4, 3, 3, 3), "b": w(4)}, shape=(1, 10, 12, 3))
    x = RNG.uniform(0, 255, size=(2, 10, 12, 3)).astype(np.float32)
    net = check(m, x, nhwc=True)
    assert net.input_size == (10, 12) and net.input_channels == 3
    assert net.plan.recs["t"].perm == (0, 2, 3, 1)  # a layout change, not a transpose
    a = jaxvis.activations(net, x, layers=["x", "conv", "bias"])
    assert np.array_equal(np.asarray(a["x"]), x)
    assert a["conv"].shape == (2, 10, 12, 4) and a["bias"].shape == (2, 10, 12, 4)  # NHWC tensor shown as it is


def test_constant_node_weights_are_parameters():
    """paddle2onnx writes weights as Constant nodes: they become params like initializers."""
    kernel, bias = w(4, 3, 3, 3), w(4)
    nodes = [h.make_node("Constant", [], ["wk"], name="wconst", value=nh.from_array(kernel, "wk")),
             h.make_node("Constant", [], ["wb"], name="bconst", value=nh.from_array(bias, "wb")),
             h.make_node("Conv", ["x", "wk", "wb"], ["c"], name="conv", pads=[1] * 4),
             h.make_node("Relu", ["c"], ["y"], name="relu")]
    net = check(model(nodes), x_of())
    assert np.array_equal(np.asarray(net.layer_params("conv")["kernel"]), kernel.transpose(2, 3, 1, 0))
    assert net.param_count() == kernel.size + bias.size


def test_old_ir_initializers_among_inputs():
    """Caffe2/model-zoo graphs (IR 3, opset 8) list every initializer as a graph input: not extra inputs."""
    nodes = [h.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1] * 4),
             h.make_node("Relu", ["c"], ["r"], name="relu"),
             h.make_node("Dropout", ["r"], ["d", "mask"], name="drop", ratio=0.5),
             h.make_node("MaxPool", ["d"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2])]
    m = model(nodes, {"w": w(4, 3, 3, 3), "b": w(4)}, opset=8, ir=3, inits_as_inputs=True)
    check(m, x_of())


@pytest.mark.parametrize("channels", [1, 2, 4, 9, 16])
def test_any_input_channel_count_grouped_and_depthwise(channels):
    """2, 4, 9, 16 channels (and 1): plain, grouped and depthwise convolutions, per-channel PReLU, GroupNorm."""
    g = {1: 1, 2: 2, 4: 2, 9: 3, 16: 4}[channels]
    nodes = [h.make_node("Conv", ["x", "w1"], ["a"], name="grouped", group=g, pads=[1] * 4),
             h.make_node("PRelu", ["a", "slope"], ["p"], name="prelu"),
             h.make_node("Conv", ["p", "w2"], ["b"], name="depthwise", group=2 * channels, pads=[1] * 4,
                         strides=[2, 2]),
             h.make_node("InstanceNormalization", ["b", "is", "ib"], ["y"], name="inorm")]
    inits = {"w1": w(2 * channels, channels // g, 3, 3), "slope": w(2 * channels, 1, 1),
             "w2": w(2 * channels, 1, 3, 3), "is": w(2 * channels), "ib": w(2 * channels)}
    net = check(model(nodes, inits, shape=(1, channels, 8, 8)), x_of((2, channels, 8, 8)))
    assert net.input_channels == channels


# Each: (nodes after the input 'x' of 1×3×8×8, initializers, opset).
def _resize(mode="linear", ct="half_pixel", opset=13, scales=(1, 1, 2, 2), sizes=None, **kw):
    ins = ["x", "", "sc" if sizes is None else "", "" if sizes is None else "sz"]
    inits = {"sc": np.array(scales, np.float32)} if sizes is None else {"sz": np.array(sizes, np.int64)}
    attrs = {"mode": mode, "coordinate_transformation_mode": ct, **kw}
    return [h.make_node("Resize", ins, ["y"], name="resize", **attrs)], inits, opset


RESIZES = {
    "nearest_asym_floor": _resize("nearest", "asymmetric", nearest_mode="floor"),
    "nearest_half_round": _resize("nearest", "half_pixel", scales=(1, 1, 1.5, 2.5)),
    "nearest_ceil_align": _resize("nearest", "align_corners", sizes=(1, 3, 11, 5), nearest_mode="ceil"),
    "linear_half_pixel": _resize("linear", "half_pixel"),
    "linear_pytorch_down": _resize("linear", "pytorch_half_pixel", sizes=(1, 3, 5, 1)),
    "linear_align_corners": _resize("linear", "align_corners", scales=(1, 1, 2.5, 1.5)),
    "linear_asymmetric": _resize("linear", "asymmetric", scales=(1, 1, 0.5, 3)),
    "cubic_half_pixel": _resize("cubic", "half_pixel", sizes=(1, 3, 13, 6)),
    "cubic_exclude_outside": _resize("cubic", "half_pixel", scales=(1, 1, 2, 2), exclude_outside=1,
                                     cubic_coeff_a=-0.5),
    "linear_antialias_18": _resize("linear", "half_pixel", opset=18, scales=(1, 1, 0.4, 0.6), antialias=1),
    "cubic_antialias_19": _resize("cubic", "half_pixel_symmetric", opset=19, sizes=(1, 3, 3, 5), antialias=1),
    "tf_crop_and_resize": ([h.make_node("Resize", ["x", "roi", "", "sz"], ["y"], name="resize", mode="linear",
                                        coordinate_transformation_mode="tf_crop_and_resize",
                                        extrapolation_value=-1.5)],
                           {"roi": np.array([0, 0, -0.2, 0.1, 1, 1, 0.9, 1.3], np.float32),
                            "sz": np.array([1, 3, 6, 7], np.int64)}, 13),
    "resize_10": ([h.make_node("Resize", ["x", "sc"], ["y"], name="resize", mode="nearest")],
                  {"sc": np.array([1, 1, 2, 3], np.float32)}, 10),
    "upsample_7_linear": ([h.make_node("Upsample", ["x"], ["y"], name="up", mode="linear",
                                            scales=[1.0, 1.0, 2.0, 2.0])],
                          {}, 7),
    "upsample_9_nearest": ([h.make_node("Upsample", ["x", "sc"], ["y"], name="up", mode="nearest")],
                           {"sc": np.array([1, 1, 2, 3], np.float32)}, 9),
}


@pytest.mark.parametrize("case", sorted(RESIZES))
def test_resize_and_upsample_match_onnxruntime(case):
    nodes, inits, opset = RESIZES[case]
    check(model(nodes, inits, opset=opset), x_of((1, 3, 8, 8)))


def test_shape_ops_split_range_expand_tile():
    """Split (sizes input, and opset 18's num_outputs), Range feeding a run-time Add, Expand and Tile on feature
    maps, Shape arithmetic folded, Where on shapes."""
    nodes = [h.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1] * 4),
             h.make_node("Split", ["c", "sp"], ["s0", "s1"], name="split", axis=1),
             h.make_node("Tile", ["s0", "reps"], ["t"], name="tile"),
             h.make_node("Expand", ["bias", "eshape"], ["e"], name="expand"),
             h.make_node("Add", ["t", "e"], ["te"], name="add"),
             h.make_node("Shape", ["te"], ["shp"], name="shape"),
             h.make_node("Gather", ["shp", "three"], ["wd"], name="gather"),
             h.make_node("Range", ["zero", "wd", "one"], ["rng"], name="range"),
             h.make_node("Cast", ["rng"], ["rngf"], name="cast", to=F),
             h.make_node("Add", ["te", "rngf"], ["y"], name="add_range"),
             h.make_node("Split", ["s1"], ["u0", "u1", "u2"], name="split18", axis=3, num_outputs=3),
             h.make_node("Concat", ["u2", "u0"], ["z"], name="concat", axis=3)]
    inits = {"w": w(5, 3, 3, 3), "sp": np.array([2, 3], np.int64), "reps": np.array([1, 2, 1, 2], np.int64),
             "bias": w(1, 1, 1, 16), "eshape": np.array([1, 4, 8, 1], np.int64), "three": np.array(3, np.int64),
             "zero": np.array(0, np.int64), "one": np.array(1, np.int64)}
    m = model(nodes, inits, opset=18, outputs=["y", "z"])
    check(m, x_of((2, 3, 8, 8)))


def test_normalizations_einsum_and_activations():
    """Instance/Layer/GroupNormalization (opsets 18 and 21 scale shapes), Einsum, HardSwish, HardSigmoid, Clip with
    run-time bounds, DepthToSpace (DCR and CRD), SpaceToDepth, LpNormalization, Mod, CumSum."""
    nodes = [h.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1] * 4),
             h.make_node("GroupNormalization", ["c", "gs", "gb"], ["gn"], name="gnorm", num_groups=4),
             h.make_node("LayerNormalization", ["gn", "ls", "lb"], ["ln"], name="lnorm", axis=1),
             h.make_node("HardSwish", ["ln"], ["hs"], name="hswish"),
             h.make_node("HardSigmoid", ["hs"], ["hsig"], name="hsig", alpha=0.3, beta=0.4),
             h.make_node("ReduceMin", ["hs", "axes"], ["lo"], name="lo", keepdims=0),
             h.make_node("ReduceMean", ["hs", "axes"], ["hi"], name="hi", keepdims=0),
             h.make_node("Clip", ["hs", "lo", "hi"], ["cl"], name="clip_runtime"),
             h.make_node("Add", ["cl", "hsig"], ["sum"], name="sum"),
             h.make_node("DepthToSpace", ["sum"], ["d2s"], name="d2s_dcr", blocksize=2),
             h.make_node("SpaceToDepth", ["d2s"], ["s2d"], name="s2d", blocksize=2),
             h.make_node("DepthToSpace", ["s2d"], ["crd"], name="d2s_crd", blocksize=2, mode="CRD"),
             h.make_node("Einsum", ["crd", "em"], ["es"], name="einsum", equation="nchw,ck->nkhw"),
             h.make_node("LpNormalization", ["es"], ["lp"], name="lpnorm", axis=1, p=2),
             h.make_node("CumSum", ["lp", "ax"], ["cs"], name="cumsum", reverse=1),
             h.make_node("Mod", ["cs", "md"], ["y"], name="mod", fmod=1)]
    inits = {"w": w(8, 3, 3, 3), "gs": w(8), "gb": w(8), "ls": w(8, 8, 8), "lb": w(8, 8, 8), "em": w(2, 6),
             "ax": np.array(2, np.int64), "md": np.float32(0.7), "axes": np.array([0, 1, 2, 3], np.int64)}
    check(model(nodes, inits, opset=21), x_of((2, 3, 8, 8)))
    g18 = [h.make_node("Conv", ["x", "w"], ["c"], name="conv"),
           h.make_node("GroupNormalization", ["c", "gs", "gb"], ["y"], name="gnorm", num_groups=2)]
    check(model(g18, {"w": w(6, 3, 1, 1), "gs": w(2), "gb": w(2)}, opset=18), x_of((2, 3, 8, 8)))


def test_indexing_ops():
    """TopK, ArgMax, GatherElements, ScatterND, ScatterElements, OneHot, Hardmax, ReduceL2, Trig."""
    nodes = [h.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             h.make_node("ReduceMean", ["c"], ["v"], name="gap", axes=[2, 3], keepdims=0),
             h.make_node("TopK", ["v", "k"], ["top", "topi"], name="topk"),
             h.make_node("ArgMax", ["v"], ["am"], name="argmax", axis=1, keepdims=1),
             h.make_node("GatherElements", ["v", "gi"], ["ge"], name="gather_el", axis=1),
             h.make_node("ScatterND", ["v", "si", "su"], ["sn"], name="scatter_nd"),
             h.make_node("ScatterElements", ["sn", "gi", "su2"], ["se"], name="scatter_el", axis=1,
                         reduction="add"),
             h.make_node("Hardmax", ["se"], ["hm"], name="hardmax"),
             h.make_node("ReduceL2", ["c"], ["l2"], name="l2", axes=[1], keepdims=1),
             h.make_node("Sin", ["l2"], ["y"], name="sin")]
    inits = {"w": w(6, 3, 1, 1), "k": np.array([3], np.int64), "gi": np.array([[5, 0, 2]], np.int64),
             "si": np.array([[0, 4]], np.int64), "su": np.array([9.0], np.float32),
             "su2": np.ones((1, 3), np.float32)}
    check(model(nodes, inits, opset=16, outputs=["top", "topi", "am", "ge", "hm", "y"]), x_of((1, 3, 8, 8)))


def test_dropout_mask_read_by_a_node():
    nodes = [h.make_node("Dropout", ["x", "ratio"], ["d", "mask"], name="drop"),
             h.make_node("Cast", ["mask"], ["mf"], name="cast", to=F),
             h.make_node("Mul", ["d", "mf"], ["y"], name="mul")]
    check(model(nodes, {"ratio": np.float32(0.3)}, opset=13), x_of())


# -- outputs that are not class scores -----------------------------------------------------------------------
def _detector():
    """Two conv layers and a detection head: N×(A·(5+K))×H×W reshaped to N×A×(5+K)×H·W... as YOLO-style exports."""
    nodes = [h.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1] * 4, strides=[2, 2]),
             h.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             h.make_node("Conv", ["r1", "w2"], ["c2"], name="head"),
             h.make_node("Reshape", ["c2", "rs"], ["boxes"], name="boxes")]
    return model(nodes, {"w1": w(8, 3, 3, 3), "w2": w(14, 8, 1, 1), "rs": np.array([1, 2, 7, 16], np.int64)},
                 shape=(1, 3, 8, 8))


def _segmenter():
    nodes = [h.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1] * 4, strides=[2, 2]),
             h.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             h.make_node("Conv", ["r1", "w2"], ["c2"], name="classifier"),
             h.make_node("Resize", ["c2", "", "sc"], ["seg"], name="upsample", mode="linear")]
    return model(nodes, {"w1": w(8, 3, 3, 3), "w2": w(5, 8, 1, 1), "sc": np.array([1, 1, 2, 2], np.float32)},
                 shape=(1, 3, 16, 16))


def test_non_class_outputs_work_with_tools_and_classify_says_why():
    seg = from_onnx(_segmenter())
    det = from_onnx(_detector())
    assert seg.logits_layer is None and det.logits_layer is None
    img = RNG.uniform(0, 255, size=(16, 16, 3)).astype(np.float32)
    for net in (seg, det):
        with pytest.raises(NetworkError, match=r"no class-score layer \(its last layer '(upsample|boxes)' is "
                                               r"[0-9×]+, not N×K class scores.*from_onnx\(\.\.\., logits=layer"):
            jaxvis.classify(net, img)
    a = jaxvis.activations(seg, img, layer="upsample")
    assert a.shape == (16, 16, 5)
    # Saliency and Grad-CAM of a scalar the user names: the mean logit map of segmentation class 2.
    sal = jaxvis.saliency(seg, img, ("upsample", 2))
    assert sal.map.shape[:2] == (16, 16) and np.isfinite(np.asarray(sal.map)).all() and np.asarray(sal.map).max() > 0
    cam = jaxvis.grad_cam(det, img, ("boxes", 1), feature_layer="relu1")
    assert np.isfinite(np.asarray(cam.map)).all()
    v = jaxvis.visualize(seg, jaxvis.objectives.channel("upsample", 2), steps=2, image_size=16)
    assert np.isfinite(np.asarray(v.images)).all()
    # Named explicitly, a class-score layer makes it classify.
    named = from_onnx(_detector(), logits="head", classes=[f"c{i}" for i in range(14)])
    assert named.logits_layer == "head"


# -- bad graphs: clear messages -------------------------------------------------------------------------------
def test_unknown_opset_and_data_dependent_ops_are_named():
    m = model([h.make_node("Relu", ["x"], ["y"], name="relu")], opset=13)
    m.opset_import[0].version = 99
    with pytest.raises(OnnxError, match=r"opset 99.*opsets 1–25"):
        from_onnx(m)
    nms = model([h.make_node("NonZero", ["x"], ["y"], name="nz")])
    with pytest.raises(OnnxError, match=r"'nz'.*depends on the data.*post-processing"):
        from_onnx(nms)


def test_zoo_opset7_image_scaler_and_quantized_weights():
    """tiny-YOLOv2's ImageScaler (opset 7) and weights stored as int8 with DequantizeLinear (per channel)."""
    scaler = [h.make_node("ImageScaler", ["x"], ["s"], name="scaler", scale=0.5, bias=[1.0, -2.0, 0.25]),
              h.make_node("Conv", ["s", "w"], ["y"], name="conv")]
    m = model(scaler, {"w": w(4, 3, 3, 3)}, opset=7)
    net = from_onnx(m)
    x = x_of()
    want = (x * 0.5 + np.array([1.0, -2.0, 0.25], np.float32)[None, :, None, None])
    got = np.asarray(net.apply(net.params, x.transpose(0, 2, 3, 1), ["scaler"], normalize=False)["scaler"])
    assert np.allclose(got, want.transpose(0, 2, 3, 1), atol=1e-6)
    q = RNG.integers(-100, 100, size=(4, 3, 3, 3)).astype(np.int8)
    dq = [h.make_node("DequantizeLinear", ["q", "scale", "zp"], ["wf"], name="dq", axis=0),
          h.make_node("Conv", ["x", "wf"], ["y"], name="conv")]
    check(model(dq, {"q": q, "scale": np.array([0.01, 0.02, 0.03, 0.04], np.float32),
                     "zp": np.array([0, 1, -2, 3], np.int8)}, opset=13), x_of())
    qdq = model([h.make_node("QuantizeLinear", ["x", "scale1"], ["xq"], name="quant")], {"scale1": np.float32(0.1)})
    with pytest.raises(OnnxError, match=r"'quant'.*quantized graph.*import the float model"):
        from_onnx(qdq)
