"""The MinIO/S3 Parquet store (moto in server mode, the real minio client), the fallback loader and
``python -m experiments.data``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from alpaca_server import FakeAlpaca, alpaca_daily

from envs.data.fallback import DataSourceError, FallbackSource, spec_options
from envs.data.market_data import MarketData
from envs.data.sources import load_data
from envs.data.store import ParquetStore
from envs.data.synthetic import generate_market
from experiments import data as data_cli


@pytest.fixture
def market() -> MarketData:
    return generate_market(symbols=("SPY", "AAPL"), n_days=300, start="2023-09-01", seed=3)


@pytest.fixture
def store(s3_env: str, tmp_path: Path) -> ParquetStore:
    return ParquetStore(f"minio://{s3_env}/daily", cache_dir=tmp_path / "cache")


class Broken:
    """A source that always fails."""

    name = "broken"

    def fetch(
        self, symbols: Sequence[str], start: object, end: object, timeframe: str = "1Day"
    ) -> MarketData:
        raise ConnectionError("network unreachable")


class CountingDownloads:
    """Wraps a minio client's fget_object to count downloads."""

    def __init__(self, store: ParquetStore) -> None:
        self.names: list[str] = []
        inner = store.client.fget_object

        def fget(bucket: str, name: str, path: str, **kwargs: Any) -> Any:
            self.names.append(name)
            return inner(bucket, name, path, **kwargs)

        store.client.fget_object = fget


def test_one_object_per_symbol_and_year_round_trips(store: ParquetStore, market: MarketData) -> None:
    names = store.write(market)
    assert sorted(names) == [f"daily/1Day/{s}/{y}.parquet" for s in ("AAPL", "SPY") for y in (2023, 2024)]
    got = store.fetch(["SPY", "AAPL"], "2023-09-01", "2024-12-31")
    assert got.index.equals(market.index)
    np.testing.assert_array_equal(got.values, market.values)
    part = store.fetch(["AAPL"], "2024-02-01", "2024-02-29")
    assert part.index.equals(market.slice("2024-02-01", "2024-02-29").index)


def test_overlapping_writes_merge_and_new_bars_win(store: ParquetStore, market: MarketData) -> None:
    store.write(market.slice(None, "2024-01-31"))
    later = market.slice("2024-01-15", None)
    bumped = MarketData(later.values * 1.01, later.index, later.symbols)
    store.write(bumped)
    got = store.fetch(["SPY", "AAPL"], "2023-09-01", "2024-12-31")
    assert got.index.equals(market.index)
    np.testing.assert_allclose(got.slice("2024-01-15", None).values, bumped.values)
    np.testing.assert_array_equal(
        got.slice(None, "2024-01-12").values, market.slice(None, "2024-01-12").values
    )


def test_disk_cache_skips_unchanged_objects(store: ParquetStore, market: MarketData) -> None:
    store.write(market)
    downloads = CountingDownloads(store)
    store.fetch(["SPY"], "2023-09-01", "2024-12-31")
    store.fetch(["SPY"], "2023-09-01", "2024-12-31")
    assert sorted(downloads.names) == ["daily/1Day/SPY/2023.parquet", "daily/1Day/SPY/2024.parquet"]
    march = market.slice("2024-03-01", "2024-03-31")
    store.write(MarketData(march.values * 1.01, march.index, march.symbols))  # a new 2024 object, a new ETag
    store.fetch(["SPY"], "2023-09-01", "2024-12-31")
    assert downloads.names[2:] == ["daily/1Day/SPY/2024.parquet"]


def test_missing_symbol_or_period_is_refused(store: ParquetStore, market: MarketData) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        store.fetch(["SPY"], "2024-01-01", "2024-02-01")
    store.write(market)
    with pytest.raises(ValueError, match=r"no 1Day bars for SPY in period\(s\) \['2021', '2022'\]"):
        store.fetch(["SPY"], "2021-06-01", "2024-02-01")
    with pytest.raises(ValueError, match="for MSFT"):
        store.fetch(["MSFT"], "2024-01-01", "2024-02-01")


def test_store_urls_are_checked(s3_env: str) -> None:
    with pytest.raises(ValueError, match="minio://bucket/prefix"):
        ParquetStore(f"http://{s3_env}/x")


def test_registered_as_a_data_spec(store: ParquetStore, market: MarketData, tmp_path: Path) -> None:
    store.write(market)
    got = load_data(
        f"minio:{store.bucket}/daily;symbols=SPY;start=2024-01-01;end=2024-03-31;cache_dir={tmp_path}"
    )
    assert got.symbols == ("SPY",) and got.index.equals(market.slice("2024-01-01", "2024-03-31").index)


