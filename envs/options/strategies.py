"""Multi-leg option strategies as data: templates, payoff, position Greeks, max P/L, breakevens, finder.

A :class:`Strategy` is a name and a tuple of :class:`Leg` records for one *unit* (for example one covered
call = 100 shares and one short call). Option quantities are contracts of ``multiplier`` shares (100),
stock quantities are shares; positive quantities are long. Everything here is plain data and numpy:
the env sizes a unit into a position and the bots and the finder reason about units.

Templates (:data:`TEMPLATES`) build a strategy from an :class:`~envs.options.chains.OptionChain`, a target
absolute delta and a target days-to-expiry: the expiry is the listed one closest to the target DTE and each
strike the listed one whose |delta| is closest to its target (short legs at ``delta``, protective wings at
``delta / 2``, debit spreads long at ``delta`` and short at ``delta / 2``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
import pandas as pd

from envs.options.chains import OptionChain
from envs.options.pricing import bsm_greeks, bsm_price

MULTIPLIER = 100
LegKind = Literal["call", "put", "stock"]


@dataclass(frozen=True)
class Leg:
    """One leg of a strategy unit.

    :param kind: ``"call"``, ``"put"`` or ``"stock"``.
    :param quantity: contracts (options) or shares (stock); positive = long.
    :param strike: strike (NaN for stock).
    :param expiry: expiry date, ``datetime64[D]`` (None for stock).
    """

    kind: LegKind
    quantity: float
    strike: float = float("nan")
    expiry: np.datetime64 | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("call", "put", "stock"):
            raise ValueError(f"Leg.kind must be 'call', 'put' or 'stock', got {self.kind!r}")
        if self.kind != "stock" and (not np.isfinite(self.strike) or self.strike <= 0 or self.expiry is None):
            raise ValueError(f"an option leg needs a positive strike and an expiry, got {self!r}")


@dataclass(frozen=True)
class Strategy:
    """A named set of legs forming one unit.

    :param name: template or user name.
    :param legs: the legs.
    :param multiplier: shares per option contract.
    """

    name: str
    legs: tuple[Leg, ...]
    multiplier: int = MULTIPLIER

    @property
    def options(self) -> tuple[Leg, ...]:
        """The option legs."""
        return tuple(leg for leg in self.legs if leg.kind != "stock")

    @property
    def shares(self) -> float:
        """Shares of stock per unit."""
        return float(sum(leg.quantity for leg in self.legs if leg.kind == "stock"))

    @property
    def first_expiry(self) -> np.datetime64 | None:
        """The earliest option expiry (None without options)."""
        expiries = [leg.expiry for leg in self.options]
        return min(expiries) if expiries else None

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Option legs as arrays ``(strike, expiry, is_call, contracts)``."""
        legs = self.options
        return (np.array([leg.strike for leg in legs], dtype=np.float64),
                np.array([leg.expiry for leg in legs], dtype="datetime64[D]"),
                np.array([leg.kind == "call" for leg in legs], dtype=bool),
                np.array([leg.quantity for leg in legs], dtype=np.float64))


# ---------------------------------------------------------------------------------- analytics
def expiry_value(strategy: Strategy, spot: np.ndarray | float, vol: float | None = None, rate: float = 0.0,
                 div_yield: float = 0.0) -> np.ndarray:
    """Value of one unit at the first expiry, for terminal spot(s) ``spot``.

    Legs expiring then pay their intrinsic value; later legs (calendars, diagonals) are valued by BSM with
    the time they have left and ``vol``, which is required when such legs exist.

    :param strategy: the strategy.
    :param spot: terminal underlying price(s).
    :param vol: volatility for legs that outlive the first expiry.
    :param rate: risk-free rate for those legs.
    :param div_yield: dividend yield for those legs.
    :return: unit values, shape of ``spot``.
    """
    spot = np.asarray(spot, dtype=np.float64)
    value = strategy.shares * spot
    first = strategy.first_expiry
    for leg in strategy.options:
        sign = 1.0 if leg.kind == "call" else -1.0
        days = int((leg.expiry - first).astype(np.int64)) if first is not None else 0
        if days == 0:
            per_share = np.maximum(sign * (spot - leg.strike), 0.0)
        else:
            if vol is None:
                raise ValueError(f"{strategy.name}: a leg outlives the first expiry; pass vol to value it")
            per_share = bsm_price(np.maximum(spot, 1e-12), leg.strike, days / 365.0, rate, div_yield, vol,
                                  leg.kind == "call")
        value = value + leg.quantity * strategy.multiplier * per_share
    return value


