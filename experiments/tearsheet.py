"""The numbers behind a report's panels, as plain frames: what quantstats' and pyfolio's tear sheets show.

Each function takes a :class:`~experiments.engine.BacktestResult` (or its equity curve) and returns a
``pd.Series``/``pd.DataFrame`` with raw values (fractions, money, bars); :mod:`experiments.report` formats
and draws them. Conventions: simple bar returns of the equity curve, annualised with ``periods_per_year``;
the benchmark is the result's equal-weight buy-and-hold of the same symbols over the same bars.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from envs.environments.options import ENV_ID as OPTIONS_ENV_ID
from envs.sim.metrics import PERIODS_PER_YEAR
from experiments.engine import BacktestResult


def returns_of(equity: pd.Series) -> pd.Series:
    """Simple returns bar over bar (the first bar has none).

    :param equity: equity curve.
    """
    return equity.pct_change().iloc[1:]


def rolling_volatility(equity: pd.Series, window: int = 63, periods_per_year: int = PERIODS_PER_YEAR) -> pd.Series:
    """Annualised standard deviation of bar returns over a trailing window.

    :param equity: equity curve.
    :param window: bars per window.
    :param periods_per_year: bars per year.
    """
    return equity.pct_change().rolling(window, min_periods=window).std() * np.sqrt(periods_per_year)


def rolling_beta(equity: pd.Series, benchmark: pd.Series, window: int = 63) -> pd.Series:
    """Beta of bar returns to the benchmark's over a trailing window: cov(r, b) / var(b).

    :param equity: equity curve.
    :param benchmark: benchmark curve on the same index.
    :param window: bars per window.
    """
    r, b = equity.pct_change(), benchmark.pct_change()
    return r.rolling(window, min_periods=window).cov(b) / b.rolling(window, min_periods=window).var()


def worst_drawdowns(equity: pd.Series, top: int = 5) -> pd.DataFrame:
    """The ``top`` deepest drawdowns: peak, trough and recovery dates, depth, and lengths in bars.

    A drawdown runs from a running peak until equity first gets back to it (recovery); one still open at the
    end has no recovery date.

    :param equity: equity curve.
    :param top: how many to list.
    """
    values = equity.to_numpy(dtype=float)
    peak = np.maximum.accumulate(values)
    under = values < peak
    rows = []
    t = 0
    n = len(values)
    while t < n:
        if not under[t]:
            t += 1
            continue
        start = t - 1  # the peak bar
        end = t
        while end < n and under[end]:
            end += 1
        window = values[start:end]
        trough = start + int(np.argmin(window))
        rows.append({
            "peak": equity.index[start],
            "trough": equity.index[trough],
            "recovery": equity.index[end] if end < n else pd.NaT,
            "depth": values[trough] / values[start] - 1.0,
            "bars to trough": trough - start,
            "bars to recover": end - trough if end < n else np.nan,
        })
        t = end
    frame = pd.DataFrame(rows, columns=["peak", "trough", "recovery", "depth", "bars to trough", "bars to recover"])
    return frame.sort_values("depth").head(top).reset_index(drop=True)


def yearly_returns(curves: dict[str, pd.Series]) -> pd.DataFrame:
    """Compounded return of each calendar year (rows) for each curve (columns); a partial first or last year
    counts from the first bar or to the last one.

    :param curves: name -> equity curve with a datetime index.
    """
    out = {}
    for name, equity in curves.items():
        year_end = equity.groupby(equity.index.year).last()
        out[name] = year_end / year_end.shift(1, fill_value=equity.iloc[0]) - 1.0
    frame = pd.DataFrame(out)
    frame.index.name = "year"
    return frame


def benchmark_stats(result: BacktestResult, periods_per_year: int = PERIODS_PER_YEAR) -> dict[str, float]:
    """How the strategy relates to its buy-and-hold benchmark: correlation, beta, annualised alpha, tracking
    error, information ratio, and up/down capture (mean return on the benchmark's up / down bars over the
    benchmark's mean on those bars).

    :param result: one policy's run.
    :param periods_per_year: bars per year.
    """
    r = returns_of(result.equity).to_numpy(dtype=float)
    b = returns_of(result.benchmark).to_numpy(dtype=float)
    ok = np.isfinite(r) & np.isfinite(b)
    r, b = r[ok], b[ok]
    nan = float("nan")
    if len(r) < 2 or np.std(b) == 0:
        return {"correlation": nan, "beta": nan, "alpha": nan, "tracking_error": nan,
                "information_ratio": nan, "up_capture": nan, "down_capture": nan}
    beta = float(np.cov(r, b, ddof=1)[0, 1] / np.var(b, ddof=1))
    active = r - b
    tracking = float(np.std(active, ddof=1) * np.sqrt(periods_per_year))
    up, down = b > 0, b < 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "correlation": float(np.corrcoef(r, b)[0, 1]) if np.std(r) > 0 else nan,
            "beta": beta,
            "alpha": float((np.mean(r) - beta * np.mean(b)) * periods_per_year),
            "tracking_error": tracking,
            "information_ratio": float(np.mean(active) * periods_per_year / tracking) if tracking > 0 else nan,
            "up_capture": float(np.mean(r[up]) / np.mean(b[up])) if up.any() else nan,
            "down_capture": float(np.mean(r[down]) / np.mean(b[down])) if down.any() else nan,
        }


def _exit_reasons(result: BacktestResult) -> pd.Series:
    """Why each closed trade ended: the reason of the fill that closed it (``signal``, ``stop_loss``, ...)."""
    fills = result.fills
    if not len(result.trades) or "reason" not in fills:
        return pd.Series(dtype=object)
    keyed = fills.drop_duplicates(["timestamp", "symbol"], keep="last").set_index(["timestamp", "symbol"])["reason"]
    keys = pd.MultiIndex.from_arrays([result.trades["exit_time"], result.trades["symbol"].astype(str)])
    return pd.Series(keyed.reindex(keys).fillna("unknown").to_numpy(), index=result.trades.index)


def attribution(result: BacktestResult) -> dict[str, pd.DataFrame]:
    """Closed-trade P/L split three ways: by symbol, by side, and by what closed the trade (the policy's
    signal, a stop loss, another risk rule, an option's expiry), each with trade count, total and mean P/L
    and win rate, largest total first.

    :param result: one policy's run.
    """
    trades = result.trades
    if not len(trades):
        return {}
    frame = trades.assign(closed_by=_exit_reasons(result), won=trades["pnl"] > 0)
    out = {}
    for key, label in (("symbol", "symbol"), ("side", "side"), ("closed_by", "closed by")):
        grouped = frame.groupby(key, sort=False)
        table = pd.DataFrame({
            "trades": grouped.size(),
            "total P/L": grouped["pnl"].sum(),
            "mean P/L": grouped["pnl"].mean(),
            "win rate": grouped["won"].mean(),
        }).sort_values("total P/L", ascending=False)
        table.index.name = label
        out[label] = table
    return out


def risk_contributions(
    result: BacktestResult, close: np.ndarray, symbols: list[str], periods_per_year: int = PERIODS_PER_YEAR
) -> pd.DataFrame:
    """Each position's contribution to the portfolio's volatility (Euler decomposition).

    The portfolio's bar return is the sum of each symbol's P/L over the previous equity,
    ``c_i = shares_i(t-1) * (close_i(t) - close_i(t-1)) / equity(t-1)``, plus cash and costs. Symbol ``i``
    contributes ``cov(c_i, r) / sd(r)`` to the standard deviation of the return ``r``; the contributions
    (annualised) add up to the portfolio's volatility up to the cost term. Empty for options runs, whose
    positions are contracts rather than shares.

    :param result: one stock policy's run.
    :param close: close prices of the traded bars, ``(len(equity), S)``.
    :param symbols: the ``S`` symbol names.
    :param periods_per_year: bars per year.
    """
    if result.env_id == OPTIONS_ENV_ID or close.ndim != 2 or close.shape[0] != len(result.equity):
        return pd.DataFrame()
    equity = result.equity.to_numpy(dtype=float)
    positions = result.positions
    pnl = positions[:-1] * np.diff(close, axis=0)
    parts = pnl / equity[:-1, None]
    total = np.diff(equity) / equity[:-1]
    if len(total) < 2 or np.std(total, ddof=1) == 0:
        return pd.DataFrame()
    sd = np.std(total, ddof=1)
    cov = np.array([np.cov(parts[:, j], total, ddof=1)[0, 1] for j in range(parts.shape[1])])
    contribution = cov / sd * np.sqrt(periods_per_year)
    frame = pd.DataFrame({
        "average weight": (positions * close / equity[:, None]).mean(axis=0),
        "standalone volatility": parts.std(axis=0, ddof=1) * np.sqrt(periods_per_year),
        "contribution to volatility": contribution,
        "share of volatility": contribution / (sd * np.sqrt(periods_per_year)),
    }, index=pd.Index(list(symbols), name="symbol"))
    return frame.sort_values("contribution to volatility", ascending=False)
