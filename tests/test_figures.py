"""Figure functions (gisweep.figures) write image files and fail clearly on bad input."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gisweep import GisweepError
from gisweep.cli import main
from gisweep.figures.gi import gi_density_panels
from gisweep.io import write_parquet


def gi_file(path, gi, t_min=-1.0, t_max=2.0):
    write_parquet(pd.DataFrame({"gi": np.asarray(gi, float), "t_min": t_min, "t_max": t_max}), path)
    return str(path)


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    return {
        "real": gi_file(tmp_path / "real.parquet", np.r_[np.full(10, 3.0), rng.uniform(0, 3, 30)]),
        "random": gi_file(tmp_path / "random.parquet", rng.uniform(0, 3, 40)),
        "tri": gi_file(tmp_path / "tri.parquet", rng.uniform(0, 5, 20), -2, 3),
        "const": gi_file(tmp_path / "const.parquet", np.full(5, 1.5)),
    }


@pytest.mark.parametrize("fmt, magic", [("png", b"\x89PNG"), ("pdf", b"%PDF"), ("svg", b"<?xml")])
def test_density_figure_written(tmp_path, files, fmt, magic):
    out = tmp_path / "figs" / f"f.{fmt}"
    stats = gi_density_panels([("28×28", "real", files["real"]), ("28×28", "random", files["random"]),
                               ("triangles", "real", files["tri"]), ("const", "real", files["const"])], out, "t")
    assert out.read_bytes().startswith(magic)
    assert not list(out.parent.glob(".*tmp"))  # written atomically, no leftovers
    real = stats[(stats.panel == "28×28") & (stats.labels == "real")].iloc[0]
    ref = pd.read_parquet(files["real"]).gi
    assert real.lines == 40 and real["mean"] == pytest.approx(ref.mean()) and real.full_range == pytest.approx(0.25)
    assert stats[stats.panel == "triangles"].full_range.iloc[0] == pytest.approx(np.mean(pd.read_parquet(files["tri"]).gi >= 5))


def test_density_bad_input(tmp_path, files):
    out = tmp_path / "f.png"
    with pytest.raises(GisweepError, match="no GI files"):
        gi_density_panels([], out)
    with pytest.raises(GisweepError, match="missing.parquet: file not found"):
        gi_density_panels([("a", "real", str(tmp_path / "missing.parquet"))], out)
    empty = gi_file(tmp_path / "empty.parquet", [])
    with pytest.raises(GisweepError, match="empty.parquet: no lines"):
        gi_density_panels([("a", "real", empty)], out)
    nan = gi_file(tmp_path / "nan.parquet", [1.0, np.inf])
    with pytest.raises(GisweepError, match="nan.parquet: non-finite"):
        gi_density_panels([("a", "real", nan)], out)
    write_parquet(pd.DataFrame({"x": [1.0]}), tmp_path / "wrong.parquet")
    with pytest.raises(GisweepError, match=r"missing column\(s\)"):
        gi_density_panels([("a", "real", str(tmp_path / "wrong.parquet"))], out)
    with pytest.raises(GisweepError, match="expected \\(panel, label mode, GI file\\)"):
        gi_density_panels([("a", files["real"])], out)
    assert not out.exists()


def test_cli(tmp_path, files, capsys):
    out = tmp_path / "cli.png"
    assert main(["plot-gi-density", "--inputs", files["real"], files["random"], "--panels", "p", "p",
                 "--modes", "real", "random", "--title", "x", "--out", str(out)]) == 0
    assert out.stat().st_size > 1000 and "real" in capsys.readouterr().out
    assert main(["plot-gi-density", "--inputs", str(tmp_path / "nope.parquet"), "--panels", "p", "--modes",
                 "real", "--out", str(tmp_path / "n.png")]) == 2
    assert not (tmp_path / "n.png").exists()
    # a panel or label mode for every file, or a clear error
    assert main(["plot-gi-density", "--inputs", files["real"], files["random"], "--panels", "p", "--modes",
                 "real", "random", "--out", str(tmp_path / "m.png")]) == 2
    assert "--inputs has 2 files but --panels has 1" in capsys.readouterr().err
    assert not (tmp_path / "m.png").exists()


def test_density_seeds_faint_and_pooled(tmp_path):
    """Several seeds of one panel and label mode: a faint curve each and the pooled density, whose
    legend statistics are those of every seed's lines together, with the sd of the per-seed means."""
    rng = np.random.default_rng(2)
    gi = {(mode, s): rng.uniform(1 if mode == "real" else 0, 3, 30 + 5 * s) for mode in ("real", "random") for s in range(3)}
    paths = {k: gi_file(tmp_path / f"{k[0]}{k[1]}.parquet", v) for k, v in gi.items()}
    out = tmp_path / "seeds.png"
    series = [("28×28", mode, s, paths[mode, s]) for (mode, s) in gi]
    stats = gi_density_panels(series, out)
    assert out.read_bytes().startswith(b"\x89PNG")
    for mode in ("real", "random"):
        rows = stats[stats.labels == mode]
        assert list(rows.seed) == [0, 1, 2, -1] and list(rows.seeds) == [1, 1, 1, 3]
        means = np.array([gi[mode, s].mean() for s in range(3)])
        np.testing.assert_allclose(rows.iloc[:3]["mean"], means, rtol=1e-14)
        pooled = rows.iloc[3]
        every = np.concatenate([gi[mode, s] for s in range(3)])
        assert pooled.lines == len(every) and pooled["mean"] == pytest.approx(every.mean(), rel=1e-14)
        assert pooled.mean_sd == pytest.approx(means.std(ddof=1))
    # the drawing: per label mode three faint curves and one pooled (filled) curve
    from gisweep.figures import gi as module

    drawn = []
    real_kde = module.sns.kdeplot

    def spy(data, **kw):
        drawn.append((kw["color"], kw["fill"], len(data)))
        return real_kde(data, **kw)

    module.sns.kdeplot = spy
    try:
        gi_density_panels(series, tmp_path / "spy.png")
    finally:
        module.sns.kdeplot = real_kde
    for mode in ("real", "random"):
        color = module.LABEL_COLORS[mode]
        mine = [(fill, n) for c, fill, n in drawn if c == color]
        assert sorted(mine) == sorted([(False, 30), (False, 35), (False, 40), (True, 105)]), drawn


def test_density_seed_listed_twice(tmp_path, files):
    with pytest.raises(GisweepError, match="seed 1 is listed twice"):
        gi_density_panels([("p", "real", 1, files["real"]), ("p", "real", 1, files["random"])], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_cli_seeds(tmp_path, files, capsys):
    out = tmp_path / "seeds.png"
    assert main(["plot-gi-density", "--inputs", files["real"], files["random"], files["const"], "--panels", "p", "p",
                 "p", "--modes", "real", "real", "random", "--seeds", "0", "1", "0", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.stat().st_size > 1000 and "-1" in printed  # the pooled row of the two real-label seeds
    assert main(["plot-gi-density", "--inputs", files["real"], files["random"], "--panels", "p", "p", "--modes",
                 "real", "random", "--seeds", "0", "--out", str(tmp_path / "m.png")]) == 2
    assert "--seeds 1 entries" in capsys.readouterr().err
    assert not (tmp_path / "m.png").exists()
