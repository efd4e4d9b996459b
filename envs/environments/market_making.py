"""``AlpacaGym/MarketMaking-v0``: quote a bid and an ask in a simulated limit-order book.

The single env and the batched vector env step through the same compiled kernel
(:func:`envs.sim.lob.step_market_maker`), so a one-episode batch reproduces the single env exactly.
"""

from __future__ import annotations

from typing import Any, Mapping

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.sim import lob
from envs.sim.actions import InvalidActionError
from envs.sim.lob import BookConfig, OrderBookSim
from envs.sim.portfolio import Fill

ENV_ID = "AlpacaGym/MarketMaking-v0"
ACTION_MODES = ("offsets", "offsets_sizes")
SESSION = pd.Timedelta(hours=6.5)
"""Wall-clock length of one model time unit, for the timestamps in ``info`` (one trading session)."""
DEFAULT_START = pd.Timestamp("2024-01-02 14:30", tz="UTC")
OBSERVATION_NAMES = ("inventory", "time_left", "order_flow", "intensity", "last_return", "volatility", "spread")


class _MarketMakerSpec:
    """What the single and the vector env share: the book, the penalties and the spaces.

    :param book: the market (:class:`~envs.sim.lob.BookConfig` or a dict of its fields).
    :param running_penalty: ``phi``, the running inventory penalty per unit squared and time unit.
    :param terminal_penalty: ``alpha``, the terminal inventory penalty per unit squared.
    :param action_mode: ``"offsets"`` or ``"offsets_sizes"``.
    :param max_offset: the largest quote distance from the mid (price units).
    :param max_lots: the largest quote size in lots (``offsets_sizes`` mode).
    """

    def __init__(
        self, book: BookConfig | Mapping[str, Any] | None, running_penalty: float, terminal_penalty: float,
        action_mode: str, max_offset: float | None, max_lots: int,
    ) -> None:
        self.book = BookConfig.of(book)
        if action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be one of {ACTION_MODES}, got {action_mode!r}")
        for name, value in (("running_penalty", running_penalty), ("terminal_penalty", terminal_penalty)):
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if max_offset is None:
            # 3 / kappa: the widest quote fills e^-3 (5%) of the orders reaching it, and the middle of the
            # action range is 1.5 / kappa, near the optimal quotes (1 / kappa plus the inventory skew), which
            # is where a policy network starts. In the full book, ten levels deep is where market orders
            # rarely reach.
            max_offset = 10 * self.book.tick if self.book.fill_model == "queue" else 3.0 / self.book.fill_decay
        if not np.isfinite(max_offset) or max_offset <= 0:
            raise ValueError(f"max_offset must be a positive number, got {max_offset!r}")
        if not isinstance(max_lots, (int, np.integer)) or max_lots < 1:
            raise ValueError(f"max_lots must be a positive integer, got {max_lots!r}")
        self.running_penalty = float(running_penalty)
        self.terminal_penalty = float(terminal_penalty)
        self.action_mode = action_mode
        self.max_offset = float(max_offset)
        self.max_lots = int(max_lots)
        width = 2 if action_mode == "offsets" else 4
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(width,), dtype=np.float32)
        self.observation_space = gym.spaces.Box(-lob.OBS_CLIP, lob.OBS_CLIP, shape=(lob.N_OBS,), dtype=np.float32)
        self.params = self.book.params()
        self.mm_params = np.zeros(lob.N_MM_PARAMS)
        self.mm_params[lob.M_PHI] = running_penalty
        self.mm_params[lob.M_TERMINAL] = terminal_penalty
        self.mm_params[lob.M_MAX_OFFSET] = max_offset
        self.mm_params[lob.M_MAX_LOTS] = max_lots
        self.mm_params[lob.M_N_STEPS] = self.book.n_steps
        self.mm_params[lob.M_EMA] = 0.9

    def invalid(self, action: Any) -> InvalidActionError:
        return InvalidActionError(
            f"invalid action {action!r} for {ENV_ID}: expected {self.action_space.shape[0]} finite values in "
            f"[-1, 1] (offsets onto [0, {self.max_offset:g}]"
            + (f", sizes onto [0, {self.max_lots}] lots)" if self.action_mode == "offsets_sizes" else ")")
        )

    def action(self, bid_offset: Any, ask_offset: Any, bid_lots: Any = None, ask_lots: Any = None) -> np.ndarray:
        """The action quoting these distances from the mid (and sizes in ``offsets_sizes`` mode).

        :param bid_offset: distance of the bid below the mid (scalar, or array for a batch).
        :param ask_offset: distance of the ask above the mid.
        :param bid_lots: bid size in lots (0 skips the side); ``offsets_sizes`` mode only.
        :param ask_lots: ask size in lots.
        """
        offsets = lob.offsets_to_action(bid_offset, ask_offset, self.max_offset)
        if self.action_mode == "offsets":
            return offsets
        sizes = np.stack(np.broadcast_arrays(np.asarray(bid_lots, float), np.asarray(ask_lots, float)), axis=-1)
        sizes = np.clip(2.0 * sizes / self.max_lots - 1.0, -1.0, 1.0).astype(np.float32)
        return np.concatenate([offsets, sizes], axis=-1)