def position_greeks(strategy: Strategy, spot: float, date: np.datetime64, vols: np.ndarray, units: float = 1.0,
                    rate: float = 0.0, div_yield: float = 0.0) -> dict[str, float]:
    """Greeks of ``units`` units in currency terms: delta in shares, vega per 1.0 vol, theta per year.

    :param strategy: the strategy.
    :param spot: underlying price.
    :param date: valuation date.
    :param vols: implied vol of each option leg (in the order of :attr:`Strategy.options`).
    :param units: number of units held.
    :param rate: risk-free rate.
    :param div_yield: dividend yield.
    :return: dict with ``delta``, ``gamma``, ``vega``, ``theta``, ``rho``.
    """
    strike, expiry, is_call, contracts = strategy.arrays()
    out = {"delta": strategy.shares * units, "gamma": 0.0, "vega": 0.0, "theta": 0.0, "rho": 0.0}
    if strike.size:
        tau = np.maximum((expiry - np.datetime64(date, "D")).astype(np.int64), 0) / 365.0
        g = bsm_greeks(spot, strike, tau, rate, div_yield, vols, is_call)
        scale = contracts * strategy.multiplier * units
        for name in ("delta", "gamma", "vega", "theta", "rho"):
            out[name] += float(np.dot(scale, getattr(g, name)))
    return out


def _breakpoints(strategy: Strategy) -> np.ndarray:
    strikes = sorted({leg.strike for leg in strategy.options})
    return np.array([0.0, *strikes], dtype=np.float64)


def _single_expiry(strategy: Strategy) -> bool:
    return len({leg.expiry for leg in strategy.options}) <= 1


def profit_range(strategy: Strategy, premium: float, vol: float | None = None) -> tuple[float, float]:
    """Maximum profit and maximum loss of one unit held to the first expiry, after paying ``premium``.

    Exact for single-expiry strategies (the payoff is piecewise linear: it is checked at 0, every strike
    and its slope beyond the last strike, which makes an unbounded side ``inf``); calendars and diagonals
    are scanned on a price grid up to 4x the highest strike with ``vol`` for the later legs.

    :param strategy: the strategy.
    :param premium: cost to open one unit (negative for a credit), stock included.
    :param vol: volatility of legs that outlive the first expiry.
    :return: ``(max_profit, max_loss)``, both >= 0 or ``inf``.
    """
    points = _breakpoints(strategy)
    if _single_expiry(strategy):
        pnl = expiry_value(strategy, points) - premium
        slope = strategy.shares + sum(leg.quantity * strategy.multiplier for leg in strategy.options
                                      if leg.kind == "call")
        best = np.inf if slope > 1e-12 else float(np.max(pnl))
        worst = -np.inf if slope < -1e-12 else float(np.min(pnl))
    else:
        grid = np.linspace(0.0, 4.0 * points[-1], 4001)
        pnl = expiry_value(strategy, grid, vol) - premium
        best, worst = float(np.max(pnl)), float(np.min(pnl))
    return max(best, 0.0), max(-worst, 0.0)


