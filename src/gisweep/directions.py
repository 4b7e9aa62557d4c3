"""Directions through input space that are not defined by a pair of samples.

The paper's non-pair lines start at a training sample and follow a direction computed from a class:
its first principal component, a minor component (one with a small eigenvalue, close to a normal of
the data), and the difference of two class means made perpendicular to the first component.
Random directions are Gaussian. Every direction is returned with unit Euclidean norm.
"""
from __future__ import annotations

import numpy as np

from gisweep import GisweepError


def _unit(v: np.ndarray, what: str) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm) or norm == 0.0:
        raise GisweepError(f"{what}: direction has zero length")
    return v / norm


def principal_components(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending) [k] and unit principal directions [k, F] of the rows of x [n, F].

    Only the k = min(n - 1, F) components the samples can span are returned (the rest have
    eigenvalue 0 and arbitrary direction). The sign of each direction is fixed so that its largest
    entry in absolute value is positive, which makes the result reproducible across platforms.
    """
    x = np.asarray(x, dtype=np.float64)
    n, f = x.shape
    if n < 2:
        raise GisweepError(f"principal components need at least 2 samples, got {n}")
    centered = x - x.mean(axis=0)
    # SVD of the centred data: rows of vt are the principal directions
    _, s, vt = np.linalg.svd(centered, full_matrices=False)  # s [min(n,F)], vt [min(n,F), F]
    k = min(n - 1, f)
    values = (s[:k] ** 2) / (n - 1)
    vectors = vt[:k]
    flip = np.sign(vectors[np.arange(k), np.abs(vectors).argmax(axis=1)])
    return values, vectors * flip[:, None]


def class_directions(x_class: np.ndarray, x_other: np.ndarray, minor_rank: int = -1) -> dict[str, np.ndarray]:
    """The paper's three class directions, each a unit vector [F].

    pc1:    first principal component of x_class [n, F].
    minor:  the principal component at position `minor_rank` in descending eigenvalue order among
            those the samples span (default -1: the smallest non-zero eigenvalue).
    perp:   mean(x_other) - mean(x_class), minus its projection on pc1.
    """
    values, vectors = principal_components(x_class)
    positive = np.flatnonzero(values > values[0] * 1e-12)
    if not -len(positive) <= minor_rank < len(positive):
        raise GisweepError(f"minor_rank {minor_rank}: the class spans only {len(positive)} components")
    pc1 = vectors[0]
    minor = vectors[positive[minor_rank]]
    diff = np.asarray(x_other, np.float64).mean(axis=0) - np.asarray(x_class, np.float64).mean(axis=0)
    perp = _unit(diff - (diff @ pc1) * pc1, "mean difference perpendicular to pc1")
    return {"pc1": pc1, "perp": perp, "minor": minor}


def random_directions(n: int, features: int, seed: int) -> np.ndarray:
    """n unit vectors [n, F], Gaussian, fixed by seed."""
    d = np.random.default_rng([seed, 0xD1]).standard_normal((n, features))
    return d / np.linalg.norm(d, axis=1, keepdims=True)