class MarketMakingEnv(gym.Env):
    """Make a market in one instrument: quote a bid and an ask around a simulated mid-price every step.

    ## Description
    The market is :mod:`envs.sim.lob`'s limit-order book: a Brownian mid-price (with optional short-term
    alpha and jumps), market orders arriving as Poisson or Hawkes processes, and the agent's quotes filled
    with a probability decaying exponentially with their distance from the mid (Avellaneda-Stoikov) or,
    with ``book={"fill_model": "queue"}``, from a full book with queue position. Each step the agent
    quotes; the step's market orders fill the quotes at the quoted prices (maker fee or rebate charged),
    then the mid moves. The defaults are the Avellaneda-Stoikov (2008) example (``S0 = 100``,
    ``sigma = 2``, ``A = 140``, ``kappa = 1.5``, ``T = 1`` in 200 steps).

    ## Action Space
    ``action_mode="offsets"`` (default): ``Box(-1, 1, (2,))``, the bid's and the ask's distance below and
    above the mid, mapped linearly from ``[-1, 1]`` onto ``[0, max_offset]`` price units (then rounded
    away from the mid onto the tick), one lot each. ``"offsets_sizes"``: ``Box(-1, 1, (4,))``, plus the
    sizes mapped onto ``[0, max_lots]`` lots (rounded; 0 skips the side). ``env.unwrapped.action(bid_offset,
    ask_offset[, bid_lots, ask_lots])`` builds the action of given quotes. Anything outside the box or NaN
    raises :class:`~envs.sim.actions.InvalidActionError`.

    ## Observation Space
    ``Box(-10, 10, (7,), float32)``: inventory over ``max_inventory``, time left as a fraction of the
    episode, net market-order flow (buys minus sells per step, exponential average, over the expected
    orders per step), market-order intensity (average orders per step over the baseline), the last
    mid-price change and the realised volatility (both over ``sigma sqrt(dt)``), and the book's spread in
    ticks.

    ## Rewards
    The change of the mark-to-market P/L (``cash + inventory x mid``) less the running inventory penalty
    ``running_penalty x dt x (q_before^2 + q_after^2) / 2`` and, at the last step, the terminal penalty
    ``terminal_penalty x q_T^2`` (``q`` in units). The episode's rewards plus ``info["penalty"]`` sum to
    its P/L. This is the objective the Avellaneda-Stoikov model with the Cartea-Jaimungal inventory
    penalties solves in closed form (:mod:`baselines.market_making`).

    ## Starting State
    Flat, no cash, mid at ``s0``, intensities at their baseline.

    ## Episode End
    Truncated after ``book.n_steps`` steps (the horizon ``T``); never terminated.

    ## Info
    ``equity`` (``initial_cash`` + P/L), ``cash``, ``positions`` (units, shape ``(1,)``), ``weights``,
    ``timestamp`` (a session of 6.5 hours per time unit from ``start``), ``t`` (step), ``fills``
    (:class:`~envs.sim.portfolio.Fill` records at the quoted prices, fee as ``commission``),
    ``risk_events`` (always empty), and the book's view: ``mid``, ``bid``, ``ask`` (the step's quotes,
    NaN when not quoted), ``inventory`` (lots), ``pnl``, ``penalty``, ``buy_orders``, ``sell_orders``,
    ``buy_volume``, ``sell_volume`` (lots), ``levels_swept`` (largest order's levels, buy and sell),
    ``time_left`` (time units), and ``book`` (the :class:`~envs.sim.lob.BookConfig`), ``running_penalty``
    and ``terminal_penalty`` for model-based policies.

    ## Arguments
    :param book: the market: a :class:`~envs.sim.lob.BookConfig` or a dict of its fields.
    :param running_penalty: ``phi``, running inventory penalty per unit squared and time unit.
    :param terminal_penalty: ``alpha``, terminal inventory penalty per unit squared.
    :param action_mode: ``"offsets"`` or ``"offsets_sizes"``.
    :param max_offset: largest quote distance (default ``3 / kappa``, or ten ticks in the full book).
    :param max_lots: largest quote size in lots (``offsets_sizes``).
    :param initial_cash: added to the P/L in ``info["equity"]`` and ``info["cash"]``.
    :param symbol: the instrument's name in ``fills``.
    :param start: timestamp of the first step.
    :param render_mode: ``"ansi"``.

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 30}

    def __init__(
        self,
        book: BookConfig | Mapping[str, Any] | None = None,
        running_penalty: float = 0.1,
        terminal_penalty: float = 0.1,
        action_mode: str = "offsets",
        max_offset: float | None = None,
        max_lots: int = 5,
        initial_cash: float = 100_000.0,
        symbol: str = "MM",
        start: str | pd.Timestamp = DEFAULT_START,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.spec_ = _MarketMakerSpec(book, running_penalty, terminal_penalty, action_mode, max_offset, max_lots)
        self.book = self.spec_.book
        self.action_space = self.spec_.action_space
        self.observation_space = self.spec_.observation_space
        self.initial_cash = float(initial_cash)
        self.symbol = symbol
        self.start = pd.Timestamp(start)
        self.render_mode = render_mode
        self.sim = OrderBookSim(self.book, 1)
        self._stats = np.zeros((lob.N_STATS, 1))
        self._clock = np.zeros(1, dtype=np.int64)
        self._obs = np.zeros((1, lob.N_OBS), dtype=np.float32)
        self._out = (np.zeros(1), np.zeros(1), np.zeros(1, dtype=bool))

    def action(self, bid_offset: float, ask_offset: float, bid_lots: float = 1, ask_lots: float = 1) -> np.ndarray:
        """The action quoting these distances from the mid (and sizes in ``offsets_sizes`` mode).

        :param bid_offset: distance of the bid below the mid.
        :param ask_offset: distance of the ask above the mid.
        :param bid_lots: bid size in lots (0 skips the side; ``offsets_sizes`` mode).
        :param ask_lots: ask size in lots.
        """
        return self.spec_.action(bid_offset, ask_offset, bid_lots, ask_lots)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        rows = np.arange(1)
        self.sim.reset_rows(rows)
        lob.reset_market_maker(rows, self.spec_.params, self.spec_.mm_params, self.sim.state, self._stats,
                               self._clock, self._obs)
        self.sim.seeds.discard()
        return self._obs[0].copy(), self._info((), 0.0)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        arr = np.asarray(action, dtype=np.float64)
        if arr.shape != self.action_space.shape:
            raise self.spec_.invalid(action)
        if self._clock[0] >= self.book.n_steps:
            raise RuntimeError(f"{ENV_ID}: the episode has ended; call reset()")
        rewards, penalties, truncated = self._out
        done = lob.step_market_maker(
            self.spec_.params, self.spec_.mm_params, arr.reshape(1, -1), self.sim.state, self._stats, self._clock,
            self.sim.events, self.sim.seeds.peek(self.np_random), self._obs, rewards, penalties, truncated,
        )
        if done < 0:
            raise self.spec_.invalid(action)
        self.sim.seeds.advance()
        reward = float(rewards[0])
        return self._obs[0].copy(), reward, False, bool(truncated[0]), self._info(self._fills(), float(penalties[0]))

    def _timestamp(self) -> pd.Timestamp:
        return self.start + SESSION * (self._clock[0] * self.book.dt)

    def _fills(self) -> tuple[Fill, ...]:
        ev = self.sim.events[:, 0]
        lot = self.book.lot
        fills = []
        now = self._timestamp()
        for side, px_row, fill_row, sign in (("bid", lob.BID_PX, lob.BID_FILL, 1.0), ("ask", lob.ASK_PX, lob.ASK_FILL, -1.0)):
            lots = ev[fill_row]
            if lots > 0:
                qty = lots * lot
                fee = self.book.maker_fee * qty * ev[px_row]
                fills.append(Fill(now, self.symbol, sign * qty, float(ev[px_row]), float(fee), 0.0, side))
        return tuple(fills)

    def _info(self, fills: tuple[Fill, ...], penalty: float) -> dict[str, Any]:
        s = self.sim.state[:, 0]
        ev = self.sim.events[:, 0]
        units = s[lob.INV] * self.book.lot
        equity = self.initial_cash + s[lob.CASH] + units * s[lob.MID]
        return {
            "equity": float(equity),
            "cash": float(self.initial_cash + s[lob.CASH]),
            "positions": np.array([units]),
            "weights": np.array([units * s[lob.MID] / equity]),
            "timestamp": self._timestamp(),
            "t": int(self._clock[0]),
            "fills": fills,
            "risk_events": (),
            "mid": float(s[lob.MID]),
            "bid": float(ev[lob.BID_PX]),
            "ask": float(ev[lob.ASK_PX]),
            "inventory": float(s[lob.INV]),
            "pnl": float(self._stats[lob.S_PNL, 0]),
            "penalty": penalty,
            "buy_orders": int(ev[lob.N_BUY]),
            "sell_orders": int(ev[lob.N_SELL]),
            "buy_volume": float(ev[lob.BUY_VOLUME]),
            "sell_volume": float(ev[lob.SELL_VOLUME]),
            "levels_swept": (int(ev[lob.BUY_LEVELS]), int(ev[lob.SELL_LEVELS])),
            "time_left": float(self.book.horizon - self._clock[0] * self.book.dt),
            "book": self.book,
            "max_offset": self.spec_.max_offset,
            "max_lots": self.spec_.max_lots,
            "running_penalty": self.spec_.running_penalty,
            "terminal_penalty": self.spec_.terminal_penalty,
        }

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        s = self.sim.state[:, 0]
        return (f"t={self._clock[0]}/{self.book.n_steps} mid={s[lob.MID]:.2f} inventory={s[lob.INV]:+.0f} "
                f"pnl={self._stats[lob.S_PNL, 0]:+.2f} equity={self.initial_cash + s[lob.CASH] + s[lob.INV] * self.book.lot * s[lob.MID]:.2f}")


class MarketMakingVectorEnv(VectorEnv):
    """``num_envs`` episodes of ``MarketMaking-v0`` stepped by one compiled call.

    Takes the single env's market and penalty arguments. Finished episodes reset in the same step
    (``AutoresetMode.SAME_STEP``); their last observation is in ``info["final_obs"]`` and their P/L and
    inventory in ``info["final_info"]``. ``info`` holds ``pnl`` (the episode's P/L so far), ``inventory``
    (lots), ``penalty`` and ``t`` (step) per copy, and the single env's ``book``, ``running_penalty``,
    ``terminal_penalty``, ``max_offset`` and ``max_lots``, so the closed-form policies act on a batch too.

    :param num_envs: number of parallel episodes.
    :param kwargs: :class:`MarketMakingEnv` arguments (``book``, ``running_penalty``, ``terminal_penalty``,
        ``action_mode``, ``max_offset``, ``max_lots``).
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 8, **kwargs: Any) -> None:
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        allowed = {"book", "running_penalty", "terminal_penalty", "action_mode", "max_offset", "max_lots"}
        unknown = sorted(set(kwargs) - allowed)
        if unknown:
            raise ValueError(f"unknown MarketMaking-v0 vector env argument(s) {unknown}; known: {sorted(allowed)}")
        defaults = dict(book=None, running_penalty=0.1, terminal_penalty=0.1, action_mode="offsets",
                        max_offset=None, max_lots=5)
        defaults.update(kwargs)
        self.spec_ = _MarketMakerSpec(**defaults)
        self.book = self.spec_.book
        self.num_envs = int(num_envs)
        self.single_observation_space = self.spec_.observation_space
        self.single_action_space = self.spec_.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.sim = OrderBookSim(self.book, self.num_envs)
        self._stats = np.zeros((lob.N_STATS, self.num_envs))
        self._clock = np.zeros(self.num_envs, dtype=np.int64)
        self._action_shape = (self.num_envs, self.single_action_space.shape[0])
        # What model-based policies read, as in the single env's info (shared, never copied).
        self._market = {
            "book": self.book, "running_penalty": self.spec_.running_penalty,
            "terminal_penalty": self.spec_.terminal_penalty, "max_offset": self.spec_.max_offset,
            "max_lots": self.spec_.max_lots,
        }

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if isinstance(seed, list):
            seed = seed[0]
        if seed is not None or self._np_random is None:
            self._np_random, self._np_random_seed = gym.utils.seeding.np_random(seed)
        obs = np.empty((self.num_envs, lob.N_OBS), dtype=np.float32)
        rows = np.arange(self.num_envs)
        self.sim.reset_rows(rows)
        lob.reset_market_maker(rows, self.spec_.params, self.spec_.mm_params, self.sim.state, self._stats,
                               self._clock, obs)
        self.sim.seeds.discard()
        return obs, {"pnl": self._stats[lob.S_PNL].copy(), "inventory": self.sim.inventory.copy(), "t": self._clock.copy(),
                     **self._market}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        n = self.num_envs
        arr = np.asarray(actions)
        if arr.shape != self._action_shape or arr.dtype.kind not in "fiu":
            raise self.spec_.invalid(actions)
        arr = np.ascontiguousarray(arr, dtype=np.float64)
        obs = np.empty((n, lob.N_OBS), dtype=np.float32)
        rewards = np.empty(n)
        penalties = np.empty(n)
        truncated = np.empty(n, dtype=bool)
        n_done = lob.step_market_maker(
            self.spec_.params, self.spec_.mm_params, arr, self.sim.state, self._stats, self._clock,
            self.sim.events, self.sim.seeds.peek(self.np_random), obs, rewards, penalties, truncated,
        )
        if n_done < 0:
            raise self.spec_.invalid(arr[-n_done - 1])
        self.sim.seeds.advance()
        infos: dict[str, Any] = {
            "pnl": self._stats[lob.S_PNL].copy(), "inventory": self.sim.inventory.copy(), "penalty": penalties,
            "t": self._clock.copy(), **self._market,
        }
        if n_done:
            rows = np.flatnonzero(truncated)
            final_obs = np.empty(n, dtype=object)
            for i in rows:
                final_obs[i] = obs[i].copy()
            infos["final_obs"] = final_obs
            infos["_final_obs"] = truncated.copy()
            infos["final_info"] = {
                "pnl": infos["pnl"].copy(), "_pnl": truncated.copy(),
                "inventory": infos["inventory"].copy(), "_inventory": truncated.copy(),
            }
            infos["_final_info"] = truncated.copy()
            self.sim.reset_rows(rows)
            lob.reset_market_maker(rows, self.spec_.params, self.spec_.mm_params, self.sim.state, self._stats,
                                   self._clock, obs)
        return obs, rewards, np.zeros(n, dtype=bool), truncated, infos


def make_market_making_vector_env(num_envs: int = 8, **kwargs: Any) -> MarketMakingVectorEnv:
    """Vector entry point of ``AlpacaGym/MarketMaking-v0`` (``gymnasium.make_vec``)."""
    return MarketMakingVectorEnv(num_envs, **kwargs)
