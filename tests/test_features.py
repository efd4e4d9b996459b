"""Feature library: causality, reference values, warm-up, finiteness, determinism and errors."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from envs.data.market_data import MarketData
from envs.data.synthetic import generate_market_with_state
from envs.features import (
    DEFAULT_FEATURES,
    FeatureConfig,
    Features,
    FeatureSpec,
    compute_features,
    feature_families,
    normalize,
)
from envs.features import indicators as ind
from envs.features.library import LEVEL_FEATURES, MARKET_FEATURES, VIX_FEATURES
from envs.features.microstructure import MICROSTRUCTURE_FEATURES

MODES = ("none", "zscore_expanding", "zscore_rolling")


def _walk_frame(n: int, seed: int, start: str = "2010-01-01", vol: float = 0.01) -> pd.DataFrame:
    """A random-walk OHLCV frame with consistent bars (open and close inside [low, high])."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0002, vol, n)))
    open_ = np.r_[close[0], close[:-1]] * np.exp(rng.normal(0.0, vol / 5, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, vol / 2, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, vol / 2, n)))
    volume = rng.integers(1_000, 50_000, n).astype(float)
    index = pd.date_range(start, periods=n, freq="D", tz="UTC")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )


def _market(n: int = 450, symbols: str = "ABC", seed: int = 0) -> MarketData:
    return MarketData.from_frames({s: _walk_frame(n, seed + k) for k, s in enumerate(symbols)})


@pytest.fixture(scope="module")
def market() -> MarketData:
    return _market()


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return _walk_frame(400, seed=7)


# ---------------------------------------------------------------------------------- the default set
def test_default_set_has_at_least_50_features_including_regime_and_volatility_state() -> None:
    assert len(DEFAULT_FEATURES) >= 50
    assert len(set(DEFAULT_FEATURES)) == len(DEFAULT_FEATURES)
    families = {FeatureSpec.parse(name).family for name in DEFAULT_FEATURES}
    assert {"vol_regime", "vol_pctile", "vol_of_vol", "vol_term", "rvol"} <= families
    assert {"rsi", "macd", "atr", "bb_pctb", "obv_slope", "stoch_k", "adx", "cci"} <= families


def test_every_family_is_documented_and_in_the_default_set() -> None:
    docs = feature_families()
    default_families = {
        FeatureSpec.parse(n).family
        for n in DEFAULT_FEATURES + MARKET_FEATURES + MICROSTRUCTURE_FEATURES + LEVEL_FEATURES + VIX_FEATURES
    }
    assert {key.split("(")[0] for key in docs} == default_families
    assert all(isinstance(text, str) and text for text in docs.values())
    assert "rsi(n)" in docs and "vol_regime(n, m)" in docs


@pytest.mark.parametrize("mode", MODES)
def test_shapes_dtypes_and_read_only(market: MarketData, mode: str) -> None:
    features = compute_features(market, FeatureConfig(normalize=mode))
    assert isinstance(features, Features)
    assert features.values.shape == (market.n_bars, market.n_symbols, len(DEFAULT_FEATURES))
    assert features.values.dtype == np.float32
    assert not features.values.flags.writeable
    assert features.names == DEFAULT_FEATURES
    assert features.n_features == len(DEFAULT_FEATURES)
    assert features.symbols == market.symbols
    assert features.index.equals(market.index)
    frame = features.frame("B")
    assert list(frame.columns) == list(DEFAULT_FEATURES)
    assert frame.index.equals(market.index)
    np.testing.assert_array_equal(frame.to_numpy(), features.values[:, 1, :])


# --------------------------------------------------------------------------------------- causality
def _with_new_future(data: MarketData, t: int, seed: int) -> MarketData:
    """Same bars up to ``t``; every bar after ``t`` replaced by an unrelated random walk."""
    frames = {}
    for k, symbol in enumerate(data.symbols):
        frame = data.to_frame(symbol).rename(columns=str.lower)
        other = _walk_frame(data.n_bars, seed + k, vol=0.03) * (1.0 + k)
        frame.iloc[t + 1 :] = other.iloc[t + 1 :].to_numpy()
        frames[symbol] = frame
    return MarketData.from_frames(frames)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("t", [120, 300, 420])
def test_changing_the_future_leaves_every_feature_up_to_t_unchanged(
    market: MarketData, mode: str, t: int
) -> None:
    config = FeatureConfig(normalize=mode)
    changed = _with_new_future(market, t, seed=99)
    assert not np.array_equal(changed.values[t + 1 :], market.values[t + 1 :])
    before = compute_features(market, config).values
    after = compute_features(changed, config).values
    leaked = [
        name
        for k, name in enumerate(DEFAULT_FEATURES)
        if not np.array_equal(before[: t + 1, :, k], after[: t + 1, :, k], equal_nan=True)
    ]
    assert leaked == []
    assert not np.array_equal(before[t + 1 :], after[t + 1 :], equal_nan=True)


