"""The base of every stock rule bot: a causal vectorised rule, then position sizing.

A bot is a small class whose parameters are typed class attributes and whose rule is one method,
:meth:`SignalBot.signal`, mapping bars (``.open``, ``.high``, ``.low``, ``.close``, ``.volume`` arrays of
shape ``(T, S)``) to a signal in ``[-1, 1]`` per bar and symbol: the direction and conviction wanted
after that bar closes. Sizing (``sizing``, ``fraction``) turns it into target weights of equity.

``act(obs, info)`` applies the rule to ``info["history"]`` (bars up to now) and returns the last row;
``act_batch(data)`` applies it once to a whole :class:`~envs.data.market_data.MarketData`. Because the rule is
causal, both give the same weights at every bar (``tests/test_bots.py`` checks it for every bot), and
the backtest can take the fast path. The env must use ``action_mode="weights"``.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

import numpy as np

from agents.params import Parameterised
from envs.sim.sizing import Sizer, on_calendar, sizer_of


class Bars(Protocol):
    """What a rule reads: an :class:`envs.data.history.History` or a :class:`envs.data.market_data.MarketData`."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    symbols: tuple[str, ...]
    periods_per_year: float


class SignalBot(Parameterised):
    """Base class; subclasses set ``name``, declare parameters and implement :meth:`signal`.

    :param allow_short: act on bearish signals by going short; otherwise they mean flat.
    :param sizing: ``"fixed"`` (weight = signal x fraction), ``"volatility"`` (target each position's
        volatility) or ``"kelly"`` (capped fractional Kelly); see :mod:`envs.sim.sizing`.
    :param fraction: the fixed weight, or the weight cap for the volatility and Kelly sizers.
    :param target_vol: annualised volatility per position for ``sizing="volatility"``.
    :param sizing_lookback: bars used by the volatility and Kelly estimates.
    """

    allow_short: bool = False
    sizing: Literal["fixed", "volatility", "kelly"] = "fixed"
    fraction: float = 0.1
    target_vol: float = 0.15
    sizing_lookback: int = 20

    def validate(self) -> None:
        """Build the sizer once, which also checks the sizing parameters."""
        self._sizer: Sizer = sizer_of(self.sizing, self.fraction, self.target_vol, self.sizing_lookback)

    def signal(self, bars: Bars) -> np.ndarray:
        """The rule: ``(T, S)`` signal in ``[-1, 1]``, row ``t`` from bars ``<= t`` only."""
        raise NotImplementedError(f"{type(self).__name__} must implement signal(bars)")

    def target_weights(self, bars: Bars) -> np.ndarray:
        """Sized target weights ``(T, S)`` in ``[-1, 1]`` for every bar of ``bars``.

        :param bars: history or market data.
        """
        signal = self.signal(bars)
        if not self.allow_short:
            signal = np.maximum(signal, 0.0)
        sizer = on_calendar(self._sizer, bars.periods_per_year)
        return np.clip(sizer(signal, bars.close), -1.0, 1.0)

    def reset(self, seed: int | None = None) -> None:
        """Rule bots are deterministic and keep no episode state."""

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """Target weights ``(S,)`` after the bar that just closed.

        :param obs: the env observation (unused: rules read the raw history).
        :param info: the env info; ``info["history"]`` holds the bars up to now.
        """
        return self.target_weights(info["history"])[-1]

    def act_batch(self, data: Bars) -> np.ndarray:
        """Target weights ``(T, S)`` for every bar of ``data``, equal to stepping :meth:`act`.

        :param data: a :class:`~envs.data.market_data.MarketData`.
        """
        return self.target_weights(data)
