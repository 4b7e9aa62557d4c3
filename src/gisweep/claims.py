"""The GI paper's claims, each with its statistic per seed, pooled, and a verdict from the seed spread.

Inputs: the summary table (results/tables/gi_summary.parquet, gisweep.summary: per-seed rows and
pooled rows with seed -1) and the GI-during-training tables (gisweep.dynamics, one per seed, seed
read from the path's s{seed} folder). Outputs: results/tables/claims.md (the table and the rules
that decided it) and claims.csv (the same rows; per-seed values in columns s0, s1, ...).

Every claim has a statistic computed for each seed alone and for the seeds pooled (`pooled`), and
`sd`, the sample standard deviation (ddof=1) of the per-seed values (NaN with one seed). The
verdict follows one of four rules, by the claim's kind (constants below):

- all (every model reaches the level): holds when every model of every seed is at `level`;
  holds loosely when every one is within `loose` of it; else does not hold. The statistic is the
  lowest value over a seed's models; the seed spread plays no part (the claim is about every model).
- near (the statistic is about `target`): d = value - target, then the `similar` rule on d.
- similar (the statistic d is about 0, within the margin m): holds when there are at least two
  seeds, |d_s| <= m for every seed s and |d_pooled| + 2 sd <= m (the margin holds beyond the seed
  spread); holds loosely when |d_pooled| <= m otherwise (one seed, or the spread reaches past m);
  does not hold when |d_pooled| > m.
- direction (the paper's sign σ, at least size e): holds when there are at least two seeds,
  σ d_s > 0 in every seed, σ d_pooled >= e and σ d_pooled > 2 sd (the effect exceeds twice the
  seed spread); holds loosely when σ d_pooled > 0 otherwise (one seed, a seed of the other sign,
  a smaller effect than e, or within the spread); does not hold when σ d_pooled <= 0.

A claim whose inputs are missing (not in the config) is "not measured".
GI comparisons use the relative difference of mean GIs, (mean random - mean real) / mean real, and
spreads across dimensions or architectures the relative range (max - min) / mean of the means,
so pairs (range 3), triangles (range 5) and two moons read on one scale.
numpy and pandas only.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gisweep import GisweepError
from gisweep.io import atomic_path, read_parquet, write_csv
from gisweep.schema import schema_number
from gisweep.summary import POOLED

SIMILAR_MARGIN = 0.10  # "similar", "roughly the same": relative difference or spread within 10 %
MUCH_LOWER = 0.20  # "much lower", "changes dramatically": at least 20 % below the real-label mean
ACC_MARGIN = 0.05  # "around 90 %" / "10 %": within 5 percentage points
TRACKS_R = 0.7  # "correlate very well": Pearson r of mean pair GI and validation accuracy at least 0.7
TRAIN_LEVEL, TRAIN_LOOSE = 1.0, 0.01  # "training error very close to 0": 100 %, loosely 99 %
# The second GI-tracks row starts at the first checkpoint whose validation accuracy reaches this level:
# before it the network predicts one class on most lines, so every line's GI spans most of its range
# whatever the accuracy, and those few checkpoints alone can set the sign of r over the whole run.
TRACKS_FROM_VAL_ACC = 0.5

HOLDS, LOOSE, FAILS, UNMEASURED = "holds", "holds loosely", "does not hold", "not measured"

RULES = {
    "all": "holds: every model of every seed at {level:g}; holds loosely: every model within {loose:g} of it; "
           "else does not hold (seed spread not used: the claim is about every model)",
    "near": "d = value - {target:g}; holds: >= 2 seeds, every |d_s| <= {margin:g} and |d_pooled| + 2 sd <= {margin:g}; "
            "holds loosely: |d_pooled| <= {margin:g}; else does not hold",
    "similar": "holds: >= 2 seeds, every |d_s| <= {margin:g} and |d_pooled| + 2 sd <= {margin:g}; "
               "holds loosely: |d_pooled| <= {margin:g}; else does not hold",
    "direction": "holds: >= 2 seeds, every seed {sign_word}, {sign_word_pooled} by at least {size:g} and by more "
                 "than 2 sd; holds loosely: {sign_word_pooled}; else does not hold",
}


@dataclass
class Claim:
    id: str
    figure: str
    claim: str
    statistic: str
    kind: str  # all | near | similar | direction
    per_seed: dict = field(default_factory=dict)  # seed -> value
    pooled: float = np.nan
    params: dict = field(default_factory=dict)  # level/loose, target/margin, margin, sign/size
    missing: str = ""  # why not measured
    detail: str = ""  # appended to the verdict's reason (e.g. which models fall short)
    rule_text: str = ""  # the rule in the claim's own words (formatted with params); "" = the kind's wording

    def rule(self) -> str:
        p = dict(self.params)
        if self.rule_text:
            return self.rule_text.format(**p)
        if self.kind == "direction":
            word = "> 0" if p["sign"] > 0 else "< 0"
            p.update(sign_word=f"d_s {word}", sign_word_pooled=f"d_pooled {word}")
        return RULES[self.kind].format(**p)


# ------------------------------------------------------------------ verdicts


def verdict(claim: Claim) -> tuple[str, str]:
    """(verdict, reason) of a claim by the rule of its kind (module docstring)."""
    if not claim.per_seed:
        return UNMEASURED, claim.missing or "no inputs"
    vals = np.array(list(claim.per_seed.values()), np.float64)
    n, c = len(vals), float(claim.pooled)
    sd = float(vals.std(ddof=1)) if n > 1 else np.nan
    p = claim.params
    if claim.kind == "all":
        if (vals >= p["level"]).all():
            return HOLDS, p.get("holds_reason", "every model at {level:g}").format(**p)
        low = float(vals.min())
        if (vals >= p["level"] - p["loose"]).all():
            return LOOSE, f"lowest {low:.4g}, within {p['loose']:g}"
        return FAILS, f"lowest {low:.4g}"
    if claim.kind in ("near", "similar"):
        shift = p.get("target", 0.0)
        d, dc, m = vals - shift, c - shift, p["margin"]
        if abs(dc) > m:
            return FAILS, f"|d_pooled| = {abs(dc):.3g} > {m:g}"
        if n < 2:
            return LOOSE, f"|d_pooled| = {abs(dc):.3g} <= {m:g}; one seed: spread unknown"
        if (np.abs(d) <= m).all() and abs(dc) + 2 * sd <= m:
            return HOLDS, f"|d_pooled| + 2 sd = {abs(dc) + 2 * sd:.3g} <= {m:g}"
        return LOOSE, f"|d_pooled| = {abs(dc):.3g} <= {m:g} but |d_pooled| + 2 sd = {abs(dc) + 2 * sd:.3g} or a seed's |d_s| exceeds it"
    if claim.kind == "direction":
        # an optional target moves the zero: "above 10 %" is the direction rule on value - 0.10
        s, e = p["sign"], p["size"]
        vals, c = vals - p.get("target", 0.0), c - p.get("target", 0.0)
        if s * c <= 0:
            return FAILS, f"d_pooled = {c:.3g} has the other sign"
        if n < 2:
            return LOOSE, f"d_pooled = {c:.3g}; one seed: spread unknown"
        why = []
        if not (s * vals > 0).all():
            why.append("a seed has the other sign")
        if s * c < e:
            why.append(f"|d_pooled| = {abs(c):.3g} < {e:g}")
        if s * c <= 2 * sd:
            why.append(f"|d_pooled| = {abs(c):.3g} <= 2 sd = {2 * sd:.3g}")
        return (LOOSE, "; ".join(why)) if why else (HOLDS, f"|d_pooled| = {abs(c):.3g} > 2 sd = {2 * sd:.3g}, every seed")
    raise GisweepError(f"claim {claim.id}: unknown kind {claim.kind!r}")


# ------------------------------------------------------------------ statistics from the summary


def _check_summary(table: pd.DataFrame, path) -> pd.DataFrame:
    need = ["dataset", "dim", "arch", "labels", "seed", "family", "gi_mean", "train_acc", "val_acc"]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise GisweepError(f"{path}: not a GI summary table (missing column(s) {', '.join(missing)})")
    return table


def gi_means(table, dataset, dim, arch, labels, family) -> dict:
    """{seed: mean GI} of one model family's GI files (pooled rows under seed -1)."""
    rows = table[(table.dataset == dataset) & (table.dim == dim) & (table.arch == arch) & (table.labels == labels)
                 & (table.family == family)]
    return {int(s): float(v) for s, v in zip(rows.seed, rows.gi_mean)}


