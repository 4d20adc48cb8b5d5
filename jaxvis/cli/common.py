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


def grid(text: str) -> tuple[int, int]:
    """'8x8' → (8, 8)."""
    try:
        r, c = text.lower().split("x")
        return int(r), int(c)
    except ValueError:
        raise argparse.ArgumentTypeError(f"grid must look like ROWSxCOLS (e.g. 8x8), not {text!r}") from None
