"""An independent reference for generalization intervals: walk each line piece by piece.

One line at a time, in numpy float64, straight from the torch model's weights. At the current t the
activation pattern just to the right (or left) of t fixes an affine network; the next breakpoint is
the nearest root of any neuron's affine pre-activation, and the class change inside the piece is the
nearest root of a logit difference. A different algorithm from gisweep.gi (which refines all lines
layer by layer), so agreement between the two is evidence, not tautology.
"""
from __future__ import annotations

import numpy as np
from torch import nn


def layers_of(model: nn.Sequential):
    out = []
    for m in model.modules():
        if isinstance(m, nn.Linear):
            w = m.weight.detach().double().numpy()
            b = m.bias.detach().double().numpy() if m.bias is not None else np.zeros(w.shape[0])
            out.append([w, b, False])
        elif isinstance(m, nn.ReLU):
            out[-1][2] = True
    return out


def _affine_pieces(layers, x0, d, t, sign):
    """Pre-activations of every ReLU layer and the logits as (value at t, slope in s), where the
    point is x0 + (t + sign*s) d for small s > 0, with the pattern just beside t on that side."""
    v, g = x0 + t * d, sign * d
    pre = []
    for w, b, relu in layers:
        v, g = w @ v + b, w @ g
        if relu:
            pre.append((v.copy(), g.copy()))
            # a neuron at (numerically) zero is active beside t if it is rising
            tol = 1e-11 * (1.0 + np.abs(v).max())
            active = (v > tol) | ((np.abs(v) <= tol) & (g > 0))
            v, g = np.where(active, v, 0.0), np.where(active, g, 0.0)
    return pre, (v, g)


def _tie_tol(logits):
    """Logits this close count as tied (rounding); a little looser than the engine's 1.8e-12."""
    return 1e-11 * (1.0 + np.abs(logits).max())


def _class_change(lv, lg, c0, t, sign, step):
    """Where class c0 is first beaten on the piece [t, t + sign*step] (logits lv + s*lg), or None.

    Ties go to the lower index: a class below c0 beats it by tying, one above only by exceeding it.
    Margins within a rounding tolerance of 0 count as ties.
    """
    mv, mg = lv[c0] - lv, lg[c0] - lg  # margins at the piece start and their slopes
    k = np.arange(len(mv))
    tol = _tie_tol(lv)
    tie = np.abs(mv) <= tol
    # at t = 0, c0 is the class by definition: only a class taking over right after can end it
    now = np.where(k < c0, (mv <= tol) & (t != 0.0), (mv < -tol) | (tie & (mg < 0)))
    now[c0] = False
    if now.any():
        return t
    with np.errstate(divide="ignore", invalid="ignore"):
        s = -mv / mg
    # a class above c0 that only ties c0 at the piece's end has not taken over; whether it does
    # is the next piece's question
    end_tol = 1e-11 * (1.0 + abs(t) + step)
    reach = np.where(k < c0, s <= step + end_tol, s < step - end_tol)
    cand = (mg < 0) & (s >= 0) & reach & (k != c0)
    if cand.any():
        return t + sign * s[cand].min()
    return None


def walk_line(layers, x0, d, t_min, t_max):
    """(class0, t_lo, t_hi, pieces) for one line."""
    _, (logit0, _) = _affine_pieces(layers, x0, d, 0.0, 1)
    c0 = int(np.argmax(logit0 >= logit0.max() - _tie_tol(logit0)))  # lowest of the (nearly) tied
    steps = {}
    for sign, limit in ((1, t_max), (-1, t_min)):
        t, edge, steps[sign] = 0.0, None, 0
        while sign * (limit - t) > 0:
            pre, (lv, lg) = _affine_pieces(layers, x0, d, t, sign)
            # next breakpoint: the nearest strictly positive root among all neurons
            remaining = sign * (limit - t)
            step = remaining
            for v, g in pre:
                with np.errstate(divide="ignore", invalid="ignore"):
                    s = -v / g
                ok = (g != 0) & (s > 1e-11 * (1.0 + np.abs(v).max()) / (np.abs(g) + 1e-300))
                if ok.any():
                    step = min(step, s[ok].min())
            if edge is None:
                edge = _class_change(lv, lg, c0, t, sign, step)
            # land on the limit exactly when within the breakpoint tolerance of it (sums of steps
            # like 5/6 + 1/6 miss it by an ulp, which would leave a sliver piece)
            near = remaining - step <= 1e-11 * (1.0 + abs(limit))
            t = limit if near else t + sign * step
            steps[sign] += 1
        if edge is None:
            edge = limit
        if sign == 1:
            t_hi = edge
        else:
            t_lo = edge
    pieces = steps[1] + steps[-1]
    if steps[1] and steps[-1] and _pattern(layers, x0, d, 1) == _pattern(layers, x0, d, -1):
        pieces -= 1  # t = 0 is inside one piece
    return c0, t_lo, t_hi, max(pieces, 1)


def _pattern(layers, x0, d, sign):
    pre, _ = _affine_pieces(layers, x0, d, 0.0, sign)
    return tuple(tuple((v > 1e-11) | ((np.abs(v) <= 1e-11) & (g > 0))) for v, g in pre)


def reference_intervals(model, x0, d, t_min, t_max):
    """Arrays (class0, t_lo, t_hi, pieces) for all lines, one line at a time."""
    layers = layers_of(model)
    x0, d = np.asarray(x0, dtype=np.float64), np.asarray(d, dtype=np.float64)
    t_min = np.broadcast_to(np.asarray(t_min, dtype=np.float64), (len(x0),))
    t_max = np.broadcast_to(np.asarray(t_max, dtype=np.float64), (len(x0),))
    rows = [walk_line(layers, x0[i], d[i], t_min[i], t_max[i]) for i in range(len(x0))]
    return tuple(np.array(col) for col in zip(*rows))
