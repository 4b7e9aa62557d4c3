"""Per-rule cost of a completed run, read from the rules' `benchmark:` files.

Every rule writes Snakemake's own measurement of each job to `benchmarks/{rule}/{wildcards}.tsv`
(wall seconds `s`, peak resident memory `max_rss` in MB, `cpu_time` in seconds). This prints one row
per rule: jobs, summed wall time, summed CPU time, largest peak RSS, and the total; the summed wall time
is what the run costs one job at a time (`--cores N` overlaps independent jobs).

    python bench/rule_times.py [--dir .] [--markdown]
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path


def read_benchmarks(root: Path) -> dict[str, list[dict[str, float]]]:
    """rule -> one record per job (s, max_rss, cpu_time); missing or 'NA' values count as 0."""
    rules: dict[str, list[dict[str, float]]] = {}
    for path in sorted((root / "benchmarks").glob("*/*.tsv")):
        with path.open(newline="") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                rules.setdefault(path.parent.name, []).append(
                    {key: _number(row.get(key)) for key in ("s", "max_rss", "cpu_time")})
    return rules


def _number(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return 0.0


def table(rules: dict[str, list[dict[str, float]]]) -> list[tuple]:
    """(rule, jobs, wall s, CPU s, largest RSS MB), the most expensive rule first, then the total."""
    rows = [(rule, len(jobs), sum(j["s"] for j in jobs), sum(j["cpu_time"] for j in jobs),
             max(j["max_rss"] for j in jobs)) for rule, jobs in rules.items()]
    rows.sort(key=lambda r: -r[2])
    total = ("total", sum(r[1] for r in rows), sum(r[2] for r in rows), sum(r[3] for r in rows),
             max((r[4] for r in rows), default=0.0))
    return rows + [total]


def render(rows: list[tuple], markdown: bool) -> str:
    head = ("rule", "jobs", "wall s", "CPU s", "peak RSS MB")
    cells = [head] + [(r[0], str(r[1]), f"{r[2]:.1f}", f"{r[3]:.1f}", f"{r[4]:.0f}") for r in rows]
    if markdown:
        lines = ["| " + " | ".join(c) + " |" for c in cells]
        return "\n".join([lines[0], "|---|---:|---:|---:|---:|", *lines[1:]])
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    return "\n".join("  ".join(c[i].ljust(widths[i]) if i == 0 else c[i].rjust(widths[i])
                               for i in range(len(head))) for c in cells)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=".", help="the run's working directory (holding benchmarks/)")
    ap.add_argument("--markdown", action="store_true", help="a Markdown table")
    args = ap.parse_args(argv)
    rules = read_benchmarks(Path(args.dir))
    if not rules:
        print(f"no benchmark files under {Path(args.dir) / 'benchmarks'}: run the workflow first",
              file=sys.stderr)
        return 1
    print(render(table(rules), args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
