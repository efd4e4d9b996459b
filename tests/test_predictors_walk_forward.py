"""Walk-forward training: no fit reads its test window, forecasts are out of sample, the future cannot leak."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from predictor_fixtures import HORIZONS, SPLITS, inputs_of, labels_of, market, pipeline, shuffle_after

from agents.predictors.base import Predictor
from agents.predictors.pipeline import PredictorPipeline
from agents.predictors.walk_forward import walk_forward
from envs.data.splits import WalkForward


class Recorder(Predictor):
    """Remembers every fit's samples and labels in a class-level log (copies share it); predicts 0.5."""

    fits: list = []

    def fit(self, cube, rows, labels):
        Recorder.fits.append((rows.copy(), labels.copy()))
        return self

    def predict_proba(self, cube, rows):
        return np.full((len(rows), len(self.horizons)), 0.5)


@pytest.mark.parametrize("splits", [SPLITS, WalkForward(200, 80, anchored=True, gap=5)])
def test_every_fit_reads_only_its_train_window(splits: WalkForward) -> None:
    data = market()
    Recorder.fits = []
    result = walk_forward(
        PredictorPipeline(Recorder(HORIZONS)), inputs_of(data), labels_of(data), splits, progress=False
    )
    assert len(Recorder.fits) == len(result.splits) + 1
    windows = [s.train for s in result.splits] + [slice(0 if splits.anchored else data.n_bars - 200, data.n_bars)]
    for (rows, labels), train in zip(Recorder.fits, windows):
        assert rows[:, 0].min() >= train.start and rows[:, 0].max() < train.stop
        last_bar_read = rows[:, :1] + 1 + np.asarray(HORIZONS)
        assert (last_bar_read[np.isfinite(labels)] < train.stop).all()
        # The purge drops exactly the labels that would read the test window: the last h + 1 decision bars.
        for k, h in enumerate(HORIZONS):
            assert rows[np.isfinite(labels[:, k]), 0].max() == train.stop - 2 - h


@pytest.mark.parametrize("model", ["xgboost", "lstm"])
def test_shuffling_the_future_changes_no_earlier_forecast(model: str) -> None:
    """Bars after t are shuffled; every forecast up to t, and every model used up to t, is unchanged."""
    data = market()
    t = SPLITS.split(data.n_bars)[1].test.start  # first bar traded by the second fold's model
    shuffled = shuffle_after(data, t)
    runs = [
        walk_forward(pipeline(model), inputs_of(d), labels_of(d), SPLITS, refit_final=False, progress=False)
        for d in (data, shuffled)
    ]
    np.testing.assert_array_equal(runs[0].probabilities[: t + 1], runs[1].probabilities[: t + 1])
    assert not np.array_equal(runs[0].probabilities[t + 1 :], runs[1].probabilities[t + 1 :], equal_nan=True)


def test_forecasts_exist_only_in_test_windows_with_their_fold_model() -> None:
    data = market()
    inputs, labels = inputs_of(data), labels_of(data)
    result = walk_forward(pipeline("xgboost"), inputs, labels, SPLITS, progress=False)
    tested = np.zeros(data.n_bars, dtype=bool)
    for split, scheduled in zip(result.splits, result.schedule):
        tested[split.test] = True
        assert scheduled.active_after == data.index[split.test.start - 1]
        assert scheduled.train_end == data.index[split.train.stop - 1]
        np.testing.assert_array_equal(
            result.probabilities[split.test], scheduled.pipeline.predict(inputs, split.test_index)
        )
    assert np.isnan(result.probabilities[~tested]).all()
    assert np.isfinite(result.probabilities[tested]).all()
    assert result.schedule[-1].active_after == data.index[-1]
    assert result.first_test_bar == result.splits[0].test.start
    for metrics in [result.metrics, *result.fold_metrics]:
        assert set(metrics) == {f"h{h}" for h in HORIZONS}
        assert all(0 <= m["accuracy"] <= 1 and m["log_loss"] > 0 for m in metrics.values())
    # A fold whose model never varies its forecast has no rank correlation; pooled over folds it has one.
    assert all(-1 <= m["ic"] <= 1 for m in result.metrics.values())


def test_walk_forward_is_reproducible_and_leaves_the_prototype_unfitted() -> None:
    data = market()
    prototype = pipeline("random_forest", seed=4)
    runs = [walk_forward(copy.deepcopy(prototype), inputs_of(data), labels_of(data), SPLITS, progress=False)
            for _ in range(2)]
    np.testing.assert_array_equal(runs[0].probabilities, runs[1].probabilities)
    assert runs[0].metrics == runs[1].metrics
    walk_forward(prototype, inputs_of(data), labels_of(data), SPLITS, refit_final=False, progress=False)
    assert prototype.model is None


def test_regime_switch_routes_each_bar_to_its_regime_model() -> None:
    data = market()
    inputs, labels = inputs_of(data), labels_of(data)
    fitted = pipeline("xgboost", switch=True).fit(inputs, labels, 400, 100)
    assert fitted.regime_models, "some regime should have enough samples for its own model"
    assert fitted.feature_names[-3:] == ("regime_0", "regime_1", "regime_2")
    bars = np.arange(400, 480)
    probs = fitted.predict(inputs, bars)
    cube = fitted._cube(inputs)
    for k, model in fitted.regime_models.items():
        t, s = np.nonzero(np.argmax(cube[bars, :, -3:], axis=-1) == k)
        if len(t):
            rows = np.column_stack([bars[t], s])
            np.testing.assert_array_equal(probs[t, s], model.predict_proba(cube, rows))


def test_too_short_a_window_is_a_clear_error() -> None:
    data = market()
    with pytest.raises(ValueError, match=r"no labelled samples for horizon\(s\) \[20\]"):
        pipeline("xgboost", regime=False).fit(inputs_of(data), labels_of(data), 110, 0)
    with pytest.raises(ValueError, match="switch=True needs a regime"):
        PredictorPipeline(Recorder(HORIZONS), None, switch=True)
