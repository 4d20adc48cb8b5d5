"""Arguments shared by subcommands: one vocabulary for every option that means the same thing."""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.HelpFormatter):
    """Every option's `--help` line states its default: "(default: X)" is added where the text does not
    say it already (a None default needs words, e.g. "default: the preset's", written in the help)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (action.option_strings and action.nargs != 0 and not action.required
                and action.default not in (None, argparse.SUPPRESS) and "default" not in text.lower()):
            shown = "all" if action.default is None else _shown(action.default)
            text += f" (default: {shown})".replace("%", "%%")
        return text


def _shown(value) -> str:
    """A default as the user would type it: lists of ints as 0:16 / 1,4,9, pairs as RxC."""
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        if value == list(range(value[0], value[-1] + 1)) and len(value) > 2:
            return f"{value[0]}:{value[-1] + 1}"
        return ",".join(map(str, value))
    return str(value)


def add_model_args(p: argparse.ArgumentParser) -> None:
    from ..nets.models import MODELS
    p.add_argument("--model", default="squeezenet", help=f"registry name ({', '.join(MODELS)}); default squeezenet")
    p.add_argument("--weights", default=None,
                   help="explicit jaxvis .h5 weight file (default: the model's file, found where load_model looks)")


def add_progress_args(p: argparse.ArgumentParser, what: str = "a progress bar") -> None:
    """--progress / --quiet: the bar is on where stderr is a terminal (or a notebook), off in logs and pipes."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--progress", dest="progress", action="store_const", const=True, default=None,
                   help=f"{what} on stderr even when it is not a terminal (default: only on a terminal)")
    g.add_argument("--quiet", dest="progress", action="store_const", const=False, help=f"no {what}")


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
        r, c = (int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"grid must look like ROWSxCOLS (e.g. 8x8), not {text!r}") from None
    if not (1 <= r <= MAX_GRID and 1 <= c <= MAX_GRID):
        raise argparse.ArgumentTypeError(f"grid rows and columns must be in 1..{MAX_GRID}, not {text!r}")
    return r, c


def check_outputs(*paths, folders=()) -> None:
    """Check every output of a command before any work: files in `paths`, output folders in `folders`
    (see jaxvis.imaging.fileio.check_writable; nothing is created)."""
    from ..imaging.fileio import check_writable
    check_writable(paths, folders=folders)


MAX_CHANNEL = 65535  # largest channel index any option accepts (no CNN layer has more channels)
MAX_SELECTED = 4096  # channels one option may select

seed = bounded_int(0, 2**32 - 1, "seed")  # what jax.random.key accepts without OverflowError

SELECTION_FORMS = "5, 0:16 (0-based, end excluded), 1,4,9 or all"


def selection(text: str) -> list[int] | None:
    """The one parser of unit/channel selections: '5' | '0:16' (Python slice, end excluded) | '1,4,9' |
    '0:8,20:24' | 'all' → 0-based indices, or None for 'all' (every unit of the layer).

    Bounded before anything is expanded: indices in 0..MAX_CHANNEL, at most MAX_SELECTED in all
    (``0:2000000000`` is a usage error, not a 16 GB list).
    """
    if text.strip().lower() == "all":
        return None
    out: list[int] = []
    malformed = argparse.ArgumentTypeError(f"a selection looks like {SELECTION_FORMS}; got {text!r}")
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
                raise argparse.ArgumentTypeError(f"indices must be in 0..{MAX_CHANNEL}; got {part!r}")
            if len(out) + len(r) > MAX_SELECTED:
                raise argparse.ArgumentTypeError(f"{text!r} selects more than {MAX_SELECTED} units; "
                                                 f"'all' selects every unit of the layer")
            out.extend(r)
    except ValueError:  # int() of a non-number; range() with step 0 cannot happen (0 means 1)
        raise malformed from None
    if not out:
        raise argparse.ArgumentTypeError(f"{text!r} selects nothing")
    return out


selection.__name__ = "selection"
channel_list = selection  # the name scripts and older tests import


def layer_channels(net, layer: str) -> int:
    """Channels of `layer` at the network's input size (from its graph): what 'all' expands to."""
    return int(net.graph()[net.layer_name(layer)].channels)


def plural(n: int, word: str) -> str:
    """'1 unit', '2 units'."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def hw(shape) -> str:
    """Sizes are printed one way everywhere: H×W."""
    return f"{int(shape[0])}×{int(shape[1])}"


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