def breakevens(strategy: Strategy, premium: float, vol: float | None = None) -> np.ndarray:
    """Underlying prices at the first expiry where one unit neither makes nor loses money.

    :param strategy: the strategy.
    :param premium: cost to open one unit (negative for a credit).
    :param vol: volatility of legs that outlive the first expiry.
    :return: sorted breakeven prices.
    """
    points = _breakpoints(strategy)
    if not _single_expiry(strategy):
        points = np.linspace(0.0, 4.0 * points[-1], 4001)
    pnl = expiry_value(strategy, points, vol) - premium
    roots = []
    for a, b, pa_, pb in zip(points[:-1], points[1:], pnl[:-1], pnl[1:]):
        if pa_ == 0.0:
            roots.append(a)
        elif pa_ * pb < 0:
            roots.append(a - pa_ * (b - a) / (pb - pa_))
    last, last_pnl = points[-1], pnl[-1]
    slope = float(expiry_value(strategy, last + 1.0, vol) - premium - last_pnl)
    if last_pnl == 0.0:
        roots.append(last)
    elif slope != 0.0 and -last_pnl / slope > 0:
        roots.append(last - last_pnl / slope)
    return np.array(sorted(roots))


# ---------------------------------------------------------------------------------- templates
def _pick_expiry(chain: OptionChain, dte: int) -> np.datetime64:
    expiries, first = np.unique(chain.expiry, return_index=True)
    dtes = chain.dte[first]
    return expiries[int(np.argmin(np.abs(dtes - dte) - 1e-3 * dtes))]  # ties go to the later expiry


def _pick_strike(chain: OptionChain, expiry: np.datetime64, is_call: bool, delta: float,
                 exclude: float | None = None, further_than: float | None = None) -> float:
    mask = (chain.expiry == expiry) & (chain.is_call == is_call)
    strikes = chain.strike[mask]
    deltas = np.abs(chain.quotes.greeks.delta[mask])
    if further_than is not None:  # a wing must sit further out of the money than its short leg
        keep = strikes > further_than if is_call else strikes < further_than
        strikes, deltas = strikes[keep], deltas[keep]
    if strikes.size == 0:
        raise ValueError(f"no listed {'call' if is_call else 'put'} strike for expiry {expiry} "
                         f"beyond {further_than}")
    return float(strikes[int(np.argmin(np.abs(deltas - delta)))])


def _covered_call(chain: OptionChain, delta: float, dte: int) -> Strategy:
    e = _pick_expiry(chain, dte)
    call = _pick_strike(chain, e, True, delta)
    return Strategy("covered_call", (Leg("stock", MULTIPLIER), Leg("call", -1, call, e)))


def _cash_secured_put(chain: OptionChain, delta: float, dte: int) -> Strategy:
    e = _pick_expiry(chain, dte)
    return Strategy("cash_secured_put", (Leg("put", -1, _pick_strike(chain, e, False, delta), e),))


def _vertical(name: str, is_call: bool, credit: bool) -> Callable[[OptionChain, float, int], Strategy]:
    def build(chain: OptionChain, delta: float, dte: int) -> Strategy:
        e = _pick_expiry(chain, dte)
        near = _pick_strike(chain, e, is_call, delta)
        far = _pick_strike(chain, e, is_call, delta / 2.0, further_than=near)
        near_qty = -1 if credit else 1
        return Strategy(name, (Leg("call" if is_call else "put", near_qty, near, e),
                               Leg("call" if is_call else "put", -near_qty, far, e)))
    return build


def _iron_condor(chain: OptionChain, delta: float, dte: int) -> Strategy:
    e = _pick_expiry(chain, dte)
    short_put = _pick_strike(chain, e, False, delta)
    short_call = _pick_strike(chain, e, True, delta)
    long_put = _pick_strike(chain, e, False, delta / 2.0, further_than=short_put)
    long_call = _pick_strike(chain, e, True, delta / 2.0, further_than=short_call)
    return Strategy("iron_condor", (Leg("put", 1, long_put, e), Leg("put", -1, short_put, e),
                                    Leg("call", -1, short_call, e), Leg("call", 1, long_call, e)))


def _long_straddle(chain: OptionChain, delta: float, dte: int) -> Strategy:
    e = _pick_expiry(chain, dte)
    k = _pick_strike(chain, e, True, 0.5)
    return Strategy("long_straddle", (Leg("put", 1, k, e), Leg("call", 1, k, e)))


def _long_strangle(chain: OptionChain, delta: float, dte: int) -> Strategy:
    e = _pick_expiry(chain, dte)
    return Strategy("long_strangle", (Leg("put", 1, _pick_strike(chain, e, False, delta), e),
                                      Leg("call", 1, _pick_strike(chain, e, True, delta), e)))


