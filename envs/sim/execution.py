"""Execution and costs: how target weights become fills, and what they cost.

One fill model serves the backtest envs, the batched vector env and the simulated broker. An order decided
after bar ``t`` fills at bar ``t+1``'s open by default (``fill_at="next_open"``) or its close. A buy pays
``price * (1 + slippage + spread / 2)`` and a sell receives ``price * (1 - slippage - spread / 2)``, clipped
to the fill bar's ``[low, high]`` so no fill is ever outside the bar; commission is a fraction of the fill's
notional plus an optional amount per share. Sells settle before buys, and buys are scaled down to the cash
(plus margin, if ``max_leverage > 1``) so cash never goes negative without margin.

Whether a new target trades at all is decided by :func:`should_trade` (and its array form
:data:`should_trade_batch`, compiled from the same function); the single env, the vector env, the replay
and the live runner all call it, so "the backtest is the live run" holds by construction.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, NamedTuple, TypeVar

import numba
import numpy as np

FillAt = Literal["next_open", "next_close"]
_Config = TypeVar("_Config")


class ConfigError(ValueError):
    """A configuration value is out of range; the message names the field."""


def config_from(cls: type[_Config], value: "_Config | Mapping[str, Any] | None", label: str) -> _Config:
    """A config dataclass from itself, a dict of its fields (unknown names refused by name) or ``None``
    (the defaults): how the envs accept their ``book=``/``impact=``-style arguments.

    :param cls: the dataclass.
    :param value: an instance, a mapping of field values, or ``None``.
    :param label: the argument's name, for the error messages.
    """
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"{label} must be a {cls.__name__} or a dict of its fields, got {type(value).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ConfigError(f"unknown {label} setting(s) {unknown}; known: {sorted(known)}")
    return cls(**value)


@dataclass(frozen=True)
class ExecutionConfig:
    """Costs and fill conventions.

    :param commission: commission as a fraction of traded notional (0.001 = 10 bps per leg).
    :param commission_per_share: commission per share traded, added to the fractional one.
    :param slippage_bps: adverse price move per leg, in basis points of the reference price.
    :param spread_bps: full bid/ask spread in basis points; each leg pays half of it.
    :param fractional: allow fractional shares; otherwise quantities are truncated to whole shares.
    :param allow_short: allow negative positions.
    :param borrow_rate: annual fee on the notional of short positions, accrued every bar at the close.
    :param max_leverage: maximum gross exposure over equity; ``1.0`` means no margin.
    :param fill_at: ``"next_open"`` (default) or ``"next_close"`` of the bar after the decision.
    :param periods_per_year: bars per year, used to accrue the borrow fee; ``None`` (default) takes it from
        the data's trading calendar when an env is built (:meth:`resolved`).
    :param min_weight_change: a symbol trades only when its target weight moves by more than this from the
        last target it traded to; ``0`` trades on any change. An unchanged target never trades, so a held
        position drifts with its price as a real one does instead of being rebalanced every bar.
    :param min_order_qty: smallest quantity a fill may have (a crypto pair's minimum order size, such as
        0.0001 BTC); a smaller trade is skipped, except one that closes a position to flat.
    :param asset_costs: per-symbol fee and minimum order size, each ``"SYMBOL:FEE_BPS[:MIN_QTY]"``
        (``"BTC/USD:25:0.0001"``): that symbol pays ``FEE_BPS`` basis points of notional per fill instead
        of ``commission``, and ``MIN_QTY`` replaces ``min_order_qty``.
    """

    commission: float = 0.001
    commission_per_share: float = 0.0
    slippage_bps: float = 0.0
    spread_bps: float = 0.0
    fractional: bool = True
    allow_short: bool = False
    borrow_rate: float = 0.0
    max_leverage: float = 1.0
    fill_at: FillAt = "next_open"
    periods_per_year: float | None = None
    min_weight_change: float = 0.0
    min_order_qty: float = 0.0
    asset_costs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "asset_costs", tuple(self.asset_costs))
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "asset_costs":
                self._parse_asset_costs()
            elif f.name in ("fractional", "allow_short"):
                if not isinstance(value, (bool, np.bool_)):
                    raise ConfigError(f"ExecutionConfig.{f.name} must be a bool, got {value!r}")
            elif f.name == "periods_per_year" and value is None:
                continue
            elif f.name == "fill_at":
                if value not in ("next_open", "next_close"):
                    raise ConfigError(
                        f"ExecutionConfig.fill_at must be 'next_open' or 'next_close', got {value!r}"
                    )
            elif not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise ConfigError(
                    f"ExecutionConfig.{f.name} must be a finite number >= 0, got {value!r}"
                )
        if self.commission >= 1:
            raise ConfigError(f"ExecutionConfig.commission is a fraction (< 1), got {self.commission}")
        if self.max_leverage < 1:
            raise ConfigError(f"ExecutionConfig.max_leverage must be >= 1, got {self.max_leverage}")
        if self.periods_per_year is not None and self.periods_per_year <= 0:
            raise ConfigError("ExecutionConfig.periods_per_year must be > 0")

    def _parse_asset_costs(self) -> dict[str, tuple[float, float]]:
        """``{symbol: (commission fraction, min order qty)}`` from :attr:`asset_costs`, validated."""
        out: dict[str, tuple[float, float]] = {}
        for entry in self.asset_costs:
            parts = str(entry).rsplit(":", 2) if str(entry).count(":") >= 2 else str(entry).split(":")
            try:
                symbol, fee = parts[0].strip(), float(parts[1])
                min_qty = float(parts[2]) if len(parts) == 3 else self.min_order_qty
            except (IndexError, ValueError):
                raise ConfigError(
                    f"ExecutionConfig.asset_costs entry {entry!r} is not SYMBOL:FEE_BPS[:MIN_QTY] "
                    "(e.g. 'BTC/USD:25:0.0001')"
                ) from None
            if not symbol or not (0 <= fee < 10_000 and np.isfinite(fee)) or not (min_qty >= 0 and np.isfinite(min_qty)):
                raise ConfigError(
                    f"ExecutionConfig.asset_costs entry {entry!r}: fee in [0, 10000) bps and MIN_QTY >= 0"
                )
            out[symbol] = (fee * 1e-4, min_qty)
        return out

    def for_symbol(self, symbol: str) -> "ExecutionConfig":
        """This config as ``symbol`` pays it: its :attr:`asset_costs` entry, if any, as ``commission`` and
        ``min_order_qty`` (the single-symbol paths read those two fields).

        :param symbol: the traded symbol.
        """
        table = self._parse_asset_costs()
        if symbol not in table:
            return self
        commission, min_qty = table[symbol]
        return dataclasses.replace(self, commission=commission, min_order_qty=min_qty, asset_costs=())

    def per_symbol(self, symbols: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Commission fraction and minimum order quantity of each symbol, as arrays.

        :param symbols: the symbols, in the data's order.
        """
        return _per_symbol(self, tuple(symbols))

    @property
    def price_impact(self) -> float:
        """Fraction by which a fill is worse than the reference price (slippage plus half the spread)."""
        return (self.slippage_bps + self.spread_bps / 2.0) * 1e-4

    @property
    def borrow_per_bar(self) -> float:
        """Borrow fee per bar as a fraction of short notional."""
        if not self.borrow_rate:
            return 0.0
        if self.periods_per_year is None:
            raise ConfigError(
                "ExecutionConfig.periods_per_year is not set: resolve it from the data (resolved(data.periods_per_year))"
            )
        return self.borrow_rate / self.periods_per_year

    def resolved(self, periods_per_year: float) -> "ExecutionConfig":
        """This config with ``periods_per_year`` filled in from the data's calendar when it was left unset.

        :param periods_per_year: the data's bars per year (``MarketData.periods_per_year``).
        """
        if self.periods_per_year is not None:
            return self
        return dataclasses.replace(self, periods_per_year=float(periods_per_year))

    @property
    def fill_field(self) -> int:
        """Index of the OHLCV field fills happen at (0 = open, 3 = close)."""
        return 0 if self.fill_at == "next_open" else 3


