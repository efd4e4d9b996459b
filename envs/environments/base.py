"""What the stock and portfolio envs share: data and features, episode bounds, observation windows,
``info``, rendering and the run record (equity curve, trade log) a backtest reads afterwards."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import gymnasium as gym
import numpy as np
import pandas as pd

from envs.data.history import History
from envs.data.market_data import CLOSE, MarketData
from envs.environments.rewards import Reward
from envs.features import OBS_BOUND, OBSERVATION_FEATURES, FeatureConfig, Features, compute_features
from envs.sim.actions import ActionAdapter, cap_gross
from envs.sim.execution import ExecutionConfig
from envs.sim.risk import RiskManager, RiskState
from envs.sim.sizing import FixedFraction, Sizer, SizingState, on_calendar

DEFAULT_INITIAL_CASH = 100_000.0
WINDOW_TABLE_MAX_FLOATS = 64_000_000


def resolve_data(data: MarketData | str | None) -> MarketData:
    """``None`` is the embedded synthetic market; a string is a data spec (``"csv:PATH"``, ...)."""
    if isinstance(data, MarketData):
        return data
    from envs.data.sources import load_data

    return load_data("synthetic" if data is None else data)


def resolve_execution(execution: ExecutionConfig | Mapping[str, Any] | None) -> ExecutionConfig:
    """An :class:`ExecutionConfig` from itself, a dict of its fields, or ``None`` (defaults)."""
    if execution is None:
        return ExecutionConfig()
    if isinstance(execution, ExecutionConfig):
        return execution
    known = {f.name for f in dataclasses.fields(ExecutionConfig)}
    unknown = sorted(set(execution) - known)
    if unknown:
        raise ValueError(f"unknown execution setting(s) {unknown}; known: {sorted(known)}")
    return ExecutionConfig(**execution)


class StepInfo(dict):
    """The ``info`` of a step: a plain dict whose deep copy copies only what can change.

    Its arrays (positions, weights) are copied; everything else in it cannot be changed in place (numbers,
    the ``pd.Timestamp``, the read-only history, tuples of immutable fill and risk-event records), so a deep
    copy may share them. SB3's ``DummyVecEnv`` deep-copies every info every step, and a generic deep copy
    spent most of its time rebuilding timestamps (about 9 of 15 µs).
    """

    __slots__ = ()

    def __deepcopy__(self, memo: dict) -> "StepInfo":
        return StepInfo(
            {key: value.copy() if isinstance(value, np.ndarray) else value for key, value in self.items()}
        )


class TradingEnvBase(gym.Env):
    """Base of :class:`~envs.environments.stocks.StocksEnv` and :class:`~envs.environments.portfolio.PortfolioEnv`.

    Subclasses set the action space and implement ``_reset_account``, ``_step_account`` and
    ``_account_state``.
    """

    metadata = {"render_modes": ["rgb_array", "ansi"], "render_fps": 30}

    def __init__(
        self,
        data: MarketData,
        *,
        window_size: int,
        features: FeatureConfig | Features | None,
        execution: ExecutionConfig | Mapping[str, Any] | None,
        reward: str,
        reward_eta: float,
        drawdown_penalty: float,
        episode_length: int | str | None,
        initial_cash: float,
        n_state: int,
        action_mode: str,
        risk: Any,
        render_mode: str | None,
        position_size: float = 1.0,
        sizing: Sizer | None = None,
    ) -> None:
        if not isinstance(window_size, (int, np.integer)) or window_size < 1:
            raise ValueError(f"window_size must be a positive integer, got {window_size!r}")
        if not np.isfinite(initial_cash) or initial_cash <= 0:
            raise ValueError(f"initial_cash must be a positive number, got {initial_cash!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.execution = resolve_execution(execution)
        if self.execution.borrow_rate and self.execution.periods_per_year is None:
            # The borrow fee accrues per bar: a year of bars comes from the data's calendar.
            self.execution = self.execution.resolved(data.periods_per_year)
        if isinstance(episode_length, str):
            episode_length = data.calendar.bars_in(episode_length, data.frequency)
        self.window_size = int(window_size)
        self.initial_cash = float(initial_cash)
        self.render_mode = render_mode
        # Kept so that extend() can compute the features of new bars the same way.
        self._feature_config = (
            None if isinstance(features, Features) else features or FeatureConfig(OBSERVATION_FEATURES)
        )
        self._n_state = n_state
        self._sizing: SizingState | None = None
        self._load(data, features if isinstance(features, Features) else compute_features(data, self._feature_config))
        if self.last_t - self.first_t < 1:
            raise ValueError(
                f"data has {data.n_bars} bars but the feature warm-up and window need {self.first_t + 2}"
            )
        if episode_length is not None and not 1 <= episode_length <= self.last_t - self.first_t:
            raise ValueError(
                f"episode_length must be in [1, {self.last_t - self.first_t}] for this data, got {episode_length!r}"
            )
        self.episode_length = episode_length
        self.reward_fn = Reward(reward, eta=reward_eta, penalty=drawdown_penalty)
        self._log_reward = reward == "log_return"
        # Features are clipped by their normalisation; the account state is clipped to the same bound.
        self.observation_space = gym.spaces.Box(
            -OBS_BOUND, OBS_BOUND, shape=(self._n_window + n_state,), dtype=np.float32
        )
        self._fill_field = self.execution.fill_field
        if sizing is not None:
            if position_size != 1.0:
                raise ValueError(f"give sizing or position_size, not both (position_size={position_size!r})")
            sizing = on_calendar(sizing, data.periods_per_year)
            # A fixed fraction is the action adapter's position size (the arithmetic of FixedFraction), which the
            # compiled vector env reads too; the other rules size each action from the bars (and signals) so far.
            if isinstance(sizing, FixedFraction):
                position_size = sizing.fraction
            else:
                self._sizing = SizingState(sizing, data.close)
        self.sizing = sizing
        self.adapter = ActionAdapter(
            action_mode, data.n_symbols, self.execution.allow_short, self.execution.max_leverage, position_size
        )
        self.action_space = self.adapter.space
        self.risk_config = risk
        self._risk = None
        if risk is not None:
            self._risk = RiskManager(risk, data.n_symbols)
        self._t = self.first_t
        self._end_t = self.last_t
        self._start_t = self.first_t
        self._equity = self.initial_cash
        self._peak = self.initial_cash
        self.equity_curve: list[float] = []

    # ------------------------------------------------------------------ data
    def _load(self, data: MarketData, features: Features) -> None:
        """Take ``data`` and its features, and lay out everything the steps read from them."""
        if features.values.shape[:2] != (data.n_bars, data.n_symbols):
            raise ValueError(
                f"features cover {features.values.shape[:2]} (bars, symbols) but data has "
                f"{(data.n_bars, data.n_symbols)}"
            )
        self.data = data
        self.features = features
        if self._sizing is not None:
            self._sizing.load(data.close)
        # Whether each symbol's market is open on each bar: a closed bar never fills (the one trade rule).
        tradable = data.tradable
        self._tradable = np.ones(data.values.shape[:2], dtype=bool) if tradable is None else tradable
        # the whole window must lie after the warm-up, where every feature is defined
        self.first_t = features.warmup + self.window_size - 1
        self.last_t = data.n_bars - 1
        n_feat = features.values.shape[2] * data.n_symbols
        # Clipped once here so no step has to clip the window; rows before the warm-up are never read.
        self._feat = np.clip(
            np.nan_to_num(features.values.reshape(data.n_bars, n_feat)), -OBS_BOUND, OBS_BOUND
        ).astype(np.float32)
        self._n_window = self.window_size * n_feat
        # Every observation window laid out once, when it fits in memory: one row copy per step is about
        # twice as fast as assembling the window, and envs are stepped millions of times in training.
        self._windows: np.ndarray | None = None
        n_obs = self._n_window + self._n_state
        if data.n_bars * n_obs <= WINDOW_TABLE_MAX_FLOATS:
            view = np.lib.stride_tricks.sliding_window_view(self._feat, self.window_size, axis=0)
            self._windows = np.zeros((view.shape[0], n_obs), dtype=np.float32)
            self._windows[:, : self._n_window] = view.transpose(0, 2, 1).reshape(view.shape[0], -1)
        # Timestamps as a list: pandas index lookups cost microseconds, a list lookup nanoseconds.
        self._timestamps: list[pd.Timestamp] = data.index.tolist()
        # Each bar's History is immutable, so one per bar is built on first use and handed out again.
        self._histories: list[History | None] = [None] * data.n_bars

    def extend(self, data: MarketData) -> None:
        """Carry the episode on over more bars, as a live feed delivers them.

        ``data`` repeats the env's bars up to the current one and continues past them; bars after the
        current one may differ from those the env held (nothing has observed them yet, e.g. a
        placeholder for a bar still to come). The features are computed again over ``data``; they are
        causal, so no observation up to now changes. Account, risk layer, reward state and the random
        generator carry on; a full-length episode now ends at the last bar of ``data``.

        :param data: the env's bars up to and including the current one, unchanged, then newer bars.
        """
        t = self._t
        if self._feature_config is None:
            raise ValueError("an env built on precomputed Features cannot be extended; pass a FeatureConfig")
        if data.symbols != self.data.symbols:
            raise ValueError(
                f"extend: data has symbols {list(data.symbols)}, the env {list(self.data.symbols)}"
            )
        if data.n_bars <= t + 1:
            raise ValueError(f"extend: data has {data.n_bars} bars; it must go past the current bar {t}")
        seen = slice(0, t + 1)
        if not (
            data.index[seen].equals(self.data.index[seen])
            and np.array_equal(data.values[seen], self.data.values[seen])
        ):
            raise ValueError(
                f"extend: data must repeat the env's bars up to the current one ({self._timestamps[t]})"
            )
        self._load(data, compute_features(data, self._feature_config))
        if self.episode_length is None:
            self._end_t = self.last_t

    # ------------------------------------------------------------------ episode bounds
    def _choose_start(self, options: dict[str, Any] | None) -> None:
        self._start_t, self._end_t = episode_bounds(
            self.np_random, self.first_t, self.last_t, self.episode_length, options
        )
        self._t = self._start_t

    # ------------------------------------------------------------------ observation and info
    def _window_rows(self, t: np.ndarray | int) -> np.ndarray:
        """Fresh observation rows for bars ``t`` with the feature window filled in and the state zeroed."""
        if self._windows is not None:
            return self._windows[t - self.window_size + 1]
        t = np.asarray(t)
        rows = np.zeros((*t.shape, self.observation_space.shape[0]), dtype=np.float32)
        rows[..., : self._n_window] = self._feat[t[..., None] + np.arange(1 - self.window_size, 1)].reshape(
            *t.shape, -1
        )
        return rows

    def _observation(self, state: tuple[float, ...] | np.ndarray) -> np.ndarray:
        obs = self._window_rows(self._t).copy()
        obs[self._n_window :] = np.clip(state, -OBS_BOUND, OBS_BOUND)
        return obs

    def _info(self, fills: tuple = (), risk_events: tuple = ()) -> dict[str, Any]:
        positions, weights, cash = self._account_state()
        return StepInfo({
            "equity": self._equity,
            "cash": cash,
            "positions": positions,
            "weights": weights,
            "timestamp": self._timestamps[self._t],
            "t": self._t,
            "history": self._history(self._t),
            "fills": fills,
            "risk_events": risk_events,
        })

    def _history(self, t: int) -> History:
        """The read-only view of bars ``0..t``, built once per bar."""
        history = self._histories[t]
        if history is None:
            history = self._histories[t] = History(self.data, t)
        return history

    def _account_state(self) -> tuple[np.ndarray, np.ndarray, float]:
        raise NotImplementedError

    def signal_weights(self, action: Any) -> np.ndarray:
        """Target weights ``(S,)`` the env trades for ``action`` at the current bar, before the risk layer: the
        action adapter's weights, sized by the env's sizing rule when it has one (the live runner asks this
        of its shadow env, so paper trading sizes as the backtest does).

        :param action: an action of the env's action space.
        """
        weights = self.adapter.to_weights(action)
        return weights if self._sizing is None else self._sized(weights, record=False)

    def _sized(self, signal: np.ndarray, record: bool = True) -> np.ndarray:
        """The sizing rule's weights for ``signal`` (the adapter's weights) at the current bar, within the
        leverage cap as a rule bot's weights are in a ``weights`` env; the signal is recorded for the rule's
        later bars unless ``record`` is False."""
        assert self._sizing is not None
        weights = cap_gross(self._sizing.weights(self._t, signal), self.adapter.max_leverage)
        if record:
            self._sizing.record(self._t, signal)
        return weights

    def _risk_check(
        self, target: np.ndarray, entry_prices: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple]:
        """Run the risk layer on ``target`` weights.

        :returns: allowed weights, the reason per symbol, which symbols must trade even with an unchanged
            target (:attr:`envs.sim.risk.RiskEvent.force`), and the events.
        """
        positions, _, _ = self._account_state()
        state = RiskState.of_account(self._history(self._t), self._equity, positions, entry_prices)
        allowed, events = self._risk.apply(target, state)
        allowed = np.asarray(allowed, dtype=np.float64)
        reasons = np.full(self.data.n_symbols, "policy", dtype=object)
        force = np.zeros(self.data.n_symbols, dtype=bool)
        for event in events:
            if event.symbol in self.data.symbols:
                j = self.data.symbols.index(event.symbol)
                if allowed[j] != target[j] or event.force:
                    reasons[j] = event.rule
                force[j] |= event.force
        return allowed, reasons, force, tuple(events)

    def __getstate__(self) -> dict[str, Any]:
        # the per-bar History cache is rebuilt on use; pickling it would cost an object per bar seen
        state = self.__dict__.copy()
        state["_histories"] = [None] * len(self._histories)
        return state

    # ------------------------------------------------------------------ run record
    def equity_series(self) -> pd.Series:
        """Equity at every close of the episode so far, starting with the initial equity at the start bar."""
        idx = self.data.index[self._start_t : self._start_t + len(self.equity_curve)]
        return pd.Series(self.equity_curve, index=idx, name="equity")

    def trade_frame(self) -> pd.DataFrame:
        """The episode's fills (one row per fill)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ rendering
    def render(self) -> np.ndarray | str | None:
        """``rgb_array``: price and equity so far as an image; ``ansi``: a text summary."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array' or 'ansi'")
            return None
        if self.render_mode == "ansi":
            return self.summary()
        return self._render_rgb()

    def summary(self) -> str:
        """A few lines: date, equity, return, drawdown, positions, number of fills."""
        positions, weights, cash = self._account_state()
        ret = self._equity / self.initial_cash - 1.0
        held = ", ".join(
            f"{s}: {q:,.2f} ({w:+.1%})" for s, q, w in zip(self.data.symbols, positions, weights) if q
        )
        return (
            f"{self.data.index[self._t]:%Y-%m-%d %H:%M}  bar {self._t - self._start_t}/"
            f"{self._end_t - self._start_t}\n"
            f"equity {self._equity:,.2f}  return {ret:+.2%}  drawdown {1 - self._equity / self._peak:.2%}  "
            f"cash {cash:,.2f}\n"
            f"positions: {held or 'none'}  fills: {len(self.trade_frame())}"
        )

    def _render_rgb(self) -> np.ndarray:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        fig, (ax_price, ax_eq) = plt.subplots(2, 1, figsize=(8, 5), dpi=80, sharex=True)
        idx = self.data.index[self._start_t : self._t + 1]
        closes = self.data.values[self._start_t : self._t + 1, :, CLOSE]
        for j, sym in enumerate(self.data.symbols[:8]):
            ax_price.plot(idx, closes[:, j] / closes[0, j], label=sym, lw=1)
        ax_price.set_ylabel("price (rebased)")
        ax_price.legend(loc="upper left", fontsize=7)
        ax_eq.plot(idx[: len(self.equity_curve)], self.equity_curve, color="tab:green", lw=1.2)
        ax_eq.set_ylabel("equity")
        fig.tight_layout()
        fig.canvas.draw()
        image = np.asarray(fig.canvas.buffer_rgba())[:, :, :3].copy()
        plt.close(fig)
        return image

    def _drawdown(self) -> float:
        return 0.0 if self._equity >= self._peak else 1.0 - self._equity / self._peak


def episode_bounds(
    rng: np.random.Generator,
    first_t: int,
    last_t: int,
    episode_length: int | None,
    options: dict[str, Any] | None,
) -> tuple[int, int]:
    """First and last bar of an episode: ``options["start"]`` if given, else the first usable bar for a full
    pass, or a uniformly random bar leaving room for ``episode_length`` steps.

    :param rng: the env's seeded generator.
    :param first_t: first bar an episode may start at.
    :param last_t: last bar of the data.
    :param episode_length: steps per episode, or ``None`` for a full pass.
    :param options: the ``options`` given to ``reset``.
    """
    options = options or {}
    if "start" in options:
        start = int(options["start"])
        if not first_t <= start < last_t:
            raise ValueError(f"options['start'] must be in [{first_t}, {last_t - 1}], got {start}")
    elif episode_length is None:
        start = first_t
    else:
        start = int(rng.integers(first_t, last_t - episode_length + 1))
    end = last_t if episode_length is None else min(start + episode_length, last_t)
    return start, end


def safe_log_ratio(now: float, prev: float) -> float:
    """``log(now / prev)``; a wiped-out account gets a large finite penalty instead of ``-inf``."""
    return math.log(now / prev) if now > 0 and prev > 0 else -20.0