@pytest.mark.parametrize("mode", MODES)
def test_changing_the_future_leaves_the_level_features_up_to_t_unchanged(market: MarketData, mode: str) -> None:
    config = FeatureConfig(features=LEVEL_FEATURES, normalize=mode)
    t = 300
    before = compute_features(market, config).values
    after = compute_features(_with_new_future(market, t, seed=99), config).values
    np.testing.assert_array_equal(before[: t + 1], after[: t + 1])
    assert not np.array_equal(before[t + 1 :], after[t + 1 :], equal_nan=True)


def test_ewm_level_is_the_weighted_mean_of_every_past_bar(bars: pd.DataFrame) -> None:
    x = np.log(_arrays(bars)["close"])
    alpha = 2.0 / (60 + 1.0)
    ours = _col(ind.ewm_level(x, 60))
    for t in (0, 1, 59, 250, len(x) - 1):
        weights = (1.0 - alpha) ** np.arange(t, -1, -1)
        assert ours[t] == pytest.approx(float(weights @ x[: t + 1, 0] / weights.sum()), rel=1e-12)
    # No warm-up: the first bar's level is the first bar.
    raw = compute_features(MarketData.from_frames({"A": bars}), FeatureConfig(("ewm_dist_60",), "none"))
    assert raw.values[0, 0, 0] == 0.0 and raw.warmup == 0


def test_symbol_features_do_not_depend_on_other_symbols_except_market_ones(
    market: MarketData,
) -> None:
    config = FeatureConfig(normalize="none")
    together = compute_features(market, config).frame("A")
    alone = compute_features(market.select(["A"]), config).frame("A")
    market_wide = {"beta_60", "corr_60", "rel_strength_20", "mkt_rvol_20"}
    own = [n for n in DEFAULT_FEATURES if n not in market_wide]
    pd.testing.assert_frame_equal(together[own], alone[own])
    assert not together["beta_60"].equals(alone["beta_60"])


# -------------------------------------------------------------------------- pandas reference values
def _seeded_ewm(series: pd.Series, n: int, alpha: float) -> pd.Series:
    """EMA seeded with the SMA of the first ``n`` valid values (TA-Lib convention)."""
    valid = series.dropna()
    seeded = valid.iloc[n - 1 :].copy()
    seeded.iloc[0] = valid.iloc[:n].mean()
    return seeded.ewm(alpha=alpha, adjust=False).mean().reindex(series.index)


def _col(x: np.ndarray) -> np.ndarray:
    return x[:, 0]


def _arrays(bars: pd.DataFrame) -> dict[str, np.ndarray]:
    return {k: bars[k].to_numpy()[:, None] for k in ("open", "high", "low", "close", "volume")}


def _assert_close(ours: np.ndarray, ref: pd.Series | np.ndarray) -> None:
    ref = np.asarray(ref, dtype=float)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9)


def test_ema_and_sma_match_pandas(bars: pd.DataFrame) -> None:
    a = _arrays(bars)
    _assert_close(_col(ind.rolling_mean(a["close"], 20)), bars["close"].rolling(20).mean())
    _assert_close(_col(ind.ema(a["close"], 10)), _seeded_ewm(bars["close"], 10, 2 / 11))


def test_rsi_wilder_matches_pandas_reference(bars: pd.DataFrame) -> None:
    delta = bars["close"].diff()
    gain = _seeded_ewm(delta.clip(lower=0), 14, 1 / 14)
    loss = _seeded_ewm(-delta.clip(upper=0), 14, 1 / 14)
    reference = 100 - 100 / (1 + gain / loss)
    ours = _col(ind.rsi(_arrays(bars)["close"], 14))
    _assert_close(ours, reference)
    assert np.isnan(ours[:14]).all() and np.isfinite(ours[14:]).all()


def test_rsi_is_100_for_rising_and_0_for_falling_prices() -> None:
    rising = np.linspace(10.0, 20.0, 40)[:, None]
    assert np.allclose(ind.rsi(rising, 14)[14:], 100.0)
    assert np.allclose(ind.rsi(rising[::-1].copy(), 14)[14:], 0.0)


