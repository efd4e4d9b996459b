"""Quotes and trades aggregated into bars (envs.data.ticks), the synthetic tick market, the Alpaca source's
microstructure fields through alpaca-py against the local server, and the microstructure families of the
feature library observed by Stocks-v0: hand-computed examples and look-ahead perturbations."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from alpaca_server import FakeAlpaca

import envs  # noqa: F401
from envs.data import load_data
from envs.data.market_data import DataValidationError, MarketData
from envs.data.synthetic_ticks import TickConfig, generate_ticks
from envs.data.ticks import BAR_FIELDS, bar_microstructure, with_microstructure
from envs.features import FeatureConfig, compute_features
from envs.features import microstructure as micro
from envs.features.microstructure import MICROSTRUCTURE_FEATURES

T0 = pd.Timestamp("2024-03-04 14:30", tz="UTC")


def _at(seconds: list[float]) -> pd.DatetimeIndex:
    return pd.DatetimeIndex([T0 + pd.Timedelta(seconds=s) for s in seconds], name="timestamp")


def _small() -> tuple[pd.DataFrame, pd.DataFrame, pd.DatetimeIndex]:
    """Three one-minute bars: quotes and trades chosen so every field can be worked out by hand."""
    quotes = pd.DataFrame({
        "bid_price": [10.00, 10.00, 10.01, 10.01, 10.00],
        "bid_size": [100, 300, 200, 200, 400],
        "ask_price": [10.02, 10.02, 10.02, 10.03, 10.03],
        "ask_size": [100, 100, 100, 500, 100],
    }, index=_at([0, 10, 20, 70, 130]))
    trades = pd.DataFrame({
        "price": [10.02, 10.02, 10.03, 10.04, 10.00],
        "size": [50, 100, 100, 200, 300],
    }, index=_at([30, 30.5, 30.8, 80, 140]))
    return quotes, trades, pd.DatetimeIndex([T0 + pd.Timedelta(minutes=k) for k in range(3)])


def test_bar_fields_by_hand() -> None:
    quotes, trades, index = _small()
    bars = bar_microstructure(quotes, trades, index, "1min", tick=0.01, horizon=1, window=2, sweep_levels=2)
    # e_n: 0 (first); bid same price, size 100 -> 300: +300 - 100 = +200 (ask unchanged: -100 + 100 = 0);
    # bid up to 10.01: +200; ask up to 10.03 (bid same: 200 - 200 = 0): +qa_prev 100 = +100;
    # bid down to 10.00: -200 (ask same: -100 + 500 = +400) -> +200.
    np.testing.assert_allclose(bars["ofi"], [0 + 200 + 200, 100, 200])
    np.testing.assert_allclose(bars["depth"], [np.mean([100, 200, 150]), 350, 250])
    # Prevailing mids 10.015, 10.015, 10.015 (all buys in bar 0), 10.02 (buy), 10.015 (10.00: sell).
    np.testing.assert_allclose(bars["buy_volume"], [250, 200, 0])
    np.testing.assert_allclose(bars["sell_volume"], [0, 0, 300])
    np.testing.assert_allclose(bars["n_trades"], [3, 1, 1])
    # Same-side burst within 1 s through 10.02 and 10.03: the third trade completes a two-level sweep; the
    # 10.04 buy 50 s later is a burst of its own (one level).
    np.testing.assert_allclose(bars["sweeps"], [1, 0, 0])
    mid = np.array([10.015, 10.015, 10.015, 10.02, 10.015])
    sign = np.array([1, 1, 1, 1, -1])
    price = trades["price"].to_numpy()
    eff = 2 * sign * (price - mid) / mid
    np.testing.assert_allclose(bars["effective_spread"], [eff[:3].mean(), eff[3], eff[4]])
    # Horizon 1: trade n's realised spread and impact use the mid at trade n+1 and are reported there.
    real = 2 * sign[:-1] * (price[:-1] - mid[1:]) / mid[:-1]
    impact = 2 * sign[:-1] * (mid[1:] - mid[:-1]) / mid[:-1]
    np.testing.assert_allclose(bars["realised_spread"], [real[:2].mean(), real[2], real[3]])
    np.testing.assert_allclose(bars["price_impact"], [impact[:2].mean(), impact[2], impact[3]])
    # Window of two signs at the bar's last trade: (1, 1) is constant (NaN); at the sell, pairs (1,1),(1,-1).
    assert np.isnan(bars["sign_autocorr"].iloc[0]) and np.isnan(bars["sign_autocorr"].iloc[1])


def test_window_features_by_hand() -> None:
    ofi = np.array([[400.0], [100.0], [200.0]])
    depth = np.array([[200.0], [np.nan], [100.0]])
    # Depth of bar 1 is the last known one (200); two-bar windows.
    np.testing.assert_allclose(micro.ofi_depth(ofi, depth, 2)[:, 0], [400 / 200, 500 / 200, 300 / 150])
    buy, sell = np.array([[250.0], [0.0], [0.0]]), np.array([[0.0], [0.0], [300.0]])
    np.testing.assert_allclose(micro.trade_imbalance(buy, sell, 2)[:, 0], [1.0, 1.0, -1.0])
    np.testing.assert_allclose(micro.trade_imbalance(sell * 0, sell * 0, 2)[:, 0], [0.0, 0.0, 0.0])
    spread = np.array([[np.nan], [2.0], [np.nan], [np.nan], [4.0]])
    np.testing.assert_allclose(micro.window_mean(spread, 2)[:, 0], [np.nan, 2.0, 2.0, 2.0, 4.0])
    np.testing.assert_allclose(micro.last_known(spread)[:, 0], [np.nan, 2.0, 2.0, 2.0, 4.0])


def _bars_with(fields: dict[str, np.ndarray]) -> MarketData:
    n = len(next(iter(fields.values())))
    close = 100 + np.arange(n, dtype=float)
    values = np.stack([close, close + 1, close - 1, close, np.full(n, 1e3)], axis=1)[:, None, :]
    index = pd.date_range("2024-03-04 14:30", periods=n, freq="1min", tz="UTC")
    return MarketData(values, index, ("X",), extra={k: np.asarray(v, float)[:, None] for k, v in fields.items()})


def test_library_families_read_the_bar_fields() -> None:
    n = 6
    fields = {name: np.zeros(n) for name in BAR_FIELDS}
    fields.update(ofi=np.array([1.0, 2, 3, 4, 5, 6]) * 100, depth=np.full(n, 100.0),
                  buy_volume=np.array([1.0, 0, 0, 0, 0, 3]), sell_volume=np.array([0.0, 1, 0, 0, 0, 1]),
                  sweeps=np.array([0.0, 1, 0, 2, 0, 0]), sign_autocorr=np.array([np.nan, 0.5, np.nan, 0.2, 0.1, 0.3]),
                  effective_spread=np.array([1.0, np.nan, 3, np.nan, np.nan, np.nan]))
    data = _bars_with(fields)
    names = ("ofi_2", "trade_imb_3", "sign_ac", "sweeps_2", "espread_2")
    f = compute_features(data, FeatureConfig(features=names, normalize="none", min_periods=2)).frame("X")
    np.testing.assert_allclose(f["ofi_2"], [1, 3, 5, 7, 9, 11])
    np.testing.assert_allclose(f["trade_imb_3"], [1, 0, 0, -1, 0, 0.5])
    np.testing.assert_allclose(f["sign_ac"], [np.nan, 0.5, 0.5, 0.2, 0.1, 0.3], rtol=1e-6)
    np.testing.assert_allclose(f["sweeps_2"], [0, 1, 1, 2, 2, 0])
    np.testing.assert_allclose(f["espread_2"], [1, 1, 3, 3, 3, 3])
    with pytest.raises(ValueError, match=r"feature ofi_5 needs the per-bar field 'ofi' of intraday bars loaded with quotes and trades.*OHLCV only"):
        compute_features(MarketData(data.values, data.index, data.symbols), FeatureConfig(features=("ofi_5",)))


def test_extra_fields_follow_select_slice_iloc_and_pickle() -> None:
    market = generate_ticks(n_days=1, n_symbols=2, event_rate=0.2).data
    assert set(market.extra) == set(BAR_FIELDS)
    one = market.select(["SYN1"])
    np.testing.assert_array_equal(one.extra_field("ofi")[:, 0], market.extra_field("ofi")[:, 1])
    window = market.slice(market.index[10], market.index[20])
    np.testing.assert_array_equal(window.extra_field("depth"), market.extra_field("depth")[10:21])
    np.testing.assert_array_equal(market.iloc(slice(5, 9)).extra_field("sweeps"), market.extra_field("sweeps")[5:9])
    again = pickle.loads(pickle.dumps(market))
    np.testing.assert_array_equal(again.extra_field("ofi"), market.extra_field("ofi"))
    assert not again.extra_field("ofi").flags.writeable
    with pytest.raises(DataValidationError, match="extra field 'ofi' has shape"):
        market.with_extra({"ofi": np.zeros(3)})
    with pytest.raises(KeyError, match="no 'vpin' field"):
        market.extra_field("vpin")


def test_synthetic_tick_market_is_seeded_and_its_bars_are_its_trades() -> None:
    a, b = generate_ticks(n_days=2, seed=4), generate_ticks(n_days=2, seed=4)
    np.testing.assert_array_equal(a.data.values, b.data.values)
    pd.testing.assert_frame_equal(a.quotes["SYN0"], b.quotes["SYN0"])
    assert not np.array_equal(generate_ticks(n_days=2, seed=5).data.values, a.data.values)
    trades, data = a.trades["SYN0"], a.data
    assert data.volume.sum() == trades["size"].sum()
    minute = trades.index.floor("1min")
    last = trades.groupby(minute)["price"].last()
    np.testing.assert_allclose(data.to_frame("SYN0")["Close"].reindex(last.index), last)
    spread = a.quotes["SYN0"]["ask_price"] - a.quotes["SYN0"]["bid_price"]
    assert (spread > 0).all() and (spread.round(2) == 0.01).mean() > 0.6, "a tight, never crossed book"
    features = a.data.extra
    assert np.nanmean(features["sign_autocorr"]) > 0.2, "order splitting keeps trade signs autocorrelated"
    assert np.nanmean(features["price_impact"]) > 0, "informed flow: trades move the mid their way"
    assert features["sweeps"].sum() > 0
    # Cont, Kukanov and Stoikov: a bar's OFI over the depth explains its mid-price change in ticks linearly.
    quotes = a.quotes["SYN0"]
    mid = 0.5 * (quotes["bid_price"] + quotes["ask_price"])
    last_mid = mid.groupby(quotes.index.floor("1min")).last().reindex(data.index).ffill()
    change = np.diff(last_mid.to_numpy(), prepend=last_mid.iloc[0]) / 0.01
    scaled = features["ofi"][:, 0] / features["depth"][:, 0]
    ok = np.isfinite(scaled) & np.isfinite(change)
    assert np.corrcoef(scaled[ok], change[ok])[0, 1] > 0.5


def test_registered_source_and_stocks_observe_the_features() -> None:
    data = load_data("synthetic_ticks:n_days=2,seed=1,event_rate=0.3")
    assert data.n_bars == 2 * 390 and str(data.frequency.label) == "1min" and set(data.extra) == set(BAR_FIELDS)
    config = FeatureConfig(features=("ret_1", *MICROSTRUCTURE_FEATURES), min_periods=5)
    env = gym.make("AlpacaGym/Stocks-v0", data=data, features=config, window_size=1)
    obs, info = env.reset(seed=0)
    expected = compute_features(data, config).values[info["t"], 0]
    np.testing.assert_allclose(obs[: len(expected)], expected, rtol=1e-6)
    obs, *_ = env.step(env.action_space.sample())
    assert np.isfinite(obs).all()


def test_no_look_ahead_in_bar_fields_and_features() -> None:
    market = generate_ticks(n_days=1, seed=2, event_rate=0.3)
    q, t, data = market.quotes["SYN0"], market.trades["SYN0"], market.data
    cut = 200
    when = data.index[cut]
    rng = np.random.default_rng(0)
    # Another future: every quote and trade from bar `cut` on is changed (prices and sizes).
    q2, t2 = q.copy(), t.copy()
    later_q, later_t = q2.index >= when, t2.index >= when
    q2.loc[later_q, ["bid_price", "ask_price"]] += 0.05
    q2.loc[later_q, ["bid_size", "ask_size"]] = rng.integers(1, 50, (later_q.sum(), 2)) * 100
    t2.loc[later_t, "price"] = t2.loc[later_t, "price"] + rng.choice([-0.03, 0.04], later_t.sum())
    t2.loc[later_t, "size"] = rng.integers(1, 20, later_t.sum()) * 100
    other = with_microstructure(MarketData(data.values, data.index, data.symbols), {"SYN0": (q2, t2)}, "1min",
                                tick=0.01)
    for name in BAR_FIELDS:
        np.testing.assert_array_equal(other.extra_field(name)[:cut], data.extra_field(name)[:cut], err_msg=name)
        assert not np.array_equal(other.extra_field(name)[cut:], data.extra_field(name)[cut:]) or name in (
            "n_trades",), name
    config = FeatureConfig(features=MICROSTRUCTURE_FEATURES, min_periods=5)
    before, after = compute_features(data, config).values, compute_features(other, config).values
    np.testing.assert_array_equal(before[:cut], after[:cut])
    assert not np.array_equal(before[cut:], after[cut:])


def test_alpaca_quotes_and_trades_become_the_same_bar_fields(alpaca_env: FakeAlpaca) -> None:
    """The synthetic market's bars, quotes and trades served in Alpaca's format; the real alpaca-py client
    fetches them over loopback (paged) and the source attaches the same fields the generator computed."""
    market = generate_ticks(n_days=1, seed=6, event_rate=0.2)
    data, q, t = market.data, market.quotes["SYN0"], market.trades["SYN0"]
    bars = data.to_long().assign(symbol="AAPL")
    alpaca_env.set_bars(bars, timeframe="1Min")
    q, t = q.reset_index(), t.reset_index()
    quotes = pd.DataFrame({"timestamp": q["timestamp"], "symbol": "AAPL", "bp": q["bid_price"], "bs": q["bid_size"],
                           "ap": q["ask_price"], "as": q["ask_size"], "bx": "V", "ax": "V", "c": [["R"]] * len(q),
                           "z": "C"})
    trades = pd.DataFrame({"timestamp": t["timestamp"], "symbol": "AAPL", "p": t["price"], "s": t["size"], "x": "V",
                           "i": np.arange(len(t)), "c": [["@"]] * len(t), "z": "C"})
    alpaca_env.set_ticks("quotes", quotes)
    alpaca_env.set_ticks("trades", trades)
    start, end = data.index[0].isoformat(), data.index[-1].isoformat()
    loaded = load_data(f"alpaca:AAPL;start={start};end={end};timeframe=1Min;microstructure=true")
    assert loaded.n_bars == data.n_bars and set(loaded.extra) == set(BAR_FIELDS)
    np.testing.assert_allclose(loaded.close, data.close)
    for name in BAR_FIELDS:
        np.testing.assert_allclose(loaded.extra_field(name), data.extra_field(name), err_msg=name, equal_nan=True)
    with pytest.raises(ValueError, match="microstructure fields need intraday bars"):
        load_data(f"alpaca:AAPL;start={start};end={end};timeframe=1Day;microstructure=true")
