"""File sources, sample data sets and the load_data registry."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from envs.data import sources
from envs.data.market_data import DataValidationError, MarketData
from envs.data.sources import (
    SAMPLES,
    known_sources,
    load_csv,
    load_data,
    load_parquet,
    load_path,
    register_source,
    write_csv,
    write_parquet,
)
from envs.data.synthetic import generate_market


@pytest.fixture(scope="module")
def data() -> MarketData:
    return generate_market(symbols=("AAA", "BBB", "CCC"), n_days=40, seed=1)


def assert_same(actual: MarketData, expected: MarketData) -> None:
    assert actual.symbols == expected.symbols
    assert actual.index.equals(expected.index)
    np.testing.assert_allclose(actual.values, expected.values, rtol=1e-12)


@pytest.mark.parametrize("layout", ["long", "per_symbol"])
def test_parquet_round_trip(tmp_path: Path, data: MarketData, layout: str) -> None:
    target = tmp_path / ("bars.parquet" if layout == "long" else "bars")
    write_parquet(data, target, layout=layout)
    back = load_parquet(target)
    np.testing.assert_array_equal(back.values, data.values)
    assert back.index.equals(data.index) and back.symbols == data.symbols


@pytest.mark.parametrize("layout", ["long", "per_symbol"])
def test_csv_round_trip(tmp_path: Path, data: MarketData, layout: str) -> None:
    target = tmp_path / ("bars.csv" if layout == "long" else "bars")
    write_csv(data, target, layout=layout)
    assert_same(load_csv(target), data)


def test_intraday_round_trip(tmp_path: Path) -> None:
    intraday = generate_market(freq="15min", n_days=3, n_symbols=2)
    write_csv(intraday, tmp_path / "bars.csv")
    assert_same(load_csv(tmp_path / "bars.csv"), intraday)


def test_single_symbol_file_takes_its_stem_or_given_name(tmp_path: Path, data: MarketData) -> None:
    frame = data.to_frame("AAA")
    frame.to_csv(tmp_path / "SPY.csv")
    frame.to_parquet(tmp_path / "QQQ.parquet")
    assert_same(load_csv(tmp_path / "SPY.csv"), MarketData.from_frame(frame, "SPY"))
    assert load_parquet(tmp_path / "QQQ.parquet").symbols == ("QQQ",)
    assert load_csv(tmp_path / "SPY.csv", symbol="X").symbols == ("X",)


def test_folder_with_mixed_formats(tmp_path: Path, data: MarketData) -> None:
    data.to_frame("AAA").to_csv(tmp_path / "AAA.csv.gz")
    data.to_frame("BBB").to_parquet(tmp_path / "BBB.pq")
    (tmp_path / "notes.txt").write_text("not data")
    both = load_path(tmp_path)
    assert_same(both, data.select(["AAA", "BBB"]))
    assert load_csv(tmp_path).symbols == ("AAA",)
    assert load_path(tmp_path, symbol="BBB").symbols == ("BBB",)


def test_long_file_any_case_and_symbol_selection(tmp_path: Path, data: MarketData) -> None:
    long = data.to_long().rename(columns={"timestamp": "Date", "symbol": "Ticker", "close": "CLOSE"})
    long.to_csv(tmp_path / "universe.csv", index=False)
    assert_same(load_csv(tmp_path / "universe.csv"), data)
    assert_same(load_csv(tmp_path / "universe.csv", symbol="CCC"), data.select(["CCC"]))
    with pytest.raises(KeyError, match="'ZZZ'"):
        load_csv(tmp_path / "universe.csv", symbol="ZZZ")


def test_multiindex_parquet_like_alpaca_bars(tmp_path: Path, data: MarketData) -> None:
    frame = data.to_long().set_index(["symbol", "timestamp"])
    frame.to_parquet(tmp_path / "bars.parquet")
    assert_same(load_parquet(tmp_path / "bars.parquet"), data)


def test_missing_volume_is_refused_unless_read_as_zero(tmp_path: Path, data: MarketData) -> None:
    data.to_frame("AAA").drop(columns="Volume").to_csv(tmp_path / "AAA.csv")
    with pytest.raises(DataValidationError, match=r"no \['volume'\] column.*volume='zero'") as err:
        load_csv(tmp_path / "AAA.csv")
    assert err.value.rule == "missing_column"
    loaded = load_csv(tmp_path / "AAA.csv", volume="zero")
    assert (loaded.volume == 0).all()
    assert (load_data(f"csv:{tmp_path / 'AAA.csv'}?volume=zero").volume == 0).all()
    np.testing.assert_allclose(loaded.close, data.select(["AAA"]).close, rtol=1e-12)


def test_naive_times_in_a_given_zone_and_mixed_offsets(tmp_path: Path) -> None:
    # Two sessions either side of the March 2024 DST change.
    local = ["2024-03-08 09:30", "2024-03-11 09:30"]
    frame = pd.DataFrame({"time": local, "open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "volume": 1.0})
    frame.to_csv(tmp_path / "naive.csv", index=False)
    expected = pd.DatetimeIndex(["2024-03-08 14:30", "2024-03-11 13:30"], tz="UTC")
    assert load_csv(tmp_path / "naive.csv", tz="America/New_York").index.equals(expected)
    aware = pd.DatetimeIndex(local).tz_localize("America/New_York").astype(str)
    frame.assign(time=aware).to_csv(tmp_path / "aware.csv", index=False)
    assert load_csv(tmp_path / "aware.csv").index.equals(expected)


def test_fill_gaps_across_files(tmp_path: Path, data: MarketData) -> None:
    data.to_frame("AAA").to_csv(tmp_path / "AAA.csv")
    data.to_frame("BBB").drop(index=data.index[5]).to_csv(tmp_path / "BBB.csv")
    with pytest.raises(DataValidationError, match="BBB.csv") as err:
        load_path(tmp_path)
    assert (err.value.rule, err.value.symbol, err.value.timestamp) == (
        "misaligned", "BBB", data.index[5])
    filled = load_path(tmp_path, fill_gaps=True)
    assert filled.close[5, 1] == filled.close[4, 1] and filled.volume[5, 1] == 0


# ---------------------------------------------------------------------- bad files
def test_missing_path_and_unsupported_type(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing.csv"):
        load_csv(tmp_path / "nothing.csv")
    (tmp_path / "bars.json").write_text("{}")
    with pytest.raises(ValueError, match="unsupported file type"):
        load_path(tmp_path / "bars.json")
    with pytest.raises(FileNotFoundError, match="holds no"):
        load_parquet(tmp_path)


def test_missing_column_names_file_and_column(tmp_path: Path, data: MarketData) -> None:
    path = tmp_path / "AAA.csv"
    data.to_frame("AAA").drop(columns="Low").to_csv(path)
    with pytest.raises(DataValidationError, match=r"AAA\.csv.*\['low'\]") as err:
        load_csv(path)
    assert err.value.rule == "missing_column"


def test_missing_time_column(tmp_path: Path, data: MarketData) -> None:
    path = tmp_path / "AAA.csv"
    data.to_frame("AAA").to_csv(path, index=False)
    with pytest.raises(DataValidationError, match="no time column") as err:
        load_csv(path)
    assert err.value.rule == "missing_column"


def test_bad_timestamp_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "AAA.csv"
    path.write_text("date,open,high,low,close,volume\n2024-01-02,1,2,0.5,1.5,1\nyesterday,1,2,0.5,1.5,1\n")
    with pytest.raises(DataValidationError, match=r"AAA\.csv, column 'date', line 3.*'yesterday'"):
        load_csv(path)


def test_bad_number_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "AAA.csv"
    path.write_text("date,open,high,low,close,volume\n2024-01-02,1,2,0.5,1.5,1\n2024-01-03,1,2,n/a?,1.5,1\n")
    with pytest.raises(DataValidationError, match=r"column 'low', line 3: 'n/a\?'") as err:
        load_csv(path)
    assert err.value.rule == "bad_value"


def test_unsorted_rows_are_refused_unless_sorted(tmp_path: Path) -> None:
    path = tmp_path / "AAA.csv"
    path.write_text(
        "date,open,high,low,close,volume\n2024-01-02,1,2,0.5,1.5,1\n2024-01-04,1,2,0.5,1.5,1\n"
        "2024-01-03,1,2,0.5,1.6,1\n"
    )
    with pytest.raises(DataValidationError, match=r"line 4: '2024-01-03' comes before '2024-01-04' on line 3") as err:
        load_csv(path)
    assert err.value.rule == "unsorted_timestamp"
    ordered = load_csv(path, sort=True)
    assert list(ordered.index.day) == [2, 3, 4] and ordered.close[1, 0] == 1.6
    assert load_data(f"csv:{path}?sort=true").index.equals(ordered.index)


def test_duplicate_timestamp_names_both_lines_even_when_sorting(tmp_path: Path) -> None:
    path = tmp_path / "AAA.csv"
    path.write_text(
        "date,open,high,low,close,volume\n2024-01-02,1,2,0.5,1.5,1\n2024-01-03,1,2,0.5,1.5,1\n"
        "2024-01-02,1,2,0.5,1.6,1\n"
    )
    for sort in (False, True):
        with pytest.raises(DataValidationError, match=r"line 4: '2024-01-02' repeats line 2") as err:
            load_csv(path, sort=sort)
        assert err.value.rule == "duplicate_timestamp"


def test_bad_bar_in_a_csv_quotes_the_line_as_written(tmp_path: Path) -> None:
    path = tmp_path / "AAA.csv"
    path.write_text("date,open,high,low,close,volume\n2024-01-02,1,2,0.5,1.5,1\n2024-01-03,1,2,0.5,,1\n")
    with pytest.raises(DataValidationError, match=r"line 3: '2024-01-03,1,2,0.5,,1'") as err:
        load_csv(path)
    assert err.value.rule == "nan"
    with pytest.raises(ValueError, match="file option 'sorted=true'"):
        load_data(f"csv:{path}?sorted=true")


def test_bad_bar_names_file_symbol_timestamp_and_rule(tmp_path: Path, data: MarketData) -> None:
    frame = data.to_frame("BBB")
    frame.iloc[7, frame.columns.get_loc("High")] = frame["Low"].iloc[7] / 2
    data.to_frame("AAA").to_parquet(tmp_path / "AAA.parquet")
    frame.to_parquet(tmp_path / "BBB.parquet")
    with pytest.raises(DataValidationError, match="BBB.parquet") as err:
        load_parquet(tmp_path)
    assert (err.value.rule, err.value.symbol, err.value.timestamp) == (
        "high_below_low", "BBB", data.index[7])


def test_symbol_in_two_files(tmp_path: Path, data: MarketData) -> None:
    data.to_frame("AAA").to_csv(tmp_path / "AAA.csv")
    data.select(["AAA"]).to_long().to_csv(tmp_path / "more.csv", index=False)
    with pytest.raises(DataValidationError, match=r"AAA\.csv and .*more\.csv") as err:
        load_path(tmp_path)
    assert err.value.rule == "duplicate_symbol"


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"this is not parquet")
    with pytest.raises(DataValidationError, match="broken.parquet") as err:
        load_parquet(path)
    assert err.value.rule == "unreadable_file"


def test_per_symbol_layout_rejects_unsafe_names(tmp_path: Path, data: MarketData) -> None:
    unsafe = MarketData(data.values[:, :1], data.index, ("BTC/USD",))
    with pytest.raises(ValueError, match="layout='long'"):
        write_parquet(unsafe, tmp_path / "out", layout="per_symbol")
    with pytest.raises(ValueError, match="layout"):
        write_parquet(data, tmp_path / "out", layout="wide")


# ---------------------------------------------------------------------- load_data
def test_load_data_synthetic_specs() -> None:
    assert_same(load_data("synthetic"), generate_market())
    spec = "synthetic: seed=3, n_symbols=2, model=gbm, n_days=50, volatility_range=0.1/0.2"
    expected = generate_market(seed=3, n_symbols=2, model="gbm", n_days=50,
                               volatility_range=(0.1, 0.2))
    assert_same(load_data(spec), expected)
    assert_same(load_data("synthetic:seed=3", n_days=50, n_symbols=2, model="gbm",
                          volatility_range=(0.1, 0.2)), expected)
    named = load_data("synthetic:symbols=SPY/QQQ,cointegrated_pair=false,n_days=5")
    assert named.symbols == ("SPY", "QQQ")


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("synthetic:sede=3", "unknown SyntheticConfig option 'sede'"),
        ("synthetic:seed=three", "'seed'.*not a valid int"),
        ("synthetic:seed", "not key=value"),
        ("synthetic:cointegrated_pair=maybe", "not a boolean"),
        ("synthetic:volatility_range=0.1", "needs 2 values"),
        ("synthetic:correlation=1", "pass it as a keyword"),
        ("synthetic:model=trend", "model must be one of"),
        ("yahoo:SPY", r"unknown data source 'yahoo'.*'csv'.*'sample'.*'synthetic'"),
        ("csv:", "needs a path"),
    ],
)
def test_load_data_errors(spec: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_data(spec)


def test_load_data_file_schemes(tmp_path: Path, data: MarketData) -> None:
    write_parquet(data, tmp_path / "bars.parquet")
    write_csv(data, tmp_path / "csv", layout="per_symbol")
    assert_same(load_data(f"parquet:{tmp_path / 'bars.parquet'}"), data)
    assert_same(load_data(f"csv:{tmp_path / 'csv'}"), data)
    assert_same(load_data(f"file:{tmp_path / 'bars.parquet'}", symbol="BBB"), data.select(["BBB"]))


def test_register_source(monkeypatch: pytest.MonkeyPatch, data: MarketData) -> None:
    monkeypatch.setattr(sources, "_SOURCES", dict(sources._SOURCES))
    calls = []

    def loader(argument: str, **kwargs: object) -> MarketData:
        calls.append((argument, kwargs))
        return data

    register_source("broker", loader)
    assert "broker" in known_sources()
    assert load_data("broker:AAA,BBB", feed="iex") is data
    assert calls == [("AAA,BBB", {"feed": "iex"})]
    with pytest.raises(ValueError, match="already registered"):
        register_source("broker", loader)
    register_source("broker", loader, replace=True)
    with pytest.raises(ValueError, match="identifier"):
        register_source("my source", loader)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_samples_load_offline(name: str) -> None:
    if importlib.util.find_spec(SAMPLES[name][0]) is None:
        pytest.skip(f"{SAMPLES[name][1]} is not installed")
    sample = load_data(f"sample:{name}")
    assert sample.symbols == (name,)
    assert sample.n_bars > (150 if name == "BTCUSD" else 2000)  # BTCUSD is monthly
    assert (sample.volume > 0).mean() > 0.99


def test_sample_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="available: .*'GOOG'"):
        load_data("sample:TSLA")
    monkeypatch.setattr(sources.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="pip install arch"):
        load_data("sample:SPX")
