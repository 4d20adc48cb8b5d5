"""Arguments shared by subcommands."""

from __future__ import annotations

import argparse


def add_model_args(p: argparse.ArgumentParser) -> None:
    from ..models import MODELS
    p.add_argument("--model", default="squeezenet", help=f"registry name ({', '.join(MODELS)}); default squeezenet")
    p.add_argument("--weights", default=None, help="explicit jaxvis .h5 weight file (overrides the lookup)")


def load(args):
    from ..network import load_model
    return load_model(args.model, weights=args.weights)


MAX_GRID = 256  # rows or columns of a tile grid
MAX_THUMBNAIL = 2048  # pixels per tile side


def bounded_int(lo: int, hi: int, what: str):
    """argparse type: an int in lo..hi, else a usage error naming the range.

    Shared by subcommands so no numeric option can ask for unbounded work or memory.
    """
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be an integer in {lo}..{hi}, not {text!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{what} must be in {lo}..{hi}, not {v}")
        return v
    parse.__name__ = what  # argparse names the type in its messages
    return parse


thumbnail = bounded_int(1, MAX_THUMBNAIL, "thumbnail size")


def grid(text: str) -> tuple[int, int]:
    """'8x8' → (8, 8); each of rows and columns in 1..MAX_GRID."""
    try:
        r, c = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"grid must look like ROWSxCOLS (e.g. 8x8), not {text!r}") from None
    if not (1 <= r <= MAX_GRID and 1 <= c <= MAX_GRID):
        raise argparse.ArgumentTypeError(f"grid rows and columns must be in 1..{MAX_GRID}, not {text!r}")
    return r, c


def check_outputs(*paths) -> None:
    """Check every output path of a command before any work (see jaxvis.fileio.check_writable)."""
    from ..fileio import check_writable
    check_writable(paths)
