"""The shadow env: the backtest's env kept in step with a live run, so the policy sees what it sees there.

The runner must show the policy exactly the observation and ``info`` the backtest env would give it after the
same decisions: the same features, window, account state and risk layer. Rather than rebuilding that env on
every bar and replaying the run through it (a cost that grows with the run), one env is kept for the life of
the runner process:

- **start**: built once by the backtest's env factory, reset at the run's first decision bar, and stepped
  through the journalled decisions (a restart replays the journal here, once);
- **advance**: each new bar is one ``env.step`` with the decision taken on the bar before (held over bars
  that got no decision, as in the env, where repeating an action holds the position).

The env can only stand at a bar that has a next bar (an action fills there), so it always holds one bar
more than the runner has seen. When every bar of the run is known up front (a sim replay) the env is built
on all of them and nothing is ever rebuilt. When bars arrive live, the bar after now is a placeholder (the
last close, no volume) and each new bar replaces it through :meth:`envs.environments.base.TradingEnvBase.extend`.
Features are causal, so nothing observed at or before the current bar depends on the bars after it, which
is why both ways show the policy what a backtest over the same bars shows it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from envs.data.market_data import CLOSE, VOLUME, MarketData
from envs.environments.base import TradingEnvBase

EnvFactory = Callable[[MarketData], TradingEnvBase]
Seen = tuple[np.ndarray, dict[str, Any]]


class ShadowEnv:
    """One backtest env, stepped once per bar of a live run.

    :param make_env: builds the backtest's env over given bars (e.g. ``experiments.engine.make_env``).
    :param seed: seed of the env's reset.
    :param bars: every bar of the run when they are known up front (a sim replay), else None.
    """

    def __init__(self, make_env: EnvFactory, seed: int, bars: MarketData | None = None) -> None:
        self.make_env = make_env
        self.seed = seed
        self.bars = bars
        self.env: TradingEnvBase | None = None
        self.obs: np.ndarray | None = None
        self.info: dict[str, Any] = {}

    @property
    def started(self) -> bool:
        """True once :meth:`start` has built the env."""
        return self.env is not None

    def start(self, data: MarketData, past: Sequence[tuple[pd.Timestamp, Any]]) -> list[Seen]:
        """Build the env and bring it to ``data``'s last bar through the run's journalled actions.

        The episode starts at the first journalled bar (at the last bar of ``data`` for a new run); bars
        without a journalled action repeat the previous one.

        :param data: every bar up to now, the env's warm-up included.
        :param past: ``(bar, action)`` of the run's decisions before now, oldest first, actions in their
            journalled (JSON) form.
        :return: the observation and ``info`` at every bar before now, oldest first.
        """
        frame = self._frame(data)
        env = self.make_env(frame)
        missing = [ts for ts, _ in past if ts not in frame.index]
        if missing:
            raise ValueError(f"the feed lacks journalled bar(s) {missing[:3]}; feed more history")
        start = int(frame.index.get_loc(past[0][0] if past else data.index[-1]))
        if start < env.first_t:
            raise ValueError(
                f"bar {frame.index[start]} is inside the env's warm-up ({env.first_t} bars); "
                "feed more history"
            )
        obs, info = env.reset(seed=self.seed, options={"start": start})
        actions = dict(past)
        seen = []
        action = None
        for k in range(start, int(frame.index.get_loc(data.index[-1]))):
            seen.append((obs, info))
            action = actions.get(frame.index[k], action)
            obs, _, _, _, info = env.step(as_action(env, action))
        self.env, self.obs, self.info = env, obs, info
        return seen

    def advance(self, data: MarketData, action: Any) -> None:
        """Step to ``data``'s last bar, every new bar with ``action`` (the last decision); no-op if not new.

        :param data: bars up to now; they must include the bar the env stands at.
        :param action: the action decided at the env's current bar, in journalled (JSON) form.
        """
        env = self.env
        if env is None:
            raise RuntimeError("advance() before start()")
        now, t = self.info["timestamp"], self.info["t"]
        k = int(data.index.searchsorted(now, side="right"))
        if k == 0 or data.index[k - 1] != now:
            raise ValueError(f"the feed lacks bar {now}, the last one the runner decided on")
        m = data.n_bars - k
        if m == 0:
            return
        held = env.data
        known = (
            t + m < held.n_bars
            and held.index[t + 1 : t + 1 + m].equals(data.index[k:])
            and np.array_equal(held.values[t + 1 : t + 1 + m], data.values[k:])
        )
        if not known:
            env.extend(
                _with_placeholder(
                    MarketData(
                        np.concatenate([held.values[: t + 1], data.values[k:]]),
                        held.index[: t + 1].append(data.index[k:]),
                        held.symbols,
                    )
                )
            )
        step_action = as_action(env, action)
        for _ in range(m):
            self.obs, _, _, _, self.info = env.step(step_action)

    def _frame(self, data: MarketData) -> MarketData:
        """The bars to build the env on: the run's bars if known up front, else ``data`` and a placeholder."""
        if self.bars is None:
            return _with_placeholder(data)
        end = int(self.bars.index.searchsorted(data.index[-1]))
        rows = slice(end + 1 - data.n_bars, end + 1)
        if not (
            rows.start >= 0
            and self.bars.index[rows].equals(data.index)
            and np.array_equal(self.bars.values[rows], data.values)
        ):
            raise ValueError(f"the bars up to {data.index[-1]} differ from the run's bars given up front")
        return self.bars if end + 1 < self.bars.n_bars else _with_placeholder(self.bars)


def as_action(env: TradingEnvBase, value: Any) -> Any:
    """A journalled action back in the form the policy gave it (JSON keeps ints and floats apart; float64
    is kept, as the backtest passes the policy's action to the env unconverted).

    :param env: the env whose action space shapes the action.
    :param value: the action's JSON form.
    """
    arr = np.asarray(value)
    shape = env.action_space.shape
    return arr.reshape(shape) if shape else arr.item()


def _with_placeholder(data: MarketData) -> MarketData:
    """``data`` and one more bar: the last close as open, high, low and close, no volume, one bar later."""
    last = data.values[-1:].copy()
    last[..., :VOLUME] = last[..., CLOSE : CLOSE + 1]
    last[..., VOLUME] = 0.0
    step = data.index[-1] - data.index[-2] if data.n_bars > 1 else pd.Timedelta(days=1)
    index = data.index.append(pd.DatetimeIndex([data.index[-1] + step]))
    return MarketData(np.concatenate([data.values, last]), index, data.symbols)
