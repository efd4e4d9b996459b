"""Every model: a tiny fit finishes fast, outputs probabilities, and the same seed gives the same forecast."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from predictor_fixtures import HORIZONS, TINY_PARAMS, inputs_of, labels_of, market

from agents.predictors.base import Predictor, gather, time_split
from agents.predictors.ensemble import StackingPredictor
from agents.predictors.models import MODELS, make_predictor
from agents.predictors.nets import TorchPredictor
from agents.predictors.trees import TreePredictor


@pytest.fixture(scope="module")
def samples() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The tiny cube, train rows with labels cut at bar 300, and the next 60 bars to predict."""
    data = market()
    inputs = inputs_of(data)
    direction = labels_of(data).until(300).direction
    t, s = np.nonzero(np.isfinite(direction[120:300]).any(axis=-1))
    rows = np.column_stack([t + 120, s])
    test = np.column_stack([np.repeat(np.arange(300, 360), 2), np.tile([0, 1], 60)])
    return inputs.features, rows, direction[rows[:, 0], rows[:, 1]], test


@pytest.mark.parametrize("name", MODELS)
def test_tiny_fit_gives_reproducible_probabilities(name: str, samples) -> None:
    cube, rows, labels, test = samples
    first = make_predictor(name, HORIZONS, 3, TINY_PARAMS[name]).fit(cube, rows, labels).predict_proba(cube, test)
    again = make_predictor(name, HORIZONS, 3, TINY_PARAMS[name]).fit(cube, rows, labels).predict_proba(cube, test)
    assert first.shape == (len(test), len(HORIZONS))
    assert ((first >= 0) & (first <= 1)).all()
    np.testing.assert_array_equal(first, again)
    assert first.std(axis=0).max() > 0, "the forecast should vary across samples"


@pytest.mark.parametrize("name", ["xgboost", "lightgbm", "lstm", "transformer"])
def test_seed_matters(name: str, samples) -> None:
    cube, rows, labels, test = samples
    a = make_predictor(name, HORIZONS, 1, TINY_PARAMS[name]).fit(cube, rows, labels).predict_proba(cube, test)
    b = make_predictor(name, HORIZONS, 2, TINY_PARAMS[name]).fit(cube, rows, labels).predict_proba(cube, test)
    assert not np.array_equal(a, b)


def test_torch_fit_leaves_global_torch_state_alone(samples) -> None:
    import torch

    cube, rows, labels, _ = samples
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    make_predictor("gru", HORIZONS, 0, TINY_PARAMS["gru"]).fit(cube, rows, labels)
    np.testing.assert_array_equal(torch.rand(3).numpy(), expected.numpy())
    assert torch.get_num_threads() == threads
    assert not torch.are_deterministic_algorithms_enabled()


def test_gather_windows_end_at_the_sample_bar() -> None:
    cube = np.arange(10 * 2 * 1, dtype=np.float32).reshape(10, 2, 1)
    rows = np.array([[4, 1], [9, 0]])
    np.testing.assert_array_equal(gather(cube, rows)[:, 0], [9, 18])
    windows = gather(cube, rows, 3)
    assert windows.shape == (2, 3, 1)
    np.testing.assert_array_equal(windows[:, :, 0], [[5, 7, 9], [14, 16, 18]])
    with pytest.raises(ValueError, match="window=3"):
        gather(cube, np.array([[1, 0]]), 3)


def test_single_class_horizon_predicts_its_rate(samples) -> None:
    cube, rows, labels, test = samples
    labels = labels.copy()
    labels[np.isfinite(labels[:, 0]), 0] = 1.0
    probs = TreePredictor("xgboost", HORIZONS, n_estimators=5).fit(cube, rows, labels).predict_proba(cube, test)
    np.testing.assert_array_equal(probs[:, 0], 1.0)


