"""A batched vector env: N trading episodes stepped at once, plus an SB3 ``VecEnv`` adapter.

Training throughput comes from here. Every account is a row of ``(N,)`` / ``(N, S)`` arrays. One symbol
(``Stocks-v0``) steps in one compiled loop (:func:`envs.sim.vector_kernel.step_stocks`) that fills through the
single env's own compiled ``fill_one``; several symbols (``Portfolio-v0``) fill with one call of
:func:`envs.sim.execution.rebalance` in numpy, as ``PortfolioEnv`` does. The risk layer, when given, runs
on every copy through :func:`envs.sim.risk.apply_risk`, the compiled rules ``RiskManager`` runs for the
single envs, the backtest and the live runner (inside the compiled step for one symbol, one call for the
batch for several). Either way a one-env batch reproduces :class:`~envs.environments.stocks.StocksEnv` or
:class:`~envs.environments.portfolio.PortfolioEnv` exactly, risk layer included (tests check it). Finished
episodes reset in the same step (``AutoresetMode.SAME_STEP``); the last observation is in
``info["final_obs"]``, which is also what SB3 expects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.data.market_data import CLOSE, HIGH, LOW
from envs.environments.portfolio import PortfolioEnv
from envs.environments.stocks import StocksEnv
from envs.sim.execution import rebalance, should_trade_batch, update_cost_basis
from envs.sim.risk import HALTED, HALTED_AT, PEAK, RULES, RiskConfig, apply_risk, risk_params
from envs.sim.vector_kernel import (
    AVG_COST,
    CONTINUOUS,
    DISCRETE,
    END,
    MODE,
    TARGETS,
    WEIGHTS,
    WIPED_OUT_REWARD,
    observe_all,
    reset_rows,
    step_stocks,
    stock_step_settings,
)

_KERNEL_MODES = {"discrete": DISCRETE, "weights": WEIGHTS, "continuous": CONTINUOUS}
# Views and argument tuples, rebuilt after unpickling (pickle would copy a view apart from its block).
_BOUND = (
    "_cash", "_equity", "_peak", "_shares", "_avg_cost", "_target", "_t", "_end",
    "_account", "_values", "_observe_args", "_step_args", "_targets_args",
)


class TradingVectorEnv(VectorEnv):
    """``num_envs`` copies of ``Stocks-v0`` or ``Portfolio-v0`` on the same data, stepped together.

    Takes the single env's arguments (``data``, ``window_size``, ``action_mode``, ``reward``,
    ``episode_length``, ``execution``, ...) and builds one of them as a template, so data loading,
    features, spaces and validation are shared with the single env. With ``episode_length`` every copy
    starts at its own random bar; without it every copy makes a full pass. With ``risk`` (a
    :class:`~envs.sim.risk.RiskConfig`) every copy trades through its own risk layer, as the single env
    does; :attr:`risk_counts` counts the interventions per copy and rule since :meth:`reset`.

    ``info`` holds ``equity``, ``cash`` and ``t`` (bar index) per copy; a step where copies finish adds
    ``final_obs`` / ``_final_obs`` and ``final_info`` (their final ``equity``) before they reset.

    :param num_envs: number of parallel episodes.
    :param kind: ``"stocks"`` or ``"portfolio"``.
    :param env_kwargs: arguments of the single env.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 8, kind: str = "stocks", **env_kwargs: Any) -> None:
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        risk = env_kwargs.get("risk")
        if risk is not None and not isinstance(risk, RiskConfig):
            raise ValueError(
                f"the risk layer takes a RiskConfig (or None: no risk layer), got {type(risk).__name__}"
            )
        if kind not in ("stocks", "portfolio"):
            raise ValueError(f"kind must be 'stocks' or 'portfolio', got {kind!r}")
        template_cls = StocksEnv if kind == "stocks" else PortfolioEnv
        self.template = template_cls(**env_kwargs)
        t = self.template
        if t._sizing is not None:
            raise ValueError(
                f"the vector env sizes by a fixed fraction only, got {t.sizing!r}; the single env sizes by any rule"
            )
        self.kind = kind
        self.num_envs = int(num_envs)
        # One generator per copy when reset got per-env seeds; None: the batch's generator draws every start.
        self._row_rngs: list[np.random.Generator] | None = None
        self.single_observation_space = t.observation_space
        self.single_action_space = t.action_space
        self.observation_space = batch_space(t.observation_space, self.num_envs)
        self.action_space = batch_space(t.action_space, self.num_envs)
        self.execution = t.execution
        self.adapter = t.adapter
        self._reward = t.reward_fn
        self._log_reward = t._log_reward
        self._obs_shape = (self.num_envs, t.observation_space.shape[0])
        # What the compiled step takes without asking the adapter: a batch of actions of the space's shape
        # and a numeric kind, as C-contiguous choice indices (int64) or weights (float64).
        self._batch_action_shape = (self.num_envs, *t.action_space.shape)
        self._kernel_mode = _KERNEL_MODES[self.adapter.mode]
        discrete = self.adapter.mode == "discrete"
        # The compiled loop reads weights and continuous actions at full size; a smaller position size goes
        # through the adapter (discrete choices carry it in their weights).
        self._action_kinds = "iub" if discrete else ("fiub" if self.adapter.position_size == 1.0 else "")
        self._action_dtype = np.int64 if discrete else np.float64
        n, s = self.num_envs, t.data.n_symbols
        # The account of every copy, allocated once and updated in place by the compiled loops, in three
        # blocks (per-copy numbers, per-symbol numbers, bars) so that the compiled step takes few arguments.
        self._acct = np.full((3, n), t.initial_cash)
        self._pos = np.zeros((3, n, s))
        self._pos[AVG_COST] = np.nan
        self._clock = np.full((2, n), t.first_t, dtype=np.int64)
        self._clock[END] = t.last_t
        # The risk layer's state of every copy, in apply_risk's layout; no limits: no risk layer.
        self._risk_params = np.zeros(0) if risk is None else risk_params(risk)
        self._risk_acct = np.zeros((3, n))
        self._risk_pos = np.zeros((2, n, s), dtype=np.int64)
        self.risk_counts = np.zeros((n, len(RULES)), dtype=np.int64)
        """Interventions of the risk layer since :meth:`reset`, per copy and rule (columns in the order
        of :data:`envs.sim.risk.RULES`)."""
        self._bind()

    def _bind(self) -> None:
        """Lay out the account's views and the compiled loops' arguments (the data's arrays, the costs)."""
        t = self.template
        self._cash, self._equity, self._peak = self._acct
        self._shares, self._avg_cost, self._target = self._pos
        self._t, self._end = self._clock
        self._account = (
            self._cash, self._shares, self._avg_cost, self._target, self._equity, self._peak, self._t, self._end
        )
        # The data's own arrays (read-only): one argument type each, so each loop compiles once per machine.
        self._values = t.data.values
        self._observe_args = (t._feat, t.window_size, self._values, self.kind == "stocks")
        choices = self.adapter._choice_weight if self.adapter.mode == "discrete" else np.zeros(0)
        layout, params = stock_step_settings(
            self._kernel_mode, choices, self.execution.for_symbol(t.data.symbols[0]), t.window_size
        )
        risk = (self._risk_params, self._risk_acct, self._risk_pos, self.risk_counts)
        tail = (params, self._values, t._feat, self._acct, self._pos, self._clock, *risk)
        self._step_args = (layout, *tail)
        # Actions the compiled step cannot check cheaply arrive as target weights from the adapter.
        targets_layout = layout.copy()
        targets_layout[MODE] = TARGETS
        self._targets_args = (targets_layout, *tail)

    def __getstate__(self) -> dict[str, Any]:
        # Pickle would restore the data's array as writeable (a second compiled variant); the unpickled
        # template's data is read-only again, and _bind takes its arrays from there.
        return {k: v for k, v in self.__dict__.items() if k not in _BOUND}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._bind()

    # ------------------------------------------------------------------ episodes
    def _reset_rows(self, rows: np.ndarray, obs: np.ndarray) -> None:
        """New episodes in ``rows`` (indices), their first observations written into ``obs``."""
        t = self.template
        if t.episode_length is None:
            starts = np.full(rows.size, t.first_t)
            ends = np.full(rows.size, t.last_t)
        else:
            high = t.last_t - t.episode_length + 1
            if self._row_rngs is None:
                starts = self.np_random.integers(t.first_t, high, size=rows.size)
            else:
                # Per-env seeds: row i draws its starts as a single env seeded with seeds[i] would.
                starts = np.array([self._row_rngs[i].integers(t.first_t, high) for i in rows], dtype=np.int64)
            ends = starts + t.episode_length
        reset_rows(rows, starts, ends, t.initial_cash, *self._account, obs, *self._observe_args)
        if self._risk_params.size:
            self._risk_acct[PEAK, rows] = t.initial_cash
            self._risk_acct[HALTED, rows] = 0.0
            self._risk_acct[HALTED_AT, rows] = -1.0
            self._risk_pos[:, rows] = 0

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new episode in every copy.

        :param seed: one seed for the whole batch (one generator draws every copy's start), or one seed per
            copy (``num_envs`` of them; ``None`` entries draw fresh entropy), each copy then drawing its
            starts, now and at every autoreset, from its own generator as a single env seeded alike does.
        :param options: unused (the batch always starts at random bars, or at the first bar for full passes).
        """
        if seed is not None and not isinstance(seed, (int, np.integer)):
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"reset(seed=...) needs one seed per env ({self.num_envs}), got {len(seeds)}")
            self._row_rngs = [gym.utils.seeding.np_random(s)[0] for s in seeds]
            self._np_random, self._np_random_seed = gym.utils.seeding.np_random(seeds[0])
        elif seed is not None or self._np_random is None:
            self._row_rngs = None
            self._np_random, self._np_random_seed = gym.utils.seeding.np_random(seed)
        obs = np.empty(self._obs_shape, dtype=np.float32)
        self._reset_rows(np.arange(self.num_envs), obs)
        self.risk_counts[...] = 0
        self._reward.reset(self._equity)
        return obs, {"equity": self._equity.copy(), "cash": self._cash.copy(), "t": self._t.copy()}

    # ------------------------------------------------------------------ step
    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        # Everything returned is new each step: callers (and gymnasium's checker) keep it.
        n = self.num_envs
        obs = np.empty(self._obs_shape, dtype=np.float32)
        rewards = np.empty(n)
        terminated = np.empty(n, dtype=bool)
        truncated = np.empty(n, dtype=bool)
        equity = np.empty(n)
        cash = np.empty(n)
        t = np.empty(n, dtype=np.int64)
        outputs = (obs, rewards, terminated, truncated, equity, cash, t)
        prev = None if self._log_reward else self._equity.copy()
        if self.kind == "stocks":
            n_done = self._step_compiled(actions, outputs)
        else:
            n_done = self._step_numpy(actions, outputs)
        infos = {"equity": equity, "cash": cash, "t": t}
        if prev is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                rewards = np.where(terminated, WIPED_OUT_REWARD, self._reward(prev, self._equity))
        if n_done:
            done = terminated | truncated
            rows = np.flatnonzero(done)
            final_obs = np.empty(n, dtype=object)
            for i in rows:
                final_obs[i] = obs[i].copy()
            infos["final_obs"] = final_obs
            infos["_final_obs"] = done
            infos["final_info"] = {"equity": equity.copy(), "_equity": done}
            infos["_final_info"] = done
            self._reset_rows(rows, obs)
            if not self._log_reward:  # the log return keeps no state
                self._reward.reset(self._equity, done)
        return obs, rewards, terminated, truncated, infos

    def _step_compiled(self, actions: Any, outputs: tuple[np.ndarray, ...]) -> int:
        """The step of one symbol: one call of the compiled loop, writing into ``outputs``."""
        arr = np.asarray(actions)
        if arr.shape == self._batch_action_shape and arr.dtype.kind in self._action_kinds:
            arr = np.ascontiguousarray(arr, dtype=self._action_dtype)
            n_done = step_stocks(arr, *self._step_args, *outputs)
            if n_done >= 0:
                return n_done
        # The loop takes the actions it can check cheaply; the adapter converts the rest or raises its
        # error naming the env.
        return step_stocks(self._adapter_targets(actions), *self._targets_args, *outputs)

    def _adapter_targets(self, actions: Any) -> np.ndarray:
        """``(N, S)`` target weights from the action adapter, which raises on anything outside the space."""
        target = self.adapter.to_weights_batch(actions)
        if target.shape[0] != self.num_envs:
            raise ValueError(f"expected {self.num_envs} actions, got {target.shape[0]}")
        return np.ascontiguousarray(target, dtype=np.float64)

    def _step_numpy(self, actions: Any, outputs: tuple[np.ndarray, ...]) -> int:
        """The step of several symbols: ``PortfolioEnv.step``'s arithmetic over the batch."""
        obs, rewards, terminated, truncated, equity, cash, t_out = outputs
        target = self._adapter_targets(actions)
        force = np.zeros(target.shape, dtype=bool)
        if self._risk_params.size:
            # The single env's RiskState of every copy: the account at bar t's close.
            prices = self._values[self._t, :, CLOSE]
            weights = self._shares * prices / self._equity[:, None]
            apply_risk(
                self._risk_params, self._t, self._equity, weights, self._shares, self._avg_cost, prices,
                self._values[:, :, CLOSE], self._t, target, force, self._risk_acct, self._risk_pos,
                self.risk_counts, np.empty((0, 7)),
            )
        t1 = self._t + 1
        bar = self._values[t1]
        active = should_trade_batch(
            target, self._target, self.execution.min_weight_change, self.template._tradable[t1], force
        )
        if active.any():
            result = rebalance(
                self._cash,
                self._shares,
                target,
                bar[:, :, self.execution.fill_field],
                bar[:, :, LOW],
                bar[:, :, HIGH],
                self.execution,
                active,
                self.template.data.symbols,
            )
            self._avg_cost[...] = update_cost_basis(
                self._shares, self._avg_cost, result.traded, result.fill_price
            )[0]
            self._cash[...] = result.cash
            self._shares[...] = result.shares
            np.copyto(self._target, target, where=active)
        close = bar[:, :, CLOSE]
        if self.execution.borrow_rate:
            self._cash -= self.execution.borrow_per_bar * (np.maximum(-self._shares, 0.0) * close).sum(axis=1)
        prev = self._equity.copy()
        np.add(self._cash, (self._shares * close).sum(axis=1), out=self._equity)
        np.maximum(self._peak, self._equity, out=self._peak)
        self._t[...] = t1
        np.less_equal(self._equity, 0.0, out=terminated)
        np.greater_equal(t1, self._end, out=truncated)
        truncated &= ~terminated
        with np.errstate(divide="ignore", invalid="ignore"):
            rewards[...] = np.where(terminated, WIPED_OUT_REWARD, np.log(self._equity / prev))
        equity[...] = self._equity
        cash[...] = self._cash
        t_out[...] = t1
        observe_all(obs, self._t, self._shares, self._avg_cost, self._equity, self._peak, *self._observe_args)
        return int(np.count_nonzero(terminated | truncated))

    def close_extras(self, **kwargs: Any) -> None:
        self.template.close()


def make_stocks_vector_env(num_envs: int = 8, **kwargs: Any) -> TradingVectorEnv:
    """Vector entry point of ``AlpacaGym/Stocks-v0`` (``gymnasium.make_vec``)."""
    return TradingVectorEnv(num_envs, kind="stocks", **kwargs)


def make_portfolio_vector_env(num_envs: int = 8, **kwargs: Any) -> TradingVectorEnv:
    """Vector entry point of ``AlpacaGym/Portfolio-v0`` (``gymnasium.make_vec``)."""
    return TradingVectorEnv(num_envs, kind="portfolio", **kwargs)
