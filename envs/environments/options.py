"""``AlpacaGym/Options-v0``: trade option strategies on one underlying with synthetic, causal chains."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd

from envs.data.history import History
from envs.data.market_data import MarketData
from envs.environments.base import DEFAULT_INITIAL_CASH, episode_bounds, resolve_data, safe_log_ratio
from envs.environments.rewards import Reward
from envs.features import OBS_BOUND
from envs.options.account import OptionAccount, OptionCosts, OptionFill, Settlement
from envs.options.chains import ChainConfig, SyntheticChains
from envs.options.strategies import MULTIPLIER, TEMPLATES, Leg, Strategy, build_strategy, profit_range
from envs.sim.actions import InvalidActionError

ENV_ID = "AlpacaGym/Options-v0"
FEATURE_WARMUP = 50  # the longest underlying feature (close / SMA50)

DEFAULT_ALLOCATION: Mapping[str, float] = MappingProxyType({
    "covered_call": 0.5, "cash_secured_put": 0.5,
    "bull_put": 0.05, "bear_call": 0.05, "iron_condor": 0.05,
    "long_straddle": 0.05, "calendar": 0.05, "diagonal": 0.05,
    "bull_call": 0.02, "bear_put": 0.02, "long_strangle": 0.02,
})  # read-only: it is the default argument of every OptionsEnv
"""Fraction of equity each template puts at risk (premium paid or maximum loss, the larger) by default.

The budget is set so that a typical decade's worst run of losing trades stays inside the 20% maximum
drawdown of the trading config. Measured on synthetic markets the backtest does not use (seeds 1-4, 10 years
each, every template held to expiry at delta/DTE 0.15/45, 0.30/30 and 0.30/45): the stock-backed templates'
worst run cost at most 0.3 of the amount at risk (the shares or the strike's cash, of which a trade loses a
few percent), so they keep half of equity (that run: 15% of it); credit spreads, iron condors, straddles,
calendars and diagonals lose over 90% of it in at most 19% of trades and their median worst run costs
2.0-5.2 times it, so 0.05 keeps that run at 10-23% of equity; the out-of-the-money debit spreads and
strangles lose over 90% of their premium in 52-79% of trades and their median worst run costs 7.4-16.7
premiums, so 0.02 keeps it at 14-29%."""


@dataclass(frozen=True)
class ActionLayout:
    """How ``Discrete`` actions map to decisions: 0 = hold, 1 = close, then template x delta x DTE.

    :param templates: strategy template names (keys of :data:`~envs.options.strategies.TEMPLATES`).
    :param delta_buckets: target absolute deltas.
    :param dte_buckets: target days to expiry.
    """

    templates: tuple[str, ...]
    delta_buckets: tuple[float, ...]
    dte_buckets: tuple[int, ...]

    HOLD = 0
    CLOSE = 1

    def __post_init__(self) -> None:
        unknown = [t for t in self.templates if t not in TEMPLATES]
        if unknown or not self.templates:
            raise ValueError(f"templates must be a non-empty subset of {sorted(TEMPLATES)}, got {unknown or '()'}")
        if not self.delta_buckets or not all(0.0 < d < 1.0 for d in self.delta_buckets):
            raise ValueError(f"delta_buckets must be non-empty and in (0, 1), got {self.delta_buckets}")
        if not self.dte_buckets or not all(int(d) == d and d >= 1 for d in self.dte_buckets):
            raise ValueError(f"dte_buckets must be non-empty positive integers, got {self.dte_buckets}")

    @property
    def n(self) -> int:
        """Number of actions."""
        return 2 + len(self.templates) * len(self.delta_buckets) * len(self.dte_buckets)

    def encode(self, template: str, delta: float, dte: int) -> int:
        """Action index of a template with a delta and DTE bucket.

        :param template: template name.
        :param delta: one of :attr:`delta_buckets`.
        :param dte: one of :attr:`dte_buckets`.
        :return: the action.
        """
        for name, value, options in (("template", template, self.templates), ("delta", delta, self.delta_buckets),
                                     ("dte", dte, self.dte_buckets)):
            if value not in options:
                raise ValueError(f"{name} {value!r} is not one of this env's {name} buckets {options}")
        i, j, k = self.templates.index(template), self.delta_buckets.index(delta), self.dte_buckets.index(dte)
        return 2 + (i * len(self.delta_buckets) + j) * len(self.dte_buckets) + k

    def decode(self, action: int) -> tuple[str, float | None, int | None]:
        """``("hold", None, None)``, ``("close", None, None)`` or ``(template, delta, dte)``.

        :param action: an action index.
        :return: the decision.
        """
        if action == self.HOLD:
            return "hold", None, None
        if action == self.CLOSE:
            return "close", None, None
        rest, k = divmod(action - 2, len(self.dte_buckets))
        i, j = divmod(rest, len(self.delta_buckets))
        return self.templates[i], self.delta_buckets[j], self.dte_buckets[k]


def _underlying_features(close: np.ndarray) -> np.ndarray:
    """``(T, 5)`` causal features: 1/5/20-bar log returns, 20-bar realised vol (annual), close/SMA50 - 1."""
    log_close = pd.Series(np.log(close))
    ret = log_close.diff()
    out = np.column_stack([
        ret, log_close.diff(5), log_close.diff(20),
        ret.rolling(20).std() * math.sqrt(252.0),
        close / pd.Series(close).rolling(FEATURE_WARMUP).mean() - 1.0,
    ])
    return np.nan_to_num(out)


PUT_CALL_WINDOW = 20


def _put_call_features(ratio: np.ndarray) -> np.ndarray:
    """``(T, 2)`` causal sentiment features of the chains' put/call volume ratio: its log, and its log over the
    mean of the last :data:`PUT_CALL_WINDOW` bars' (positive when puts trade more than lately: fear)."""
    log_ratio = pd.Series(np.log(ratio))
    return np.column_stack([log_ratio, log_ratio - log_ratio.rolling(PUT_CALL_WINDOW).mean()])