def _split(values: dict) -> tuple[dict, float]:
    """({seed: value} without the pooled entry, the pooled value)."""
    return {s: v for s, v in sorted(values.items()) if s != POOLED}, values.get(POOLED, np.nan)


def relative_difference(table, dataset, dim, arch, family) -> tuple[dict, float, str]:
    """(mean random - mean real) / mean real per seed both label modes have, and pooled."""
    real, rand = (gi_means(table, dataset, dim, arch, labels, family) for labels in ("real", "random"))
    common = sorted(set(real) & set(rand))
    if not common or common == [POOLED]:
        return {}, np.nan, f"no {dataset} {dim}×{dim} {arch} {family} GIs of both label modes in the summary"
    values = {s: (rand[s] - real[s]) / real[s] for s in common}
    per_seed, pooled = _split(values)
    return per_seed, pooled, ""


def relative_range(groups: list[dict], what: str) -> tuple[dict, float, str]:
    """(max - min) / mean over the groups' mean GIs, per seed every group has, and pooled."""
    if len(groups) < 2:
        return {}, np.nan, f"fewer than two {what} in the summary"
    common = sorted(set.intersection(*(set(g) for g in groups)))
    if not common or common == [POOLED]:
        return {}, np.nan, f"no seed common to every {what}"
    values = {}
    for s in common:
        m = np.array([g[s] for g in groups])
        values[s] = float((m.max() - m.min()) / m.mean())
    per_seed, pooled = _split(values)
    return per_seed, pooled, ""


