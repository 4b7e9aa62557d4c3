"""A real, throwaway, single-node SLURM cluster on localhost, for tests.

`slurm_cluster()` is a context manager; `slurm` (below) is the session-scoped
pytest fixture built on it. It

1. installs the Debian packages (slurmctld, slurmd, slurm-client, munge) with
   apt-get when `slurmctld` is missing; without root, or when apt-get fails, it
   raises `SlurmUnavailable` (the fixture turns that into a skip, or into an
   error when GISWEEP_REQUIRE_SLURM=1, which CI sets so the test cannot
   silently skip);
2. writes a munge key and a slurm.conf under a fresh temporary directory
   (nothing under /etc is touched; free TCP ports are picked, so a system
   SLURM or a second test session does not collide with this one);
3. starts munged, slurmctld and slurmd in the foreground as child processes
   (they also write pid files), and waits until `sinfo` shows the node idle;
4. yields a `SlurmCluster` whose `env` is the environment to run `sbatch`,
   `snakemake --executor slurm`, ... with: SLURM_CONF points at the temporary
   slurm.conf and PATH starts with a directory of wrappers (`srun`, `sbatch`,
   `squeue`, ...) that set SLURM_CONF themselves. The wrappers matter: the
   Snakemake SLURM job step deletes every SLURM_* variable before its inner
   `srun`, which would otherwise look for /etc/slurm/slurm.conf and fail;
5. on exit (also on errors and Ctrl-C) cancels the cluster's jobs, stops the
   daemons by PID (SIGTERM, wait, SIGKILL), kills any process left that
   carries this cluster's marker variable in its environment (slurmstepd and
   job processes, which are not our children), and removes the directory.
   Children also get PR_SET_PDEATHSIG, so the daemons die with the test
   process even when it is killed with SIGKILL.

Settings follow /work/shared/notes/slurm-ci.md (measured on a machine of this
kind), except that the node declares at least MIN_SLOTS CPUs and MEM_PER_SLOT_MB
per CPU (see `write_config`) and the scheduler starts jobs without its usual
delays. Completed jobs stay visible to `squeue`/`scontrol` for `min_job_age`
seconds (the SLURM executor's squeue status check relies on it), and every
finished job is appended to `jobcomp.txt` (jobcomp/filetxt), a durable record
tests use to prove and count what went through the scheduler.

Debugging: GISWEEP_SLURM_KEEP=1 keeps the temporary directory (logs, conf).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
CLIENT_COMMANDS = ["srun", "sbatch", "squeue", "scancel", "scontrol", "sinfo", "sacct"]
MARKER = "GISWEEP_SLURM_TEST_CLUSTER"  # env var naming the cluster root in every process we start
PARTITION = "gisweep"
MIN_SLOTS = 4  # job slots the test node declares at least (see write_config)
MEM_PER_SLOT_MB = 4096  # memory the test node declares at least per slot (see write_config)


class SlurmUnavailable(RuntimeError):
    """SLURM cannot be installed or started here (not root, apt-get failed)."""


@dataclass
class SlurmCluster:
    root: Path  # temporary directory holding conf, keys, state, logs
    conf: Path  # slurm.conf
    bin_dir: Path  # wrappers that set SLURM_CONF; first on PATH in `env`
    node: str
    partition: str
    cpus: int
    mem_mb: int
    min_job_age: int
    env: dict[str, str] = field(repr=False)

    @property
    def jobcomp_path(self) -> Path:
        return self.root / "log" / "jobcomp.txt"

    def run(self, *cmd: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
        """Run a command with the cluster's environment; return the completed process."""
        return subprocess.run(
            list(cmd), env=self.env, capture_output=True, text=True, timeout=timeout, check=check
        )

    def completed_jobs(self) -> list[dict[str, str]]:
        """Every job slurmctld has finished so far, one dict per job (JobId, Name, JobState, ...)."""
        if not self.jobcomp_path.exists():
            return []
        jobs = []
        for line in self.jobcomp_path.read_text().splitlines():
            # `Key=value Key=value ...`; values hold no spaces except in a few fields we don't use
            jobs.append(dict(re.findall(r"(\w+)=(\S*)", line)))
        return jobs

    def job_fields(self, job_id: str) -> dict[str, str]:
        """`scontrol show job` of one job as a dict (only while it is younger than MinJobAge)."""
        out = self.run("scontrol", "-o", "show", "job", str(job_id)).stdout
        return dict(re.findall(r"(\w+)=(\S*)", out))

    def logs(self, tail_lines: int = 40) -> str:
        """The last lines of every daemon log, for error messages."""
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            if path.is_file() and path.name != "jobcomp.txt":
                lines = path.read_text(errors="replace").splitlines()[-tail_lines:]
                parts.append(f"--- {path} (last {len(lines)} lines)\n" + "\n".join(lines))
        return "\n".join(parts)


