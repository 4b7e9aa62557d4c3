"""The network sweep (command network-sweep): MLPs from under- to over-parameterized, inside vs outside the hull.

Yousefzadeh (2021), section 4. For every hidden width, one MLP per training regime is trained on
the toy 2-D data (gisweep.toy2d.data; all regimes of a width at once, gisweep.toy2d.networks), and
its classes are compared, on a grid and on test points, inside and outside the training hull:
reference == "truth" compares the regime's classifier with the true curve (grid error, test
accuracy); reference == <an earlier regime> compares two regimes' decision regions.
Outputs: the metrics table and the decision regions on the grid, both drawn by
gisweep.figures.toy2d.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from gisweep.toy2d.config import parse_config_json, resolve
from gisweep.toy2d.data import (
    compare_rows,
    curve_rows,
    hull_mask,
    make_grid,
    make_test_data,
    make_training_data,
    masked_mean,
    true_labels,
)


def network_sweep(cfg: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train every (width, regime) MLP on the shared 2-D data; measure inside vs outside the hull.

    cfg: config['overparam']['network'] (missing keys take the schema's defaults).
    Returns (metrics_df, regions_df).
    metrics_df: one row per (width, regime, reference); reference 'truth' or an earlier regime.
      width, hidden_layers, n_params, n_train, param_ratio (= n_params / n_train), regime,
      reference, train_acc, train_loss, test_acc_inside, test_acc_outside, n_test_inside,
      n_test_outside (the regime's own, repeated over its reference rows),
      region_disagree_inside / _outside (fraction of grid points inside / outside the training
      hull where the regime's class differs from the reference's: uniform over area),
      test_disagree_inside / _outside (the same over the test points: weighted by the data
      distribution; against 'truth' it is the test error).
    regions_df: kind 'grid' (width, n_params, regime, x1, x2, label = predicted class,
      inside_hull), plus kind 'train' and 'true_curve' rows (width 0, regime '') for plots.
    """
    import torch

    from gisweep import GisweepError
    from gisweep.runtime import pick_device

    cfg = resolve({} if cfg is None else cfg, "network")
    try:
        device = pick_device(cfg["device"])
    except GisweepError as e:
        raise GisweepError(f"overparam.network.device: {e}") from None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: extra threads only spin, and badly so on shared cores
    try:
        return _network_sweep(cfg, device)
    finally:
        torch.set_num_threads(threads)