def model_rows(table) -> pd.DataFrame:
    """One per-seed row per trained model (the summary repeats a model for each line family)."""
    rows = table[table.seed != POOLED]
    return rows.drop_duplicates(["dataset", "dim", "arch", "labels", "seed"])


def models_below(models: pd.DataFrame, level: float) -> str:
    """'k of n models at {level}' and, for those below it, which (dataset dim arch labels seed: accuracy)."""
    below = models[models.train_acc < level].sort_values(["dataset", "dim", "arch", "labels", "seed"])
    text = f"{len(models) - len(below)} of {len(models)} models at {level:g}"
    if len(below):
        text += "; below: " + ", ".join(f"{r.dataset} d{r.dim} {r.arch} {r.labels} s{r.seed} {r.train_acc:.4g}"
                                        for r in below.itertuples())
    return text


def accuracy_values(table, column, dataset, dim, arch, labels) -> tuple[dict, float, str]:
    rows = model_rows(table)
    rows = rows[(rows.dataset == dataset) & (rows.dim == dim) & (rows.arch == arch) & (rows.labels == labels)]
    if rows.empty:
        return {}, np.nan, f"no {dataset} {dim}×{dim} {arch} {labels}-label model in the summary"
    per_seed = {int(s): float(v) for s, v in zip(rows.seed, rows[column])}
    return per_seed, float(np.mean(list(per_seed.values()))), ""


# ------------------------------------------------------------------ GI during training

DYNAMICS_SEED = re.compile(r"/s(?P<seed>[0-9]+)/[^/]+$")


def checkpoints_from(df: pd.DataFrame, level: float) -> pd.DataFrame:
    """The checkpoints (sorted by epoch) from the first one whose val_acc is at least `level` on;
    empty when none reaches it. Later checkpoints stay in even if their accuracy drops below `level`."""
    df = df.sort_values("epoch", kind="stable").reset_index(drop=True)
    reached = np.flatnonzero(df.val_acc.to_numpy(np.float64) >= level)
    return df.iloc[reached[0]:] if len(reached) else df.iloc[:0]


def dynamics_tables(paths) -> dict[int, pd.DataFrame]:
    """seed (from the path's s{seed} folder) -> its GI-during-training table, sorted by epoch."""
    tables = {}
    for path in paths:
        m = DYNAMICS_SEED.search(Path(path).as_posix())
        if not m:
            raise GisweepError(f"{path}: no s{{seed}} folder in the path of this GI-during-training table")
        seed = int(m["seed"])
        if seed in tables:
            raise GisweepError(f"{path}: a second GI-during-training table of seed {seed}")
        df = read_parquet(path, required=["epoch", "mean_gi", "val_acc"])
        if len(df) < 3:
            raise GisweepError(f"{path}: {len(df)} checkpoints; a correlation needs at least 3")
        tables[seed] = df.sort_values("epoch", kind="stable").reset_index(drop=True)
    return dict(sorted(tables.items()))


