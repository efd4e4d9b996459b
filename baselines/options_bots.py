"""Options bots for ``AlpacaGym/Options-v0``: covered calls, weekly short puts, iron condors, IV timing.

Each bot is a :class:`~agents.policy.Policy` whose parameters are typed class attributes. It reads only
``info``: ``info["legs"]`` (what is held), ``info["position"]`` (entry cost, mark, P/L, days to expiry),
``info["iv_rank"]`` and ``info["actions"]`` (the env's :class:`~envs.environments.options.ActionLayout`, which turns
a template, delta and DTE into an action index), so a bot works with any env whose buckets contain its
delta and DTE (otherwise ``encode`` names the missing bucket).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from agents.params import Parameterised
from agents.registry import register_policy
from envs.environments.options import ENV_ID, ActionLayout


class OptionsBot(Parameterised):
    """Base: open ``template`` when nothing is held, then hold until expiry or an exit rule fires.

    :param delta: target absolute delta of the short (or main) legs.
    :param dte: target days to expiry.
    """

    template: ClassVar[str] = ""
    env_id: ClassVar[str] = ENV_ID  # the env these bots trade in (a backtest builds it from this)
    delta: float = 0.30
    dte: int = 30

    def validate(self) -> None:
        if not 0.0 < self.delta < 1.0:
            raise ValueError(f"{self.name}.delta must be in (0, 1), got {self.delta!r}")
        if self.dte < 1:
            raise ValueError(f"{self.name}.dte must be >= 1, got {self.dte!r}")

    def reset(self, seed: int | None = None) -> None:
        """The bots are deterministic and keep no episode state."""

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> int:
        """Open the template when flat, otherwise apply :meth:`manage`.

        :param obs: the env observation (unused).
        :param info: the env info.
        :return: an action index.
        """
        layout: ActionLayout = info["actions"]
        if info["legs"]:
            return layout.CLOSE if self.exit(info) else layout.HOLD
        return self.entry(info, layout)

    def entry(self, info: dict[str, Any], layout: ActionLayout) -> int:
        """Action when nothing is held (default: open the template)."""
        return layout.encode(self.template, self.delta, self.dte)

    def exit(self, info: dict[str, Any]) -> bool:
        """Close the open position now? (default: never, hold to expiry)."""
        return False


@register_policy
class CoveredCalls(OptionsBot):
    """Own the stock and sell an out-of-the-money call against it every month (the seed's TLT example).

    Calls are held to expiry: if assigned the shares go, and the next bar buys them back with a new call.
    """

    name: ClassVar[str] = "covered_calls"
    template: ClassVar[str] = "covered_call"
    delta: float = 0.30
    dte: int = 30


@register_policy
class WeeklyPuts(OptionsBot):
    """Sell a cash-secured put every week and hold it to expiry."""

    name: ClassVar[str] = "weekly_puts"
    template: ClassVar[str] = "cash_secured_put"
    delta: float = 0.30
    dte: int = 7


@register_policy
class IronCondors(OptionsBot):
    """Sell a 45-day iron condor; take profit at a fraction of the credit, or exit at ``exit_dte``.

    :param take_profit: close once the P/L reaches this fraction of the credit received.
    :param exit_dte: close when this many days or fewer are left.
    """

    name: ClassVar[str] = "iron_condors"
    template: ClassVar[str] = "iron_condor"
    delta: float = 0.15
    dte: int = 45
    take_profit: float = 0.5
    exit_dte: int = 21

    def exit(self, info: dict[str, Any]) -> bool:
        position = info["position"]
        credit = -position["entry_cost"]
        profit_taken = credit > 0 and position["pnl"] >= self.take_profit * credit
        return bool(profit_taken or position["dte"] <= self.exit_dte)


@register_policy
class IVTiming(OptionsBot):
    """Sell premium when implied vol is rich (high IV rank) and buy it when cheap; hold until ``exit_dte``.

    :param high_rank: IV rank at or above which premium is sold (``sell_template``).
    :param low_rank: IV rank at or below which premium is bought (``buy_template``).
    :param sell_template: template for selling premium.
    :param buy_template: template for buying premium.
    :param exit_dte: close when this many days or fewer are left.
    """

    name: ClassVar[str] = "iv_timing"
    delta: float = 0.15
    dte: int = 45
    high_rank: float = 0.6
    low_rank: float = 0.2
    sell_template: str = "iron_condor"
    buy_template: str = "long_straddle"
    exit_dte: int = 14

    def validate(self) -> None:
        super().validate()
        if not 0.0 <= self.low_rank < self.high_rank <= 1.0:
            raise ValueError(f"iv_timing needs 0 <= low_rank < high_rank <= 1, got {self.low_rank}, {self.high_rank}")

    def entry(self, info: dict[str, Any], layout: ActionLayout) -> int:
        rank = info["iv_rank"]
        if not np.isfinite(rank):
            return layout.HOLD
        if rank >= self.high_rank:
            return layout.encode(self.sell_template, self.delta, self.dte)
        if rank <= self.low_rank:
            return layout.encode(self.buy_template, self.delta, self.dte)
        return layout.HOLD

    def exit(self, info: dict[str, Any]) -> bool:
        return bool(info["position"]["dte"] <= self.exit_dte)


OPTIONS_BOTS: dict[str, type[OptionsBot]] = {
    bot.name: bot for bot in (CoveredCalls, WeeklyPuts, IronCondors, IVTiming)
}
"""The options bots by name."""
