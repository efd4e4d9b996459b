"""SimBroker: the backtest's fill model behind the Broker protocol."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from brokers.base import Broker, OrderRejected, OrderRequest, OrderStatus, WashTradeRejected
from brokers.sim import SimBroker
from envs.data.market_data import HIGH, LOW
from envs.sim.execution import ExecutionConfig, rebalance

DAYS = pd.date_range("2024-01-02", periods=4, freq="B", tz="UTC")


def bar(open_: float, close: float, spread: float = 2.0) -> list[float]:
    return [open_, max(open_, close) + spread, min(open_, close) - spread, close, 1e6]


def test_is_a_broker_and_fills_at_the_next_open() -> None:
    sim = SimBroker(["A"], execution=ExecutionConfig(commission=0.0))
    assert isinstance(sim, Broker)
    sim.on_bar(DAYS[0], [bar(100, 101)])
    order = sim.submit(OrderRequest("A", "buy", 10, "o1"))
    assert order.status is OrderStatus.ACCEPTED and sim.positions() == {}
    fills = sim.on_bar(DAYS[1], [bar(103, 105)])
    assert [(f.qty, f.price) for f in fills] == [(10, 103.0)]
    done = sim.get_order(client_order_id="o1")
    assert (done.status, done.filled_qty, done.filled_avg_price) == (OrderStatus.FILLED, 10, 103.0)
    assert sim.positions()["A"].qty == 10 and sim.positions()["A"].current_price == 105.0
    assert sim.account().equity == pytest.approx(100_000 - 1030 + 1050)


@pytest.mark.parametrize(
    "config",
    [
        ExecutionConfig(commission=0.001, slippage_bps=5.0, spread_bps=4.0),
        ExecutionConfig(commission=0.0, commission_per_share=0.01, fractional=False),
        ExecutionConfig(commission=0.002, slippage_bps=50.0, fill_at="next_close"),
    ],
    ids=["fraction+impact", "per-share-whole", "next-close"],
)
def test_fills_equal_the_backtest_rebalance(config: ExecutionConfig) -> None:
    """The same share changes cost the same in the simulated broker as in envs.sim.execution.rebalance."""
    prev = np.array([bar(100, 100), bar(50, 50)], dtype=float)
    nxt = np.array([bar(101, 99), bar(49.5, 51)], dtype=float)
    sim = SimBroker(["A", "B"], initial_cash=50_000, execution=config)
    sim.on_bar(DAYS[0], prev)
    sim.submit(OrderRequest("A", "buy", 120, "a"))
    sim.submit(OrderRequest("B", "buy", 300, "b"))
    sim.on_bar(DAYS[1], nxt)

    price = nxt[:, config.fill_field]
    shares = np.array([120.0, 300.0])
    weights = shares * price / 50_000.0  # the target weights those shares are at the fill price
    # The shares are whole already; truncating w * equity / price could drop one to rounding, so the
    # reference sizes fractionally (the budget does not bind, so every other step is the same).
    ref_config = dataclasses.replace(config, fractional=True)
    ref = rebalance(
        np.array([50_000.0]),
        np.zeros((1, 2)),
        weights[None],
        price[None],
        nxt[None, :, LOW],
        nxt[None, :, HIGH],
        ref_config,
    )
    assert sim.portfolio.shares == pytest.approx(ref.shares[0])
    assert sim.portfolio.cash == pytest.approx(float(ref.cash[0]))
    assert sim.portfolio.commission_paid == pytest.approx(float(ref.commission.sum()))


def test_buys_are_scaled_to_cash_and_the_rest_cancelled() -> None:
    sim = SimBroker(["A"], initial_cash=1_000, execution=ExecutionConfig(commission=0.0, fractional=False))
    sim.on_bar(DAYS[0], [bar(100, 100)])
    sim.submit(OrderRequest("A", "buy", 15, "big"))
    sim.on_bar(DAYS[1], [bar(100, 100)])
    order = sim.get_order(client_order_id="big")
    assert (order.filled_qty, order.status) == (10, OrderStatus.CANCELED)
    assert sim.account().cash == pytest.approx(0.0)


def test_refuses_what_alpaca_refuses() -> None:
    sim = SimBroker(["A"], execution=ExecutionConfig(allow_short=False, fractional=False))
    sim.on_bar(DAYS[0], [bar(100, 100)])
    with pytest.raises(OrderRejected, match="unknown symbol 'Z'"):
        sim.submit(OrderRequest("Z", "buy", 1, "z"))
    with pytest.raises(OrderRejected, match="short selling is switched off"):
        sim.submit(OrderRequest("A", "sell", 1, "s"))
    with pytest.raises(OrderRejected, match="fractional shares are switched off"):
        sim.submit(OrderRequest("A", "buy", 0.5, "f"))
    with pytest.raises(OrderRejected, match="market orders only"):
        sim.submit(OrderRequest("A", "buy", 1, "l", type="limit", limit_price=99.0))
    first = sim.submit(OrderRequest("A", "buy", 5, "b"))
    assert sim.submit(OrderRequest("A", "buy", 5, "b")) == first
    with pytest.raises(WashTradeRejected):
        sim.submit(OrderRequest("A", "sell", 1, "w"))


def test_no_flip_in_one_order_and_cancel() -> None:
    sim = SimBroker(["A"], execution=ExecutionConfig(allow_short=True))
    sim.on_bar(DAYS[0], [bar(100, 100)])
    sim.submit(OrderRequest("A", "buy", 5, "b"))
    sim.on_bar(DAYS[1], [bar(100, 100)])
    with pytest.raises(OrderRejected, match="insufficient qty"):
        sim.submit(OrderRequest("A", "sell", 8, "flip"))
    order = sim.submit(OrderRequest("A", "sell", 5, "close"))
    sim.cancel(order.id)
    assert sim.open_orders() == [] and sim.on_bar(DAYS[2], [bar(100, 100)]) == []
    assert sim.positions()["A"].qty == 5


def test_bars_must_move_forward_and_match_symbols() -> None:
    sim = SimBroker(["A", "B"])
    with pytest.raises(RuntimeError, match="no bar delivered"):
        sim.account()
    sim.on_bar(DAYS[1], [bar(1, 1), bar(1, 1)])
    with pytest.raises(ValueError, match="not after"):
        sim.on_bar(DAYS[0], [bar(1, 1), bar(1, 1)])
    with pytest.raises(ValueError, match=r"shape \(2, 5\)"):
        sim.on_bar(DAYS[2], [bar(1, 1)])
    assert sim.clock().is_open and sim.clock().next_open == DAYS[1] + pd.Timedelta(days=1)
