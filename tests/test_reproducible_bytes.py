"""Identical runs write identical bytes: same seed, same machine, two working directories.

The workflow test compares the two runs file by file with `filecmp.cmp(shallow=False)`: model
files (`.pt`), Parquet tables, CSV and Markdown tables, figures. Left out, because they hold
timings or Snakemake's own state by nature: Snakemake's `.snakemake/` bookkeeping, the jobs' logs
under `logs/` and `benchmarks/` (wall times). The project's own files, copied in before the run
(Snakefile, config, workflow/, src/, ...), are inputs, not outputs, and are not compared either.

The fast tests pin the two writers whose bytes depended on something other than the data: torch
files (the archive's record names came from the temporary file's random name) and figures (PDF and
SVG store a date, SVG ids from a random salt).
Run alone: python -m pytest tests/test_reproducible_bytes.py -q
"""

from __future__ import annotations

import filecmp
import os
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import copy_project, run_ok  # noqa: E402

# not outputs of the pipeline's rules (see the module docstring)
EXCLUDED_DIRS = {".snakemake", "logs", "benchmarks", "__pycache__"}


# ---------------------------------------------------------------- the writers


def _record():
    import torch

    return {"state_dict": {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(2, dtype=torch.float64)},
            "meta": {"seed": 0, "arch": "1x16"}}


def test_torch_file_bytes_do_not_depend_on_its_name_or_folder(tmp_path):
    """Two saves of the same record under different folders (each with its own temporary name)
    give the same bytes, and the archive's records carry no file name."""
    from gisweep.io import load_torch, save_torch

    a, b = tmp_path / "run_a" / "model.pt", tmp_path / "run_b" / "other.pt"
    save_torch(_record(), a)
    save_torch(_record(), b)
    assert a.read_bytes() == b.read_bytes()
    names = zipfile.ZipFile(a).namelist()
    assert all(n.startswith("archive/") for n in names), names
    assert load_torch(a, "model", required=["state_dict"])["meta"] == {"seed": 0, "arch": "1x16"}
    assert not list(tmp_path.rglob("*.tmp")), "temporary file left behind"


@pytest.mark.parametrize("fmt", ["png", "pdf", "svg"])
def test_figure_bytes_do_not_depend_on_the_clock(tmp_path, monkeypatch, fmt):
    """The same figure saved twice at two (faked) times gives the same bytes in every format of
    figures.format. Matplotlib dates PDF and SVG files from SOURCE_DATE_EPOCH when set, which stands
    in for the clock here; SVG ids would differ anyway without a fixed salt."""
    from gisweep.figures.common import plt, save_figure

    def draw(out, epoch):
        monkeypatch.setenv("SOURCE_DATE_EPOCH", str(epoch))
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, 1, 2], [0, 1, 4], label="line")
        ax.pcolormesh([[0, 1], [1, 0]], rasterized=True)
        ax.set_xlabel("x")
        ax.legend()
        save_figure(fig, out)

    draw(tmp_path / f"a.{fmt}", 1_000_000_000)
    draw(tmp_path / f"b.{fmt}", 1_700_000_000)
    assert (tmp_path / f"a.{fmt}").read_bytes() == (tmp_path / f"b.{fmt}").read_bytes()


# ---------------------------------------------------------------- two whole runs


def _files(root: Path) -> set[str]:
    """Files under root, relative, outside EXCLUDED_DIRS."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in EXCLUDED_DIRS]
        found.update(str((Path(dirpath) / f).relative_to(root)) for f in filenames)
    return found


# figures the tiny config also builds as PDF and SVG (it writes PNG): a rasterized image, text, lines
VECTOR_FIGURES = ["overparam_network_regions", "hull_distances_mnist_d7"]


def _run(project: Path) -> set[str]:
    """Run every default target of the tiny config in `project`, then VECTOR_FIGURES in PDF and
    SVG (figures.format; only those plot jobs run); return the files the runs added."""
    copy_project(project)
    tiny = yaml.safe_load((project / "tiny.yaml").read_text())
    for fmt in ("pdf", "svg"):
        (project / f"tiny_{fmt}.yaml").write_text(yaml.safe_dump({**tiny, "figures": {**tiny["figures"], "format": fmt}}))
    before = _files(project)
    run_ok(project, "--cores", "2", timeout=900)
    for fmt in ("pdf", "svg"):
        run_ok(project, "--cores", "2", *(f"results/figures/{name}.{fmt}" for name in VECTOR_FIGURES),
               config=f"tiny_{fmt}.yaml")
    return _files(project) - before


@pytest.mark.slow
def test_two_runs_write_identical_bytes(tmp_path):
    """The whole tiny config run twice, in two directories: the same output files, equal byte
    for byte (every differing file is named)."""
    outputs_a = _run(tmp_path / "run_a")
    outputs_b = _run(tmp_path / "run_b")
    assert outputs_a == outputs_b, (
        f"only in run_a: {sorted(outputs_a - outputs_b)}; only in run_b: {sorted(outputs_b - outputs_a)}"
    )
    kinds = {Path(f).suffix for f in outputs_a}
    # every kind the pipeline writes is compared: models, tables, readable tables, figures
    assert {".pt", ".parquet", ".csv", ".md", ".png", ".pdf", ".svg"} <= kinds, sorted(kinds)
    differing = sorted(
        f for f in outputs_a if not filecmp.cmp(tmp_path / "run_a" / f, tmp_path / "run_b" / f, shallow=False)
    )
    assert not differing, f"{len(differing)} of {len(outputs_a)} output files differ between the runs:\n" + (
        "\n".join(differing)
    )
