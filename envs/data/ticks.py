"""Quotes and trades: the microstructure measures of each event and their per-bar aggregates.

Event measures: order-flow imbalance, trade signs and their autocorrelation, sweeps, effective and
realised spreads, price impact. Inputs are event arrays in time order (one row per quote update or per
trade), as Alpaca's historical quotes and trades arrive (``bid_price``, ``bid_size``, ``ask_price``,
``ask_size``; ``price``, ``size``), or a simulator's events. Everything is causal: a value at event ``n``
uses events ``<= n``. The realised spread and the price impact of a trade need the mid ``horizon`` events
later, so they are reported at that later event (``NaN`` before), never at the trade itself.

Per-bar aggregates (:func:`bar_microstructure`, :data:`BAR_FIELDS`): what the quotes and trades inside
each bar ``[start, start + length)`` said, so a bar's fields are known at its close, like its OHLCV; they
join the bars as :class:`~envs.data.market_data.MarketData` extra fields (:func:`with_microstructure`), and
the feature library's microstructure families (:mod:`envs.features.microstructure`) window them. This
module sits in the data layer because sources attach these fields when they load ticks (the Alpaca source
with ``microstructure=true``, the synthetic tick market :mod:`envs.data.synthetic_ticks`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from envs.data.market_data import MarketData


def order_flow_imbalance(
    bid_price: np.ndarray, bid_size: np.ndarray, ask_price: np.ndarray, ask_size: np.ndarray
) -> np.ndarray:
    """Order-flow imbalance ``e_n`` of each best-quote update (Cont, Kukanov and Stoikov 2014, eq. 2).

    ``e_n = 1{Pb_n >= Pb_{n-1}} qb_n - 1{Pb_n <= Pb_{n-1}} qb_{n-1} - 1{Pa_n <= Pa_{n-1}} qa_n
    + 1{Pa_n >= Pa_{n-1}} qa_{n-1}``: demand added at the bid less supply added at the ask. The first
    event has no predecessor and gets 0. Summed over an interval it is the paper's OFI, which explains the
    mid-price change over the interval linearly.

    :param bid_price: best bid per event.
    :param bid_size: size at the best bid.
    :param ask_price: best ask.
    :param ask_size: size at the best ask.
    """
    pb, qb, pa, qa = (np.asarray(x, dtype=float) for x in (bid_price, bid_size, ask_price, ask_size))
    e = np.zeros(pb.shape)
    e[1:] = (
        (pb[1:] >= pb[:-1]) * qb[1:] - (pb[1:] <= pb[:-1]) * qb[:-1]
        - (pa[1:] <= pa[:-1]) * qa[1:] + (pa[1:] >= pa[:-1]) * qa[:-1]
    )
    return e


def rolling_sum(x: np.ndarray, window: int) -> np.ndarray:
    """Causal sum of the last ``window`` values (fewer at the start).

    :param x: values in time order.
    :param window: number of values.
    """
    c = np.cumsum(np.asarray(x, dtype=float))
    out = c.copy()
    out[window:] -= c[:-window]
    return out


def trade_signs(price: np.ndarray, bid: np.ndarray, ask: np.ndarray) -> np.ndarray:
    """+1 for buyer-initiated trades, -1 for seller-initiated (Lee and Ready 1991).

    The quote rule (above the prevailing mid: a buy; below: a sell), and the tick rule for trades at the
    mid (the sign of the last price change; 0 when there was none yet).

    :param price: trade prices.
    :param bid: best bid prevailing at each trade (the last quote before it).
    :param ask: best ask prevailing at each trade.
    """
    p = np.asarray(price, dtype=float)
    mid = 0.5 * (np.asarray(bid, dtype=float) + np.asarray(ask, dtype=float))
    # A trade within a billionth of the mid is at the mid (10.005 - (10.00 + 10.01) / 2 is not 0 in floats).
    sign = np.where(np.abs(p - mid) <= 1e-9 * np.abs(mid), 0.0, np.sign(p - mid))
    tick = np.zeros(p.shape)
    change = np.diff(p)
    tick[1:] = np.where(np.abs(change) <= 1e-9 * np.abs(p[1:]), 0.0, np.sign(change))
    # The tick rule carries the last non-zero price change forward (a zero tick repeats the last sign).
    last = pd.Series(np.where(tick != 0, tick, np.nan)).ffill().fillna(0.0).to_numpy()
    return np.where(sign != 0, sign, last)


def sign_autocorrelation(signs: np.ndarray, window: int, lag: int = 1) -> np.ndarray:
    """Rolling autocorrelation at ``lag`` of the trade signs over the last ``window`` trades.

    Order splitting makes trade signs long-memory (positively autocorrelated for many lags); a value near
    0 means independent flow. ``NaN`` until ``window + lag`` trades have been seen or when the window's
    signs do not vary.

    :param signs: +1/-1 trade signs in time order.
    :param window: trades in the window.
    :param lag: autocorrelation lag in trades.
    """
    s = pd.Series(np.asarray(signs, dtype=float))
    return s.rolling(window, min_periods=window).corr(s.shift(lag)).to_numpy()


def sweeps(
    price: np.ndarray, sign: np.ndarray, time: np.ndarray, tick: float, window: float, min_levels: int = 3
) -> np.ndarray:
    """Flag trades that complete a sweep: a burst of same-side trades within ``window`` (seconds or
    steps) that walks through at least ``min_levels`` distinct price levels.

    A flagged trade is known to be a sweep when it prints, from it and the trades before it.

    :param price: trade prices.
    :param sign: +1/-1 trade signs.
    :param time: trade times (seconds, or steps), non-decreasing.
    :param tick: the price tick (levels are prices on this grid).
    :param window: the burst's maximum duration.
    :param min_levels: distinct price levels that make a sweep.
    """
    p = np.round(np.asarray(price, dtype=float) / tick).astype(np.int64)
    s = np.asarray(sign)
    t = np.asarray(time, dtype=float)
    flags = np.zeros(p.shape, dtype=bool)
    start = 0
    for n in range(p.size):
        # The burst: the latest run of same-side trades that fits in the window.
        if n > 0 and s[n] != s[n - 1]:
            start = n
        while t[n] - t[start] > window:
            start += 1
        flags[n] = s[n] != 0 and np.unique(p[start : n + 1]).size >= min_levels
    return flags


def effective_spread(price: np.ndarray, sign: np.ndarray, mid: np.ndarray) -> np.ndarray:
    """``2 sign (price - mid) / mid`` of each trade: what the taker paid against the mid, both ways.

    :param price: trade prices.
    :param sign: +1/-1 trade signs.
    :param mid: the mid prevailing at each trade.
    """
    m = np.asarray(mid, dtype=float)
    return 2.0 * np.asarray(sign) * (np.asarray(price, dtype=float) - m) / m


def _at_horizon(values: np.ndarray, horizon: int) -> np.ndarray:
    """``values`` of trade ``n`` reported at trade ``n + horizon`` (NaN before), so nothing is early."""
    out = np.full(values.shape, np.nan)
    if horizon < values.size:
        out[horizon:] = values[: values.size - horizon]
    return out


def realised_spread(price: np.ndarray, sign: np.ndarray, mid: np.ndarray, horizon: int) -> np.ndarray:
    """``2 sign (price - mid_{n+h}) / mid_n`` of trade ``n``: what the liquidity provider kept after the mid
    moved for ``horizon`` trades; reported at trade ``n + horizon``.

    :param price: trade prices.
    :param sign: +1/-1 trade signs.
    :param mid: the mid prevailing at each trade.
    :param horizon: trades after which the mid is read.
    """
    p, m = np.asarray(price, dtype=float), np.asarray(mid, dtype=float)
    later = np.full(m.shape, np.nan)
    later[: m.size - horizon] = m[horizon:]
    return _at_horizon(2.0 * np.asarray(sign) * (p - later) / m, horizon)


def price_impact(sign: np.ndarray, mid: np.ndarray, horizon: int) -> np.ndarray:
    """``2 sign (mid_{n+h} - mid_n) / mid_n`` of trade ``n``: the permanent part of the effective spread
    (effective = realised + impact); reported at trade ``n + horizon``.

    :param sign: +1/-1 trade signs.
    :param mid: the mid prevailing at each trade.
    :param horizon: trades after which the mid is read.
    """
    m = np.asarray(mid, dtype=float)
    later = np.full(m.shape, np.nan)
    later[: m.size - horizon] = m[horizon:]
    return _at_horizon(2.0 * np.asarray(sign) * (later - m) / m, horizon)


def prevailing_quotes(quotes: pd.DataFrame, trades: pd.DataFrame) -> pd.DataFrame:
    """The best bid and ask prevailing at each trade: the last quote strictly before it.

    :param quotes: Alpaca quotes (a time index, ``bid_price``, ``ask_price``), sorted.
    :param trades: Alpaca trades (a time index, ``price``), sorted.
    """
    q = quotes[["bid_price", "ask_price"]].rename_axis("time").reset_index()
    t = trades.rename_axis("time").reset_index()
    merged = pd.merge_asof(t, q, on="time", allow_exact_matches=False)
    return merged.set_index("time")


def trade_features(quotes: pd.DataFrame, trades: pd.DataFrame, tick: float = 0.01, horizon: int = 5,
                   window: int = 50, sweep_seconds: float = 1.0, sweep_levels: int = 3) -> pd.DataFrame:
    """Per-trade microstructure features from quotes and trades (Alpaca's historical data layout).

    Columns: ``sign``, ``sign_autocorr`` (over ``window`` trades), ``sweep``, ``effective_spread``,
    ``realised_spread`` and ``price_impact`` (both at ``horizon`` trades, reported when known).

    :param quotes: quotes with a DatetimeIndex and ``bid_price``, ``ask_price``.
    :param trades: trades with a DatetimeIndex and ``price``.
    :param tick: price tick.
    :param horizon: trades after which realised spread and impact are measured.
    :param window: trades in the sign autocorrelation's window.
    :param sweep_seconds: a sweep's maximum duration.
    :param sweep_levels: distinct price levels that make a sweep.
    """
    merged = prevailing_quotes(quotes, trades)
    price = merged["price"].to_numpy(dtype=float)
    bid, ask = merged["bid_price"].to_numpy(dtype=float), merged["ask_price"].to_numpy(dtype=float)
    mid = 0.5 * (bid + ask)
    sign = trade_signs(price, bid, ask)
    seconds = (merged.index - merged.index[0]).total_seconds().to_numpy()
    return pd.DataFrame({
        "sign": sign,
        "sign_autocorr": sign_autocorrelation(sign, window),
        "sweep": sweeps(price, sign, seconds, tick, sweep_seconds, sweep_levels),
        "effective_spread": effective_spread(price, sign, mid),
        "realised_spread": realised_spread(price, sign, mid, horizon),
        "price_impact": price_impact(sign, mid, horizon),
    }, index=merged.index)


def quote_ofi(quotes: pd.DataFrame, freq: str) -> pd.Series:
    """Order-flow imbalance summed over intervals of ``freq`` (e.g. ``"1min"``), labelled by the interval's
    end, so a bar's value uses only quotes inside it.

    :param quotes: quotes with a DatetimeIndex and ``bid_price``, ``bid_size``, ``ask_price``, ``ask_size``.
    :param freq: pandas frequency of the intervals.
    """
    e = order_flow_imbalance(quotes["bid_price"], quotes["bid_size"], quotes["ask_price"], quotes["ask_size"])
    return pd.Series(e, index=quotes.index).resample(freq, label="right", closed="right").sum()


BAR_FIELDS: tuple[str, ...] = (
    "ofi", "depth", "buy_volume", "sell_volume", "n_trades", "sign_autocorr", "sweeps",
    "effective_spread", "realised_spread", "price_impact",
)
"""Per-bar microstructure fields, from the events inside the bar:

- ``ofi``: the sum of the Cont-Kukanov-Stoikov ``e_n`` of the quote updates (shares);
- ``depth``: the mean of ``(bid_size + ask_size) / 2`` over the quote updates (shares; NaN without one);
- ``buy_volume``, ``sell_volume``: shares traded by buyer- and seller-initiated trades (Lee-Ready);
- ``n_trades``: trades;
- ``sign_autocorr``: the lag-1 autocorrelation of the last ``window`` trade signs at the bar's last trade;
- ``sweeps``: trades completing a sweep (a same-side burst through ``sweep_levels`` price levels);
- ``effective_spread``, ``realised_spread``, ``price_impact``: the means of the values reported in the bar
  (fractions of the mid; realised spread and impact of a trade are reported ``horizon`` trades later).
Bars without the events a field needs hold NaN (0 for sums and counts)."""

BAR_FIELD_AGGREGATION: dict[str, str] = {
    "ofi": "sum", "depth": "mean", "buy_volume": "sum", "sell_volume": "sum", "n_trades": "sum",
    "sign_autocorr": "last", "sweeps": "sum", "effective_spread": "trade_mean", "realised_spread": "trade_mean",
    "price_impact": "trade_mean",
}
"""How each of :data:`BAR_FIELDS` combines when bars are resampled to a coarser frequency: sums and counts
add up, ``depth`` averages, ``sign_autocorr`` is the last bar's (it is already a trailing window), and the
per-trade means are weighted by the bars' ``n_trades`` (a mean over the coarse bar's trades)."""


def _bar_of(times: pd.DatetimeIndex, index: pd.DatetimeIndex, length: pd.Timedelta) -> np.ndarray:
    """The bar each event falls in (``start <= time < start + length``), -1 outside every bar."""
    starts, at = index.as_unit("ns").asi8, times.as_unit("ns").asi8  # one unit (pandas keeps s, ms, us too)
    k = np.searchsorted(starts, at, side="right") - 1
    inside = (k >= 0) & (at < starts[np.maximum(k, 0)] + length.value)
    return np.where(inside, k, -1)


def _per_bar(bar: np.ndarray, values: np.ndarray, n_bars: int, how: str) -> np.ndarray:
    keep = (bar >= 0) & np.isfinite(values)
    frame = pd.Series(values[keep]).groupby(bar[keep])
    out = getattr(frame, how)().reindex(range(n_bars))
    return out.to_numpy(dtype=float) if how != "sum" else out.fillna(0.0).to_numpy(dtype=float)


def bar_microstructure(
    quotes: pd.DataFrame, trades: pd.DataFrame, index: pd.DatetimeIndex, length: str | pd.Timedelta,
    tick: float = 0.01, horizon: int = 5, window: int = 50, sweep_seconds: float = 1.0, sweep_levels: int = 3,
) -> pd.DataFrame:
    """The :data:`BAR_FIELDS` of each bar from one symbol's quotes and trades.

    :param quotes: quotes with a DatetimeIndex and ``bid_price``, ``bid_size``, ``ask_price``, ``ask_size``.
    :param trades: trades with a DatetimeIndex and ``price``, ``size``.
    :param index: the bars' start times (UTC, sorted).
    :param length: the bar length (``"1min"``).
    :param tick: price tick (sweep levels).
    :param horizon: trades after which realised spread and impact are measured.
    :param window: trades in the sign autocorrelation's window.
    :param sweep_seconds: a sweep's maximum duration.
    :param sweep_levels: distinct price levels that make a sweep.
    """
    index = pd.DatetimeIndex(index)
    length = pd.Timedelta(length)
    n = len(index)
    out = pd.DataFrame(index=index, columns=list(BAR_FIELDS), dtype=float)
    if len(quotes):
        e = order_flow_imbalance(quotes["bid_price"], quotes["bid_size"], quotes["ask_price"], quotes["ask_size"])
        qbar = _bar_of(pd.DatetimeIndex(quotes.index), index, length)
        out["ofi"] = _per_bar(qbar, e, n, "sum")
        half_depth = 0.5 * (quotes["bid_size"].to_numpy(float) + quotes["ask_size"].to_numpy(float))
        out["depth"] = _per_bar(qbar, half_depth, n, "mean")
    else:
        out["ofi"] = 0.0
    if len(trades) and len(quotes):
        per_trade = trade_features(quotes, trades, tick, horizon, window, sweep_seconds, sweep_levels)
        tbar = _bar_of(pd.DatetimeIndex(per_trade.index), index, length)
        size = trades["size"].to_numpy(float)
        sign = per_trade["sign"].to_numpy()
        out["buy_volume"] = _per_bar(tbar, np.where(sign > 0, size, 0.0), n, "sum")
        out["sell_volume"] = _per_bar(tbar, np.where(sign < 0, size, 0.0), n, "sum")
        out["n_trades"] = _per_bar(tbar, np.ones(len(size)), n, "sum")
        out["sign_autocorr"] = _per_bar(tbar, per_trade["sign_autocorr"].to_numpy(float), n, "last")
        out["sweeps"] = _per_bar(tbar, per_trade["sweep"].to_numpy(float), n, "sum")
        for name in ("effective_spread", "realised_spread", "price_impact"):
            out[name] = _per_bar(tbar, per_trade[name].to_numpy(float), n, "mean")
    else:
        out[["buy_volume", "sell_volume", "n_trades", "sweeps"]] = 0.0
    return out


def with_microstructure(
    data: MarketData, ticks: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]], length: str | pd.Timedelta,
    **options: float,
) -> MarketData:
    """``data`` with the :data:`BAR_FIELDS` of each symbol's quotes and trades as extra per-bar fields.

    :param data: the bars.
    :param ticks: symbol -> (quotes, trades); a symbol left out gets NaN fields (0 for sums and counts).
    :param length: the bar length.
    :param options: :func:`bar_microstructure`'s ``tick``, ``horizon``, ``window``, ``sweep_seconds``,
        ``sweep_levels``.
    """
    empty_q = pd.DataFrame(columns=["bid_price", "bid_size", "ask_price", "ask_size"], dtype=float)
    empty_t = pd.DataFrame(columns=["price", "size"], dtype=float)
    frames = [
        bar_microstructure(*ticks.get(symbol, (empty_q, empty_t)), data.index, length, **options)
        for symbol in data.symbols
    ]
    return data.with_extra({name: np.stack([f[name].to_numpy(float) for f in frames], axis=1) for name in BAR_FIELDS})
