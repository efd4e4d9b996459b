"""Metrics against empyrical-reloaded and quantstats on the same return series."""

from __future__ import annotations

import empyrical
import numpy as np
import pandas as pd
import pytest
import quantstats as qs

from envs.sim import metrics
from envs.sim.trades import traded_value


@pytest.fixture(scope="module")
def curve() -> tuple[pd.Series, pd.Series, np.ndarray, np.ndarray]:
    """A seeded strategy equity curve, its benchmark, and their return series (first return 0)."""
    rng = np.random.default_rng(7)
    n = 600
    bench_r = rng.normal(0.0004, 0.012, n)
    strat_r = 0.3 * bench_r + rng.normal(0.0003, 0.008, n)
    index = pd.date_range("2020-01-01", periods=n + 1, freq="B", tz="UTC")
    equity = pd.Series(100_000 * np.concatenate([[1.0], np.cumprod(1 + strat_r)]), index=index)
    bench = pd.Series(50.0 * np.concatenate([[1.0], np.cumprod(1 + bench_r)]), index=index)
    return equity, bench, strat_r, bench_r


def test_return_and_risk_ratios_match_empyrical(curve):
    equity, bench, r, b = curve
    stats = metrics.compute_stats(equity, benchmark=bench, calendar="XNYS")
    assert stats.cagr == pytest.approx(empyrical.annual_return(r), rel=1e-10)
    assert stats.annual_volatility == pytest.approx(empyrical.annual_volatility(r), rel=1e-10)
    assert stats.sharpe == pytest.approx(empyrical.sharpe_ratio(r), rel=1e-10)
    assert stats.sortino == pytest.approx(empyrical.sortino_ratio(r), rel=1e-10)
    assert stats.calmar == pytest.approx(empyrical.calmar_ratio(r), rel=1e-10)
    assert stats.var_95 == pytest.approx(empyrical.value_at_risk(r), rel=1e-10)
    assert stats.cvar_95 == pytest.approx(empyrical.conditional_value_at_risk(r), rel=1e-10)
    alpha, beta = empyrical.alpha_beta(r, b)
    assert stats.alpha == pytest.approx(alpha, rel=1e-10)
    assert stats.beta == pytest.approx(beta, rel=1e-10)
    assert stats.total_return == pytest.approx(empyrical.cum_returns_final(r), rel=1e-10)


def test_ratios_match_quantstats(curve):
    equity, _, r, _ = curve
    series = pd.Series(r, index=equity.index[1:].tz_localize(None))
    stats = metrics.compute_stats(equity, calendar="XNYS")
    assert stats.sharpe == pytest.approx(qs.stats.sharpe(series), rel=1e-10)
    assert stats.sortino == pytest.approx(qs.stats.sortino(series), rel=1e-10)
    assert stats.annual_volatility == pytest.approx(qs.stats.volatility(series), rel=1e-10)
    assert stats.max_drawdown == pytest.approx(qs.stats.max_drawdown(series), rel=1e-10)


def test_drawdown_counts_a_loss_on_the_first_bar():
    # empyrical on the raw returns misses this; passing it a leading zero return makes them agree.
    r = np.array([-0.1, 0.05, 0.02, -0.03, 0.2])
    equity = 100 * np.concatenate([[1.0], np.cumprod(1 + r)])
    assert metrics.max_drawdown(equity) == pytest.approx(-0.1)
    assert metrics.max_drawdown(equity) == pytest.approx(empyrical.max_drawdown(np.r_[0.0, r]))


def test_max_drawdown_duration_is_the_longest_underwater_stretch():
    equity = np.array([100, 110, 100, 105, 111, 90, 95, 100, 105, 108, 109])
    # Peak 110 at bar 1 recovers at bar 4 (3 bars under); peak 111 at bar 4 never recovers (6 bars).
    assert metrics.max_drawdown_duration(equity) == 6
    assert metrics.max_drawdown_duration(np.array([1.0, 2.0, 3.0])) == 0


def test_trade_statistics_and_exposure_turnover():
    index = pd.date_range("2021-01-01", periods=253, freq="B", tz="UTC")
    equity = pd.Series(np.linspace(1000.0, 1100.0, 253), index=index)
    trades = pd.DataFrame({"pnl": [50.0, -20.0, 30.0, -10.0], "return": [0.05, -0.02, 0.03, -0.01]})
    positions = np.zeros(253)
    positions[10:60] = 5
    traded = np.zeros(253)
    traded[[10, 60]] = 525.0
    stats = metrics.compute_stats(
        equity, trades, positions=positions, traded_value=traded, costs=4.2, calendar="XNYS"
    )
    assert stats.n_trades == 4
    assert stats.win_rate == pytest.approx(0.5)
    assert stats.profit_factor == pytest.approx(80.0 / 30.0)
    assert stats.avg_trade == pytest.approx(12.5)
    assert stats.avg_trade_return == pytest.approx(0.0125)
    assert stats.exposure == pytest.approx(50 / 253)
    assert stats.turnover == pytest.approx(1050.0 / 1050.0)
    assert stats.total_costs == 4.2
    assert stats.to_series()["n_trades"] == 4
    assert "sharpe" in str(stats)


def test_no_trades_gives_nan_trade_stats_not_errors():
    index = pd.date_range("2021-01-01", periods=5, freq="D", tz="UTC")
    stats = metrics.compute_stats(pd.Series(100.0, index=index))
    assert stats.n_trades == 0
    assert np.isnan(stats.win_rate) and np.isnan(stats.profit_factor)
    assert stats.max_drawdown == 0 and stats.max_drawdown_duration == 0
    assert np.isnan(stats.sharpe)


def test_bad_equity_is_rejected():
    index = pd.date_range("2021-01-01", periods=3, freq="D", tz="UTC")
    with pytest.raises(ValueError, match="positive until the last"):
        metrics.compute_stats(pd.Series([100.0, -1.0, 5.0], index=index))
    with pytest.raises(TypeError, match="pandas Series"):
        metrics.compute_stats(np.array([1.0, 2.0]))


def test_traded_value_sums_gross_cash_per_bar_of_the_fill_log():
    index = pd.date_range("2021-01-01", periods=4, freq="D", tz="UTC")
    fills = pd.DataFrame({
        "timestamp": index[[1, 1, 3]], "quantity": [10.0, -4.0, -6.0], "price": [20.0, 21.0, 25.0],
    })
    np.testing.assert_array_equal(traded_value(fills, index), [0.0, 284.0, 0.0, 150.0])
    np.testing.assert_array_equal(traded_value(fills.iloc[:0], index), np.zeros(4))


def test_a_wiped_out_account_scores_minus_100_percent_instead_of_failing() -> None:
    idx = pd.date_range("2024-01-02", periods=4, freq="B", tz="UTC")
    stats = metrics.compute_stats(pd.Series([100.0, 80.0, 30.0, -5.0], index=idx), calendar="XNYS")
    assert stats.total_return == pytest.approx(-1.05)
    assert stats.cagr == -1.0
    assert stats.max_drawdown == pytest.approx(-1.05)
    assert stats.sharpe < 0 and np.isfinite(stats.sharpe)
    with pytest.raises(ValueError, match="positive until the last"):
        metrics.compute_stats(pd.Series([0.0, 1.0], index=idx[:2]), calendar="XNYS")
    with pytest.raises(ValueError, match="finite"):
        metrics.compute_stats(pd.Series([1.0, np.nan], index=idx[:2]), calendar="XNYS")
