"""Arguments shared by subcommands."""

from __future__ import annotations

import argparse


def add_model_args(p: argparse.ArgumentParser) -> None:
    from ..nets.models import MODELS
    p.add_argument("--model", default="squeezenet", help=f"registry name ({', '.join(MODELS)}); default squeezenet")
    p.add_argument("--weights", default=None, help="explicit jaxvis .h5 weight file (overrides the lookup)")


def load(args):
    from ..nets.network import load_model
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
    """Check every output path of a command before any work (see jaxvis.imaging.fileio.check_writable)."""
    from ..imaging.fileio import check_writable
    check_writable(paths)


MAX_CHANNEL = 65535  # largest channel index any option accepts (no CNN layer has more channels)
MAX_SELECTED = 4096  # channels one option may select

seed = bounded_int(0, 2**32 - 1, "seed")  # what jax.random.key accepts without OverflowError


def channel_list(text: str) -> list[int]:
    """'0:30' (Python slice, end excluded) | '3' | '1,5,9' | '0:8,20:24' → 0-based channel indices.

    Bounded before anything is expanded: indices in 0..MAX_CHANNEL, at most
    MAX_SELECTED channels in all (``0:2000000000`` is a usage error, not a 16 GB list).
    """
    out: list[int] = []
    malformed = argparse.ArgumentTypeError(
        f"channels must look like 0:30 (0-based, end excluded), 5 or 1,5,9; got {text!r}")
    try:
        for part in text.split(","):
            part = part.strip()
            if ":" in part:
                bits = [int(b) if b.strip() else None for b in part.split(":")]
                if len(bits) > 3 or bits[1] is None:
                    raise malformed
                r = range(bits[0] or 0, bits[1], bits[2] if len(bits) == 3 and bits[2] else 1)
            else:
                r = range(int(part), int(part) + 1)
            if len(r) and (min(r[0], r[-1]) < 0 or max(r[0], r[-1]) > MAX_CHANNEL):
                raise argparse.ArgumentTypeError(f"channel indices must be in 0..{MAX_CHANNEL}; got {part!r}")
            if len(out) + len(r) > MAX_SELECTED:
                raise argparse.ArgumentTypeError(f"{text!r} selects more than {MAX_SELECTED} channels")
            out.extend(r)
    except ValueError:  # int() of a non-number; range() with step 0 cannot happen (0 means 1)
        raise malformed from None
    if not out:
        raise argparse.ArgumentTypeError(f"{text!r} selects no channels")
    return out


SHOWN_SKIPPED = 20  # skipped files printed by a command (the rest counted; the full list in the report)


def print_skipped(skipped, full_list: str | None) -> None:
    """Print each skipped input with its reason (the first SHOWN_SKIPPED, then a count), printable whatever
    the bytes of its name."""
    from ..datasets import shown
    for s in skipped[:SHOWN_SKIPPED]:
        print(f"  skipped {shown(s.source)}: {s.reason}")
    if len(skipped) > SHOWN_SKIPPED:
        where = f" (all of them in {full_list})" if full_list else ""
        print(f"  … and {len(skipped) - SHOWN_SKIPPED} more skipped{where}")
