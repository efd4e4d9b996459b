"""Options bots through the backtest engine and command line: the same record and metrics as a direct
run of Options-v0, seeded determinism, mixed stock and options comparisons on one index, notes for the
settings the options env does not apply, and round trips of legs opened at a zero price."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from agents.registry import make_policy
from baselines.options_bots import OPTIONS_BOTS
from envs.data.market_data import MarketData
from envs.data.synthetic import generate_market
from envs.environments.options import ENV_ID, OptionsEnv
from envs.sim.execution import ExecutionConfig
from envs.sim.metrics import compute_stats
from envs.sim.risk import RiskConfig
from envs.sim.trades import round_trips
from experiments import backtest as cli
from experiments.engine import BacktestConfig, make_env, run_backtest, start_bar

CONFIG = BacktestConfig(risk=None, seed=3)


@pytest.fixture(scope="module")
def market() -> MarketData:
    return generate_market(n_symbols=1, n_days=320, seed=11)


@pytest.fixture(scope="module")
def runs(market):
    return {name: run_backtest(make_policy(name), market, CONFIG) for name in sorted(OPTIONS_BOTS)}


@pytest.mark.parametrize("name", sorted(OPTIONS_BOTS))
def test_engine_run_is_the_options_env_episode(market, runs, name):
    result = runs[name]
    env = OptionsEnv(market, costs=CONFIG.option_costs())
    bot = make_policy(name)
    obs, info = env.reset(seed=CONFIG.seed)
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(bot.act(obs, info))
        done = terminated or truncated
    assert (result.env_id, result.mode, result.notes) == (ENV_ID, "step", ())
    pd.testing.assert_series_equal(result.equity, env.equity_series())
    pd.testing.assert_frame_equal(result.fills, env.trade_frame())
    assert result.equity.index[0] == market.index[env.first_t] and result.equity.index[-1] == market.index[-1]
    assert result.positions.shape == (len(result.equity), 2)
    assert result.positions[-1, 0] == info["positions"][0]
    assert result.positions[-1, 1] == sum(abs(leg.quantity) for leg in info["legs"])
    # Benchmark: buy-and-hold of the underlying from the start bar.
    close = market.close[env.first_t:, 0]
    np.testing.assert_allclose(result.benchmark, CONFIG.initial_cash * close / close[0], rtol=1e-12)


@pytest.mark.parametrize("name", sorted(OPTIONS_BOTS))
def test_options_metrics_mean_what_the_engine_docs_say(runs, name):
    result = runs[name]
    fills, stats = result.fills, result.stats
    assert len(result.trades) > 0 and stats.n_trades == len(result.trades)
    # Round trips per contract (OCC symbol) and for the shares, nothing else.
    assert result.trades["symbol"].str.fullmatch(r"SYN0( \d{6}[CP]\d{8})?").all()
    options = fills[fills["kind"] != "stock"]
    opened = options[options["reason"] == "open"]
    assert set(result.trades["symbol"]) <= set(opened["symbol"]) | {"SYN0"}
    # Exposure: bars ending with shares or any option leg, an iron condor's zero net contracts included.
    held = (result.positions != 0).any(axis=1)
    assert stats.exposure == pytest.approx(held.mean()) and 0 < stats.exposure <= 1
    # Turnover: all cash changing hands (premium x 100 per contract, shares, settlements) per year over
    # average equity.
    years = (len(result.equity) - 1) / result.stats.periods_per_year
    cash_traded = float((fills["quantity"].abs() * fills["price"]).sum())
    assert stats.turnover == pytest.approx(cash_traded / result.equity.mean() / years)
    assert stats.total_costs == pytest.approx(fills["commission"].sum() + fills["impact_cost"].sum())
    assert all(np.isfinite([stats.sharpe, stats.max_drawdown, stats.beta, stats.win_rate]))


@pytest.mark.parametrize("name", sorted(OPTIONS_BOTS))
def test_same_seed_same_result(market, runs, name):
    again = run_backtest(make_policy(name), market, CONFIG)
    first = runs[name]
    pd.testing.assert_series_equal(again.equity, first.equity)
    pd.testing.assert_frame_equal(again.fills, first.fills)
    pd.testing.assert_frame_equal(again.trades, first.trades)
    pd.testing.assert_series_equal(again.stats.to_series(), first.stats.to_series())


def test_mixed_stock_and_options_share_the_start_bar_and_index(market):
    policies = [make_policy(n) for n in ("sma_crossover", "covered_calls", "buy_and_hold", "iv_timing")]
    start = start_bar(policies, market, CONFIG)
    assert start == make_env(policies[1], market, CONFIG).first_t > start_bar(policies[:1], market, CONFIG)
    results = [run_backtest(p, market, CONFIG, start=start) for p in policies]
    assert [r.env_id for r in results] == ["AlpacaGym/Stocks-v0", ENV_ID, "AlpacaGym/Stocks-v0", ENV_ID]
    index = results[0].equity.index
    assert index[0] == market.index[start] and index[-1] == market.index[-1]
    for r in results[1:]:
        assert r.equity.index.equals(index)
        pd.testing.assert_series_equal(r.benchmark, results[0].benchmark)


def test_stock_costs_carry_over_to_the_options_stock_leg():
    execution = ExecutionConfig(commission=0.002, spread_bps=3.0, slippage_bps=1.5)
    costs = BacktestConfig(execution=execution, commission_per_contract=0.5).option_costs()
    assert (costs.commission_per_contract, costs.stock_commission) == (0.5, 0.002)
    # A stock bot and a covered call buying or selling shares at the same open pay the same price.
    for side in (1.0, -1.0):
        stock_env_price = 100.0 * (1 + side * execution.price_impact)
        assert costs.stock_price(100.0, side) == pytest.approx(stock_env_price, rel=1e-15)


def test_ignored_settings_are_named_in_the_notes(market):
    execution = ExecutionConfig(fill_at="next_close", allow_short=True, fractional=False)
    config = BacktestConfig(risk=RiskConfig(), seed=3, execution=execution)
    result = run_backtest(make_policy("weekly_puts"), market, config)
    risk_note, execution_note = result.notes
    assert risk_note.startswith("risk layer not applied in AlpacaGym/Options-v0")
    assert "fill_at='next_close'" in execution_note and "allow_short=True" in execution_note
    assert "fractional" not in execution_note  # whole contracts of 100 shares: already whole shares
    assert result.risk_events.empty
    assert run_backtest(make_policy("sma_crossover"), market, config).notes == ()


def test_options_bot_on_several_symbols_is_refused():
    data = generate_market(n_symbols=2, n_days=200, seed=1)
    with pytest.raises(ValueError, match=r"covered_calls trades options on one underlying .*--symbols"):
        run_backtest(make_policy("covered_calls"), data, CONFIG)


def test_command_line_compares_stock_and_options_bots(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    out = tmp_path / "report"
    names = ["covered_calls", "iron_condors", "iv_timing", "weekly_puts", "buy_and_hold"]
    code = cli.main([*names, "--data", "synthetic:n_symbols=2,n_days=300,seed=4", "--symbols", "SYN0",
                     "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if "covered_calls" in line)
    assert all(name in header for name in names)
    env_row = next(line for line in printed.splitlines() if line.lstrip("│┃ ").startswith("env "))
    # buy_and_hold, and the "buy & hold, no rules" line every comparison ends with
    assert env_row.count("Options-v0") == 4 and env_row.count("Stocks-v0") == 2
    assert "note (covered_calls, iron_condors, iv_timing, weekly_puts): risk layer not applied" in printed
    page = (out / "report.html").read_text()
    assert "option costs" in page and page.count("(Options-v0)") == 4
    assert "risk.max_position" in page  # a stock bot ran too, so the risk rules are listed (and noted above)
    assert "premium paid or received" in page  # what an options trade's return means
    assert cli.main(["covered_calls", "--data", "synthetic:n_symbols=2,n_days=300", "--out", str(out)]) == 2
    assert "trades options on one underlying" in capsys.readouterr().err


def test_round_trip_of_a_leg_opened_at_zero_has_no_return_and_no_warning():
    ts = pd.date_range("2024-01-01", periods=4, tz="UTC")
    fills = pd.DataFrame({
        "timestamp": ts, "symbol": ["C", "C", "P", "P"],
        "quantity": [-100.0, 100.0, -100.0, 100.0],
        "price": [0.0, 0.05, 1.0, 0.5],  # a wing sold at a zero bid, bought back at 0.05
        "commission": 0.65, "impact_cost": 0.0, "reason": "open",
    })
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trades = round_trips(fills)
    zero, paid = trades.iloc[0], trades.iloc[1]
    assert np.isnan(zero["return"]) and zero["pnl"] == pytest.approx(-5.0 - 1.3)
    assert paid["return"] == pytest.approx((50.0 - 1.3) / 100.0)
    equity = pd.Series([1000.0, 1001.0, 1002.0, 1003.0], index=ts)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stats = compute_stats(equity, trades)
    assert stats.avg_trade_return == pytest.approx(paid["return"]) and stats.n_trades == 2
    only_zero = compute_stats(equity, trades.iloc[:1])
    assert np.isnan(only_zero.avg_trade_return) and only_zero.avg_trade == pytest.approx(zero["pnl"])


def test_start_bar_respects_a_later_configured_start(market):
    policy = make_policy("iron_condors")
    first = make_env(policy, market, CONFIG).first_t
    assert start_bar([policy], market, replace(CONFIG, start=first + 10)) == first + 10
    with pytest.raises(ValueError, match="before the envs' warm-up ends"):
        start_bar([policy], market, replace(CONFIG, start=first - 1))
