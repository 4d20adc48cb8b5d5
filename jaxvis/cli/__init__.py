"""The `jaxvis` command line: one module per subcommand, each with `register(subparsers)`."""

from __future__ import annotations

import argparse
import importlib
import sys

from .args import HelpFormatter

# Subcommand modules (jaxvis.cli.<name>); each defines register(subparsers) that sets `func`.
COMMANDS = (
    "classify", "activations", "convert", "analyze", "attribution", "dream", "visualize",
    "gallery",
    "dream_photo",
    "patches",
    "filters",
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jaxvis", description="See what convolutional networks have learned.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"jaxvis.cli.{name}").register(sub)
    _state_defaults(p)
    return p


def _state_defaults(p: argparse.ArgumentParser) -> None:
    """Every (sub)command's --help states each option's default (one formatter for all of them)."""
    p.formatter_class = HelpFormatter
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for q in action.choices.values():
                _state_defaults(q)


def main(argv: list[str] | None = None) -> int:
    """Run the `jaxvis` command with `argv` (default: sys.argv[1:]); returns the exit status."""
    args = build_parser().parse_args(argv)
    from ..errors import JaxvisError
    try:
        return args.func(args) or 0
    except (JaxvisError, OSError, ValueError) as e:
        # Users get the message, not a traceback: our errors say what was wrong and what would be right
        # (OutputError for outputs; a plain OSError/ValueError from elsewhere is shown the same way).
        print(f"jaxvis {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"jaxvis {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
