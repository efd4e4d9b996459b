"""Calibrated markets and their oracles: valid deterministic bars, the promised structure, oracle Sharpe ratios
against closed forms and against the conditional moments of the generator, and no look-ahead."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm

from agents.registry import make_policy
from baselines.oracles import Oracle
from envs.data.calibrated import (
    FAMILIES,
    CalibratedConfig,
    generate_calibrated,
    generate_calibrated_with_state,
    hamilton_filter,
)
from envs.data.market_data import MarketData, validate
from envs.data.sources import calibrated_config, load_data
from envs.sim.execution import ExecutionConfig
from experiments.engine import BacktestConfig, run_backtest

FREE = BacktestConfig(execution=ExecutionConfig(commission=0.0, allow_short=True), risk=None)


def returns_of(data: MarketData) -> np.ndarray:
    return np.diff(np.log(data.close), axis=0, prepend=np.log(data.open[:1]))


@pytest.mark.parametrize("family", FAMILIES)
def test_bars_are_valid_deterministic_and_open_at_the_previous_close(family: str) -> None:
    spec = f"synthetic:model={family},seed=3,n_days=400,n_symbols=2"
    data = load_data(spec)
    validate(data)
    assert data.n_bars == 400 and data.symbols == ("SYN0", "SYN1")
    assert (data.low <= np.minimum(data.open, data.close)).all()
    assert (data.high >= np.maximum(data.open, data.close)).all()
    assert (data.high > data.low).all() and (data.volume > 0).all()
    np.testing.assert_allclose(data.open[1:], data.close[:-1], rtol=1e-12)
    np.testing.assert_array_equal(load_data(spec).values, data.values)
    assert not np.allclose(load_data(spec.replace("seed=3", "seed=4")).close, data.close)
    assert calibrated_config(spec) == CalibratedConfig(model=family, seed=3, n_days=400, n_symbols=2)


def test_bad_configs_name_the_field() -> None:
    with pytest.raises(ValueError, match="model must be one of"):
        CalibratedConfig(model="trend")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="null market has no signal"):
        CalibratedConfig(model="null", snr=0.1)
    with pytest.raises(ValueError, match="garch_alpha and garch_beta"):
        CalibratedConfig(model="garch", garch_alpha=0.2, garch_beta=0.85)
    with pytest.raises(ValueError, match="unknown CalibratedConfig option 'phi'"):
        load_data("synthetic:model=momentum,phi=0.3")
    with pytest.raises(ValueError, match="not a calibrated market"):
        calibrated_config("synthetic:model=regime")
    # The default synthetic market is untouched.
    assert load_data("synthetic:n_days=300").symbols == ("SYN0", "SYN1", "SYN2", "SYN3", "SYN4")


def test_momentum_and_mean_reversion_have_the_promised_coefficients() -> None:
    cfg = CalibratedConfig(model="momentum", snr=0.3, n_days=40_000, seed=1)
    r = returns_of(generate_calibrated(cfg))[:, 0]
    phi_hat = np.corrcoef(r[:-1], r[1:])[0, 1]
    assert abs(phi_hat - cfg.phi) < 3 / math.sqrt(len(r))
    assert abs(r.std() - cfg.daily_vol) < 0.02 * cfg.daily_vol

    cfg = CalibratedConfig(model="mean_reversion", snr=0.2, n_days=40_000, seed=1)
    x = np.log(generate_calibrated(cfg).close[:, 0]) - math.log(cfg.initial_price)
    a_hat = np.linalg.lstsq(x[:-1, None], x[1:], rcond=None)[0][0]
    assert abs(a_hat - cfg.reversion) < 0.01


def test_pair_spread_is_the_ou_level_and_the_legs_are_cointegrated() -> None:
    data, state = generate_calibrated_with_state(model="pair", n_days=3000, seed=2)
    cfg = CalibratedConfig(model="pair")
    base = math.log(cfg.initial_price)
    log_close = np.log(data.close)
    spread = log_close[:, 1] - base - cfg.hedge_ratio * (log_close[:, 0] - base)
    np.testing.assert_allclose(spread, state.spread, atol=1e-9)
    assert sm.tsa.stattools.coint(log_close[:, 1], log_close[:, 0], maxlag=1, autolag=None)[1] < 0.01


def test_hamilton_filter_matches_statsmodels() -> None:
    cfg = CalibratedConfig(model="hmm", n_days=800, seed=2)
    r = returns_of(generate_calibrated(cfg))
    model = sm.tsa.MarkovRegression(r[:, 0], k_regimes=2, trend="c", switching_variance=False)
    stay = 1 - 1 / cfg.regime_duration
    means = cfg.regime_means
    filtered = model.filter(np.array([stay, 1 - stay, means[0], means[1], cfg.daily_vol**2]))
    bull_now = filtered.filtered_marginal_probabilities[:, 0]
    np.testing.assert_allclose(hamilton_filter(r, cfg)[:, 0], stay * bull_now + (1 - stay) * (1 - bull_now),
                               atol=1e-12)


def test_oracle_reads_the_generators_truth() -> None:
    for family in ("momentum", "mean_reversion", "garch"):
        spec = f"synthetic:model={family},seed=4,n_days=600"
        data, state = generate_calibrated_with_state(calibrated_config(spec))
        oracle = Oracle(market=spec, allow_short=True, threshold=0.0)
        if family == "garch":
            expected = np.minimum(1.0, 0.5 * oracle.config.daily_vol**2 / state.variance)
        else:
            expected = np.sign(state.expected_return)
        np.testing.assert_allclose(oracle.act_batch(data), expected, atol=1e-9)


def conditional_sharpe(weights: np.ndarray, state_mean: np.ndarray, state_var: np.ndarray) -> float:
    """Annual Sharpe ratio of holding ``weights[t]`` over bar t+1, from the generator's conditional moments."""
    w, m, v = weights[:-1], state_mean[:-1], state_var[:-1]
    pnl_mean = (w * m).sum(axis=1)
    pnl_second = (w**2 * (v + m**2)).sum(axis=1)
    mean = pnl_mean.mean()
    return float(mean / math.sqrt(pnl_second.mean() - mean**2) * math.sqrt(252))


