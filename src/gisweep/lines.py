"""The lines stage: which lines through input space each family measures GI on.

Every line is x0 + t·d for t in [t_min, t_max]. A lines table has one row per line with columns
`line` (id), `family`, `i`, `j`, `k` (row positions among the training rows of data.parquet, -1
where a family does not use them), `label` (the training label of the line's class), `t_min`,
`t_max`, `scale` (see below), and for the direction families a column `d` (the direction, a
fixed-size list of float64 with one entry per feature). How x0 and d follow from a row:

    family      x0                  d                       drawn
    pairs       x_i                 x_j - x_i               all i < j sharing a label in `classes`
    diffpairs   x_i                 x_j - x_i               by seed: label(i) in `classes`, label(j) != label(i)
    triangles   (x_i + x_j) / 2     (x_k - x_j) / 2         by seed: triangles {i, j, k} of one label; each
                                                            gives 3 lines, one per shared vertex i, from the
                                                            mid-point of side ij (t=0) to that of side ik (t=1)
    random      x_i                 column d                by seed: i in `classes`, d Gaussian, |d| = scale
    pc1         x_i                 column d                every i in `classes`: the class's 1st principal
    minor       x_i                 column d                component / a minor component / the mean
    perp        x_i                 column d                difference made perpendicular to pc1, |d| = scale

`scale` is |d| for the direction families: by default ('pair_mean') the mean distance between two
training samples of the line's class, so that t = 1 is as far as a typical same-class partner and
t ranges are comparable with the pair families; a number sets it directly. It is NaN for the
pair and triangle families (their d is fixed by the samples).

Lines depend on the training labels (real or permuted by seed), not on the architecture, so every
architecture is measured on the same lines; for random labels, classes are the permuted labels.
Sampling uses its own random stream per family, fixed by the seed.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from gisweep import GisweepError
from gisweep.data import load_table, training_labels
from gisweep.directions import class_directions, random_directions
from gisweep.io import provenance, read_parquet, write_parquet

LINE_COLUMNS = ["line", "family", "i", "j", "label", "t_min", "t_max"]
ALL_COLUMNS = ["line", "family", "i", "j", "k", "label", "t_min", "t_max", "scale"]
PAIR_FAMILIES = ("pairs", "diffpairs")
TRIANGLE_FAMILIES = ("triangles",)
DIRECTION_FAMILIES = ("random", "pc1", "minor", "perp")
CLASS_DIRECTION_FAMILIES = ("pc1", "minor", "perp")
FAMILIES = ("pairs", "diffpairs", "triangles", "random", "pc1", "minor", "perp")
# the paper's ranges: pair lines t in [-1, 2] (GI at most 3), triangle mid-lines range 5
DEFAULT_RANGES = {f: (-2.0, 3.0) if f in TRIANGLE_FAMILIES else (-1.0, 2.0) for f in FAMILIES}
_STREAM = {f: n for n, f in enumerate(FAMILIES)}  # one random stream per family


# ---------------------------------------------------------------- helpers


def _rng(seed: int, family: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), 0x11E5, _STREAM[family]])


def _check_range(family: str, t_min: float, t_max: float) -> None:
    if not (np.isfinite(t_min) and np.isfinite(t_max) and t_min <= 0 <= t_max and t_min < t_max):
        raise GisweepError(f"{family} lines: range [{t_min}, {t_max}] must be finite and contain 0 inside it")


def resolve_classes(labels: np.ndarray, classes, family: str) -> list[int]:
    """`classes` as a sorted list: 'all' means every label present; others must be present."""
    present = sorted(set(np.unique(labels).tolist()))
    if isinstance(classes, str):
        if classes != "all":
            raise GisweepError(f"{family} lines: classes must be a list of labels or 'all', got '{classes}'")
        return present
    classes = [int(c) for c in classes]
    if not classes:
        raise GisweepError(f"{family} lines: no classes given")
    missing = [c for c in classes if c not in present]
    if missing:
        raise GisweepError(f"{family} lines: class(es) {missing} have no training samples (labels present: {present})")
    return sorted(set(classes))


def _check_count(family: str, count) -> int:
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise GisweepError(f"{family} lines: count must be a positive integer, got {count!r}")
    return int(count)


def _frame(family: str, i, j, k, label, t_min: float, t_max: float, scale=None) -> pd.DataFrame:
    import pandas as pd

    n = len(i)
    df = pd.DataFrame({
        "line": np.arange(n, dtype=np.int64),
        "family": family,
        "i": np.asarray(i, np.int64),
        "j": np.asarray(j, np.int64) if j is not None else np.full(n, -1, np.int64),
        "k": np.asarray(k, np.int64) if k is not None else np.full(n, -1, np.int64),
        "label": np.asarray(label, np.int64),
        "t_min": np.full(n, float(t_min)),
        "t_max": np.full(n, float(t_max)),
        "scale": np.asarray(scale, np.float64) if scale is not None else np.full(n, np.nan),
    })
    return df[ALL_COLUMNS]


def class_pair_scale(x: np.ndarray, labels: np.ndarray, c: int) -> float:
    """Mean Euclidean distance between two training samples of class c (float64)."""
    rows = np.asarray(x, np.float64)[labels == c]
    if len(rows) < 2:
        raise GisweepError(f"class {c} has {len(rows)} training sample(s): a pair distance needs at least 2")
    from scipy.spatial.distance import pdist

    mean = float(pdist(rows).mean())
    if not mean > 0:
        raise GisweepError(f"class {c}: all training samples are identical, the mean pair distance is 0")
    return mean


def _scale_of(x, labels, c: int, scale) -> float:
    if scale is None or scale == "pair_mean":
        return class_pair_scale(x, labels, c)
    try:
        value = float(scale)
    except (TypeError, ValueError):
        raise GisweepError(f"scale must be a positive number or 'pair_mean', got {scale!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise GisweepError(f"scale must be a positive number or 'pair_mean', got {scale!r}")
    return value


# ---------------------------------------------------------------- the families


def same_class_pairs(labels: np.ndarray, classes, t_min: float = -1.0, t_max: float = 2.0) -> pd.DataFrame:
    """All pairs i < j of training rows whose (training) label is in `classes` (or 'all') and equal."""
    _check_range("pair", t_min, t_max)
    labels = np.asarray(labels)
    parts_i, parts_j, parts_c = [], [], []
    for c in resolve_classes(labels, classes, "pair"):
        rows = np.flatnonzero(labels == c)
        a, b = np.triu_indices(len(rows), k=1)
        parts_i.append(rows[a]), parts_j.append(rows[b]), parts_c.append(np.full(len(a), c))
    cat = lambda p: np.concatenate(p) if p else np.zeros(0, np.int64)  # noqa: E731
    return _frame("pairs", cat(parts_i), cat(parts_j), None, cat(parts_c), t_min, t_max)


def different_class_pairs(labels: np.ndarray, classes, count: int, seed: int,
                          t_min: float = -1.0, t_max: float = 2.0) -> pd.DataFrame:
    """Per class c in `classes`: `count` pairs (i, j), label(i) = c != label(j), drawn by seed without
    replacement (all of them if there are fewer); sorted by (i, j) within each class."""
    _check_range("diffpairs", t_min, t_max)
    count = _check_count("diffpairs", count)
    labels = np.asarray(labels)
    rng = _rng(seed, "diffpairs")
    parts_i, parts_j, parts_c = [], [], []
    for c in resolve_classes(labels, classes, "diffpairs"):
        own, other = np.flatnonzero(labels == c), np.flatnonzero(labels != c)
        if not len(other):
            raise GisweepError(f"diffpairs lines: every training sample has label {c}; no different-class pairs")
        total = len(own) * len(other)
        pick = np.sort(rng.choice(total, size=min(count, total), replace=False))  # flat index into own × other
        parts_i.append(own[pick // len(other)]), parts_j.append(other[pick % len(other)])
        parts_c.append(np.full(len(pick), c))
    return _frame("diffpairs", np.concatenate(parts_i), np.concatenate(parts_j), None, np.concatenate(parts_c),
                  t_min, t_max)


def _draw_triangles(n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` distinct triangles {a < b < c} of 0..n-1 (all of them if there are fewer), [m, 3]."""
    total = n * (n - 1) * (n - 2) // 6
    if count >= total:
        a, b, c = np.meshgrid(np.arange(n), np.arange(n), np.arange(n), indexing="ij")
        keep = (a < b) & (b < c)
        return np.stack([a[keep], b[keep], c[keep]], axis=1)
    found = np.zeros((0, 3), np.int64)
    while len(found) < count:  # rejection sampling; a few rounds unless count is close to total
        draw = np.sort(rng.integers(0, n, size=(2 * count, 3)), axis=1)
        draw = draw[(draw[:, 0] < draw[:, 1]) & (draw[:, 1] < draw[:, 2])]
        merged = np.concatenate([found, draw])
        code = (merged[:, 0] * n + merged[:, 1]) * n + merged[:, 2]
        _, first = np.unique(code, return_index=True)
        found = merged[np.sort(first)]  # distinct, in order of drawing
    return found[:count]


