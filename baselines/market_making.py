"""Closed-form market makers for ``MarketMaking-v0``: Avellaneda-Stoikov, Guéant-Lehalle-Fernandez-Tapia
(GLFT) and a fixed-spread quoter, with the closed-form values they are checked against.

The env's objective is the Avellaneda-Stoikov market (Brownian mid, Poisson market orders at rate ``A``
per side, fills with probability ``exp(-kappa delta)``) with the Cartea-Jaimungal inventory penalties:
maximise ``E[P/L - phi int q^2 dt - alpha q_T^2]``. Writing the value as ``x + q S + h(t, q)`` and
``h = (u / kappa) log omega`` (``u`` the lot) turns the HJB equation into the linear system
``omega' + M omega = 0``, ``M[q, q] = -phi kappa u q^2``, ``M[q, q +- 1] = A / e``,
``omega(T, q) = exp(-alpha kappa u q^2)``, so ``omega(t) = expm(M (T - t)) omega(T)`` (Cartea, Jaimungal
and Penalva 2015, section 10.2; Guéant, Lehalle and Fernandez-Tapia 2013). The optimal quotes are
``delta_ask = 1/kappa + (h(q) - h(q - 1)) / u`` and ``delta_bid = 1/kappa + (h(q) - h(q + 1)) / u``
and the optimal expected reward of an episode started flat is ``h(0, 0)``.

Any other feedback policy ``delta(t, q)`` held over each step has its value from the Kolmogorov backward
equation, also linear: :func:`policy_value` integrates it exactly, one matrix exponential per step.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Callable, ClassVar, Literal

import numpy as np
from scipy.linalg import expm

from agents.params import Parameterised
from agents.registry import register_policy
from envs.environments.market_making import ENV_ID
from envs.sim.lob import BookConfig, offsets_to_action


def _grid(book: BookConfig) -> np.ndarray:
    return np.arange(-book.max_inventory, book.max_inventory + 1, dtype=float)


@lru_cache(maxsize=32)
def optimal_value_table(book: BookConfig, running_penalty: float, terminal_penalty: float) -> np.ndarray:
    """``h(t_k, q)`` for every step ``k = 0..n_steps`` (rows) and inventory ``q = -Q..Q`` lots (columns).

    :param book: the market (``arrival_rate``, ``fill_decay``, ``lot``, ``max_inventory``, ``horizon``).
    :param running_penalty: ``phi``.
    :param terminal_penalty: ``alpha``.
    """
    q = _grid(book)
    u, kappa = book.lot, book.fill_decay
    rate = book.arrival_rate / math.e
    m = np.diag(-running_penalty * kappa * u * q ** 2)
    m += np.diag(np.full(q.size - 1, rate), 1) + np.diag(np.full(q.size - 1, rate), -1)
    step = expm(m * book.dt)
    omega = np.exp(-terminal_penalty * kappa * u * q ** 2)
    table = np.empty((book.n_steps + 1, q.size))
    table[-1] = omega
    for k in range(book.n_steps - 1, -1, -1):
        omega = step @ omega
        table[k] = omega
    with np.errstate(divide="ignore"):
        return u / kappa * np.log(table)


def optimal_value(book: BookConfig, running_penalty: float, terminal_penalty: float) -> float:
    """The closed-form optimal expected episode reward from a flat start, ``h(0, 0)``.

    :param book: the market.
    :param running_penalty: ``phi``.
    :param terminal_penalty: ``alpha``.
    """
    return float(optimal_value_table(book, running_penalty, terminal_penalty)[0, book.max_inventory])


def optimal_quotes(
    book: BookConfig, running_penalty: float, terminal_penalty: float, step: np.ndarray | int, inventory: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Optimal bid and ask distances at ``step`` for ``inventory`` lots (arrays broadcast together).

    :param book: the market.
    :param running_penalty: ``phi``.
    :param terminal_penalty: ``alpha``.
    :param step: step index (the quote holds until the next step).
    :param inventory: inventory in lots, within ``+-max_inventory``.
    """
    h = optimal_value_table(book, running_penalty, terminal_penalty)
    big_q = book.max_inventory
    k = np.clip(np.asarray(step), 0, book.n_steps - 1)
    j = np.clip(np.asarray(inventory, dtype=np.int64) + big_q, 0, 2 * big_q)
    here = h[k, j]
    up = h[k, np.minimum(j + 1, 2 * big_q)]
    down = h[k, np.maximum(j - 1, 0)]
    base = 1.0 / book.fill_decay
    bid = np.where(j < 2 * big_q, base + (here - up) / book.lot, np.inf)
    ask = np.where(j > 0, base + (here - down) / book.lot, np.inf)
    return bid, ask


