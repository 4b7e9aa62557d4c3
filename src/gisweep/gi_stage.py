"""The batched-GI stage: every line of a model through the exact engine, one Parquet per lines file.

Output `.../gi_{family}.parquet`: the lines table's columns (all but the direction vectors `d`,
which stay in the lines file) plus `class0`, `t_lo`, `t_hi`, `gi`, `pieces` (see gisweep.gi). Any
line family works: gisweep.lines.materialize turns each row into x0 and d.
"""
from __future__ import annotations

import time
from os import PathLike

from gisweep import GisweepError
from gisweep.data import load_table
from gisweep.gi import exact_intervals
from gisweep.io import provenance, write_parquet
from gisweep.lines import materialize, read_lines
from gisweep.models import load_network, load_record
from gisweep.runtime import pick_device, pick_dtype
from gisweep.schema import integer, schema_number


def batched_gi(model_path, data_path, lines_path, out, *, device: str = "auto", dtype: str = "float64",
               memory_mb: float | None = None, threads: int | None = None) -> None:
    """GI of every line of one model: `lines_path` and `out` are one lines file and its GI file, or
    equal-length lists (one per family; the model and data are read once, each file is swept alone)."""
    import torch

    lines_paths, outs = ([lines_path], [out]) if isinstance(out, (str, PathLike)) else (list(lines_path), list(out))
    if len(lines_paths) != len(outs):
        raise GisweepError(f"{len(lines_paths)} lines files but {len(outs)} outputs: give one --out per input")
    if len(set(map(str, outs))) != len(outs):
        raise GisweepError(f"output files {[str(o) for o in outs]}: each lines file needs its own --out")
    if threads:
        torch.set_num_threads(threads)
    dev, dt = pick_device(device), pick_dtype(dtype)
    record = load_record(model_path)
    model = load_network(model_path, record)  # an MLP or a CNN
    x_train, _, _, _ = load_table(data_path)
    train_meta = record.get("meta", {})
    # Every lines file is read and matched to the data before the first sweep, so a bad one fails the
    # job before any output is written. The tables are kept; their tensors are rebuilt per sweep, so
    # only one file's start points and directions are in memory at a time.
    tables = [_checked_lines(lines_file, x_train, dt) for lines_file in lines_paths]
    for lines_file, out_file, lines in zip(lines_paths, outs, tables):
        x0, d, t_min, t_max = materialize(lines, x_train, dtype=dt)
        start = time.perf_counter()
        result = exact_intervals(model, x0.to(dev), d.to(dev), t_min.to(dev), t_max.to(dev), dtype=dt,
                                 memory_mb=memory_mb, progress=f"{out_file}")
        seconds = time.perf_counter() - start
        df = lines.drop(columns=["d"], errors="ignore").join(result.to_frame())
        families = sorted(set(lines["family"].astype(str))) if len(lines) else []
        meta = provenance(stage="batched_gi", model=str(model_path), lines=str(lines_file), device=str(dev),
                          families=families, dtype=dtype, memory_mb=memory_mb,
                          seed=train_meta.get("seed"), converged=train_meta.get("converged"))
        write_parquet(df, out_file, meta)
        rate = len(df) / max(seconds, 1e-9)
        print(f"{out_file}: {len(df)} lines in {seconds:.2f} s ({rate:.0f} lines/s), mean GI {df.gi.mean():.4f}, "
              f"median {df.gi.median():.4f}, mean pieces {df.pieces.mean():.1f}")


def _checked_lines(lines_file, x_train, dtype):
    """The lines table of `lines_file`, checked to describe lines of `x_train`; errors name the file."""
    lines = read_lines(lines_file)
    try:
        materialize(lines, x_train, dtype=dtype)
    except GisweepError as e:
        raise GisweepError(f"{lines_file}: {e}") from None
    return lines


def register_cli(sub) -> None:
    p = sub.add_parser("batched-gi", help="exact GI of every line of a model")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--inputs", nargs="+", required=True, help="lines files (one per family)")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--memory-mb", type=schema_number("gi.memory_mb"), default=None,
                   help="working-set budget in MiB (default: 1024 on a CPU, half the free GPU memory on CUDA)")
    p.add_argument("--threads", type=integer(minimum=1), default=None)
    p.add_argument("--out", nargs="+", required=True, help="one GI file per --inputs file, in the same order")
    p.set_defaults(func=lambda a: batched_gi(a.model, a.data, a.inputs, a.out, device=a.device, dtype=a.dtype,
                                             memory_mb=a.memory_mb, threads=a.threads))
