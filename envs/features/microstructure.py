"""Microstructure features: order-flow imbalance, trade imbalance, trade-sign autocorrelation, sweeps,
effective and realised spreads and price impact, per bar and per symbol.

The event-level measures (Cont-Kukanov-Stoikov OFI of each quote update, Lee-Ready trade signs, sweeps,
spreads, impact) and their per-bar aggregates live in :mod:`envs.data.ticks` (sources attach the aggregates
to the bars) and are re-exported here. The functions below window those per-bar fields into features,
causally (a value at bar ``t`` uses bars ``<= t``); the feature library exposes them as the families
``ofi_<n>``, ``trade_imb_<n>``, ``sign_ac``, ``sweeps_<n>``, ``espread_<n>``, ``rspread_<n>`` and
``impact_<n>`` (:data:`MICROSTRUCTURE_FEATURES`), which need bars with the fields (intraday data loaded
with quotes and trades: ``synthetic_ticks``, or ``alpaca:...;microstructure=true``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from envs.data.ticks import (  # noqa: F401  (the event-level measures, re-exported)
    BAR_FIELDS,
    bar_microstructure,
    effective_spread,
    order_flow_imbalance,
    prevailing_quotes,
    price_impact,
    quote_ofi,
    realised_spread,
    rolling_sum,
    sign_autocorrelation,
    sweeps,
    trade_features,
    trade_signs,
    with_microstructure,
)

MICROSTRUCTURE_FEATURES: tuple[str, ...] = (
    "ofi_5", "trade_imb_5", "sign_ac", "sweeps_5", "espread_5", "rspread_20", "impact_20",
)
"""A set of microstructure features for intraday bars with quotes and trades (not in the default
feature set: daily bars have no quotes)."""


def window_sum(x: np.ndarray, n: int) -> np.ndarray:
    """``(T, S)`` sums over the last ``n`` bars (fewer at the start)."""
    return pd.DataFrame(np.asarray(x, dtype=float)).fillna(0.0).rolling(n, min_periods=1).sum().to_numpy()


def ofi_depth(ofi: np.ndarray, depth: np.ndarray, n: int) -> np.ndarray:
    """Order-flow imbalance over the last ``n`` bars in units of the average best-level depth (Cont, Kukanov
    and Stoikov 2014 scale OFI by depth: the mid moves by about ``OFI / depth`` ticks).

    :param ofi: ``(T, S)`` per-bar OFI (shares).
    :param depth: ``(T, S)`` per-bar mean half depth ``(bid_size + ask_size) / 2`` (NaN without quotes; the
        last known depth stands in).
    :param n: bars.
    """
    known = pd.DataFrame(np.asarray(depth, dtype=float)).ffill()
    mean_depth = known.rolling(n, min_periods=1).mean().to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(mean_depth > 0, window_sum(ofi, n) / mean_depth, np.nan)


def trade_imbalance(buy_volume: np.ndarray, sell_volume: np.ndarray, n: int) -> np.ndarray:
    """``(buy - sell) / (buy + sell)`` signed volume over the last ``n`` bars (0 when nothing traded).

    :param buy_volume: ``(T, S)`` buyer-initiated shares per bar.
    :param sell_volume: ``(T, S)`` seller-initiated shares per bar.
    :param n: bars.
    """
    buy, sell = window_sum(buy_volume, n), window_sum(sell_volume, n)
    total = buy + sell
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, (buy - sell) / total, 0.0)


def last_known(x: np.ndarray) -> np.ndarray:
    """The latest finite value at or before each bar (NaN before the first).

    :param x: ``(T, S)`` per-bar values.
    """
    return pd.DataFrame(np.asarray(x, dtype=float)).ffill().to_numpy()


def window_mean(x: np.ndarray, n: int) -> np.ndarray:
    """Mean of the finite values of the last ``n`` bars, else the latest known one (NaN before any).

    :param x: ``(T, S)`` per-bar values (NaN in bars without any).
    :param n: bars.
    """
    mean = pd.DataFrame(np.asarray(x, dtype=float)).rolling(n, min_periods=1).mean()
    return mean.ffill().to_numpy()
