"""The predictor as a Policy: act equals act_batch, save/load gives the same actions, no look-ahead."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from predictor_fixtures import FEATURES, REGIME_WINDOW, SPLITS, inputs_of, labels_of, market, pipeline, shuffle_after

from agents.predictors.policy import PredictorPolicy
from agents.predictors.walk_forward import WalkForwardResult, walk_forward
from agents.registry import load_policy, make_policy, save_policy
from envs.data.history import History


@pytest.fixture(scope="module")
def trained() -> WalkForwardResult:
    data = market()
    return walk_forward(pipeline("xgboost"), inputs_of(data), labels_of(data), SPLITS, progress=False)


def make(trained: WalkForwardResult, **params) -> PredictorPolicy:
    params.setdefault("horizon", 5)
    params.setdefault("threshold", 0.55)
    return PredictorPolicy.from_schedule("xgboost", trained.schedule, FEATURES, REGIME_WINDOW, **params)


def test_policy_trades_the_out_of_sample_forecasts(trained) -> None:
    data = market()
    policy = make(trained)
    probs = policy.probabilities(data)
    k = trained.labels.horizons.index(5)
    first = trained.first_test_bar
    assert np.isnan(probs[:first]).all(), "no model is active before the first test window"
    tested = np.isfinite(trained.probabilities[:, 0, k])
    np.testing.assert_array_equal(probs[tested], trained.probabilities[tested][:, :, k])
    weights = policy.act_batch(data)
    assert weights.shape == (data.n_bars, data.n_symbols) and weights.dtype == np.float32
    assert (weights[:first] == 0).all()
    np.testing.assert_array_equal(weights != 0, probs >= 0.55)
    np.testing.assert_allclose(weights[weights != 0], 0.1)


def test_act_stepped_bar_by_bar_equals_act_batch(trained) -> None:
    data = market()
    policy = make(trained, allow_short=True)
    batch = policy.act_batch(data)
    first = trained.first_test_bar
    # Every bar around each model switch, and a sample of the rest (each act recomputes the inputs).
    bars = sorted({*range(first - 2, first + 3), *range(first, data.n_bars, 23), data.n_bars - 1,
                   *(s.test.start for s in trained.splits)})
    for t in bars:
        np.testing.assert_array_equal(policy.act(None, {"history": History(data, t)}), batch[t], err_msg=f"bar {t}")


def test_shuffling_the_future_changes_no_earlier_action(trained) -> None:
    data = market()
    policy = make(trained, allow_short=True, sizing="volatility")
    t = trained.splits[1].test.start + 10
    before = policy.act_batch(data)
    after = policy.act_batch(shuffle_after(data, t))
    np.testing.assert_array_equal(before[: t + 1], after[: t + 1])


def test_signal_threshold_and_shorting() -> None:
    p = np.array([[0.2, 0.39, 0.4, 0.5, 0.6, 0.61, np.nan]])
    long_only = PredictorPolicy(threshold=0.6)
    np.testing.assert_array_equal(long_only.signal(p), [[0, 0, 0, 0, 1, 1, 0]])
    both = PredictorPolicy(threshold=0.6, allow_short=True)
    np.testing.assert_array_equal(both.signal(p), [[-1, -1, -1, 0, 1, 1, 0]])


def test_save_and_load_round_trip_gives_identical_actions(trained, tmp_path: Path) -> None:
    data = market()
    policy = make(trained, sizing="kelly", fraction=0.2)
    folder = save_policy(policy, tmp_path / "policy")
    loaded = load_policy(folder)
    assert isinstance(loaded, PredictorPolicy) and loaded.name == "xgboost"
    assert loaded.params == policy.params
    np.testing.assert_array_equal(loaded.act_batch(data), policy.act_batch(data))
    t = data.n_bars - 1
    np.testing.assert_array_equal(loaded.act(None, {"history": History(data, t)}), policy.act_batch(data)[t])
    # Trading parameters can be overridden on load, like any registered policy's.
    stricter = make_policy(str(folder), {"threshold": "0.7"})
    assert stricter.threshold == 0.7
    assert np.count_nonzero(stricter.act_batch(data)) <= np.count_nonzero(loaded.act_batch(data))


def test_one_symbol_gets_the_same_actions_alone_as_in_the_basket(trained) -> None:
    data = market()
    policy = make(trained)
    basket = policy.act_batch(data)
    for j, symbol in enumerate(data.symbols):
        np.testing.assert_array_equal(policy.act_batch(data.select([symbol]))[:, 0], basket[:, j])


def test_final_fit_trades_after_the_data(trained) -> None:
    data = market(n_days=560)  # same calendar, 40 more sessions: bars from 520 on follow the training data
    policy = make(trained)
    probs = policy.probabilities(data)
    after = np.arange(data.n_bars) >= 520
    final = trained.schedule[-1].pipeline
    k = final.horizons.index(5)
    expected = final.predict(inputs_of(data), np.flatnonzero(after))[..., k]
    np.testing.assert_array_equal(probs[after], expected)


def test_bad_parameters_and_missing_models_raise(trained, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="threshold"):
        PredictorPolicy(threshold=0.4)
    with pytest.raises(ValueError, match="horizon must be one of"):
        make(trained, horizon=3)
    with pytest.raises(RuntimeError, match="no fitted models"):
        PredictorPolicy().act_batch(market())
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="predictor.joblib"):
        PredictorPolicy().load_artifacts(tmp_path / "empty")