def triangle_midlines(labels: np.ndarray, classes, count: int, seed: int,
                      t_min: float = -2.0, t_max: float = 3.0) -> pd.DataFrame:
    """Per class c in `classes`: `count` distinct triangles of training rows labelled c, drawn by seed;
    each gives three mid-lines (shared vertex i, sides ij and ik): x0 = (x_i + x_j)/2, d = (x_k - x_j)/2."""
    _check_range("triangles", t_min, t_max)
    count = _check_count("triangles", count)
    labels = np.asarray(labels)
    rng = _rng(seed, "triangles")
    parts, parts_c = [], []
    for c in resolve_classes(labels, classes, "triangles"):
        rows = np.flatnonzero(labels == c)
        if len(rows) < 3:
            raise GisweepError(f"triangles lines: class {c} has {len(rows)} training samples, a triangle needs 3")
        tri = rows[_draw_triangles(len(rows), count, rng)]  # [m, 3] row positions
        a, b, cc = tri[:, 0], tri[:, 1], tri[:, 2]
        # per triangle, the three (i, j, k): (a, b, c), (b, a, c), (c, a, b)
        ijk = np.stack([np.stack([a, b, cc], 1), np.stack([b, a, cc], 1), np.stack([cc, a, b], 1)], 1)
        parts.append(ijk.reshape(-1, 3)), parts_c.append(np.full(3 * len(tri), c))
    ijk = np.concatenate(parts)
    return _frame("triangles", ijk[:, 0], ijk[:, 1], ijk[:, 2], np.concatenate(parts_c), t_min, t_max)


