"""yfinance: the parsing layer on frames shaped like yfinance.download's, and the offline cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from envs.data.sources import load_data
from envs.data.yahoo import YFinanceSource, parse_download, yf_interval

DATES = pd.DatetimeIndex(["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"], name="Date")


def ohlcv(closes: list[float], index: pd.DatetimeIndex = DATES) -> pd.DataFrame:
    c = np.array(closes)
    return pd.DataFrame(
        {"Open": c - 0.5, "High": c + 1.0, "Low": c - 1.0, "Close": c, "Volume": np.full(len(c), 1e6)},
        index=index,
    )


def yahoo_frame(frames: dict[str, pd.DataFrame], group_by: str = "ticker") -> pd.DataFrame:
    """Assemble a frame the way yfinance.download does (keys Ticker x Price, union index)."""
    data = pd.concat(frames.values(), axis=1, sort=True, keys=frames.keys(), names=["Ticker", "Price"])
    if group_by == "column":
        data.columns = data.columns.swaplevel(0, 1)
        data = data.sort_index(level=0, axis=1)
    return data


class RecordedDownload:
    """A stand-in for yfinance.download that replays a recorded frame and remembers the calls."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.calls: list[tuple[Any, dict[str, Any]]] = []

    def __call__(self, tickers: Any, **kwargs: Any) -> pd.DataFrame:
        self.calls.append((tickers, kwargs))
        wanted = [t for t in tickers if t in self.frame.columns.get_level_values(0)]
        return self.frame.loc[:, wanted]


def offline(*args: Any, **kwargs: Any) -> pd.DataFrame:
    raise ConnectionError("no network in tests")


@pytest.mark.parametrize("group_by", ["ticker", "column"])
def test_parse_both_layouts_with_session_dates(group_by: str) -> None:
    # MSFT lacks the first day: yfinance aligns tickers on one index and leaves NaN rows.
    frame = yahoo_frame(
        {"SPY": ohlcv([470.0, 468.0, 467.0, 468.5]), "MSFT": ohlcv([370.0, 368.0, 367.0], DATES[1:])},
        group_by,
    )
    parsed = parse_download(frame, ["SPY", "MSFT"])
    assert list(parsed["SPY"].columns) == ["open", "high", "low", "close", "volume"]
    assert parsed["SPY"].index[0] == pd.Timestamp("2024-01-02", tz="UTC")
    assert len(parsed["MSFT"]) == 3 and parsed["MSFT"]["close"].iloc[0] == 370.0


def test_parse_intraday_converts_exchange_time_to_utc() -> None:
    index = pd.DatetimeIndex(["2024-01-02 09:30", "2024-01-02 10:30"], name="Datetime").tz_localize(
        "America/New_York"
    )
    parsed = parse_download(yahoo_frame({"SPY": ohlcv([470.0, 471.0], index)}), ["SPY"], daily=False)
    assert parsed["SPY"].index[0] == pd.Timestamp("2024-01-02 14:30", tz="UTC")


def test_parse_names_missing_symbols() -> None:
    frame = yahoo_frame({"SPY": ohlcv([11.0, 12.0, 13.0, 14.0])})
    with pytest.raises(ValueError, match=r"no bars for \['NOPE'\]"):
        parse_download(frame, ["SPY", "NOPE"])
    with pytest.raises(ValueError, match="no bars"):
        parse_download(pd.DataFrame(), ["SPY"])


def test_second_call_is_served_offline_from_the_cache(tmp_path: Path) -> None:
    recorded = RecordedDownload(
        yahoo_frame({"SPY": ohlcv([470.0, 468.0, 467.0, 468.5]), "AAPL": ohlcv([185.0, 184.0, 181.0, 181.5])})
    )
    first = YFinanceSource(cache_dir=tmp_path, download=recorded).fetch(
        ["SPY", "AAPL"], "2024-01-02", "2024-01-05"
    )
    ((tickers, kwargs),) = recorded.calls
    assert tickers == ["SPY", "AAPL"]
    assert (kwargs["start"], kwargs["end"], kwargs["interval"], kwargs["group_by"]) == (
        "2024-01-02",
        "2024-01-06",
        "1d",
        "ticker",
    )
    again = YFinanceSource(cache_dir=tmp_path, download=offline).fetch(
        ["SPY", "AAPL"], "2024-01-02", "2024-01-05"
    )
    np.testing.assert_array_equal(first.values, again.values)
    assert again.index.equals(first.index) and first.close[-1].tolist() == [468.5, 181.5]


def test_only_uncached_symbols_are_downloaded(tmp_path: Path) -> None:
    recorded = RecordedDownload(
        yahoo_frame({"SPY": ohlcv([11.0, 12.0, 13.0, 14.0]), "AAPL": ohlcv([5.0, 6.0, 7.0, 8.0])})
    )
    source = YFinanceSource(cache_dir=tmp_path, download=recorded)
    source.fetch(["SPY"], "2024-01-02", "2024-01-05")
    source.fetch(["SPY", "AAPL"], "2024-01-02", "2024-01-05")
    assert [tickers for tickers, _ in recorded.calls] == [["SPY"], ["AAPL"]]


def test_empty_range_is_an_error(tmp_path: Path) -> None:
    recorded = RecordedDownload(yahoo_frame({"SPY": ohlcv([11.0, 12.0, 13.0, 14.0])}))
    with pytest.raises(ValueError, match="before start"):
        YFinanceSource(cache_dir=tmp_path, download=recorded).fetch(["SPY"], "2024-01-05", "2024-01-02")


def test_registered_spec_uses_yfinance_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recorded = RecordedDownload(yahoo_frame({"SPY": ohlcv([11.0, 12.0, 13.0, 14.0])}))
    monkeypatch.setattr("yfinance.download", recorded)
    data = load_data(f"yfinance:SPY;start=2024-01-03;end=2024-01-04;cache_dir={tmp_path}")
    assert data.n_bars == 2 and len(recorded.calls) == 1


def test_interval_names() -> None:
    assert [yf_interval(t) for t in ("1Day", "1Hour", "15Min", "1Week", "1Month")] == [
        "1d",
        "1h",
        "15m",
        "1wk",
        "1mo",
    ]
    with pytest.raises(ValueError, match="timeframe '1d'"):
        yf_interval("1d")
