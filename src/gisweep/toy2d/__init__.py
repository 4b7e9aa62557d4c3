"""The toy 2-D experiments of Yousefzadeh (2021), sections 3-4: inside vs outside the training hull.

data        the two-class 2-D data set, the evaluation grid, convex-hull membership, comparisons
config      each sweep's settings: defaults and bounds from the config schema (section overparam)
networks    ReLU MLPs 2 -> width x layers -> 1 and their training regimes, batched over regimes
polynomial  Legendre-polynomial decision boundaries (command polynomial-sweep)
separating_qp  the separating fit: least penalty subject to every training point on its side (a QP)
sweep       the network sweep over widths and regimes (command network-sweep)

The figures are drawn from the sweeps' saved tables by gisweep.figures.toy2d.
"""
