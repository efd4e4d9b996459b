"""Technical indicators as pure, causal, vectorised functions over ``(T, S)`` arrays.

Time is axis 0 and symbols axis 1. Every function returns float64 arrays of the input shape whose
row ``t`` depends only on input rows ``<= t``, with NaN during the warm-up rows where a window is
not yet full. Rolling statistics use pandas' windowed kernels and recursive averages use
:func:`scipy.signal.lfilter`, so nothing loops over rows in Python.

Smoothing follows the TA-Lib conventions: an EMA (or Wilder's average) is seeded with the simple
mean of its first ``n`` inputs and recurses from there, so values agree with the common references
from the first defined bar on.

Where a ratio's denominator is zero (flat prices, no volume), functions return a documented neutral
value instead of NaN or inf, so indicators stay finite once warmed up.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from envs.data.filters import lfilter

_LN2 = np.log(2.0)


# ---------------------------------------------------------------------------------------- helpers
def _check_2d(x: np.ndarray) -> None:
    if x.ndim != 2:
        raise ValueError(f"indicators expect (time, symbol) arrays, got shape {x.shape}")


def _frame(x: np.ndarray) -> pd.DataFrame:
    _check_2d(x)
    return pd.DataFrame(x, copy=False)


def ratio(num: np.ndarray, den: np.ndarray, neutral: float) -> np.ndarray:
    """``num / den`` with ``neutral`` where the denominator is zero and the numerator defined.

    :param num: numerator.
    :param den: denominator (broadcastable to ``num``).
    :param neutral: value used where ``den == 0``; NaN inputs stay NaN so warm-up is preserved.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    return np.where((den == 0) & ~np.isnan(num), neutral, out)


def lag(x: np.ndarray, k: int) -> np.ndarray:
    """``x`` shifted ``k`` rows down (the value ``k`` bars ago), NaN in the first ``k`` rows.

    :param x: ``(T, S)`` array.
    :param k: number of bars, ``>= 0``.
    """
    out = np.full(x.shape, np.nan)
    if k < x.shape[0]:
        out[k:] = x[: x.shape[0] - k]
    return out


def rolling_mean(x: np.ndarray, n: int) -> np.ndarray:
    """Simple moving average over the last ``n`` bars (NaN until ``n`` values are available).

    :param x: ``(T, S)`` array.
    :param n: window length.
    """
    return _frame(x).rolling(n, min_periods=n).mean().to_numpy()


def rolling_sum(x: np.ndarray, n: int) -> np.ndarray:
    """Sum over the last ``n`` bars.

    :param x: ``(T, S)`` array.
    :param n: window length.
    """
    return _frame(x).rolling(n, min_periods=n).sum().to_numpy()


def rolling_std(x: np.ndarray, n: int, ddof: int = 1) -> np.ndarray:
    """Standard deviation over the last ``n`` bars.

    :param x: ``(T, S)`` array.
    :param n: window length.
    :param ddof: delta degrees of freedom (1 = sample, 0 = population).
    """
    return _frame(x).rolling(n, min_periods=n).std(ddof=ddof).to_numpy()


def rolling_max(x: np.ndarray, n: int) -> np.ndarray:
    """Maximum over the last ``n`` bars.

    :param x: ``(T, S)`` array.
    :param n: window length.
    """
    return _frame(x).rolling(n, min_periods=n).max().to_numpy()


def rolling_min(x: np.ndarray, n: int) -> np.ndarray:
    """Minimum over the last ``n`` bars.

    :param x: ``(T, S)`` array.
    :param n: window length.
    """
    return _frame(x).rolling(n, min_periods=n).min().to_numpy()


def rolling_percentile(x: np.ndarray, n: int) -> np.ndarray:
    """Percentile rank in ``(0, 1]`` of the current value among the last ``n`` values.

    :param x: ``(T, S)`` array.
    :param n: window length.
    """
    return _frame(x).rolling(n, min_periods=n).rank(pct=True).to_numpy()


def rolling_zscore(x: np.ndarray, n: int) -> np.ndarray:
    """``(x - mean) / std`` over the last ``n`` bars; 0 when the window is flat.

    :param x: ``(T, S)`` array.
    :param n: window length.
    """
    return ratio(x - rolling_mean(x, n), rolling_std(x, n), 0.0)


