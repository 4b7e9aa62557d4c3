"""Command line: `gisweep COMMAND ...`, one command per pipeline step.

COMMANDS maps each command to the module that implements it. Only that module is imported (with
what it imports), so a job pays for torch, pandas or matplotlib only when its command needs them.
Each module defines `register_cli(subparsers)`, adding its commands with `set_defaults(func=...)`.
Snakemake rules call these commands, and derive their code inputs from the same table
(workflow/rules/common.smk), so every step also runs by hand, without Snakemake.

Vocabulary: `--out` names the single output (`--out-NAME` when a command writes several),
`--inputs` a list of input files; every file a command writes is one of its `--out*` options.
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import sys

# command -> (module, one-line help); the module's register_cli adds the command
COMMANDS: dict[str, tuple[str, str]] = {
    "check-config": ("gisweep.config_check", "parse config files strictly and check them against the schema"),
    "prepare-data": ("gisweep.data", "build results/{dataset}/d{dim}/data.parquet"),
    "prepare-hull-data": ("gisweep.data", "build results/{dataset}/d{dim}/hull/data.parquet: the hull study's split"),
    "train": ("gisweep.train", "train an MLP on real or permuted labels"),
    "train-batch": ("gisweep.train_batched", "train the seeds of one cell as one stacked model"),
    "sample-lines": ("gisweep.lines", "the lines of one or several families (see gisweep.lines)"),
    "batched-gi": ("gisweep.gi_stage", "exact GI of every line of a model"),
    "gi-summary": ("gisweep.summary", "summary table of GI files, with real-vs-random KS"),
    "gi-claims": ("gisweep.claims", "the GI paper's claims with their seed spread and verdicts"),
    "compare-claims": ("gisweep.claims_compare", "claims tables of several runs (e.g. default, paper preset) side by side"),
    "plot-gi-density": ("gisweep.figures.gi", "GI density panels, real vs random labels"),
    "outputs-along": ("gisweep.along", "network outputs along pair, random and class directions"),
    "plot-along": ("gisweep.figures.along", "figures 1-3: outputs along directions"),
    "gi-during-training": ("gisweep.dynamics", "retrain with checkpoints; pair GI and accuracy at each"),
    "gi-vs-accuracy": ("gisweep.dynamics", "correlations of GI with train and validation accuracy"),
    "plot-gi-vs-accuracy": ("gisweep.figures.dynamics", "figure 9: GI and accuracy during training"),
    "label-fraction-run": ("gisweep.fractions", "train on partly randomised labels; pair GI and accuracy"),
    "label-fractions-table": ("gisweep.fractions", "gather label-fraction runs into one table"),
    "plot-label-fractions": ("gisweep.figures.fractions", "GI and accuracy against the randomised fraction"),
    "hull-distance": ("gisweep.hull_stage", "certified distances to the training hull in one feature space"),
    "hull-summary": ("gisweep.hull_summary", "collect the summaries of hull Parquet files into one table"),
    "hull-nearest": ("gisweep.hull_stage", "test images of a pixel hull table with their nearest hull points"),
    "hull-train-size": ("gisweep.hull_sweep", "hull distances of the test rows against N training rows, N swept"),
    "hull-dimension": ("gisweep.hull_dimension", "hull membership of test points against the PCA dimension d"),
    "hull-dimension-table": ("gisweep.hull_dimension", "gather hull-dimension tables into results/tables/hull_dimension"),
    "plot-hull-dimension": ("gisweep.figures.hull_dimension", "fraction of test points inside the hull against d"),
    "hull-claims": ("gisweep.hull_claims", "the hull paper's claims with their seed spread and verdicts"),
    "train-resnet": ("gisweep.resnet_features", "train the ResNet-20 whose features are hull spaces"),
    "plot-hull-distributions": ("gisweep.figures.hull", "test distances to the hull per space, fitted normal"),
    "plot-hull-test-vs-random": ("gisweep.figures.hull", "distance / diameter of test vs uniform random points"),
    "plot-hull-nearest": ("gisweep.figures.hull", "test images, their nearest hull points and support images"),
    "plot-hull-train-size": ("gisweep.figures.hull", "hull distance, fraction outside and trend against N"),
    "polynomial-sweep": ("gisweep.toy2d.polynomial", "fit Legendre boundaries across degrees and regimes"),
    "network-sweep": ("gisweep.toy2d.sweep", "train MLPs across widths and regimes; inside vs outside the hull"),
    "plot-polynomial-boundaries": ("gisweep.figures.toy2d", "boundaries per degree and regime"),
    "plot-polynomial-disagreement": ("gisweep.figures.toy2d", "gaps inside vs outside the hull per degree"),
    "plot-network-regions": ("gisweep.figures.toy2d", "decision regions per width and regime"),
    "plot-network-disagreement": ("gisweep.figures.toy2d", "disagreement inside vs outside vs parameters"),
    "train-cnn": ("gisweep.cnn", "train the small CNN on real or permuted labels"),
    "plot-gi-mlp-vs-cnn": ("gisweep.figures.cnn", "pair-GI density of the MLP beside the CNN, real vs random"),
}


class CommandError(Exception):
    """An unknown command, or a command whose module cannot be found."""


def command_module(command: str) -> str:
    """The module implementing `command`; a clear error, with near misses, for an unknown one."""
    if command not in COMMANDS:
        close = difflib.get_close_matches(command, COMMANDS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise CommandError(f"unknown command '{command}'{hint} (`gisweep --help` lists them)")
    return COMMANDS[command][0]


def _overview() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items())
    return (f"usage: gisweep COMMAND [options]\n\n{__doc__.splitlines()[0]}\n\ncommands:\n{rows}\n\n"
            "`gisweep COMMAND --help` shows a command's options.")


def build_parser(command: str) -> argparse.ArgumentParser:
    """A parser that knows `command` (and the other commands of its module), importing nothing else."""
    module_name = command_module(command)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name == module_name:
            raise CommandError(f"command '{command}': its module {module_name} is missing from this "
                               "installation") from None
        raise
    parser = argparse.ArgumentParser(prog="gisweep")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    module.register_cli(sub)
    if command not in sub.choices:
        raise CommandError(f"command '{command}': {module_name}.register_cli does not add it")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_overview())
        return 0 if argv else 2
    if argv[0] == "--version":
        from gisweep import __version__

        print(f"gisweep {__version__}")
        return 0
    from gisweep import GisweepError

    try:
        parser = build_parser(argv[0])
    except CommandError as e:
        print(f"gisweep: error: {e}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except GisweepError as e:
        print(f"gisweep {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
