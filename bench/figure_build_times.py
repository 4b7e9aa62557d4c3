"""Build time of every figure and table target from scratch, measured from a completed run.

Run it in a working directory where `snakemake` has built the default targets. For each target under
results/figures/ and results/tables/ it asks Snakemake which jobs building that target from scratch
involves (`snakemake -n --forceall TARGET`), and adds up those jobs' run times as Snakemake recorded
them (start and end time in .snakemake/metadata). The sum is the time the target takes from scratch
with one job at a time; `--cores 2` can overlap independent jobs. Also prints the whole run's span.

    python bench/figure_build_times.py [--snakefile Snakefile] [--markdown]
"""
from __future__ import annotations

import argparse
import base64
import json
import re
import subprocess
import sys
from pathlib import Path


def job_times(metadata: Path) -> dict[str, tuple[float, float]]:
    """(start, end) time of the job that wrote each output file, from Snakemake's metadata."""
    times = {}
    for f in metadata.iterdir():
        try:
            path = base64.b64decode(f.name.replace("@", "/")).decode()
            record = json.loads(f.read_text())
        except (ValueError, UnicodeDecodeError):
            continue
        if record.get("starttime") and record.get("endtime"):
            times[path] = (record["starttime"], record["endtime"])
    return times


def jobs_for(target: str, snakefile: str) -> list[list[str]]:
    """The outputs of every job that building `target` from scratch runs (one list per job)."""
    proc = subprocess.run(["snakemake", "-s", snakefile, "-n", "--forceall", target],
                          capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"snakemake -n {target} failed:\n{proc.stderr[-2000:]}")
    jobs = []
    for line in proc.stdout.splitlines():
        m = re.match(r"^\s+output: (.*)$", line)
        if m:
            jobs.append([p.strip() for p in m.group(1).split(",") if p.strip()])
    return jobs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--snakefile", default="Snakefile")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = ap.parse_args(argv)
    times = job_times(Path(".snakemake/metadata"))
    if not times:
        sys.exit("no job records in .snakemake/metadata: run snakemake here first")
    targets = sorted(str(p) for d in ("results/figures", "results/tables") for p in Path(d).glob("*")
                     if p.suffix in {".png", ".pdf", ".svg", ".parquet"})
    rows = []
    for target in targets:
        jobs = jobs_for(target, args.snakefile)
        spans = [next((times[o] for o in outs if o in times), None) for outs in jobs]
        known = [end - start for s in spans if s for start, end in [s]]
        rows.append((target, len(jobs), len(known), sum(known)))
    start = min(s for s, _ in times.values())
    end = max(e for _, e in times.values())
    if args.markdown:
        print("| target | jobs from scratch | summed job time |\n|---|---:|---:|")
        for target, n, k, secs in rows:
            note = "" if k == n else f" ({n - k} jobs without a record)"
            print(f"| `{target}` | {n} | {secs / 60:.1f} min{note} |")
    else:
        for target, n, k, secs in rows:
            print(f"{target}: {n} jobs, {k} recorded, {secs:.0f} s summed")
    print(f"\nwhole run: first job start to last job end {(end - start) / 60:.1f} min, "
          f"{sum(e - s for s, e in set(times.values())) / 60:.1f} min of job time summed over {len(set(times.values()))} job records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
