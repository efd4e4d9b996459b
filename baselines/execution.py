"""Closed-form execution schedules for ``Execution-v0``: Almgren-Chriss and TWAP.

Almgren and Chriss (2000) minimise ``E[cost] + lambda Var[cost]`` over static schedules; with linear
impact the optimal holdings are ``x_j = X sinh(kappa (T - t_j)) / sinh(kappa T)``, where
``(2 / tau^2) (cosh(kappa tau) - 1) = lambda sigma^2 / (eta - gamma tau / 2)``. With ``lambda = 0`` it is
TWAP (equal trades). The schedule does not react to prices, and in this linear model no adaptive policy
does better on the env's objective, which is ``-(E[cost] + lambda Var[cost])`` in basis points.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from agents.params import Parameterised
from agents.registry import register_policy
from envs.environments.optimal_execution import ENV_ID, fraction_to_action
from envs.sim.impact import ImpactConfig


def almgren_chriss_holdings(impact: ImpactConfig, risk_aversion: float | None = None) -> np.ndarray:
    """Shares held (left to trade) at ``t_0..t_N``, from ``X`` down to 0.

    :param impact: the problem.
    :param risk_aversion: ``lambda``; ``None`` uses ``impact.risk_aversion``.
    """
    lam = impact.risk_aversion if risk_aversion is None else risk_aversion
    n, tau = impact.n_steps, impact.tau
    k_tilde2 = lam * impact.sigma ** 2 / impact.eta_tilde
    t = np.arange(n + 1) * tau
    if k_tilde2 <= 0:
        return impact.shares * (1.0 - t / impact.horizon)
    kappa = math.acosh(1.0 + 0.5 * k_tilde2 * tau ** 2) / tau
    return impact.shares * np.sinh(kappa * (impact.horizon - t)) / math.sinh(kappa * impact.horizon)


def almgren_chriss_trades(impact: ImpactConfig, risk_aversion: float | None = None) -> np.ndarray:
    """Shares traded in each of the ``N`` steps.

    :param impact: the problem.
    :param risk_aversion: ``lambda``; ``None`` uses ``impact.risk_aversion``.
    """
    return -np.diff(almgren_chriss_holdings(impact, risk_aversion))


def expected_reward(impact: ImpactConfig, trades: np.ndarray) -> float:
    """The env's expected episode reward (bps of ``X S_0``) of a static schedule, in closed form:
    ``-(E[cost] + lambda Var[cost])``.

    :param impact: the problem.
    :param trades: shares per step.
    """
    cost = impact.expected_cost(trades) + impact.risk_aversion * impact.cost_variance(trades)
    return -1e4 * cost / impact.notional


class _Schedule(Parameterised):
    """Base: a static schedule of fractions of the shares left, read by step from ``info``."""

    env_id: ClassVar[str] = ENV_ID

    def holdings(self, impact: ImpactConfig) -> np.ndarray:
        """Shares left at ``t_0..t_N``.

        :param impact: the problem.
        """
        raise NotImplementedError

    def fractions(self, impact: ImpactConfig) -> np.ndarray:
        """The fraction of the shares left that each step trades.

        :param impact: the problem.
        """
        x = self.holdings(impact)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(x[:-1] > 0, (x[:-1] - x[1:]) / x[:-1], 1.0)

    def reset(self, seed: int | None = None) -> None:
        """Schedules keep no episode state."""

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """The action trading this step's fraction.

        :param obs: the observation (unused).
        :param info: the env's info (``impact``, ``t``), of the single env or of the vector env (a batch).
        """
        impact = info.get("impact")
        if impact is None:
            raise ValueError(f"execution policies act in {ENV_ID}, whose info carries the impact model")
        fraction = self.fractions(impact)[np.minimum(np.asarray(info["t"]), impact.n_steps - 1)]
        # One action (1,) for the single env, (n, 1) for a batch whose info["t"] is an array.
        return fraction_to_action(fraction).reshape(np.shape(fraction) + (1,))


@register_policy
class AlmgrenChriss(_Schedule):
    """The Almgren-Chriss optimal static schedule.

    :param risk_aversion: ``lambda``; negative uses the env's own (the objective it rewards).
    """

    name: ClassVar[str] = "almgren_chriss"
    risk_aversion: float = -1.0

    def holdings(self, impact: ImpactConfig) -> np.ndarray:
        return almgren_chriss_holdings(impact, None if self.risk_aversion < 0 else self.risk_aversion)


@register_policy
class TWAP(_Schedule):
    """Time-weighted average price: equal trades in every step."""

    name: ClassVar[str] = "twap"

    def holdings(self, impact: ImpactConfig) -> np.ndarray:
        return almgren_chriss_holdings(impact, 0.0)
