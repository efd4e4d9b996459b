"""A batched vector env: N trading episodes stepped at once in numpy, plus an SB3 ``VecEnv`` adapter.

Training throughput comes from here. Every account is a row of ``(N,)`` / ``(N, S)`` arrays and one call
of :func:`envs.execution.rebalance` fills them all, with the same arithmetic as the single envs, so a
one-env batch reproduces :class:`~envs.stock_env.StocksEnv` or :class:`~envs.portfolio_env.PortfolioEnv`
exactly (a test checks it). Finished episodes reset in the same step (``AutoresetMode.SAME_STEP``); the
last observation is in ``info["final_obs"]``, which is also what SB3 expects.
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvObs, VecEnvStepReturn

from envs.execution import rebalance, update_cost_basis
from envs.market_data import CLOSE, HIGH, LOW
from envs.portfolio_env import PortfolioEnv
from envs.stock_env import StocksEnv
from envs.trading_env import OBS_BOUND

WIPED_OUT_REWARD = -20.0


class TradingVectorEnv(VectorEnv):
    """``num_envs`` copies of ``Stocks-v0`` or ``Portfolio-v0`` on the same data, stepped together.

    Takes the single env's arguments (``data``, ``window_size``, ``action_mode``, ``reward``,
    ``episode_length``, ``execution``, ...) and builds one of them as a template, so data loading,
    features, spaces and validation are shared with the single env. With ``episode_length`` every copy
    starts at its own random bar; without it every copy makes a full pass. The risk layer is not
    supported here: it belongs to backtests, which use the single envs.

    :param num_envs: number of parallel episodes.
    :param kind: ``"stocks"`` or ``"portfolio"``.
    :param env_kwargs: arguments of the single env.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 8, kind: str = "stocks", **env_kwargs: Any) -> None:
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if env_kwargs.get("risk") is not None:
            raise ValueError("the vector env does not run the risk layer; use the single env for backtests")
        if kind not in ("stocks", "portfolio"):
            raise ValueError(f"kind must be 'stocks' or 'portfolio', got {kind!r}")
        template_cls = StocksEnv if kind == "stocks" else PortfolioEnv
        self.template = template_cls(**env_kwargs)
        t = self.template
        self.kind = kind
        self.num_envs = int(num_envs)
        self.single_observation_space = t.observation_space
        self.single_action_space = t.action_space
        self.observation_space = batch_space(t.observation_space, self.num_envs)
        self.action_space = batch_space(t.action_space, self.num_envs)
        self.execution = t.execution
        self.adapter = t.adapter
        self._values = t.data.values
        self._n_window = t._n_window
        self._fill_field = t.execution.fill_field
        self._reward = t.reward_fn
        self._log_reward = t._log_reward
        n, s = self.num_envs, t.data.n_symbols
        self._cash = np.full(n, t.initial_cash)
        self._shares = np.zeros((n, s))
        self._avg_cost = np.full((n, s), np.nan)
        self._target = np.zeros((n, s))
        self._equity = np.full(n, t.initial_cash)
        self._peak = self._equity.copy()
        self._t = np.full(n, t.first_t)
        self._start = self._t.copy()
        self._end = np.full(n, t.last_t)

    # ------------------------------------------------------------------ episodes
    def _reset_rows(self, rows: np.ndarray) -> None:
        t = self.template
        k = int(rows.sum()) if rows.dtype == bool else len(rows)
        if t.episode_length is None:
            starts = np.full(k, t.first_t)
        else:
            starts = self.np_random.integers(t.first_t, t.last_t - t.episode_length + 1, size=k)
        self._t[rows] = starts
        self._start[rows] = starts
        self._end[rows] = t.last_t if t.episode_length is None else starts + t.episode_length
        self._cash[rows] = t.initial_cash
        self._shares[rows] = 0.0
        self._avg_cost[rows] = np.nan
        self._target[rows] = 0.0
        self._equity[rows] = t.initial_cash
        self._peak[rows] = t.initial_cash

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if isinstance(seed, list):
            seed = seed[0]
        if seed is not None or self._np_random is None:
            self._np_random, self._np_random_seed = gym.utils.seeding.np_random(seed)
        all_rows = np.ones(self.num_envs, dtype=bool)
        self._reset_rows(all_rows)
        self._reward.reset(self._equity)
        return self._observations(), self._infos()

    # ------------------------------------------------------------------ step
    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        target = self.adapter.to_weights_batch(actions)
        if target.shape[0] != self.num_envs:
            raise ValueError(f"expected {self.num_envs} actions, got {target.shape[0]}")
        t1 = self._t + 1
        bar = self._values[t1]
        active = (target != self._target) & (
            (np.abs(target - self._target) > self.execution.min_weight_change) | (target == 0.0)
        )
        if active.any():
            result = rebalance(
                self._cash,
                self._shares,
                target,
                bar[:, :, self._fill_field],
                bar[:, :, LOW],
                bar[:, :, HIGH],
                self.execution,
                active,
            )
            self._avg_cost, _ = update_cost_basis(
                self._shares, self._avg_cost, result.traded, result.fill_price
            )
            self._cash, self._shares = result.cash, result.shares
            self._target = np.where(active, target, self._target)
        close = bar[:, :, CLOSE]
        if self.execution.borrow_rate:
            self._cash -= self.execution.borrow_per_bar * (np.maximum(-self._shares, 0.0) * close).sum(axis=1)
        prev = self._equity
        self._equity = self._cash + (self._shares * close).sum(axis=1)
        np.maximum(self._peak, self._equity, out=self._peak)
        self._t = t1
        terminated = self._equity <= 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            rewards = self._reward(prev, self._equity)
        if terminated.any():
            rewards = np.where(terminated, WIPED_OUT_REWARD, rewards)
        truncated = (t1 >= self._end) & ~terminated
        obs = self._observations()
        infos = self._infos()
        done = terminated | truncated
        if done.any():
            final_obs = np.empty(self.num_envs, dtype=object)
            for i in np.flatnonzero(done):
                final_obs[i] = obs[i].copy()
            infos["final_obs"] = final_obs
            infos["_final_obs"] = done
            infos["final_info"] = {"equity": self._equity.copy(), "_equity": done}
            infos["_final_info"] = done
            self._reset_rows(done)
            self._reward.reset(self._equity, done)
            obs[done] = self._observations()[done]
        return obs, rewards.astype(np.float64), terminated, truncated, infos

    # ------------------------------------------------------------------ observation and info
    def _observations(self) -> np.ndarray:
        obs = self.template._window_rows(self._t)
        if obs.base is not None:
            obs = obs.copy()
        close = self._values[self._t, :, CLOSE]
        weights = self._shares * close / self._equity[:, None]
        drawdown = 1.0 - self._equity / self._peak
        if self.kind == "stocks":
            avg = self._avg_cost[:, 0]
            price = close[:, 0]
            shares = self._shares[:, 0]
            with np.errstate(divide="ignore", invalid="ignore"):
                unrealised = np.where(
                    shares > 0, price / avg - 1.0, np.where(shares < 0, 1.0 - price / avg, 0.0)
                )
            state = (weights[:, 0], unrealised, drawdown)
        else:
            state = (*weights.T, 1.0 - weights.sum(axis=1), drawdown)
        obs[:, self._n_window :] = np.clip(np.stack(state, axis=1), -OBS_BOUND, OBS_BOUND)
        return obs

    def _infos(self) -> dict[str, Any]:
        return {"equity": self._equity.copy(), "cash": self._cash.copy(), "t": self._t.copy()}

    def close_extras(self, **kwargs: Any) -> None:
        self.template.close()


