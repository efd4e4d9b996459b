"""The Almgren-Chriss (2000) market-impact model of optimal execution, batched over ``N`` episodes.

A block of ``shares`` is sold (or bought) in ``n_steps`` trades over ``horizon`` time units,
``tau = horizon / n_steps``. With ``d_k`` the signed trade of step ``k`` (negative sells):

- the trade fills at ``S_{k-1} + sign(d_k) (epsilon + eta |d_k| / tau)`` (temporary impact: half the
  spread plus a cost linear in the trading rate);
- then the price moves: ``S_k = S_{k-1} + sigma sqrt(tau) Z_k + gamma d_k`` (permanent impact, linear).

The implementation shortfall of a sale is ``X S_0 - sum_k n_k S~_k``; for a static schedule its mean is
``gamma X^2 / 2 + epsilon X + (eta - gamma tau / 2) / tau sum n_k^2`` and its variance
``sigma^2 tau sum x_k^2`` (``x_k`` the shares left after step ``k``), the two terms Almgren and Chriss
trade off with risk aversion ``lambda``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, Mapping

import numpy as np

from envs.sim.execution import ConfigError, config_from


@dataclass(frozen=True)
class ImpactConfig:
    """The execution problem; the defaults are the example of Almgren and Chriss (2000), section 4.

    :param s0: initial price.
    :param shares: block size ``X`` (shares).
    :param side: ``"sell"`` (liquidate) or ``"buy"`` (acquire).
    :param sigma: price volatility, price units per square root of a time unit (0.95 = 30% a year at 50).
    :param horizon: time to complete, time units (days).
    :param n_steps: number of trades.
    :param epsilon: fixed temporary cost per share (half the spread plus fees).
    :param eta: temporary impact per share per (share per time unit) of trading rate.
    :param gamma: permanent impact per share traded.
    :param risk_aversion: ``lambda``: the reward subtracts ``lambda sigma^2 tau x_k^2`` each step.
    """

    s0: float = 50.0
    shares: float = 1e6
    side: Literal["sell", "buy"] = "sell"
    sigma: float = 0.95
    horizon: float = 5.0
    n_steps: int = 20
    epsilon: float = 0.0625
    eta: float = 2.5e-6
    gamma: float = 2.5e-7
    risk_aversion: float = 1e-6

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "side":
                if value not in ("sell", "buy"):
                    raise ConfigError(f"ImpactConfig.side must be 'sell' or 'buy', got {value!r}")
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(value) or value < 0:
                raise ConfigError(f"ImpactConfig.{f.name} must be a finite number >= 0, got {value!r}")
        for name in ("s0", "shares", "horizon"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"ImpactConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if int(self.n_steps) != self.n_steps or self.n_steps < 1:
            raise ConfigError(f"ImpactConfig.n_steps must be a positive integer, got {self.n_steps!r}")
        if self.eta_tilde <= 0:
            raise ConfigError(
                f"ImpactConfig: eta - gamma tau / 2 must be > 0 (got {self.eta_tilde}); lower gamma or raise eta"
            )

    @property
    def tau(self) -> float:
        """Time between trades."""
        return self.horizon / self.n_steps

    @property
    def eta_tilde(self) -> float:
        """``eta - gamma tau / 2``, the temporary impact net of the permanent impact's share of it."""
        return self.eta - 0.5 * self.gamma * self.tau

    @property
    def notional(self) -> float:
        """``X S_0``, the unit of the env's rewards (in basis points of it)."""
        return self.shares * self.s0

    @classmethod
    def of(cls, value: "ImpactConfig | Mapping[str, Any] | None") -> "ImpactConfig":
        """A config from itself, a dict of fields (unknown names rejected by name) or ``None``.

        :param value: the config or its fields.
        """
        return config_from(cls, value, "impact")

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain values."""
        return asdict(self)

    def expected_cost(self, trades: np.ndarray) -> float:
        """Closed-form expected implementation shortfall of a static schedule.

        :param trades: ``(n_steps,)`` shares traded per step (positive), summing to ``shares``.
        """
        n = np.abs(np.asarray(trades, dtype=float))
        return 0.5 * self.gamma * self.shares ** 2 + self.epsilon * n.sum() + self.eta_tilde / self.tau * (n @ n)

    def cost_variance(self, trades: np.ndarray) -> float:
        """Closed-form variance of the implementation shortfall of a static schedule.

        :param trades: ``(n_steps,)`` shares traded per step.
        """
        left = self.shares - np.cumsum(np.abs(np.asarray(trades, dtype=float)))
        return self.sigma ** 2 * self.tau * float(left @ left)


class ImpactSim:
    """``n`` executions of the :class:`ImpactConfig` problem stepped together (numpy).

    :param config: the problem.
    :param n: number of episodes.
    """

    def __init__(self, config: ImpactConfig, n: int = 1) -> None:
        self.config = config
        self.n = int(n)
        self.sign = -1.0 if config.side == "sell" else 1.0
        self.price = np.zeros(self.n)
        self.left = np.zeros(self.n)
        self.cash = np.zeros(self.n)
        self.k = np.zeros(self.n, dtype=np.int64)
        self.last_return = np.zeros(self.n)
        self.reset_rows(np.arange(self.n))

    def reset_rows(self, rows: np.ndarray) -> None:
        """Start new executions in ``rows``: the whole block left, price ``s0``.

        :param rows: episode indices.
        """
        self.price[rows] = self.config.s0
        self.left[rows] = self.config.shares
        self.cash[rows] = 0.0
        self.k[rows] = 0
        self.last_return[rows] = 0.0

    def value(self) -> np.ndarray:
        """Cash plus the shares left to trade marked at the price, with the side's sign (a sale's are
        owned, a purchase's owed): its change over an episode is minus the implementation shortfall
        plus ``X S_0`` for a sale (``-X S_0`` at the start of a purchase)."""
        return self.cash - self.sign * self.left * self.price

    def step(self, rng: np.random.Generator, fraction: np.ndarray) -> dict[str, np.ndarray]:
        """Trade ``fraction`` of the shares left in every episode (all of them at the last step).

        Returns the step's ``shares`` (traded, positive), ``price`` (the fill), ``risk`` (the penalty
        ``lambda sigma^2 tau x_k^2``) and ``value_change``.

        :param rng: the generator of the price noise.
        :param fraction: ``(n,)`` in ``[0, 1]``.
        """
        c = self.config
        z = rng.standard_normal(self.n)
        before = self.value()
        last = self.k + 1 >= c.n_steps
        shares = np.where(last, self.left, fraction * self.left)
        rate = shares / c.tau
        temporary = np.where(shares > 0, c.epsilon + c.eta * rate, 0.0)
        fill = self.price + self.sign * temporary  # a sale fills below the price, a purchase above
        self.cash -= self.sign * shares * fill
        self.left -= shares
        self.left[last] = 0.0
        move = c.sigma * math.sqrt(c.tau) * z + self.sign * c.gamma * shares
        self.price += move
        self.last_return = move
        self.k += 1
        risk = c.risk_aversion * c.sigma ** 2 * c.tau * self.left ** 2
        return {"shares": shares, "price": fill, "risk": risk, "value_change": self.value() - before}
