"""What every figure shares: the non-interactive backend, label colours and the atomic save."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from gisweep.io import atomic_path  # noqa: E402

LABEL_COLORS = {"real": "tab:blue", "random": "tab:red"}


def save_figure(fig, out) -> None:
    """Write `fig` to `out` (format from the suffix) through a temporary file, then close it."""
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=out.suffix.lstrip(".") or "png", dpi=150, bbox_inches="tight")
    plt.close(fig)
