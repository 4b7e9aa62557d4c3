"""Start-up cost of a pipeline job: `python -m gisweep CMD --help` against `python -c "import torch"`.

Every Snakemake job is a fresh Python process, so its start-up is paid once per job. The command table
(gisweep.cli.COMMANDS) imports only the module behind a command; this prints, per command, the median
wall time of `--help` over a few runs, and its ratio to importing torch alone, measured in this run.

    python bench/bench_startup.py                 # every command, 5 runs each
    python bench/bench_startup.py --commands sample-lines batched-gi --runs 9
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def wall(argv: list[str], runs: int) -> float:
    """Median wall time in seconds of running argv `runs` times (after one warm-up run)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    sys.path.insert(0, str(SRC))
    from gisweep.cli import COMMANDS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", nargs="+", default=list(COMMANDS), choices=list(COMMANDS))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    python = sys.executable
    base = wall([python, "-c", "pass"], args.runs)
    torch = wall([python, "-c", "import torch"], args.runs)
    print(f"python -c pass: {base:.2f} s;  python -c 'import torch': {torch:.2f} s  (median of {args.runs})")
    print(f"{'command':<30} {'--help (s)':>10} {'/ import torch':>15}")
    for command in args.commands:
        t = wall([python, "-m", "gisweep", command, "--help"], args.runs)
        print(f"{command:<30} {t:>10.2f} {t / torch:>15.2f}")


if __name__ == "__main__":
    main()
