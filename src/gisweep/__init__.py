"""gisweep: generalization intervals and convex-hull distances of trained ReLU classifiers."""

__version__ = "0.1.0"


class GisweepError(Exception):
    """An error the user can act on: bad input file, bad config value, impossible request.

    The message names the file, key or value at fault; the CLI prints it without a traceback.
    """
