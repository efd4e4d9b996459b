"""MarketData: construction, views, pandas round trips, time zones and every validation rule."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from envs.data.market_data import FIELDS, DataValidationError, MarketData, forward_fill, validate

SYMBOLS = ("AAA", "BBB")


def make_data(n_bars: int = 6, symbols: tuple[str, ...] = SYMBOLS) -> MarketData:
    """Small valid bars: close rises by 1 per bar, open 0.5 below, high/low 1 outside."""
    close = 100.0 + np.arange(n_bars)[:, None] + 10.0 * np.arange(len(symbols))[None, :]
    values = np.stack([close - 0.5, close + 1.0, close - 1.0, close,
                       np.full_like(close, 1000.0)], axis=2)
    index = pd.date_range("2024-01-02", periods=n_bars, freq="B", tz="UTC")
    return MarketData(values, index, symbols)


def with_value(data: MarketData, t: int, s: int, field: str, value: float) -> MarketData:
    values = data.values.copy()
    values[t, s, FIELDS.index(field)] = value
    return MarketData(values, data.index, data.symbols)


def test_shape_views_and_read_only() -> None:
    data = make_data()
    assert (data.n_bars, data.n_symbols) == (6, 2)
    assert data.close.shape == (6, 2)
    np.testing.assert_array_equal(data.field("high"), data.high)
    with pytest.raises(ValueError):
        data.close[0, 0] = 1.0
    with pytest.raises(KeyError, match="unknown field"):
        data.field("vwap")


def test_constructor_copies_input() -> None:
    values = make_data().values.copy()
    data = MarketData(values, make_data().index, SYMBOLS)
    values[0, 0, 3] = -1.0
    assert data.close[0, 0] > 0


@pytest.mark.parametrize(
    ("values_shape", "n_index", "symbols", "rule"),
    [
        ((6, 2, 4), 6, SYMBOLS, "shape"),
        ((6, 2, 5), 5, SYMBOLS, "misaligned"),
        ((6, 2, 5), 6, ("AAA",), "misaligned"),
        ((6, 2, 5), 6, ("AAA", "AAA"), "duplicate_symbol"),
    ],
)
def test_constructor_rejects_inconsistent_shapes(values_shape, n_index, symbols, rule) -> None:
    index = pd.date_range("2024-01-02", periods=n_index, tz="UTC")
    with pytest.raises(DataValidationError) as err:
        MarketData(np.ones(values_shape), index, symbols)
    assert err.value.rule == rule


def test_select_slice_iloc() -> None:
    data = make_data()
    picked = data.select(["BBB"])
    assert picked.symbols == ("BBB",)
    np.testing.assert_array_equal(picked.close[:, 0], data.close[:, 1])
    window = data.slice("2024-01-03", "2024-01-05")
    assert list(window.index.day) == [3, 4, 5]
    assert data.iloc(slice(2, 4)).n_bars == 2
    with pytest.raises(KeyError, match="ZZZ"):
        data.select(["ZZZ"])
    with pytest.raises(DataValidationError, match=r"\[empty\]"):
        data.slice("2030-01-01")


def test_long_round_trip() -> None:
    data = make_data()
    long = data.to_long()
    assert list(long.columns) == ["timestamp", "symbol", *FIELDS]
    assert len(long) == data.n_bars * data.n_symbols
    back = MarketData.from_long(long.sample(frac=1.0, random_state=0))
    np.testing.assert_array_equal(back.values, data.values)
    assert back.index.equals(data.index) and back.symbols == data.symbols


def test_wide_round_trip() -> None:
    data = make_data()
    back = MarketData.from_wide(data.to_wide())
    np.testing.assert_array_equal(back.values, data.values)
    assert back.index.equals(data.index) and back.symbols == data.symbols


def test_frame_round_trips_and_column_case() -> None:
    data = make_data()
    frame = data.to_frame("AAA")
    assert list(frame.columns) == ["Open", "High", "Low", "Close", "Volume"]
    back = MarketData.from_frame(frame, "AAA")
    np.testing.assert_array_equal(back.values, data.select(["AAA"]).values)
    both = MarketData.from_frames({s: data.to_frame(s) for s in data.symbols})
    np.testing.assert_array_equal(both.values, data.values)


def test_frame_with_date_column_and_no_volume() -> None:
    frame = make_data().to_frame("AAA").drop(columns="Volume").reset_index(names="Date")
    data = MarketData.from_frame(frame, "AAA")
    assert data.index[0] == pd.Timestamp("2024-01-02", tz="UTC")
    assert (data.volume == 0).all()


def test_frame_without_time_is_rejected() -> None:
    frame = make_data().to_frame("AAA").reset_index(drop=True)
    with pytest.raises(DataValidationError) as err:
        MarketData.from_frame(frame, "AAA")
    assert err.value.rule == "missing_column" and err.value.symbol == "AAA"


def test_long_frame_missing_column() -> None:
    with pytest.raises(DataValidationError, match="'close'") as err:
        MarketData.from_long(make_data().to_long().drop(columns="close"))
    assert err.value.rule == "missing_column"


def test_naive_index_is_utc_and_aware_index_is_converted() -> None:
    data = make_data()
    naive = MarketData(data.values, data.index.tz_localize(None), SYMBOLS)
    assert naive.index.equals(data.index)
    local = pd.date_range("2024-07-01 09:30", periods=6, freq="h", tz="America/New_York")
    converted = MarketData(data.values, local, SYMBOLS)
    assert str(converted.index.tz) == "UTC"
    assert converted.index[0] == pd.Timestamp("2024-07-01 13:30", tz="UTC")


def test_pickle_keeps_arrays_read_only() -> None:
    data = make_data()
    back = pickle.loads(pickle.dumps(data))
    np.testing.assert_array_equal(back.values, data.values)
    assert not back.values.flags.writeable


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("close", np.nan, "nan"),
        ("volume", np.inf, "nan"),
        ("low", 0.0, "non_positive_price"),
        ("open", -1.0, "non_positive_price"),
        ("high", 50.0, "high_below_low"),
        ("open", 200.0, "open_outside_range"),
        ("open", 99.5, "open_outside_range"),
        ("close", 200.0, "close_outside_range"),
        ("volume", -5.0, "negative_volume"),
    ],
)
def test_value_rules_name_symbol_timestamp_and_rule(field: str, value: float, rule: str) -> None:
    data = with_value(make_data(), 3, 1, field, value)
    with pytest.raises(DataValidationError) as err:
        validate(data)
    assert err.value.rule == rule
    assert err.value.symbol == "BBB"
    assert err.value.timestamp == data.index[3]
    assert f"[{rule}] symbol=BBB timestamp={data.index[3].isoformat()}" in str(err.value)


def test_unsorted_and_duplicate_timestamps() -> None:
    data = make_data()
    shuffled = data.index[[0, 2, 1, 3, 4, 5]]
    with pytest.raises(DataValidationError) as err:
        validate(MarketData(data.values, shuffled, SYMBOLS))
    assert err.value.rule == "unsorted_timestamp" and err.value.timestamp == data.index[1]
    repeated = data.index[[0, 1, 1, 3, 4, 5]]
    with pytest.raises(DataValidationError) as err:
        validate(MarketData(data.values, repeated, SYMBOLS))
    assert err.value.rule == "duplicate_timestamp" and err.value.timestamp == data.index[1]


def test_unsorted_frame_names_its_symbol() -> None:
    frame = make_data().to_frame("AAA").iloc[[0, 2, 1, 3]]
    with pytest.raises(DataValidationError) as err:
        MarketData.from_frame(frame, "AAA")
    assert (err.value.rule, err.value.symbol) == ("unsorted_timestamp", "AAA")


def test_duplicate_rows_in_long_frame() -> None:
    long = make_data().to_long()
    with pytest.raises(DataValidationError) as err:
        MarketData.from_long(pd.concat([long, long.iloc[[3]]]))
    assert err.value.rule == "duplicate_timestamp"
    assert (err.value.symbol, err.value.timestamp) == (long["symbol"][3], long["timestamp"][3])


def drop_bar(data: MarketData, symbol: str, t: int) -> pd.DataFrame:
    long = data.to_long()
    return long[~((long["symbol"] == symbol) & (long["timestamp"] == data.index[t]))]


def test_misaligned_symbols() -> None:
    data = make_data()
    with pytest.raises(DataValidationError, match="fill_gaps=True") as err:
        MarketData.from_long(drop_bar(data, "BBB", 2))
    assert err.value.rule == "misaligned"
    assert (err.value.symbol, err.value.timestamp) == ("BBB", data.index[2])


def test_fill_gaps_forward_fills_with_last_close_and_zero_volume() -> None:
    data = make_data()
    filled = MarketData.from_long(drop_bar(data, "BBB", 2), fill_gaps=True)
    last_close = data.close[1, 1]
    np.testing.assert_array_equal(filled.values[2, 1, :4], [last_close] * 4)
    assert filled.volume[2, 1] == 0.0
    np.testing.assert_array_equal(filled.values[3:], data.values[3:])


def test_fill_gaps_never_fills_leading_gaps() -> None:
    data = make_data()
    with pytest.raises(DataValidationError, match="common start") as err:
        MarketData.from_long(drop_bar(data, "BBB", 0), fill_gaps=True)
    assert (err.value.rule, err.value.symbol) == ("misaligned", "BBB")


def test_forward_fill_function() -> None:
    values = make_data().values.copy()
    values[4, 0, :] = np.nan
    values[0, 1, :] = np.nan
    out = forward_fill(values)
    np.testing.assert_array_equal(out[4, 0, :4], values[3, 0, 3])
    assert out[4, 0, 4] == 0.0
    assert np.isnan(out[0, 1, :4]).all()
