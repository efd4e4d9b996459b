"""The predictor interface: fit on labelled samples, give the probability that each horizon's return is up.

A sample is one ``(bar, symbol)`` pair, a row of ``rows``. Models read their inputs from a shared cube of
shape ``(T, S, F)`` (features plus regime probabilities): a tabular model takes the row at the sample's bar,
a sequence model the last :attr:`Predictor.window` rows up to and including it. Keeping the cube and the
sample positions apart means no model ever materialises overlapping windows for more samples than it uses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from agents.predictors.labels import check_horizons


def gather(cube: np.ndarray, rows: np.ndarray, window: int = 1) -> np.ndarray:
    """Inputs of the samples ``rows``: ``(N, F)`` for ``window == 1``, else ``(N, window, F)``, oldest first.

    :param cube: ``(T, S, F)`` inputs.
    :param rows: ``(N, 2)`` integer ``(bar, symbol)`` pairs; each bar must be ``>= window - 1``.
    :param window: bars of history per sample.
    """
    t, s = rows[:, 0], rows[:, 1]
    if window == 1:
        return cube[t, s]
    if len(t) and t.min() < window - 1:
        raise ValueError(f"sample at bar {int(t.min())} has fewer than window={window} bars of history")
    steps = t[:, None] + np.arange(1 - window, 1)
    return cube[steps, s[:, None]]


def time_split(
    rows: np.ndarray, labels: np.ndarray, horizons: tuple[int, ...], holdout: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split samples in time: the latest ``holdout`` share of their bars is held out, the rest fits.

    Labels of fitting samples that read a held-out bar are dropped (the walk-forward purge, inside a
    train window), so a score on the held-out part is out of sample.

    :param rows: ``(N, 2)`` ``(bar, symbol)`` samples.
    :param labels: ``(N, H)`` labels.
    :param horizons: the label horizons, to know which bar each label reads last.
    :param holdout: share of the distinct bars, the latest, to hold out.
    :returns: masks of the fitting and held-out samples, and the labels with the purge applied.
    """
    bars = np.unique(rows[:, 0])
    cut = bars[min(int(len(bars) * (1 - holdout)), len(bars) - 1)]
    fitting, held_out = rows[:, 0] < cut, rows[:, 0] >= cut
    label_end = rows[:, :1] + 1 + np.asarray(horizons)
    return fitting, held_out, np.where(label_end >= cut, np.nan, labels)


class Predictor(ABC):
    """A direction classifier for several horizons at once.

    :param horizons: forecast horizons in bars; the output has one column per horizon.
    :param seed: seed of every random choice the model makes.
    """

    #: bars of history per sample (1 for tabular models).
    window: int = 1

    def __init__(self, horizons: tuple[int, ...], seed: int = 0) -> None:
        self.horizons = check_horizons(horizons)
        self.seed = int(seed)

    @abstractmethod
    def fit(self, cube: np.ndarray, rows: np.ndarray, labels: np.ndarray) -> "Predictor":
        """Fit on the samples ``rows``.

        :param cube: ``(T, S, F)`` inputs.
        :param rows: ``(N, 2)`` ``(bar, symbol)`` samples.
        :param labels: ``(N, H)`` direction labels, 1.0 up, 0.0 not, NaN where a horizon has no label.
        """

    @abstractmethod
    def predict_proba(self, cube: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``(N, H)`` probability that each horizon's forward return is positive.

        :param cube: ``(T, S, F)`` inputs.
        :param rows: ``(N, 2)`` ``(bar, symbol)`` samples.
        """


def check_fit_inputs(cube: np.ndarray, rows: np.ndarray, labels: np.ndarray, horizons: tuple[int, ...]) -> None:
    """Raise a clear error when ``fit`` gets inconsistent shapes or no labels.

    :param cube: ``(T, S, F)`` inputs.
    :param rows: ``(N, 2)`` samples.
    :param labels: ``(N, H)`` labels.
    :param horizons: the model's horizons.
    """
    if cube.ndim != 3:
        raise ValueError(f"cube must be (bars, symbols, features), got shape {cube.shape}")
    if rows.ndim != 2 or rows.shape[1] != 2:
        raise ValueError(f"rows must be (N, 2) (bar, symbol) pairs, got shape {rows.shape}")
    if labels.shape != (len(rows), len(horizons)):
        raise ValueError(f"labels must have shape {(len(rows), len(horizons))}, got {labels.shape}")
    empty = [h for h, col in zip(horizons, labels.T) if not np.isfinite(col).any()]
    if empty:
        raise ValueError(f"no labelled samples for horizon(s) {empty}; the train window is too short")