def test_macd_matches_pandas_reference(bars: pd.DataFrame) -> None:
    close = bars["close"]
    line_ref = _seeded_ewm(close, 12, 2 / 13) - _seeded_ewm(close, 26, 2 / 27)
    signal_ref = _seeded_ewm(line_ref, 9, 2 / 10)
    line, signal, hist = ind.macd(_arrays(bars)["close"], 12, 26, 9)
    _assert_close(_col(line), line_ref)
    _assert_close(_col(signal), signal_ref)
    _assert_close(_col(hist), line_ref - signal_ref)
    assert np.isnan(signal[:33]).all() and np.isfinite(signal[33:]).all()


def test_atr_matches_pandas_reference(bars: pd.DataFrame) -> None:
    prev = bars["close"].shift()
    tr = pd.concat(
        [bars["high"] - bars["low"], (bars["high"] - prev).abs(), (bars["low"] - prev).abs()],
        axis=1,
    ).max(axis=1, skipna=False)
    a = _arrays(bars)
    _assert_close(_col(ind.atr(a["high"], a["low"], a["close"], 14)), _seeded_ewm(tr, 14, 1 / 14))


def test_bollinger_matches_pandas_reference(bars: pd.DataFrame) -> None:
    mid = bars["close"].rolling(20).mean()
    std = bars["close"].rolling(20).std(ddof=0)
    pct_b, width = ind.bollinger(_arrays(bars)["close"], 20, 2.0)
    _assert_close(_col(pct_b), (bars["close"] - (mid - 2 * std)) / (4 * std))
    _assert_close(_col(width), 4 * std / mid)


def test_obv_matches_pandas_reference(bars: pd.DataFrame) -> None:
    reference = (np.sign(bars["close"].diff()).fillna(0.0) * bars["volume"]).cumsum()
    a = _arrays(bars)
    _assert_close(_col(ind.obv(a["close"], a["volume"])), reference)


def test_oscillators_match_pandas_reference(bars: pd.DataFrame) -> None:
    a = _arrays(bars)
    hh, ll = bars["high"].rolling(14).max(), bars["low"].rolling(14).min()
    k, d = ind.stochastic(a["high"], a["low"], a["close"], 14, 3)
    k_ref = 100 * (bars["close"] - ll) / (hh - ll)
    _assert_close(_col(k), k_ref)
    _assert_close(_col(d), k_ref.rolling(3).mean())
    _assert_close(
        _col(ind.williams_r(a["high"], a["low"], a["close"], 14)),
        -100 * (hh - bars["close"]) / (hh - ll),
    )
    tp = (bars["high"] + bars["low"] + bars["close"]) / 3
    mad = tp.rolling(20).apply(lambda w: np.abs(w - w.mean()).mean(), raw=True)
    _assert_close(
        _col(ind.cci(a["high"], a["low"], a["close"], 20)),
        (tp - tp.rolling(20).mean()) / (0.015 * mad),
    )


def test_adx_matches_pandas_reference(bars: pd.DataFrame) -> None:
    up, down = bars["high"].diff(), -bars["low"].diff()
    plus_dm = up.where((up > down) & (up > 0), 0.0).where(up.notna())
    minus_dm = down.where((down > up) & (down > 0), 0.0).where(up.notna())
    prev = bars["close"].shift()
    tr = pd.concat([bars["high"], prev], axis=1).max(axis=1, skipna=False) - pd.concat(
        [bars["low"], prev], axis=1
    ).min(axis=1, skipna=False)
    atr = _seeded_ewm(tr, 14, 1 / 14)
    plus_di = 100 * _seeded_ewm(plus_dm, 14, 1 / 14) / atr
    minus_di = 100 * _seeded_ewm(minus_dm, 14, 1 / 14) / atr
    dx = 100 * (plus_di - minus_di).abs() / (plus_di + minus_di)
    a = _arrays(bars)
    adx, pdi, mdi = ind.adx(a["high"], a["low"], a["close"], 14)
    _assert_close(_col(pdi), plus_di)
    _assert_close(_col(mdi), minus_di)
    _assert_close(_col(adx), _seeded_ewm(dx, 14, 1 / 14))
    assert np.isnan(adx[:27]).all() and np.isfinite(adx[27:]).all()


def test_volatility_estimators_match_pandas_reference(bars: pd.DataFrame) -> None:
    a = _arrays(bars)
    log_ret = np.log(bars["close"]).diff()
    _assert_close(_col(ind.realized_vol(a["close"], 20)), log_ret.rolling(20).std())
    hl = np.log(bars["high"] / bars["low"])
    co = np.log(bars["close"] / bars["open"])
    _assert_close(
        _col(ind.parkinson_vol(a["high"], a["low"], 20)),
        np.sqrt((hl**2).rolling(20).mean() / (4 * np.log(2))),
    )
    gk = (0.5 * hl**2 - (2 * np.log(2) - 1) * co**2).rolling(20).mean()
    ours = ind.garman_klass_vol(a["open"], a["high"], a["low"], a["close"], 20)
    _assert_close(_col(ours), np.sqrt(gk))
    skew, kurt = ind.rolling_moments(log_ret.to_numpy()[:, None], 30)
    _assert_close(_col(skew), log_ret.rolling(30).skew())
    _assert_close(_col(kurt), log_ret.rolling(30).kurt())


