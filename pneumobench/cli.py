"""The ``pneumobench`` command line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from pneumobench import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pneumobench",
        description="Reproduce and regression-test the Viel & Orhan (2020) pneumothorax paper.",
    )
    parser.add_argument("--version", action="version", version=f"pneumobench {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return int(args.handler(args))
