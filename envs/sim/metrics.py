"""Performance metrics of a backtest: from an equity curve, a trade list and the positions held.

Conventions (the same as empyrical, so the numbers can be checked against it):

- Returns are simple per-bar returns of the equity curve, ``equity[t] / equity[t-1] - 1``. The equity
  curve starts with the initial capital, so a loss on the first bar counts as a drawdown.
- ``periods_per_year`` comes from the data's trading calendar and bar frequency
  (:mod:`envs.data.calendar`): 252 for daily NYSE bars, 252 * 390 for NYSE minute bars, 8,766 for hourly
  24/7 crypto bars, 6,261 for hourly 24/5 FX bars. :func:`compute_stats` infers it from the equity
  curve's timestamps unless given. Years are counted in bars (``n_returns / periods_per_year``), which on a
  gap-free 24/7 series is the calendar span.
- The risk-free rate is 0 unless given (as a per-period rate).
- Volatility uses the sample standard deviation (``ddof=1``); Sortino's downside deviation is the root
  mean square of the negative part of the returns (all bars in the denominator).
- Historical VaR is the 5% percentile of the returns (a negative number for a loss), CVaR the mean of the
  returns at or below it (empyrical's cutoff-index rule).
- Alpha is annualised as ``(1 + mean(r - beta * b))**periods_per_year - 1``; beta is ``cov(r, b) / var(b)``.
- Max drawdown is a negative fraction; its duration is the longest stretch, in bars, from a peak until
  equity first gets back to that peak (or until the end if it never does); ``max_drawdown_days`` is the
  same stretch in calendar days, from the timestamps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from envs.data.calendar import TradingCalendar, get_calendar, infer_calendar, infer_frequency
from envs.data.market_data import DataValidationError

# Closed trades are the input of the trade statistics; callers get both from here.
from envs.sim.trades import round_trips  # noqa: F401

PERIODS_PER_YEAR = 252
"""Bars per year of daily NYSE bars: the default of the plain functions below, which take arrays without
timestamps. :func:`compute_stats` never uses it: it reads the calendar."""


def simple_returns(equity: np.ndarray) -> np.ndarray:
    """Per-bar simple returns of an equity curve (one fewer element than ``equity``).

    :param equity: equity values, 1-D, first element the starting capital.
    """
    equity = np.asarray(equity, dtype=np.float64)
    if equity.ndim != 1 or len(equity) < 1:
        raise ValueError(f"equity must be a non-empty 1-D array, got shape {equity.shape}")
    return equity[1:] / equity[:-1] - 1.0


def annual_return(returns: np.ndarray, periods_per_year: int = PERIODS_PER_YEAR) -> float:
    """Compound annual growth rate of a return series.

    :param returns: per-period simple returns.
    :param periods_per_year: bars per year.
    """
    if len(returns) == 0:
        return float("nan")
    growth = float(np.prod(1.0 + np.asarray(returns)))
    if growth <= 0.0:  # the account was wiped out: every dollar lost, whatever the horizon
        return -1.0
    return growth ** (periods_per_year / len(returns)) - 1.0


def annual_volatility(returns: np.ndarray, periods_per_year: int = PERIODS_PER_YEAR) -> float:
    """Annualised sample standard deviation of returns.

    :param returns: per-period simple returns.
    :param periods_per_year: bars per year.
    """
    if len(returns) < 2:
        return float("nan")
    return float(np.std(returns, ddof=1) * np.sqrt(periods_per_year))


def sharpe_ratio(
    returns: np.ndarray, risk_free: float = 0.0, periods_per_year: int = PERIODS_PER_YEAR
) -> float:
    """Annualised Sharpe ratio, ``mean(r - rf) / std(r - rf) * sqrt(periods_per_year)``.

    :param returns: per-period simple returns.
    :param risk_free: per-period risk-free rate.
    :param periods_per_year: bars per year.
    """
    excess = np.asarray(returns, dtype=np.float64) - risk_free
    if len(excess) < 2:
        return float("nan")
    std = np.std(excess, ddof=1)
    if std == 0:
        return float("nan")
    return float(np.mean(excess) / std * np.sqrt(periods_per_year))


def sortino_ratio(
    returns: np.ndarray, required_return: float = 0.0, periods_per_year: int = PERIODS_PER_YEAR
) -> float:
    """Annualised Sortino ratio: annualised mean excess return over annualised downside deviation.

    :param returns: per-period simple returns.
    :param required_return: per-period target return.
    :param periods_per_year: bars per year.
    """
    excess = np.asarray(returns, dtype=np.float64) - required_return
    if len(excess) < 2:
        return float("nan")
    downside = np.sqrt(np.mean(np.minimum(excess, 0.0) ** 2)) * np.sqrt(periods_per_year)
    if downside == 0:
        return float("nan")
    return float(np.mean(excess) * periods_per_year / downside)


def drawdown(equity: np.ndarray) -> np.ndarray:
    """Drawdown at each bar as a fraction of the running peak (0 at a peak, negative below it).

    :param equity: equity values, 1-D.
    """
    equity = np.asarray(equity, dtype=np.float64)
    peak = np.maximum.accumulate(equity)
    return equity / peak - 1.0


def max_drawdown(equity: np.ndarray) -> float:
    """Deepest drawdown of an equity curve (negative fraction, 0 if it never falls).

    :param equity: equity values, 1-D.
    """
    return float(drawdown(equity).min()) if len(equity) else float("nan")


def max_drawdown_duration(equity: np.ndarray) -> int:
    """Longest number of bars spent below a previous peak.

    :param equity: equity values, 1-D.
    """
    return _longest_drawdown(equity)[0]


def max_drawdown_days(equity: pd.Series) -> float:
    """Calendar days of the longest drawdown: from the peak's timestamp to the bar that regains it (or the
    last bar if none does).

    :param equity: equity indexed by timestamp.
    """
    bars, peak = _longest_drawdown(equity.to_numpy(dtype=np.float64))
    if bars == 0:
        return 0.0
    return float((equity.index[peak + bars] - equity.index[peak]) / pd.Timedelta(days=1))


def _longest_drawdown(equity: np.ndarray) -> tuple[int, int]:
    """``(bars, position of its peak)`` of the longest stretch below a previous peak."""
    underwater = drawdown(equity) < 0
    if not underwater.any():
        return 0, 0
    # Length of each run of consecutive underwater bars: cumulative count reset at every new peak.
    idx = np.arange(len(underwater))
    last_peak = np.maximum.accumulate(np.where(underwater, 0, idx))
    length = np.where(underwater, idx - last_peak, 0)
    end = int(np.argmax(length))
    return int(length[end]), int(last_peak[end])


def value_at_risk(returns: np.ndarray, level: float = 0.95) -> float:
    """Historical value at risk: the ``1 - level`` percentile of returns (negative means a loss).

    :param returns: per-period simple returns.
    :param level: confidence level.
    """
    if len(returns) == 0:
        return float("nan")
    return float(np.percentile(returns, 100.0 * (1.0 - level)))


def conditional_value_at_risk(returns: np.ndarray, level: float = 0.95) -> float:
    """Historical expected shortfall: mean of the worst ``1 - level`` share of returns.

    :param returns: per-period simple returns.
    :param level: confidence level.
    """
    returns = np.asarray(returns, dtype=np.float64)
    if len(returns) == 0:
        return float("nan")
    cutoff = int((len(returns) - 1) * (1.0 - level))
    return float(np.mean(np.partition(returns, cutoff)[: cutoff + 1]))


def alpha_beta(
    returns: np.ndarray,
    benchmark_returns: np.ndarray,
    risk_free: float = 0.0,
    periods_per_year: int = PERIODS_PER_YEAR,
) -> tuple[float, float]:
    """Annualised alpha and beta of ``returns`` against ``benchmark_returns``.

    :param returns: per-period simple returns of the strategy.
    :param benchmark_returns: per-period simple returns of the benchmark, same length.
    :param risk_free: per-period risk-free rate.
    :param periods_per_year: bars per year.
    """
    r = np.asarray(returns, dtype=np.float64) - risk_free
    b = np.asarray(benchmark_returns, dtype=np.float64) - risk_free
    if r.shape != b.shape:
        raise ValueError(f"returns {r.shape} and benchmark_returns {b.shape} differ in shape")
    if len(r) < 2:
        return float("nan"), float("nan")
    b_centred = b - b.mean()
    var = np.mean(b_centred**2)
    beta = float(np.mean(b_centred * r) / var) if var > 0 else float("nan")
    alpha = float((1.0 + np.mean(r - beta * b)) ** periods_per_year - 1.0)
    return alpha, beta


def profit_factor(pnl: np.ndarray) -> float:
    """Gross profit over gross loss of closed trades (``inf`` with no losing trade).

    :param pnl: profit or loss of each closed trade.
    """
    pnl = np.asarray(pnl, dtype=np.float64)
    if len(pnl) == 0:
        return float("nan")
    losses = -pnl[pnl < 0].sum()
    gains = pnl[pnl > 0].sum()
    return float(gains / losses) if losses > 0 else float("inf")


@dataclass(frozen=True)
class Stats:
    """Every headline number of one backtest, like backtesting.py's stats Series.

    Fractions are plain fractions (0.12 is 12%); ``max_drawdown_duration`` is in bars and
    ``max_drawdown_days`` in calendar days. ``calendar``, ``bar`` and ``periods_per_year`` say how the
    annualised numbers were annualised. ``str(stats)`` gives a readable table and :meth:`to_series` a
    pandas Series.
    """

    start: pd.Timestamp
    end: pd.Timestamp
    n_bars: int
    initial_equity: float
    final_equity: float
    total_return: float
    cagr: float
    annual_volatility: float
    sharpe: float
    sortino: float
    calmar: float
    max_drawdown: float
    max_drawdown_duration: int
    n_trades: int
    win_rate: float
    profit_factor: float
    avg_trade: float
    avg_trade_return: float
    exposure: float
    turnover: float
    var_95: float
    cvar_95: float
    alpha: float
    beta: float
    total_costs: float
    max_drawdown_days: float = float("nan")
    calendar: str = "XNYS"
    bar: str = "1D"
    periods_per_year: float = float(PERIODS_PER_YEAR)

    def to_series(self) -> pd.Series:
        """The stats as a pandas Series indexed by field name."""
        return pd.Series(asdict(self), dtype=object)

    def __str__(self) -> str:
        rows = []
        units = {"max_drawdown_duration": " bars", "max_drawdown_days": " days"}
        for key, value in asdict(self).items():
            text = f"{value:,.4f}" if isinstance(value, float) else str(value)
            text += units.get(key, "")
            rows.append(f"{key:<24}{text:>28}")
        return "\n".join(rows)


def compute_stats(
    equity: pd.Series,
    trades: pd.DataFrame | None = None,
    positions: np.ndarray | None = None,
    traded_value: np.ndarray | None = None,
    benchmark: pd.Series | None = None,
    costs: float = 0.0,
    periods_per_year: float | None = None,
    risk_free: float = 0.0,
    calendar: TradingCalendar | str | None = None,
) -> Stats:
    """Compute :class:`Stats` for one backtest.

    :param equity: equity after each bar, indexed by timestamp; the first value is the starting capital
        (positive). A later value at or below zero is an account wiped out (the envs end the episode there):
        its total return and CAGR are -100% or worse, not an error.
    :param trades: closed round trips (:func:`envs.sim.trades.round_trips`) with columns ``pnl`` (cash, net
        of costs) and ``return`` (fraction of the entry value, NaN for a trade opened at no cost, which
        ``avg_trade_return`` leaves out); ``None`` or empty when nothing closed.
    :param positions: shares (or weights) held after each bar, shape ``(T,)`` or ``(T, S)``; used for
        exposure (share of bars with any open position).
    :param traded_value: gross cash value traded at each bar, shape ``(T,)``; used for turnover
        (annualised traded value over average equity).
    :param benchmark: benchmark price or equity on the same index (buy-and-hold) for alpha and beta.
    :param costs: total commissions, slippage and fees paid.
    :param periods_per_year: bars per year; default: from ``calendar`` and the bar frequency of the
        equity curve's timestamps (:mod:`envs.data.calendar`).
    :param risk_free: per-period risk-free rate.
    :param calendar: the market's trading calendar (a name or :class:`TradingCalendar`); default:
        inferred from the timestamps.
    """
    if not isinstance(equity, pd.Series):
        raise TypeError(f"equity must be a pandas Series indexed by time, got {type(equity).__name__}")
    values = equity.to_numpy(dtype=np.float64)
    if len(values) < 1 or not np.isfinite(values).all() or (values[:-1] <= 0).any():
        raise ValueError(
            "equity must be a non-empty series of finite values, positive until the last (an account at or "
            "below zero ends there)"
        )
    cal_name, bar, periods_per_year = _annualisation(equity.index, periods_per_year, calendar)
    returns = simple_returns(values)
    years = len(returns) / periods_per_year
    cagr = annual_return(returns, periods_per_year)
    mdd = max_drawdown(values)

    pnl = np.empty(0) if trades is None or len(trades) == 0 else trades["pnl"].to_numpy(float)
    trade_returns = np.empty(0) if len(pnl) == 0 else trades["return"].to_numpy(float)
    trade_returns = trade_returns[np.isfinite(trade_returns)]

    exposure = float("nan")
    if positions is not None:
        held = np.asarray(positions).reshape(len(values), -1)
        exposure = float(np.mean((held != 0).any(axis=1)))
    turnover = float("nan")
    if traded_value is not None and years > 0:
        turnover = float(np.sum(traded_value) / np.mean(values) / years)

    alpha = beta = float("nan")
    if benchmark is not None:
        if not benchmark.index.equals(equity.index):
            benchmark = benchmark.reindex(equity.index)
        bench = benchmark.to_numpy(dtype=np.float64)
        alpha, beta = alpha_beta(returns, simple_returns(bench), risk_free, periods_per_year)

    return Stats(
        start=equity.index[0],
        end=equity.index[-1],
        n_bars=len(values),
        initial_equity=float(values[0]),
        final_equity=float(values[-1]),
        total_return=float(values[-1] / values[0] - 1.0),
        cagr=cagr,
        annual_volatility=annual_volatility(returns, periods_per_year),
        sharpe=sharpe_ratio(returns, risk_free, periods_per_year),
        sortino=sortino_ratio(returns, risk_free, periods_per_year),
        calmar=float(cagr / abs(mdd)) if mdd < 0 else float("nan"),
        max_drawdown=mdd,
        max_drawdown_duration=max_drawdown_duration(values),
        n_trades=len(pnl),
        win_rate=float(np.mean(pnl > 0)) if len(pnl) else float("nan"),
        profit_factor=profit_factor(pnl),
        avg_trade=float(np.mean(pnl)) if len(pnl) else float("nan"),
        avg_trade_return=float(np.mean(trade_returns)) if len(trade_returns) else float("nan"),
        exposure=exposure,
        turnover=turnover,
        var_95=value_at_risk(returns),
        cvar_95=conditional_value_at_risk(returns),
        alpha=alpha,
        beta=beta,
        total_costs=float(costs),
        max_drawdown_days=max_drawdown_days(equity) if isinstance(equity.index, pd.DatetimeIndex) else float("nan"),
        calendar=cal_name,
        bar=bar,
        periods_per_year=float(periods_per_year),
    )


def _annualisation(
    index: pd.Index, periods_per_year: float | None, calendar: TradingCalendar | str | None
) -> tuple[str, str, float]:
    """``(calendar name, bar label, periods per year)`` of an equity curve."""
    if not isinstance(index, pd.DatetimeIndex) or len(index) < 2:
        if periods_per_year is None:
            if len(index) < 2:
                # one value has no returns to annualise
                return (str(get_calendar(calendar)) if calendar is not None else "-"), "-", float("nan")
            raise TypeError("equity needs a DatetimeIndex to infer periods_per_year; pass it explicitly")
        return (str(get_calendar(calendar)) if calendar is not None else "-"), "-", float(periods_per_year)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    try:
        frequency = infer_frequency(index)
    except DataValidationError:
        if periods_per_year is None:
            raise
        # An explicit annualisation does not need the bars to be regular.
        return (str(get_calendar(calendar)) if calendar is not None else "-"), "-", float(periods_per_year)
    cal = get_calendar(calendar) if calendar is not None else infer_calendar(index, frequency)
    if periods_per_year is None:
        periods_per_year = cal.periods_per_year(frequency)
    return cal.name, frequency.label, float(periods_per_year)