def rolling_moments(x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample skewness and excess kurtosis over the last ``n`` bars; both 0 on a flat window.

    :param x: ``(T, S)`` array.
    :param n: window length (at least 4 for kurtosis to be defined).
    """
    roll = _frame(x).rolling(n, min_periods=n)
    flat = rolling_std(x, n) == 0
    skew = np.where(flat, 0.0, roll.skew().to_numpy())
    kurt = np.where(flat, 0.0, roll.kurt().to_numpy())
    return skew, kurt


def rolling_cov_corr(
    x: np.ndarray, y: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rolling covariance, regression slope of ``x`` on ``y`` and correlation over ``n`` bars.

    Moments are population moments; slope and correlation are 0 where ``y`` (or ``x``) is flat.

    :param x: ``(T, S)`` array.
    :param y: ``(T, S)`` or ``(T, 1)`` array, broadcast against ``x``.
    :param n: window length.
    """
    y = np.broadcast_to(y, x.shape)
    mx, my = rolling_mean(x, n), rolling_mean(y, n)
    cov = rolling_mean(x * y, n) - mx * my
    var_x = np.maximum(rolling_mean(x * x, n) - mx * mx, 0.0)
    var_y = np.maximum(rolling_mean(y * y, n) - my * my, 0.0)
    slope = ratio(cov, var_y, 0.0)
    corr = np.clip(ratio(cov, np.sqrt(var_x * var_y), 0.0), -1.0, 1.0)
    return cov, slope, corr


def _recursive_average(x: np.ndarray, alpha: float, n: int) -> np.ndarray:
    """``y_t = alpha x_t + (1 - alpha) y_{t-1}`` seeded with the mean of the first ``n`` inputs.

    ``x`` may start with a block of NaN rows (another indicator's warm-up); after it every value
    must be finite, otherwise the recursion would carry NaN forever.
    """
    _check_2d(x)
    out = np.full(x.shape, np.nan)
    finite_rows = np.flatnonzero(np.isfinite(x).all(axis=1))
    if finite_rows.size == 0:
        return out
    start = int(finite_rows[0])
    if not np.isfinite(x[start:]).all():
        raise ValueError("recursive average input has NaN after its warm-up rows")
    seed_row = start + n - 1
    if seed_row >= x.shape[0]:
        return out
    seed = x[start : seed_row + 1].mean(axis=0)
    out[seed_row] = seed
    if seed_row + 1 < x.shape[0]:
        zi = ((1.0 - alpha) * seed)[None, :]
        rest = x[seed_row + 1 :]
        out[seed_row + 1 :], _ = lfilter([alpha], [1.0, alpha - 1.0], rest, axis=0, zi=zi)
    return out


def ema(x: np.ndarray, span: int) -> np.ndarray:
    """Exponential moving average with ``alpha = 2 / (span + 1)``, seeded with an SMA.

    :param x: ``(T, S)`` array (may start with NaN warm-up rows).
    :param span: EMA span in bars.
    """
    return _recursive_average(x, 2.0 / (span + 1.0), span)


def ewm_level(x: np.ndarray, span: int) -> np.ndarray:
    """Exponentially weighted mean of everything so far, weights ``(1 - alpha)**k`` with ``alpha = 2 / (span + 1)``.

    Unlike :func:`ema` it needs no warm-up: at bar ``t`` it is the weighted mean of bars ``0..t``, the
    weights renormalised over the bars there are (pandas' ``ewm(adjust=True)``), so a span longer than the
    data is close to the expanding mean, the best estimate of a constant level.

    :param x: ``(T, S)`` array without NaN.
    :param span: span in bars.
    """
    _check_2d(x)
    return _frame(x).ewm(span=span, adjust=True).mean().to_numpy()


def wilder(x: np.ndarray, n: int) -> np.ndarray:
    """Wilder's smoothing (``alpha = 1 / n``), seeded with the mean of the first ``n`` inputs.

    :param x: ``(T, S)`` array (may start with NaN warm-up rows).
    :param n: smoothing period.
    """
    return _recursive_average(x, 1.0 / n, n)


# ------------------------------------------------------------------------------------- price based
def log_returns(close: np.ndarray, h: int = 1) -> np.ndarray:
    """Log return over the last ``h`` bars, ``log(close_t / close_{t-h})``.

    :param close: ``(T, S)`` close prices.
    :param h: horizon in bars.
    """
    log_close = np.log(close)
    return log_close - lag(log_close, h)


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """True range ``max(high, prev close) - min(low, prev close)``; NaN on the first bar.

    :param high: ``(T, S)`` highs.
    :param low: ``(T, S)`` lows.
    :param close: ``(T, S)`` closes.
    """
    prev = lag(close, 1)
    return np.maximum(high, prev) - np.minimum(low, prev)


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14) -> np.ndarray:
    """Average true range: Wilder's smoothing of :func:`true_range` (first value at bar ``n``).

    :param high: ``(T, S)`` highs.
    :param low: ``(T, S)`` lows.
    :param close: ``(T, S)`` closes.
    :param n: smoothing period.
    """
    return wilder(true_range(high, low, close), n)