def _network_sweep(cfg: dict, device) -> tuple[pd.DataFrame, pd.DataFrame]:
    import torch

    from gisweep.toy2d.networks import batched_mlp_params, mlp_param_count, predict_batched, train_mlps_batched

    dtype = torch.float32
    train_xy, train_y = make_training_data(cfg)
    test_xy, test_y = make_test_data(train_xy, cfg)
    test_inside = hull_mask(train_xy, test_xy)
    _, _, grid = make_grid(train_xy, cfg["outside_extent"], cfg["grid_size"])
    grid_inside = hull_mask(train_xy, grid)
    grid_truth = true_labels(grid, cfg)

    xy_t = torch.tensor(train_xy, dtype=dtype, device=device)
    y01_t = torch.tensor((train_y + 1) // 2, dtype=dtype, device=device)
    test_t = torch.tensor(test_xy, dtype=dtype, device=device)
    grid_t = torch.tensor(grid, dtype=dtype, device=device)
    names = [r["name"] for r in cfg["regimes"]]
    n = cfg["n_train"]

    metric_rows, region_frames = [], []
    for width in cfg["widths"]:
        n_params = mlp_param_count(width, cfg["hidden_layers"])
        init = [p.to(device) for p in batched_mlp_params(width, cfg["hidden_layers"], cfg["regimes"], cfg["seed"], dtype)]
        params, loss = train_mlps_batched(init, xy_t, y01_t, cfg["regimes"], cfg["steps"])
        train_pred = predict_batched(params, xy_t)                           # (R, n)
        test_pred = predict_batched(params, test_t)                          # (R, n_test)
        grid_pred = predict_batched(params, grid_t)                          # (R, grid_size**2)
        own, preds, test_preds = {}, {}, {}
        for r, name in enumerate(names):
            preds[name], test_preds[name] = grid_pred[r], test_pred[r]
            test_hits = test_pred[r] == test_y                               # (n_test,) bool
            own[name] = {
                "train_acc": float(np.mean(train_pred[r] == train_y)),
                "train_loss": float(loss[r]),
                "test_acc_inside": masked_mean(test_hits, test_inside),
                "test_acc_outside": masked_mean(test_hits, ~test_inside),
                "n_test_inside": int(test_inside.sum()),
                "n_test_outside": int((~test_inside).sum()),
            }
            region_frames.append(pd.DataFrame({
                "kind": "grid", "width": width, "n_params": n_params, "regime": name,
                "x1": grid[:, 0], "x2": grid[:, 1], "label": grid_pred[r],
                "inside_hull": grid_inside,
            }))
        sets = {"region": (preds, grid_truth, grid_inside), "test": (test_preds, test_y, test_inside)}
        for row in compare_rows(names, sets):
            metric_rows.append({
                "width": width, "hidden_layers": cfg["hidden_layers"], "n_params": n_params,
                "n_train": n, "param_ratio": n_params / n, **row, **own[row["regime"]],
            })

    extra = curve_rows(train_xy, train_y, cfg)
    extra = extra.assign(width=0, n_params=0, regime="", inside_hull=True)
    regions = pd.concat(region_frames + [extra[region_frames[0].columns]], ignore_index=True)
    regions = regions.astype({"width": np.int64, "n_params": np.int64, "label": np.int8, "inside_hull": bool})
    return pd.DataFrame(metric_rows), regions


def summarize_network(metrics: pd.DataFrame) -> str:
    """Plain-text table of the measured numbers the two claims rest on: per width, the training
    accuracy of each regime, test accuracy inside/outside the hull (mean over regimes), and the
    disagreement between regimes (mean over all regime pairs) inside/outside, on the grid and on
    the test points."""
    own = metrics[metrics["reference"] == "truth"]
    pairs = metrics[metrics["reference"] != "truth"]
    lines = ["width n_params ratio | train_acc per regime | test_acc in / out | "
             "pair disagreement grid in / out | test in / out"]
    for width, g in own.groupby("width", sort=True):
        pr = pairs[pairs["width"] == width]
        pair_s = (f"{pr.region_disagree_inside.mean():.4f} / {pr.region_disagree_outside.mean():.4f} | "
                  f"{pr.test_disagree_inside.mean():.4f} / {pr.test_disagree_outside.mean():.4f}"
                  if len(pr) else "- | -")
        lines.append(
            f"{width:5d} {int(g.n_params.iloc[0]):8d} {g.param_ratio.iloc[0]:7.2f} | "
            + " ".join(f"{a:.3f}" for a in g.train_acc)
            + f" | {g.test_acc_inside.mean():.3f} / {g.test_acc_outside.mean():.3f} | " + pair_s
        )
    return "\n".join(lines)


def _cmd_network_sweep(args) -> None:
    from gisweep.io import provenance, write_parquet

    cfg = parse_config_json(args.config_json, "network")
    metrics, regions = network_sweep(cfg)
    meta = provenance(stage="network_sweep", config=cfg, seed=cfg["seed"], device=cfg["device"])
    write_parquet(metrics, args.out_metrics, meta)
    write_parquet(regions, args.out_regions, meta)
    print(summarize_network(metrics))


def register_cli(subparsers) -> None:
    p = subparsers.add_parser("network-sweep", help="train MLPs across widths and regimes; inside vs outside the hull")
    p.add_argument("--config-json", default="{}",
                   help="JSON object: config overparam.network (missing keys take the schema's defaults)")
    p.add_argument("--out-metrics", required=True, help="output Parquet: per (width, regime, reference) metrics")
    p.add_argument("--out-regions", required=True,
                   help="output Parquet: decision regions on the grid, training points, true curve")
    p.set_defaults(func=_cmd_network_sweep)
