"""Alpaca crypto end to end against the local Alpaca-compatible server, through alpaca-py: crypto bars from
the crypto endpoint, crypto orders around the clock, and a paper run on a Saturday, restarted halfway,
trading a coin every hour while the stock beside it waits for its session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from alpaca_server import FakeAlpaca

from brokers.alpaca import AlpacaBroker
from brokers.base import OrderRequest, OrderStatus, Side, TimeInForce
from brokers.journal import Journal
from brokers.retry import RetryPolicy
from brokers.runner import RunnerConfig
from envs.data.alpaca import AlpacaSource
from envs.data.crypto import generate_crypto_market
from envs.sim.execution import ExecutionConfig
from experiments.paper import KillSwitch, make_runner, run_broker

FRIDAY = pd.Timestamp("2024-06-07 13:00", tz="UTC")  # 09:00 New York
SATURDAY = pd.Timestamp("2024-06-08", tz="UTC")


def hourly_bars() -> pd.DataFrame:
    """BTC/USD every hour from Friday 13:00 UTC; SPY only in Friday's NYSE session (hourly bars stamped on
    the hour, as Alpaca stamps them)."""
    coin = generate_crypto_market(n_bars=48, symbols=("BTC/USD",), initial_prices=(60_000.0,),
                                  start=str(FRIDAY.tz_localize(None)), seed=4)
    rng = np.random.default_rng(4)
    stock_index = pd.date_range("2024-06-07 13:00", "2024-06-07 19:00", freq="h", tz="UTC")
    close = 500.0 * np.exp(np.cumsum(rng.normal(0, 0.002, len(stock_index))))
    stock = pd.DataFrame({"timestamp": stock_index, "symbol": "SPY", "open": close, "high": close * 1.001,
                          "low": close * 0.999, "close": close, "volume": 1_000.0})
    return pd.concat([coin.to_long(), stock], ignore_index=True)


@pytest.fixture
def crypto_server(alpaca_env: FakeAlpaca) -> FakeAlpaca:
    alpaca_env.bars_until_now = True
    alpaca_env.set_bars(hourly_bars(), timeframe="1Hour")
    alpaca_env.prices = {"SPY": 500.0, "BTC/USD": 60_000.0}
    alpaca_env.set_time(SATURDAY + pd.Timedelta(hours=12))
    return alpaca_env


def fast_broker(**kwargs: Any) -> AlpacaBroker:
    return AlpacaBroker.from_env(retry=RetryPolicy(max_attempts=3, base_delay=0), sleep=lambda s: None, **kwargs)


def test_crypto_bars_come_from_the_crypto_endpoint_on_a_24_7_clock(crypto_server: FakeAlpaca) -> None:
    source = AlpacaSource()
    coin = source.fetch(["BTC/USD"], FRIDAY, SATURDAY + pd.Timedelta(hours=11), "1Hour")
    assert crypto_server.count("GET", "/v1beta3/crypto/us/bars") == 1
    assert coin.calendar.name == "24/7" and coin.frequency.label == "1h" and coin.n_bars == 23
    assert (coin.index.day_of_week == 5).sum() == 12  # Saturday's bars
    both = source.fetch(["SPY", "BTC/USD"], FRIDAY, SATURDAY + pd.Timedelta(hours=11), "1Hour")
    assert both.symbols == ("SPY", "BTC/USD") and both.n_bars == 23
    assert [c.name for c in both.symbol_calendars] == ["XNYS", "24/7"]
    open_spy = both.tradable[:, 0]
    assert open_spy.sum() == 7 and not open_spy[both.index >= SATURDAY].any()
    assert both.tradable[:, 1].all()


def test_crypto_orders_fill_on_a_saturday_and_stock_orders_wait(crypto_server: FakeAlpaca) -> None:
    broker = fast_broker()
    assert not broker.clock().is_open  # Saturday noon: the stock market is closed
    coin = broker.submit(OrderRequest("BTC/USD", Side.BUY, 0.0125, "coin-1"))
    assert coin.time_in_force is TimeInForce.GTC and coin.status is OrderStatus.FILLED
    stock = broker.submit(OrderRequest("SPY", Side.BUY, 2, "stock-1"))
    assert stock.status is not OrderStatus.FILLED
    held = broker.positions()
    assert set(held) == {"BTC/USD"} and held["BTC/USD"].qty == pytest.approx(0.0125)
    with pytest.raises(ValueError, match="crypto orders are gtc or ioc"):
        OrderRequest("BTC/USD", Side.BUY, 0.1, "coin-2", time_in_force=TimeInForce.FOK)


class Scripted:
    """Target weights per bar: the coin moves every hour, the stock asks for more on Saturday."""

    name = "scripted"

    def reset(self, seed: int | None = None) -> None:
        """Stateless."""

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        ts = info["timestamp"]
        coin = 0.05 + 0.05 * (ts.hour % 4)
        stock = 0.2 if ts >= SATURDAY else 0.1
        return np.array([stock, coin])


def run_hours(tmp_path: Path, server: FakeAlpaca, name: str, hours: range, journal_name: str) -> Journal:
    """One runner process (fresh broker, feed and journal handle, as after a kill -9) over some hours."""
    from brokers.feed import AlpacaBars

    journal = Journal(tmp_path / f"{journal_name}.sqlite")
    config = RunnerConfig(run_id=name, execution=ExecutionConfig(commission=0.0), risk=None)
    runner = make_runner(Scripted(), fast_broker(), journal, ("SPY", "BTC/USD"), config, 100_000.0)
    feed = AlpacaBars(runner.broker.config, retry=RetryPolicy(max_attempts=2, base_delay=0), sleep=lambda s: None)
    bars = server.bars["1Hour"]
    for h in hours:
        now = SATURDAY + pd.Timedelta(hours=h, minutes=1)
        server.set_time(now)
        done = bars[bars["timestamp"] <= now - pd.Timedelta(hours=1)]
        server.prices = {s: float(g["close"].iloc[-1]) for s, g in done.groupby("symbol")}
        decided = run_broker(runner, feed, "1Hour", pd.Timedelta(hours=20), KillSwitch(), poll_interval=1.0,
                             sleep=lambda s: None, max_cycles=1)
        assert decided == 1, f"hour {h}: a crypto run trades while the stock market is closed"
    return journal


def test_a_saturday_paper_run_with_a_restart_trades_crypto_every_hour_without_duplicate_or_lost_orders(
    crypto_server: FakeAlpaca, tmp_path: Path
) -> None:
    hours = range(2, 12)
    whole = run_hours(tmp_path, crypto_server, "whole", hours, "whole")
    whole_orders = [o.request for o in whole.orders("whole")]
    whole_positions = {s: p.qty for s, p in crypto_server.positions.items()}

    crypto_server.positions.clear()
    crypto_server.orders.clear()
    crypto_server._by_client.clear()
    crypto_server.cash = 100_000.0
    run_hours(tmp_path, crypto_server, "cut", hours[:5], "cut")
    cut = run_hours(tmp_path, crypto_server, "cut", hours[5:], "cut")  # the same journal, a new process
    orders = [o.request for o in cut.orders("cut")]
    ids = [o.client_order_id for o in orders]
    assert len(ids) == len(set(ids)), "no order was sent twice"
    server_ids = sorted(o.client_order_id for o in crypto_server.orders.values())
    assert sorted(ids) == server_ids, "every journalled order reached the server and nothing else did"
    # One order per hour for the coin, and every one filled on a Saturday.
    coin = [o for o in crypto_server.orders.values() if o.symbol == "BTC/USD"]
    assert len(coin) == len(hours) and all(o.status == "filled" for o in coin)
    assert all(o.time_in_force == "gtc" for o in coin)
    # The stock's Saturday target (0.2) is held, not sent against a closed market.
    assert not [o for o in crypto_server.orders.values() if o.symbol == "SPY"]
    decisions = dict(cut.decisions("cut"))
    assert all(p["target"]["SPY"] == 0.2 and p["traded"]["SPY"] != 0.2 for p in decisions.values())
    # The restarted run ends where the uninterrupted one did, order for order.
    def legs(requests: list[OrderRequest]) -> list[tuple[str, str, float]]:
        return sorted((o.symbol, o.side.value, round(o.qty, 9)) for o in requests)

    assert legs(orders) == legs(whole_orders)
    assert {s: p.qty for s, p in crypto_server.positions.items()} == pytest.approx(whole_positions)
    assert set(crypto_server.positions) == {"BTC/USD"}


def test_a_crypto_data_outage_is_retried_like_the_stock_one(crypto_server: FakeAlpaca, tmp_path: Path) -> None:
    from alpaca_server import server_error

    crypto_server.inject(server_error(500), "GET", "/v1beta3/crypto/us/bars")
    journal = run_hours(tmp_path, crypto_server, "faults", range(3, 4), "faults")
    assert crypto_server.count("GET", "/v1beta3/crypto/us/bars") == 2  # the 500, then the retry
    assert [o.request.symbol for o in journal.orders("faults")] == ["BTC/USD"]