def closed_form_sign_sharpe(snr: float) -> float:
    """Annual Sharpe of trading the sign of a Gaussian forecast whose correlation with the return is rho."""
    rho = snr / math.sqrt(1 + snr**2)
    return rho * math.sqrt(2 / math.pi) / math.sqrt(1 - 2 * rho**2 / math.pi) * math.sqrt(252)


@pytest.mark.parametrize("family", ["momentum", "mean_reversion", "hmm", "garch", "pair"])
def test_oracle_sharpe_on_a_long_series_matches_its_expected_value(family: str) -> None:
    n_days = 30_000
    spec = f"synthetic:model={family},seed=7,n_days={n_days}"
    data, state = generate_calibrated_with_state(calibrated_config(spec))
    oracle = Oracle(market=spec, allow_short=True, threshold=0.0)
    result = run_backtest(oracle, data, FREE, start=0)
    assert result.mode == "replay"
    realised = result.stats.sharpe
    # One standard error of an annualised Sharpe ratio estimated from n bars (Lo 2002, iid case).
    se = math.sqrt((1 + (realised / math.sqrt(252)) ** 2 / 2) / n_days) * math.sqrt(252)
    cfg = oracle.config
    weights = oracle.act_batch(data)
    mean, var = state.expected_return, state.variance
    if family == "hmm":
        # The conditional moments given what the oracle knows: the filter's regime probabilities.
        bull = hamilton_filter(returns_of(data), cfg)
        means = cfg.regime_means
        mean = bull * means[0] + (1 - bull) * means[1]
        var = cfg.daily_vol**2 + bull * (1 - bull) * (means[0] - means[1]) ** 2
    if family == "pair":
        # Holding (-h, 1)/(1+h) earns (r1 - h r0)/(1+h): the spread's change, whose mean and variance are known.
        expected = conditional_sharpe(weights[:, 1:], mean[:, 1:], np.full_like(mean[:, 1:], cfg.daily_vol**2))
    else:
        expected = conditional_sharpe(weights, mean, var)
    assert abs(realised - expected) < 3 * se, (realised, expected, se)
    if family in ("momentum", "mean_reversion", "pair"):
        assert abs(realised - closed_form_sign_sharpe(float(cfg.snr))) < 3 * se


def test_oracles_beat_the_market_net_of_costs_and_the_null_oracle_stays_flat() -> None:
    costs = BacktestConfig(execution=ExecutionConfig(commission=0.001, allow_short=True), risk=None)
    for family in ("momentum", "mean_reversion", "hmm"):
        spec = f"synthetic:model={family},seed=8,n_days=10000"
        data = load_data(spec)
        oracle = run_backtest(Oracle(market=spec, allow_short=True), data, costs)
        hold = run_backtest(make_policy("buy_and_hold"), data, costs)
        assert oracle.stats.sharpe > hold.stats.sharpe + 0.5, family
    null = run_backtest(Oracle(market="synthetic:model=null"), load_data("synthetic:model=null,seed=8"), costs)
    assert null.fills.empty and null.stats.total_return == 0.0


@pytest.mark.parametrize("family", FAMILIES)
def test_changing_the_future_changes_no_past_decision(family: str) -> None:
    spec = f"synthetic:model={family},seed=9,n_days=500"
    data = load_data(spec)
    oracle = Oracle(market=spec, allow_short=True)
    t = 300
    values = data.values.copy()
    values[t + 1:, :, :4] *= np.linspace(0.5, 1.5, data.n_bars - t - 1)[:, None, None]
    future = MarketData(values, data.index, data.symbols)
    before = oracle.act_batch(data)
    np.testing.assert_array_equal(oracle.act_batch(future)[: t + 1], before[: t + 1])
    if family != "null":
        assert not np.array_equal(oracle.act_batch(future)[t + 1:], before[t + 1:])
