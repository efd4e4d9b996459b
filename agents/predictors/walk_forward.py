"""Walk-forward training: fit on each train window, forecast only the test window that follows it.

The folds come from :class:`envs.data.splits.WalkForward` (rolling or anchored, with an optional embargo
``gap``). Inside every train window the labels are cut at the window's end (see
:meth:`~agents.predictors.labels.Labels.until`), so no label reads a bar of the test window or later. Each
fold's fitted pipeline goes into the schedule with the bar from which it is used (its test window's first
bar); an optional final fit on the last train window is used after the data ends, which is what a deployed
policy trades with.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from agents.predictors.inputs import Inputs
from agents.predictors.labels import Labels
from agents.predictors.pipeline import PredictorPipeline
from agents.predictors.scoring import score
from envs.data.splits import Split, WalkForward

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScheduledModel:
    """A fitted pipeline and when it trades: for bars strictly after ``active_after``.

    :param active_after: timestamp of the last bar before the model's first use.
    :param pipeline: the fitted pipeline.
    :param train_start: timestamp of the first train bar.
    :param train_end: timestamp of the last train bar.
    """

    active_after: pd.Timestamp
    pipeline: PredictorPipeline
    train_start: pd.Timestamp
    train_end: pd.Timestamp


@dataclass
class WalkForwardResult:
    """What a walk-forward run produced.

    :param probabilities: ``(T, S, H)`` out-of-sample up-probabilities, NaN outside the test windows.
    :param labels: the labels the forecasts are scored against.
    :param splits: the folds.
    :param schedule: one fitted pipeline per fold (and the final fit, if any), oldest first.
    :param fold_metrics: per fold, the :func:`~agents.predictors.scoring.score` of its test window.
    :param metrics: the score over every test window together.
    """

    probabilities: np.ndarray
    labels: Labels
    splits: list[Split]
    schedule: list[ScheduledModel]
    fold_metrics: list[dict[str, dict[str, float]]] = field(default_factory=list)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def first_test_bar(self) -> int:
        """First bar that has an out-of-sample forecast (the start of an honest backtest)."""
        return self.splits[0].test.start


def walk_forward(
    pipeline: PredictorPipeline,
    inputs: Inputs,
    labels: Labels,
    splits: WalkForward,
    refit_final: bool = True,
    progress: bool = True,
    on_fold: Callable[[int, dict[str, dict[str, float]]], None] | None = None,
) -> WalkForwardResult:
    """Fit a copy of ``pipeline`` per fold and collect its out-of-sample forecasts.

    :param pipeline: the unfitted pipeline (copied, never fitted itself).
    :param inputs: the data set's inputs.
    :param labels: the data set's labels.
    :param splits: the walk-forward scheme.
    :param refit_final: also fit on the last train window ending at the last bar, for use after the data.
    :param progress: show a tqdm progress bar over the fits.
    :param on_fold: called with ``(fold, metrics)`` after each fold, e.g. to log to TensorBoard.
    """
    folds = splits.split(inputs.n_bars)
    index = inputs.index
    probabilities = np.full(labels.returns.shape, np.nan)
    schedule: list[ScheduledModel] = []
    fold_metrics = []
    n_fits = len(folds) + int(refit_final)
    # The bar counts fits: one per fold, plus the final refit on the latest window (which is not a fold).
    desc = f"walk-forward: {len(folds)} folds" + (" + final refit" if refit_final else "")
    with tqdm(total=n_fits, desc=desc, unit="fit", disable=not progress) as bar:
        for split in folds:
            fitted = copy.deepcopy(pipeline).fit(inputs, labels, split.train.stop, split.train.start)
            test = split.test_index
            probabilities[test] = fitted.predict(inputs, test)
            metrics = score(probabilities[test], labels.returns[test], labels.horizons)
            fold_metrics.append(metrics)
            schedule.append(ScheduledModel(
                index[split.test.start - 1], fitted, index[split.train.start], index[split.train.stop - 1]
            ))
            if on_fold is not None:
                on_fold(split.fold, metrics)
            bar.set_postfix({f"acc_{h}": f"{m['accuracy']:.3f}" for h, m in metrics.items()})
            bar.update()
        if refit_final:
            n_bars = inputs.n_bars
            start = 0 if splits.anchored else n_bars - splits.train_size
            fitted = copy.deepcopy(pipeline).fit(inputs, labels, n_bars, start)
            schedule.append(ScheduledModel(index[-1], fitted, index[start], index[-1]))
            bar.update()
    scored = np.zeros(inputs.n_bars, dtype=bool)
    for split in folds:
        scored[split.test] = True
    overall = score(probabilities[scored], labels.returns[scored], labels.horizons)
    logger.info("walk-forward: %d folds, out-of-sample %s", len(folds), overall)
    return WalkForwardResult(probabilities, labels, folds, schedule, fold_metrics, overall)