def _which_all() -> bool:
    return all(shutil.which(c) for c in ["slurmctld", "slurmd", "munged", "sbatch", "sinfo"])


def ensure_installed(timeout: float = 600) -> None:
    """Install the Debian SLURM and munge packages if missing; raise SlurmUnavailable if impossible."""
    if os.geteuid() != 0:
        raise SlurmUnavailable("the test cluster needs root (slurmd launches jobs; apt-get installs SLURM)")
    if _which_all():
        return
    if not shutil.which("apt-get"):
        raise SlurmUnavailable("SLURM is not installed and there is no apt-get to install it")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES],
    ):
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise SlurmUnavailable(f"`{' '.join(cmd)}` failed: {err}") from err
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
            raise SlurmUnavailable(f"`{' '.join(cmd)}` exited {proc.returncode}:\n{tail}")
    if not _which_all():
        raise SlurmUnavailable(f"apt-get installed {PACKAGES} but slurmctld/slurmd/munged are not on PATH")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mem_available_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM when the test process dies, even by SIGKILL."""
    PR_SET_PDEATHSIG = 1
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def write_config(root: Path, min_job_age: int = 300, cpus: int | None = None) -> dict:
    """Write munge key, slurm.conf and client wrappers under `root`; return the layout.

    cpus: job slots of the node; default max(nproc, MIN_SLOTS). More slots than cores are
    declared with SlurmdParameters=config_overrides (slurmd trusts slurm.conf, so the node is
    not drained for having fewer cores than declared): a 2-core CI machine then runs a stage's
    independent single-thread jobs in one wave instead of two, and each wave costs at least
    one status-check interval of the executor plugin.
    """
    node = socket.gethostname().split(".")[0]
    cpus = cpus or max(len(os.sched_getaffinity(0)), MIN_SLOTS)
    # 90% of the memory free now; but at least MEM_PER_SLOT_MB per slot, so that jobs asking for
    # the SLURM profile's default (4000 MB) fill every slot on a small CI machine too. Nothing
    # enforces memory here (no cgroups) and config_overrides keeps slurmd from objecting.
    mem_mb = max(int(0.9 * _mem_available_mb()), MEM_PER_SLOT_MB * cpus)
    dirs = {name: root / name for name in ["munge-key", "munge-run", "state", "spool", "log", "run", "bin"]}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    # munged: the key in a 700 directory, the socket in a 755 one (it refuses otherwise)
    root.chmod(0o755)
    dirs["munge-key"].chmod(0o700)
    dirs["munge-run"].chmod(0o755)
    key = dirs["munge-key"] / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    munge_socket = dirs["munge-run"] / "munge.socket"

    log, run = dirs["log"], dirs["run"]
    conf = root / "slurm.conf"
    conf.write_text(
        f"""# written by tests/slurm_cluster.py for one test session
