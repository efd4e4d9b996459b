"""Synthetic option chains (expiries, strikes, surface, quotes, IV rank) and the Parquet chain store."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from envs.data.synthetic import generate_market_with_state
from envs.options.chain_store import (
    ChainDataError,
    load_option_chains,
    load_option_chains_from_store,
    with_implied_vols,
    write_option_chains,
)
from envs.options.chains import ChainConfig, SyntheticChains, listed_expiries, strike_step
from envs.options.pricing import IVReason, implied_vol


@pytest.fixture(scope="module")
def market():
    return generate_market_with_state(n_symbols=1, n_days=500, seed=11)


@pytest.fixture(scope="module")
def chains(market) -> SyntheticChains:
    data, state = market
    return SyntheticChains.from_market(data, state=state)


def test_listed_expiries_are_fridays_weeklies_and_third_friday_monthlies() -> None:
    expiries = listed_expiries(np.datetime64("2024-03-15"), n_weeklies=3, n_monthlies=2)  # a Friday
    assert [str(e) for e in expiries] == ["2024-03-22", "2024-03-29", "2024-04-05", "2024-04-19", "2024-05-17"]
    assert all(pd.Timestamp(e).dayofweek == 4 for e in expiries)
    # From a Wednesday in the week of a monthly: this week's Friday is both a weekly and the monthly.
    wed = listed_expiries(np.datetime64("2024-04-17"), n_weeklies=2, n_monthlies=1)
    assert [str(e) for e in wed] == ["2024-04-19", "2024-04-26"]


def test_strike_grid_surrounds_spot(chains: SyntheticChains) -> None:
    t = 300
    chain = chains.chain(t)
    step = strike_step(chain.spot)
    strikes = np.unique(chain.strike)
    assert strikes.min() < chain.spot < strikes.max()
    np.testing.assert_allclose(np.diff(strikes), step)
    assert np.all(chain.dte > 0) and np.all(chain.expiry > chains.dates[t])
    assert len(np.unique(chain.expiry)) >= chains.config.n_monthlies


def test_quotes_bracket_the_model_and_spreads_widen_in_the_wings(chains: SyntheticChains) -> None:
    chain = chains.chain(250)
    q = chain.quotes
    assert np.all(q.bid <= q.mid + 1e-12) and np.all(q.mid <= q.ask + 1e-12) and np.all(q.bid >= 0)
    ticks = np.round(np.r_[q.bid, q.ask] / chains.config.tick)
    np.testing.assert_allclose(np.r_[q.bid, q.ask] / chains.config.tick, ticks, atol=1e-6)
    # Same expiry: the relative spread of a far out-of-the-money put is wider than at the money.
    first = chain.expiry == np.sort(np.unique(chain.expiry))[3]
    puts = first & ~chain.is_call & (q.mid > 0.05)
    moneyness = np.abs(np.log(chain.strike[puts] / chain.spot))
    rel = ((q.ask - q.bid) / q.mid)[puts]
    assert rel[np.argmax(moneyness)] > rel[np.argmin(moneyness)]


def test_surface_has_equity_skew_and_the_mid_is_its_implied_vol(chains: SyntheticChains) -> None:
    t = 320
    chain = chains.chain(t)
    q = chain.quotes
    first = chain.expiry == np.sort(np.unique(chain.expiry))[2]
    low = first & (chain.strike < 0.93 * chain.spot)
    high = first & (chain.strike > 1.07 * chain.spot)
    assert q.iv[low].mean() > q.iv[high].mean()  # puts dearer than calls at the same distance
    priced = q.greeks.vega * 1e-7 > 1e-13 * np.maximum(q.mid, 1.0)  # prices that pin the vol down
    cfg = chains.config
    back = implied_vol(q.mid[priced], chain.spot, chain.strike[priced], q.t[priced], cfg.rate, cfg.div_yield,
                       chain.is_call[priced])
    np.testing.assert_allclose(back, q.iv[priced], atol=1e-6)


def test_term_structure_inverts_after_a_volatility_shock() -> None:
    rng = np.random.default_rng(0)
    returns = np.r_[rng.normal(0, 0.02, 200), rng.normal(0, 0.005, 100), rng.normal(0, 0.05, 15)]
    close = 100 * np.exp(np.cumsum(returns))
    index = pd.bdate_range("2020-01-01", periods=close.size, tz="UTC")
    chains = SyntheticChains(close, index)
    assert chains.term_slope[299] > 0  # calm after a busier spell: contango
    assert chains.term_slope[-1] < 0  # after the shock: backwardation
    assert chains.iv_rank[299] < 0.2 < 0.75 < chains.iv_rank[-1]  # IV rank follows the regime
    assert chains.iv_percentile[-1] > 0.9


def test_iv_rank_and_surface_are_causal(market) -> None:
    data, state = market
    base = SyntheticChains.from_market(data, state=state)
    t = 350
    values = data.values.copy()
    values[t + 1:] *= np.linspace(1.0, 3.0, data.n_bars - t - 1)[:, None, None]
    changed = SyntheticChains(values[:, 0, 3], data.index, true_vol=state.volatility[:, 0] * 2.0 ** (
        np.arange(data.n_bars) > t), regimes=state.regimes)
    for name in ("atm_iv30", "iv_rank", "iv_percentile", "term_slope", "skew_30d", "short_vol", "long_vol"):
        np.testing.assert_array_equal(getattr(base, name)[: t + 1], getattr(changed, name)[: t + 1], err_msg=name)
    assert not np.allclose(base.atm_iv30[t + 5:], changed.atm_iv30[t + 5:])
    pd.testing.assert_frame_equal(base.chain(t).to_frame(), changed.chain(t).to_frame())


def test_iv_rank_is_a_rank(chains: SyntheticChains) -> None:
    rank = chains.iv_rank[chains.warmup:]
    assert np.all((rank >= 0) & (rank <= 1)) and np.isnan(chains.iv_rank[: chains.warmup]).all()
    s = pd.Series(chains.atm_iv30)
    t, w = 400, chains.config.iv_rank_window
    window = s.iloc[max(0, t - w + 1): t + 1]
    assert chains.iv_rank[t] == pytest.approx((s[t] - window.min()) / (window.max() - window.min()))
    assert chains.iv_percentile[t] == pytest.approx((window.rank(pct=True)).iloc[-1])


def test_bad_inputs_raise(market) -> None:
    data, _ = market
    with pytest.raises(ValueError, match="bar 3"):
        SyntheticChains(np.r_[1.0, 2.0, 3.0, -1.0], data.index[:4])
    with pytest.raises(ValueError, match="ChainConfig.rel_spread"):
        ChainConfig(rel_spread=-0.1)
    with pytest.raises(ValueError, match="symbol 'XYZ'"):
        SyntheticChains.from_market(data, symbol="XYZ")
    with pytest.raises(IndexError, match="bar 9999"):
        SyntheticChains.from_market(data).chain(9999)


# ---------------------------------------------------------------------------------- Parquet store
def _sample_frame(chains: SyntheticChains) -> pd.DataFrame:
    frames = [chains.chain(t).to_frame() for t in (300, 301)]
    frame = pd.concat(frames, ignore_index=True)
    frame["underlying"] = "SYN0"
    return frame


def test_store_round_trip_file_folder_and_file_like(tmp_path, chains: SyntheticChains) -> None:
    frame = _sample_frame(chains)
    path = tmp_path / "chains.parquet"
    write_option_chains(frame, path)
    loaded = load_option_chains(path)
    assert len(loaded) == len(frame)
    assert set(loaded["right"]) == {"C", "P"} and str(loaded["timestamp"].dt.tz) == "UTC"
    np.testing.assert_allclose(np.sort(loaded["bid"].to_numpy()), np.sort(frame["bid"].to_numpy()))
    folder = tmp_path / "store"
    folder.mkdir()
    for day, part in frame.groupby(frame["timestamp"].dt.date):
        write_option_chains(part, folder / f"{day}.parquet")
    assert len(load_option_chains(folder)) == len(frame)
    buffer = io.BytesIO()
    write_option_chains(frame, buffer)
    buffer.seek(0)
    assert len(load_option_chains(buffer, underlying="SYN0")) == len(frame)


def test_store_through_an_object_store_client(tmp_path, chains: SyntheticChains) -> None:
    buffer = io.BytesIO()
    write_option_chains(_sample_frame(chains), buffer)

    class Response:
        def __init__(self, payload: bytes) -> None:
            self.payload, self.closed, self.released = payload, False, False

        def read(self) -> bytes:
            return self.payload

        def close(self) -> None:
            self.closed = True

        def release_conn(self) -> None:
            self.released = True

    class Client:  # the part of minio.Minio the loader uses
        def __init__(self) -> None:
            self.response = Response(buffer.getvalue())

        def get_object(self, bucket: str, key: str) -> Response:
            assert (bucket, key) == ("options", "chains/SYN0.parquet")
            return self.response

    client = Client()
    frame = load_option_chains_from_store(client, "options", "chains/SYN0.parquet")
    assert len(frame) > 0 and client.response.closed and client.response.released


def test_store_errors_name_column_and_row(tmp_path, chains: SyntheticChains) -> None:
    frame = _sample_frame(chains)
    bad = frame.copy()
    bad.loc[5, "ask"] = bad.loc[5, "bid"] - 0.5
    with pytest.raises(ChainDataError, match=r"column 'ask' row 5: ask must be >= bid"):
        write_option_chains(bad, tmp_path / "x.parquet")
    bad = frame.copy()
    bad.loc[7, "right"] = "X"
    with pytest.raises(ChainDataError, match=r"column 'right' row 7"):
        write_option_chains(bad, tmp_path / "x.parquet")
    with pytest.raises(ChainDataError, match=r"missing required column\(s\) \['strike'\]"):
        write_option_chains(frame.drop(columns="strike"), tmp_path / "x.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(ChainDataError, match="cannot read as Parquet"):
        load_option_chains(tmp_path / "junk.parquet")
    path = tmp_path / "ok.parquet"
    write_option_chains(frame, path)
    with pytest.raises(ChainDataError, match="no rows for underlying 'QQQ'"):
        load_option_chains(path, underlying="QQQ")


def test_with_implied_vols_recovers_the_surface(chains: SyntheticChains) -> None:
    frame = _sample_frame(chains).drop(columns="iv")
    frame["bid"] = frame["mid"]
    frame["ask"] = frame["mid"]
    out = with_implied_vols(load_option_chains(_to_buffer(frame)), chains.config.rate, chains.config.div_yield)
    ok = out["iv_reason"] == IVReason.OK
    assert ok.mean() > 0.8
    expected = pd.concat([chains.chain(t).to_frame() for t in (300, 301)], ignore_index=True)
    merged = out[ok].merge(expected, on=["timestamp", "expiry", "strike", "right"], suffixes=("", "_model"))
    pinned = merged["vega_model"] * 1e-7 > 1e-13 * np.maximum(merged["mid_model"], 1.0)
    assert pinned.mean() > 0.8
    np.testing.assert_allclose(merged["iv"][pinned], merged["iv_model"][pinned], atol=1e-6)


def _to_buffer(frame: pd.DataFrame) -> io.BytesIO:
    buffer = io.BytesIO()
    write_option_chains(frame, buffer)
    buffer.seek(0)
    return buffer
