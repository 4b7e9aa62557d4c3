"""Plotting only: every module here reads saved tables and writes one figure file.

Nothing outside this package imports matplotlib or seaborn; compute stages never import it.
`common` holds what every figure shares (the Agg backend, colours, the atomic save).
"""