def policy_value(
    book: BookConfig, running_penalty: float, terminal_penalty: float,
    quotes: Callable[[int, np.ndarray], tuple[np.ndarray, np.ndarray]],
) -> float:
    """Exact expected episode reward, from a flat start, of quotes held over each step.

    Solves the Kolmogorov backward equation of the continuous-time model for the policy
    ``quotes(step, q) -> (bid distances, ask distances)`` over the inventory grid, one matrix exponential
    per step (one in all when the quotes do not depend on the step).

    :param book: the market.
    :param running_penalty: ``phi``.
    :param terminal_penalty: ``alpha``.
    :param quotes: the policy; an infinite distance means no quote on that side.
    """
    q = _grid(book)
    u, kappa, rate = book.lot, book.fill_decay, book.arrival_rate
    n = q.size
    value = -terminal_penalty * (u * q) ** 2
    cache: dict[bytes, np.ndarray] = {}
    for k in range(book.n_steps - 1, -1, -1):
        bid, ask = (np.broadcast_to(np.asarray(x, float), q.shape) for x in quotes(k, q))
        key = bid.tobytes() + ask.tobytes()
        if key not in cache:
            with np.errstate(over="ignore"):
                lam_bid = np.where(np.isfinite(bid) & (q < book.max_inventory), rate * np.exp(-kappa * bid), 0.0)
                lam_ask = np.where(np.isfinite(ask) & (q > -book.max_inventory), rate * np.exp(-kappa * ask), 0.0)
            gain = -running_penalty * (u * q) ** 2
            gain += np.where(lam_bid > 0, lam_bid * u * np.where(np.isfinite(bid), bid, 0.0), 0.0)
            gain += np.where(lam_ask > 0, lam_ask * u * np.where(np.isfinite(ask), ask, 0.0), 0.0)
            generator = np.zeros((n + 1, n + 1))
            idx = np.arange(n)
            generator[idx[:-1], idx[:-1] + 1] = lam_bid[:-1]
            generator[idx[1:], idx[1:] - 1] = lam_ask[1:]
            generator[idx, idx] = -(lam_bid + lam_ask)
            generator[:n, n] = gain
            cache[key] = expm(generator * book.dt)
        value = (cache[key] @ np.append(value, 1.0))[:n]
    return float(value[book.max_inventory])


def _market(info: dict[str, Any]) -> tuple[BookConfig, float, float]:
    try:
        return info["book"], info["running_penalty"], info["terminal_penalty"]
    except KeyError:
        raise ValueError(f"market-making policies act in {ENV_ID}, whose info carries the book") from None