def test_bad_inputs_raise_clear_errors(samples) -> None:
    cube, rows, labels, test = samples
    model = make_predictor("xgboost", HORIZONS, 0, TINY_PARAMS["xgboost"])
    with pytest.raises(ValueError, match="labels must have shape"):
        model.fit(cube, rows, labels[:, :2])
    empty = labels.copy()
    empty[:, 2] = np.nan
    with pytest.raises(ValueError, match=r"horizon\(s\) \[20\]"):
        model.fit(cube, rows, empty)
    with pytest.raises(RuntimeError, match="fit"):
        model.predict_proba(cube, test)
    with pytest.raises(ValueError, match="unknown model"):
        make_predictor("svm", HORIZONS)
    with pytest.raises(ValueError, match="ensemble members"):
        make_predictor("ensemble", HORIZONS, params={"members": ["xgboost", "ensemble"]})
    with pytest.raises(ValueError, match="NaN"):
        make_predictor("lstm", HORIZONS, 0, TINY_PARAMS["lstm"]).fit(cube, np.array([[10, 0]]), labels[:1])


class Spy(Predictor):
    """Records what it is fitted on and asked about (in a class-level log that copies share); predicts 0.5."""

    log: list = []

    def fit(self, cube, rows, labels):
        self.log.append(("fit", rows.copy(), labels.copy()))
        return self

    def predict_proba(self, cube, rows):
        self.log.append(("predict", rows.copy(), None))
        return np.full((len(rows), len(self.horizons)), 0.5)


def test_stacking_fits_its_meta_model_on_purged_out_of_sample_forecasts(samples) -> None:
    cube, rows, labels, test = samples
    log = Spy.log = []
    ensemble = StackingPredictor([Spy(HORIZONS), Spy(HORIZONS)], HORIZONS, holdout=0.3)
    ensemble.fit(cube, rows, labels)
    (_, inner_rows, inner_labels), (_, _, _), (_, meta_rows, _) = log[0], log[1], log[2]
    cut = meta_rows[:, 0].min()
    assert inner_rows[:, 0].max() < cut
    ends = inner_rows[:, :1] + 1 + np.asarray(HORIZONS)
    assert (ends[np.isfinite(inner_labels)] < cut).all(), "an inner label reads a bar the meta-model scores"
    refit = [entry for entry in log if entry[0] == "fit"][-1]
    assert len(refit[1]) == len(rows)


def test_stacking_learns_member_weights(samples) -> None:
    cube, rows, labels, test = samples
    ensemble = make_predictor("ensemble", HORIZONS, 0, TINY_PARAMS["ensemble"]).fit(cube, rows, labels)
    assert ensemble.meta_weights.shape == (len(HORIZONS), 2)
    assert ensemble.window == TINY_PARAMS["gru"]["window"]
    clone = copy.deepcopy(ensemble)
    np.testing.assert_array_equal(clone.predict_proba(cube, test), ensemble.predict_proba(cube, test))


def test_networks_stop_early_on_the_held_out_loss(samples) -> None:
    cube, rows, labels, _ = samples
    net = TorchPredictor("gru", HORIZONS, 0, window=8, hidden=8, epochs=8, patience=2, lr=0.01)
    net.fit(cube, rows, labels)
    held_out = [val for _, val in net.history]
    assert np.isfinite(held_out).all() and len(held_out) <= 8
    assert net.best_epoch == int(np.argmin(held_out))
    if len(held_out) < 8:
        assert len(held_out) - 1 - net.best_epoch == 2, "stops after `patience` epochs without improvement"
    full = TorchPredictor("gru", HORIZONS, 0, window=8, hidden=8, epochs=3, validation=0.0).fit(cube, rows, labels)
    assert len(full.history) == 3 and np.isnan([val for _, val in full.history]).all()
    with pytest.raises(ValueError, match="validation"):
        TorchPredictor("gru", HORIZONS, validation=0.9)


def test_time_split_purges_labels_reading_the_held_out_bars(samples) -> None:
    _, rows, labels, _ = samples
    fitting, held_out, purged = time_split(rows, labels, HORIZONS, 0.25)
    cut = rows[held_out, 0].min()
    assert rows[fitting, 0].max() < cut and fitting.sum() + held_out.sum() == len(rows)
    ends = rows[:, :1] + 1 + np.asarray(HORIZONS)
    assert (ends[fitting][np.isfinite(purged[fitting])] < cut).all()
    kept = fitting[:, None] & (ends < cut)
    np.testing.assert_array_equal(purged[kept], labels[kept])
