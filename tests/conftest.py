"""Shared helpers for the workflow tests: a private copy of the project, snakemake runs, result comparison.

Workflow tests never run in the checkout itself. `copy_project` copies what the workflow needs
(Snakefile, config.yaml, workflow/, src/, envs/, pyproject.toml, and tests/configs/tiny.yaml as
tiny.yaml) into a temporary directory that is also the working directory of the run. The rules'
`code()` inputs are paths under the Snakefile's directory, and common.smk puts that copy's src/
first on the jobs' PYTHONPATH, so a test may edit or touch the copy's source files and the
checkout (and other people editing it) stays out of the way.

Used by tests/test_workflow.py (local runs) and tests/test_slurm.py (SLURM vs local run).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# the small, complete config every workflow test runs (GISWEEP_TINY_CONFIG overrides it)
TINY_CONFIG = Path(os.environ.get("GISWEEP_TINY_CONFIG", REPO / "tests" / "configs" / "tiny.yaml"))
PROJECT_FILES = ["Snakefile", "config.yaml", "pyproject.toml"]
PROJECT_DIRS = ["workflow", "src", "envs"]
IGNORE = shutil.ignore_patterns("__pycache__", "*.egg-info", ".snakemake", "*.pyc")


def copy_project(dest: Path) -> Path:
    """Copy the workflow's files into `dest` (created); return `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        shutil.copy2(REPO / name, dest / name)
    for name in PROJECT_DIRS:
        shutil.copytree(REPO / name, dest / name, ignore=IGNORE)
    shutil.copy2(TINY_CONFIG, dest / "tiny.yaml")
    return dest


def local_env() -> dict[str, str]:
    """This process's environment minus SLURM's variables (a local run must not look like a SLURM job)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}


def project_args(project: Path, config: str | Path | None = "tiny.yaml") -> list[str]:
    """snakemake arguments that run the copy in `project` there: its config, Snakefile, working directory.

    --configfile comes first: it takes several values, so targets right after it would be read
    as config files. --replace-workflow-config makes it replace config.yaml instead of being
    merged into it, so the run is exactly the small config (plus the schema's defaults).
    """
    args = [] if config is None else ["--configfile", str(project / config), "--replace-workflow-config"]
    return args + ["-s", str(project / "Snakefile"), "--directory", str(project)]


def snakemake_args(project: Path, *args: str, config: str | Path | None = "tiny.yaml") -> list[str]:
    return [sys.executable, "-m", "snakemake", *project_args(project, config), *args]


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group `proc` leads (started with start_new_session=True) and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def snakemake(project: Path, *args: str, config: str | Path | None = "tiny.yaml", timeout: float = 300,
              env: dict | None = None) -> subprocess.CompletedProcess:
    """Run snakemake on `project` (also the working directory); stdout and stderr together in `.stdout`.

    Snakemake 9 prints its messages, errors included, on stdout; they are merged so that no
    assertion depends on which stream a message went to. Past `timeout` the whole process group is
    killed and the test fails with the end of the output.
    """
    cmd = snakemake_args(project, *args, config=config)
    proc = subprocess.Popen(
        cmd, cwd=project, env=env or local_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out = proc.stdout.read() if proc.stdout else ""
        pytest.fail(f"snakemake ran past {timeout:.0f} s: {' '.join(cmd)}\n{out[-6000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")


def run_ok(project: Path, *args: str, **kw) -> str:
    """Run snakemake; fail the test with its output unless it exits 0; return the output."""
    res = snakemake(project, *args, **kw)
    assert res.returncode == 0, f"{' '.join(res.args)} exited {res.returncode}\n{res.stdout[-8000:]}"
    return res.stdout


# ---------------------------------------------------------------- comparing results


def result_files(project: Path, pattern: str) -> list[Path]:
    """Files under project/results matching `pattern`, relative to `project`, sorted."""
    return sorted(p.relative_to(project) for p in (project / "results").rglob(pattern) if p.is_file())


def strip_timing(meta):
    """A provenance record without the fields that legitimately differ between identical runs
    (wall-clock durations)."""
    if isinstance(meta, dict):
        return {k: strip_timing(v) for k, v in meta.items() if k not in {"seconds", "elapsed", "wall_s"}}
    if isinstance(meta, list):
        return [strip_timing(v) for v in meta]
    return meta


def assert_same_results(a: Path, b: Path) -> dict[str, int]:
    """Every Parquet table and model under a/results equals its twin under b/results.

    Tables: the same files, equal contents bit for bit (pandas, check_exact) and equal provenance
    apart from timing fields. Models: the same state-dict keys, tensors equal exactly
    (torch.equal, dtype included), and equal settings. Returns the number of files compared.
    """
    import pandas as pd
    import torch

    from gisweep.io import read_provenance

    tables = result_files(a, "*.parquet")
    models = result_files(a, "*.pt")
    assert tables and models, f"{a}: no Parquet tables or models under results/"
    assert result_files(b, "*.parquet") == tables
    assert result_files(b, "*.pt") == models
    for rel in tables:
        pd.testing.assert_frame_equal(
            pd.read_parquet(a / rel), pd.read_parquet(b / rel), check_exact=True, obj=str(rel)
        )
        assert strip_timing(read_provenance(a / rel)) == strip_timing(read_provenance(b / rel)), rel
    for rel in models:
        ra = torch.load(a / rel, map_location="cpu", weights_only=True)
        rb = torch.load(b / rel, map_location="cpu", weights_only=True)
        sa, sb = ra.pop("state_dict"), rb.pop("state_dict")
        assert list(sa) == list(sb), rel
        for key in sa:
            assert sa[key].dtype == sb[key].dtype and torch.equal(sa[key], sb[key]), f"{rel}: {key} differs"
        assert strip_timing(ra) == strip_timing(rb), rel
    return {"tables": len(tables), "models": len(models)}
