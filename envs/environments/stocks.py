"""``AlpacaGym/Stocks-v0``: trade one symbol."""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Mapping

import numpy as np
import pandas as pd

from envs.data.market_data import CLOSE, HIGH, LOW, MarketData
from envs.environments.base import (
    DEFAULT_INITIAL_CASH,
    OBS_BOUND,
    StepInfo,
    TradingEnvBase,
    resolve_data,
    safe_log_ratio,
)
from envs.features import FeatureConfig, Features
from envs.sim.actions import InvalidActionError
from envs.sim.execution import ExecutionConfig, fill_one, should_trade, update_cost_basis_one
from envs.sim.portfolio import Fill
from envs.sim.sizing import Sizer

# The namedtuple's own constructor parses keywords; the tuple constructor skips that (half the cost).
_new_fill = partial(tuple.__new__, Fill)


class StocksEnv(TradingEnvBase):
    """Trade one symbol with realistic fills and costs.

    ## Description
    Each step the agent sees the bar that just closed and chooses a target position. The order fills at
    the next bar's open (``execution.fill_at``) with slippage, half the spread and commission, and the
    account is marked at that bar's close. Holding the same target never trades, so a held position
    drifts with its price like a real one.

    ## Action Space
    ``action_mode="discrete"`` (default): ``Discrete(2)``, 0 = flat, 1 = long; with
    ``execution={"allow_short": True}``, ``Discrete(3)``: 0 = short, 1 = flat, 2 = long (all of equity).
    ``"weights"`` or ``"continuous"``: ``Box([0 or -1], 1, (1,))``, the target weight of equity
    (``continuous`` has a second, cash, component and is normalised by the absolute sum).
    Anything outside the space raises :class:`~envs.sim.actions.InvalidActionError`.

    ## Observation Space
    ``Box(-10, 10, (window_size * n_features + 3,), float32)``: the last ``window_size`` rows of the
    causal, causally normalised feature matrix (oldest first), then the position's weight, its unrealised
    return against average cost, and the drawdown of equity from its peak.

    ## Rewards
    ``"log_return"`` (default): ``log(equity_t / equity_{t-1})`` after all costs, so an episode's rewards
    sum to ``log(final / initial equity)``. ``"differential_sharpe"`` and ``"drawdown_penalty"``: see
    :mod:`envs.environments.rewards`.

    ## Starting State
    All cash (``initial_cash``, default 100,000) at the first bar where every feature is defined and the
    window is full, or, with ``episode_length``, at a uniformly random bar leaving room for the episode.
    ``reset(options={"start": t})`` starts at bar ``t``.

    ## Episode End
    Truncated at the last bar of the data or after ``episode_length`` steps; terminated if equity is
    wiped out (reward ``-20`` then).

    ## Info
    ``equity``, ``cash``, ``positions`` (shares, shape ``(1,)``), ``weights``, ``timestamp``, ``t`` (bar
    index), ``history`` (read-only :class:`~envs.data.history.History` of raw OHLCV up to now), ``fills`` (the
    step's :class:`~envs.sim.portfolio.Fill` records) and ``risk_events``.

    ## Arguments
    :param data: a :class:`MarketData`, a data spec string (``"synthetic"``, ``"csv:PATH"``, ...), or
        ``None`` for the embedded synthetic market.
    :param symbol: which symbol to trade (default: the first).
    :param window_size: number of feature rows in the observation (default one: the default features
        already summarise the past).
    :param action_mode: ``"discrete"``, ``"weights"`` or ``"continuous"``.
    :param reward: ``"log_return"``, ``"differential_sharpe"`` or ``"drawdown_penalty"``.
    :param reward_eta: adaptation rate of the differential Sharpe reward.
    :param drawdown_penalty: weight of drawdown increases in the ``drawdown_penalty`` reward.
    :param episode_length: ``None`` for a full pass, or the length of randomly placed episodes: a number of
        bars or trading time on the data's calendar ("30D", "1W", "6h").
    :param initial_cash: starting cash.
    :param execution: :class:`~envs.sim.execution.ExecutionConfig` or a dict of its fields.
    :param features: a :class:`~envs.features.FeatureConfig`, precomputed :class:`~envs.features.Features`,
        or ``None`` for :data:`~envs.features.OBSERVATION_FEATURES`.
    :param risk: an ``envs.sim.risk.RiskConfig`` to put the risk layer between actions and execution.
    :param render_mode: ``"rgb_array"`` or ``"ansi"``.
    :param position_size: weight of a full-conviction action (see :class:`~envs.sim.actions.ActionAdapter`);
        the experiment spec's sizing fraction, so an agent trades the notional the rule bots do.
    :param sizing: a sizing rule of :mod:`envs.sim.sizing` (instead of ``position_size``): the action's
        weights are the signal, sized bar by bar by the rule the rule bots and predictors use
        (:class:`~envs.sim.sizing.SizingState`), so an RL agent trades under the spec's volatility or Kelly
        sizing too. A fixed fraction is the position size.

    ## Version History
    * v0: initial version.
    """

    def __init__(
        self,
        data: MarketData | str | None = None,
        symbol: str | None = None,
        window_size: int = 1,
        action_mode: str = "discrete",
        reward: str = "log_return",
        reward_eta: float = 0.01,
        drawdown_penalty: float = 1.0,
        episode_length: int | str | None = None,
        initial_cash: float = DEFAULT_INITIAL_CASH,
        execution: ExecutionConfig | Mapping[str, Any] | None = None,
        features: FeatureConfig | Features | None = None,
        risk: Any = None,
        render_mode: str | None = None,
        position_size: float = 1.0,
        sizing: Sizer | None = None,
    ) -> None:
        data = resolve_data(data)
        if symbol is None:
            symbol = data.symbols[0]
        if symbol not in data.symbols:
            raise ValueError(f"symbol {symbol!r} not in data; available: {list(data.symbols)}")
        if data.n_symbols > 1:
            data = data.select([symbol])
        super().__init__(
            data,
            window_size=window_size,
            features=features,
            execution=execution,
            reward=reward,
            reward_eta=reward_eta,
            drawdown_penalty=drawdown_penalty,
            episode_length=episode_length,
            initial_cash=initial_cash,
            n_state=3,
            action_mode=action_mode,
            risk=risk,
            render_mode=render_mode,
            position_size=position_size,
            sizing=sizing,
        )
        self.symbol = symbol
        self._discrete = action_mode == "discrete"
        # Settings read every step, looked up once: attribute chains cost as much as the arithmetic here.
        ex = self.execution
        self._band = ex.min_weight_change
        self._borrow_per_bar = ex.borrow_per_bar if ex.borrow_rate else 0.0
        mine = ex.for_symbol(symbol)  # a per-asset fee and minimum order size, if the config has one
        self._cost_args = (
            mine.commission, ex.commission_per_share, ex.price_impact, not ex.fractional, ex.max_leverage,
            mine.min_order_qty,
        )
        self._choice_weight = tuple(float(w) for w in self.adapter._choice_weight) if self._discrete else ()
        self._weight_of_choice = dict(enumerate(self._choice_weight))
        self._reset_account()

    def _load(self, data: MarketData, features: Features) -> None:
        super()._load(data, features)
        # Plain Python rows: indexing a list of floats is several times cheaper than numpy scalar access.
        self._bars = data.values[:, 0, :].tolist()
        self._closes = data.values[:, 0, CLOSE].tolist()
        self._open_bars = self._tradable[:, 0].tolist()

    # ------------------------------------------------------------------ account
    def _reset_account(self) -> None:
        self._cash = self.initial_cash
        self._shares = 0.0
        self._avg_cost = math.nan
        self._target = 0.0
        self._equity = self.initial_cash
        self._peak = self.initial_cash
        self.realised_pnl = 0.0
        self.commission_paid = 0.0
        self.impact_paid = 0.0
        self.borrow_paid = 0.0
        self.trades: list[Fill] = []
        self.equity_curve = [self.initial_cash]

    def _account_state(self) -> tuple[np.ndarray, np.ndarray, float]:
        weight = self._shares * self._closes[self._t] / self._equity if self._equity > 0 else 0.0
        return np.array((self._shares,)), np.array((weight,)), self._cash

    def _observe(self, fills: tuple = (), risk_events: tuple = ()) -> tuple[np.ndarray, StepInfo]:
        """Observation and info at the current bar, from one read of the account.

        Both are fresh objects every call: users keep them, and Gymnasium's checker warns about shared ones.
        """
        t = self._t
        shares = self._shares
        equity = self._equity
        peak = self._peak
        windows = self._windows
        obs = (windows[t - self.window_size + 1] if windows is not None else self._window_rows(t)).copy()
        # the table's rows hold a zero state, which is the state of a flat account at its peak
        n = self._n_window
        if shares:
            price = self._closes[t]
            weight = shares * price / equity
            unrealised = price / self._avg_cost - 1.0 if shares > 0 else 1.0 - price / self._avg_cost
            # clipped by comparisons: min(max()) would cost more than the rest of this block
            obs[n] = OBS_BOUND if weight > OBS_BOUND else -OBS_BOUND if weight < -OBS_BOUND else weight
            obs[n + 1] = OBS_BOUND if unrealised > OBS_BOUND else -OBS_BOUND if unrealised < -OBS_BOUND else unrealised
            positions = np.array((shares,))
            weights = np.array((weight if equity > 0 else 0.0,))
        else:
            positions = np.zeros(1)
            weights = np.zeros(1)
        if equity < peak:
            obs[n + 2] = 1.0 - equity / peak
        history = self._histories[t]  # the cache read inline: a call to _history costs more than the read
        if history is None:
            history = self._history(t)
        info = StepInfo({
            "equity": equity,
            "cash": self._cash,
            "positions": positions,
            "weights": weights,
            "timestamp": self._timestamps[t],
            "t": t,
            "history": history,
            "fills": fills,
            "risk_events": risk_events,
        })
        return obs, info

    def trade_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.trades, columns=Fill._fields)

    # ------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._choose_start(options)
        self._reset_account()
        if self._risk is not None:
            self._risk.reset(self.initial_cash)
        if self._sizing is not None:
            self._sizing.reset()
        self.reward_fn.reset(self.initial_cash)
        return self._observe()

    def _target_weight(self, action: Any) -> float:
        if self._discrete:
            try:
                choice = action.__index__()
            except (AttributeError, TypeError):
                choice = None
            if choice is None or not 0 <= choice < len(self._choice_weight):
                raise InvalidActionError(
                    f"invalid action {action!r}: expected {self.adapter.describe()}"
                )
            return self._choice_weight[choice]
        return float(self.adapter.to_weights(action)[0])

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        t = self._t
        if t >= self._end_t:
            raise RuntimeError("step() called after the episode ended; call reset()")
        # A plain int in the discrete space is looked up directly; everything else is validated in full.
        target = self._weight_of_choice.get(action) if action.__class__ is int else None
        if target is None:
            target = self._target_weight(action)
        if self._sizing is not None:
            target = float(self._sized(np.array((target,)))[0])
        reason = "policy"
        force = False
        risk_events: tuple = ()
        if self._risk is not None:
            target, reason, force, risk_events = self._apply_risk(target)
        t1 = t + 1
        bar = self._bars[t1]
        fills: tuple = ()
        last = self._target
        if should_trade(target, last, self._band, self._open_bars[t1], force):
            fills = self._trade(target, bar, t1, reason)
        shares = self._shares
        close = bar[CLOSE]
        if shares < 0 and self._borrow_per_bar:
            fee = self._borrow_per_bar * -shares * close
            self._cash -= fee
            self.borrow_paid += fee
        prev = self._equity
        equity = self._equity = self._cash + shares * close
        if equity > self._peak:
            self._peak = equity
        self._t = t1
        self.equity_curve.append(equity)
        terminated = equity <= 0.0
        if self._log_reward or terminated:
            reward = safe_log_ratio(equity, prev)
        else:
            reward = float(self.reward_fn(np.float64(prev), np.float64(equity)))
        obs, info = self._observe(fills, risk_events)
        return obs, reward, terminated, t1 >= self._end_t and not terminated, info

    def _trade(self, target: float, bar: list[float], t1: int, reason: str) -> tuple:
        shares = self._shares
        # unpacked by name: a starred call costs ~80 ns more
        c, per_share, k, whole, max_leverage, min_qty = self._cost_args
        cash, new_shares, traded, price, commission, impact = fill_one(
            self._cash, shares, target, bar[self._fill_field], bar[LOW], bar[HIGH], c, per_share, k, whole,
            max_leverage, min_qty,
        )
        self._target = target
        if not traded:
            return ()
        self._avg_cost, realised = update_cost_basis_one(shares, self._avg_cost, traded, price)
        self.realised_pnl += realised
        self.commission_paid += commission
        self.impact_paid += impact
        self._cash = cash
        self._shares = new_shares
        fill = _new_fill((self._timestamps[t1], self.symbol, traded, price, commission, impact, reason))
        self.trades.append(fill)
        return (fill,)

    def _apply_risk(self, target: float) -> tuple[float, str, bool, tuple]:
        allowed, reasons, force, events = self._risk_check(np.array([target]), np.array([self._avg_cost]))
        return float(allowed[0]), str(reasons[0]), bool(force[0]), events
