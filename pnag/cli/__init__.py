"""The ``pnag`` command.

Each command group lives in its own module exposing ``register(subparsers)``; the handler a
subcommand sets as ``func`` receives the parsed namespace and returns an exit status. Nothing else
in pnag reads ``sys.argv``. Errors a user can cause (:class:`pnag.errors.PnagError`) are printed as
``pnag: error: <message>`` without a traceback, with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys

from ..errors import PnagError, one_line

# Command-group modules, in the order their commands appear in --help.
COMMAND_MODULES: tuple[str, ...] = ("search", "train", "arch", "zoo", "export", "eval", "data", "latency", "collect")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own usage errors: one line, status 2, no traceback
        message = re.sub(r"^argument (\S+): \1: ", r"argument \1: ", message)  # our types name the option too
        self.exit(2, f"{self.prog}: error: {one_line(message)} (usage: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(prog="pnag", description="Pareto-aware neural architecture generation.")
    parser.add_argument("--version", action="version", version=f"pnag {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors (status 2) and --help/--version (status 0)
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except PnagError as exc:
        print(f"pnag: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pnag: interrupted; work saved so far is kept and a re-run resumes from it", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