class OptionsEnv(gym.Env):
    """Trade option strategies on one underlying: covered calls, cash-secured puts, verticals, condors...

    ## Description
    Each step the agent sees the bar that just closed, with the option chain listed at that close, and
    picks a strategy template with a target delta and days-to-expiry bucket, or holds, or closes. The
    decision is a *target*: a template closes whatever is held and opens that strategy (a template that
    resolves to the legs already held does nothing), ``close`` goes flat (options and shares), ``hold``
    keeps everything. Strikes are chosen on the chain at the decision's close; orders fill at the next
    bar's open against the surface known at the decision (options: buys at the ask, sells at the bid, i.e.
    half the spread, plus ``commission_per_contract``; stock: half ``stock_spread_bps`` and
    ``stock_commission``). Positions are sized in whole units so that at most ``allocation`` of equity
    (a fraction per template, :data:`DEFAULT_ALLOCATION` by default) is at risk, i.e. the larger of the
    premium paid and the maximum loss, and cash covers the worst case and never goes negative. Every close,
    open positions are marked to model (mid) and expiring legs are settled; see :mod:`envs.options.account`
    for exercise, assignment and cash settlement. Calendars and diagonals are closed at their front expiry.

    ## Action Space
    ``Discrete(2 + templates x deltas x dtes)``: 0 = hold, 1 = close all, then every template with every
    delta and DTE bucket (:class:`ActionLayout`; ``info["actions"].encode("iron_condor", 0.15, 45)`` gives
    an index). Anything else raises :class:`~envs.sim.actions.InvalidActionError`.

    ## Observation Space
    ``Box(-10, 10, (20,), float32)``: underlying (1/5/20-bar log returns, 20-bar realised vol,
    close/SMA50 - 1), volatility state (ATM 30-day IV, IV rank, IV percentile, 90-30 day term slope, 30-day
    skew), position Greeks over equity (delta x spot, gamma x spot^2 / 100, vega, theta per day x 100) and
    the account (cash, stock and option value over equity, open option P/L over equity, days to the next
    expiry / 60, whether options are held). With ``sentiment=True``, ``(22,)``: the underlying and volatility
    state are followed by the chains' put/call volume ratio (its log, and its log over its 20-bar mean).

    ## Rewards
    ``"log_return"`` (default): ``log(equity_t / equity_{t-1})`` after all costs, so rewards sum to
    ``log(final / initial equity)``; ``"differential_sharpe"`` and ``"drawdown_penalty"`` as in
    :mod:`envs.environments.rewards`.

    ## Starting State
    All cash at the first bar where the IV rank and the underlying features are defined, or with
    ``episode_length`` at a random bar leaving room for the episode; ``reset(options={"start": t})``.

    ## Episode End
    Truncated at the last bar or after ``episode_length`` steps; terminated if equity is wiped out.

    ## Info
    ``equity``, ``cash``, ``positions`` (shares, shape ``(1,)``), ``weights`` (stock weight), ``timestamp``,
    ``t``, ``history`` (read-only raw OHLCV up to now), ``fills`` and ``settlements`` (this step's
    :class:`~envs.options.account.OptionFill` records), ``legs`` (held :class:`~envs.options.strategies.Leg`
    tuple), ``strategy`` (template held or None), ``position`` (entry cost, mark, P/L, days to expiry),
    ``greeks`` (position delta/gamma/vega/theta/rho), ``iv``, ``iv_rank``, ``iv_percentile``,
    ``term_slope``, ``skew``, ``events`` (why a requested trade was skipped or refused), ``risk_events``
    (always empty: no risk layer here yet) and ``actions`` (the layout).

    ## Arguments
    :param data: a :class:`MarketData`, a data spec string, or ``None`` for a one-symbol synthetic market
        whose hidden volatility and regimes also drive the surface.
    :param symbol: the underlying (default: the first symbol).
    :param chains: a :class:`SyntheticChains` for the symbol, a :class:`ChainConfig`, or ``None``.
    :param templates: template names offered as actions (default: all of them).
    :param delta_buckets: target absolute deltas.
    :param dte_buckets: target days to expiry.
    :param allocation: fraction of equity put at risk per position: one fraction for every template, or
        ``{template: fraction}`` overriding :data:`DEFAULT_ALLOCATION` (half of equity for covered calls and
        cash-secured puts, 0.02-0.05 for the defined-risk templates) for the templates it names.
    :param costs: an :class:`~envs.options.account.OptionCosts`.
    :param settlement: ``"physical"`` (default) or ``"cash"``.
    :param reward: ``"log_return"``, ``"differential_sharpe"`` or ``"drawdown_penalty"``.
    :param episode_length: ``None`` for a full pass, or the length of randomly placed episodes.
    :param initial_cash: starting cash.
    :param render_mode: ``"ansi"`` for a text summary.
    :param sentiment: observe the put/call volume ratio of the chains too (shape 22 instead of 20).

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        data: MarketData | str | None = None,
        symbol: str | None = None,
        chains: SyntheticChains | ChainConfig | None = None,
        templates: tuple[str, ...] = tuple(TEMPLATES),
        delta_buckets: tuple[float, ...] = (0.15, 0.30, 0.45),
        dte_buckets: tuple[int, ...] = (7, 30, 45),
        allocation: float | Mapping[str, float] = DEFAULT_ALLOCATION,
        costs: OptionCosts | None = None,
        settlement: Settlement = "physical",
        reward: str = "log_return",
        episode_length: int | None = None,
        initial_cash: float = DEFAULT_INITIAL_CASH,
        render_mode: str | None = None,
        sentiment: bool = False,
    ) -> None:
        state = None
        if data is None:
            from envs.data.synthetic import SyntheticConfig, generate_market_with_state

            data, state = generate_market_with_state(SyntheticConfig(n_symbols=1))
        data = resolve_data(data)
        symbol = data.symbols[0] if symbol is None else symbol
        if symbol not in data.symbols:
            raise ValueError(f"symbol {symbol!r} not in data; available: {list(data.symbols)}")
        self.allocation = allocation_table(allocation)
        if settlement not in ("physical", "cash"):
            raise ValueError(f"settlement must be 'physical' or 'cash', got {settlement!r}")
        if not np.isfinite(initial_cash) or initial_cash <= 0:
            raise ValueError(f"initial_cash must be a positive number, got {initial_cash!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.data = data.select([symbol]) if data.n_symbols > 1 else data
        if isinstance(chains, SyntheticChains):
            if chains.close.size != self.data.n_bars:
                raise ValueError(f"chains cover {chains.close.size} bars but the data has {self.data.n_bars}")
            self.chains = chains
        else:
            self.chains = SyntheticChains.from_market(self.data, config=chains, state=state)
        self.layout = ActionLayout(tuple(templates), tuple(delta_buckets), tuple(int(d) for d in dte_buckets))
        self.costs = costs or OptionCosts()
        self.settlement = settlement
        self.initial_cash = float(initial_cash)
        self.reward_fn = Reward(reward)
        self._log_reward = reward == "log_return"
        self.render_mode = render_mode

        self.action_space = gym.spaces.Discrete(self.layout.n)
        self.sentiment = bool(sentiment)
        shape = (20 + 2 * self.sentiment,)
        self.observation_space = gym.spaces.Box(-OBS_BOUND, OBS_BOUND, shape=shape, dtype=np.float32)
        self._open = self.data.open[:, 0]
        self._close = self.data.close[:, 0]
        self._dates = self.chains.dates
        self._timestamps = self.data.index.tolist()
        ch = self.chains
        market = np.column_stack([_underlying_features(self._close), ch.atm_iv30, ch.iv_rank, ch.iv_percentile,
                                  ch.term_slope, ch.skew_30d])
        if self.sentiment:
            market = np.column_stack([market, _put_call_features(ch.put_call_ratio)])
        self._market = np.nan_to_num(market).astype(np.float32)
        self.first_t = max(ch.warmup, FEATURE_WARMUP)  # FEATURE_WARMUP > PUT_CALL_WINDOW
        self.last_t = self.data.n_bars - 1
        if self.last_t - self.first_t < 1:
            raise ValueError(f"data has {self.data.n_bars} bars; the options env needs more than {self.first_t + 1}")
        if episode_length is not None and not 1 <= episode_length <= self.last_t - self.first_t:
            raise ValueError(f"episode_length must be in [1, {self.last_t - self.first_t}], got {episode_length!r}")
        self.episode_length = episode_length
        self._t = self._start_t = self._end_t = self.first_t
        self.account = OptionAccount(self.initial_cash, self.costs)
        self._equity = self.initial_cash
        self.equity_curve: list[float] = []
        self.fills: list[OptionFill] = []

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._start_t, self._end_t = episode_bounds(
            self.np_random, self.first_t, self.last_t, self.episode_length, options
        )
        self._t = self._start_t
        self.account = OptionAccount(self.initial_cash, self.costs)
        self._equity = self.initial_cash
        self.reward_fn.reset(self._equity)
        self.equity_curve = [self._equity]
        self.fills = []
        marks = self._marks(self._t)
        return self._observation(marks), self._info(marks, (), (), ())

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._t >= self._end_t:
            raise RuntimeError("step() called after the episode ended; call reset()")
        decision = self._decode(action)
        t, u = self._t, self._t + 1
        prev = self._equity
        fills: list[OptionFill] = []
        events: list[str] = []
        if decision[0] == "close":
            fills += self._close_all(t, u, "close", events)
        elif decision[0] != "hold":
            fills += self._open_strategy(decision, t, u, events)
        settlements = self._settle(u)
        self._t = u
        marks = self._marks(u)
        account = self.account
        self._equity = float(account.cash + account.shares * self._close[u] + account.option_value(marks[0]))
        self.fills.extend(fills + settlements)
        self.equity_curve.append(self._equity)
        terminated = bool(self._equity <= 0.0)
        if self._log_reward or terminated:
            reward = safe_log_ratio(self._equity, prev)
        else:
            reward = float(self.reward_fn(np.float64(prev), np.float64(self._equity)))
        truncated = bool(u >= self._end_t and not terminated)
        return self._observation(marks), reward, terminated, truncated, self._info(marks, fills, settlements, events)

    def render(self) -> str | None:
        """``ansi``: a one-line summary of the account."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi'")
            return None
        legs = ", ".join(f"{leg.quantity:+g} {leg.kind} {leg.strike:g} {leg.expiry}" for leg in self.account.legs)
        return (f"{self._timestamps[self._t]:%Y-%m-%d} equity {self._equity:,.2f} cash {self.account.cash:,.2f} "
                f"shares {self.account.shares:g} {self.account.strategy or 'no options'} [{legs}]")

    # ------------------------------------------------------------------ decisions
    def _decode(self, action: Any) -> tuple[str, float | None, int | None]:
        try:
            value = int(np.asarray(action).reshape(()))
            valid = value == np.asarray(action) and self.action_space.contains(value)
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise InvalidActionError(
                f"action must be an integer in [0, {self.layout.n - 1}] (0 hold, 1 close, then "
                f"{len(self.layout.templates)} templates x {len(self.layout.delta_buckets)} deltas x "
                f"{len(self.layout.dte_buckets)} DTEs), got {action!r}")
        return self.layout.decode(value)

    def _fill_quotes(self, t: int, u: int, strike: np.ndarray, expiry: np.ndarray, is_call: np.ndarray):  # noqa: ANN202
        return self.chains.quote(t, float(self._open[u]), self._dates[u], expiry, strike, is_call)

    def _close_all(self, t: int, u: int, reason: str, events: list[str]) -> list[OptionFill]:
        if not self._can_close(t, u, events):
            return []
        fills = self._close_legs(t, u, reason)
        if self.account.shares:
            fills.append(self.account.trade_stock(self._timestamps[u], -self.account.shares, float(self._open[u]),
                                                  reason))
        return fills

    def _can_close(self, t: int, u: int, events: list[str]) -> bool:
        """A cash account rejects an order it cannot pay for: buying back legs at the ask can cost more than
        cash (wide spreads on deep in-the-money legs) even though the position's expiry value is covered.
        Such a close is refused and the position is held, so cash never goes negative."""
        if not self.account.legs:
            return True
        strike, expiry, is_call, contracts = self.account.leg_arrays()
        q = self._fill_quotes(t, u, strike, expiry, is_call)
        flow = float(np.sum(contracts * np.where(contracts < 0, q.ask, q.bid))) * MULTIPLIER
        flow -= float(np.sum(np.abs(contracts))) * self.costs.commission_per_contract
        if self.account.cash + flow >= 0.0:
            return True
        events.append(f"close refused: buying back the legs costs {-flow:,.2f} but cash is "
                      f"{self.account.cash:,.2f}; holding to expiry, where the worst case is covered")
        return False

    def _close_legs(self, t: int, u: int, reason: str) -> list[OptionFill]:
        if not self.account.legs:
            return []
        strike, expiry, is_call, contracts = self.account.leg_arrays()
        q = self._fill_quotes(t, u, strike, expiry, is_call)
        stamp = self._timestamps[u]
        return [self.account.trade_option(stamp, Leg(leg.kind, -leg.quantity, leg.strike, leg.expiry),
                                          float(q.bid[i]), float(q.ask[i]), float(q.mid[i]), reason)
                for i, leg in enumerate(list(self.account.legs))]

    def _open_strategy(self, decision: tuple, t: int, u: int, events: list[str]) -> list[OptionFill]:
        template, delta, dte = decision
        try:
            strategy = build_strategy(template, self.chains.chain(t), delta, dte)
        except ValueError as exc:  # e.g. no listed strike far enough out for a wing: keep what is held
            events.append(f"{template}: not opened: {exc}")
            return []
        strike, expiry, is_call, contracts = strategy.arrays()
        q = self._fill_quotes(t, u, strike, expiry, is_call)
        spot = float(self._open[u])
        stock_fill = self.costs.stock_price(spot, 1.0)
        option_cash = float(np.sum(contracts * np.where(contracts > 0, q.ask, q.bid))) * MULTIPLIER
        commission = float(np.sum(np.abs(contracts))) * self.costs.commission_per_contract
        premium = option_cash + strategy.shares * stock_fill
        max_loss = profit_range(strategy, premium, vol=float(np.mean(q.iv)))[1]
        at_risk = max(premium, max_loss) + commission + strategy.shares * stock_fill * self.costs.stock_commission
        budget = self.allocation[template] * self._equity
        units = int(budget // at_risk) if np.isfinite(at_risk) and at_risk > 0 else 0
        target = [Leg(leg.kind, leg.quantity * units, leg.strike, leg.expiry) for leg in strategy.options]
        if units and sorted(map(repr, target)) == sorted(map(repr, self.account.legs)):
            return []  # already holding exactly this position
        if not self._can_close(t, u, events):
            return []
        fills = self._close_legs(t, u, "close")
        # Cash after the share trade must still cover the worst case of the new position.
        units = self._affordable(units, strategy, premium, at_risk, option_cash, commission, stock_fill)
        if units == 0:
            events.append(f"{template}: not opened: equity {self._equity:,.0f} x allocation "
                          f"{self.allocation[template]} and cash {self.account.cash:,.0f} do not cover one unit "
                          f"at risk {at_risk:,.2f}")
        stamp = self._timestamps[u]
        share_trade = strategy.shares * units - self.account.shares
        if share_trade:
            fills.append(self.account.trade_stock(stamp, share_trade, spot, "open" if share_trade > 0 else "close"))
        if units:
            for i, leg in enumerate(strategy.options):
                sized = Leg(leg.kind, leg.quantity * units, leg.strike, leg.expiry)
                fills.append(self.account.trade_option(stamp, sized, float(q.bid[i]), float(q.ask[i]),
                                                       float(q.mid[i]), "open"))
            self.account.strategy = strategy.name
        return fills

    def _affordable(self, units: int, strategy: Strategy, premium: float, at_risk: float, option_cash: float,
                    commission: float, stock_fill: float) -> int:
        """Largest ``n <= units`` whose worst case fits in cash, counting shares already held."""
        n = np.arange(units + 1)
        held = self.account.shares
        buy = np.maximum(strategy.shares * n - held, 0.0) * stock_fill * (1 + self.costs.stock_commission)
        sell = np.maximum(held - strategy.shares * n, 0.0) * self.costs.stock_price(stock_fill, -1.0) * (
            1 - self.costs.stock_commission)
        # Worst-case cash use beyond the share purchase: the at-risk amount minus the stock part of it.
        risk = n * (at_risk - strategy.shares * stock_fill * (1 + self.costs.stock_commission))
        fits = self.account.cash + sell - buy - risk >= 0.0
        return int(n[fits].max()) if fits.any() else 0

    # ------------------------------------------------------------------ expiry and marks
    def _settle(self, u: int) -> list[OptionFill]:
        account = self.account
        date = self._dates[u]
        if not account.legs or all(leg.expiry > date for leg in account.legs):
            return []
        _, expiry, _, _ = account.leg_arrays()
        # The last bar on or before each expiry (an expiry on a non-trading day settles at the bar before).
        bar = np.minimum(np.searchsorted(self._dates, expiry, side="right") - 1, u)
        stamp = self._timestamps[u]
        events = account.settle(stamp, date, self._close[bar], self.settlement)
        if account.legs and events:  # the rest of a calendar or diagonal goes with its front month
            strike, exp, is_call, _ = account.leg_arrays()
            q = self.chains.quote(u, float(self._close[u]), date, exp, strike, is_call)
            events += [account.trade_option(stamp, Leg(leg.kind, -leg.quantity, leg.strike, leg.expiry),
                                            float(q.bid[i]), float(q.ask[i]), float(q.mid[i]), "front_expiry")
                       for i, leg in enumerate(list(account.legs))]
        return events + account.restore_cash(stamp, float(self._close[u]))

    def _marks(self, t: int) -> tuple[np.ndarray, dict[str, float], np.ndarray]:
        """Mid per share, position Greeks and IVs of the held legs at the close of ``t``."""
        strike, expiry, is_call, contracts = self.account.leg_arrays()
        greeks = {"delta": self.account.shares, "gamma": 0.0, "vega": 0.0, "theta": 0.0, "rho": 0.0}
        if strike.size == 0:
            return np.zeros(0), greeks, np.zeros(0)
        q = self.chains.quote(t, float(self._close[t]), self._dates[t], expiry, strike, is_call)
        scale = contracts * MULTIPLIER
        for name in ("delta", "gamma", "vega", "theta", "rho"):
            greeks[name] += float(np.dot(scale, getattr(q.greeks, name)))
        return q.mid, greeks, q.iv

    # ------------------------------------------------------------------ observation and info
    def _observation(self, marks: tuple) -> np.ndarray:
        mids, greeks, _ = marks
        t, equity, account = self._t, max(self._equity, 1e-9), self.account
        spot = float(self._close[t])
        option_value = account.option_value(mids)
        state = np.array([
            greeks["delta"] * spot / equity, greeks["gamma"] * spot * spot / equity / 100.0,
            greeks["vega"] / equity, greeks["theta"] / 365.0 / equity * 100.0,
            account.cash / equity, account.shares * spot / equity, option_value / equity,
            (option_value - account.entry_cost) / equity if account.legs else 0.0,
            self._days_to_expiry(t) / 60.0, float(bool(account.legs)),
        ])
        obs = np.concatenate([self._market[t], state.astype(np.float32)])
        return np.clip(obs, -OBS_BOUND, OBS_BOUND).astype(np.float32)

    def _days_to_expiry(self, t: int) -> float:
        if not self.account.legs:
            return 0.0
        return float(min((leg.expiry - self._dates[t]).astype(np.int64) for leg in self.account.legs))

    def _info(self, marks: tuple, fills: list | tuple, settlements: list | tuple,
              events: list | tuple) -> dict[str, Any]:
        mids, greeks, ivs = marks
        t, account = self._t, self.account
        spot = float(self._close[t])
        option_value = account.option_value(mids)
        summary = self.chains.summary(t)
        return {
            "equity": self._equity,
            "cash": account.cash,
            "positions": np.array([account.shares]),
            "weights": np.array([account.shares * spot / self._equity if self._equity > 0 else 0.0]),
            "timestamp": self._timestamps[t],
            "t": t,
            "history": History(self.data, t),
            "fills": tuple(fills),
            "settlements": tuple(settlements),
            "legs": tuple(account.legs),
            "strategy": account.strategy,
            "position": {
                "entry_cost": account.entry_cost,
                "value": option_value,
                "pnl": option_value - account.entry_cost if account.legs else 0.0,
                "dte": self._days_to_expiry(t) if account.legs else None,
                "iv": tuple(float(v) for v in ivs),
            },
            "greeks": greeks,
            **summary,
            "events": tuple(events),
            "risk_events": (),
            "actions": self.layout,
        }

    # ------------------------------------------------------------------ run record
    def equity_series(self) -> pd.Series:
        """Equity at every close of the episode so far, starting with the initial equity."""
        idx = self.data.index[self._start_t: self._start_t + len(self.equity_curve)]
        return pd.Series(self.equity_curve, index=idx, name="equity")

    def trade_frame(self) -> pd.DataFrame:
        """The episode's fills and settlements, one row each, in the stock envs' trade-log columns.

        ``symbol`` is the underlying for stock and an OCC-style symbol per option contract, ``quantity`` is
        in shares (contracts x 100) and ``price`` per share, so quantity x price is the cash traded and
        :func:`envs.sim.trades.round_trips` gives per-contract P/L; ``contracts``, ``kind``, ``strike`` and
        ``expiry`` keep the option detail, ``impact_cost`` is the half-spread paid.
        """
        frame = pd.DataFrame(self.fills, columns=OptionFill._fields)
        underlying = self.data.symbols[0]
        options = (frame["kind"] != "stock").to_numpy()
        frame.insert(1, "symbol", [f.symbol(underlying) for f in self.fills])
        frame["contracts"] = np.where(options, frame["quantity"], 0.0)
        frame["quantity"] = np.where(options, frame["quantity"] * MULTIPLIER, frame["quantity"])
        return frame.rename(columns={"spread_cost": "impact_cost"})


def holdings(info: dict[str, Any]) -> np.ndarray:
    """What is held after a bar, from the ``info`` of any of the envs (one row of the ``positions`` of
    :func:`envs.sim.metrics.compute_stats`): a stock env's positions; Options-v0's shares and gross option
    contracts, since an iron condor nets to zero contracts but is a position.

    :param info: the info dict of ``reset`` or ``step``.
    """
    if "legs" not in info:
        return np.asarray(info["positions"], dtype=np.float64)
    contracts = sum(abs(leg.quantity) for leg in info["legs"])
    return np.array([info["positions"][0], contracts], dtype=np.float64)


def allocation_table(allocation: float | Mapping[str, float]) -> dict[str, float]:
    """The fraction of equity every template puts at risk, from ``OptionsEnv``'s ``allocation`` argument.

    :param allocation: one fraction for every template, or ``{template: fraction}`` overriding
        :data:`DEFAULT_ALLOCATION` for the templates it names; fractions in (0, 1].
    :return: ``{template: fraction}`` for every template of :data:`~envs.options.strategies.TEMPLATES`.
    """
    if not isinstance(allocation, Mapping):
        value = _fraction(allocation, "allocation")
        return dict.fromkeys(TEMPLATES, value)
    unknown = sorted(set(allocation) - set(TEMPLATES), key=str)
    if unknown:
        raise ValueError(f"allocation names unknown template(s) {unknown}; known: {sorted(TEMPLATES)}")
    table = dict(DEFAULT_ALLOCATION)
    table.update({name: _fraction(value, f"allocation[{name!r}]") for name, value in allocation.items()})
    return table


def _fraction(value: Any, field: str) -> float:
    try:
        fraction = float(value)
    except (TypeError, ValueError):
        fraction = math.nan
    if isinstance(value, bool) or not 0.0 < fraction <= 1.0:  # NaN fails the comparison too
        raise ValueError(f"{field} must be in (0, 1], got {value!r}")
    return fraction

