"""Run-time choices shared by every stage: device, dtype, seeding, exact matmuls, progress lines."""
from __future__ import annotations

import random
from contextlib import contextmanager

import numpy as np
import torch

from gisweep import GisweepError


def pick_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when present, else CPU; 'cuda' without a GPU is an error, not a fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise GisweepError(f"device '{name}' asked for, but torch sees no CUDA device (use 'auto' or 'cpu')")
    if name != "cpu" and not name.startswith("cuda"):
        raise GisweepError(f"device '{name}' is not one of auto, cpu, cuda, cuda:N")
    return torch.device(name)


def pick_dtype(name: str | torch.dtype) -> torch.dtype:
    """'float64' / 'float32', or torch.float64 / torch.float32 themselves."""
    dtypes = {"float64": torch.float64, "float32": torch.float32}
    if isinstance(name, torch.dtype):
        if name not in dtypes.values():
            raise GisweepError(f"dtype {name} is not torch.float32 or torch.float64")
        return name
    if name not in dtypes:
        raise GisweepError(f"dtype '{name}' is not one of {sorted(dtypes)}")
    return dtypes[name]


@contextmanager
def exact_matmul():
    """Inside: CUDA matmuls and convolutions in full precision (no TF32); the settings are restored after.

    The exact engines (GI knots, hull certificates) compare values to 1e-9; TF32 rounds float32
    products to 10 mantissa bits. On a CPU the flags change nothing.
    """
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a torch Generator for explicit use."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


class Progress:
    """Progress lines on stderr for long loops: at most one every `every` seconds, plus the last."""

    def __init__(self, total: int = 0, label: str = "", enabled: bool = True, every: float = 5.0):
        import time

        self.total, self.label, self.enabled, self.every = total, label, enabled, every
        self.done, self._time = 0, time.monotonic
        self.start = self.last = self._time()

    def update(self, k: int = 1) -> None:
        self.done += k
        now = self._time()
        if self.enabled and (now - self.last >= self.every):
            self.last = now
            self._print(now)

    def note(self, message) -> None:
        """A free line `label: message [elapsed s]`, at most one every `every` seconds (the same clock as
        update). message: a string, or a callable returning one (called only when the line is printed)."""
        now = self._time()
        if self.enabled and now - self.last >= self.every:
            import sys

            self.last = now
            text = message() if callable(message) else message
            print(f"{self.label}: {text} [{now - self.start:.1f} s]", file=sys.stderr, flush=True)

    def _print(self, now) -> None:
        import sys

        pct = 100.0 * self.done / max(self.total, 1)
        rate = self.done / max(now - self.start, 1e-9)
        print(f"{self.label}: {self.done}/{self.total} ({pct:.0f}%), {now - self.start:.1f} s, {rate:.0f}/s",
              file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled:
            self._print(self._time())
