"""Output paths: every bad --out is one OutputError before any work, and nothing is half-written (issue 12)."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from jaxvis.cli import main
from jaxvis.imaging.display import DisplayError, save_png
from jaxvis.errors import JaxvisError, OutputError
from jaxvis.imaging.fileio import atomic_path, check_writable
from jaxvis.nets.weights import write_weights
from tests.fuzz.builders import tiny_h5_meta

IMG = np.zeros((4, 4, 3), np.uint8)


def _bad_paths(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    return {"empty": "", "folder": tmp_path, "parent_is_file": afile / "out.png",
            "grandparent_is_file": afile / "sub" / "out.png"}


@pytest.mark.parametrize("kind", ["empty", "folder", "parent_is_file", "grandparent_is_file"])
def test_bad_output_paths_are_output_errors(tmp_path, kind):
    path = _bad_paths(tmp_path)[kind]
    before = sorted(os.listdir(tmp_path))
    for write in (lambda: check_writable([path]), lambda: save_png(path, IMG),
                  lambda: write_weights(path, {}, tiny_h5_meta())):
        with pytest.raises(OutputError) as info:
            write()
        assert isinstance(info.value, JaxvisError) and isinstance(info.value, OSError)
        assert (repr(str(path)) in str(info.value)) or kind == "empty"
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="not writable"):
            save_png(ro / "x.png", IMG)
    finally:
        ro.chmod(0o700)


def test_same_output_twice_is_refused(tmp_path):
    with pytest.raises(OutputError, match="twice"):
        check_writable([tmp_path / "a.png", tmp_path / "b.png", tmp_path / "a.png"])
    assert check_writable([None, tmp_path / "a.png"]) == [tmp_path / "a.png"]
    with pytest.raises(OutputError, match="'new' does not exist|new' does not exist"):
        check_writable([tmp_path / "new" / "a.png"])  # a missing folder is not created silently
    assert check_writable([tmp_path / "new" / "a.png"], folders=[tmp_path / "new"]) == [tmp_path / "new" / "a.png"]
    assert sorted(os.listdir(tmp_path)) == []  # checking creates nothing (the probe file is gone)


def test_disk_full_leaves_nothing_behind(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    with pytest.raises(OutputError, match="disk is full.*nothing was written"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.png"]  # no temporary file left


def test_huge_tile_grid_refused_before_allocating():
    from jaxvis.maps.channel_views import activation_grid
    with pytest.raises(DisplayError, match="megapixel limit"):
        activation_grid(np.ones((2, 2, 4), np.float32), (256, 256), 2048)


# ------------------------------------------------------------------ CLI: one line, non-zero exit, no traceback
def _png(tmp_path):
    from PIL import Image
    path = tmp_path / "in.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    return path


@pytest.mark.parametrize("kind", ["empty", "folder", "parent_is_file"])
def test_cli_bad_out_is_one_line(tmp_path, capsys, kind):
    out = _bad_paths(tmp_path)[kind]
    rc = main(["activations", "--image", str(_png(tmp_path)), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "jaxvis activations: error:" in err and "Traceback" not in err
    rc = main(["convert", "pth", str(tmp_path / "missing.pth"), "--arch", "alexnet", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and ("output" in err or "cannot write" in err)


@pytest.mark.parametrize("args", [["--grid", "100000x2"], ["--grid", "0x4"], ["--grid", "axb"],
                                  ["--thumbnail", "1000000000"], ["--thumbnail", "0"]])
def test_cli_argument_bounds(tmp_path, capsys, args):
    with pytest.raises(SystemExit) as info:
        main(["activations", "--image", str(_png(tmp_path)), *args])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert ("1..256" in err or "1..2048" in err or "ROWSxCOLS" in err) and "Traceback" not in err


def test_shared_channel_list_is_bounded_before_expanding():
    import argparse

    from jaxvis.cli.args import channel_list, seed
    assert channel_list("0:4,9") == [0, 1, 2, 3, 9]
    for bad in ["0:2000000000", "-1", "70000", "0:5000", "a", "3:3"]:
        with pytest.raises(argparse.ArgumentTypeError):
            channel_list(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="0..4294967295"):
        seed(str(10**30))