def random_direction_lines(x: np.ndarray, labels: np.ndarray, classes, count: int, seed: int, *,
                           scale="pair_mean", t_min: float = -1.0, t_max: float = 2.0) -> pd.DataFrame:
    """Per class c in `classes`: `count` lines from training rows of class c (drawn by seed, without
    replacement while there are enough) along Gaussian directions of length `scale`."""
    _check_range("random", t_min, t_max)
    count = _check_count("random", count)
    labels = np.asarray(labels)
    rng = _rng(seed, "random")
    classes = resolve_classes(labels, classes, "random")
    starts, cls, scales = [], [], []
    for c in classes:
        rows = np.flatnonzero(labels == c)
        starts.append(rng.choice(rows, size=count, replace=count > len(rows)))
        cls.append(np.full(count, c))
        scales.append(np.full(count, _scale_of(x, labels, c, scale)))
    starts, cls, scales = np.concatenate(starts), np.concatenate(cls), np.concatenate(scales)
    d = random_directions(len(starts), x.shape[1], seed) * scales[:, None]  # [n, F]
    df = _frame("random", starts, None, None, cls, t_min, t_max, scales)
    df["d"] = list(d)
    return df


def class_direction_lines(x: np.ndarray, labels: np.ndarray, family: str, classes, *, other=None,
                          minor_rank: int = -1, scale="pair_mean", t_min: float = -1.0,
                          t_max: float = 2.0) -> pd.DataFrame:
    """Per class c in `classes`: one line from every training row of class c along the class's
    direction `family` (pc1 | minor | perp; see gisweep.directions.class_directions) times `scale`.
    `other`: the class whose mean defines perp (None: all other classes)."""
    if family not in CLASS_DIRECTION_FAMILIES:
        raise GisweepError(f"unknown class-direction family '{family}': expected one of {CLASS_DIRECTION_FAMILIES}")
    _check_range(family, t_min, t_max)
    labels = np.asarray(labels)
    x = np.asarray(x)
    starts, cls, scales, dirs = [], [], [], []
    for c in resolve_classes(labels, classes, family):
        rows = np.flatnonzero(labels == c)
        if other is None:
            others = labels != c
        else:
            if int(other) == c:
                raise GisweepError(f"{family} lines: the other class of perp ({other}) equals the class itself")
            others = labels == int(other)
            if not others.any():
                raise GisweepError(f"{family} lines: other class {other} has no training samples")
        if not others.any():
            raise GisweepError(f"{family} lines: every training sample has label {c}; no other class for perp")
        unit = class_directions(x[rows], x[others], minor_rank=minor_rank)[family]  # [F]
        s = _scale_of(x, labels, c, scale)
        starts.append(rows), cls.append(np.full(len(rows), c)), scales.append(np.full(len(rows), s))
        dirs.append(np.tile(unit * s, (len(rows), 1)))
    scales = np.concatenate(scales)
    df = _frame(family, np.concatenate(starts), None, None, np.concatenate(cls), t_min, t_max, scales)
    df["d"] = list(np.concatenate(dirs))
    return df


