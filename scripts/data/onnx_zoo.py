"""The ONNX-zoo SqueezeNet 1.1 (torchvision's squeezenet1_1, real weights) from ../shared/testdata: its ONNX
graph rebuilt from the per-layer .npy files, and the same weights as a jaxvis network (the independent judge
of the quality scripts).

A helper, not a script: scripts/bench/onnx_import.py, scripts/figures/onnx_squeezenet.py and scripts/quality/
import it with scripts/data/ on sys.path.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
ZOO = ROOT.parent / "shared" / "testdata" / "squeezenet1_1_onnxzoo"
if not ZOO.is_dir():  # a worktree one level deeper than the main checkout
    ZOO = ROOT.parents[1] / "shared" / "testdata" / "squeezenet1_1_onnxzoo"


def zoo_squeezenet(folder: Path, size: int):
    """The zoo's squeezenet1.1 graph (torchvision squeezenet1_1) built from the per-layer .npy files."""
    import onnx
    h = onnx.helper
    w = {f.stem: np.load(f) for f in (folder / "weights").glob("*.npy")}
    nodes = []

    def conv(x, n, kernel, stride=1, pad=0):
        name = f"squeezenet0_conv{n}"
        nodes.append(h.make_node("Conv", [x, name + "_weight", name + "_bias"], [name + "_fwd"], name=name,
                                 kernel_shape=[kernel] * 2, strides=[stride] * 2, pads=[pad] * 4))
        nodes.append(h.make_node("Relu", [name + "_fwd"], [name + "_relu"], name=name + "_relu"))
        return name + "_relu"

    def pool(x, i):
        nodes.append(h.make_node("MaxPool", [x], [f"pool{i}"], name=f"pool{i}", kernel_shape=[3, 3],
                                 strides=[2, 2], ceil_mode=1))
        return f"pool{i}"

    prev, k = pool(conv("data", 0, 3, 2), 0), 1
    for fire in range(2, 10):
        sq = conv(prev, k, 1)
        a, b = conv(sq, k + 1, 1), conv(sq, k + 2, 3, pad=1)
        nodes.append(h.make_node("Concat", [a, b], [f"fire{fire}_concat"], name=f"fire{fire}_concat", axis=1))
        prev, k = f"fire{fire}_concat", k + 3
        if fire in (3, 5):
            prev = pool(prev, fire)
    last = conv(prev, 25, 1)
    nodes.append(h.make_node("GlobalAveragePool", [last], ["gap"], name="gap"))
    nodes.append(h.make_node("Flatten", ["gap"], ["logits"], name="flatten"))
    graph = h.make_graph(nodes, "squeezenet1.1",
                         [h.make_tensor_value_info("data", onnx.TensorProto.FLOAT, ["N", 3, size, size])],
                         [h.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["N", 1000])],
                         [onnx.numpy_helper.from_array(a, k) for k, a in sorted(w.items())])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 13)])


def judge_network(testdata: Path):
    """torchvision's SqueezeNet 1.1 (the zoo's weights in `testdata`/weights) as a jaxvis network: an
    independently trained judge of the shipped SqueezeNet's class images (docs/quality.md)."""
    import jaxvis
    from jaxvis.nets.convert import convert_npy_folder
    tmp = Path(tempfile.mkdtemp()) / "squeezenet1_1.h5"
    convert_npy_folder(testdata / "weights", tmp)
    return jaxvis.load_model("squeezenet1_1", weights=tmp)
