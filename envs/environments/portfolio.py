"""``AlpacaGym/Portfolio-v0``: allocate equity across many symbols."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from envs.data.market_data import CLOSE, HIGH, LOW, MarketData
from envs.environments.base import DEFAULT_INITIAL_CASH, TradingEnvBase, resolve_data, safe_log_ratio
from envs.features import FeatureConfig, Features
from envs.sim.execution import ExecutionConfig, rebalance, should_trade_batch
from envs.sim.portfolio import Fill, Portfolio
from envs.sim.sizing import Sizer


class PortfolioEnv(TradingEnvBase):
    """Hold a portfolio of several symbols, rebalanced to target weights.

    ## Description
    Each step the agent sees the bars that just closed and chooses target weights. Symbols whose target
    changed (by more than ``execution.min_weight_change``) trade at the next bar's open; sells settle
    before buys and buys are scaled to the cash available, so cash never goes negative without margin.
    The account is marked at that bar's close.

    ## Action Space
    ``action_mode="continuous"`` (default): ``Box(0, 1, (S + 1,))``, weights for every symbol and for cash
    (last), normalised by their sum (``Box(-1, 1, ...)`` and the absolute sum when shorting is allowed).
    ``"weights"``: ``Box(0 or -1, 1, (S,))``, target weights scaled down if the gross exceeds
    ``execution.max_leverage``. ``"discrete"``: ``MultiDiscrete([2] * S)`` flat/long per symbol
    (``[3] * S`` short/flat/long with shorting); chosen symbols share equity equally.

    ## Observation Space
    ``Box(-10, 10, (window_size * S * n_features + S + 2,), float32)``: the last ``window_size`` rows of
    every symbol's causal features (oldest first, symbols inner), then each symbol's weight, the cash
    weight and the drawdown from peak equity.

    ## Rewards
    As :class:`~envs.environments.stocks.StocksEnv`: log equity return after costs by default.

    ## Starting State, Episode End, Info
    As :class:`~envs.environments.stocks.StocksEnv`; ``positions`` and ``weights`` have shape ``(S,)``.

    ## Arguments
    :param data: a :class:`MarketData`, a data spec string, or ``None`` for the synthetic market.
    :param symbols: the symbols to trade (default: all in the data).
    :param window_size: number of feature rows in the observation (default one).
    :param action_mode: ``"continuous"``, ``"weights"`` or ``"discrete"``.
    :param reward: ``"log_return"``, ``"differential_sharpe"`` or ``"drawdown_penalty"``.
    :param reward_eta: adaptation rate of the differential Sharpe reward.
    :param drawdown_penalty: weight of drawdown increases in the ``drawdown_penalty`` reward.
    :param episode_length: ``None`` for a full pass, or the length of randomly placed episodes: a number of
        bars or trading time on the data's calendar ("30D", "1W", "6h").
    :param initial_cash: starting cash.
    :param execution: :class:`~envs.sim.execution.ExecutionConfig` or a dict of its fields.
    :param features: a :class:`~envs.features.FeatureConfig`, precomputed features, or ``None`` for
        :data:`~envs.features.OBSERVATION_FEATURES`.
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
        symbols: Sequence[str] | None = None,
        window_size: int = 1,
        action_mode: str = "continuous",
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
        if symbols is not None and tuple(symbols) != data.symbols:
            data = data.select(list(symbols))
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
            n_state=data.n_symbols + 2,
            action_mode=action_mode,
            risk=risk,
            render_mode=render_mode,
            position_size=position_size,
            sizing=sizing,
        )
        self.symbols = data.symbols
        self.portfolio = Portfolio(self.symbols, self.initial_cash)
        self._target = np.zeros(data.n_symbols)
        self.equity_curve = [self.initial_cash]

    # ------------------------------------------------------------------ account
    def _closes(self, t: int) -> np.ndarray:
        return self.data.values[t, :, CLOSE]

    def _account_state(self) -> tuple[np.ndarray, np.ndarray, float]:
        p = self.portfolio
        return p.shares.copy(), p.weights(self._closes(self._t)), p.cash

    def _state(self) -> np.ndarray:
        weights = self.portfolio.weights(self._closes(self._t))
        return np.concatenate([weights, [1.0 - weights.sum(), self._drawdown()]])

    def trade_frame(self) -> pd.DataFrame:
        return self.portfolio.trade_frame()

    # ------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._choose_start(options)
        self.portfolio.reset()
        self._target = np.zeros(self.data.n_symbols)
        self._equity = self._peak = self.initial_cash
        self.equity_curve = [self.initial_cash]
        if self._risk is not None:
            self._risk.reset(self.initial_cash)
        if self._sizing is not None:
            self._sizing.reset()
        self.reward_fn.reset(self.initial_cash)
        return self._observation(self._state()), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._t >= self._end_t:
            raise RuntimeError("step() called after the episode ended; call reset()")
        target = self.adapter.to_weights(action)
        if self._sizing is not None:
            target = self._sized(target)
        reasons = np.full(self.data.n_symbols, "policy", dtype=object)
        force = np.zeros(self.data.n_symbols, dtype=bool)
        risk_events: tuple = ()
        if self._risk is not None:
            target, reasons, force, risk_events = self._apply_risk(target)
        t1 = self._t + 1
        bar = self.data.values[t1]
        active = should_trade_batch(
            target, self._target, self.execution.min_weight_change, self._tradable[t1], force
        )
        fills: tuple = ()
        if active.any():
            result = rebalance(
                np.float64(self.portfolio.cash),
                self.portfolio.shares,
                target,
                bar[:, self._fill_field],
                bar[:, LOW],
                bar[:, HIGH],
                self.execution,
                active,
                self.data.symbols,
            )
            self._target = np.where(active, target, self._target)
            fills = tuple(self._book(result, t1, reasons))
        close = bar[:, CLOSE]
        self.portfolio.accrue_borrow(close, self.execution.borrow_per_bar)
        prev = self._equity
        self._equity = self.portfolio.equity(close)
        self._peak = max(self._peak, self._equity)
        self._t = t1
        self.equity_curve.append(self._equity)
        terminated = self._equity <= 0.0
        if self._log_reward or terminated:
            reward = safe_log_ratio(self._equity, prev)
        else:
            reward = float(self.reward_fn(np.float64(prev), np.float64(self._equity)))
        truncated = t1 >= self._end_t and not terminated
        return self._observation(self._state()), reward, terminated, truncated, self._info(fills, risk_events)

    def _book(self, result: Any, t1: int, reasons: np.ndarray) -> list[Fill]:
        fills = self.portfolio.apply(result, self.data.index[t1])
        if (reasons != "policy").any():
            by_symbol = dict(zip(self.symbols, reasons))
            fills = [f._replace(reason=by_symbol[f.symbol]) for f in fills]
            self.portfolio.trades[-len(fills) :] = fills
        return fills

    def _apply_risk(self, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple]:
        return self._risk_check(target, self.portfolio.avg_cost.copy())
