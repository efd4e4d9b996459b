"""``AlpacaGym/Execution-v0``: liquidate (or acquire) a block under temporary and permanent impact.

The single env and the vector env step through the same :class:`~envs.sim.impact.ImpactSim`.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.sim.actions import InvalidActionError
from envs.sim.impact import ImpactConfig, ImpactSim
from envs.sim.portfolio import Fill

ENV_ID = "AlpacaGym/Execution-v0"
BPS = 1e4
N_OBS = 4
OBS_CLIP = 10.0
ACTION_TOLERANCE = 1e-6
SESSION = pd.Timedelta(days=1)
DEFAULT_START = pd.Timestamp("2024-01-02 14:30", tz="UTC")


def _observe(sim: ImpactSim, out: np.ndarray, rows: np.ndarray | slice = slice(None)) -> None:
    """Rows of the observation: shares left, time left, price change since the start, last move."""
    c = sim.config
    out[rows, 0] = sim.left[rows] / c.shares
    out[rows, 1] = 1.0 - sim.k[rows] / c.n_steps
    scale = c.sigma * math.sqrt(c.horizon) if c.sigma > 0 else 1.0
    out[rows, 2] = (sim.price[rows] - c.s0) / scale
    out[rows, 3] = sim.last_return[rows] / (scale / math.sqrt(c.n_steps))
    out[rows] = np.clip(out[rows], -OBS_CLIP, OBS_CLIP)


def _check(actions: np.ndarray, what: Any, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(actions)
    if arr.shape != shape or arr.dtype.kind not in "fiu":
        raise _invalid(what)
    arr = arr.astype(np.float64).reshape(-1)
    if not np.all((arr >= -1.0 - ACTION_TOLERANCE) & (arr <= 1.0 + ACTION_TOLERANCE)):  # NaN fails too
        raise _invalid(what)
    return np.clip(0.5 * (arr + 1.0), 0.0, 1.0)


def fraction_to_action(fraction: Any) -> np.ndarray:
    """The ``[-1, 1]`` action trading ``fraction`` (in ``[0, 1]``) of the shares left.

    :param fraction: scalar or array.
    """
    return np.clip(2.0 * np.atleast_1d(np.asarray(fraction, dtype=float)) - 1.0, -1.0, 1.0).astype(np.float32)


def _invalid(action: Any) -> InvalidActionError:
    return InvalidActionError(
        f"invalid action {action!r} for {ENV_ID}: expected one finite value in [-1, 1], the fraction of the "
        "shares left to trade now mapped onto [0, 1]"
    )


class ExecutionEnv(gym.Env):
    """Work a large order: sell (or buy) ``shares`` within ``n_steps`` trades under market impact.

    ## Description
    The Almgren-Chriss (2000) model (:mod:`envs.sim.impact`): each trade fills at the current price less
    a temporary impact ``epsilon + eta x rate`` (plus it, for a purchase), then the price moves by
    ``sigma sqrt(tau) Z`` and a permanent impact ``gamma`` per share traded. The last step trades
    whatever is left. The defaults are the paper's example: 1,000,000 shares at 50 over 5 days, here in
    20 trades, risk aversion ``lambda = 1e-6``.

    ## Action Space
    ``Box(-1, 1, (1,))``: the fraction of the shares left to trade in this step, mapped linearly from
    ``[-1, 1]`` onto ``[0, 1]`` (:func:`fraction_to_action` converts; TWAP trades ``1 / (N - k)`` at step
    ``k``). Anything outside the box or NaN raises :class:`~envs.sim.actions.InvalidActionError`.

    ## Observation Space
    ``Box(-10, 10, (4,), float32)``: shares left over the block, time left as a fraction of the horizon,
    the price's change since the start over ``sigma sqrt(T)``, and the last step's price move over
    ``sigma sqrt(tau)``.

    ## Rewards
    In basis points of the block's initial notional ``X S_0``: the change of cash plus the shares left
    marked at the price (owned for a sale, owed for a purchase), less the risk penalty
    ``lambda sigma^2 tau x_k^2``. The rewards plus the penalties (``info["penalty"]``) sum to minus the
    implementation shortfall, so the expected return is minus Almgren and Chriss's ``E[cost] + lambda
    Var[cost]``, which their trajectory minimises (:mod:`baselines.execution`).

    ## Starting State
    The whole block left, price ``s0``.

    ## Episode End
    Truncated after ``n_steps`` steps, when the block is done; never terminated.

    ## Info
    ``equity`` (``initial_cash`` plus the change in value), ``cash``, ``positions`` (shares held: the
    block less what was sold, or what was bought), ``weights``, ``timestamp`` (a day per time unit),
    ``t``, ``fills``, ``risk_events`` (empty), ``price``, ``shares_left``, ``shortfall`` (implementation
    shortfall so far, price units), ``penalty`` (bps) and ``impact`` (the :class:`ImpactConfig`).

    ## Arguments
    :param impact: the problem: an :class:`~envs.sim.impact.ImpactConfig` or a dict of its fields.
    :param initial_cash: starting cash in ``info``.
    :param symbol: the instrument's name in ``fills``.
    :param start: timestamp of the first step.
    :param render_mode: ``"ansi"``.

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 30}

    def __init__(
        self,
        impact: ImpactConfig | Mapping[str, Any] | None = None,
        initial_cash: float = 100_000.0,
        symbol: str = "BLOCK",
        start: str | pd.Timestamp = DEFAULT_START,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.impact = ImpactConfig.of(impact)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.observation_space = gym.spaces.Box(-OBS_CLIP, OBS_CLIP, shape=(N_OBS,), dtype=np.float32)
        self.initial_cash = float(initial_cash)
        self.symbol = symbol
        self.start = pd.Timestamp(start)
        self.render_mode = render_mode
        self.sim = ImpactSim(self.impact, 1)
        self._obs = np.zeros((1, N_OBS), dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.sim.reset_rows(np.arange(1))
        _observe(self.sim, self._obs)
        return self._obs[0].copy(), self._info((), 0.0)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        fraction = _check(action, action, self.action_space.shape)
        if self.sim.k[0] >= self.impact.n_steps:
            raise RuntimeError(f"{ENV_ID}: the episode has ended; call reset()")
        out = self.sim.step(self.np_random, fraction)
        _observe(self.sim, self._obs)
        scale = BPS / self.impact.notional
        penalty = float(out["risk"][0]) * scale
        reward = float(out["value_change"][0]) * scale - penalty
        fills: tuple[Fill, ...] = ()
        if out["shares"][0] > 0:
            qty = float(out["shares"][0]) * self.sim.sign
            fills = (Fill(self._timestamp(), self.symbol, qty, float(out["price"][0]), 0.0, 0.0, "policy"),)
        truncated = bool(self.sim.k[0] >= self.impact.n_steps)
        return self._obs[0].copy(), reward, False, truncated, self._info(fills, penalty)

    def _timestamp(self) -> pd.Timestamp:
        return self.start + SESSION * (int(self.sim.k[0]) * self.impact.tau)

    def shortfall(self) -> float:
        """Implementation shortfall so far (price units): the value lost against the start."""
        c = self.impact
        start_value = -self.sim.sign * c.shares * c.s0
        return float(start_value - self.sim.value()[0])

    def _info(self, fills: tuple[Fill, ...], penalty: float) -> dict[str, Any]:
        c = self.impact
        sim = self.sim
        held = sim.left[0] if c.side == "sell" else c.shares - sim.left[0]
        cash = self.initial_cash + sim.cash[0]
        equity = cash + held * sim.price[0]
        return {
            "equity": float(equity),
            "cash": float(cash),
            "positions": np.array([held]),
            "weights": np.array([held * sim.price[0] / equity]),
            "timestamp": self._timestamp(),
            "t": int(sim.k[0]),
            "fills": fills,
            "risk_events": (),
            "price": float(sim.price[0]),
            "shares_left": float(sim.left[0]),
            "shortfall": self.shortfall(),
            "penalty": penalty,
            "impact": c,
        }

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        return (f"t={int(self.sim.k[0])}/{self.impact.n_steps} price={self.sim.price[0]:.4f} "
                f"left={self.sim.left[0]:,.0f} shortfall={self.shortfall():,.2f}")


class ExecutionVectorEnv(VectorEnv):
    """``num_envs`` episodes of ``Execution-v0`` stepped together in numpy.

    Finished episodes reset in the same step (``AutoresetMode.SAME_STEP``); ``info`` holds
    ``shortfall`` (price units), ``penalty`` and ``t`` (step) per copy and the ``impact`` model (so the
    schedules act on a batch too), and ``final_obs`` / ``final_info`` when copies finish.

    :param num_envs: number of parallel episodes.
    :param impact: the problem (see :class:`ExecutionEnv`).
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 8, impact: ImpactConfig | Mapping[str, Any] | None = None) -> None:
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.impact = ImpactConfig.of(impact)
        self.num_envs = int(num_envs)
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.single_observation_space = gym.spaces.Box(-OBS_CLIP, OBS_CLIP, shape=(N_OBS,), dtype=np.float32)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.sim = ImpactSim(self.impact, self.num_envs)

    def _shortfall(self) -> np.ndarray:
        c = self.impact
        return -self.sim.sign * c.shares * c.s0 - self.sim.value()

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if isinstance(seed, list):
            seed = seed[0]
        if seed is not None or self._np_random is None:
            self._np_random, self._np_random_seed = gym.utils.seeding.np_random(seed)
        self.sim.reset_rows(np.arange(self.num_envs))
        obs = np.empty((self.num_envs, N_OBS), dtype=np.float32)
        _observe(self.sim, obs)
        return obs, {"shortfall": self._shortfall(), "t": self.sim.k.copy(), "impact": self.impact}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        fraction = _check(actions, actions, (self.num_envs, 1))
        out = self.sim.step(self.np_random, fraction)
        scale = BPS / self.impact.notional
        penalty = out["risk"] * scale
        rewards = out["value_change"] * scale - penalty
        truncated = self.sim.k >= self.impact.n_steps
        obs = np.empty((self.num_envs, N_OBS), dtype=np.float32)
        _observe(self.sim, obs)
        infos: dict[str, Any] = {"shortfall": self._shortfall(), "penalty": penalty, "impact": self.impact}
        if truncated.any():
            rows = np.flatnonzero(truncated)
            final_obs = np.empty(self.num_envs, dtype=object)
            for i in rows:
                final_obs[i] = obs[i].copy()
            infos["final_obs"] = final_obs
            infos["_final_obs"] = truncated.copy()
            infos["final_info"] = {"shortfall": infos["shortfall"].copy(), "_shortfall": truncated.copy()}
            infos["_final_info"] = truncated.copy()
            self.sim.reset_rows(rows)
            _observe(self.sim, obs, rows)
        infos["t"] = self.sim.k.copy()
        return obs, rewards, np.zeros(self.num_envs, dtype=bool), truncated.copy(), infos


def make_execution_vector_env(num_envs: int = 8, **kwargs: Any) -> ExecutionVectorEnv:
    """Vector entry point of ``AlpacaGym/Execution-v0`` (``gymnasium.make_vec``)."""
    return ExecutionVectorEnv(num_envs, **kwargs)
