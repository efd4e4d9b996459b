"""AlpacaBroker against the local fake Alpaca: the protocol, credentials, and every injected fault."""

from __future__ import annotations

import datetime as dt
import logging

import pandas as pd
import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.requests import MarketOrderRequest
from alpaca_server import (
    DropConnection,
    FakeAlpaca,
    HttpError,
    LateFill,
    PartialFill,
    rate_limited,
    rejected,
    server_error,
)

from brokers.alpaca import AlpacaBroker
from brokers.base import (
    Broker,
    BrokerUnavailable,
    OrderNotFound,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    WashTradeRejected,
)
from brokers.credentials import LIVE_URL, PAPER_URL, AlpacaConfig, LiveTradingNotConfirmed
from brokers.retry import RetryPolicy


class Sleeps(list):
    """Records the waits the retry layer asks for instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def broker(alpaca_env: FakeAlpaca, sleeps: Sleeps) -> AlpacaBroker:
    return AlpacaBroker.from_env(retry=RetryPolicy(max_attempts=4, base_delay=0.01, jitter=0.0), sleep=sleeps)


def buy(qty: float, cid: str, symbol: str = "SPY") -> OrderRequest:
    return OrderRequest(symbol, "buy", qty, cid)


def sell(qty: float, cid: str, symbol: str = "SPY") -> OrderRequest:
    return OrderRequest(symbol, "sell", qty, cid)


def positions_match(broker: AlpacaBroker, server: FakeAlpaca) -> bool:
    return {s: p.qty for s, p in broker.positions().items()} == {
        s: p.qty for s, p in server.positions.items()
    }


# ---------------------------------------------------------------------- protocol
def test_account_positions_and_orders_round_trip(broker: AlpacaBroker, alpaca_env: FakeAlpaca) -> None:
    assert isinstance(broker, Broker)
    assert broker.account().equity == pytest.approx(100_000.0)
    order = broker.submit(buy(10, "cid-1"))
    assert (order.status, order.filled_qty, order.filled_avg_price) == (OrderStatus.FILLED, 10.0, 500.0)
    alpaca_env.set_price("SPY", 510.0)
    pos = broker.positions()["SPY"]
    assert (pos.qty, pos.avg_entry_price, pos.current_price, pos.market_value) == (10.0, 500.0, 510.0, 5100.0)
    acct = broker.account()
    assert (acct.cash, acct.equity) == (pytest.approx(95_000.0), pytest.approx(100_100.0))
    assert broker.get_order(order.id) == broker.get_order(client_order_id="cid-1")
    with pytest.raises(OrderNotFound):
        broker.get_order(client_order_id="nope")


def test_short_position_is_negative(broker: AlpacaBroker) -> None:
    broker.submit(sell(3, "short-1"))
    assert broker.positions()["SPY"].qty == -3.0


def test_cancel_and_open_orders(broker: AlpacaBroker, alpaca_env: FakeAlpaca) -> None:
    alpaca_env.inject(LateFill())
    order = broker.submit(buy(2, "late-1"))
    assert order.status is OrderStatus.ACCEPTED
    assert [o.client_order_id for o in broker.open_orders("SPY")] == ["late-1"]
    assert broker.open_orders("AAPL") == []
    broker.cancel(order.id)
    assert broker.get_order(order.id).status is OrderStatus.CANCELED
    broker.cancel(order.id)  # already finished: Alpaca's 422 is absorbed
    assert broker.open_orders() == []


def test_clock_and_calendar_skip_holidays_and_show_early_close(
    alpaca_env: FakeAlpaca, broker: AlpacaBroker
) -> None:
    alpaca_env.holidays = {dt.date(2024, 7, 4)}
    alpaca_env.early_closes = {dt.date(2024, 7, 3): dt.time(13, 0)}
    alpaca_env.set_time("2024-07-03 18:30")  # 14:30 New York, after the early close
    clock = broker.clock()
    assert not clock.is_open
    assert clock.next_open == pd.Timestamp("2024-07-05 13:30", tz="UTC")
    days = broker.calendar(dt.date(2024, 7, 1), dt.date(2024, 7, 7))
    assert [d.date.day for d in days] == [1, 2, 3, 5]
    assert days[2].close == pd.Timestamp("2024-07-03 17:00", tz="UTC")


def test_orders_wait_while_market_is_closed(alpaca_env: FakeAlpaca, broker: AlpacaBroker) -> None:
    alpaca_env.set_time("2024-03-09 15:00")  # Saturday
    order = broker.submit(buy(1, "weekend-1"))
    assert order.status is OrderStatus.ACCEPTED and broker.positions() == {}


# ---------------------------------------------------------------------- credentials and live gating
def test_config_from_env_defaults_to_paper() -> None:
    cfg = AlpacaConfig.from_env(
        environ={"APCA_API_KEY_ID": "AKTESTKEY123", "APCA_API_SECRET_KEY": "s3cr3t-value"}
    )
    assert cfg.base_url == PAPER_URL and cfg.paper
    text = repr(cfg)
    assert "s3cr3t-value" not in text and "AKTESTKEY123" not in text and "AKTE****" in text


def test_missing_keys_name_the_variable() -> None:
    with pytest.raises(ValueError, match="APCA_API_SECRET_KEY"):
        AlpacaConfig.from_env(environ={"APCA_API_KEY_ID": "k"})


@pytest.mark.parametrize(
    "live, env, error",
    [
        (True, {}, LiveTradingNotConfirmed),  # --live without the confirmation variable
        (False, {"APCA_API_BASE_URL": LIVE_URL}, LiveTradingNotConfirmed),  # live endpoint without --live
        (False, {"APCA_API_BASE_URL": LIVE_URL, "ALPACA_GYM_LIVE_CONFIRM": "yes"}, LiveTradingNotConfirmed),
        (True, {"APCA_API_BASE_URL": PAPER_URL, "ALPACA_GYM_LIVE_CONFIRM": "yes"}, ValueError),
    ],
)
def test_live_trading_needs_flag_and_confirmation(live: bool, env: dict[str, str], error: type) -> None:
    keys = {"APCA_API_KEY_ID": "k", "APCA_API_SECRET_KEY": "s"}
    with pytest.raises(error):
        AlpacaConfig.from_env(live=live, environ={**keys, **env})


def test_live_with_both_confirmations() -> None:
    env = {"APCA_API_KEY_ID": "k", "APCA_API_SECRET_KEY": "s", "ALPACA_GYM_LIVE_CONFIRM": "yes"}
    cfg = AlpacaConfig.from_env(live=True, environ=env)
    assert cfg.base_url == LIVE_URL and not cfg.paper


def test_secret_never_reaches_the_logs(alpaca_env: FakeAlpaca, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    broker = AlpacaBroker.from_env(retry=RetryPolicy(max_attempts=2, base_delay=0), sleep=lambda s: None)
    alpaca_env.inject(server_error())
    broker.submit(buy(1, "log-1"))
    with pytest.raises(OrderRejected):
        broker.submit(buy(10_000, "log-2"))
    logging.getLogger("test").info("broker %r", broker)
    assert caplog.records, "expected log lines to inspect"
    assert alpaca_env.secret_key not in caplog.text and alpaca_env.api_key not in caplog.text


# ---------------------------------------------------------------------- faults
def test_server_errors_are_retried_with_backoff(
    broker: AlpacaBroker, alpaca_env: FakeAlpaca, sleeps: Sleeps
) -> None:
    alpaca_env.inject(server_error(500), times=2)
    order = broker.submit(buy(1, "retry-500"))
    assert order.status is OrderStatus.FILLED
    assert sleeps == [0.01, 0.02]
    assert len(alpaca_env.orders) == 1 and positions_match(broker, alpaca_env)


def test_rate_limit_honours_retry_after(broker: AlpacaBroker, alpaca_env: FakeAlpaca, sleeps: Sleeps) -> None:
    alpaca_env.inject(rate_limited(retry_after=2.5), method="GET", path="/v2/account")
    assert broker.account().equity == pytest.approx(100_000.0)
    assert sleeps == [2.5]


def test_rejects_are_not_retried_and_carry_the_reason(
    broker: AlpacaBroker, alpaca_env: FakeAlpaca, sleeps: Sleeps
) -> None:
    alpaca_env.inject(rejected("account is restricted to liquidation only", status=403))
    with pytest.raises(OrderRejected, match="liquidation only") as info:
        broker.submit(buy(1, "reject-1"))
    assert info.value.status_code == 403 and info.value.client_order_id == "reject-1"
    assert sleeps == [] and alpaca_env.count("POST", "/v2/orders") == 1
    assert broker.positions() == {}


def test_insufficient_buying_power_reason(broker: AlpacaBroker) -> None:
    with pytest.raises(OrderRejected, match="insufficient buying power"):
        broker.submit(buy(1_000, "too-big"))


def test_dropped_connection_before_the_order_is_made(broker: AlpacaBroker, alpaca_env: FakeAlpaca) -> None:
    alpaca_env.inject(DropConnection())
    order = broker.submit(buy(2, "drop-before"))
    assert order.filled_qty == 2 and len(alpaca_env.orders) == 1
    assert positions_match(broker, alpaca_env)


def test_dropped_connection_after_the_order_is_made(broker: AlpacaBroker, alpaca_env: FakeAlpaca) -> None:
    alpaca_env.inject(DropConnection(after_processing=True))
    order = broker.submit(buy(2, "drop-after"))
    assert order.client_order_id == "drop-after"
    assert alpaca_env.count("POST", "/v2/orders") == 1, "the retry must look the order up, not post again"
    assert len(alpaca_env.orders) == 1 and broker.positions()["SPY"].qty == 2


def test_gateway_timeout_after_the_order_is_made(broker: AlpacaBroker, alpaca_env: FakeAlpaca) -> None:
    alpaca_env.inject(HttpError(504, "gateway timeout", after_processing=True))
    order = broker.submit(buy(3, "504-after"))
    assert order.filled_qty == 3 and len(alpaca_env.orders) == 1
    assert alpaca_env.count("POST", "/v2/orders") == 1


def test_alpaca_py_builtin_post_retry_is_the_trap(alpaca_env: FakeAlpaca) -> None:
    """Why the adapter owns retries: alpaca-py re-POSTs on 504, then reports a failure for an order that
    exists."""
    client = TradingClient(alpaca_env.api_key, alpaca_env.secret_key, url_override=alpaca_env.url)
    client._retry_wait = 0
    alpaca_env.inject(HttpError(504, "gateway timeout", after_processing=True))
    request = MarketOrderRequest(
        symbol="SPY", qty=1, side="buy", time_in_force="day", client_order_id="trap-1"
    )
    with pytest.raises(APIError, match="client_order_id must be unique"):
        client.submit_order(request)
    assert len(alpaca_env.orders) == 1


def test_duplicate_client_order_id_returns_the_first_order(
    broker: AlpacaBroker, alpaca_env: FakeAlpaca
) -> None:
    first = broker.submit(buy(1, "dup-1"))
    again = broker.submit(buy(1, "dup-1"))
    assert again.id == first.id and len(alpaca_env.orders) == 1
    assert broker.positions()["SPY"].qty == 1


def test_partial_fill_then_the_rest(broker: AlpacaBroker, alpaca_env: FakeAlpaca) -> None:
    alpaca_env.inject(PartialFill(0.5))
    order = broker.submit(buy(7, "partial-1"))
    assert (order.status, order.filled_qty, order.remaining_qty) == (OrderStatus.PARTIALLY_FILLED, 3.0, 4.0)
    assert positions_match(broker, alpaca_env) and broker.positions()["SPY"].qty == 3
    alpaca_env.fill_pending()
    assert broker.get_order(client_order_id="partial-1").status is OrderStatus.FILLED
    assert broker.positions()["SPY"].qty == 7


def test_opposite_open_order_is_a_wash_trade(broker: AlpacaBroker, alpaca_env: FakeAlpaca) -> None:
    broker.submit(buy(5, "hold-1"))
    alpaca_env.inject(LateFill())
    broker.submit(buy(1, "pending-buy"))
    with pytest.raises(WashTradeRejected, match="wash trade"):
        broker.submit(sell(2, "sell-1"))
    assert positions_match(broker, alpaca_env)


def test_persistent_outage_gives_up(broker: AlpacaBroker, alpaca_env: FakeAlpaca, sleeps: Sleeps) -> None:
    alpaca_env.inject(server_error(503), method="GET", path="/v2/positions", times=10)
    with pytest.raises(BrokerUnavailable, match="gave up after 4 attempts"):
        broker.positions()
    assert sleeps == [0.01, 0.02, 0.04]


def test_fractional_orders_are_market_day(broker: AlpacaBroker, alpaca_env: FakeAlpaca) -> None:
    order = broker.submit(buy(0.25, "frac-1"))
    assert order.filled_qty == 0.25 and broker.positions()["SPY"].qty == 0.25
    with pytest.raises(
        ValueError, match="fractional quantities must be market orders with time_in_force=day"
    ):
        OrderRequest("SPY", "buy", 0.5, "frac-2", time_in_force="gtc")
    with pytest.raises(ValueError, match="fractional"):
        OrderRequest("SPY", "buy", 0.5, "frac-3", type="limit", limit_price=400.0)