def _back_expiry(chain: OptionChain, front: np.datetime64) -> np.datetime64:
    later = np.unique(chain.expiry[chain.expiry >= front + 21])
    if later.size == 0:
        raise ValueError(f"no listed expiry at least 21 days after {front} for the back month")
    return later[0]


def _calendar(chain: OptionChain, delta: float, dte: int) -> Strategy:
    front = _pick_expiry(chain, dte)
    back = _back_expiry(chain, front)
    k = _pick_strike(chain, front, True, delta)
    return Strategy("calendar", (Leg("call", -1, k, front), Leg("call", 1, k, back)))


def _diagonal(chain: OptionChain, delta: float, dte: int) -> Strategy:
    front = _pick_expiry(chain, dte)
    back = _back_expiry(chain, front)
    short = _pick_strike(chain, front, True, delta)
    long_ = _pick_strike(chain, back, True, min(delta + 0.25, 0.9))
    return Strategy("diagonal", (Leg("call", -1, short, front), Leg("call", 1, long_, back)))


TEMPLATES: dict[str, Callable[[OptionChain, float, int], Strategy]] = {
    "covered_call": _covered_call,
    "cash_secured_put": _cash_secured_put,
    "bull_put": _vertical("bull_put", is_call=False, credit=True),
    "bear_call": _vertical("bear_call", is_call=True, credit=True),
    "bull_call": _vertical("bull_call", is_call=True, credit=False),
    "bear_put": _vertical("bear_put", is_call=False, credit=False),
    "iron_condor": _iron_condor,
    "long_straddle": _long_straddle,
    "long_strangle": _long_strangle,
    "calendar": _calendar,
    "diagonal": _diagonal,
}
"""Template name -> builder ``(chain, delta, dte) -> Strategy``. Every template has defined risk or is
fully covered (stock or cash), so an account without margin can hold it."""


def build_strategy(name: str, chain: OptionChain, delta: float, dte: int) -> Strategy:
    """Build a template on a chain.

    :param name: one of :data:`TEMPLATES`.
    :param chain: the listed contracts.
    :param delta: target absolute delta of the main leg(s), in (0, 1).
    :param dte: target days to expiry.
    :return: the strategy unit.
    """
    if name not in TEMPLATES:
        raise ValueError(f"unknown strategy template {name!r}; known: {sorted(TEMPLATES)}")
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")
    return TEMPLATES[name](chain, delta, dte)


