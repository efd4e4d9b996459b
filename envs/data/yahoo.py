"""Yahoo Finance bars (yfinance) as :class:`MarketData`, with an on-disk cache.

Each symbol's bars for one request (interval, start, end, adjustment) are cached as a Parquet file, so
running the same thing again needs no network. Only symbols missing from the cache are downloaded, in
one ``yfinance.download`` call. The parsing layer (:func:`parse_download`) is separate from the download
so it can be tested on a recorded frame without the internet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from envs.data.fallback import (
    default_cache_dir,
    is_daily_or_longer,
    parse_timeframe,
    session_dates,
    spec_loader,
    spec_options,
    split_symbols,
    time_range,
)
from envs.data.market_data import FIELDS, MarketData
from envs.data.sources import register_source

log = logging.getLogger(__name__)
_INTERVALS = {"Min": "m", "Hour": "h", "Day": "d", "Week": "wk", "Month": "mo"}

Download = Callable[..., pd.DataFrame]


def yf_interval(timeframe: str) -> str:
    """yfinance's interval for an Alpaca-style timeframe (``"1Day"`` -> ``"1d"``).

    :param timeframe: ``<n><unit>``.
    """
    amount, unit = parse_timeframe(timeframe)
    return f"{amount}{_INTERVALS[unit]}"


def parse_download(
    frame: pd.DataFrame, symbols: Sequence[str], daily: bool = True
) -> dict[str, pd.DataFrame]:
    """Split what ``yfinance.download`` returned into one OHLCV frame per symbol.

    Accepts both column layouts (``group_by="ticker"``: (Ticker, Price); ``"column"``: (Price, Ticker))
    and a single-level frame for one symbol. Rows a symbol has no data for (yfinance aligns all tickers on
    one index) are dropped.

    :param frame: the downloaded frame.
    :param symbols: the symbols asked for.
    :param daily: daily or longer bars: stamp them at midnight UTC of their New York date (yfinance gives
        daily bars as naive dates); otherwise convert the exchange-time index to UTC.
    :return: ``{symbol: frame}`` with lower-case ``open, high, low, close, volume`` columns and a UTC index.
    :raises ValueError: a symbol has no bars, naming it.
    """
    out: dict[str, pd.DataFrame] = {}
    missing = []
    for symbol in symbols:
        part = _columns_of(frame, symbol)
        if part is None:
            missing.append(symbol)
            continue
        part = part.rename(columns=lambda c: str(c).lower())
        absent = [f for f in FIELDS if f not in part.columns]
        if absent:
            raise ValueError(f"yfinance frame for {symbol} lacks {absent}; columns: {list(part.columns)}")
        part = part[list(FIELDS)].astype("float64").dropna(how="all", subset=["open", "high", "low", "close"])
        if part.empty:
            missing.append(symbol)
            continue
        index = pd.DatetimeIndex(part.index)
        if daily:
            part.index = session_dates(index)
        else:
            part.index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
        out[symbol] = part.rename_axis("timestamp")
    if missing:
        raise ValueError(f"yfinance returned no bars for {missing}")
    return out


def _columns_of(frame: pd.DataFrame, symbol: str) -> pd.DataFrame | None:
    if frame is None or frame.empty:
        return None
    cols = frame.columns
    if not isinstance(cols, pd.MultiIndex):
        return frame
    for level in range(cols.nlevels):
        if symbol in cols.get_level_values(level):
            return frame.xs(symbol, axis=1, level=level)
    return None


class YFinanceSource:
    """Daily or intraday bars from Yahoo Finance, cached on disk.

    :param cache_dir: where cached bars live (default :func:`default_cache_dir` / ``yfinance``).
    :param auto_adjust: adjust OHLC for splits and dividends (yfinance's default).
    :param fill_gaps: forward-fill bars missing for some symbols instead of raising.
    :param download: the download function; ``yfinance.download`` unless a test passes a stand-in.
    """

    name = "yfinance"

    def __init__(
        self,
        cache_dir: str | Path | None = None,
        auto_adjust: bool = True,
        fill_gaps: bool = False,
        download: Download | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "yfinance"
        self.auto_adjust = auto_adjust
        self.fill_gaps = fill_gaps
        self._download = download

    def __repr__(self) -> str:
        return f"YFinanceSource(cache_dir={str(self.cache_dir)!r}, auto_adjust={self.auto_adjust})"

    def fetch(
        self, symbols: Sequence[str], start: object, end: object, timeframe: str = "1Day"
    ) -> MarketData:
        """Bars for ``symbols`` with ``start <= timestamp <= end``, from the cache when possible.

        :param symbols: Yahoo symbols.
        :param start: first timestamp.
        :param end: last timestamp (inclusive); None for now.
        :param timeframe: bar size, e.g. ``"1Day"``, ``"1Hour"``.
        """
        lo, hi = time_range(start, end)
        interval = yf_interval(timeframe)
        frames: dict[str, pd.DataFrame] = {}
        todo = []
        for symbol in symbols:
            path = self._cache_path(symbol, interval, lo, hi)
            if path.exists():
                frames[symbol] = pd.read_parquet(path)
            else:
                todo.append(symbol)
        if todo:
            log.info("downloading %s from yfinance (%s, %s .. %s)", todo, interval, lo.date(), hi.date())
            # yfinance's end is exclusive; ask for a day more and cut at ``hi`` below.
            raw = self._downloader()(
                todo,
                start=lo.strftime("%Y-%m-%d"),
                end=(hi + pd.Timedelta(days=1)).strftime("%Y-%m-%d"),
                interval=interval,
                auto_adjust=self.auto_adjust,
                group_by="ticker",
                progress=False,
                threads=False,
                multi_level_index=True,
            )
            for symbol, frame in parse_download(raw, todo, is_daily_or_longer(timeframe)).items():
                path = self._cache_path(symbol, interval, lo, hi)
                path.parent.mkdir(parents=True, exist_ok=True)
                frame.to_parquet(path)
                frames[symbol] = frame
        else:
            log.info("yfinance %s served from the cache at %s", list(symbols), self.cache_dir)
        clipped = {s: f[(f.index >= lo) & (f.index <= hi)] for s, f in frames.items()}
        empty = [s for s, f in clipped.items() if f.empty]
        if empty:
            raise ValueError(f"yfinance has no bars for {empty} between {lo.date()} and {hi.date()}")
        return MarketData.from_frames({s: clipped[s] for s in symbols}, fill_gaps=self.fill_gaps)

    def _downloader(self) -> Download:
        if self._download is None:
            import yfinance

            self._download = yfinance.download
        return self._download

    def _cache_path(self, symbol: str, interval: str, lo: pd.Timestamp, hi: pd.Timestamp) -> Path:
        adj = "adj" if self.auto_adjust else "raw"
        stamp = f"{lo.strftime('%Y%m%dT%H%M')}_{hi.strftime('%Y%m%dT%H%M')}"
        return self.cache_dir / interval / adj / f"{symbol}_{stamp}.parquet"


def _from_spec(main: str, options: dict[str, Any]) -> tuple[YFinanceSource, list[str]]:
    flags = ("auto_adjust", "fill_gaps")
    kwargs = spec_options("yfinance", options, ("cache_dir", *flags), flags=flags)
    return YFinanceSource(**kwargs), split_symbols(main)


register_source("yfinance", spec_loader(_from_spec), replace=True)
