"""Regime detector: filtered (causal) state probabilities that track the synthetic market's hidden regimes."""

from __future__ import annotations

import numpy as np
import pytest
from predictor_fixtures import market, shuffle_after

from agents.predictors.regime import RegimeConfig, RegimeDetector, regime_inputs
from envs.data.synthetic import generate_market_with_state


@pytest.fixture(scope="module")
def regime_market():
    return generate_market_with_state(n_symbols=3, n_days=1500, seed=5)


@pytest.mark.parametrize("method", ["hmm", "gmm"])
def test_probabilities_are_causal(method: str) -> None:
    data = market()
    detector = RegimeDetector(RegimeConfig(method=method, window=10, n_iter=5)).fit(regime_inputs(data.close, 10), 300)
    t = 350
    before = detector.probabilities(regime_inputs(data.close, 10))
    after = detector.probabilities(regime_inputs(shuffle_after(data, t).close, 10))
    np.testing.assert_array_equal(before[: t + 1], after[: t + 1])
    assert not np.array_equal(before[t + 1 :], after[t + 1 :], equal_nan=True)


def test_probabilities_sum_to_one_after_the_warmup() -> None:
    data = market()
    inputs = regime_inputs(data.close, 10)
    probs = RegimeDetector(RegimeConfig(window=10, n_iter=5)).fit(inputs, 300).probabilities(inputs)
    assert probs.shape == (data.n_bars, data.n_symbols, 3) and probs.dtype == np.float32
    warm = np.isfinite(inputs).all(axis=-1)
    assert np.isnan(probs[~warm]).all()
    np.testing.assert_allclose(probs[warm].sum(axis=-1), 1.0, atol=1e-5)


def test_same_seed_same_states() -> None:
    inputs = regime_inputs(market().close, 10)
    a = RegimeDetector(RegimeConfig(window=10), seed=7).fit(inputs, 400).probabilities(inputs)
    b = RegimeDetector(RegimeConfig(window=10), seed=7).fit(inputs, 400).probabilities(inputs)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("method", ["hmm", "gmm"])
def test_states_are_ordered_calm_first_and_track_the_hidden_regimes(regime_market, method: str) -> None:
    data, state = regime_market
    inputs = regime_inputs(data.close, 20)
    probs = RegimeDetector(RegimeConfig(method=method)).fit(inputs, 1000).probabilities(inputs)
    weight = np.nan_to_num(probs)
    relative_vol = np.nan_to_num(inputs[..., 1])
    vol_by_state = [(weight[..., k] * relative_vol).sum() / weight[..., k].sum() for k in range(3)]
    assert vol_by_state == sorted(vol_by_state)
    # The bear regime (the synthetic market's most volatile) loads on the most turbulent state far more
    # than the bull regime does.
    warm = np.isfinite(probs).all(axis=(1, 2))
    turbulent = probs[warm, :, -1].mean(axis=1)
    regimes = state.regimes[warm]
    bull, bear = (regimes == state.regime_names.index(name) for name in ("bull", "bear"))
    assert turbulent[bear].mean() > turbulent[bull].mean() + 0.3


def test_filter_differs_from_forward_backward_smoothing(regime_market) -> None:
    """hmmlearn's predict_proba smooths with later bars; the detector must not."""
    data, _ = regime_market
    inputs = regime_inputs(data.close, 20)
    detector = RegimeDetector(RegimeConfig()).fit(inputs, 1000)
    probs = detector.probabilities(inputs)
    t = 1200
    truncated = detector.probabilities(inputs[: t + 1])
    np.testing.assert_array_equal(truncated[t], probs[t])


def test_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="n_states"):
        RegimeConfig(n_states=1)
    with pytest.raises(ValueError, match="method"):
        RegimeConfig(method="kmeans")  # type: ignore[arg-type]
    inputs = regime_inputs(market().close, 10)
    with pytest.raises(ValueError, match="usable bars"):
        RegimeDetector(RegimeConfig(window=10)).fit(inputs, 15)
    with pytest.raises(RuntimeError, match="fit"):
        RegimeDetector().probabilities(inputs)
