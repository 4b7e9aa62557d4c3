"""What every figure shares: the non-interactive backend, label colours and the atomic save."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from gisweep.io import atomic_path  # noqa: E402

LABEL_COLORS = {"real": "tab:blue", "random": "tab:red"}


# What makes two saves of the same figure differ, per format: PDF stores its creation date, SVG its
# date and ids drawn from a random salt. PNG (Agg) stores only the constant 'Software' entry.
_REPRODUCIBLE_METADATA = {"pdf": {"CreationDate": None}, "svg": {"Date": None}}
_SVG_HASHSALT = "gisweep"


def save_figure(fig, out) -> None:
    """Write `fig` to `out` (format from the suffix) through a temporary file, then close it.

    The same figure gives the same bytes on every run, in every format the config offers (png,
    pdf, svg): no date is written and SVG ids come from a fixed salt.
    """
    out = Path(out)
    fmt = out.suffix.lstrip(".").lower() or "png"
    with atomic_path(out) as tmp, plt.rc_context({"svg.hashsalt": _SVG_HASHSALT}):
        fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight", metadata=_REPRODUCIBLE_METADATA.get(fmt))
    plt.close(fig)