def rsi(close: np.ndarray, n: int = 14) -> np.ndarray:
    """Wilder's relative strength index in ``[0, 100]``; 50 when prices did not move.

    :param close: ``(T, S)`` closes.
    :param n: smoothing period (first value at bar ``n``).
    """
    delta = close - lag(close, 1)
    gain = wilder(np.maximum(delta, 0.0), n)
    loss = wilder(np.maximum(-delta, 0.0), n)
    return 100.0 * ratio(gain, gain + loss, 0.5)


def macd(
    close: np.ndarray, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MACD line ``ema(fast) - ema(slow)``, its signal line ``ema(line, signal)`` and histogram.

    :param close: ``(T, S)`` closes.
    :param fast: fast EMA span.
    :param slow: slow EMA span.
    :param signal: signal EMA span.
    """
    line = ema(close, fast) - ema(close, slow)
    sig = ema(line, signal)
    return line, sig, line - sig


def bollinger(close: np.ndarray, n: int = 20, k: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Bollinger %B and bandwidth for bands at ``SMA(n) +- k`` population standard deviations.

    %B is 0.5 when the bands collapse (flat window).

    :param close: ``(T, S)`` closes.
    :param n: window length.
    :param k: band width in standard deviations.
    """
    mid = rolling_mean(close, n)
    half = k * rolling_std(close, n, ddof=0)
    pct_b = ratio(close - (mid - half), 2.0 * half, 0.5)
    return pct_b, 2.0 * half / mid


def stochastic(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14, d: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Stochastic oscillator %K (close within the ``n``-bar range, 0..100) and %D = SMA(%K, d).

    %K is 50 when the range is empty.

    :param high: ``(T, S)`` highs.
    :param low: ``(T, S)`` lows.
    :param close: ``(T, S)`` closes.
    :param n: look-back for the high/low range.
    :param d: smoothing of %K.
    """
    lowest = rolling_min(low, n)
    k = 100.0 * ratio(close - lowest, rolling_max(high, n) - lowest, 0.5)
    return k, rolling_mean(k, d)


def williams_r(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14) -> np.ndarray:
    """Williams %R in ``[-100, 0]``; -50 when the range is empty.

    :param high: ``(T, S)`` highs.
    :param low: ``(T, S)`` lows.
    :param close: ``(T, S)`` closes.
    :param n: look-back.
    """
    highest = rolling_max(high, n)
    return -100.0 * ratio(highest - close, highest - rolling_min(low, n), 0.5)


def cci(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 20) -> np.ndarray:
    """Commodity channel index ``(tp - SMA(tp)) / (0.015 * mean deviation)``; 0 when flat.

    :param high: ``(T, S)`` highs.
    :param low: ``(T, S)`` lows.
    :param close: ``(T, S)`` closes.
    :param n: window length.
    """
    tp = (high + low + close) / 3.0
    mid = rolling_mean(tp, n)
    # The mean deviation is taken around the *current* SMA, so it is not a plain rolling kernel;
    # summing over the n lags keeps it vectorised over time with O(n) memory per bar.
    dev = np.zeros_like(tp)
    for k in range(n):
        dev += np.abs(lag(tp, k) - mid)
    return ratio(tp - mid, 0.015 * dev / n, 0.0)


def adx(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wilder's average directional index with the +DI and -DI lines (all in ``[0, 100]``).

    +DI/-DI start at bar ``n``, ADX at bar ``2n - 1``. DX is 0 when both DI lines are 0.

    :param high: ``(T, S)`` highs.
    :param low: ``(T, S)`` lows.
    :param close: ``(T, S)`` closes.
    :param n: smoothing period.
    """
    up = high - lag(high, 1)
    down = lag(low, 1) - low
    plus_dm = np.where((up > down) & (up > 0), up, 0.0)
    minus_dm = np.where((down > up) & (down > 0), down, 0.0)
    first = np.isnan(up)
    plus_dm[first] = np.nan
    minus_dm[first] = np.nan
    tr = wilder(true_range(high, low, close), n)
    plus_di = 100.0 * ratio(wilder(plus_dm, n), tr, 0.0)
    minus_di = 100.0 * ratio(wilder(minus_dm, n), tr, 0.0)
    dx = 100.0 * ratio(np.abs(plus_di - minus_di), plus_di + minus_di, 0.0)
    return wilder(dx, n), plus_di, minus_di


def close_location(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """Close location value ``((c - l) - (h - c)) / (h - l)`` in ``[-1, 1]``; 0 when ``h == l``.

    :param high: ``(T, S)`` highs.
    :param low: ``(T, S)`` lows.
    :param close: ``(T, S)`` closes.
    """
    return ratio((close - low) - (high - close), high - low, 0.0)


# ------------------------------------------------------------------------------------ volume based
def obv(close: np.ndarray, volume: np.ndarray) -> np.ndarray:
    """On-balance volume: cumulative volume signed by the close-to-close move, 0 on the first bar.

    :param close: ``(T, S)`` closes.
    :param volume: ``(T, S)`` volumes.
    """
    step = np.sign(np.diff(close, axis=0)) * volume[1:]
    out = np.zeros(close.shape)
    np.cumsum(step, axis=0, out=out[1:])
    return out


def chaikin_money_flow(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray, n: int = 20
) -> np.ndarray:
    """Chaikin money flow: volume-weighted close location over ``n`` bars; 0 without volume.

    :param high: ``(T, S)`` highs.
    :param low: ``(T, S)`` lows.
    :param close: ``(T, S)`` closes.
    :param volume: ``(T, S)`` volumes.
    :param n: window length.
    """
    flow = rolling_sum(close_location(high, low, close) * volume, n)
    return ratio(flow, rolling_sum(volume, n), 0.0)


# -------------------------------------------------------------------------------------- volatility
def realized_vol(close: np.ndarray, n: int) -> np.ndarray:
    """Per-bar realised volatility: sample std of the last ``n`` log returns (first at bar ``n``).

    :param close: ``(T, S)`` closes.
    :param n: number of returns.
    """
    return rolling_std(log_returns(close), n)


def downside_vol(close: np.ndarray, n: int) -> np.ndarray:
    """Downside semi-deviation ``sqrt(mean(min(r, 0)^2))`` of the last ``n`` log returns.

    :param close: ``(T, S)`` closes.
    :param n: number of returns.
    """
    neg = np.minimum(log_returns(close), 0.0)
    return np.sqrt(rolling_mean(neg * neg, n))


def parkinson_vol(high: np.ndarray, low: np.ndarray, n: int) -> np.ndarray:
    """Parkinson high-low volatility estimator over ``n`` bars (per bar).

    :param high: ``(T, S)`` highs.
    :param low: ``(T, S)`` lows.
    :param n: window length.
    """
    hl = np.log(high / low)
    return np.sqrt(rolling_mean(hl * hl, n) / (4.0 * _LN2))


def garman_klass_vol(
    open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int
) -> np.ndarray:
    """Garman-Klass OHLC volatility estimator over ``n`` bars (per bar).

    :param open_: ``(T, S)`` opens.
    :param high: ``(T, S)`` highs.
    :param low: ``(T, S)`` lows.
    :param close: ``(T, S)`` closes.
    :param n: window length.
    """
    hl = np.log(high / low)
    co = np.log(close / open_)
    # Each bar's term is >= 0 because |log(c/o)| <= log(h/l); the clip only absorbs rounding.
    term = 0.5 * hl * hl - (2.0 * _LN2 - 1.0) * co * co
    return np.sqrt(np.maximum(rolling_mean(term, n), 0.0))


# ----------------------------------------------------------------------------- trend / persistence
def trend_fit(log_price: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares line through the last ``n`` log prices: slope per bar and R^2 in ``[0, 1]``.

    R^2 is 0 for a flat window.

    :param log_price: ``(T, S)`` log prices (finite everywhere).
    :param n: window length (at least 3).
    """
    _check_2d(log_price)
    x = np.arange(n) - (n - 1) / 2.0
    sxx = float(x @ x)
    # Centred weights make the FIR sum independent of the price level, so no precision is lost
    # to cancellation; lfilter applies weight b[m] to the value m bars ago, hence the reversal.
    sxy = lfilter(x[::-1], [1.0], log_price, axis=0)
    sxy[: n - 1] = np.nan
    slope = sxy / sxx
    syy = n * rolling_std(log_price, n, ddof=0) ** 2
    r2 = np.clip(ratio(slope * slope * sxx, syy, 0.0), 0.0, 1.0)
    return slope, r2


def variance_ratio(close: np.ndarray, q: int, n: int) -> np.ndarray:
    """Lo-MacKinlay variance ratio ``var(q-bar returns) / (q var(1-bar returns))`` over ``n`` bars.

    Above 1 means trending (positively autocorrelated), below 1 mean reverting; 1 when flat.

    :param close: ``(T, S)`` closes.
    :param q: aggregation horizon in bars.
    :param n: window length.
    """
    long_var = rolling_std(log_returns(close, q), n) ** 2
    short_var = rolling_std(log_returns(close, 1), n) ** 2
    return ratio(long_var, q * short_var, 1.0)


def autocorrelation(x: np.ndarray, n: int, k: int = 1) -> np.ndarray:
    """Rolling correlation of ``x_t`` with ``x_{t-k}`` over ``n`` bars; 0 when flat.

    :param x: ``(T, S)`` array.
    :param n: window length.
    :param k: lag in bars.
    """
    return rolling_cov_corr(x, lag(x, k), n)[2]
