"""Alpaca historical bars (alpaca-py ``StockHistoricalDataClient``, and ``CryptoHistoricalDataClient``
for crypto pairs such as ``BTC/USD``) as :class:`MarketData`.

Stocks and crypto asked for together come back on one clock (:func:`envs.data.calendar.combine`): the
crypto pairs' 24/7 bars, with each stock's closed-market bars marked so nothing fills on them.

Keys come from ``APCA_API_KEY_ID`` / ``APCA_API_SECRET_KEY`` and the endpoint from ``APCA_API_DATA_URL``
(Alpaca's data endpoint when unset), passed as ``url_override`` so any Alpaca-compatible server works.
alpaca-py follows ``next_page_token`` itself. The keys live only inside the client; this object's repr
shows the endpoint and feed, never a key.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import pandas as pd

from envs.data.fallback import (
    is_daily_or_longer,
    parse_timeframe,
    session_dates,
    spec_loader,
    spec_options,
    split_symbols,
    time_range,
)
from envs.data.calendar import calendar_for_symbol, combine
from envs.data.market_data import FIELDS, MarketData
from envs.data.sources import register_source
from envs.data.ticks import with_microstructure

KEY_ENV = "APCA_API_KEY_ID"
SECRET_ENV = "APCA_API_SECRET_KEY"
DATA_URL_ENV = "APCA_API_DATA_URL"


class AlpacaSource:
    """Historical stock and crypto bars from Alpaca.

    :param api_key: key id (default ``$APCA_API_KEY_ID``).
    :param secret_key: secret (default ``$APCA_API_SECRET_KEY``).
    :param url: data endpoint (default ``$APCA_API_DATA_URL``, else Alpaca's).
    :param feed: ``"iex"`` (free plans) or ``"sip"``.
    :param adjustment: ``"raw"``, ``"split"``, ``"dividend"`` or ``"all"``.
    :param fill_gaps: forward-fill bars missing for some symbols instead of raising.
    :param microstructure: with intraday bars, also fetch each stock's historical quotes and trades over the
        range and attach their per-bar microstructure fields (:data:`envs.data.ticks.BAR_FIELDS`: order-flow
        imbalance, Lee-Ready signed volume, sign autocorrelation, sweeps, effective and realised spread,
        impact), which the feature library's microstructure families read. Quotes run to millions a day per
        liquid symbol on the SIP feed: keep the range short. Crypto pairs get no fields (NaN).
    """

    name = "alpaca"

    def __init__(
        self,
        api_key: str | None = None,
        secret_key: str | None = None,
        url: str | None = None,
        feed: str = "iex",
        adjustment: str = "all",
        fill_gaps: bool = False,
        microstructure: bool = False,
    ) -> None:
        from alpaca.data.historical import CryptoHistoricalDataClient, StockHistoricalDataClient

        key = api_key or os.environ.get(KEY_ENV)
        secret = secret_key or os.environ.get(SECRET_ENV)
        if not key or not secret:
            raise ValueError(f"Alpaca data needs credentials: set {KEY_ENV} and {SECRET_ENV}")
        self.url = (url or os.environ.get(DATA_URL_ENV) or "").rstrip("/") or None
        if self.url and self.url.endswith("/v2"):
            self.url = self.url[: -len("/v2")]
        self.feed = feed
        self.adjustment = adjustment
        self.fill_gaps = fill_gaps
        self.microstructure = microstructure
        self._client = StockHistoricalDataClient(key, secret, url_override=self.url)
        self._crypto = CryptoHistoricalDataClient(key, secret, url_override=self.url)

    def __repr__(self) -> str:
        return f"AlpacaSource(url={self.url!r}, feed={self.feed!r}, adjustment={self.adjustment!r})"

    def fetch(
        self, symbols: Sequence[str], start: object, end: object, timeframe: str = "1Day"
    ) -> MarketData:
        """Bars for ``symbols`` with ``start <= timestamp <= end``.

        :param symbols: stock symbols and crypto pairs (``BTC/USD``).
        :param start: first timestamp.
        :param end: last timestamp (inclusive); None for now.
        :param timeframe: bar size, e.g. ``"1Day"``, ``"15Min"``.
        """
        if self.microstructure and is_daily_or_longer(timeframe):
            raise ValueError(f"microstructure fields need intraday bars (timeframe like 1Min), got {timeframe!r}")
        coins = [s for s in symbols if is_crypto_pair(s)]
        stocks = [s for s in symbols if s not in coins]
        parts = []
        if stocks:
            parts.append(self._stock_bars(stocks, start, end, timeframe))
        if coins:
            parts.append(self._crypto_bars(coins, start, end, timeframe))
        data = parts[0] if len(parts) == 1 else combine(*parts)
        data = data if list(data.symbols) == list(symbols) else data.select(list(symbols))
        if self.microstructure:
            data = self._with_microstructure(data, stocks, start, end, timeframe)
        return data

    def _with_microstructure(
        self, data: MarketData, stocks: list[str], start: object, end: object, timeframe: str
    ) -> MarketData:
        """``data`` with the per-bar microstructure fields of each stock's quotes and trades."""
        amount, unit = parse_timeframe(timeframe)
        length = pd.Timedelta(amount, "min" if unit == "Min" else "h")
        # Ticks of the last bar run to its end, past the range's last bar start.
        lo, hi = time_range(start, end)
        ticks = {s: self.quotes_and_trades(s, lo, hi + length) for s in stocks}
        return with_microstructure(data, ticks, length)

    def quotes_and_trades(self, symbol: str, start: object, end: object) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Historical quotes and trades of one stock, each indexed by UTC timestamp in time order: quotes
        with ``bid_price``, ``bid_size``, ``ask_price``, ``ask_size``; trades with ``price``, ``size`` (the
        layout of :mod:`envs.features.microstructure`).

        :param symbol: the stock.
        :param start: first timestamp.
        :param end: last timestamp (inclusive); None for now.
        """
        from alpaca.data.enums import DataFeed
        from alpaca.data.requests import StockQuotesRequest, StockTradesRequest

        lo, hi = time_range(start, end)
        window = {"symbol_or_symbols": symbol, "start": lo.to_pydatetime(), "end": hi.to_pydatetime(),
                  "feed": DataFeed(self.feed)}
        quotes = self._client.get_stock_quotes(StockQuotesRequest(**window)).data.get(symbol, [])
        trades = self._client.get_stock_trades(StockTradesRequest(**window)).data.get(symbol, [])
        q = pd.DataFrame(
            [(x.timestamp, x.bid_price, x.bid_size, x.ask_price, x.ask_size) for x in quotes],
            columns=["timestamp", "bid_price", "bid_size", "ask_price", "ask_size"],
        )
        t = pd.DataFrame([(x.timestamp, x.price, x.size) for x in trades], columns=["timestamp", "price", "size"])
        return (
            q.set_index(pd.to_datetime(q.pop("timestamp"), utc=True)).sort_index(kind="stable"),
            t.set_index(pd.to_datetime(t.pop("timestamp"), utc=True)).sort_index(kind="stable"),
        )

    def _crypto_bars(self, symbols: list[str], start: object, end: object, timeframe: str) -> MarketData:
        from alpaca.data.requests import CryptoBarsRequest
        from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

        amount, unit = parse_timeframe(timeframe)
        lo, hi = time_range(start, end)
        request = CryptoBarsRequest(
            symbol_or_symbols=symbols, timeframe=TimeFrame(amount, TimeFrameUnit(unit)),
            start=lo.to_pydatetime(), end=hi.to_pydatetime(),
        )
        raw = self._crypto.get_crypto_bars(request).data
        # Crypto never closes: a daily bar is the UTC day it starts, not a New York session.
        data = bars_to_market_data(
            {s: [bar.model_dump() for bar in raw.get(s, [])] for s in symbols}, "1Hour", self.fill_gaps
        )
        return data.with_calendar("24/7")

    def _stock_bars(self, symbols: list[str], start: object, end: object, timeframe: str) -> MarketData:
        from alpaca.data.enums import Adjustment, DataFeed
        from alpaca.data.requests import StockBarsRequest
        from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

        amount, unit = parse_timeframe(timeframe)
        lo, hi = time_range(start, end)
        daily = is_daily_or_longer(timeframe)
        # Alpaca stamps a daily bar at midnight New York, hours after midnight UTC: ask a day further and
        # cut at ``hi`` once the bars carry their session date.
        request = StockBarsRequest(
            symbol_or_symbols=list(symbols),
            timeframe=TimeFrame(amount, TimeFrameUnit(unit)),
            start=lo.to_pydatetime(),
            end=(hi + pd.Timedelta(days=1) if daily else hi).to_pydatetime(),
            adjustment=Adjustment(self.adjustment),
            feed=DataFeed(self.feed),
        )
        raw = self._client.get_stock_bars(request).data
        data = bars_to_market_data(
            {s: [bar.model_dump() for bar in raw.get(s, [])] for s in symbols}, timeframe, self.fill_gaps
        )
        return data.slice(lo, hi) if daily else data


def is_crypto_pair(symbol: str) -> bool:
    """True for a crypto pair such as ``BTC/USD`` (served by Alpaca's crypto endpoint).

    :param symbol: the symbol.
    """
    calendar = calendar_for_symbol(symbol)
    return calendar is not None and calendar.name == "24/7"


def bars_to_market_data(
    bars: dict[str, list[dict[str, Any]]], timeframe: str, fill_gaps: bool = False
) -> MarketData:
    """Turn ``{symbol: [bar dicts with timestamp/open/high/low/close/volume]}`` into MarketData.

    :param bars: bars per symbol as alpaca-py's ``Bar`` models dump them.
    :param timeframe: the bar size (daily bars are re-stamped at their session date).
    :param fill_gaps: forward-fill bars missing for some symbols.
    :raises ValueError: a symbol came back without bars (named in the message).
    """
    empty = [s for s, rows in bars.items() if not rows]
    if empty:
        raise ValueError(f"Alpaca returned no bars for {empty}")
    frames = []
    for symbol, rows in bars.items():
        frame = pd.DataFrame(rows)[["timestamp", *FIELDS]]
        frames.append(frame.assign(symbol=symbol))
    long = pd.concat(frames, ignore_index=True)
    stamps = pd.DatetimeIndex(pd.to_datetime(long["timestamp"], utc=True))
    long["timestamp"] = session_dates(stamps) if is_daily_or_longer(timeframe) else stamps
    return MarketData.from_long(long, fill_gaps=fill_gaps)


def _from_spec(main: str, options: dict[str, str]) -> tuple[AlpacaSource, list[str]]:
    known = ("feed", "adjustment", "url", "fill_gaps", "microstructure")
    flags = ("fill_gaps", "microstructure")
    return AlpacaSource(**spec_options("alpaca", options, known, flags=flags)), split_symbols(main)


register_source("alpaca", spec_loader(_from_spec), replace=True)
