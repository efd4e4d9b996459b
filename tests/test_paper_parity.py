"""Paper trading on the simulated broker against the backtest of the same policy over the same bars.

The live runner and the backtest env share the decision, the risk layer, the trade rule and the fill
arithmetic; one rule cannot be shared. A broker order carries a quantity fixed when it is sent, after the
decision bar's close, so the runner sizes shares at that close (:func:`brokers.planning.target_shares`),
while the backtest env (like backtesting.py) sizes them at the fill price, the next bar's open. The two
runs therefore trade the same bars, sides and prices, and differ only in quantities, by the overnight gap
``open[t+1] / close[t]``. On bars without an overnight gap they are equal to the cent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agents.registry import make_policy, policy_class
from brokers.journal import Journal
from brokers.runner import RunnerConfig
from brokers.sim import SimBroker
from envs.data.market_data import CLOSE, HIGH, LOW, OPEN, MarketData
from envs.data.sources import load_data
from experiments.engine import BacktestResult, run_backtest, start_bar
from experiments.paper import KillSwitch, make_runner, run_sim
from experiments.spec import ExperimentSpec, backtest_config, policy_defaults

SYMBOLS = ("SYN0", "SYN1")


def _gapless(data: MarketData) -> MarketData:
    """The bars with every open at the previous close (high and low widened to hold it)."""
    v = data.values.copy()
    v[1:, :, OPEN] = v[:-1, :, CLOSE]
    v[:, :, HIGH] = np.maximum(v[:, :, HIGH], v[:, :, OPEN])
    v[:, :, LOW] = np.minimum(v[:, :, LOW], v[:, :, OPEN])
    return MarketData(v, data.index, data.symbols)


def _paper_and_backtest(data: MarketData, tmp_path: Path) -> tuple[SimBroker, BacktestResult]:
    spec = ExperimentSpec()  # the default rules: 10% sizing, risk layer on, costs on
    policy = make_policy("sma_crossover", policy_defaults(policy_class("sma_crossover"), spec))
    config = backtest_config(spec)
    start = start_bar([policy], data, config)
    backtest = run_backtest(policy, data, config, start=start)
    broker = SimBroker(SYMBOLS, spec.initial_cash, spec.execution)
    runner_config = RunnerConfig(run_id="parity", execution=spec.execution, risk=spec.risk, seed=spec.seed)
    paper_policy = make_policy("sma_crossover", policy_defaults(policy_class("sma_crossover"), spec))
    runner = make_runner(paper_policy, broker, Journal(tmp_path / "journal.sqlite"), SYMBOLS, runner_config,
                         spec.initial_cash, data)
    run_sim(runner, broker, data, start, KillSwitch(), progress=False)
    return broker, backtest


@pytest.fixture(scope="module")
def market() -> MarketData:
    return load_data("synthetic").select(list(SYMBOLS))


def test_without_overnight_gaps_paper_trading_is_the_backtest_to_the_cent(
    market: MarketData, tmp_path: Path
) -> None:
    broker, backtest = _paper_and_backtest(_gapless(market), tmp_path)
    paper_fills = broker.portfolio.trade_frame()
    assert len(paper_fills) == len(backtest.fills) > 100
    assert broker.account().equity == pytest.approx(backtest.stats.final_equity, abs=0.01)
    for column in ("quantity", "price", "commission"):
        np.testing.assert_allclose(paper_fills[column], backtest.fills[column], rtol=1e-6, atol=1e-6)
    assert (paper_fills["timestamp"].to_numpy() == backtest.fills["timestamp"].to_numpy()).all()


def test_with_overnight_gaps_only_the_quantities_differ(market: MarketData, tmp_path: Path) -> None:
    broker, backtest = _paper_and_backtest(market, tmp_path)
    paper_fills = broker.portfolio.trade_frame()
    bt = backtest.fills
    # The same decisions, on the same bars, filled at the same prices...
    assert len(paper_fills) == len(bt) > 100
    assert (paper_fills["timestamp"].to_numpy() == bt["timestamp"].to_numpy()).all()
    assert (np.sign(paper_fills["quantity"]) == np.sign(bt["quantity"])).all()
    np.testing.assert_allclose(paper_fills["price"], bt["price"], rtol=1e-12)
    # ...in quantities sized at the decision bar's close instead of the fill bar's open: they differ on every
    # fill whose bar opened away from the previous close.
    index = {ts: t for t, ts in enumerate(market.index)}
    checked = 0
    for (_, p), (_, b) in zip(paper_fills.iterrows(), bt.iterrows()):
        t, j = index[b["timestamp"]], market.symbols.index(b["symbol"])
        gap = market.values[t, j, OPEN] / market.values[t - 1, j, CLOSE]
        if abs(gap - 1.0) > 1e-3:
            assert p["quantity"] != pytest.approx(b["quantity"], rel=1e-6)
            checked += 1
    assert checked > 50
    gap_pnl = broker.account().equity - backtest.stats.final_equity
    # The overnight gaps move the result by well under a tenth of a percent of the account here.
    assert 0 < abs(gap_pnl) < 1e-3 * backtest.stats.final_equity
