"""Portfolio accounting for one account: cash, positions, cost basis, realised/unrealised PnL, trade log.

Equity is always ``cash + sum(shares * price)``; every cost (commission, slippage and spread, borrow fee)
comes out of cash, so ``equity - initial == realised + unrealised - commission - borrow`` where realised and
unrealised PnL are measured at fill prices (slippage and spread are inside them).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from envs.sim.execution import Rebalance, update_cost_basis


class Fill(NamedTuple):
    """One executed trade."""

    timestamp: pd.Timestamp
    symbol: str
    quantity: float
    """Signed shares: positive buys, negative sells."""
    price: float
    """Execution price, slippage and half-spread included."""
    commission: float
    impact_cost: float
    """Slippage and half-spread paid, in cash."""
    reason: str
    """``"policy"`` or the risk rule that forced the trade."""


class Portfolio:
    """One account over ``S`` symbols.

    :param symbols: symbol names, in the order of the arrays.
    :param initial_cash: starting cash.
    """

    def __init__(self, symbols: tuple[str, ...], initial_cash: float) -> None:
        if not np.isfinite(initial_cash) or initial_cash <= 0:
            raise ValueError(f"initial_cash must be a positive number, got {initial_cash!r}")
        self.symbols = symbols
        self.initial_cash = float(initial_cash)
        self.reset()

    def reset(self) -> None:
        """Back to all cash, no trades."""
        n = len(self.symbols)
        self.cash = self.initial_cash
        self.shares = np.zeros(n)
        self.avg_cost = np.full(n, np.nan)
        self.realised_pnl = 0.0
        self.commission_paid = 0.0
        self.impact_paid = 0.0
        self.borrow_paid = 0.0
        self.trades: list[Fill] = []

    def equity(self, prices: np.ndarray) -> float:
        """Cash plus the market value of every position at ``prices``."""
        return float(self.cash + self.shares @ prices)

    def weights(self, prices: np.ndarray) -> np.ndarray:
        """Position values over equity (negative for shorts)."""
        equity = self.equity(prices)
        return self.shares * prices / equity if equity > 0 else np.zeros_like(self.shares)

    def unrealised_pnl(self, prices: np.ndarray) -> np.ndarray:
        """Per-symbol PnL of open positions against their average cost."""
        return np.where(self.shares != 0, self.shares * (prices - np.nan_to_num(self.avg_cost)), 0.0)

    def apply(self, result: Rebalance, timestamp: pd.Timestamp, reason: str = "policy") -> list[Fill]:
        """Book a rebalance (for one account: arrays of shape ``(S,)``) and return its fills."""
        self.avg_cost, realised = update_cost_basis(
            self.shares, self.avg_cost, result.traded, result.fill_price
        )
        self.realised_pnl += float(realised.sum())
        self.commission_paid += float(result.commission.sum())
        self.impact_paid += float(result.impact_cost.sum())
        self.cash = float(result.cash)
        self.shares = result.shares
        fills = [
            Fill(
                timestamp,
                self.symbols[j],
                float(result.traded[j]),
                float(result.fill_price[j]),
                float(result.commission[j]),
                float(result.impact_cost[j]),
                reason,
            )
            for j in np.flatnonzero(result.traded)
        ]
        self.trades.extend(fills)
        return fills

    def accrue_borrow(self, prices: np.ndarray, rate_per_bar: float) -> float:
        """Charge the borrow fee on short notional for one bar; returns the fee."""
        if rate_per_bar == 0.0:
            return 0.0
        fee = float(rate_per_bar * (np.maximum(-self.shares, 0.0) @ prices))
        self.cash -= fee
        self.borrow_paid += fee
        return fee

    def trade_frame(self) -> pd.DataFrame:
        """The trade log as a DataFrame (one row per fill)."""
        return pd.DataFrame(self.trades, columns=Fill._fields)
