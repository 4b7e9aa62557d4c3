"""Workflows run through a real single-node SLURM (tests/slurm_cluster.py) with our profiles.

Needs root and Debian/Ubuntu packages (installed on first use); skipped otherwise, unless
GISWEEP_REQUIRE_SLURM=1 (CI), which turns a missing SLURM into an error.
Run alone: python -m pytest tests/test_slurm.py -q -s   (-s prints the measured times)
Environment: GISWEEP_SLURM_POLL (first status check, s; default 15), GISWEEP_TINY_CONFIG
(config of the real-workflow test; default tests/configs/tiny.yaml), GISWEEP_SLURM_TARGETS
(its targets, space-separated; default the MNIST pair-GI figure and all it needs, `all` for
every default target), GISWEEP_SLURM_KEEP=1 (keep the cluster's directory with its logs).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import TINY_CONFIG, assert_same_results, copy_project, local_env, project_args  # noqa: E402
from slurm_cluster import slurm  # noqa: E402,F401  (session fixture)

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
SLURM_PROFILE = REPO / "workflow" / "profiles" / "slurm"
GPU_PROFILE = REPO / "workflow" / "profiles" / "slurm-gpu"
# First status check this many seconds after a submission; later checks come 10 s further
# apart each until a job finishes. The profile says 10; the jobs here (two snakemake start-ups
# each) take 5-15 s on a loaded 2-core machine, and a job that misses the first check costs a
# whole second interval, so the tests wait a little longer for the first one.
POLL = ["--slurm-init-seconds-before-status-checks", os.environ.get("GISWEEP_SLURM_POLL", "15")]


def start_snakemake(args: list[str], env: dict, cwd: Path, log: Path) -> subprocess.Popen:
    """Start snakemake in its own session (so a timeout can kill it and all its children)."""
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "snakemake", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def finish_snakemake(proc: subprocess.Popen, timeout: float, log: Path, cluster=None) -> tuple[int, str]:
    """Wait for snakemake; past `timeout` SIGTERM, then SIGKILL, its whole process group, cancel
    the cluster's jobs and fail with the end of its log (and the daemons' logs)."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        # snakemake may ignore SIGTERM while it waits on cluster jobs
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                continue
        text = log.read_text(errors="replace")[-6000:]
        if cluster is not None:
            queue = cluster.run("squeue", check=False).stdout
            ids = cluster.run("squeue", "-h", "-o", "%i", check=False).stdout.split()
            if ids:
                cluster.run("scancel", *ids, check=False)
            text += f"\n--- squeue at the timeout\n{queue}\n{cluster.logs()}"
        pytest.fail(f"snakemake did not finish within {timeout:.0f} s: {' '.join(map(str, proc.args))}\n{text}")
    return proc.returncode, log.read_text(errors="replace")


def run_snakemake(args: list[str], env: dict, cwd: Path, timeout: float, log: Path, cluster=None) -> tuple[int, str]:
    return finish_snakemake(start_snakemake(args, env, cwd, log), timeout, log, cluster)


def submitted_ids(log_text: str) -> list[str]:
    """SLURM job ids snakemake reports having submitted."""
    return re.findall(r"submitted with SLURM jobid (\d+)", log_text)


SMOKE_SNAKEFILE = """
localrules: all

rule all:
    input: "a.txt", "b.txt", "never.txt"

rule first:
    output: "a.txt"
    shell: "echo $SLURM_JOB_ID $SLURM_JOB_PARTITION $SLURM_CPUS_PER_TASK > {output}"

rule second:
    output: "b.txt"
    threads: 2
    resources: slurm_partition="@PARTITION@"
    shell: "echo $SLURM_JOB_ID $SLURM_JOB_PARTITION $SLURM_CPUS_PER_TASK > {output}"

rule broken:
    output: "never.txt"
    shell: "echo about to fail; exit 3"
"""


