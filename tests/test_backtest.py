"""The backtest engine: the vectorised replay fills exactly like stepping the env; results, round trips,
risk events and the command line."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from agents.registry import make_policy
from envs.data.market_data import MarketData
from envs.data.sources import load_data
from envs.data.synthetic import generate_market
from envs.sim.execution import ExecutionConfig
from envs.sim.replay import replay_weights
from envs.sim.risk import RiskConfig
from envs.sim.trades import round_trips
from experiments import backtest as cli
from experiments.engine import BacktestConfig, run_backtest


class SteppedOnly:
    """Hides a bot's act_batch so the engine steps the env; its actions are precomputed for speed
    (``tests/test_bots.py`` shows they equal the bot's own ``act``)."""

    def __init__(self, bot, data: MarketData) -> None:
        self.name = bot.name
        self.allow_short = bot.allow_short
        self.actions = bot.act_batch(data)

    def reset(self, seed=None) -> None:
        pass

    def act(self, obs, info):
        return self.actions[info["t"]]


@pytest.fixture(scope="module")
def one() -> MarketData:
    return generate_market(n_symbols=1, n_days=400, seed=5)


@pytest.fixture(scope="module")
def many() -> MarketData:
    return generate_market(n_symbols=3, n_days=400, seed=6)


EXECUTIONS = {
    "default": ExecutionConfig(),
    "costly_short_whole": ExecutionConfig(
        commission=0.002, commission_per_share=0.005, slippage_bps=5, spread_bps=4, fractional=False,
        allow_short=True,
    ),
    "band": ExecutionConfig(allow_short=True, min_weight_change=0.02),
    "close_fill_leverage": ExecutionConfig(allow_short=True, fill_at="next_close", max_leverage=2.0),
}


@pytest.mark.parametrize("execution", EXECUTIONS.values(), ids=EXECUTIONS.keys())
@pytest.mark.parametrize("data_name", ["one", "many"])
@pytest.mark.parametrize("bot_name", ["consensus", "breakout", "macd_momentum"])
def test_replay_fills_exactly_like_stepping_the_env(bot_name, data_name, execution, request):
    data = request.getfixturevalue(data_name)
    params = {"allow_short": execution.allow_short, "sizing": "volatility", "fraction": 0.5}
    bot = make_policy(bot_name, params)
    config = BacktestConfig(execution=execution, risk=None)
    fast = run_backtest(bot, data, config)
    slow = run_backtest(SteppedOnly(bot, data), data, config)
    assert (fast.mode, slow.mode) == ("replay", "step")
    assert len(fast.fills) > 5
    pd.testing.assert_frame_equal(fast.fills, slow.fills)
    assert fast.equity.index.equals(slow.equity.index)
    np.testing.assert_allclose(fast.equity, slow.equity, rtol=1e-12)
    np.testing.assert_array_equal(fast.positions, slow.positions)


@pytest.mark.parametrize("data_name", ["one", "many"])
def test_replay_charges_the_borrow_fee_like_the_env(data_name, request):
    data = request.getfixturevalue(data_name)
    execution = ExecutionConfig(allow_short=True, borrow_rate=0.08)
    bot = make_policy("macd_momentum", {"allow_short": True, "fraction": 0.3})
    config = BacktestConfig(execution=execution, risk=None)
    fast, slow = run_backtest(bot, data, config), run_backtest(SteppedOnly(bot, data), data, config)
    np.testing.assert_allclose(fast.fills["quantity"], slow.fills["quantity"], rtol=1e-12)
    np.testing.assert_allclose(fast.equity, slow.equity, rtol=1e-10)
    no_fee = run_backtest(bot, data, replace(config, execution=replace(execution, borrow_rate=0.0)))
    assert fast.equity.iloc[-1] < no_fee.equity.iloc[-1]
    assert fast.stats.total_costs > no_fee.stats.total_costs


def test_replay_stops_when_the_account_is_wiped_out():
    index = pd.date_range("2024-01-01", periods=6, tz="UTC")
    close = np.array([100.0, 100.0, 150.0, 250.0, 300.0, 310.0])
    values = np.repeat(close[:, None, None], 5, axis=2)
    values[:, :, 4] = 1e6
    data = MarketData(values, index, ("X",))
    weights = np.full((6, 1), -1.0)
    run = replay_weights(data, weights, ExecutionConfig(allow_short=True, max_leverage=2.0), 1000.0, 0)
    assert run.equity.iloc[-1] <= 0 and len(run.equity) == 4


def test_result_record_is_consistent(many):
    bot = make_policy("sma_crossover", {"fraction": 0.3})
    result = run_backtest(bot, many, BacktestConfig(risk=None))
    assert result.equity.iloc[0] == 100_000.0
    assert result.positions.shape == (len(result.equity), many.n_symbols)
    assert result.benchmark.iloc[0] == 100_000.0 and result.benchmark.index.equals(result.equity.index)
    # Cash is what the fills paid (slippage is inside the fill price); equity marks the rest at the close.
    fills = result.fills
    cash = 100_000.0 - (fills["quantity"] * fills["price"]).sum() - fills["commission"].sum()
    last = many.close[many.index.get_loc(result.equity.index[-1])]
    assert result.equity.iloc[-1] == pytest.approx(cash + result.positions[-1] @ last, rel=1e-12)
    held = fills.groupby("symbol")["quantity"].sum().reindex(many.symbols, fill_value=0.0)
    np.testing.assert_allclose(held.to_numpy(), result.positions[-1], atol=1e-9)
    assert result.stats.n_trades == len(result.trades) > 0


def test_round_trips_split_flips_and_net_every_cost():
    ts = pd.date_range("2024-01-01", periods=5, tz="UTC")
    fills = pd.DataFrame({
        "timestamp": ts, "symbol": "X",
        "quantity": [10.0, 5.0, -25.0, 10.0, 5.0],
        "price": [100.0, 110.0, 120.0, 90.0, 95.0],
        "commission": [1.0, 0.5, 2.5, 1.0, 0.5],
        "impact_cost": 0.0,
        "reason": "policy",
    })
    trades = round_trips(fills)
    assert trades["side"].tolist() == ["long", "short"]
    long, short = trades.iloc[0], trades.iloc[1]
    # Long 15 (10 @100, 5 @110) closed by 15 of the 25 sold @120; that fill's commission splits 15:10.
    assert long["pnl"] == pytest.approx(15 * 120 - 1000 - 550 - (1.0 + 0.5 + 2.5 * 15 / 25))
    assert long["entry_price"] == pytest.approx(1550 / 15) and long["size"] == 15
    assert long["return"] == pytest.approx(long["pnl"] / 1550)
    assert short["pnl"] == pytest.approx(10 * 120 - 10 * 90 - (2.5 * 10 / 25 + 1.0))
    assert short["exit_time"] == ts[3]
    # The last buy opens a position that is still open: not a closed trade.
    assert len(trades) == 2


def test_round_trips_per_symbol_in_exit_order():
    ts = pd.date_range("2024-01-01", periods=5, tz="UTC")
    fills = pd.DataFrame({
        "timestamp": ts, "symbol": ["A", "B", "A", "B", "A"],
        "quantity": [10.0, -5.0, -10.0, 5.0, 3.0],
        "price": [10.0, 20.0, 12.0, 18.0, 11.0],
        "commission": 1.0, "impact_cost": 0.5, "reason": "policy",
    })
    trades = round_trips(fills)
    assert trades[["symbol", "side"]].values.tolist() == [["A", "long"], ["B", "short"]]
    assert trades["pnl"].tolist() == pytest.approx([20.0 - 3.0, 10.0 - 3.0])
    assert trades["exit_time"].tolist() == [ts[2], ts[3]]
    assert round_trips(fills.iloc[:1]).empty and round_trips(fills.iloc[:0]).empty


def test_risk_layer_runs_in_the_env_and_records_why(many):
    risk = RiskConfig(max_position=0.15, stop_loss=0.01)
    bot = make_policy("breakout", {"fraction": 0.5})
    result = run_backtest(bot, many, BacktestConfig(risk=risk))
    assert result.mode == "step"
    assert {"max_position", "stop_loss"} <= set(result.risk_events["rule"])
    assert (result.fills["reason"] == "stop_loss").any()
    marks = many.close[many.index.get_indexer(result.equity.index)]
    weights = result.positions * marks / result.equity.to_numpy()[:, None]
    # Drift can lift a held position above the cap; a fresh fill never exceeds it by more than a bar's move.
    assert np.abs(weights).max() < 0.15 * 1.2


def test_short_bot_in_a_long_only_env_is_refused(many):
    with pytest.raises(ValueError, match="allow_short=True.*long-only"):
        run_backtest(make_policy("pairs_trading"), many, BacktestConfig(risk=None))


def test_command_line_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "report"
    code = cli.main([
        "sma_crossover", "buy_and_hold", "--data", "synthetic:n_symbols=2,n_days=300",
        "--param", "fast=5", "--param", "sma_crossover.slow=15", "--no-risk", "--out", str(out),
        "--monte-carlo", "50",
    ])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Backtest comparison" in printed and "sma_crossover" in printed
    assert (out / "report.html").is_file() and "Monte Carlo" in (out / "report.html").read_text()
    stats = json.loads((out / "stats.json").read_text())
    assert set(stats) == {"sma_crossover", "buy_and_hold", "buy & hold, no rules"}
    for name in stats:
        # The console table's names and values, unrounded.
        assert {"sharpe", "total_return", "max_drawdown", "exposure", "n_trades"} <= set(stats[name])
        row = next(line for line in printed.splitlines() if line.lstrip("│┃ ").startswith("n_trades "))
        assert f"{stats[name]['n_trades']:,}" in row
    equity = pd.read_csv(out / "equity.csv", index_col="timestamp")
    assert list(equity.columns) == ["sma_crossover", "buy_and_hold", "buy & hold, no rules", "benchmark"]
    assert equity["sma_crossover"].iloc[-1] == pytest.approx(stats["sma_crossover"]["final_equity"])
    trades = pd.read_csv(out / "trades.csv", parse_dates=["exit_time"])
    assert trades["exit_time"].is_monotonic_increasing and set(trades["policy"]) <= set(stats)
    assert len(trades) == sum(stats[n]["n_trades"] for n in stats)


def test_command_line_grid_and_walk_forward(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("sma_crossover:\n  fraction: 0.5\n")
    code = cli.main([
        "sma_crossover", "--data", "synthetic:n_symbols=1,n_days=400", "--no-risk",
        "--params", str(params), "--grid", "fast=3,5", "--grid", "slow=10,20",
        "--walk-forward", "150:50", "--out", str(tmp_path),
    ])
    assert code == 0
    assert "walk-forward out-of-sample" in capsys.readouterr().out
    page = (tmp_path / "report.html").read_text()
    assert "sharpe over fast x slow" in page and "walk-forward folds" in page


def test_command_line_reports_bad_input(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["--data", "synthetic"])
    assert cli.main(["no_such_bot", "--data", "synthetic:n_days=100", "--out", str(tmp_path)]) == 2
    assert "error: unknown policy" in capsys.readouterr().err
    spec = tmp_path / "spec.yaml"
    spec.write_text("risk: {max_positon: 0.3}\n")
    assert cli.main(["sma_crossover", "--data", "synthetic:n_days=100", "--spec", str(spec),
                     "--out", str(tmp_path)]) == 2
    assert re.search(r"error: .*spec.yaml: unknown risk field\(s\) \['max_positon'\]", capsys.readouterr().err)


def test_start_date_keeps_earlier_bars_for_warm_up(tmp_path, capsys):
    out = tmp_path / "report"
    data = load_data("synthetic:n_symbols=1,n_days=400")
    start = data.index[300]
    code = cli.main([
        "sma_crossover", "--data", "synthetic:n_symbols=1,n_days=400", "--no-risk",
        "--start", f"{start:%Y-%m-%d}", "--out", str(out),
    ])
    assert code == 0
    direct = run_backtest(make_policy("sma_crossover"), data, BacktestConfig(risk=None), start=300)
    assert direct.equity.index[0] == start
    assert f"{direct.stats.final_equity:,.2f}" in capsys.readouterr().out


def test_buy_and_hold_resumes_after_the_drawdown_breakers_cooloff():
    """Fully invested through 2008 with the default rules (no position cap): the breaker flattens at a 20%
    drawdown, stays flat for the cool-off, then buys back in instead of sitting in cash for good."""
    data = load_data("sample:SPX").slice("2007-06-01", "2010-12-31")
    risk = replace(RiskConfig(), max_position=None)
    result = run_backtest(make_policy("buy_and_hold"), data, BacktestConfig(risk=risk))
    events = result.risk_events
    trips = events[events["rule"] == "max_drawdown"]
    assert len(trips) >= 1
    first = result.equity.index.get_loc(trips["timestamp"].iloc[0])
    cooloff = risk.drawdown_cooloff
    held = result.positions[:, 0] != 0
    assert not held[first + 2 : first + cooloff].any()
    assert held[first + cooloff + 2 :].any()
