"""The hull paper's claims (Yousefzadeh 2021, section 2), each with per-seed values, pooled, and a verdict.

Inputs, each given as SEED=PATH with SEED the hull split (hull.seeds: which images are test images):
hull tables of gisweep.hull_stage (the per-space summary in their metadata) and pixel-space
nearest-point tables of `hull-nearest` (the test image and its nearest hull point). Optionally the
N-sweep CSV of gisweep.hull_sweep. Outputs results/tables/hull_claims.md and hull_claims.csv, rows
as in the GI paper's claims table (gisweep.claims.claims_table) plus `extrapolated`.

What a seed is depends on the space: pixel and wavelet rows have one value per hull split; a
learned space (resnet_*_s{k}, hidden_*_s{k}_l{j}) has one value per network seed k, on the split it
was computed on; N-trend rows have one value per subsample seed of the sweep. The verdicts use the
rules of gisweep.claims (all / near / direction, the last with a target), with the thresholds below,
fixed before any number they decide was computed; each row carries its rule in words.
numpy and pandas only.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from gisweep import GisweepError
from gisweep.claims import MUCH_LOWER, Claim, claims_table, table_lines, verdict_counts
from gisweep.hull_summary import read_summary
from gisweep.io import atomic_path, read_csv, read_parquet, write_csv

OUTSIDE_LEVEL, OUTSIDE_LOOSE = 1.0, 0.01
"""'All testing images are outside': every test point certified outside (undecided ones count
against), in every seed; loosely: at least 99 % in every seed."""

NORMAL_ALPHA, NORMAL_LOOSE_ALPHA = 0.05, 0.01
"""'Resemble a normal distribution': D'Agostino-Pearson normality not rejected at 5 % in any seed;
loosely: not rejected at 1 % in any seed. (With 1,000 points the test sees small departures; the
rule is the test, not the eye.)"""

CLOSER_SIZE = MUCH_LOWER
"""'Random points ... much farther away': mean test distance at least 20 % below the mean distance
of uniform random points (the GI table's 'much lower')."""

SIGNIFICANT_FRACTION = 0.10
"""'Cannot be dismissed as a small noise' / 'significant compared to the size of the hull': the mean
test distance is at least 10 % of the hull's diameter."""

CIFAR_FARTHEST, CIFAR_MARGIN = 0.27, 0.05
"""CIFAR-10 pixels: the farthest test image at about 27 % of the diameter, within 5 points. Only a
CIFAR-10 hull is compared with it (the number is CIFAR-10's)."""

INK_LEVEL, INK_ENRICHMENT = 0.5, 2.0
"""'Directions relate to important features': the ink pixels of a test image x (grey value at least
half of x's brightest pixel) carry at least twice their share of the pixels in ||x - p||^2, p the
nearest hull point (enrichment = share of ||x - p||^2 on ink / share of pixels that are ink; 1 =
spread like the image area). The factor 2 is this project's choice; the paper shows images."""

MOSTLY_INSIDE = 0.5
"""'No low dimensional manifold where most testing samples are included': in every learned space
(ResNet features, MLP hidden layers) fewer than half of the test points are certified inside."""

HIGH_DIM, HIGH_DIM_INSIDE, HIGH_DIM_LOOSE = 32, 0.01, 0.05
"""Balestriero, Pesenti & LeCun (2021), 'in more than a few dozen dimensions a test point is (almost) never
inside the training hull': per space of the dimension table, at every PCA dimension d >= 32 fewer than 1 %
of the test points are certified inside, in every seed (the row's statistic: 1 - the largest inside
fraction over those d, which must reach 0.99); loosely: fewer than 5 %."""

LATENT_MAX_D = 8
"""Bonnasse-Gahot (2022), 'most test points inside the hull in a trained low-dimensional latent space': at
the largest measured d <= 8 of an MLP hidden layer's PCA reduction, the inside fraction is above
MOSTLY_INSIDE (the direction rule, target 0.5)."""

CROSSING_LEVELS = (0.5, 0.01)  # reported with the high-dimension rows: the d at which inside falls below these

EXTRAPOLATION_SCALE = "log"
"""The N trend: log(mean distance / diameter) = a + b log N by least squares (a power law), per seed
and over every (N, seed) (the sweep's own fit), then evaluated at the sweep's largest N."""

EXTRAPOLATED = {"diameter_fraction_extrapolated"}  # rows whose value lies beyond the measured training sizes
PAPER_SPACES = {  # which spaces each claim is made for in the paper (section 2); re = the space's name
    "outside": r"pixels|wavelet_.+|resnet_(prepool|pool)",
    "normal": r"pixels|wavelet_.+_subset|resnet_pool",
    "fraction": r"pixels|resnet_pool",
    "inside": r"resnet_(prepool|pool)|hidden_.+",
}
LEARNED = re.compile(r"^(?P<group>resnet_(?:prepool|pool)|hidden_[0-9x]+_(?:real|random))_s(?P<seed>[0-9]+)"
                     r"(?P<layer>_l[0-9]+)?$")
SEEDED = re.compile(r"^(?P<seed>[0-9]+)=(?P<path>.+)$")

EVERY_SEED = "every seed >= {level:g}"
RULE_ALL = ("holds: every seed's value >= {level:g}; holds loosely: every seed's >= {loose_level:g}; else does not "
            "hold (the spread is not used: the claim is about every point)")
RULE_ABOVE = ("d = value - {target:g}; holds: >= 2 seeds, every d_s > 0, d_pooled >= {size:g} and > 2 sd; "
              "holds loosely: d_pooled > 0; else does not hold")
RULE_BELOW = ("d = value - {target:g}; holds: >= 2 seeds, every d_s < 0, -d_pooled >= {size:g} and > 2 sd; "
              "holds loosely: d_pooled < 0; else does not hold")
RULE_NEAR = ("d = value - {target:g}; holds: >= 2 seeds, every |d_s| <= {margin:g} and |d_pooled| + 2 sd <= "
             "{margin:g}; holds loosely: |d_pooled| <= {margin:g}; else does not hold")


# ------------------------------------------------------------------ inputs


def parse_seeded(items, what: str) -> list[tuple[int, str]]:
    """['SEED=PATH', ...] -> [(seed, path), ...] in the order given."""
    out = []
    for item in items:
        m = SEEDED.match(str(item))
        if not m:
            raise GisweepError(f"--{what} {item!r}: expected SEED=PATH (SEED the hull split, e.g. 0=results/...)")
        out.append((int(m["seed"]), m["path"]))
    return out


def space_key(space: str, split: int) -> tuple[str, int]:
    """(the space without its network seed, the row's seed): a learned space's seed is its network's."""
    m = LEARNED.match(space)
    if m:
        return m["group"] + (m["layer"] or ""), int(m["seed"])
    return space, split


def read_hull(seeded: list[tuple[int, str]]) -> dict[str, dict[int, dict]]:
    """{space: {seed: summary}} of the hull tables, spaces in the order first given."""
    out: dict[str, dict[int, dict]] = {}
    for split, path in seeded:
        s = read_summary(path)
        if "test" not in s:
            raise GisweepError(f"{path}: no test queries in this hull table")
        space, seed = space_key(s["space"], split)
        if seed in out.setdefault(space, {}):
            raise GisweepError(f"{path}: a second hull table of space {space!r} and seed {seed}")
        out[space][seed] = s
    return out


def ink_enrichment(image: np.ndarray, nearest: np.ndarray) -> float:
    """Share of ||x - p||^2 on x's ink pixels over the share of pixels that are ink (INK_LEVEL)."""
    r2 = (image - nearest) ** 2
    ink = image >= INK_LEVEL * image.max()
    if r2.sum() == 0 or not ink.any():
        return np.nan
    return float((r2[ink].sum() / r2.sum()) / ink.mean())


def read_nearest(seeded: list[tuple[int, str]]) -> tuple[dict[int, np.ndarray], str]:
    """({seed: enrichment of every example}, why not measured)."""
    per_seed = {}
    for seed, path in seeded:
        df = read_parquet(path, columns=["image", "nearest"], required=["image", "nearest"])
        if seed in per_seed:
            raise GisweepError(f"{path}: a second nearest-point table of seed {seed}")
        images = [np.asarray(x, np.float64) for x in df["image"]]
        side = int(round(np.sqrt(len(images[0])))) if images else 0
        if images and side * side != len(images[0]):
            return {}, "no ink mask for colour images: the ink share is defined for grey images"
        per_seed[seed] = np.array([ink_enrichment(x, np.asarray(p, np.float64)) for x, p in zip(images, df["nearest"])])
    return per_seed, "" if per_seed else "no nearest-point tables"


def read_sweep(path) -> pd.DataFrame:
    table = pd.read_csv(path) if Path(path).exists() else None
    if table is None:
        raise GisweepError(f"{path}: file not found (the N-sweep of `gisweep hull-train-size`)")
    need = ["kind", "train_points", "seed", "statistic", "value", "extrapolated"]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise GisweepError(f"{path}: not an N-sweep table (missing column(s) {', '.join(missing)})")
    return table


# ------------------------------------------------------------------ statistics


def per_space(spaces: dict, pattern: str, key: str, kind: str = "test") -> list[tuple[str, dict]]:
    """[(space, {seed: summary[kind][key]})] of the spaces whose name matches `pattern`."""
    out = []
    for space, seeds in spaces.items():
        if re.fullmatch(pattern, space):
            values = {s: sm[kind].get(key) for s, sm in sorted(seeds.items()) if kind in sm}
            out.append((space, {s: float(v) for s, v in values.items() if v is not None}))
    return out


def trend(table: pd.DataFrame, stat: str = "rel_distance_mean"):
    """(slopes {seed: b}, pooled b, extrapolated {seed: value}, pooled value, N, why not measured)."""
    m = table[(table.kind == "measured") & (table.statistic == stat)]
    fit = table[(table.kind == "fit") & (table.statistic == stat)]
    if m.empty or fit.empty:
        return {}, np.nan, {}, np.nan, 0, f"no fitted {stat} in the N-sweep"
    far = fit[fit.train_points == fit.train_points.max()].iloc[0]
    n_far = int(far.train_points)
    slopes, values = {}, {}
    for seed, g in m.groupby("seed"):
        if g.train_points.nunique() < 2:
            continue
        b, a = np.polyfit(np.log(g.train_points.to_numpy(float)), np.log(g.value.to_numpy(float)), 1)
        slopes[int(seed)], values[int(seed)] = float(b), float(np.exp(a + b * np.log(n_far)))
    if not slopes:
        return {}, np.nan, {}, np.nan, n_far, "fewer than two training sizes per seed in the N-sweep"
    return slopes, float(far.slope), values, float(far.value), n_far, ""


def read_dimension(path) -> pd.DataFrame:
    """The gathered table of gisweep.hull_dimension (results/tables/hull_dimension.csv)."""
    return read_csv(path, ["space", "d", "seed", "inside"], "--dimension: written by hull-dimension-table")


def crossings(rows: pd.DataFrame) -> str:
    """'inside below 50 % from d = 8, below 1 % from d = 32' from the seed-mean inside fraction per d."""
    by_d = rows.groupby("d")["inside"].mean()
    parts = []
    for level in CROSSING_LEVELS:
        below = by_d[by_d < level]
        parts.append(f"below {level:.0%} from d = {int(below.index.min())}" if len(below) else
                     f"never below {level:.0%} up to d = {int(by_d.index.max())}")
    return "seed-mean inside " + ", ".join(parts)


def dimension_claims(table: pd.DataFrame | None) -> list[Claim]:
    """The Balestriero rows (one per space of the table) and the Bonnasse-Gahot row (hidden layers)."""
    if table is None:
        return []
    claims = []
    for space, rows in table.groupby("space", sort=True):
        high = rows[rows["d"] >= HIGH_DIM]
        v = {int(s): 1.0 - float(g["inside"].max()) for s, g in high.groupby("seed")}
        claims.append(Claim(
            f"no_inside_high_dim_{space}", "Balestriero 2021",
            f"above a few dozen dimensions no test point is inside the training hull ({space}, PCA to d)",
            f"1 - largest fraction certified inside over d >= {HIGH_DIM}; pooled: the lowest seed", "all", v,
            min(v.values()) if v else np.nan,
            {"level": 1 - HIGH_DIM_INSIDE, "loose": HIGH_DIM_LOOSE - HIGH_DIM_INSIDE,
             "loose_level": 1 - HIGH_DIM_LOOSE, "holds_reason": EVERY_SEED},
            f"no d >= {HIGH_DIM} measured", detail=crossings(rows), rule_text=RULE_ALL))
    hidden = table[table["space"].str.startswith("hidden_") & (table["d"] <= LATENT_MAX_D)]
    if len(hidden):  # one hidden space per run (hull.dimension.hidden); its seeds are the hull splits
        hidden = hidden[hidden["space"] == sorted(hidden["space"].unique())[0]]
    at = hidden[hidden["d"] == hidden["d"].max()] if len(hidden) else hidden
    v = {int(s): float(x) for s, x in zip(at["seed"], at["inside"])}
    where = f"{hidden['space'].iloc[0]}, d = {int(hidden['d'].max())}" if len(hidden) else "hidden layer"
    claims.append(Claim(
        "inside_latent_low_dim", "Bonnasse-Gahot 2022",
        f"in a trained low-dimensional latent space most test points are inside the hull ({where})",
        f"fraction of test points certified inside at the largest d <= {LATENT_MAX_D} of the hidden layer's PCA",
        "direction", v, float(np.mean(list(v.values()))) if v else np.nan,
        {"sign": 1, "size": 0.0, "target": MOSTLY_INSIDE},
        "no hidden layer in the dimension table (hull.dimension.hidden)", rule_text=RULE_ABOVE))
    return claims


# ------------------------------------------------------------------ the claims


def hull_claims(spaces: dict, enrichment: dict, ink_missing: str = "", sweep: pd.DataFrame | None = None,
                dataset: str = "mnist", dimension: pd.DataFrame | None = None) -> list[Claim]:
    """Every claim of the hull paper with its values; verdicts come from gisweep.claims.verdict."""
    claims = []

    def add(id, where, text, statistic, kind, per_seed, pooled, rule, missing="", **params):
        claims.append(Claim(id, where, text, statistic, kind, per_seed, pooled, params, missing, rule_text=rule))

    def lowest(values):
        return min(values.values()) if values else np.nan

    def mean(values):
        return float(np.mean(list(values.values()))) if values else np.nan

    for space, v in per_space(spaces, PAPER_SPACES["outside"], "fraction_outside"):
        add(f"outside_{space}", "§2", f"every test point lies outside the training hull ({space})",
            "fraction of test points certified outside; pooled: the lowest seed", "all", v, lowest(v), RULE_ALL,
            level=OUTSIDE_LEVEL, loose=OUTSIDE_LOOSE, loose_level=OUTSIDE_LEVEL - OUTSIDE_LOOSE,
            holds_reason=EVERY_SEED)
    for space, v in per_space(spaces, PAPER_SPACES["normal"], "normaltest_p"):
        add(f"normal_{space}", "§2", f"test distances resemble a normal distribution ({space})",
            "normality test p (D'Agostino-Pearson) of the test distances; pooled: the lowest seed", "all", v,
            lowest(v), RULE_ALL, "fewer than 8 test points", level=NORMAL_ALPHA,
            loose=NORMAL_ALPHA - NORMAL_LOOSE_ALPHA, loose_level=NORMAL_LOOSE_ALPHA, holds_reason=EVERY_SEED)

    test = dict(per_space(spaces, "pixels", "mean"))
    rand = dict(per_space(spaces, "pixels", "mean", kind="random"))
    if test.get("pixels") and rand.get("pixels"):
        t, r = test["pixels"], rand["pixels"]
        rel = {s: (t[s] - r[s]) / r[s] for s in t if s in r}
        pooled = (mean({s: t[s] for s in rel}) - mean({s: r[s] for s in rel})) / mean({s: r[s] for s in rel})
    else:
        rel, pooled = {}, np.nan
    add("closer_than_random_pixels", "§2",
        "test points are much closer to the hull than uniform random points (pixels)",
        "(mean test distance - mean random distance) / mean random distance", "direction", rel, pooled, RULE_BELOW,
        "no random queries in the pixel hull table", sign=-1, size=CLOSER_SIZE, target=0.0)

    for space, v in per_space(spaces, PAPER_SPACES["fraction"], "rel_mean"):
        add(f"diameter_fraction_{space}", "§2",
            f"test distances are a significant fraction of the hull's diameter ({space})",
            "mean test distance / diameter", "direction", v, mean(v), RULE_ABOVE,
            sign=1, size=0.0, target=SIGNIFICANT_FRACTION)
    far = dict(per_space(spaces, "pixels", "rel_max")).get("pixels", {})
    cifar = dataset == "cifar10"
    add("farthest_27_cifar10", "§2", "CIFAR-10: the farthest test image lies at about 27 % of the diameter (pixels)",
        "largest test distance / diameter", "near", far if cifar else {}, mean(far) if cifar else np.nan, RULE_NEAR,
        "the 27 % is CIFAR-10's; this hull is " + dataset
        + (f" (farthest test image at {mean(far):.3g} of the diameter)" if far else ""),
        target=CIFAR_FARTHEST, margin=CIFAR_MARGIN)

    ink = {s: float(np.nanmean(e)) for s, e in sorted(enrichment.items()) if np.isfinite(e).any()}
    every = np.concatenate([e for e in enrichment.values()]) if enrichment else np.array([])
    add("direction_carries_object_pixels", "§2",
        "the direction from a test image to its nearest hull point carries the object (pixels)",
        "mean over examples of (share of ||x - p||^2 on x's ink pixels) / (share of pixels that are ink)",
        "direction", ink, float(np.nanmean(every)) if ink else np.nan, RULE_ABOVE,
        ink_missing or "no nearest-point tables", sign=1, size=INK_ENRICHMENT - 1.0, target=1.0)

    for space, v in per_space(spaces, PAPER_SPACES["inside"], "fraction_inside"):
        add(f"inside_{space}", "§2", f"a learned space does not put most test points inside the hull ({space})",
            "fraction of test points certified inside", "direction", v, mean(v), RULE_BELOW,
            sign=-1, size=0.0, target=MOSTLY_INSIDE)

    slopes, slope, values, value, n_far, why = trend(sweep) if sweep is not None else ({}, np.nan, {}, np.nan, 0,
                                                                                       "no N-sweep (hull.train_sizes)")
    add("trend_falls_with_n", "N trend", "distance / diameter falls with the training size N, as N^b (pixels; the "
        "trend behind the extrapolation, not a paper claim)", "fitted power b of mean test distance / diameter",
        "direction", slopes, slope, RULE_BELOW, why, sign=-1, size=0.0, target=0.0)
    where = f"N trend, extrapolated to N = {n_far:,}" if n_far else "N trend, extrapolated"
    add("diameter_fraction_extrapolated", where,
        "extrapolated to the paper's N: test distances still a significant fraction of the diameter (pixels)",
        "mean test distance / diameter at the largest N, from the power-law fit", "direction", values, value,
        RULE_ABOVE, why, sign=1, size=0.0, target=SIGNIFICANT_FRACTION)
    return claims + dimension_claims(dimension)


def to_table(claims: list[Claim]) -> pd.DataFrame:
    table = claims_table(claims)
    table.insert(2, "extrapolated", table.id.isin(EXTRAPOLATED))
    return table


def to_markdown(table: pd.DataFrame, sources: list[str]) -> str:
    lines = [
        "# Claims of the hull paper (Yousefzadeh 2021, section 2)",
        "",
        "Each claim's statistic for every seed alone (s0, s1, ...), pooled, and `sd`, the sample standard",
        "deviation of the per-seed values. Seeds: hull splits (which images are test images) for pixel and",
        "wavelet spaces; the network's seed for learned spaces (ResNet, MLP hidden layers); subsample seeds for",
        "the N trend. Rows marked `extrapolated` go beyond the measured training sizes: a fitted trend, not a",
        "measurement.",
        "",
        "Thresholds, fixed before the numbers:",
        "",
        "- every test point outside: all of them certified outside in every seed "
        f"(loosely >= {OUTSIDE_LEVEL - OUTSIDE_LOOSE:g});",
        f"- normal: the normality test's p >= {NORMAL_ALPHA:g} in every seed (loosely >= {NORMAL_LOOSE_ALPHA:g});",
        f"- much closer than random: test distances at least {CLOSER_SIZE:g} below random ones, relatively;",
        f"- significant fraction of the diameter: mean test distance / diameter above {SIGNIFICANT_FRACTION:g};",
        f"- CIFAR-10's farthest image: {CIFAR_FARTHEST:g} ± {CIFAR_MARGIN:g} of the diameter (CIFAR-10 hulls only);",
        f"- the direction carries the object: ink pixels (>= {INK_LEVEL:g} × the image's brightest) carry at least "
        f"{INK_ENRICHMENT:g}× their share of ||x - p||^2;",
        f"- learned spaces: fewer than {MOSTLY_INSIDE:g} of the test points certified inside;",
        "- the N trend: a falling power law, and its value at the largest N above the same 0.1;",
        f"- Balestriero (with a dimension table): fewer than {HIGH_DIM_INSIDE:g} of the test points inside at every "
        f"PCA d >= {HIGH_DIM}, every seed (loosely < {HIGH_DIM_LOOSE:g}); Bonnasse-Gahot: more than {MOSTLY_INSIDE:g} "
        f"inside at the hidden layer's largest d <= {LATENT_MAX_D}.",
        "",
        "Direction rules (d = value - target): holds with at least two seeds when every seed is on the claim's",
        "side, the pooled d reaches the size and exceeds twice the seed sd; holds loosely when the pooled d is on",
        "the claim's side; else does not hold. Not measured: the run's config has no input for the claim.",
        "",
        verdict_counts(table),
        "",
    ]
    return "\n".join(lines + table_lines(table, sources))


def _one(value, option: str, what: str):
    """A CLI list of at most one file -> that file or None."""
    if isinstance(value, (list, tuple)):
        if len(value) > 1:
            raise GisweepError(f"--{option}: at most one {what} (got {len(value)})")
        return value[0] if value else None
    return value


def write_hull_claims(hull, out_markdown, out_csv, nearest=(), sweep=None, dataset="mnist",
                      dimension=None) -> pd.DataFrame:
    """Build the hull claims table from SEED=PATH hull and nearest-point tables, an optional N-sweep CSV
    and an optional dimension table (gisweep.hull_dimension)."""
    sweep = _one(sweep, "sweep", "N-sweep table")
    dimension = _one(dimension, "dimension", "dimension table")
    seeded, near = parse_seeded(hull, "hull"), parse_seeded(nearest, "nearest")
    if not seeded:
        raise GisweepError("--hull: give at least one hull table as SEED=PATH")
    enrichment, ink_missing = read_nearest(near)
    dim_table = read_dimension(dimension) if dimension else None
    claims = hull_claims(read_hull(seeded), enrichment, ink_missing, read_sweep(sweep) if sweep else None, dataset,
                         dim_table)
    table = to_table(claims)
    md = to_markdown(table, [p for _, p in seeded + near] + [str(f) for f in (sweep, dimension) if f])
    write_csv(table, out_csv)
    with atomic_path(out_markdown) as tmp:
        Path(tmp).write_text(md)
    print(md)
    return table


def register_cli(sub) -> None:
    p = sub.add_parser("hull-claims", help="the hull paper's claims: statistic per seed and pooled, verdict by rule")
    p.add_argument("--hull", nargs="+", required=True, metavar="SEED=PATH",
                   help="hull tables (gisweep hull-distance), each with its hull split's seed")
    p.add_argument("--nearest", nargs="*", default=[], metavar="SEED=PATH",
                   help="pixel-space nearest-point tables (gisweep hull-nearest); none: 'not measured'")
    p.add_argument("--sweep", nargs="*", default=[], metavar="CSV",
                   help="results/tables/hull_vs_train_size.csv (at most one); none: 'not measured'")
    p.add_argument("--dimension", nargs="*", default=[], metavar="CSV",
                   help="results/tables/hull_dimension.csv (at most one); none: no dimension rows")
    p.add_argument("--dataset", default="mnist", help="the hull's dataset (the 27 %% row is CIFAR-10's)")
    p.add_argument("--out-markdown", required=True)
    p.add_argument("--out-csv", required=True)
    p.set_defaults(func=lambda a: write_hull_claims(a.hull, a.out_markdown, a.out_csv, a.nearest, a.sweep, a.dataset,
                                                    a.dimension))
