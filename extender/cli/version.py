"""`spillover version`."""

from __future__ import annotations

import argparse
from typing import Any

from extender import __version__


def run(args: argparse.Namespace) -> int:
    print(f"spillover {__version__}")
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("version", help="print the Spillover version")
    parser.set_defaults(func=run)