ClusterName=gisweeptest
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdParameters=config_overrides
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# a line per finished job: proof (and count) of what went through the scheduler
JobCompType=jobcomp/filetxt
JobCompLoc={log / "jobcomp.txt"}
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
# a job without --mem gets this much per CPU, not the whole node
DefMemPerCPU={max(100, mem_mb // (2 * cpus))}
SchedulerType=sched/builtin
# start jobs as soon as they are submitted or a CPU frees up (defaults wait up to 3 s)
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,sched_interval=1
ReturnToService=2
# finished jobs stay visible to squeue/scontrol this long (the executor's squeue status check needs it)
MinJobAge={min_job_age}
MpiDefault=none
MailProg=/bin/true
KillWait=5
InactiveLimit=0
Waittime=0
StateSaveLocation={dirs["state"]}
SlurmdSpoolDir={dirs["spool"]}
SlurmctldPidFile={run / "slurmctld.pid"}
SlurmdPidFile={run / "slurmd.pid"}
SlurmctldLogFile={log / "slurmctld.log"}
SlurmdLogFile={log / "slurmd.log"}
SlurmctldDebug=info
SlurmdDebug=info
NodeName={node} NodeAddr=127.0.0.1 NodeHostname={node} CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""
    )
    # wrappers: SLURM_CONF survives the job step's scrubbing of SLURM_* variables
    for name in CLIENT_COMMANDS:
        real = shutil.which(name)
        if real:
            wrapper = dirs["bin"] / name
            wrapper.write_text(f'#!/bin/sh\nSLURM_CONF={conf}\nexport SLURM_CONF\nexec {real} "$@"\n')
            wrapper.chmod(0o755)
    return dict(conf=conf, node=node, cpus=cpus, mem_mb=mem_mb, munge_socket=munge_socket, key=key, **dirs)


def _marked_pids(marker_value: str) -> list[int]:
    """PIDs (not ours) whose environment carries MARKER=marker_value."""
    needle = f"{MARKER}={marker_value}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _stop(proc: subprocess.Popen, grace: float = 10) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=10)


def _wait_for(predicate, timeout: float, what: str, cluster: SlurmCluster, procs: dict) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with status {proc.returncode} while waiting for {what}\n{cluster.logs()}"
                )
        ok, last = predicate()
        if ok:
            return
        time.sleep(0.5)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}\n{cluster.logs()}")


