"""An options account: cash, shares of one underlying and option legs; fills, expiry and settlement.

Fills: an option buy pays the ask and a sell receives the bid (half the spread against the mid), plus a
commission per contract; a stock trade pays half of ``stock_spread_bps`` and a commission as a fraction of
notional. Cash never goes negative: the env sizes every position so that its worst case is covered, and
settlement liquidates shares if an assignment leaves cash short.

Expiry: a leg is settled at the close of the last bar on or before its expiry date (options expire at
that day's close). With ``settlement="physical"`` (US equity options), a leg at least ``0.01`` in the money
is exercised if long and assigned if short (the OCC's exercise-by-exception rule): 100 shares per contract
change hands at the strike. Short stock left by an assignment or exercise is bought back at that close;
if cash is short after settlement, shares are sold at that close until it is not. With ``"cash"``,
in-the-money legs pay their intrinsic value in cash instead (index-option style). Settlement is free of
commission.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

from envs.options.strategies import MULTIPLIER, Leg
from envs.sim.execution import ExecutionConfig

Settlement = Literal["physical", "cash"]
EXERCISE_THRESHOLD = 0.01


class OptionFill(NamedTuple):
    """One execution or settlement event on the account."""

    timestamp: pd.Timestamp
    kind: str
    """``"call"``, ``"put"`` or ``"stock"``."""
    strike: float
    expiry: np.datetime64 | None
    quantity: float
    """Signed contracts (options) or shares (stock); positive buys."""
    price: float
    """Price per share paid or received (half-spread included; intrinsic value at expiry, and the
    settlement price for the shares delivered)."""
    commission: float
    spread_cost: float
    """Half-spread paid against the mid, in cash."""
    reason: str
    """``"open"``, ``"close"``, ``"exercised"``, ``"assigned"``, ``"expired"``, ``"cash_settled"``,
    ``"delivery"`` (shares from an exercise or assignment), ``"front_expiry"`` (the rest of a calendar
    closed) or ``"liquidation"``."""

    def symbol(self, underlying: str) -> str:
        """The underlying for stock; an OCC-style contract symbol (``SPY 240621C00450000``) for options."""
        if self.kind == "stock":
            return underlying
        day = pd.Timestamp(self.expiry)
        return f"{underlying} {day:%y%m%d}{'C' if self.kind == 'call' else 'P'}{round(self.strike * 1000):08d}"


@dataclass(frozen=True)
class OptionCosts:
    """Trading costs of the options account.

    :param commission_per_contract: commission per option contract traded.
    :param stock_commission: stock commission as a fraction of notional.
    :param stock_spread_bps: full stock bid/ask spread in basis points; each stock fill pays half.
    """

    commission_per_contract: float = 0.65
    stock_commission: float = 0.001
    stock_spread_bps: float = 2.0

    def __post_init__(self) -> None:
        for name in ("commission_per_contract", "stock_commission", "stock_spread_bps"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise ValueError(f"OptionCosts.{name} must be a finite number >= 0, got {value!r}")

    @classmethod
    def from_execution(cls, execution: ExecutionConfig, commission_per_contract: float = 0.65) -> "OptionCosts":
        """The options account's costs for the stock envs' execution settings: the same stock commission,
        and a stock spread that costs each fill what the stock envs charge it. Slippage is adverse by
        ``slippage_bps`` per fill, which is what half of a ``2 x slippage_bps`` spread costs, so it folds
        into the spread. The one conversion used by the backtest and by RL training.

        :param execution: the stock envs' costs.
        :param commission_per_contract: commission per option contract.
        """
        return cls(
            commission_per_contract=commission_per_contract,
            stock_commission=execution.commission,
            stock_spread_bps=execution.spread_bps + 2.0 * execution.slippage_bps,
        )

    def stock_price(self, price: float, quantity: float) -> float:
        """Fill price of a stock trade of signed ``quantity`` at reference ``price``."""
        return price * (1.0 + np.sign(quantity) * 0.5e-4 * self.stock_spread_bps)


class OptionAccount:
    """Cash, shares and option legs of one underlying.

    :param cash: starting cash.
    :param costs: trading costs.
    """

    def __init__(self, cash: float, costs: OptionCosts) -> None:
        self.cash = float(cash)
        self.costs = costs
        self.shares = 0.0
        self.legs: list[Leg] = []
        self.strategy: str | None = None
        self.entry_cost = 0.0  # cash paid to open the current legs (negative for a credit), commissions included

    # ------------------------------------------------------------------ trades
    def trade_option(self, timestamp: pd.Timestamp, leg: Leg, bid: float, ask: float, mid: float,
                     reason: str) -> OptionFill:
        """Buy (``leg.quantity > 0``) at the ask or sell at the bid, and update the legs.

        :param timestamp: fill time.
        :param leg: contract and signed contracts to trade.
        :param bid: bid per share.
        :param ask: ask per share.
        :param mid: mid per share (for the spread cost).
        :param reason: why (see :class:`OptionFill`).
        :return: the fill.
        """
        price = ask if leg.quantity > 0 else bid
        commission = abs(leg.quantity) * self.costs.commission_per_contract
        cash_flow = -leg.quantity * price * MULTIPLIER - commission
        self.cash += cash_flow
        if reason == "open":
            self.entry_cost -= cash_flow
        self._add_leg(leg)
        return OptionFill(timestamp, leg.kind, leg.strike, leg.expiry, leg.quantity, price, commission,
                          abs(leg.quantity) * MULTIPLIER * abs(price - mid), reason)

    def trade_stock(self, timestamp: pd.Timestamp, quantity: float, price: float, reason: str) -> OptionFill:
        """Buy or sell ``quantity`` shares around ``price`` (half the spread, commission on notional).

        :param timestamp: fill time.
        :param quantity: signed shares.
        :param price: reference price (the bar's open or close).
        :param reason: why.
        :return: the fill.
        """
        fill = self.costs.stock_price(price, quantity)
        commission = abs(quantity) * fill * self.costs.stock_commission
        self.cash -= quantity * fill + commission
        self.shares += quantity
        return OptionFill(timestamp, "stock", float("nan"), None, quantity, fill, commission,
                          abs(quantity) * abs(fill - price), reason)

    def _add_leg(self, leg: Leg) -> None:
        for i, held in enumerate(self.legs):
            if (held.kind, held.strike, held.expiry) == (leg.kind, leg.strike, leg.expiry):
                quantity = held.quantity + leg.quantity
                if quantity == 0:
                    del self.legs[i]
                else:
                    self.legs[i] = Leg(leg.kind, quantity, leg.strike, leg.expiry)
                break
        else:
            self.legs.append(leg)
        if not self.legs:
            self.strategy = None
            self.entry_cost = 0.0

    # ------------------------------------------------------------------ expiry
    def settle(self, timestamp: pd.Timestamp, date: np.datetime64, settle_price: np.ndarray,
               mode: Settlement) -> list[OptionFill]:
        """Settle every leg expiring on or before ``date``.

        :param timestamp: settlement time (the close).
        :param date: the bar's date.
        :param settle_price: underlying price to settle each current leg at (order of :attr:`legs`).
        :param mode: ``"physical"`` or ``"cash"``.
        :return: one record per settled leg.
        """
        events = []
        keep = []
        for leg, spot in zip(list(self.legs), settle_price):
            if leg.expiry > date:
                keep.append(leg)
                continue
            sign = 1.0 if leg.kind == "call" else -1.0
            intrinsic = max(sign * (spot - leg.strike), 0.0)
            if intrinsic < EXERCISE_THRESHOLD:
                events.append(OptionFill(timestamp, leg.kind, leg.strike, leg.expiry, -leg.quantity, 0.0, 0.0,
                                         0.0, "expired"))
            elif mode == "cash":
                self.cash += leg.quantity * intrinsic * MULTIPLIER
                events.append(OptionFill(timestamp, leg.kind, leg.strike, leg.expiry, -leg.quantity, intrinsic,
                                         0.0, 0.0, "cash_settled"))
            else:
                # Booked as the option closing at its intrinsic value plus the shares delivered at the
                # settlement price: the same cash as delivery at the strike, with a clean P/L per contract.
                delivered = leg.quantity * MULTIPLIER * sign  # shares received (calls long / puts short)
                self.shares += delivered
                self.cash -= delivered * leg.strike
                events.append(OptionFill(timestamp, leg.kind, leg.strike, leg.expiry, -leg.quantity, intrinsic,
                                         0.0, 0.0, "exercised" if leg.quantity > 0 else "assigned"))
                events.append(OptionFill(timestamp, "stock", float("nan"), None, delivered, float(spot), 0.0, 0.0,
                                         "delivery"))
        self.legs = keep
        if not keep:
            self.strategy = None
            self.entry_cost = 0.0
        return events

    def restore_cash(self, timestamp: pd.Timestamp, price: float) -> list[OptionFill]:
        """After settlement: buy back short stock, then sell shares while cash is negative.

        :param timestamp: time of the liquidation (the settlement close).
        :param price: the close.
        :return: the stock fills.
        """
        fills = []
        if self.shares < 0:
            fills.append(self.trade_stock(timestamp, -self.shares, price, "liquidation"))
        if self.cash < 0 and self.shares > 0:
            per_share = self.costs.stock_price(price, -1.0) * (1.0 - self.costs.stock_commission)
            needed = min(float(np.ceil(-self.cash / per_share)), self.shares)
            fills.append(self.trade_stock(timestamp, -needed, price, "liquidation"))
        return fills

    # ------------------------------------------------------------------ marks
    def option_value(self, mids: np.ndarray) -> float:
        """Value of the option legs at ``mids`` (per share, order of :attr:`legs`)."""
        return float(sum(leg.quantity * MULTIPLIER * m for leg, m in zip(self.legs, mids)))

    def leg_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Current legs as ``(strike, expiry, is_call, contracts)`` arrays."""
        return (np.array([leg.strike for leg in self.legs], dtype=np.float64),
                np.array([leg.expiry for leg in self.legs], dtype="datetime64[D]"),
                np.array([leg.kind == "call" for leg in self.legs], dtype=bool),
                np.array([leg.quantity for leg in self.legs], dtype=np.float64))
