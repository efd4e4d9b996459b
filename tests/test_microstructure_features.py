"""Microstructure, sentiment and breadth features: each against a hand-computed example and a look-ahead
perturbation (changing events after n changes nothing at or before n)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from envs.data.market_data import MarketData
from envs.data.synthetic import generate_market_with_state
from envs.features import FeatureConfig, compute_features
from envs.features import microstructure as ms
from envs.features import sentiment as sn


def test_order_flow_imbalance_by_hand() -> None:
    # n1: more size at the same bid (+7 - 5); n2: bid up (+2), ask up (+ the old ask size 4);
    # n3: bid down (- the old bid size 2), ask size 3 -> 1 at the same price (+3 - 1).
    bid = [10.00, 10.00, 10.01, 10.00]
    bid_size = [5, 7, 2, 3]
    ask = [10.01, 10.01, 10.02, 10.02]
    ask_size = [4, 4, 3, 1]
    np.testing.assert_array_equal(ms.order_flow_imbalance(bid, bid_size, ask, ask_size), [0, 2, 6, 0])
    np.testing.assert_array_equal(ms.rolling_sum([0, 2, 6, 0], 2), [0, 2, 8, 6])


def test_trade_signs_quote_rule_then_tick_rule() -> None:
    price = [10.02, 10.00, 10.01, 10.01, 10.005]
    bid = [10.00] * 5
    ask = [10.02, 10.02, 10.02, 10.02, 10.01]
    # above the mid: buy; below: sell; at the mid after an up-tick: buy; zero tick: the last sign;
    # 10.005 is the mid of 10.00/10.01 after a down-tick: sell.
    np.testing.assert_array_equal(ms.trade_signs(price, bid, ask), [1, -1, 1, 1, -1])


def test_sign_autocorrelation_by_hand() -> None:
    alternating = np.array([1, -1] * 10, dtype=float)
    ac = ms.sign_autocorrelation(alternating, window=6)
    assert np.isnan(ac[:6]).all() and np.allclose(ac[6:], -1.0)
    signs = np.array([1, 1, -1, 1, -1, -1, 1, 1, 1, -1], dtype=float)
    expected = np.corrcoef(signs[4:9], signs[3:8])[0, 1]
    assert ms.sign_autocorrelation(signs, window=5)[8] == pytest.approx(expected)


def test_sweeps_by_hand() -> None:
    price = [10.00, 10.01, 10.02, 10.02, 10.00, 10.00, 10.01, 10.02]
    sign = [1, 1, 1, -1, 1, 1, 1, 1]
    time = [0.0, 0.1, 0.2, 0.3, 5.0, 5.5, 7.0, 9.0]
    flags = ms.sweeps(price, sign, time, tick=0.01, window=1.0, min_levels=3)
    # three buys through three levels in 0.2 s; the later buys walk the levels over 4 s: no sweep.
    np.testing.assert_array_equal(flags, [False, False, True, False, False, False, False, False])


def test_spreads_and_impact_by_hand_and_reported_late() -> None:
    price = np.array([10.02, 10.00, 10.03, 10.01])
    sign = np.array([1, -1, 1, -1])
    mid = np.array([10.01, 10.01, 10.02, 10.02])
    eff = ms.effective_spread(price, sign, mid)
    assert eff[0] == pytest.approx(2 * 0.01 / 10.01)
    realised = ms.realised_spread(price, sign, mid, horizon=2)
    impact = ms.price_impact(sign, mid, horizon=2)
    assert np.isnan(realised[:2]).all() and np.isnan(impact[:2]).all()
    # trade 0 is known at trade 2: realised 2 (10.02 - 10.02) / 10.01 = 0, impact 2 (10.02 - 10.01) / 10.01.
    assert realised[2] == pytest.approx(0.0) and impact[2] == pytest.approx(2 * 0.01 / 10.01)
    # effective = realised + impact, trade by trade.
    assert realised[2:] + impact[2:] == pytest.approx(eff[:2])


def _quotes_and_trades(seed: int, n: int = 300) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    times = pd.Timestamp("2024-01-02 14:30", tz="UTC") + pd.to_timedelta(np.cumsum(rng.uniform(0.05, 0.5, n)), "s")
    mid = 100 + np.cumsum(rng.choice([-0.01, 0.0, 0.01], n))
    quotes = pd.DataFrame({"bid_price": mid - 0.01, "bid_size": rng.integers(1, 9, n),
                           "ask_price": mid + 0.01, "ask_size": rng.integers(1, 9, n)}, index=times)
    side = rng.choice([-1, 1], n)
    trades = pd.DataFrame({"price": mid + side * 0.01 * rng.integers(1, 3, n), "size": rng.integers(1, 5, n)},
                          index=times + pd.Timedelta("10ms"))
    return quotes, trades


def test_trade_features_have_no_look_ahead() -> None:
    quotes, trades = _quotes_and_trades(0)
    base = ms.trade_features(quotes, trades)
    assert base["sweep"].any() and base["realised_spread"].notna().sum() > 200
    cut = trades.index[150]
    q2, t2 = quotes.copy(), trades.copy()
    later_q, later_t = q2.index > cut, t2.index > cut
    q2.loc[later_q, ["bid_price", "ask_price"]] += 0.37
    t2.loc[later_t, "price"] = t2.loc[later_t, "price"][::-1].to_numpy() + 0.37
    changed = ms.trade_features(q2, t2)
    pd.testing.assert_frame_equal(base.loc[:cut], changed.loc[:cut])
    assert not base.loc[cut:].equals(changed.loc[cut:])
    ofi = ms.quote_ofi(quotes, "10s")
    ofi2 = ms.quote_ofi(q2.assign(bid_size=np.where(later_q, 1, q2["bid_size"])), "10s")
    pd.testing.assert_series_equal(ofi[ofi.index <= cut.floor("10s")], ofi2[ofi2.index <= cut.floor("10s")])
    assert ofi.sum() == pytest.approx(ms.order_flow_imbalance(*(quotes[c] for c in quotes.columns)).sum())


def test_breadth_by_hand_and_in_the_library() -> None:
    close = np.array([[10, 20, 30], [11, 19, 30], [12, 18, 31], [11, 19, 32]], dtype=float)
    np.testing.assert_allclose(sn.advance_decline(close), [np.nan, 0.0, 1 / 3, 1 / 3])
    # SMA(2) at bar 1: 10.5, 19.5, 30 -> above, below, equal (not above): 1/3; bar 3: 11.5, 18.5, 31.5 ->
    # below, above, above: 2/3.
    np.testing.assert_allclose(sn.share_above_average(close, 2), [np.nan, 1 / 3, 2 / 3, 2 / 3])
    data, _ = generate_market_with_state(n_symbols=4, n_days=400, seed=2)
    config = FeatureConfig(features=("breadth_ad", "breadth_sma_200"), normalize="none")
    features = compute_features(data, config)
    frame = features.frame(data.symbols[1])
    np.testing.assert_allclose(frame["breadth_ad"].to_numpy()[1:], sn.advance_decline(data.close)[1:])
    t = 300
    future = data.values.copy()
    future[t + 1 :, :, :4] *= np.random.default_rng(0).uniform(0.5, 1.5, size=(data.n_bars - t - 1, 4, 1))
    changed = compute_features(MarketData(future, data.index, data.symbols), config)
    pd.testing.assert_frame_equal(frame.iloc[: t + 1], changed.frame(data.symbols[1]).iloc[: t + 1])


def test_vix_features_by_hand_real_sample_and_synthetic_vix() -> None:
    vix = pd.Series([10.0, 20.0, 30.0, 15.0], index=pd.date_range("2024-01-01", periods=4, tz="UTC"))
    f = sn.vix_features(vix, average=2, window=3)
    np.testing.assert_allclose(f["vix_level"], [0.1, 0.2, 0.3, 0.15])
    np.testing.assert_allclose(f["vix_term"], [np.nan, 20 / 15 - 1, 30 / 25 - 1, 15 / 22.5 - 1])
    np.testing.assert_allclose(f["vix_pctile"], [np.nan, np.nan, 1.0, 1 / 3])  # 15 is the lowest of 20, 30, 15
    changed = sn.vix_features(vix.where(vix.index < vix.index[2], 99.0), average=2, window=3)
    pd.testing.assert_frame_equal(f.iloc[:2], changed.iloc[:2])
    real = sn.real_vix()
    # 1,259 trading days; the August 2015 and February 2018 spikes closed above 40.
    assert len(real) == 1259 and real.notna().all() and 9 < real.min() < 10 and 40 < real.max() < 41
    assert real.index.is_monotonic_increasing and str(real.index.tz) == "UTC"



def test_put_call_ratio_by_hand() -> None:
    chain = pd.DataFrame({
        "timestamp": ["d1", "d1", "d1", "d2", "d2"], "right": ["P", "C", "P", "P", "C"],
        "volume": [30, 40, 10, 5, 0],
    })
    ratio = sn.put_call_ratio(chain)
    assert ratio["d1"] == pytest.approx(1.0) and np.isnan(ratio["d2"])
    with pytest.raises(ValueError, match="volume"):
        sn.put_call_ratio(chain.drop(columns="volume"))


def test_features_of_the_simulator_events_see_hawkes_clustering_and_sweeps() -> None:
    from envs.sim import lob

    def flow(book: dict) -> tuple[np.ndarray, np.ndarray]:
        sim = lob.OrderBookSim(lob.BookConfig(**book), 1)  # the simulator itself runs past n_steps
        rng = np.random.default_rng(0)
        far = np.full(1, 50.0)
        net, levels = [], []
        for _ in range(4000):
            ev = sim.step(rng, far, far, np.ones(1), np.ones(1))
            net.append(ev[lob.N_BUY, 0] - ev[lob.N_SELL, 0])
            levels.append(max(ev[lob.BUY_LEVELS, 0], ev[lob.SELL_LEVELS, 0]))
        return np.sign(np.array(net)), np.array(levels)

    poisson, _ = flow({})
    hawkes, _ = flow({"arrival_process": "hawkes", "hawkes_excitation": 60.0, "hawkes_decay": 80.0})
    ac_poisson = ms.sign_autocorrelation(poisson, window=3000)[-1]
    ac_hawkes = ms.sign_autocorrelation(hawkes, window=3000)[-1]
    assert abs(ac_poisson) < 0.05 < ac_hawkes, "self-exciting order flow is autocorrelated"
    _, levels = flow({"fill_model": "queue", "book_depth": 2.0, "mo_size": 3.0})
    assert (levels >= 3).any(), "large market orders in a thin book sweep several levels"