def dynamics_correlations(paths, from_val_acc: float | None = None) -> tuple[dict, float, str]:
    """Pearson r of mean_gi and val_acc over the checkpoints, per seed (from the path) and pooled
    (every seed's checkpoints together). With from_val_acc, only each seed's checkpoints from its
    first one at validation accuracy >= from_val_acc (checkpoints_from); a seed left with fewer than
    3 makes the claim not measured."""
    if not paths:
        return {}, np.nan, "no GI-during-training table (dynamics.enabled is false)"
    tables = dynamics_tables(paths)
    if from_val_acc is not None:
        tables = {seed: checkpoints_from(df, from_val_acc) for seed, df in tables.items()}
        short = {seed: len(df) for seed, df in tables.items() if len(df) < 3}
        if short:
            return {}, np.nan, (f"fewer than 3 checkpoints from validation accuracy {from_val_acc:g} on "
                                + ", ".join(f"seed {s}: {n}" for s, n in short.items()))
    per_seed = {seed: _pearson(df.mean_gi, df.val_acc) for seed, df in tables.items()}
    every = pd.concat(list(tables.values()), ignore_index=True)
    return per_seed, _pearson(every.mean_gi, every.val_acc), ""


def dynamics_window(paths, from_val_acc: float) -> str:
    """Which checkpoints the from_val_acc row used, per seed: 'seed 0 from epoch 12 (7 checkpoints); ...'."""
    if not paths:
        return ""
    parts = []
    for seed, df in dynamics_tables(paths).items():
        cut = checkpoints_from(df, from_val_acc)
        parts.append(f"seed {seed} from epoch {int(cut.epoch.iloc[0])} ({len(cut)} checkpoints)" if len(cut)
                     else f"seed {seed}: never at {from_val_acc:g}")
    return "; ".join(parts)