def test_market_regression_and_trend_fit_match_references(bars: pd.DataFrame) -> None:
    rng = np.random.default_rng(3)
    market = pd.Series(rng.normal(0, 0.01, len(bars)))
    asset = 1.5 * market + pd.Series(rng.normal(0, 0.01, len(bars)))
    _, beta, corr = ind.rolling_cov_corr(asset.to_numpy()[:, None], market.to_numpy()[:, None], 60)
    _assert_close(_col(beta), asset.rolling(60).cov(market) / market.rolling(60).var())
    _assert_close(_col(corr), asset.rolling(60).corr(market))

    log_close = np.log(bars["close"])
    slope, r2 = ind.trend_fit(log_close.to_numpy()[:, None], 20)
    x = np.arange(20)
    slope_ref = log_close.rolling(20).apply(lambda w: np.polyfit(x, w, 1)[0], raw=True)
    r2_ref = log_close.rolling(20).apply(lambda w: np.corrcoef(x, w)[0, 1] ** 2, raw=True)
    _assert_close(_col(slope), slope_ref)
    np.testing.assert_allclose(_col(r2)[19:], r2_ref[19:], atol=1e-9)


def test_variance_ratio_matches_pandas_reference(bars: pd.DataFrame) -> None:
    log_close = np.log(bars["close"])
    reference = log_close.diff(5).rolling(60).var() / (5 * log_close.diff().rolling(60).var())
    _assert_close(_col(ind.variance_ratio(_arrays(bars)["close"], 5, 60)), reference)


def test_normalisation_matches_pandas_expanding_and_rolling_zscores() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(50.0, 3.0, (600, 2))
    x[:40] = np.nan
    frame = pd.DataFrame(x)
    for mode, window in (
        ("zscore_expanding", frame.expanding(min_periods=20)),
        ("zscore_rolling", frame.rolling(100, min_periods=20)),
    ):
        config = FeatureConfig(normalize=mode, window=100, clip=3.0)
        reference = ((frame - window.mean()) / window.std(ddof=0)).clip(-3.0, 3.0)
        _assert_close(normalize(x, config), reference)
    assert normalize(x, FeatureConfig(normalize="none")) is x


# --------------------------------------------------------------------------- warm-up and finiteness
@pytest.mark.parametrize(
    ("name", "first"),
    [
        ("ret_5", 5), ("sma_ratio_20", 19), ("ema_ratio_12", 11), ("sma_cross_50_200", 199),
        ("macd_12_26_9", 25), ("macd_signal_12_26_9", 33), ("rsi_14", 14), ("atr_14", 14),
        ("adx_14", 27), ("stoch_d_14_3", 15), ("cci_20", 19), ("rvol_20", 20),
        ("vol_regime_20_252", 271), ("vol_pctile_20_252", 271), ("dist_high_252", 251),
        ("obv_slope_20", 20), ("var_ratio_5_60", 64), ("skew_60", 60), ("gap", 1), ("clv", 0),
    ],
)  # fmt: skip
def test_warmup_is_the_first_bar_with_a_full_window(
    market: MarketData, name: str, first: int
) -> None:
    raw = compute_features(market, FeatureConfig(features=(name,), normalize="none"))
    assert raw.warmup == first
    assert np.isnan(raw.values[:first]).all()
    assert np.isfinite(raw.values[first:]).all()
    scored = compute_features(market, FeatureConfig(features=(name,), min_periods=10))
    assert scored.warmup == first + 9


@pytest.mark.parametrize("mode", MODES)
def test_every_feature_is_finite_after_warmup_and_clipped(market: MarketData, mode: str) -> None:
    features = compute_features(market, FeatureConfig(normalize=mode))
    assert features.warmup == (271 if mode == "none" else 290)
    assert np.isfinite(features.values[features.warmup :]).all()
    assert not np.isfinite(features.values[features.warmup - 1]).all()
    if mode != "none":
        assert np.abs(features.values[features.warmup :]).max() <= 5.0


