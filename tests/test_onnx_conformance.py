"""A conformance suite that is not ours: the test data the `onnx` package ships (onnx/backend/test/data).

Every case whose graph takes a single float input of rank 4 goes through `from_onnx` and must match: the
stored output of its test_data_set_0 (pytorch-converted, pytorch-operator, simple, and node cases where the
installed package ships them), or onnxruntime's output on a seeded input for the "light" model-zoo graphs
(they ship an output but no input), to 1e-4 of the output's largest magnitude. Cases out of scope are listed
in OUT_OF_SCOPE with the reason (and in docs/onnx.md, with the pass table).

The default suite runs the small cases and the light SqueezeNet; the other eight light model-zoo graphs (AlexNet
to VGG-19, weights written as ConstantOfShape nodes) are slow-marked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="test needs onnx (pip install 'jaxvis[onnx]')")

from jaxvis.nets.onnx import from_onnx  # noqa: E402

DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
FOLDERS = ("light", "pytorch-converted", "pytorch-operator", "simple", "node")
FAST_LIGHT = {"light_squeezenet"}
OUT_OF_SCOPE: dict[str, str] = {}  # case → why; none of the rank-4 cases today


def read_tensor(path: Path) -> np.ndarray:
    t = onnx.TensorProto()
    t.ParseFromString(path.read_bytes())
    return onnx.numpy_helper.to_array(t)


def image_input(model) -> object | None:
    """The graph's one non-initializer input if it is a rank-4 float tensor, else None."""
    inits = {t.name for t in model.graph.initializer}
    real = [v for v in model.graph.input if v.name not in inits]
    if len(real) != 1:
        return None
    tt = real[0].type.tensor_type
    return real[0] if tt.elem_type == onnx.TensorProto.FLOAT and len(tt.shape.dim) == 4 else None


def discover() -> list[tuple[str, str, Path]]:
    """(folder, case, model path) of every case with a single rank-4 float input."""
    cases = []
    for folder in FOLDERS:
        root = DATA / folder
        paths = sorted(root.glob("*.onnx")) if folder == "light" else sorted(root.glob("test_*/model.onnx"))
        for p in paths:
            if image_input(onnx.load(str(p), load_external_data=False)) is not None:
                cases.append((folder, p.stem if folder == "light" else p.parent.name, p))
    return cases


CASES = discover() if DATA.is_dir() else []


def _param(folder: str, case: str, path: Path):
    slow = folder == "light" and case not in FAST_LIGHT
    return pytest.param(folder, case, path, id=f"{folder}/{case}", marks=[pytest.mark.slow] if slow else [])


def reference(folder: str, path: Path, model) -> tuple[np.ndarray, np.ndarray]:
    """(input N×C×H×W, expected output)."""
    if folder == "light":
        ort = pytest.importorskip("onnxruntime", reason="the light graphs are checked against onnxruntime")
        dims = [d.dim_value or 1 for d in image_input(model).type.tensor_type.shape.dim]
        x = np.random.default_rng(0).standard_normal(dims).astype(np.float32)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return x, sess.run(None, {sess.get_inputs()[0].name: x})[0]
    data = path.parent / "test_data_set_0"
    return read_tensor(data / "input_0.pb"), read_tensor(data / "output_0.pb")


@pytest.mark.skipif(not CASES, reason="the installed onnx package ships no backend test data")
@pytest.mark.parametrize("folder,case,path", [_param(*c) for c in CASES])
def test_shipped_case_matches(folder, case, path):
    if case in OUT_OF_SCOPE:
        pytest.skip(OUT_OF_SCOPE[case])
    model = onnx.load(str(path))
    x, expected = reference(folder, path, model)
    net = from_onnx(model, input_size=x.shape[2:])
    layer = net.layer_name(model.graph.output[0].name)
    got = np.asarray(net.apply(net.params, x.transpose(0, 2, 3, 1), [layer], normalize=False)[layer])
    want = expected.transpose(0, 2, 3, 1) if expected.ndim == 4 else expected.reshape(len(expected), 1, 1, -1)
    assert got.shape == want.shape
    scale = float(np.abs(want).max()) or 1.0
    err = float(np.abs(got - want).max())
    assert err <= 1e-4 * scale, f"max error {err:.3g} of scale {scale:.3g}"


@pytest.mark.skipif(not CASES, reason="the installed onnx package ships no backend test data")
def test_the_suite_is_the_one_counted_in_the_docs():
    """docs/onnx.md's pass table counts 51 cases (onnx 1.17–1.23); a package that ships fewer is reported."""
    by_folder = {f: sum(c[0] == f for c in CASES) for f in FOLDERS}
    assert by_folder["light"] == 9 and len(CASES) >= 51, by_folder