@pytest.mark.slow
def test_small_workflow_runs_through_sbatch(slurm, tmp_path):
    """Three independent rules, each its own SLURM job: two succeed, `broken` fails.

    `first` relies on the cluster's default partition, `second` names it and asks for two
    threads. The failed job must be reported as such (exit non-zero, no hang); --keep-going
    lets the others finish. (Jobs that wait on each other: the real-workflow test below.)
    """
    (tmp_path / "Snakefile").write_text(SMOKE_SNAKEFILE.replace("@PARTITION@", slurm.partition))
    seen_before = {j["JobId"] for j in slurm.completed_jobs()}
    start = time.monotonic()
    rc, log = run_snakemake(
        ["--profile", str(SLURM_PROFILE), *POLL, "--keep-going", "--directory", str(tmp_path),
         "-s", str(tmp_path / "Snakefile")],
        env=slurm.env, cwd=tmp_path, timeout=150, log=tmp_path / "snakemake.log", cluster=slurm,
    )  # fmt: skip
    print(f"\n3-job SLURM workflow: {time.monotonic() - start:.1f} s")
    assert rc != 0, f"`broken` failed, snakemake must say so\n{log[-6000:]}"
    assert "Error in rule broken" in log, log[-6000:]
    for name in ("a.txt", "b.txt"):
        assert (tmp_path / name).exists(), f"{name} missing\n{log[-6000:]}\n{slurm.logs()}"
    assert not (tmp_path / "never.txt").exists()

    # each output was written inside a SLURM allocation: job id, partition, CPUs per task
    fields = {name: (tmp_path / name).read_text().split() for name in ("a.txt", "b.txt")}
    assert fields["a.txt"][1:] == [slurm.partition, "1"], fields
    assert fields["b.txt"][1:] == [slurm.partition, "2"], fields  # threads: 2 -> --cpus-per-task=2
    ok_ids = [fields["a.txt"][0], fields["b.txt"][0]]
    # snakemake submitted three jobs with sbatch, these two among them
    submitted = submitted_ids(log)
    assert len(set(submitted)) == 3 and set(ok_ids) < set(submitted), (submitted, ok_ids)
    # slurmctld finished exactly these three jobs for this run: two completed, one failed
    new = {j["JobId"]: j for j in slurm.completed_jobs() if j["JobId"] not in seen_before}
    assert sorted(new) == sorted(submitted)
    states = {job_id: new[job_id]["JobState"] for job_id in submitted}
    assert sorted(states.values()) == ["COMPLETED", "COMPLETED", "FAILED"], states
    assert all(states[job_id] == "COMPLETED" for job_id in ok_ids), states
    assert {j["Partition"] for j in new.values()} == {slurm.partition}
    # the profile's default resources reached sbatch: 60 min limit, 4000 MB
    for job_id in submitted:
        info = slurm.job_fields(job_id)  # still known to slurmctld: MinJobAge keeps it
        assert info["TimeLimit"] == "01:00:00", info
        assert "mem=4000M" in info["TRES"], info


GPU_SNAKEFILE = """
rule train_real:
    output: "model.txt"
    shell: "echo trained > {output}"
"""


def test_gpu_overlay_asks_sbatch_for_a_gpu(slurm, tmp_path):
    """With the slurm-gpu overlay, train_real is submitted with --gpus=1.

    The test cluster has no GPUs, so sbatch refuses the job; the refused sbatch call that
    snakemake reports must carry --gpus=1 (the smoke test above shows that the same
    profile without the overlay submits plain CPU jobs).
    """
    (tmp_path / "Snakefile").write_text(GPU_SNAKEFILE)
    rc, log = run_snakemake(
        ["--profile", str(SLURM_PROFILE), "--profile", str(GPU_PROFILE),
         "--slurm-init-seconds-before-status-checks", "1",  # nothing will run: exit fast
         "--directory", str(tmp_path), "-s", str(tmp_path / "Snakefile")],
        env=slurm.env, cwd=tmp_path, timeout=120, log=tmp_path / "gpu.log", cluster=slurm,
    )  # fmt: skip
    assert rc != 0, log[-4000:]
    calls = [ln for ln in log.splitlines() if ln.strip().startswith("sbatch ") and "rule_train_real" in ln]
    assert calls and all(" --gpus=1" in c for c in calls), log[-4000:]
    assert "Invalid generic resource" in log, log[-4000:]
    assert not (tmp_path / "model.txt").exists()


def test_teardown_leaves_no_process(slurm):
    """A second throwaway cluster, torn down while jobs (and a job step) still run: nothing survives."""
    from slurm_cluster import _marked_pids, slurm_cluster

    with slurm_cluster() as other:
        root = other.root
        daemon_pids = [int((root / "run" / f"{d}.pid").read_text()) for d in ("slurmctld", "slurmd", "munged")]
        other.run("sbatch", "-o", "/dev/null", "--wrap", "sleep 600")
        other.run("sbatch", "-o", "/dev/null", "--wrap", "srun -n1 sleep 600")
        deadline = time.monotonic() + 60
        while len(other.run("squeue", "-h", "-t", "R", "-o", "%i").stdout.split()) < 2:
            assert time.monotonic() < deadline, other.run("squeue").stdout
            time.sleep(0.5)
        assert len(_marked_pids(str(root))) >= 2 + len(daemon_pids)
    assert _marked_pids(str(root)) == []
    for pid in daemon_pids:
        assert not Path(f"/proc/{pid}").exists(), f"daemon {pid} survived"
    assert not root.exists()
    # the session cluster is untouched
    assert slurm.run("sinfo", "-h", "-o", "%t").stdout.split() == ["idle"]


