"""Alpaca historical bars through alpaca-py against the local fake data API."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from alpaca_server import FakeAlpaca, alpaca_daily

from envs.data.alpaca import AlpacaSource
from envs.data.market_data import MarketData
from envs.data.sources import load_data
from envs.data.synthetic import generate_market


@pytest.fixture
def market() -> MarketData:
    return generate_market(symbols=("SPY", "AAPL"), n_days=40, start="2024-01-02", seed=7)


@pytest.fixture
def source(alpaca_env: FakeAlpaca, market: MarketData) -> AlpacaSource:
    alpaca_env.set_bars(alpaca_daily(market.to_long()))
    return AlpacaSource()


def test_daily_bars_round_trip_across_pages(
    source: AlpacaSource, alpaca_env: FakeAlpaca, market: MarketData
) -> None:
    alpaca_env.max_page_size = 9
    got = source.fetch(["SPY", "AAPL"], "2024-01-01", "2024-12-31")
    assert got.symbols == ("SPY", "AAPL")
    assert got.index.equals(market.index), "daily bars are stamped at midnight UTC of their session date"
    np.testing.assert_array_equal(got.values, market.values)
    assert alpaca_env.count("GET", "/v2/stocks/bars") == int(np.ceil(2 * market.n_bars / 9))


def test_range_is_inclusive(source: AlpacaSource, market: MarketData) -> None:
    got = source.fetch(["AAPL"], market.index[5], market.index[9] + pd.Timedelta(hours=12))
    assert got.index.equals(market.index[5:10])


def test_intraday_bars_keep_their_times(alpaca_env: FakeAlpaca) -> None:
    hourly = generate_market(symbols=("SPY",), n_days=2, start="2024-01-02", freq="1h", seed=1)
    alpaca_env.set_bars(hourly.to_long(), timeframe="1Hour")
    got = AlpacaSource().fetch(["SPY"], "2024-01-02", "2024-01-04", timeframe="1Hour")
    assert got.index.equals(hourly.index)


def test_symbol_without_bars_is_named(source: AlpacaSource) -> None:
    with pytest.raises(ValueError, match=r"no bars for \['MSFT'\]"):
        source.fetch(["SPY", "MSFT"], "2024-01-01", "2024-12-31")


def test_credentials_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, source: AlpacaSource, alpaca_env: FakeAlpaca
) -> None:
    assert alpaca_env.secret_key not in repr(source) and alpaca_env.api_key not in repr(source)
    monkeypatch.delenv("APCA_API_SECRET_KEY")
    with pytest.raises(ValueError, match="APCA_API_SECRET_KEY"):
        AlpacaSource()


def test_registered_as_a_data_spec(source: AlpacaSource, market: MarketData) -> None:
    got = load_data("alpaca:spy,aapl;start=2024-01-01;end=2024-01-31")
    assert got.symbols == ("SPY", "AAPL") and got.index.equals(market.slice(None, "2024-01-31").index)
    with pytest.raises(ValueError, match="needs a start"):
        load_data("alpaca:SPY")
    with pytest.raises(ValueError, match="unknown alpaca option"):
        load_data("alpaca:SPY;start=2024-01-01;colour=red")