def make_stocks_vector_env(num_envs: int = 8, **kwargs: Any) -> TradingVectorEnv:
    """Vector entry point of ``AlpacaGym/Stocks-v0`` (``gymnasium.make_vec``)."""
    return TradingVectorEnv(num_envs, kind="stocks", **kwargs)


def make_portfolio_vector_env(num_envs: int = 8, **kwargs: Any) -> TradingVectorEnv:
    """Vector entry point of ``AlpacaGym/Portfolio-v0`` (``gymnasium.make_vec``)."""
    return TradingVectorEnv(num_envs, kind="portfolio", **kwargs)


class SB3VecEnv(VecEnv):
    """Stable-baselines3 ``VecEnv`` view of a :class:`TradingVectorEnv` (no subprocesses, no copies).

    :param env: the batched env.
    """

    def __init__(self, env: TradingVectorEnv) -> None:
        self.env = env
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
        self._actions: np.ndarray | None = None
        self._seed: int | None = None

    def reset(self) -> VecEnvObs:
        obs, _ = self.env.reset(seed=self._seed)
        self._seed = None
        return obs

    def seed(self, seed: int | None = None) -> Sequence[None | int]:
        self._seed = seed
        return [seed] * self.num_envs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, terminated, truncated, info = self.env.step(self._actions)
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{"equity": float(e)} for e in info["equity"]]
        if dones.any():
            for i in np.flatnonzero(dones):
                infos[i]["terminal_observation"] = info["final_obs"][i]
                infos[i]["TimeLimit.truncated"] = bool(truncated[i])
                infos[i]["episode_final_equity"] = float(info["final_info"]["equity"][i])
        return obs, rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self.env.template, attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.env.template, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[Any]:
        result = getattr(self.env.template, method_name)(*args, **kwargs)
        return [result] * len(self._indices(indices))

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._indices(indices))

    def _indices(self, indices: Any) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        return [indices] if isinstance(indices, int) else list(indices)