SNAKEFILE = REPO / "Snakefile"
# What the real-workflow test builds. The default slice crosses every kind of stage (data, two
# trainings, lines, GI sweeps, a figure; 8 jobs, 3 of them GPU-capable) at a cost CI can afford:
# each SLURM job costs two snakemake start-ups plus status polling, and the whole tiny config is
# ~75 jobs.
SLURM_TARGETS = os.environ.get("GISWEEP_SLURM_TARGETS", "results/figures/fig4_gi_pairs_by_dim.png").split()


def _seconds(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp).timestamp()


def _elapsed_seconds(log_text: str) -> float:
    """snakemake's own `Elapsed time: H:MM:SS.ffffff` (the last one in the log), in seconds."""
    found = re.findall(r"^Elapsed time: (\d+):(\d+):([\d.]+)", log_text, flags=re.M)
    if not found:
        return float("nan")
    h, m, sec = found[-1]
    return 3600 * int(h) + 60 * int(m) + float(sec)


def rule_headers(log_text: str) -> list[tuple[str, str]]:
    """(kind, rule) for each job snakemake started: kind is `rule` (submitted) or `localrule`."""
    return re.findall(r"^(localrule|rule) (\w+):$", log_text, flags=re.M)


@pytest.mark.slow
@pytest.mark.skipif(
    not (SNAKEFILE.exists() and TINY_CONFIG.exists()), reason="needs the Snakefile and tests/configs/tiny.yaml"
)
def test_real_workflow_through_slurm_equals_local_run(slurm, tmp_path):
    """The real workflow on the tiny config (SLURM_TARGETS): once through SLURM (slurm profile),
    once locally (default profile, --cores 2), at the same time. Every job of the SLURM run but
    the local rules went through sbatch and completed there, and both runs write the same Parquet
    tables and model weights (tests/conftest.py: assert_same_results)."""
    # each run in its own snapshot of the project: edits to the checkout while the test runs
    # (or between the two runs' jobs) cannot make the two runs differ
    slurm_dir = copy_project(tmp_path / "slurm")
    local_dir = copy_project(tmp_path / "local")
    seen_before = {j["JobId"] for j in slurm.completed_jobs()}
    start = time.monotonic()
    local = start_snakemake(
        ["--profile", str(REPO / "workflow" / "profiles" / "default"), "--cores", "2",
         *project_args(local_dir), *SLURM_TARGETS],
        env=local_env(), cwd=local_dir, log=tmp_path / "local.log",
    )  # fmt: skip
    try:
        rc, slurm_log = run_snakemake(
            ["--profile", str(SLURM_PROFILE), *POLL, *project_args(slurm_dir), *SLURM_TARGETS],
            env=slurm.env, cwd=slurm_dir, timeout=420, log=tmp_path / "slurm.log", cluster=slurm,
        )  # fmt: skip
        slurm_s = time.monotonic() - start
    finally:
        local_rc, local_log = finish_snakemake(local, 420, tmp_path / "local.log")
    local_s = _elapsed_seconds(local_log)
    assert local_rc == 0, f"local run failed\n{local_log[-6000:]}"
    assert rc == 0, f"SLURM run failed\n{slurm_log[-6000:]}\n{slurm.logs()}"

    # the same jobs ran in both: all locally in one, through sbatch (but for local rules) in the other
    local_jobs = sorted(rule for _, rule in rule_headers(local_log))
    slurm_jobs = rule_headers(slurm_log)
    assert sorted(rule for _, rule in slurm_jobs) == local_jobs
    remote = [rule for kind, rule in slurm_jobs if kind == "rule"]
    submitted = submitted_ids(slurm_log)
    assert len(submitted) == len(remote) > 0, (submitted, slurm_jobs)
    new = {j["JobId"]: j for j in slurm.completed_jobs() if j["JobId"] not in seen_before}
    assert sorted(new) == sorted(submitted)
    assert {j["JobState"] for j in new.values()} == {"COMPLETED"}, new
    durations = sorted(
        (_seconds(j["EndTime"]) - _seconds(j["StartTime"]), j["JobId"]) for j in new.values()
    )
    print(
        f"\nSLURM job run times (s): {[d for d, _ in durations]}"
        f"\nreal workflow: {len(submitted)} SLURM jobs ({', '.join(sorted(set(remote)))}) in {slurm_s:.0f} s;"
        f" {len(local_jobs)} jobs locally in {local_s:.0f} s (both at the same time)"
    )

    # the same Parquet tables (contents and provenance) and the same model weights, bit for bit
    counts = assert_same_results(local_dir, slurm_dir)
    print(f"identical outputs: {counts}")
