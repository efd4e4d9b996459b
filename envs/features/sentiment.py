"""Sentiment and breadth: VIX level, term-structure proxy and percentile; the put/call volume ratio;
advancers minus decliners and the share of symbols above their 200-day average.

- **VIX**: :func:`real_vix` is the CBOE VIX close of 2014-2019 bundled with the ``arch`` package (a real
  sample, offline); :func:`synthetic_vix` is the VIX of a synthetic market: the model-implied volatility of
  its equal-weight index over the next 30 calendar days given its hidden state at each bar (regime,
  Heston variance, jumps), in percent, so it moves with the market the envs trade and mean-reverts as the
  model does (both live in :mod:`envs.data.vix`). :func:`vix_features` turns either into causal features;
  joined to bars as their ``vix`` field (:func:`with_vix`, or the data specs ``synthetic:...,vix=true`` and
  ``sample:SPX?vix=true``) they are the library families ``vix_level``, ``vix_term_<n>`` and
  ``vix_pctile_<n>`` (:mod:`envs.features.library`) that every env can observe.
- **Put/call ratio**: :func:`put_call_ratio` from an option chain frame with traded ``volume``
  (:mod:`envs.options.chain_store`'s layout).
- **Breadth**: :func:`advance_decline` and :func:`share_above_average` over a multi-symbol
  :class:`~envs.data.market_data.MarketData`; they are also the library families ``breadth_ad`` and
  ``breadth_sma_<n>`` (:mod:`envs.features.library`).

Everything is causal: a value at bar ``t`` uses bars ``<= t``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from envs.data.vix import real_vix, synthetic_vix, with_vix
from envs.features import indicators as ind

__all__ = ["advance_decline", "put_call_ratio", "real_vix", "share_above_average", "synthetic_vix",
           "vix_features", "vix_level", "vix_pctile", "vix_term", "with_vix"]


def vix_features(vix: pd.Series, average: int = 63, window: int = 252) -> pd.DataFrame:
    """Causal features of a VIX series.

    ``vix_level`` (VIX / 100), ``vix_term`` (VIX over its ``average``-day mean, minus 1: a proxy of the
    VIX/VIX3M term slope, positive in backwardation-like spikes), ``vix_pctile`` (percentile rank of today
    among the last ``window`` days).

    :param vix: the VIX, one value per day.
    :param average: days of the term proxy's mean.
    :param window: days of the percentile's window.
    """
    x = vix.to_numpy(dtype=float)[:, None]
    return pd.DataFrame({
        "vix_level": vix_level(x)[:, 0],
        "vix_term": vix_term(x, average)[:, 0],
        "vix_pctile": vix_pctile(x, window)[:, 0],
    }, index=vix.index)


def vix_level(vix: np.ndarray) -> np.ndarray:
    """The VIX as a fraction (VIX / 100), ``(T, S)``."""
    return vix / 100.0


def vix_term(vix: np.ndarray, n: int) -> np.ndarray:
    """The VIX over its ``n``-bar mean, minus 1 (a term-structure proxy), ``(T, S)``."""
    return vix / ind.rolling_mean(vix, n) - 1.0


def vix_pctile(vix: np.ndarray, n: int) -> np.ndarray:
    """Percentile rank of the VIX among its last ``n`` bars, ``(T, S)``."""
    return ind.rolling_percentile(vix, n)


def put_call_ratio(chain: pd.DataFrame) -> pd.Series:
    """Put volume over call volume per timestamp of an option chain frame.

    :param chain: rows of contracts with ``timestamp``, ``right`` (``"P"``/``"C"``) and ``volume``.
    """
    missing = [c for c in ("timestamp", "right", "volume") if c not in chain.columns]
    if missing:
        raise ValueError(f"put_call_ratio needs chain columns {missing}; the chain has {list(chain.columns)}")
    volume = chain.pivot_table(index="timestamp", columns="right", values="volume", aggfunc="sum", fill_value=0)
    puts = volume["P"] if "P" in volume else 0.0
    calls = volume["C"] if "C" in volume else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = puts / calls
    return ratio.replace([np.inf, -np.inf], np.nan).rename("put_call_ratio")


def advance_decline(close: np.ndarray) -> np.ndarray:
    """``(advancers - decliners) / symbols`` per bar: the share of symbols up on the day less the share
    down (``NaN`` at the first bar).

    :param close: ``(T, S)`` closes.
    """
    change = np.sign(np.diff(np.asarray(close, dtype=float), axis=0))
    out = np.full(close.shape[0], np.nan)
    out[1:] = change.mean(axis=1)
    return out


def share_above_average(close: np.ndarray, n: int = 200) -> np.ndarray:
    """Share of symbols whose close is above their ``n``-bar simple average (``NaN`` during warm-up).

    :param close: ``(T, S)`` closes.
    :param n: the average's window.
    """
    close = np.asarray(close, dtype=float)
    average = ind.rolling_mean(close, n)
    out = (close > average).mean(axis=1)
    out[np.isnan(average).any(axis=1)] = np.nan
    return out