# ---------------------------------------------------------------------- fallback
def test_fallback_uses_the_first_source_that_serves(
    store: ParquetStore, alpaca_env: FakeAlpaca, market: MarketData, caplog: pytest.LogCaptureFixture
) -> None:
    from envs.data.alpaca import AlpacaSource

    alpaca_env.set_bars(alpaca_daily(market.to_long()))
    loader = FallbackSource([store, Broken(), AlpacaSource()])
    caplog.set_level(logging.INFO, logger="envs.data.fallback")
    got = loader.fetch(["SPY", "AAPL"], "2024-01-01", "2024-02-29")
    assert loader.last_served == "alpaca"
    assert "served by alpaca" in caplog.text and "broken failed" in caplog.text
    store.write(got)
    loader.fetch(["SPY", "AAPL"], "2024-01-01", "2024-02-29")
    assert loader.last_served == "minio"


def test_fallback_reports_every_failure() -> None:
    with pytest.raises(DataSourceError, match="broken: network unreachable; broken: network unreachable"):
        FallbackSource([Broken(), Broken()]).fetch(["SPY"], "2024-01-01", "2024-02-01")
    with pytest.raises(ValueError):
        FallbackSource([])


def test_spec_options_read_flags_and_name_unknown_options() -> None:
    options = {"cache_dir": "/tmp/bars", "auto_adjust": "No", "fill_gaps": "YES"}
    kwargs = spec_options("yfinance", options, ("cache_dir", "auto_adjust", "fill_gaps"), ("auto_adjust", "fill_gaps"))
    assert kwargs == {"cache_dir": "/tmp/bars", "auto_adjust": False, "fill_gaps": True}
    with pytest.raises(ValueError, match=r"unknown minio option\(s\) \['feed'\]; known: .*symbols, cache_dir"):
        spec_options("minio", {"feed": "iex"}, ("symbols", "cache_dir"))


# ---------------------------------------------------------------------- command line
def test_cli_sync_then_load(
    alpaca_env: FakeAlpaca,
    s3_env: str,
    market: MarketData,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alpaca_env.set_bars(alpaca_daily(market.to_long()))
    url = f"minio://{s3_env}/bars"
    common = [
        "--symbols",
        "SPY,AAPL",
        "--start",
        "2023-09-01",
        "--end",
        "2024-06-28",
        "--cache-dir",
        str(tmp_path),
    ]
    assert data_cli.main(["sync", "--source", "alpaca", "--store", url, *common]) == 0
    assert "synced 2 symbol(s) from alpaca" in capsys.readouterr().out
    out_file = tmp_path / "bars.parquet"
    assert data_cli.main(["load", "--sources", f"{url},alpaca", "--out", str(out_file), *common]) == 0
    assert "served by minio" in capsys.readouterr().out
    saved = load_data(f"parquet:{out_file}")
    assert saved.index.equals(market.slice(None, "2024-06-28").index)
    # Alpaca listed first but without credentials: the store still serves, and no traceback or early exit.
    monkeypatch.delenv("APCA_API_KEY_ID")
    assert data_cli.main(["load", "--sources", f"alpaca,{url}", *common]) == 0
    assert "served by minio" in capsys.readouterr().out
    assert data_cli.main(["load", "--sources", "alpaca", *common]) == 2
    assert "alpaca: Alpaca data needs credentials" in capsys.readouterr().err


def test_cli_help_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        data_cli.main(["sync", "--help"])
    assert done.value.code == 0 and "--store" in capsys.readouterr().out
    assert data_cli.main(["load", "--sources", "nowhere", "--symbols", "SPY", "--start", "2024-01-01"]) == 2
    assert "unknown source 'nowhere'" in capsys.readouterr().err


def test_crypto_pairs_round_trip_beside_stocks_on_one_clock(store: ParquetStore, market: MarketData) -> None:
    from envs.data.crypto import generate_crypto_market

    coin = generate_crypto_market(n_bars=200, freq="1D", symbols=("BTC/USD",), initial_prices=(40_000.0,),
                                  start="2023-09-01", seed=3)
    store.write(market)
    names = store.write(coin)
    assert names[0].startswith("daily/1Day/BTC-USD/")  # the pair's slash is no folder
    got = store.fetch(["SPY", "BTC/USD"], "2023-09-01", "2024-03-18")
    assert [c.name for c in got.symbol_calendars] == ["XNYS", "24/7"]
    np.testing.assert_array_equal(got.select(["BTC/USD"]).values[:, 0], coin.values[:, 0])
    assert not got.tradable[got.index.day_of_week >= 5, 0].any() and got.tradable[:, 1].all()


def test_extra_per_bar_fields_round_trip(store: ParquetStore) -> None:
    """Intraday bars with their quotes-and-trades fields come back with those fields, not OHLCV only."""
    bars = load_data("synthetic_ticks:n_days=2,n_symbols=2")
    assert bars.extra
    store.write(bars, timeframe="1Min")
    got = store.fetch(list(bars.symbols), bars.index[0], bars.index[-1], timeframe="1Min")
    assert got.index.equals(bars.index)
    np.testing.assert_array_equal(got.values, bars.values)
    assert sorted(got.extra or {}) == sorted(bars.extra)
    for name, values in bars.extra.items():
        np.testing.assert_array_equal(got.extra_field(name), values)