def make_lines(family: str, x: np.ndarray, labels: np.ndarray, *, seed: int, classes, t_min=None, t_max=None,
               count: int | None = None, scale="pair_mean", other=None, minor_rank: int = -1) -> pd.DataFrame:
    """The lines of one family from training rows x [n, F] and their training labels [n]."""
    lo, hi = DEFAULT_RANGES.get(family, (None, None))
    t_min = lo if t_min is None else t_min
    t_max = hi if t_max is None else t_max
    if family == "pairs":
        return same_class_pairs(labels, classes, t_min, t_max)
    if family == "diffpairs":
        return different_class_pairs(labels, classes, count, seed, t_min, t_max)
    if family == "triangles":
        return triangle_midlines(labels, classes, count, seed, t_min, t_max)
    if family == "random":
        return random_direction_lines(x, labels, classes, count, seed, scale=scale, t_min=t_min, t_max=t_max)
    if family in CLASS_DIRECTION_FAMILIES:
        return class_direction_lines(x, labels, family, classes, other=other, minor_rank=minor_rank, scale=scale,
                                     t_min=t_min, t_max=t_max)
    raise GisweepError(f"unknown line family '{family}': expected one of {', '.join(FAMILIES)}")


# ---------------------------------------------------------------- lines -> tensors


def materialize(lines: pd.DataFrame, x_train: np.ndarray, dtype=torch.float64):
    """Start points and directions of the lines: x0 [n, F], d [n, F], t_min [n], t_max [n]."""
    x = torch.as_tensor(np.asarray(x_train), dtype=dtype)  # [N, F]
    n, features = x.shape
    fam = lines["family"].to_numpy().astype(str)
    unknown = sorted(set(fam) - set(FAMILIES))
    if unknown:
        raise GisweepError(f"lines of unknown family {unknown}: expected one of {', '.join(FAMILIES)}")
    pair, tri = np.isin(fam, PAIR_FAMILIES), np.isin(fam, TRIANGLE_FAMILIES)
    direc = np.isin(fam, DIRECTION_FAMILIES)
    col = lambda name: lines[name].to_numpy().astype(np.int64) if name in lines else np.full(len(lines), -1)  # noqa: E731
    i, j, k = col("i"), col("j"), col("k")
    for name, idx, used in (("i", i, np.ones(len(lines), bool)), ("j", j, pair | tri), ("k", k, tri)):
        if used.any() and (idx[used].min() < 0 or idx[used].max() >= n):
            raise GisweepError(f"lines name training rows ({name}) outside 0..{n - 1}: the lines and data files "
                               "do not match")
    it = torch.as_tensor(i)
    x0 = x[it].clone()  # [lines, F]
    d = torch.zeros_like(x0)
    if pair.any():
        m = torch.as_tensor(pair)
        d[m] = x[torch.as_tensor(j[pair])] - x0[m]
    if tri.any():
        m = torch.as_tensor(tri)
        xj, xk = x[torch.as_tensor(j[tri])], x[torch.as_tensor(k[tri])]
        x0[m] = (x0[m] + xj) / 2
        d[m] = (xk - xj) / 2
    if direc.any():
        if "d" not in lines:
            raise GisweepError(f"lines of family {sorted(set(fam[direc]))} need a column 'd' (the direction)")
        try:
            dd = np.stack(lines["d"].to_numpy()[direc]).astype(np.float64)  # [m, F]
        except ValueError as e:
            raise GisweepError(f"lines: column 'd' is not a fixed-size vector ({e})") from None
        if dd.shape[1] != features:
            raise GisweepError(f"lines: directions have {dd.shape[1]} entries but the data has {features} features: "
                               "the lines and data files do not match")
        d[torch.as_tensor(direc)] = torch.as_tensor(dd, dtype=dtype)
    t_min = torch.tensor(lines["t_min"].to_numpy(np.float64), dtype=dtype)
    t_max = torch.tensor(lines["t_max"].to_numpy(np.float64), dtype=dtype)
    return x0, d, t_min, t_max