def should_trade(target: float, last: float, band: float, market_open: bool, force: bool) -> bool:
    """The one trade rule: does a symbol whose last traded target was ``last`` trade towards ``target``?

    Never while its market is closed on the fill bar (a stock on a Saturday bar of a portfolio that also
    holds crypto): nothing fills at a stale price, the position is held, and since ``last`` stays what it
    was, the new target trades at the first open bar. Otherwise it trades when the risk layer forces it,
    when the target moved by more than ``band`` (``ExecutionConfig.min_weight_change``), or went to flat
    (closing a position is never held back by the band). An unchanged target never trades, so a held
    position drifts with its price instead of being rebalanced every bar. Kept free of objects so the
    compiled loops (``envs/sim/vector_kernel.py``, ``envs/sim/replay.py``) compile this very function.

    :param target: the new target weight (after the risk layer).
    :param last: the target weight the symbol last traded to.
    :param band: the minimum change of weight that trades.
    :param market_open: whether the symbol's market is open during the fill bar
        (:attr:`envs.data.market_data.MarketData.tradable`; the broker's clock when live).
    :param force: the risk layer forces a trade to ``target`` (a trim or an exit).
    """
    if not market_open:
        return False
    return force or (target != last and (abs(target - last) > band or target == 0.0))


should_trade_batch = numba.vectorize(
    ["boolean(float64, float64, float64, boolean, boolean)"], cache=True
)(should_trade)
"""Array form of :func:`should_trade` (a NumPy ufunc compiled from it): elementwise over targets, last
targets and bands, broadcasting like any ufunc."""


