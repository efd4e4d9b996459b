"""The synthetic VIX as the model's 30-day forward volatility (against closed forms, and causal), and the
synthetic option chains' volume and open interest behind the put/call ratio."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from envs.data.synthetic import generate_market_with_state
from envs.features import sentiment as sn
from envs.options.chains import ChainConfig, SyntheticChains

H = 21  # bars of daily data in 30 calendar days: round(30 / 365 * 252)


def test_heston_vix_is_the_closed_form_term_structure_of_variance() -> None:
    data, state = generate_market_with_state(model="heston", n_symbols=1, n_days=400, seed=2)
    vix = sn.synthetic_vix(data, state).to_numpy()
    v, theta, kappa = state.volatility[:, 0] ** 2, state.long_run_variance[0], state.variance_kappa
    # The discretised Heston mean: E[v_{t+k}] = theta + (1 - kappa dt)^k (v_t - theta), averaged over k = 1..H.
    a = 1 - kappa / 252
    discrete = theta + (v - theta) * a * (1 - a**H) / (H * (1 - a))
    np.testing.assert_allclose((vix / 100) ** 2, discrete, rtol=1e-12)
    # ... the continuous-time term structure of variance, theta + (v - theta)(1 - e^{-kappa tau}) / (kappa tau),
    # over the H bars ahead, each bar's variance standing for its interval's (midpoints k dt - dt / 2), with the
    # Euler step's (1 - kappa dt) for e^{-kappa dt}: second-order close.
    tau, dt = H / 252, 1 / 252
    continuous = theta + (v - theta) * np.exp(-kappa * dt / 2) * (1 - np.exp(-kappa * tau)) / (kappa * tau)
    np.testing.assert_allclose((vix / 100) ** 2, continuous, rtol=3e-3)
    current = 100 * state.volatility[:, 0]
    # Forward volatility mean-reverts: below today's when variance is above theta, above it when below.
    high = v > theta * 1.05
    low = v < theta * 0.95
    assert high.any() and low.any()
    assert (vix[high] < current[high]).all() and (vix[low] > current[low]).all()


def test_regime_vix_matches_the_markov_chain_expectation_with_jumps() -> None:
    data, state = generate_market_with_state(model="regime", n_symbols=1, n_days=300, seed=5)
    vix = sn.synthetic_vix(data, state).to_numpy()
    scale2 = np.asarray(state.regime_vol_scale) ** 2
    theta, kappa = state.long_run_variance[0], state.variance_kappa
    a = 1 - kappa / 252
    for t in (0, 57, 150, 299):
        r = state.regimes[t]
        v = (state.volatility[t, 0] / np.sqrt(scale2[r])) ** 2
        expected = np.mean([
            (np.linalg.matrix_power(state.transition_matrix, k) @ scale2)[r] * (theta + a**k * (v - theta))
            for k in range(1, H + 1)
        ])
        assert (vix[t] / 100) ** 2 == pytest.approx(expected + state.jump_variance, rel=1e-12)
    assert state.jump_variance > 0


def test_constant_volatility_vix_is_that_volatility() -> None:
    data, state = generate_market_with_state(model="gbm", n_symbols=1, n_days=50, seed=1)
    np.testing.assert_allclose(sn.synthetic_vix(data, state), 100 * state.volatility[:, 0], rtol=1e-12)


def test_vix_uses_no_future_state() -> None:
    data, state = generate_market_with_state(n_days=400, seed=7)
    vix = sn.synthetic_vix(data, state)
    t = 250
    rng = np.random.default_rng(0)
    volatility = state.volatility.copy()
    volatility[t + 1 :] *= rng.uniform(0.3, 3.0, volatility[t + 1 :].shape)
    regimes = state.regimes.copy()
    regimes[t + 1 :] = rng.integers(0, 3, regimes[t + 1 :].shape)
    other = dataclasses.replace(state, volatility=volatility, regimes=regimes)
    changed = sn.synthetic_vix(data, other)
    pd.testing.assert_series_equal(vix.iloc[: t + 1], changed.iloc[: t + 1])
    assert not np.allclose(vix.iloc[t + 1 :], changed.iloc[t + 1 :])


@pytest.fixture(scope="module")
def chains() -> SyntheticChains:
    data, state = generate_market_with_state(n_symbols=1, n_days=400, seed=11)
    return SyntheticChains.from_market(data, state=state)


def test_chain_volume_is_seeded_and_sums_to_the_model(chains: SyntheticChains) -> None:
    a, b = chains.chain(200), chains.chain(200)
    np.testing.assert_array_equal(a.volume, b.volume)
    np.testing.assert_array_equal(a.open_interest, b.open_interest)
    other = SyntheticChains(chains.close, chains.index, ChainConfig(volume_seed=1))
    assert not np.array_equal(other.chain(200).volume, a.volume)
    frame = a.to_frame()
    assert {"volume", "open_interest"} <= set(frame.columns) and (frame["volume"] >= 0).all()
    z = chains.implied_vol(200, a.spot, a.strike, a.quotes.t)[1]
    expected = chains.expected_volume(200, z, a.dte, a.is_call)
    cfg = chains.config
    shock = abs(chains.log_returns[200]) / (chains.short_vol[200] / np.sqrt(252))
    assert expected.sum() == pytest.approx(cfg.daily_volume * (1 + cfg.volume_sensitivity * shock))
    assert expected[~a.is_call].sum() / expected.sum() == pytest.approx(chains.put_share(200))
    # At the money and short dated trade most.
    near = np.argmin(np.abs(z) + 1e3 * (a.dte != a.dte.min()))
    assert expected[near] == expected[a.is_call == a.is_call[near]].max()
    assert a.open_interest.sum() > 4 * a.volume.sum()


def test_put_call_ratio_rises_on_down_days_as_the_model_says(chains: SyntheticChains) -> None:
    bars = range(100, 400)
    frame = pd.concat([chains.chain(t).to_frame() for t in bars])
    ratio = sn.put_call_ratio(frame).to_numpy()
    cfg = chains.config
    shock = chains.log_returns[100:400] / (chains.short_vol[100:400] / np.sqrt(252))
    # log(put/call) = logit(put_share) - fear * shock, plus Poisson noise: a regression recovers both.
    slope, intercept = np.polyfit(shock, np.log(ratio), 1)
    assert slope == pytest.approx(-cfg.fear, abs=0.03)
    assert intercept == pytest.approx(np.log(cfg.put_share / (1 - cfg.put_share)), abs=0.03)
    assert 0.5 < np.median(ratio) < 1.0, "equity-like put/call volume ratios"


def test_chain_volume_uses_no_future_closes(chains: SyntheticChains) -> None:
    t = 250
    close = chains.close.copy()
    close[t + 1 :] *= np.random.default_rng(1).uniform(0.7, 1.3, close.size - t - 1)
    other = SyntheticChains(close, chains.index, chains.config)
    same = SyntheticChains(chains.close, chains.index, chains.config)
    for bar in (120, t):
        np.testing.assert_array_equal(other.chain(bar).volume, same.chain(bar).volume)
        np.testing.assert_array_equal(other.chain(bar).open_interest, same.chain(bar).open_interest)