def to_table(df: pd.DataFrame) -> pa.Table:
    """The lines as an Arrow table; `d` (if present) as a fixed-size list of float64."""
    import pyarrow as pa

    plain = pa.Table.from_pandas(df.drop(columns=["d"], errors="ignore"), preserve_index=False)
    if "d" not in df:
        return plain
    d = np.stack(df["d"].to_numpy()).astype(np.float64) if len(df) else np.zeros((0, 1))
    return plain.append_column("d", pa.FixedSizeListArray.from_arrays(pa.array(d.ravel()), d.shape[1]))


def read_lines(path) -> pd.DataFrame:
    return read_parquet(path, required=LINE_COLUMNS)


# ---------------------------------------------------------------- the stage


def parse_classes(values) -> list[int] | str:
    """CLI classes: ['all'] -> 'all', else integers."""
    values = list(values)
    if values == ["all"]:
        return "all"
    try:
        return [int(v) for v in values]
    except ValueError:
        raise GisweepError(f"classes must be integers or 'all', got {' '.join(map(str, values))}") from None


SETTING_KEYS = ("classes", "t_min", "t_max", "count", "scale", "other", "minor_rank")


def sample_lines(data_path, out, *, family, labels: str, seed: int, classes=None, t_min=None, t_max=None,
                 count=None, scale="pair_mean", other=None, minor_rank: int = -1, settings: dict | None = None):
    """Write the lines of one or several families of one data table, labels mode and seed.

    family, out: one family and its output file, or equal-length lists. The keyword options apply to
    every family; `settings` ({family: {option: value}}, e.g. from the config) overrides them per
    family. The data is read once; each family draws from its own random stream, so a family's lines
    do not depend on which other families are sampled with it. Returns {family: lines DataFrame}.
    """
    families, outs = ([family], [out]) if isinstance(family, str) else (list(family), list(out))
    if len(families) != len(outs):
        raise GisweepError(f"{len(families)} families but {len(outs)} output files: give one --out per family")
    settings = settings or {}
    unknown = sorted(set(settings) - set(families))
    if unknown:
        raise GisweepError(f"settings for families {unknown} that are not sampled ({families})")
    if len(set(map(str, outs))) != len(outs):
        raise GisweepError(f"output files {[str(o) for o in outs]}: each family needs its own --out")
    family_opts = {fam: _family_options(fam, settings.get(fam, {}), classes=classes, t_min=t_min, t_max=t_max,
                                        count=count, scale=scale, other=other, minor_rank=minor_rank)
                   for fam in families}
    x, y_true, _, _ = load_table(data_path)
    y = training_labels(y_true, labels, seed)
    # Every family is drawn before the first file is written: a family that cannot be drawn leaves no
    # output of the others behind (the tables are returned anyway, so this holds no more in memory).
    written = {fam: make_lines(fam, x, y, seed=seed, **family_opts[fam]) for fam in families}
    for fam, path in zip(families, outs):
        df, opts = written[fam], family_opts[fam]
        meta = provenance(stage="sample_lines", family=fam, data=str(data_path), labels=labels, seed=seed, **opts)
        write_parquet(to_table(df), path, meta)
        print(f"{path}: {len(df)} {fam} lines of class(es) {sorted(set(df.label.tolist()))}, "
              f"t in [{df.t_min.min() if len(df) else opts['t_min']}, {df.t_max.max() if len(df) else opts['t_max']}]")
    return written if not isinstance(family, str) else written[family]


