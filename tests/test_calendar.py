"""Trading calendars: inference on real samples, annualisation by calendar against hand-computed values,
irregular data refused, durations and windows in trading time."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest

from envs.data.calendar import (
    CALENDARS,
    calendar_for_symbol,
    frequency_from_label,
    get_calendar,
    infer_frequency,
    resample,
)
from envs.data.market_data import DataValidationError, MarketData
from envs.data.sources import load_data
from envs.sim import metrics


def _equity(index: pd.DatetimeIndex, returns: np.ndarray) -> pd.Series:
    return pd.Series(1000.0 * np.concatenate([[1.0], np.cumprod(1.0 + returns)]), index=index)


def _bars(index: pd.DatetimeIndex, symbol: str = "X", seed: int = 0) -> MarketData:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, len(index))))
    frame = pd.DataFrame(
        {"open": close, "high": close * 1.001, "low": close * 0.999, "close": close, "volume": 1.0},
        index=index,
    )
    return MarketData.from_frame(frame, symbol)


# ------------------------------------------------------------------------------ inference on real data
def test_equity_daily_sample_follows_nyse_sessions_with_holidays():
    data = load_data("sample:GOOG")  # 2004-2013 daily bars, no bar on any NYSE holiday
    assert data.frequency.label == "1D"
    assert data.calendar.name == "XNYS"
    assert data.periods_per_year == 252
    # Its weekdays without a bar are exactly NYSE holidays (plus the 2012 hurricane closures).
    weekdays = pd.bdate_range(data.index[0].date(), data.index[-1].date(), tz="UTC")
    missing = weekdays.difference(data.index)
    assert len(missing) == 79  # 8.5 years of about 9 holidays
    assert not CALENDARS["XNYS"].is_open(missing, data.frequency).any()
    assert pd.Timestamp("2012-10-29", tz="UTC") in missing  # Hurricane Sandy: NYSE closed


def test_fx_hourly_sample_has_weekend_gaps_and_trades_24_5():
    data = load_data("sample:EURUSD")
    assert data.frequency.label == "1h"
    assert data.calendar.name == "24/5"
    assert data.periods_per_year == pytest.approx(365.25 * 5 / 7 * 24)
    assert not (data.index.day_of_week == 5).any()  # nothing on Saturdays (UTC)
    gaps = np.diff(data.index) / pd.Timedelta(hours=1)
    assert gaps.max() >= 48  # the weekend
    assert CALENDARS["24/5"].is_open(data.index, data.frequency).mean() > 0.99
    # Friday 22:00 UTC in summer is 18:00 New York: after the FX week closed.
    friday_evening = pd.DatetimeIndex(["2017-06-02 22:00", "2017-06-02 20:00"], tz="UTC")
    assert CALENDARS["24/5"].is_open(friday_evening, data.frequency).tolist() == [False, True]


def test_crypto_samples_trade_24_7():
    monthly = load_data("sample:BTCUSD")  # real bitcoin, monthly, 2012-2024
    assert (monthly.frequency.label, monthly.calendar.name, monthly.periods_per_year) == ("1M", "24/7", 12.0)
    hourly = load_data("synthetic_crypto:n_bars=500")
    assert hourly.frequency.label == "1h" and hourly.calendar.name == "24/7"
    assert (np.diff(hourly.index) == pd.Timedelta(hours=1)).all()  # no gaps, weekends included
    assert hourly.periods_per_year == pytest.approx(8766.0)


def test_symbol_names_imply_their_calendar():
    assert calendar_for_symbol("BTC/USD").name == "24/7"
    assert calendar_for_symbol("ETH-USD").name == "24/7"
    assert calendar_for_symbol("EUR/USD").name == "24/5"
    assert calendar_for_symbol("EURUSD").name == "24/5"
    assert calendar_for_symbol("SPY") is None


# ------------------------------------------------------------------------------ annualisation by hand
def test_hourly_24_7_annualisation_matches_hand_computation():
    returns = np.tile([0.002, -0.001, 0.0005, -0.0015], 500)  # 2,000 hourly bars
    index = pd.date_range("2021-01-01", periods=len(returns) + 1, freq="h", tz="UTC")
    stats = metrics.compute_stats(_equity(index, returns))
    per_year = 365.25 * 24  # 8,766 hourly bars in a year that never closes
    mean, sd = returns.mean(), returns.std(ddof=1)
    assert (stats.calendar, stats.bar, stats.periods_per_year) == ("24/7", "1h", per_year)
    assert stats.cagr == pytest.approx(np.prod(1 + returns) ** (per_year / 2000) - 1, rel=1e-12)
    assert stats.annual_volatility == pytest.approx(sd * np.sqrt(per_year), rel=1e-12)
    assert stats.sharpe == pytest.approx(mean / sd * np.sqrt(per_year), rel=1e-12)


def test_minute_equity_annualisation_matches_hand_computation():
    data = load_data("synthetic:freq=1min,n_days=3,n_symbols=1")  # 390 bars a session, 3 sessions
    returns = np.random.default_rng(1).normal(0.0, 0.0005, data.n_bars - 1)
    stats = metrics.compute_stats(_equity(data.index, returns))
    per_year = 252 * 390
    assert (stats.calendar, stats.bar, stats.periods_per_year) == ("XNYS", "1min", per_year)
    assert stats.cagr == pytest.approx(np.prod(1 + returns) ** (per_year / len(returns)) - 1, rel=1e-10)
    assert stats.annual_volatility == pytest.approx(returns.std(ddof=1) * np.sqrt(per_year), rel=1e-12)
    assert stats.sharpe == pytest.approx(returns.mean() / returns.std(ddof=1) * np.sqrt(per_year), rel=1e-12)


def test_daily_equity_annualisation_matches_hand_computation():
    data = load_data("sample:GOOG")
    close = data.close[:, 0]
    returns = close[1:] / close[:-1] - 1
    stats = metrics.compute_stats(pd.Series(close, index=data.index))
    assert (stats.calendar, stats.bar, stats.periods_per_year) == ("XNYS", "1D", 252)
    assert stats.annual_volatility == pytest.approx(returns.std(ddof=1) * np.sqrt(252), rel=1e-12)
    assert stats.sharpe == pytest.approx(returns.mean() / returns.std(ddof=1) * np.sqrt(252), rel=1e-12)
    assert stats.cagr == pytest.approx((close[-1] / close[0]) ** (252 / len(returns)) - 1, rel=1e-12)


def test_btc_like_hourly_backtest_gives_a_cagr_consistent_with_return_and_span(tmp_path, capsys):
    """The issue's example: 20,000 hourly bars over 2.3 years, +222%: CAGR must be about 66%, not 1.5%."""
    from experiments.backtest import main

    rng = np.random.default_rng(3)
    log_r = rng.normal(0.0, 0.8 / np.sqrt(8766), 20_000)
    log_r += (np.log(3.22) - log_r.sum()) / len(log_r)  # total return exactly +222%
    close = 1000.0 * np.exp(np.concatenate([[0.0], np.cumsum(log_r)]))
    index = pd.date_range("2017-08-17 04:00", periods=len(close), freq="h", tz="UTC")
    pd.DataFrame({"timestamp": index, "open": close, "high": close, "low": close, "close": close,
                  "volume": 1.0}).to_csv(
        tmp_path / "btc_1h.csv", index=False
    )
    from experiments.engine import BacktestConfig, run_backtest
    from agents.registry import make_policy

    data = load_data(f"csv:{tmp_path / 'btc_1h.csv'}")
    result = run_backtest(make_policy("buy_and_hold"), data, BacktestConfig(risk=None))
    stats = result.stats
    span_years = (stats.end - stats.start) / pd.Timedelta(days=365.25)
    assert span_years == pytest.approx(2.28, abs=0.01)
    assert stats.cagr == pytest.approx((1 + stats.total_return) ** (1 / span_years) - 1, rel=1e-3)
    assert 0.6 < stats.cagr < 0.7
    assert stats.annual_volatility == pytest.approx(0.8, rel=0.05)
    assert main(["buy_and_hold", "--data", f"csv:{tmp_path / 'btc_1h.csv'}", "--no-risk",
                 "--out", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert "24/7, 1h bars, 8,766/year" in out
    assert "bars" in out and "days" in out  # durations carry their unit
    # The machine-readable stats say how they were annualised, for leaderboards to show.
    saved = json.loads((tmp_path / "report" / "stats.json").read_text())["buy_and_hold"]
    assert (saved["calendar"], saved["bar"], saved["periods_per_year"]) == ("24/7", "1h", 8766.0)
    assert "24/7, 1h bars, 8,766/year" in (tmp_path / "report" / "report.html").read_text()


# ------------------------------------------------------------------------------ refusals and resampling
def test_irregular_and_mixed_frequencies_are_refused_with_one_clear_error():
    hours = pd.date_range("2021-01-04", periods=48, freq="h", tz="UTC")
    odd = hours.insert(10, hours[9] + pd.Timedelta(minutes=37))
    with pytest.raises(DataValidationError, match=r"irregular_frequency.*not a whole number of bars.*resample"):
        infer_frequency(odd)
    days = pd.date_range("2020-01-01", periods=60, freq="D", tz="UTC")
    mixed = days.append(pd.date_range("2020-03-01", periods=24 * 10, freq="h", tz="UTC"))
    with pytest.raises(DataValidationError, match=r"mixed_frequency.*single bar.*resample"):
        _bars(mixed).periods_per_year


def test_resampling_makes_mixed_data_usable(tmp_path, capsys):
    from experiments.backtest import main

    days = pd.date_range("2020-01-01", periods=60, freq="D", tz="UTC")
    mixed = days.append(pd.date_range("2020-03-01", periods=24 * 10, freq="h", tz="UTC"))
    data = _bars(mixed)
    daily = resample(data, "1D")
    assert daily.n_bars == 70 and daily.frequency.label == "1D" and daily.calendar.name == "24/7"
    hourly_part = data.slice("2020-03-01", None)
    assert daily.close[-1, 0] == hourly_part.close[-1, 0]
    assert daily.high[-1, 0] == hourly_part.high[-24:, 0].max()
    data.to_long().to_csv(tmp_path / "mixed.csv", index=False)
    assert main(["buy_and_hold", "--data", f"csv:{tmp_path / 'mixed.csv'}", "--out", str(tmp_path / "r")]) == 2
    assert "error: [mixed_frequency]" in capsys.readouterr().err
    assert main(["buy_and_hold", "--data", f"csv:{tmp_path / 'mixed.csv'}", "--resample", "1D",
                 "--out", str(tmp_path / "r")]) == 0
    assert "24/7, 1D bars, 365.25/year" in capsys.readouterr().out


# ------------------------------------------------------------------------------ durations and windows
def test_spans_in_trading_time_become_bars_by_calendar():
    hour, day = frequency_from_label("1h"), frequency_from_label("1D")
    assert get_calendar("crypto").bars_in("30D", hour) == 720
    assert get_calendar("24/7").bars_in("1W", day) == 7
    assert get_calendar("XNYS").bars_in("1W", day) == 5
    assert get_calendar("XNYS").bars_in("1Y", day) == 252
    assert get_calendar("XNYS").bars_in("1D", frequency_from_label("1min")) == 390
    assert get_calendar("XNYS").bars_in("6M", day) == 126
    assert get_calendar("fx").bars_in("2W", hour) == 240
    with pytest.raises(ValueError, match="not a number of bars nor a length"):
        get_calendar("XNYS").bars_in("fortnight", day)


def test_max_drawdown_duration_in_bars_and_days():
    index = pd.date_range("2021-01-01", periods=11, freq="h", tz="UTC")
    equity = pd.Series([100, 110, 100, 105, 111, 90, 95, 100, 105, 108, 109.0], index=index)
    stats = metrics.compute_stats(equity)
    assert stats.max_drawdown_duration == 6
    assert stats.max_drawdown_days == pytest.approx(6 / 24)
    assert "6 bars" in str(stats)


def test_episode_length_and_walk_forward_windows_in_trading_time():
    import gymnasium as gym

    import envs  # noqa: F401
    from experiments.backtest import bars

    crypto = load_data("synthetic_crypto:n_bars=3000")
    env = gym.make("AlpacaGym/Stocks-v0", data=crypto.select([crypto.symbols[0]]), episode_length="7D")
    assert env.unwrapped.episode_length == 168
    stocks = load_data("synthetic:n_days=400")
    assert bars("1Y", stocks) == 252 and bars("3M", stocks) == 63 and bars("500", stocks) == 500
    assert bars("1W", crypto) == 168


def test_declared_calendars_survive_slicing_and_pickling():
    data = _bars(pd.date_range("2021-01-04", periods=100, freq="h", tz="UTC")).with_calendar("24/7")
    assert data.calendars == ("24/7",)
    assert data.iloc(slice(0, 10)).calendars == ("24/7",)
    assert pickle.loads(pickle.dumps(data)).calendars == ("24/7",)
    with pytest.raises(ValueError, match="unknown calendar"):
        data.with_calendar("LSE")


def test_rl_episode_length_is_trading_time_on_the_data_calendar():
    from envs.sim.execution import ConfigError
    from experiments.rl_config import RLConfig
    from experiments.spec import ExperimentSpec
    from experiments.train_rl import _episode_length

    assert RLConfig().episode_length == "1Y" and RLConfig(episode_length=40).episode_length == "40"
    with pytest.raises(ConfigError, match="episode_length"):
        RLConfig(episode_length="a fortnight")
    from envs.data.crypto import generate_crypto_market

    crypto = generate_crypto_market(n_bars=3000, symbols=("BTC/USD",), initial_prices=(30_000.0,))
    spec = ExperimentSpec()
    assert _episode_length(RLConfig(episode_length="2W", features=("ret_1",), window_size=2), spec, crypto) == 336
    stocks = load_data("synthetic:n_days=400,n_symbols=1")
    assert _episode_length(RLConfig(episode_length="3M", features=("ret_1",), window_size=2), spec, stocks) == 63


def test_resample_combines_the_microstructure_fields_by_their_rules() -> None:
    """Sums add up, depth averages, sign autocorrelation is the last bar's, and the per-trade means are
    weighted by trades: checked by hand on a 5-minute bar of five 1-minute bars."""
    from envs.data.calendar import resample
    from envs.data.ticks import BAR_FIELD_AGGREGATION, BAR_FIELDS

    bars = load_data("synthetic_ticks:n_days=1")
    assert set(BAR_FIELD_AGGREGATION) == set(BAR_FIELDS)
    coarse = resample(bars, "5min")
    k = 20  # a 5-minute bar late enough for the sign autocorrelation's window of trades
    assert coarse.index[k] == bars.index[5 * k] and coarse.index[k + 1] == bars.index[5 * k + 5]
    fine = {name: bars.extra_field(name)[5 * k:5 * k + 5, 0] for name in BAR_FIELDS}
    got = {name: coarse.extra_field(name)[k, 0] for name in BAR_FIELDS}
    for name in ("ofi", "buy_volume", "sell_volume", "n_trades", "sweeps"):
        assert got[name] == pytest.approx(fine[name].sum())
    assert got["depth"] == pytest.approx(np.nanmean(fine["depth"]))
    assert got["sign_autocorr"] == pytest.approx(fine["sign_autocorr"][np.isfinite(fine["sign_autocorr"])][-1])
    for name in ("effective_spread", "realised_spread", "price_impact"):
        ok = np.isfinite(fine[name])
        expected = (fine[name][ok] * fine["n_trades"][ok]).sum() / fine["n_trades"][ok].sum()
        assert got[name] == pytest.approx(expected)
    assert coarse.extra_field("n_trades").sum() == pytest.approx(bars.extra_field("n_trades").sum())


def test_resample_refuses_an_extra_field_without_a_rule() -> None:
    from envs.data.calendar import resample

    bars = load_data("synthetic_ticks:n_days=1")
    odd = bars.with_extra({"my_signal": np.zeros((bars.n_bars, bars.n_symbols))})
    with pytest.raises(DataValidationError, match="my_signal"):
        resample(odd, "5min")
