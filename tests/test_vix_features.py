"""The VIX as observable features: joined to the bars as their ``vix`` field (envs.data.vix), read by the
feature library's vix_level / vix_term_n / vix_pctile_n, by hand, causal, and observed by Stocks-v0."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env

from envs.data.calendar import resample
from envs.data.market_data import DataValidationError, MarketData
from envs.data.sources import load_data
from envs.data.synthetic import generate_market_with_state
from envs.data.vix import real_vix, synthetic_vix, with_vix
from envs.features.library import VIX_FEATURES, FeatureConfig, compute_features
from envs.features.sentiment import vix_features


def _bars(n: int = 6, symbols: int = 2) -> MarketData:
    index = pd.date_range("2024-01-01", periods=n, freq="B", tz="UTC")
    close = np.linspace(100.0, 105.0, n)[:, None].repeat(symbols, axis=1)
    values = np.stack([close, close + 1, close - 1, close, np.full_like(close, 1e5)], axis=2)
    return MarketData(values, index, tuple(f"S{j}" for j in range(symbols)))


def test_with_vix_is_an_as_of_join_for_every_symbol() -> None:
    bars = _bars()
    # A close on a day without a bar (a holiday of the bars) and a missing one on a bar's day.
    vix = pd.Series([20.0, 22.0, 30.0, 25.0], index=pd.DatetimeIndex(
        ["2023-12-29", "2024-01-02", "2024-01-04", "2024-01-06"], tz="UTC"))
    got = with_vix(bars, vix).extra_field("vix")
    np.testing.assert_array_equal(got[:, 0], [20.0, 22.0, 22.0, 30.0, 30.0, 25.0])
    np.testing.assert_array_equal(got[:, 0], got[:, 1])
    later = pd.Series([20.0], index=pd.DatetimeIndex(["2025-01-01"], tz="UTC"))
    with pytest.raises(DataValidationError, match="no close on or before"):
        with_vix(bars, later)


def test_vix_features_by_hand_and_as_the_series_helper() -> None:
    bars = with_vix(_bars(6, 1), pd.Series([20.0, 30.0, 10.0, 40.0, 20.0, 25.0], index=_bars(6, 1).index))
    names = ("vix_level", "vix_term_2", "vix_pctile_3")
    f = compute_features(bars, FeatureConfig(features=names, normalize="none", min_periods=2)).frame("S0")
    np.testing.assert_allclose(f["vix_level"], [0.2, 0.3, 0.1, 0.4, 0.2, 0.25])
    np.testing.assert_allclose(f["vix_term_2"].iloc[1:], [30 / 25 - 1, 10 / 20 - 1, 40 / 25 - 1, 20 / 30 - 1, 25 / 22.5 - 1])
    # Percentile rank of today among the last 3: 10 is the lowest of (20, 30, 10), 40 the highest, ...
    np.testing.assert_allclose(f["vix_pctile_3"].iloc[2:], [1 / 3, 1.0, 2 / 3, 2 / 3])
    series = vix_features(pd.Series(bars.extra_field("vix")[:, 0], index=bars.index), average=2, window=3)
    np.testing.assert_allclose(series["vix_term"].iloc[1:], f["vix_term_2"].iloc[1:])
    np.testing.assert_allclose(series["vix_pctile"].iloc[2:], f["vix_pctile_3"].iloc[2:])


def test_vix_features_do_not_look_ahead() -> None:
    data = load_data("synthetic:seed=5,n_days=400,vix=true")
    config = FeatureConfig(features=VIX_FEATURES, normalize="zscore_expanding")
    base = compute_features(data, config).values
    cut = 300
    vix = data.extra_field("vix").copy()
    vix[cut:] *= 3.0
    changed = compute_features(data.with_extra({"vix": vix}), config).values
    np.testing.assert_array_equal(base[:cut], changed[:cut])
    assert not np.allclose(base[cut + 5:], changed[cut + 5:], equal_nan=True)


def test_data_specs_join_the_model_vix_and_the_real_one() -> None:
    data = load_data("synthetic:seed=2,n_days=300,vix=true")
    plain, state = generate_market_with_state(seed=2, n_days=300)
    np.testing.assert_array_equal(data.values, plain.values)
    np.testing.assert_allclose(data.extra_field("vix")[:, 0], synthetic_vix(plain, state).to_numpy())
    spx = load_data("sample:SPX?vix=true")
    vix = spx.extra_field("vix")[:, 0]
    real = real_vix()
    first = int(np.flatnonzero(np.isfinite(vix))[0])
    assert spx.index[first] == real.index[0]  # NaN before the sample's first close, never a later value
    on = spx.index.isin(real.index)
    np.testing.assert_array_equal(vix[on], real.reindex(spx.index[on]).to_numpy())
    weekly = resample(spx.slice("2015-01-01", None), "1W")  # a week's VIX is its last close
    last_of_week = spx.index[spx.index < weekly.index[2]][-1]
    assert weekly.extra_field("vix")[1, 0] == real[last_of_week]
    with pytest.raises(ValueError, match="vix=true"):
        load_data("sample:SPX?vox=true")
    with pytest.raises(ValueError, match="no VIX"):
        load_data("synthetic:model=momentum,vix=true")


def test_stocks_env_observes_the_vix_and_names_the_missing_field() -> None:
    data = load_data("synthetic:seed=1,n_days=400,vix=true")
    env = gym.make("AlpacaGym/Stocks-v0", data=data, features=FeatureConfig(features=("ret_1", *VIX_FEATURES)),
                   window_size=1)
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert np.isfinite(obs).all()
    with pytest.raises(ValueError, match="vix=true"):
        gym.make("AlpacaGym/Stocks-v0", data=load_data("synthetic:seed=1,n_days=400"),
                 features=FeatureConfig(features=VIX_FEATURES))