# the config key whose bounds each numeric option has (t_min, t_max and count have the same bounds in
# every family that has them)
OPTION_KEYS = {"t_min": "lines.pairs.t_min", "t_max": "lines.pairs.t_max", "count": "lines.diffpairs.count",
               "scale": "lines.random.scale", "other": "lines.perp.other", "minor_rank": "lines.minor.minor_rank"}


def _family_options(fam: str, family_settings: dict, **options) -> dict:
    """The options of one family: the shared ones, overridden by its settings, each checked against the
    schema's bounds; GisweepError names the family and option."""
    from gisweep.schema import schema_number

    extra = set(family_settings) - set(SETTING_KEYS)
    if extra:
        raise GisweepError(f"settings of family {fam}: unknown option(s) {sorted(extra)}")
    opts = {**options, **family_settings}
    for key, schema_key in OPTION_KEYS.items():
        if opts[key] is not None and not (key == "other" and opts[key] in ("rest", "none", "None")):
            opts[key] = schema_number(schema_key).check(opts[key], f"family {fam}: {key}")
    opts["scale"] = _scale_arg(str(opts["scale"])) if opts["scale"] is not None else "pair_mean"
    opts["other"] = _other_arg(str(opts["other"])) if opts["other"] is not None else None
    if opts["classes"] is None:
        raise GisweepError(f"family {fam}: no classes given")
    opts["classes"] = parse_classes(opts["classes"] if isinstance(opts["classes"], list) else [opts["classes"]])
    return opts


def _scale_arg(value: str):
    return value if value == "pair_mean" else float(value)


def _other_arg(value: str):
    return None if value in ("rest", "none", "None") else int(value)


def _settings_arg(value: str) -> dict:
    import json

    try:
        settings = json.loads(value)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON: {e}") from None
    if not isinstance(settings, dict) or not all(isinstance(v, dict) for v in settings.values()):
        raise argparse.ArgumentTypeError('expected {"family": {"option": value, ...}, ...}')
    return settings


def register_cli(sub) -> None:
    from gisweep.schema import schema_number

    p = sub.add_parser("sample-lines", help="the lines of one or several families (see gisweep.lines)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--family", nargs="+", required=True, choices=FAMILIES, help="one or several families")
    p.add_argument("--labels", required=True, choices=["real", "random"])
    p.add_argument("--seed", type=schema_number("models.seeds[]"), required=True,
                   help="label permutation and line sampling")
    p.add_argument("--classes", nargs="+", default=None, help="labels, or 'all' (or per family in --settings)")
    p.add_argument("--t-min", type=schema_number(OPTION_KEYS["t_min"]), default=None, help="default: -1 (triangles -2)")
    p.add_argument("--t-max", type=schema_number(OPTION_KEYS["t_max"]), default=None, help="default: 2 (triangles 3)")
    p.add_argument("--count", type=schema_number(OPTION_KEYS["count"]), default=None,
                   help="diffpairs/random: lines, triangles: triangles, per class")
    p.add_argument("--scale", type=schema_number(OPTION_KEYS["scale"]), default="pair_mean",
                   help="|d| of direction families, or pair_mean")
    p.add_argument("--other", type=schema_number(OPTION_KEYS["other"]), default=None,
                   help="perp: the other class, or 'rest'")
    p.add_argument("--minor-rank", type=schema_number(OPTION_KEYS["minor_rank"]), default=-1,
                   help="minor: position among the spanned components")
    p.add_argument("--settings", type=_settings_arg, default=None,
                   help='per-family options as JSON, e.g. \'{"triangles": {"t_min": -2, "count": 50}}\'')
    p.add_argument("--out", nargs="+", required=True, help="one output file per --family, in the same order")
    p.set_defaults(func=_sample_cli)


def _sample_cli(a) -> None:
    missing = [f for f in a.family if a.classes is None and "classes" not in (a.settings or {}).get(f, {})]
    if missing:
        raise GisweepError(f"no classes for {missing}: give --classes or classes in --settings")
    sample_lines(a.data, a.out, family=a.family, labels=a.labels, seed=a.seed, classes=a.classes,
                 t_min=a.t_min, t_max=a.t_max, count=a.count, scale=a.scale, other=a.other,
                 minor_rank=a.minor_rank, settings=a.settings)