class _Quoter(Parameterised):
    """Base: a rule mapping the step and the inventory to bid and ask distances."""

    env_id: ClassVar[str] = ENV_ID

    def quotes(
        self, book: BookConfig, running_penalty: float, terminal_penalty: float, step: Any, inventory: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """Bid and ask distances from the mid for ``inventory`` lots at ``step`` (arrays broadcast).

        :param book: the market.
        :param running_penalty: the env's ``phi``.
        :param terminal_penalty: the env's ``alpha``.
        :param step: the step index.
        :param inventory: inventory in lots.
        """
        raise NotImplementedError

    def reset(self, seed: int | None = None) -> None:
        """Closed-form quoters keep no episode state."""

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """The action quoting this rule's distances.

        :param obs: the observation (unused: the rule reads the inventory and step from ``info``).
        :param info: the env's info (``book``, penalties, ``t``, ``inventory``, ``max_offset``), of the
            single env or of the vector env (then the action is a batch).
        """
        book, phi, alpha = _market(info)
        bid, ask = self.quotes(book, phi, alpha, info["t"], info["inventory"])
        return offsets_to_action(bid, ask, info["max_offset"])


@register_policy
class AvellanedaStoikov(_Quoter):
    """Avellaneda-Stoikov quotes.

    ``solution="exact"`` (default): the optimal quotes of the env's objective in closed form (see the
    module: the AS market with the running and terminal inventory penalties). ``"approximate"``: the
    original paper's formulas for an exponential-utility market maker of risk aversion ``gamma``:
    reservation price ``S - q gamma sigma^2 (T - t)`` and spread ``gamma sigma^2 (T - t) +
    (2 / gamma) ln(1 + gamma / kappa)`` around it.

    :param solution: ``exact`` or ``approximate``.
    :param gamma: risk aversion of the ``approximate`` formulas.
    """

    name: ClassVar[str] = "avellaneda_stoikov"
    solution: Literal["exact", "approximate"] = "exact"
    gamma: float = 0.1

    def validate(self) -> None:
        if not self.gamma > 0:
            raise ValueError(f"avellaneda_stoikov.gamma must be > 0, got {self.gamma}")

    def quotes(self, book, running_penalty, terminal_penalty, step, inventory):  # noqa: D102 (see _Quoter)
        if self.solution == "exact":
            return optimal_quotes(book, running_penalty, terminal_penalty, step, inventory)
        q = np.asarray(inventory, float) * book.lot
        left = book.horizon - np.asarray(step) * book.dt
        g = self.gamma
        half = 0.5 * g * book.sigma ** 2 * left + math.log1p(g / book.fill_decay) / g
        skew = q * g * book.sigma ** 2 * left
        return half + skew, half - skew


def glft_quotes(book: BookConfig, running_penalty: float, inventory: Any, gamma: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The GLFT (2013) asymptotic quotes ``delta_bid/ask = c0 +- (2q +- 1)/2 c1``.

    With risk aversion ``gamma``: ``c0 = ln(1 + gamma/kappa) / gamma`` and ``c1 = sqrt(sigma^2 gamma /
    (2 kappa A) (1 + gamma/kappa)^(1 + kappa/gamma))``. With ``gamma=None``, their limit for the
    risk-neutral market maker with running penalty ``phi = gamma sigma^2 / 2``: ``c0 = 1 / kappa`` and
    ``c1 = sqrt(phi e / (kappa A))``.

    :param book: the market.
    :param running_penalty: ``phi`` (used when ``gamma`` is None).
    :param inventory: inventory in lots.
    :param gamma: exponential-utility risk aversion, or None.
    """
    kappa, a = book.fill_decay, book.arrival_rate
    if gamma is None:
        c0 = 1.0 / kappa
        c1 = math.sqrt(running_penalty * math.e / (kappa * a))
    else:
        c0 = math.log1p(gamma / kappa) / gamma
        c1 = math.sqrt(book.sigma ** 2 * gamma / (2 * kappa * a) * (1 + gamma / kappa) ** (1 + kappa / gamma))
    q = np.asarray(inventory, float) * book.lot
    # The formulas are per unit of inventory; a lot of u units moves q by u.
    return c0 + (2 * q + book.lot) / 2 * c1, c0 - (2 * q - book.lot) / 2 * c1


@register_policy
class GLFT(_Quoter):
    """Guéant-Lehalle-Fernandez-Tapia closed-form approximate quotes: time-independent, linear in the
    inventory, accurate far from the horizon (the ergodic regime).

    :param gamma: exponential-utility risk aversion; 0 uses the risk-neutral limit with the env's
        running penalty (``phi = gamma sigma^2 / 2``), the env's own objective.
    """

    name: ClassVar[str] = "glft"
    gamma: float = 0.0

    def validate(self) -> None:
        if not self.gamma >= 0:
            raise ValueError(f"glft.gamma must be >= 0, got {self.gamma}")

    def quotes(self, book, running_penalty, terminal_penalty, step, inventory):  # noqa: D102 (see _Quoter)
        return glft_quotes(book, running_penalty, inventory, self.gamma or None)


@register_policy
class FixedSpread(_Quoter):
    """Quote a fixed distance on both sides whatever the inventory.

    :param half_spread: distance from the mid; 0 uses ``1 / kappa``, the best fixed quote of a
        market maker without inventory penalty.
    """

    name: ClassVar[str] = "fixed_spread"
    half_spread: float = 0.0

    def validate(self) -> None:
        if not self.half_spread >= 0:
            raise ValueError(f"fixed_spread.half_spread must be >= 0, got {self.half_spread}")

    def quotes(self, book, running_penalty, terminal_penalty, step, inventory):  # noqa: D102 (see _Quoter)
        half = self.half_spread or 1.0 / book.fill_decay
        shape = np.broadcast(np.asarray(step), np.asarray(inventory)).shape
        return np.full(shape, half), np.full(shape, half)
