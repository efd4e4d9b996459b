"""Alpaca historical quotes and trades through alpaca-py against the local fake data API, into the
microstructure features."""

from __future__ import annotations

import numpy as np
import pandas as pd
from alpaca_server import FakeAlpaca

from envs.data.alpaca import AlpacaSource
from envs.features import microstructure as ms


def _ticks(n: int = 120) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(4)
    start = pd.Timestamp("2024-03-04 14:30", tz="UTC")
    times = (start + pd.to_timedelta(np.cumsum(rng.uniform(0.1, 0.6, n)), "s")).floor("us")  # Alpaca sends us
    mid = np.round(180 + np.cumsum(rng.choice([-0.01, 0.0, 0.01], n)), 2)
    quotes = pd.DataFrame({"timestamp": times, "symbol": "AAPL", "bp": mid - 0.01, "bs": rng.integers(1, 9, n),
                           "ap": mid + 0.01, "as": rng.integers(1, 9, n), "bx": "V", "ax": "V", "c": [["R"]] * n,
                           "z": "C"})
    side = rng.choice([-1, 1], n)
    trades = pd.DataFrame({"timestamp": times + pd.Timedelta("5ms"), "symbol": "AAPL",
                           "p": np.round(mid + side * 0.01 * rng.integers(1, 3, n), 2), "s": rng.integers(1, 300, n),
                           "x": "V", "i": np.arange(n), "c": [["@"]] * n, "z": "C"})
    return quotes, trades


def test_quotes_and_trades_round_trip_across_pages_into_features(alpaca_env: FakeAlpaca) -> None:
    quotes, trades = _ticks()
    alpaca_env.set_ticks("quotes", quotes)
    alpaca_env.set_ticks("trades", trades)
    alpaca_env.max_page_size = 50  # three pages each: alpaca-py follows next_page_token
    q, t = AlpacaSource().quotes_and_trades("AAPL", "2024-03-04", "2024-03-05")
    assert len(q) == len(quotes) and len(t) == len(trades)
    assert q.index.equals(pd.DatetimeIndex(quotes["timestamp"]).rename("timestamp"))
    np.testing.assert_allclose(q["bid_price"], quotes["bp"])
    np.testing.assert_allclose(q["ask_size"], quotes["as"])
    np.testing.assert_allclose(t["price"], trades["p"])
    features = ms.trade_features(q, t)
    # Each trade is 5 ms after its quote, so its prevailing quote is that one: the quote rule signs it.
    expected = np.sign(trades["p"].to_numpy() - 0.5 * (quotes["bp"] + quotes["ap"]).to_numpy())
    np.testing.assert_array_equal(features["sign"], np.where(expected == 0, features["sign"], expected))
    assert features["effective_spread"].gt(0).all()
    ofi = ms.quote_ofi(q, "10s")
    assert ofi.sum() == ms.order_flow_imbalance(q["bid_price"], q["bid_size"], q["ask_price"], q["ask_size"]).sum()


def test_no_ticks_in_the_window_gives_empty_frames(alpaca_env: FakeAlpaca) -> None:
    quotes, trades = _ticks(10)
    alpaca_env.set_ticks("quotes", quotes)
    alpaca_env.set_ticks("trades", trades)
    q, t = AlpacaSource().quotes_and_trades("AAPL", "2024-03-05", "2024-03-06")
    assert q.empty and t.empty and list(q.columns) == ["bid_price", "bid_size", "ask_price", "ask_size"]
