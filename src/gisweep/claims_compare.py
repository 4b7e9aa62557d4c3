"""Claims tables of several runs side by side (e.g. the default config and config.paper.yaml).

    gisweep compare-claims --inputs default=results/tables/claims.csv paper=paper/results/tables/claims.csv \
        --hull-inputs default=results/tables/hull_claims.csv paper=paper/results/tables/hull_claims.csv \
        --out claims_side_by_side.md

Reads the claims.csv files `gi-claims` writes (gisweep.claims), and optionally the hull_claims.csv
files of `hull-claims` (gisweep.hull_claims, same columns), and writes a Markdown table each: a row
per claim, and per run its per-seed values, pooled value ± sd, and verdict; then per run the count of
each verdict and the training-accuracy reason (how many models reached 100 %). Claims are matched by
`id`; a claim one run lacks is shown as "-". pandas only.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from gisweep import GisweepError
from gisweep.io import atomic_path

NEEDED = ["id", "figure", "claim", "pooled", "sd", "seeds", "verdict", "reason"]
SEED_COLUMN = re.compile(r"^s[0-9]+$")
VERDICTS = ("holds", "holds loosely", "does not hold", "not measured")


def parse_inputs(items: list[str], option: str = "--inputs") -> dict[str, Path]:
    """['NAME=PATH', ...] -> {NAME: PATH}, names distinct and non-empty, in the order given."""
    runs: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise GisweepError(f"{option} {item!r}: expected NAME=PATH (e.g. default=results/tables/claims.csv)")
        if name in runs:
            raise GisweepError(f"{option}: the run name {name!r} is given twice")
        runs[name] = Path(path)
    if len(runs) < 2:
        raise GisweepError(f"{option}: give at least two runs to compare, as NAME=PATH")
    return runs


def read_claims(path: Path) -> pd.DataFrame:
    """A claims.csv of `gi-claims` or `hull-claims`; a missing or foreign file is an error naming it."""
    if not path.exists():
        raise GisweepError(f"{path}: file not found (a claims table written by `gisweep gi-claims` or `hull-claims`)")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise GisweepError(f"{path}: not a readable CSV ({e})") from e
    missing = [c for c in NEEDED if c not in table.columns]
    if missing:
        raise GisweepError(f"{path}: not a claims table (missing column(s) {', '.join(missing)})")
    if table.id.duplicated().any():
        raise GisweepError(f"{path}: claim id {table.id[table.id.duplicated()].iloc[0]!r} appears twice")
    return table.set_index("id")


def _num(x) -> str:
    return "" if pd.isna(x) else f"{x:.3g}"


def cell(row: pd.Series) -> str:
    """'s0 / s1 / s2 → pooled ± sd' of one claim of one run ('—' when not measured)."""
    if row.verdict == "not measured" or pd.isna(row.pooled):
        return "—"
    seeds = [row[c] for c in row.index if SEED_COLUMN.match(c) and not pd.isna(row[c])]
    text = " / ".join(_num(v) for v in seeds)
    spread = f" ± {_num(row.sd)}" if not pd.isna(row.sd) else ""
    return f"{text} → {_num(row.pooled)}{spread}" if len(seeds) > 1 else f"{_num(row.pooled)}{spread}"


def side_by_side(tables: dict[str, pd.DataFrame], title: str = "Claims side by side") -> str:
    """The Markdown comparison of the runs' claims tables (names in the order given)."""
    names = list(tables)
    ids = list(dict.fromkeys(i for t in tables.values() for i in t.index))  # first run's order, then the rest
    head = ["claim", "figure"]
    for n in names:
        head += [f"{n}: s0 / s1 / … → pooled ± sd", f"{n}: verdict"]
    lines = [f"# {title}", "",
             "Runs: " + ", ".join(f"**{n}**" for n in names) + ". Each run's verdicts follow the rules in its "
             "claims.md; values are the claim's statistic per seed, pooled, and the sd of the per-seed values.", "",
             "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for i in ids:
        first = next(t.loc[i] for t in tables.values() if i in t.index)
        row = [f"{first.claim} (`{i}`)".replace("|", "\\|"), str(first.figure)]
        for n in names:
            t = tables[n]
            row += [cell(t.loc[i]), str(t.loc[i].verdict)] if i in t.index else ["-", "-"]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "| run | " + " | ".join(VERDICTS) + " |", "|---|" + "|".join("---" for _ in VERDICTS) + "|"]
    for n in names:
        counts = tables[n].verdict.value_counts()
        lines.append(f"| {n} | " + " | ".join(str(int(counts.get(v, 0))) for v in VERDICTS) + " |")
    lines.append("")
    for n in names:
        t = tables[n]
        if "train_acc_100" in t.index:
            lines.append(f"- {n}, training accuracy: {t.loc['train_acc_100'].reason}")
    lines.append("")
    return "\n".join(lines)


def compare_claims(inputs: list[str], out, hull_inputs=()) -> str:
    """The GI claims tables side by side and, given hull_inputs, the hull claims tables after them."""
    parts = [("Claims side by side", inputs, "--inputs")]
    parts += [("Hull claims side by side", hull_inputs, "--hull-inputs")] if hull_inputs else []
    md = "\n".join(side_by_side({name: read_claims(path) for name, path in parse_inputs(items, option).items()},
                                title) for title, items, option in parts)
    with atomic_path(out) as tmp:
        Path(tmp).write_text(md)
    print(md)
    return md


def register_cli(sub) -> None:
    p = sub.add_parser("compare-claims", help="claims tables of several runs side by side")
    p.add_argument("--inputs", nargs="+", required=True, metavar="NAME=PATH",
                   help="two or more runs, each a name and its claims.csv (gisweep gi-claims)")
    p.add_argument("--hull-inputs", nargs="+", default=[], metavar="NAME=PATH",
                   help="the runs' hull_claims.csv (gisweep hull-claims), compared in a second table")
    p.add_argument("--out", required=True, help="the Markdown table to write")
    p.set_defaults(func=lambda a: compare_claims(a.inputs, a.out, a.hull_inputs))