@contextlib.contextmanager
def slurm_cluster(
    start_timeout: float = 90, min_job_age: int = 300, cpus: int | None = None
) -> Iterator[SlurmCluster]:
    """Bring up munged + slurmctld + slurmd on localhost; tear everything down on exit."""
    ensure_installed()
    root = Path(tempfile.mkdtemp(prefix="gisweep-slurm-"))
    procs: dict[str, subprocess.Popen] = {}
    cluster = None
    try:
        layout = write_config(root, min_job_age=min_job_age, cpus=cpus)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SQUEUE_"))}
        env.update(
            SLURM_CONF=str(layout["conf"]),
            PATH=f"{layout['bin']}{os.pathsep}{os.environ.get('PATH', '')}",
            **{MARKER: str(root)},
        )
        cluster = SlurmCluster(
            root=root,
            conf=layout["conf"],
            bin_dir=layout["bin"],
            node=layout["node"],
            partition=PARTITION,
            cpus=layout["cpus"],
            mem_mb=layout["mem_mb"],
            min_job_age=min_job_age,
            env=env,
        )
        log = layout["log"]

        def start(name: str, cmd: list[str]) -> None:
            out = open(log / f"{name}.stdout", "w")
            procs[name] = subprocess.Popen(
                cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent,
            )
            out.close()

        start("munged", [
            shutil.which("munged"), "--foreground", "--force",
            f"--socket={layout['munge_socket']}", f"--key-file={layout['key']}",
            f"--pid-file={layout['run'] / 'munged.pid'}", f"--log-file={log / 'munged.log'}",
            f"--seed-file={layout['munge-run'] / 'munged.seed'}",
        ])  # fmt: skip

        def munge_ok():
            enc = subprocess.run(["munge", "-n", "-S", str(layout["munge_socket"])], capture_output=True)
            if enc.returncode != 0:
                return False, enc.stderr.decode(errors="replace")
            dec = subprocess.run(["unmunge", "-S", str(layout["munge_socket"])], input=enc.stdout, capture_output=True)
            return dec.returncode == 0, dec.stderr.decode(errors="replace")

        _wait_for(munge_ok, 20, "munged to answer", cluster, procs)

        start("slurmctld", [shutil.which("slurmctld"), "-D", "-i", "-f", str(layout["conf"])])

        def ctld_ok():
            p = subprocess.run(["scontrol", "ping"], env=env, capture_output=True, text=True, timeout=10)
            return "UP" in p.stdout, p.stdout + p.stderr

        _wait_for(ctld_ok, start_timeout, "slurmctld to answer `scontrol ping`", cluster, procs)

        start("slurmd", [shutil.which("slurmd"), "-D", "-f", str(layout["conf"]), "-N", layout["node"]])

        def node_idle():
            p = subprocess.run(
                ["sinfo", "-h", "-N", "-n", layout["node"], "-o", "%t"], env=env, capture_output=True, text=True,
                timeout=10,
            )
            state = p.stdout.strip()
            if state in ("down", "down*", "drain", "drng", "inval"):
                # ReturnToService=2 should do this itself; nudge it in case slurmd registered late
                subprocess.run(
                    ["scontrol", "update", f"NodeName={layout['node']}", "State=RESUME"],
                    env=env, capture_output=True, timeout=10,
                )
            return state == "idle", state + p.stderr

        _wait_for(node_idle, start_timeout, f"node {layout['node']} to be idle in `sinfo`", cluster, procs)
        yield cluster
    finally:
        _teardown(root, procs, cluster)


def _teardown(root: Path, procs: dict, cluster: SlurmCluster | None) -> None:
    if cluster is not None and procs.get("slurmctld") and procs["slurmctld"].poll() is None:
        with contextlib.suppress(Exception):
            ids = cluster.run("squeue", "-h", "-o", "%i", timeout=10, check=False).stdout.split()
            if ids:
                cluster.run("scancel", *ids, timeout=10, check=False)
    # daemons in reverse start order, by PID: SIGTERM, wait, SIGKILL
    for name in ["slurmd", "slurmctld", "munged"]:
        if name in procs:
            with contextlib.suppress(Exception):
                _stop(procs[name])
    # slurmstepd and job processes are not our children; they carry the marker in their environment
    for attempt in range(3):
        pids = _marked_pids(str(root))
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM if attempt == 0 else signal.SIGKILL)
        time.sleep(1)
    if os.environ.get("GISWEEP_SLURM_KEEP") != "1":
        shutil.rmtree(root, ignore_errors=True)


def _pytest_fixture():
    import pytest

    @pytest.fixture(scope="session")
    def slurm():
        """A running single-node SLURM (see module docstring); skips when it cannot be installed."""
        try:
            with slurm_cluster() as cluster:
                yield cluster
        except SlurmUnavailable as err:
            if os.environ.get("GISWEEP_REQUIRE_SLURM") == "1":
                raise
            pytest.skip(f"no SLURM for this test: {err}")

    return slurm


try:  # importable without pytest, e.g. `python tests/slurm_cluster.py`
    slurm = _pytest_fixture()
except ImportError:  # pragma: no cover
    pass


if __name__ == "__main__":  # manual check: bring a cluster up, show it, tear it down
    with slurm_cluster() as c:
        print(c)
        print(c.run("sinfo").stdout)
        job = c.run("sbatch", "--parsable", "--wrap", "hostname").stdout.strip()
        print("submitted", job)
        time.sleep(3)
        print(c.run("scontrol", "show", "job", job).stdout)
        print(c.completed_jobs())
