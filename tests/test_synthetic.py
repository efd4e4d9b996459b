"""Synthetic market: determinism, valid OHLCV, and the statistical properties each process promises."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from statsmodels.tsa.stattools import coint

from envs.data.market_data import validate
from envs.data.synthetic import MODELS, SyntheticConfig, generate_market, generate_market_with_state


def log_returns(close: np.ndarray) -> np.ndarray:
    return np.diff(np.log(close), axis=0)


def coint_pvalue(x: np.ndarray, y: np.ndarray) -> float:
    # A fixed lag keeps the Engle-Granger test fast; the AIC lag search takes seconds per pair.
    return float(coint(x, y, maxlag=1, autolag=None)[1])


def test_defaults() -> None:
    data, state = generate_market_with_state()
    assert data.symbols == ("SYN0", "SYN1", "SYN2", "SYN3", "SYN4")
    assert data.n_bars == 2520
    assert data.index[0] == pd.Timestamp("2015-01-02", tz="UTC")
    assert (data.index.dayofweek < 5).all()
    assert state.regimes.shape == (2520,)
    assert state.volatility.shape == (2520, 5)
    assert state.jumps.shape == (2520, 5)
    assert state.pair == ("SYN0", "SYN1")
    assert state.regime_names == ("bull", "bear", "sideways")
    np.testing.assert_allclose(state.transition_matrix.sum(axis=1), 1.0)


def test_same_seed_same_market_different_seed_differs() -> None:
    a, state_a = generate_market_with_state(n_days=300, seed=7)
    b, state_b = generate_market_with_state(SyntheticConfig(n_days=300, seed=7))
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(state_a.regimes, state_b.regimes)
    np.testing.assert_array_equal(state_a.volatility, state_b.volatility)
    c = generate_market(n_days=300, seed=8)
    assert not np.allclose(a.close, c.close)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("freq", ["1D", "30min"])
def test_every_model_gives_valid_bars(model: str, freq: str) -> None:
    data, state = generate_market_with_state(model=model, freq=freq, n_days=60, n_symbols=3, seed=1,
                                             jump_intensity=50.0)
    validate(data)
    assert (data.low <= np.minimum(data.open, data.close)).all()
    assert (data.high >= np.maximum(data.open, data.close)).all()
    assert (data.high > data.low).mean() > 0.99
    assert (data.volume > 0).all()
    assert np.isfinite(state.volatility).all() and (state.volatility >= 0).all()
    assert state.jumps.any() == (model in ("merton", "regime"))


def test_symbols_and_single_symbol() -> None:
    data = generate_market(symbols=("AAA", "BBB", "CCC"), n_days=20)
    assert data.symbols == ("AAA", "BBB", "CCC")
    single, state = generate_market_with_state(n_symbols=1, n_days=20)
    assert single.n_symbols == 1 and state.pair is None and state.spread is None


def test_gbm_realises_its_volatility_and_correlation() -> None:
    data, state = generate_market_with_state(
        model="gbm", n_symbols=4, n_days=10_000, cointegrated_pair=False, seed=3
    )
    returns = log_returns(data.close)
    realised_vol = returns.std(axis=0) * np.sqrt(252)
    np.testing.assert_allclose(realised_vol, state.volatility[0], rtol=0.05)
    np.testing.assert_allclose(np.corrcoef(returns.T), state.correlation, atol=0.05)


def test_explicit_correlation_matrix() -> None:
    corr = ((1.0, 0.9, -0.3), (0.9, 1.0, -0.2), (-0.3, -0.2, 1.0))
    data, state = generate_market_with_state(
        model="gbm", symbols=("A", "B", "C"), correlation=corr, n_days=5000,
        cointegrated_pair=False,
    )
    np.testing.assert_array_equal(state.correlation, np.array(corr))
    np.testing.assert_allclose(np.corrcoef(log_returns(data.close).T), corr, atol=0.05)


def test_default_market_is_correlated_roughly_as_configured() -> None:
    data, state = generate_market_with_state(n_symbols=5, n_days=5040, seed=2)
    # The pair's second leg follows its first leg, not its own shocks: compare the others.
    others = [0, 2, 3, 4]
    realised = np.corrcoef(log_returns(data.close)[:, others].T)
    configured = state.correlation[np.ix_(others, others)]
    off = ~np.eye(len(others), dtype=bool)
    assert (realised[off] > 0.1).all()
    np.testing.assert_allclose(realised[off], configured[off], atol=0.2)


def test_pair_is_cointegrated_and_other_pairs_are_not() -> None:
    data, state = generate_market_with_state(n_symbols=5, n_days=2520, seed=4)
    log_close = np.log(data.close)
    assert coint_pvalue(log_close[:, 0], log_close[:, 1]) < 0.05
    spread = log_close[:, 1] - state.hedge_ratio * log_close[:, 0]
    np.testing.assert_allclose(spread - spread[0], state.spread - state.spread[0], atol=1e-9)
    other = [coint_pvalue(log_close[:, i], log_close[:, j])
             for i, j in itertools.combinations(range(5), 2) if (i, j) != (0, 1)]
    assert len(other) == 9 and sum(p < 0.05 for p in other) <= 3


def test_regimes_persist_and_differ_in_drift_and_volatility() -> None:
    data, state = generate_market_with_state(n_symbols=4, n_days=10_000, seed=5,
                                             cointegrated_pair=False)
    labels = state.regimes
    switches = np.count_nonzero(np.diff(labels))
    assert set(np.unique(labels)) == {0, 1, 2}
    assert len(labels) / (switches + 1) > 30
    returns = log_returns(data.close)
    regime = labels[1:]
    mean = {k: returns[regime == k].mean() * 252 for k in range(3)}
    vol = {k: returns[regime == k].std() * np.sqrt(252) for k in range(3)}
    bull, bear, sideways = 0, 1, 2
    assert mean[bull] > mean[sideways] > mean[bear]
    assert vol[bear] > vol[sideways] > vol[bull]


def test_heston_volatility_moves_against_price() -> None:
    data, state = generate_market_with_state(model="heston", n_symbols=2, n_days=5000,
                                             cointegrated_pair=False, seed=6)
    vol = state.volatility
    assert (vol.std(axis=0) / vol.mean(axis=0) > 0.1).all()
    # volatility[t] holds during bar t; returns[t] is bar t + 1, whose shock moves the variance
    # from volatility[t + 1] to volatility[t + 2].
    returns = log_returns(data.close)[:-1]
    step = np.diff(vol[1:], axis=0)
    leverage = [np.corrcoef(returns[:, j], step[:, j])[0, 1] for j in range(2)]
    np.testing.assert_allclose(leverage, -0.7, atol=0.1)


def test_volume_rises_with_absolute_return() -> None:
    data = generate_market(n_symbols=3, n_days=2000, seed=7)
    returns = np.abs(log_returns(data.close))
    for j in range(3):
        assert spearmanr(returns[:, j], data.volume[1:, j]).statistic > 0.1


@pytest.mark.parametrize(("freq", "per_day"), [("1min", 390), ("5min", 78), ("1h", 7)])
def test_intraday_bars_lie_in_market_hours(freq: str, per_day: int) -> None:
    # Three sessions on each side of the March DST change.
    data = generate_market(freq=freq, start="2024-03-06", n_days=6, n_symbols=2)
    assert str(data.index.tz) == "UTC"
    assert data.n_bars == 6 * per_day
    local = data.index.tz_convert("America/New_York")
    minutes = local.hour * 60 + local.minute
    assert minutes.min() == 9 * 60 + 30 and minutes.max() < 16 * 60
    assert (pd.Series(local.date).value_counts() == per_day).all()
    assert {ts.utcoffset() for ts in local[[0, -1]]} == {pd.Timedelta(hours=-5),
                                                         pd.Timedelta(hours=-4)}


def test_intraday_volume_is_u_shaped() -> None:
    data = generate_market(freq="30min", n_days=200, n_symbols=2, seed=8)
    by_bar = data.volume.reshape(200, 13, 2).mean(axis=(0, 2))
    assert by_bar[0] > by_bar[6] and by_bar[-1] > by_bar[6]


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"n_sybmols": 3}, "n_sybmols"),
        ({"model": "garch"}, "model"),
        ({"freq": "7s"}, "freq"),
        ({"freq": "nonsense"}, "freq"),
        ({"n_days": 0}, "n_days"),
        ({"volatility_range": (0.3, 0.1)}, "volatility_range"),
        ({"symbols": ("A", "A")}, "repeat"),
        ({"correlation": ((1.0, 2.0), (2.0, 1.0)), "n_symbols": 2}, "positive definite"),
        ({"correlation": ((1.0, 0.0), (0.0, 1.0)), "n_symbols": 3}, "shape"),
    ],
)
def test_bad_config_names_the_field(overrides: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        generate_market(**{"n_days": 10, **overrides})