@functools.lru_cache(maxsize=64)
def _per_symbol(config: ExecutionConfig, symbols: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    table = config._parse_asset_costs()
    default = (config.commission, config.min_order_qty)
    pairs = np.array([table.get(s, default) for s in symbols], dtype=np.float64).reshape(len(symbols), 2)
    commission, min_qty = np.ascontiguousarray(pairs[:, 0]), np.ascontiguousarray(pairs[:, 1])
    commission.setflags(write=False)
    min_qty.setflags(write=False)
    return commission, min_qty


class Rebalance(NamedTuple):
    """The result of one batched rebalance (arrays keep the input's leading shape)."""

    cash: np.ndarray
    shares: np.ndarray
    traded: np.ndarray
    """Signed quantity filled per symbol."""
    fill_price: np.ndarray
    """Execution price per symbol (the reference price where nothing traded)."""
    commission: np.ndarray
    """Commission paid per symbol."""
    impact_cost: np.ndarray
    """Slippage and half-spread paid per symbol: ``|traded| * |fill_price - price|``."""


def rebalance(
    cash: np.ndarray,
    shares: np.ndarray,
    target_weights: np.ndarray,
    price: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    config: ExecutionConfig,
    active: np.ndarray | None = None,
    symbols: tuple[str, ...] | None = None,
) -> Rebalance:
    """Trade from ``shares`` towards ``target_weights`` of equity at ``price``, for a batch of accounts.

    Shapes: ``cash (N,)``; ``shares, target_weights, price, low, high (N, S)``. Target shares are
    ``w * equity / price``; sells fill first, then buys are scaled to what cash (and margin) can pay for,
    commission included, so a weight of 1.0 from cash buys as much as the cash allows.

    :param cash: cash per account.
    :param shares: current signed shares.
    :param target_weights: desired weight of equity per symbol (already validated and risk-checked).
    :param price: reference fill price (the fill bar's open or close).
    :param low: the fill bar's low; fills are clipped to ``[low, high]``.
    :param high: the fill bar's high.
    :param config: costs and conventions.
    :param active: boolean ``(N, S)``; symbols where it is False keep their shares untouched.
    :param symbols: the symbols of the columns, for per-symbol fees and minimum order sizes
        (:attr:`ExecutionConfig.asset_costs`); without them every symbol pays ``commission``.
    """
    if symbols is not None:
        c, min_qty = config.per_symbol(symbols)
    else:
        c, min_qty = config.commission, config.min_order_qty
    per_share = config.commission_per_share
    k = config.price_impact
    equity = cash + (shares * price).sum(axis=-1)
    buy_price = np.minimum(price * (1.0 + k), high)
    sell_price = np.maximum(price * (1.0 - k), low)
    target = target_weights * (equity[..., None] / price)
    # shorts reserve their commission and that of closing a long first (see fill_one)
    short_target = target_weights * (
        (equity[..., None] - np.maximum(shares, 0.0) * sell_price * c) / (sell_price * (1.0 + c))
    )
    target = np.where(target < 0.0, short_target, target)
    if not config.fractional:
        target = np.trunc(target)
    if active is not None:
        target = np.where(active, target, shares)
    delta = target - shares
    # Below the minimum order size nothing trades, unless the position closes to flat.
    keeps = target_weights != 0.0
    delta = np.where(keeps & (np.abs(delta) < min_qty), 0.0, delta)
    sell = np.minimum(delta, 0.0)
    buy = np.maximum(delta, 0.0)
    cash_after_sells = cash + (-sell * (sell_price * (1.0 - c) - per_share)).sum(axis=-1)
    buy_unit = buy_price * (1.0 + c) + per_share
    need = (buy * buy_unit).sum(axis=-1)
    budget = np.maximum(cash_after_sells + (config.max_leverage - 1.0) * equity, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(need > budget, budget / need, 1.0)
    buy = buy * scale[..., None]
    if not config.fractional:
        buy = np.floor(buy + 1e-9)
    buy = np.where(keeps & (buy < min_qty), 0.0, buy)
    new_cash = cash_after_sells - (buy * buy_unit).sum(axis=-1)
    traded = buy + sell
    fill_price = np.where(traded > 0, buy_price, np.where(traded < 0, sell_price, price))
    abs_traded = np.abs(traded)
    commission = abs_traded * (fill_price * c + per_share)
    impact = abs_traded * np.abs(fill_price - price)
    return Rebalance(new_cash, shares + traded, traded, fill_price, commission, impact)


def rebalance_one(
    cash: float,
    shares: float,
    target_weight: float,
    price: float,
    low: float,
    high: float,
    config: ExecutionConfig,
) -> tuple[float, float, float, float, float, float]:
    """:func:`rebalance` for one account and one symbol, in Python floats.

    The single-asset env steps hundreds of thousands of times a second; at that size numpy's per-call
    overhead is most of the cost, so this scalar twin exists for speed. It performs the same arithmetic in
    the same order (``tests/test_execution.py`` checks the two agree bit for bit).

    :returns: ``(cash, shares, traded, fill_price, commission, impact_cost)``.
    """
    return fill_one(
        cash, shares, target_weight, price, low, high, config.commission, config.commission_per_share,
        config.price_impact, not config.fractional, config.max_leverage, config.min_order_qty,
    )


def fill_one(
    cash: float,
    shares: float,
    target_weight: float,
    price: float,
    low: float,
    high: float,
    c: float,
    per_share: float,
    k: float,
    whole: bool,
    max_leverage: float,
    min_qty: float,
) -> tuple[float, float, float, float, float, float]:
    """The arithmetic of :func:`rebalance_one` on plain numbers.

    Kept free of objects so the compiled loops of the vector env and the replay
    (``envs/sim/vector_kernel.py``, ``envs/sim/replay.py``) compile this very function instead of keeping a copy.

    :param c: commission fraction. :param per_share: commission per share.
    :param k: price impact (slippage plus half spread) as a fraction. :param whole: whole shares only.
    :param max_leverage: gross exposure cap over equity.
    :param min_qty: smallest quantity a fill may have unless it closes the position to flat.
    """
    equity = cash + shares * price
    # comparisons rather than min/max: the builtins cost ~100 ns a call, a third of this function in Python
    buy_price = price * (1.0 + k)
    if buy_price > high:
        buy_price = high
    sell_price = price * (1.0 - k)
    if sell_price < low:
        sell_price = low
    target = target_weight * (equity / price)
    if target < 0.0:
        # A short reserves its own commission and that of closing any long first, as a long from cash
        # does for its purchase (backtesting.py's all-in short sizing is the special case w = -1).
        target = target_weight * ((equity - max(shares, 0.0) * sell_price * c) / (sell_price * (1.0 + c)))
    if whole:
        target = float(math.trunc(target))
    delta = target - shares
    keeps = target_weight != 0.0
    if keeps and abs(delta) < min_qty:
        return cash, shares, 0.0, price, 0.0, 0.0
    if delta < 0.0:
        new_cash = cash + -delta * (sell_price * (1.0 - c) - per_share)
        fill = sell_price
    elif delta > 0.0:
        buy_unit = buy_price * (1.0 + c) + per_share
        need = delta * buy_unit
        budget = cash + (max_leverage - 1.0) * equity
        if budget < 0.0:
            budget = 0.0
        if need > budget:
            delta = delta * (budget / need)
        if whole:
            delta = float(math.floor(delta + 1e-9))
        if keeps and delta < min_qty:
            return cash, shares, 0.0, price, 0.0, 0.0
        new_cash = cash - delta * buy_unit
        fill = buy_price if delta > 0.0 else price
    else:
        return cash, shares, 0.0, price, 0.0, 0.0
    size = abs(delta)
    return (
        new_cash,
        shares + delta,
        delta,
        fill,
        size * (fill * c + per_share),
        size * abs(fill - price),
    )


def update_cost_basis(
    shares: np.ndarray, avg_cost: np.ndarray, traded: np.ndarray, fill_price: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Average cost after a fill and the price PnL it realised (before commission).

    Adding to a position averages the cost; reducing it realises ``qty * (fill - avg_cost)`` on the closed
    part; crossing through zero opens the remainder at the fill price. ``avg_cost`` is NaN when flat.

    :returns: ``(new_avg_cost, realised_pnl)`` with the shapes of the inputs.
    """
    new_shares = shares + traded
    old_cost = np.nan_to_num(avg_cost)
    reducing = (shares * traded) < 0
    closed = np.where(reducing, np.minimum(np.abs(traded), np.abs(shares)) * np.sign(shares), 0.0)
    realised = closed * (fill_price - old_cost)
    with np.errstate(divide="ignore", invalid="ignore"):
        added = np.where(
            reducing, 0.0, (shares * old_cost + traded * fill_price) / np.where(new_shares == 0, 1, new_shares)
        )
    crossed = reducing & (np.abs(traded) > np.abs(shares))
    new_cost = np.where(crossed, fill_price, np.where(reducing, old_cost, added))
    new_cost = np.where(new_shares == 0, np.nan, new_cost)
    return new_cost, realised


def update_cost_basis_one(
    shares: float, avg_cost: float, traded: float, fill_price: float
) -> tuple[float, float]:
    """:func:`update_cost_basis` for one symbol in Python floats (same rules, for the scalar env)."""
    new_shares = shares + traded
    if new_shares == 0.0:
        realised = -traded * (fill_price - avg_cost) if shares else 0.0
        return math.nan, realised
    if shares * traded < 0.0:
        closed = math.copysign(min(abs(traded), abs(shares)), shares)
        realised = closed * (fill_price - avg_cost)
        return (fill_price if abs(traded) > abs(shares) else avg_cost), realised
    old_cost = 0.0 if shares == 0.0 else avg_cost
    return (shares * old_cost + traded * fill_price) / new_shares, 0.0