# ---------------------------------------------------------------------------------- finder
def rank_verticals(chain: OptionChain, view: Literal["bullish", "bearish"],
                   delta_band: tuple[float, float] = (0.15, 0.45), dte_band: tuple[int, int] = (20, 60),
                   drift: float = 0.0, vol: float | None = None,
                   objective: Literal["expected_value", "return_on_risk"] = "return_on_risk") -> pd.DataFrame:
    """Every vertical spread that fits a view and a delta/DTE band, scored at the quotes' bid and ask.

    Bullish views consider bull put (credit) and bull call (debit) spreads, bearish ones bear call and
    bear put spreads; the leg nearer the money must have its |delta| in ``delta_band``. The expected payoff
    at expiry is closed form under a lognormal view with annual ``drift`` (``E[S_T] = S e^{drift T}``) and
    volatility ``vol`` (default: each expiry's at-the-money implied vol, the market's own view).

    :param chain: the listed contracts.
    :param view: ``"bullish"`` or ``"bearish"``.
    :param delta_band: allowed |delta| of the near leg.
    :param dte_band: allowed days to expiry (inclusive).
    :param drift: annual drift of the view (``E[S_T] = S e^{drift T}``).
    :param vol: annual volatility of the view.
    :param objective: column to sort by, descending.
    :return: one row per candidate with legs, premium, max profit/loss, expected value and return on risk.
    """
    if view not in ("bullish", "bearish"):
        raise ValueError(f"view must be 'bullish' or 'bearish', got {view!r}")
    if objective not in ("expected_value", "return_on_risk"):
        raise ValueError(f"objective must be 'expected_value' or 'return_on_risk', got {objective!r}")
    q = chain.quotes
    rows = []
    for expiry in np.unique(chain.expiry[(chain.dte >= dte_band[0]) & (chain.dte <= dte_band[1])]):
        at = chain.expiry == expiry
        tau = float(q.t[at][0])
        view_vol = vol if vol is not None else float(q.iv[at][np.argmin(np.abs(chain.strike[at] - chain.spot))])
        for is_call in (False, True):
            m = at & (chain.is_call == is_call)
            k, bid, ask = chain.strike[m], q.bid[m], q.ask[m]
            near_ok = (np.abs(q.greeks.delta[m]) >= delta_band[0]) & (np.abs(q.greeks.delta[m]) <= delta_band[1])
            # E[payoff] under the view: bsm_price with rate 0 and dividend yield -drift is S e^{mu T} N(d1) - K N(d2).
            expected = bsm_price(chain.spot, k, tau, 0.0, -drift, view_vol, is_call)
            i, j = np.meshgrid(np.arange(k.size), np.arange(k.size), indexing="ij")  # i = near leg, j = far leg
            further = k[j] > k[i] if is_call else k[j] < k[i]
            ok = further & near_ok[i]
            i, j = i[ok], j[ok]
            credit = (view == "bullish") != is_call  # bull put / bear call collect premium
            width = np.abs(k[j] - k[i]) * MULTIPLIER
            if credit:  # short the near leg at the bid, buy the far leg at the ask
                premium = (ask[j] - bid[i]) * MULTIPLIER
                payoff = (expected[j] - expected[i]) * MULTIPLIER
            else:  # buy the near leg at the ask, sell the far leg at the bid
                premium = (ask[i] - bid[j]) * MULTIPLIER
                payoff = (expected[i] - expected[j]) * MULTIPLIER
            floor = -width if credit else np.zeros_like(width)
            max_loss = np.maximum(premium - floor, 0.0)
            max_profit = np.maximum((0.0 if credit else width) - premium, 0.0)
            ev = payoff - premium
            name = {(True, False): "bull_put", (True, True): "bull_call", (False, True): "bear_call",
                    (False, False): "bear_put"}[(view == "bullish", is_call)]
            rows.append(pd.DataFrame({
                "strategy": name, "expiry": expiry, "dte": int(chain.dte[at][0]),
                "near_strike": k[i], "far_strike": k[j], "width": width, "near_delta": q.greeks.delta[m][i],
                "premium": premium, "max_profit": max_profit, "max_loss": max_loss,
                "expected_value": ev,
                "return_on_risk": np.where(max_loss > 0, ev / np.maximum(max_loss, 1e-12), np.inf),
            }))
    if not rows:
        raise ValueError(f"no expiry with days to expiry in {dte_band}")
    table = pd.concat(rows, ignore_index=True)
    # Equal scores (a far leg bid at zero adds nothing) go to the narrowest spread.
    return table.sort_values([objective, "width"], ascending=[False, True], kind="stable").reset_index(drop=True)


def best_vertical(chain: OptionChain, view: Literal["bullish", "bearish"],
                  **kwargs: object) -> tuple[Strategy, pd.Series]:
    """The top candidate of :func:`rank_verticals` as a :class:`Strategy` and its scores.

    :param chain: the listed contracts.
    :param view: ``"bullish"`` or ``"bearish"``.
    :param kwargs: passed to :func:`rank_verticals`.
    :return: ``(strategy, row)``.
    """
    table = rank_verticals(chain, view, **kwargs)  # type: ignore[arg-type]
    if table.empty:
        raise ValueError("no vertical spread matches the delta band")
    best = table.iloc[0]
    kind = "call" if best["strategy"] in ("bull_call", "bear_call") else "put"
    near_qty = -1 if best["strategy"] in ("bull_put", "bear_call") else 1
    expiry = np.datetime64(best["expiry"], "D")
    legs = (Leg(kind, near_qty, float(best["near_strike"]), expiry),
            Leg(kind, -near_qty, float(best["far_strike"]), expiry))
    return Strategy(str(best["strategy"]), legs), best
