"""Statistics of GI values shared by the summary, the figures and the training-time tables (numpy only)."""
from __future__ import annotations

import numpy as np

# a GI within this relative distance of its line's whole range counts as spanning it (float rounding)
FULL_RANGE_TOL = 1e-12


def spans_full_range(gi, t_min, t_max) -> np.ndarray:
    """[lines] bool: the GI covers the line's whole range t_max - t_min (the class never changes on it)."""
    gi, span = np.asarray(gi, dtype=np.float64), np.asarray(t_max, dtype=np.float64) - np.asarray(t_min, dtype=np.float64)
    return gi >= span * (1 - FULL_RANGE_TOL)
