"""Order building blocks: client order ids, order validation, planning from weights, backoff, market hours."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from alpaca_server import FakeAlpaca

from brokers.alpaca import AlpacaBroker
from brokers.base import MAX_CLIENT_ORDER_ID, BrokerUnavailable, Clock, OrderRequest, Side
from brokers.market_hours import is_trading_day, sessions, trading_window
from brokers.order_ids import client_order_id
from brokers.planning import plan_orders, target_shares
from brokers.retry import RetryPolicy, TransientError, call_with_retry

BAR = pd.Timestamp("2024-03-04 21:00", tz="UTC")


# ---------------------------------------------------------------------- client order ids
def test_client_order_ids_are_deterministic_short_and_distinct() -> None:
    a = client_order_id("run-" + "x" * 200, BAR, "SPY")
    assert a == client_order_id("run-" + "x" * 200, BAR.tz_convert("America/New_York"), "SPY")
    assert len(a) <= MAX_CLIENT_ORDER_ID
    others = {
        client_order_id("run-" + "x" * 200, BAR + pd.Timedelta(days=1), "SPY"),
        client_order_id("run-" + "x" * 200, BAR, "AAPL"),
        client_order_id("run-" + "x" * 200, BAR, "SPY", "open"),
        client_order_id("other-run", BAR, "SPY"),
    }
    assert a not in others and len(others) == 4


def test_order_request_validation_names_the_order() -> None:
    with pytest.raises(ValueError, match="order 'c1' .*qty must be a positive finite number"):
        OrderRequest("SPY", "buy", -1, "c1")
    with pytest.raises(ValueError, match="client_order_id must have 1..48"):
        OrderRequest("SPY", "buy", 1, "x" * 49)
    with pytest.raises(ValueError, match="limit order needs a positive limit_price"):
        OrderRequest("SPY", "buy", 1, "c2", type="limit")
    with pytest.raises(ValueError):
        OrderRequest("SPY", "hold", 1, "c3")


# ---------------------------------------------------------------------- planning
def test_target_shares_truncate_towards_zero_and_shorts_are_whole() -> None:
    shares = target_shares(
        {"A": 0.5, "B": -0.3, "C": 0.0}, {"A": 30.0, "B": 7.0, "C": 1.0}, 1_000.0, fractional=True
    )
    assert shares == {"A": pytest.approx(16.666666), "B": -42.0, "C": 0.0}
    assert target_shares({"A": 0.5}, {"A": 30.0}, 1_000.0, fractional=False) == {"A": 16.0}


@pytest.mark.parametrize(
    "weights, prices, equity",
    [({"A": float("nan")}, {"A": 1.0}, 1.0), ({"A": 0.1}, {"A": 0.0}, 1.0), ({"A": 0.1}, {"A": 1.0}, -5.0)],
)
def test_target_shares_reject_bad_input(weights: dict, prices: dict, equity: float) -> None:
    with pytest.raises(ValueError):
        target_shares(weights, prices, equity, fractional=True)


def test_plan_sells_first_and_skips_tiny_trades() -> None:
    plan = plan_orders(
        {"A": 0.0, "B": 0.5, "C": 0.1001},
        {"A": 10.0, "C": 1000.0},
        {"A": 10.0, "B": 50.0, "C": 10.0},
        100_000.0,
        "r",
        BAR,
        fractional=False,
        min_trade_value=50.0,
    )
    assert [(p.request.symbol, p.request.side, p.request.qty) for p in plan] == [
        ("A", Side.SELL, 10.0),
        ("B", Side.BUY, 1000.0),
    ]
    assert plan[0].request.client_order_id == client_order_id("r", BAR, "A")


def test_plan_splits_a_flip_into_two_dependent_legs() -> None:
    plan = plan_orders({"A": -0.1}, {"A": 2.5}, {"A": 100.0}, 1_000.0, "r", BAR)
    close, open_ = plan
    assert (close.request.side, close.request.qty, close.depends_on) == (Side.SELL, 2.5, None)
    assert (open_.request.side, open_.request.qty) == (Side.SELL, 1.0)
    assert open_.depends_on == close.request.client_order_id == client_order_id("r", BAR, "A", "close")


def test_plan_fractional_orders_are_market_day() -> None:
    (order,) = plan_orders({"A": 0.333}, {}, {"A": 70.0}, 1_000.0, "r", BAR)
    assert order.request.is_fractional and order.request.qty == pytest.approx(4.757142)
    assert (order.request.type.value, order.request.time_in_force.value) == ("market", "day")


def test_same_decision_plans_the_same_orders() -> None:
    args = ({"A": 0.2, "B": -0.1}, {"B": 3.0}, {"A": 10.0, "B": 20.0}, 5_000.0, "r", BAR)
    assert plan_orders(*args) == plan_orders(*args)


# ---------------------------------------------------------------------- retry policy
def test_backoff_doubles_is_capped_and_respects_retry_after() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=1.0, max_delay=5.0, jitter=0.0)
    assert [policy.delay(k) for k in range(4)] == [1.0, 2.0, 4.0, 5.0]
    assert policy.delay(0, retry_after=3.0) == 3.0 and policy.delay(2, retry_after=60.0) == 5.0
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_backoff_jitter_spreads_waits_within_half_to_full_backoff() -> None:
    waits = [RetryPolicy(base_delay=1.0, max_delay=64.0, seed=s).delay(3) for s in range(200)]
    assert 4.0 <= min(waits) < 4.4 and 7.6 < max(waits) <= 8.0, "equal jitter: half to all of 2**3"
    again = [RetryPolicy(base_delay=1.0, max_delay=64.0, seed=s).delay(3) for s in range(200)]
    assert waits == again, "seeded: the same waits"


def test_call_with_retry_passes_rejects_through() -> None:
    calls: list[int] = []

    def flaky(attempt: int) -> str:
        calls.append(attempt)
        if attempt < 2:
            raise TransientError("HTTP 503")
        return "ok"

    waits: list[float] = []
    assert call_with_retry(flaky, RetryPolicy(base_delay=0.5, jitter=0.0), "op", waits.append) == "ok"
    assert calls == [0, 1, 2] and waits == [0.5, 1.0]
    with pytest.raises(BrokerUnavailable, match="op: gave up after 2 attempts"):
        call_with_retry(
            lambda n: (_ for _ in ()).throw(TransientError("down")),
            RetryPolicy(max_attempts=2, base_delay=0),
            "op",
            waits.append,
        )
    with pytest.raises(KeyError):
        call_with_retry(lambda n: {}["x"], RetryPolicy(), "op", waits.append)


# ---------------------------------------------------------------------- market hours
def clock(now: str, is_open: bool, next_open: str, next_close: str) -> Clock:
    return Clock(
        *(pd.Timestamp(t, tz="UTC") for t in (now,)),
        is_open,
        pd.Timestamp(next_open, tz="UTC"),
        pd.Timestamp(next_close, tz="UTC"),
    )


def test_trading_window_open_closed_and_near_the_close() -> None:
    assert trading_window(clock("2024-03-04 15:00", True, "2024-03-05 14:30", "2024-03-04 21:00")).can_trade
    closed = trading_window(clock("2024-03-04 22:00", False, "2024-03-05 14:30", "2024-03-05 21:00"))
    assert not closed.can_trade and closed.wait_until == pd.Timestamp("2024-03-05 14:30", tz="UTC")
    closing = trading_window(clock("2024-03-04 20:57", True, "2024-03-05 14:30", "2024-03-04 21:00"))
    assert not closing.can_trade and "closes" in closing.reason


def test_holidays_are_not_trading_days(alpaca_env: FakeAlpaca) -> None:
    alpaca_env.holidays = {dt.date(2024, 12, 25)}
    broker = AlpacaBroker.from_env()
    assert not is_trading_day(broker, dt.date(2024, 12, 25))
    assert is_trading_day(broker, dt.date(2024, 12, 24))
    days = sessions(broker, dt.date(2024, 12, 23), dt.date(2024, 12, 29))
    assert [d.date.day for d in days] == [23, 24, 26, 27]
    with pytest.raises(ValueError, match="before start"):
        sessions(broker, dt.date(2024, 12, 29), dt.date(2024, 12, 23))
