"""A MinIO/S3 store of Parquet bars: read and write, with an on-disk cache.

Layout: one object per symbol and period, ``<prefix>/<timeframe>/<symbol>/<period>.parquet``, the period
being the year for daily and longer bars and the month for intraday bars. Writing merges into an existing
object (new bars win on equal timestamps), so syncing an overlapping range is safe. Reading downloads only
objects whose ETag changed since they were cached, and refuses a range with a missing period so that a
fallback loader moves on to the next source instead of returning holes.

The store is named by a URL, ``minio://bucket/prefix`` (or ``s3://``). The endpoint and keys come from the
standard S3 variables: ``AWS_ENDPOINT_URL`` (``http://host:port``; https when no scheme is given),
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and optionally ``AWS_REGION``.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from envs.data.calendar import calendar_for_symbol, combine
from envs.data.fallback import (
    default_cache_dir,
    is_daily_or_longer,
    parse_timeframe,
    spec_loader,
    spec_options,
    split_symbols,
    time_range,
)
from envs.data.market_data import FIELDS, MarketData
from envs.data.sources import register_source

if TYPE_CHECKING:
    from minio import Minio

log = logging.getLogger(__name__)


def client_from_env(region: str | None = None) -> Minio:
    """A ``minio.Minio`` client from the standard S3 environment variables.

    :param region: bucket region (default ``$AWS_REGION`` or ``us-east-1``); given explicitly it saves a
        location lookup per bucket.
    """
    from minio import Minio

    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        raise ValueError("set AWS_ENDPOINT_URL (e.g. http://localhost:9000) to reach the MinIO/S3 store")
    parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        raise ValueError("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for the MinIO/S3 store")
    return Minio(
        parsed.netloc,
        access_key=key,
        secret_key=secret,
        secure=parsed.scheme == "https",
        region=region or os.environ.get("AWS_REGION") or "us-east-1",
    )


def period_of(index: pd.DatetimeIndex, timeframe: str) -> pd.Index:
    """The storage period of each bar: ``"2024"`` for daily and longer bars, ``"2024-03"`` intraday.

    :param index: UTC bar timestamps.
    :param timeframe: bar size.
    """
    fmt = "%Y" if is_daily_or_longer(timeframe) else "%Y-%m"
    return pd.Index(index.strftime(fmt))


class ParquetStore:
    """Bars in a MinIO/S3 bucket.

    :param url: ``minio://bucket/prefix`` or ``s3://bucket/prefix``.
    :param client: a ``minio.Minio`` client (default :func:`client_from_env`).
    :param cache_dir: where downloaded objects are kept (default :func:`default_cache_dir` / ``minio``).
    """

    name = "minio"

    def __init__(self, url: str, client: Minio | None = None, cache_dir: str | Path | None = None) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("minio", "s3") or not parsed.netloc:
            raise ValueError(f"store URL must look like minio://bucket/prefix, got {url!r}")
        self.url = url
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.client = client if client is not None else client_from_env()
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "minio"

    def __repr__(self) -> str:
        return f"ParquetStore({self.url!r})"

    def object_name(self, symbol: str, timeframe: str, period: str) -> str:
        """Key of one symbol's bars for one period.

        :param symbol: the symbol; a crypto pair's slash becomes a dash (``BTC/USD`` -> ``BTC-USD``).
        :param timeframe: bar size.
        :param period: ``"2024"`` or ``"2024-03"``.
        """
        parse_timeframe(timeframe)
        if symbol.count("/") == 1 and calendar_for_symbol(symbol) is not None:
            symbol = symbol.replace("/", "-")
        if not symbol or "/" in symbol:
            raise ValueError(f"symbol {symbol!r} cannot be part of an object name")
        parts = [self.prefix] if self.prefix else []
        return "/".join([*parts, timeframe, symbol, f"{period}.parquet"])

    # ------------------------------------------------------------------ write
    def write(self, data: MarketData, timeframe: str = "1Day") -> list[str]:
        """Upload bars, one object per symbol and period, merging with what is stored.

        :param data: the bars.
        :param timeframe: their bar size.
        :return: the object names written.
        """
        if not self.client.bucket_exists(self.bucket):
            self.client.make_bucket(self.bucket)
        periods = period_of(data.index, timeframe)
        written = []
        for symbol in data.symbols:
            frame = data.to_frame(symbol).rename(columns=str.lower).rename_axis("timestamp")
            j = data.symbols.index(symbol)
            for name, values in (data.extra or {}).items():  # extra per-bar fields are columns after OHLCV
                frame[name] = values[:, j]
            for period, part in frame.groupby(periods.to_numpy()):
                name = self.object_name(symbol, timeframe, str(period))
                old = self._read(name)
                if old is not None:
                    part = pd.concat([old, part])
                    part = part[~part.index.duplicated(keep="last")].sort_index()
                buf = io.BytesIO()
                part.to_parquet(buf)
                size = buf.tell()
                buf.seek(0)
                self.client.put_object(
                    self.bucket, name, buf, size, content_type="application/vnd.apache.parquet"
                )
                written.append(name)
        log.info("wrote %d objects to %s", len(written), self.url)
        return written

    # ------------------------------------------------------------------ read
    def fetch(
        self, symbols: Sequence[str], start: object, end: object, timeframe: str = "1Day"
    ) -> MarketData:
        """Bars with ``start <= timestamp <= end`` for every symbol.

        :param symbols: symbols to read.
        :param start: first timestamp.
        :param end: last timestamp (inclusive); None for now.
        :param timeframe: bar size.
        :raises ValueError: a symbol or one of the periods in the range is not in the store (named).
        """
        lo, hi = time_range(start, end)
        freq = "Y" if is_daily_or_longer(timeframe) else "M"
        wanted = [str(p) for p in pd.period_range(lo.tz_localize(None), hi.tz_localize(None), freq=freq)]
        frames = {}
        for symbol in symbols:
            parts = []
            stored = self._etags(symbol, timeframe)
            absent = [p for p in wanted if self.object_name(symbol, timeframe, p) not in stored]
            if absent:
                raise ValueError(f"{self.url} has no {timeframe} bars for {symbol} in period(s) {absent}")
            for period in wanted:
                name = self.object_name(symbol, timeframe, period)
                parts.append(self._cached(name, stored[name]))
            frame = pd.concat(parts).sort_index()
            frames[symbol] = frame[(frame.index >= lo) & (frame.index <= hi)]
        log.info("%s served from %s", list(symbols), self.url)
        coins = [s for s in frames if (c := calendar_for_symbol(s)) is not None and c.name == "24/7"]
        if coins and len(coins) < len(frames):
            # Stocks beside crypto: one 24/7 clock, the stocks' closed bars marked (see calendar.combine).
            stocks = [s for s in frames if s not in coins]
            parts = [MarketData.from_frames({s: frames[s] for s in group}) for group in (stocks, coins)]
            data = combine(*parts).select(list(symbols))
        else:
            data = MarketData.from_frames(frames)
        return _with_stored_extra(data, frames)

    def _etags(self, symbol: str, timeframe: str) -> dict[str, str]:
        if not self.client.bucket_exists(self.bucket):
            raise ValueError(f"bucket {self.bucket!r} does not exist ({self.url})")
        folder = self.object_name(symbol, timeframe, "x").rsplit("/", 1)[0] + "/"
        return {o.object_name: o.etag for o in self.client.list_objects(self.bucket, prefix=folder)}

    def _cached(self, name: str, etag: str) -> pd.DataFrame:
        """The object from the disk cache if its ETag is unchanged, else downloaded into it."""
        path = self.cache_dir / self.bucket / name
        tag = path.with_name(path.name + ".etag")
        if path.exists() and tag.exists() and tag.read_text() == etag:
            return pd.read_parquet(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.client.fget_object(self.bucket, name, str(path))
        tag.write_text(etag)
        return pd.read_parquet(path)

    def _read(self, name: str) -> pd.DataFrame | None:
        from minio.error import S3Error

        try:
            response = self.client.get_object(self.bucket, name)
        except S3Error as err:
            if err.code == "NoSuchKey":
                return None
            raise
        try:
            frame = pd.read_parquet(io.BytesIO(response.read()))
        finally:
            response.close()
            response.release_conn()
        return frame


def _with_stored_extra(data: MarketData, frames: dict[str, pd.DataFrame]) -> MarketData:
    """``data`` with the stored columns beyond OHLCV as its extra per-bar fields (NaN where a symbol has none)."""
    names = list(dict.fromkeys(c for f in frames.values() for c in f.columns if c not in FIELDS))
    if not names:
        return data
    index = data.index
    return data.with_extra({
        name: np.stack([
            (frames[s][name].reindex(index) if name in frames[s] else pd.Series(np.nan, index=index)).to_numpy(float)
            for s in data.symbols
        ], axis=1)
        for name in names
    })


def _from_spec(main: str, options: dict[str, Any]) -> tuple[ParquetStore, list[str]]:
    kwargs = spec_options("minio", options, ("symbols", "cache_dir"))
    if "symbols" not in kwargs:
        raise ValueError("a minio spec needs ';symbols=SPY,AAPL'")
    return ParquetStore(f"minio://{main}", cache_dir=kwargs.get("cache_dir")), split_symbols(kwargs["symbols"])


register_source("minio", spec_loader(_from_spec), replace=True)