def _pearson(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.std() == 0 or b.std() == 0:
        return np.nan
    return float(np.corrcoef(a, b)[0, 1])


# ------------------------------------------------------------------ the claims


def gi_claims(table: pd.DataFrame, dynamics=(), *, arch: str = "3x128", compare_dataset: str = "mnist",
              compare_dim: int = 28) -> list[Claim]:
    """Every claim of the GI paper with its values; verdicts come from `verdict`."""
    claims = []

    def add(id, figure, text, statistic, kind, values, detail="", **params):
        per_seed, pooled, missing = values
        claims.append(Claim(id, figure, text, statistic, kind, per_seed, pooled, params, missing, detail))

    # accuracy
    models = model_rows(table)
    lowest = {int(s): float(g.train_acc.min()) for s, g in models.groupby("seed")}
    add("train_acc_100", "§4.1", "every model reaches 100 % training accuracy (real and random labels)",
        "lowest final training accuracy over the seed's models", "all",
        (lowest, min(lowest.values()) if lowest else np.nan, "no models in the summary"),
        detail=models_below(models, TRAIN_LEVEL), level=TRAIN_LEVEL, loose=TRAIN_LOOSE)
    add("val_acc_real_90", "§4.1", "MNIST, real labels: validation accuracy around 90 %",
        f"validation accuracy, MNIST 28×28 {arch} real labels", "near",
        accuracy_values(table, "val_acc", "mnist", 28, arch, "real"), target=0.90, margin=ACC_MARGIN)
    add("val_acc_random_10", "§4.1", "MNIST, random labels: validation accuracy around 10 %",
        f"validation accuracy, MNIST 28×28 {arch} random labels", "near",
        accuracy_values(table, "val_acc", "mnist", 28, arch, "random"), target=0.10, margin=ACC_MARGIN)

    # dimension (Figs 4, 5)
    rel = "(mean random - mean real) / mean real"
    add("pairs_similar_28", "Fig 4", "pair GIs of real and random labels almost identical at 28×28",
        f"{rel}, MNIST 28×28 {arch} pair GIs", "similar",
        relative_difference(table, "mnist", 28, arch, "pairs"), margin=SIMILAR_MARGIN)
    for dim in (14, 7):
        add(f"pairs_random_lower_{dim}", "Fig 4", f"pair GIs lower for random labels at {dim}×{dim}",
            f"{rel}, MNIST {dim}×{dim} {arch} pair GIs", "direction",
            relative_difference(table, "mnist", dim, arch, "pairs"), sign=-1, size=0.0)
    dims = sorted({int(d) for d in table[(table.dataset == "mnist") & (table.arch == arch)].dim}, reverse=True)
    add("pairs_real_flat_by_dim", "Fig 4", "real-label pair GIs do not change much with the input dimension",
        f"(max - min) / mean over MNIST dims {', '.join(map(str, dims)) or '-'} of mean real-label pair GI, {arch}",
        "similar", relative_range([gi_means(table, "mnist", d, arch, "real", "pairs") for d in dims],
                                  "MNIST dimensions with real-label pair GIs"),
        margin=SIMILAR_MARGIN)
    for dim in (28, 14, 7):
        add(f"triangles_random_much_lower_{dim}", "Fig 5",
            f"triangle mid-line GIs much lower for random labels at {dim}×{dim}",
            f"{rel}, MNIST {dim}×{dim} {arch} triangle mid-line GIs", "direction",
            relative_difference(table, "mnist", dim, arch, "triangles"), sign=-1, size=MUCH_LOWER)

    # architecture (Fig 6)
    at = table[(table.dataset == compare_dataset) & (table.dim == compare_dim) & (table.family == "pairs")]
    archs = sorted(set(at.arch), key=lambda a: tuple(int(x) for x in a.split("x")))
    for labels in ("real", "random"):
        add(f"archs_similar_{labels}", "Fig 6",
            f"pair GIs roughly the same across architectures ({labels} labels)",
            f"(max - min) / mean over {', '.join(archs) or '-'} of mean pair GI, {compare_dataset} "
            f"{compare_dim}×{compare_dim}, {labels} labels", "similar",
            relative_range([gi_means(table, compare_dataset, compare_dim, a, labels, "pairs") for a in archs],
                           "architectures"),
            margin=SIMILAR_MARGIN)

    # CIFAR-10 (Fig 7) and two moons (Fig 8)
    cifar_dims = sorted({int(d) for d in table[table.dataset == "cifar10"].dim}, reverse=True) or [32]
    for dim in cifar_dims:
        add(f"cifar10_pairs_similar_{dim}", "Fig 7", f"CIFAR-10 {dim}×{dim}: pair GIs similar for real and random labels",
            f"{rel}, CIFAR-10 {dim}×{dim} {arch} pair GIs", "similar",
            relative_difference(table, "cifar10", dim, arch, "pairs"), margin=SIMILAR_MARGIN)
    add("moons_random_much_lower", "Fig 8", "two moons: pair GIs much lower for random labels",
        f"{rel}, two moons {arch} pair GIs", "direction",
        relative_difference(table, "moons", 2, arch, "pairs"), sign=-1, size=MUCH_LOWER)

    # during training (Fig 9)
    add("gi_tracks_val_acc", "Fig 9", "mean pair GI tracks validation accuracy during training",
        "Pearson r of mean pair GI and validation accuracy over the checkpoints", "direction",
        dynamics_correlations(list(dynamics)), sign=1, size=TRACKS_R)
    add("gi_tracks_val_acc_from_val50", "Fig 9",
        f"mean pair GI tracks validation accuracy during training, once validation accuracy has reached "
        f"{TRACKS_FROM_VAL_ACC:.0%}",
        f"Pearson r of mean pair GI and validation accuracy over the checkpoints from the first with validation "
        f"accuracy >= {TRACKS_FROM_VAL_ACC:g}", "direction",
        dynamics_correlations(list(dynamics), TRACKS_FROM_VAL_ACC),
        detail=dynamics_window(list(dynamics), TRACKS_FROM_VAL_ACC), sign=1, size=TRACKS_R)
    return claims


def claims_table(claims: list[Claim]) -> pd.DataFrame:
    """One row per claim: id, figure, claim, statistic, s{seed}..., pooled, sd, seeds, verdict, reason, rule."""
    seeds = sorted({s for c in claims for s in c.per_seed})
    rows = []
    for c in claims:
        vals = np.array(list(c.per_seed.values()), np.float64)
        v, why = verdict(c)
        if c.detail:
            why = f"{why} ({c.detail})"
        rows.append({"id": c.id, "figure": c.figure, "claim": c.claim, "statistic": c.statistic,
                     **{f"s{s}": c.per_seed.get(s, np.nan) for s in seeds},
                     "pooled": c.pooled if c.per_seed else np.nan,
                     "sd": vals.std(ddof=1) if len(vals) > 1 else np.nan, "seeds": len(vals),
                     "verdict": v, "reason": why, "rule": c.rule()})
    return pd.DataFrame(rows)


def verdict_counts(table: pd.DataFrame) -> str:
    """'Verdicts: holds 3, holds loosely 1, ...' of a claims table."""
    counts = table.verdict.value_counts()
    return "Verdicts: " + ", ".join(f"{k} {counts.get(k, 0)}" for k in (HOLDS, LOOSE, FAILS, UNMEASURED)) + "."


def table_lines(table: pd.DataFrame, sources: list[str]) -> list[str]:
    """The Markdown rows of a claims table, each claim's rule, and the inputs (shared by every claims table)."""
    def fmt(x):
        if isinstance(x, (float, np.floating)):
            return "" if np.isnan(x) else f"{x:.4g}"
        return str(x).replace("|", "\\|")

    cols = [c for c in table.columns if c != "rule"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(fmt(row[c]) for c in cols) + " |" for _, row in table.iterrows()]
    lines += ["", "Rule of each claim:", ""]
    lines += [f"- `{row.id}` ({row.statistic}): {row.rule}" for row in table.itertuples()]
    lines += ["", "Inputs: " + ", ".join(f"`{s}`" for s in sources), ""]
    return lines


def to_markdown(table: pd.DataFrame, sources: list[str]) -> str:
    lines = [
        "# Claims of the GI paper (Salman, Zhang, Liu & Mio 2020)",
        "",
        "Each claim's statistic for every seed alone (s0, s1, ...), for the seeds pooled, and `sd`, the sample",
        "standard deviation of the per-seed values. d below is the statistic (minus the target for `near`).",
        "GI statistics are relative: (mean random - mean real) / mean real, or (max - min) / mean.",
        "",
        "Verdict rules, by kind:",
        "",
        f"- **all**: {RULES['all'].format(level=TRAIN_LEVEL, loose=TRAIN_LOOSE)}.",
        f"- **near** (target T, margin m = {ACC_MARGIN:g}): the `similar` rule on d = value - T.",
        f"- **similar** (margin m = {SIMILAR_MARGIN:g}): holds: at least two seeds, every |d_s| <= m and "
        "|d_pooled| + 2 sd <= m; holds loosely: |d_pooled| <= m otherwise; does not hold: |d_pooled| > m.",
        f"- **direction** (the paper's sign, at least size e: {MUCH_LOWER:g} for 'much lower', "
        f"{TRACKS_R:g} for 'correlate very well', 0 otherwise): holds: at least two seeds, every seed has the "
        "paper's sign, |d_pooled| >= e and |d_pooled| > 2 sd; holds loosely: d_pooled has the paper's sign "
        "otherwise; does not hold: d_pooled has the other sign (or is 0).",
        "- **not measured**: the claim's inputs are not in the run's config.",
        "",
        verdict_counts(table),
        "",
    ]
    return "\n".join(lines + table_lines(table, sources))


def write_claims(summary, out_markdown, out_csv, dynamics=(), *, arch="3x128", compare_dataset="mnist",
                 compare_dim=28) -> pd.DataFrame:
    table = _check_summary(read_parquet(summary), summary)
    claims = claims_table(gi_claims(table, dynamics, arch=arch, compare_dataset=compare_dataset,
                                    compare_dim=compare_dim))
    md = to_markdown(claims, [str(summary), *map(str, dynamics)])
    write_csv(claims, out_csv)
    with atomic_path(out_markdown) as tmp:
        Path(tmp).write_text(md)
    print(md)
    return claims


def register_cli(sub) -> None:
    p = sub.add_parser("gi-claims", help="the GI paper's claims: statistic per seed and pooled, verdict from the spread")
    p.add_argument("--summary", required=True, help="results/tables/gi_summary.parquet (gisweep gi-summary)")
    p.add_argument("--dynamics", nargs="*", default=[],
                   help="gi_during_training.parquet files (one per seed, under .../s{seed}/); none: not measured")
    p.add_argument("--arch", default="3x128", help="the architecture of the dimension, CIFAR-10 and moons claims")
    p.add_argument("--compare-dataset", default="mnist", help="where the architectures are compared (Fig 6)")
    p.add_argument("--compare-dim", type=schema_number("models.compare_at.dim"), default=28)
    p.add_argument("--out-markdown", required=True)
    p.add_argument("--out-csv", required=True)
    p.set_defaults(func=lambda a: write_claims(a.summary, a.out_markdown, a.out_csv, a.dynamics, arch=a.arch,
                                               compare_dataset=a.compare_dataset, compare_dim=a.compare_dim))