@pytest.mark.parametrize("mode", MODES)
def test_flat_prices_and_zero_volume_give_neutral_finite_values(mode: str) -> None:
    index = pd.date_range("2020-01-01", periods=320, freq="D", tz="UTC")
    flat = pd.DataFrame(
        {"open": 10.0, "high": 10.0, "low": 10.0, "close": 10.0, "volume": 0.0}, index=index
    )
    features = compute_features(MarketData.from_frame(flat), FeatureConfig(normalize=mode))
    after = features.frame("ASSET").iloc[features.warmup :]
    assert np.isfinite(after.to_numpy()).all()
    if mode == "none":
        last = after.iloc[-1]
        assert last["rsi_14"] == 50.0 and last["bb_pctb_20"] == 0.5 and last["stoch_k_14"] == 50.0
        assert last["vol_regime_20_252"] == 1.0 and last["volume_z_20"] == 0.0
    else:
        assert (after.to_numpy() == 0.0).all()


def test_volatility_state_features_track_the_synthetic_regimes() -> None:
    data, state = generate_market_with_state(
        n_symbols=2, n_days=2520, seed=4, cointegrated_pair=False
    )
    names = ("vol_pctile_20_252", "vol_regime_20_252", "rvol_20")
    features = compute_features(data, FeatureConfig(features=names, normalize="none"))
    w = features.warmup
    regimes = state.regimes[w:]
    bull, bear = state.regime_names.index("bull"), state.regime_names.index("bear")
    for k, name in enumerate(names):
        values = features.values[w:, :, k]
        assert values[regimes == bear].mean() > values[regimes == bull].mean(), name
    true_vol = state.volatility[w:, 0]
    assert np.corrcoef(features.values[w:, 0, 2], true_vol)[0, 1] > 0.5


def test_one_symbol_market_features_are_exact() -> None:
    data = MarketData.from_frame(_walk_frame(200, seed=1))
    config = FeatureConfig(features=("beta_60", "rel_strength_20"), normalize="none")
    frame = compute_features(data, config).frame("ASSET").iloc[60:]
    assert (frame["beta_60"] == 1.0).all() and (frame["rel_strength_20"] == 0.0).all()


def test_too_short_data_has_no_warm_bar_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    data = MarketData.from_frame(_walk_frame(100, seed=2))
    with caplog.at_level(logging.WARNING, logger="envs.features"):
        features = compute_features(data)
    assert features.warmup == data.n_bars
    assert "too few" in caplog.text


# ------------------------------------------------------------------------------------- determinism
def test_same_data_same_features(market: MarketData) -> None:
    first = compute_features(market)
    second = compute_features(_market())
    np.testing.assert_array_equal(first.values, second.values)
    assert first.warmup == second.warmup and first.names == second.names


# ------------------------------------------------------------------------------------------ errors
def test_parse_round_trip() -> None:
    spec = FeatureSpec.parse("vol_regime_20_252")
    assert spec == FeatureSpec("vol_regime", (20, 252))
    assert spec.name == "vol_regime_20_252"
    assert FeatureSpec.parse("clv") == FeatureSpec("clv")


@pytest.mark.parametrize(
    ("features", "message"),
    [
        (("rsi_14", "moon_phase_3"), "unknown feature 'moon_phase_3'"),
        (("rsi",), "takes 1 parameter"),
        (("rsi_14_3",), "takes 1 parameter"),
        (("rvol_1",), "n=1 must be >= 2"),
        (("sma_cross_50_20",), "fast (50) must be smaller than slow (20)"),
        (("rsi_14", "rsi_14"), "listed more than once"),
        ((), "at least one feature"),
        ("rsi_14", "one string"),
    ],
)
def test_bad_feature_names_raise_clear_errors(features: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        FeatureConfig(features=features)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"normalize": "minmax"}, "normalize"),
        ({"min_periods": 1}, "min_periods"),
        ({"window": 5}, "window"),
        ({"clip": 0.0}, "clip"),
    ],
)
def test_bad_config_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        FeatureConfig(**kwargs)


def test_unknown_symbol_in_frame_raises(market: MarketData) -> None:
    features = compute_features(market, FeatureConfig(features=("ret_1",)))
    with pytest.raises(KeyError, match="'ZZZ' not in features"):
        features.frame("ZZZ")


def test_indicators_reject_one_dimensional_input() -> None:
    with pytest.raises(ValueError, match=r"\(time, symbol\) arrays"):
        ind.rolling_mean(np.ones(10), 3)


def test_lag_longer_than_the_series_is_all_nan() -> None:
    from envs.features.indicators import lag

    out = lag(np.arange(4.0).reshape(2, 2), 20)
    assert out.shape == (2, 2) and np.isnan(out).all()
