"""Command line: `gisweep <stage> ...`, one subcommand per pipeline stage.

Each stage module defines `register_cli(subparsers)`, adding its subcommand(s) with
`set_defaults(func=...)`; the function gets the parsed args. Snakemake rules call these
subcommands, so every stage also runs by hand, without Snakemake.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from gisweep import GisweepError

# modules that add subcommands; a missing optional one is skipped
STAGE_MODULES = [
    "gisweep.data",
    "gisweep.train",
    "gisweep.lines",
    "gisweep.gi_stage",
    "gisweep.figures",
    "gisweep.summary",
    "gisweep.hull_stage",
    "gisweep.resnet_features",
    "gisweep.hull_figures",
    "gisweep.overparam",
    "gisweep.polynomial",
    "gisweep.along",
    "gisweep.dynamics",
    "gisweep.fractions",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gisweep", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="STAGE")
    for name in STAGE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:
                continue
            raise
        module.register_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except GisweepError as e:
        print(f"gisweep {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
