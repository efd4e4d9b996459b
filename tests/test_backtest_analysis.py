"""Walk-forward evaluation, Monte Carlo intervals and the parameter-stability grid."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from agents.registry import make_policy
from envs.data.market_data import MarketData
from envs.data.splits import WalkForward
from envs.data.synthetic import generate_market
from experiments.analysis import expand_grid, monte_carlo, parameter_grid, walk_forward
from experiments.engine import BacktestConfig, run_backtest

CONFIG = BacktestConfig(risk=None)
GRID = {"fast": [5, 10], "slow": [20, 40]}
INVALID = {"fast": [5, 10, 20], "slow": [20, 40]}  # fast=20, slow=20 is refused by the bot


def factory(params):
    return make_policy("sma_crossover", {"fraction": 0.5, **params})


@pytest.fixture(scope="module")
def data() -> MarketData:
    return generate_market(n_symbols=2, n_days=700, seed=21)


def test_expand_grid():
    assert expand_grid(GRID) == [
        {"fast": 5, "slow": 20}, {"fast": 5, "slow": 40}, {"fast": 10, "slow": 20}, {"fast": 10, "slow": 40},
    ]


def test_walk_forward_picks_the_train_winner_and_scores_it_out_of_sample(data):
    splitter = WalkForward(train_size=250, test_size=100)
    result = walk_forward(factory, GRID, data, splitter, CONFIG, metric="sharpe")
    folds = result.folds
    assert len(folds) == len(splitter.split(data.n_bars)) == 4
    assert (folds["test_start"] > folds["train_end"]).all()
    # Fold 0: the chosen parameters really are the best on train, and the test score is theirs.
    first = splitter.split(data.n_bars)[0]
    train_scores = {
        (p["fast"], p["slow"]): run_backtest(
            factory(p), data.iloc(slice(0, first.train.stop)), CONFIG, start=1
        ).stats.sharpe
        for p in expand_grid(GRID)
    }
    best = max(train_scores, key=train_scores.get)
    assert (folds.loc[0, "params"]["fast"], folds.loc[0, "params"]["slow"]) == best
    test = run_backtest(factory(folds.loc[0, "params"]), data.iloc(slice(0, first.test.stop)), CONFIG,
                        start=first.test.start)
    assert folds.loc[0, "test_sharpe"] == pytest.approx(test.stats.sharpe)
    # The stitched curve covers the test windows once each, in order, continuing fold to fold.
    assert result.equity.index.is_monotonic_increasing and result.equity.index.is_unique
    assert result.equity.index[0] == data.index[first.test.start]
    assert result.equity.iloc[0] == CONFIG.initial_cash
    assert result.stats.total_return == pytest.approx(np.prod(1 + folds["test_return"]) - 1, rel=1e-9)


def test_walk_forward_never_reads_past_a_fold(data):
    splitter = WalkForward(train_size=250, test_size=100)
    base = walk_forward(factory, GRID, data, splitter, CONFIG)
    values = data.values.copy()
    cut = splitter.split(data.n_bars)[1].test.stop
    values[cut:, :, :4] *= 3.0
    changed = walk_forward(
        factory, GRID, MarketData(values, data.index, data.symbols, data.calendars), splitter, CONFIG
    )
    pd.testing.assert_frame_equal(base.folds.iloc[:2], changed.folds.iloc[:2])


def test_walk_forward_skips_invalid_combinations_and_rejects_bad_input(data):
    result = walk_forward(factory, INVALID, data, WalkForward(250, 100), CONFIG)
    assert all(p["fast"] < p["slow"] for p in result.folds["params"])
    with pytest.raises(ValueError, match="no combination"):
        walk_forward(factory, {"fast": [30], "slow": [20]}, data, WalkForward(250, 100), CONFIG)
    with pytest.raises(ValueError, match="unknown metric 'profit'"):
        walk_forward(factory, GRID, data, WalkForward(250, 100), CONFIG, metric="profit")


def test_monte_carlo_is_seeded_and_brackets_the_observed_values(data):
    result = run_backtest(factory({}), data, CONFIG)
    mc = monte_carlo(result, n_samples=400, block=5, seed=3)
    again = monte_carlo(result, n_samples=400, block=5, seed=3)
    np.testing.assert_array_equal(mc.sharpe, again.sharpe)
    table = mc.intervals(0.95)
    assert list(table.columns) == ["observed", "2.5%", "median", "97.5%"]
    low, high = table.loc["sharpe (bootstrap)", ["2.5%", "97.5%"]]
    assert low < result.stats.sharpe < high
    assert (mc.max_drawdown <= 0).all() and (mc.trade_max_drawdown <= 0).all()
    assert len(mc.trade_max_drawdown) == 400
    # Shuffling trade order cannot change the sum of the PnL, only the path; the observed path is one of them.
    assert table.loc["max_drawdown (trade order)", "observed"] >= mc.trade_max_drawdown.min()


def test_monte_carlo_of_constant_returns_has_no_spread():
    index = pd.date_range("2024-01-01", periods=50, tz="UTC")
    equity = pd.Series(100 * 1.01 ** np.arange(50), index=index)
    result = run_backtest(factory({}), generate_market(n_symbols=1, n_days=60, seed=0), CONFIG)
    fake = replace(result, equity=equity, trades=result.trades.iloc[:0])
    mc = monte_carlo(fake, n_samples=20, block=3, seed=0)
    np.testing.assert_allclose(mc.max_drawdown, 0.0)
    assert len(mc.trade_max_drawdown) == 0
    assert "max_drawdown (trade order)" not in mc.intervals().index


def test_parameter_grid_matches_direct_runs_and_marks_invalid_pairs(data):
    grid = parameter_grid(factory, data, ("fast", [5, 30]), ("slow", [20, 40]), CONFIG, metric="total_return")
    assert grid.shape == (2, 2) and grid.index.name == "slow" and grid.columns.name == "fast"
    assert np.isnan(grid.loc[20, 30])
    direct = run_backtest(factory({"fast": 5, "slow": 40}), data, CONFIG).stats.total_return
    assert grid.loc[40, 5] == pytest.approx(direct)
