"""The backtest engine: run one policy through the trading env and collect what a report needs.

Every stock policy runs in the same env (``Stocks-v0`` for one symbol, ``Portfolio-v0`` for several, in
the ``"weights"`` action mode unless the policy asks otherwise) with the same costs, risk layer and start
bar, so their results compare; options policies run in ``Options-v0`` on the same bars from the same
start bar (see below). Two ways through a stock env, with identical fills:

- **step**: ``env.reset`` then ``env.step`` bar by bar, the policy's ``act`` called on each ``info``
  (or its ``act_batch`` actions looked up per bar). Needed whenever the risk layer is on, because risk
  decisions depend on the account at each bar.
- **replay**: with the risk layer off and a policy offering ``act_batch``, the whole action series is
  replayed with the env's fill model in one vectorised pass (:mod:`envs.sim.replay`).

Policy hooks: a policy may carry ``env_options``, a dict of env arguments (``window_size``,
``features``, ``action_mode``) it was built for, e.g. a PPO agent trained on a feature window. Rule
bots read only the raw history, so by default the env computes a single cheap feature. A policy may
also name the env it trades in with ``env_id``; the options bots say ``"AlpacaGym/Options-v0"``.

Options runs (``Options-v0``, always stepped) trade one underlying, start at the first bar where IV
rank is defined, and go through the same metrics with these meanings:

- **costs**: options fill at the quoted bid/ask (half the spread) plus
  :attr:`BacktestConfig.commission_per_contract`; the stock leg pays the same commission and half
  spread (plus slippage) as the stock envs, so a covered call's shares cost what a stock bot's do.
  Fills are at the next open on whole contracts; the other :class:`~envs.sim.execution.ExecutionConfig`
  fields (``fill_at``, leverage, shorting, borrow) and the risk layer do not apply: the env sizes every
  position so that cash covers its worst case. The result's ``notes`` say which settings were ignored.
- **trades**: round trips per contract (OCC symbol) and for the shares, in shares-equivalent quantity
  (contracts x 100) and per-share prices, so an iron condor is four trades; a leg held to expiry ends at
  its settlement fill (0 if it expired worthless, intrinsic value if exercised or assigned); shares
  delivered by an exercise or assignment are stock fills at the settlement close, so they open or close
  stock trades (a covered call's assignment closes its shares). ``return`` is P/L over the premium paid
  or received when the leg opened (NaN for a leg sold at a zero bid).
- **positions and exposure**: ``positions`` holds shares and gross option contracts (all legs) after
  each bar; exposure is the share of bars ending with either.
- **turnover**: cash changing hands per year over average equity: option premium (price x 100 per
  contract), shares traded, and the shares and intrinsic value moved by exercise and assignment.
- **benchmark**: buy-and-hold of the underlying, as for a one-symbol stock run.

When stock and options policies are compared, every env starts at the latest first bar among them and
runs to the last bar, so all equity curves share one index.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from agents.policy import Policy
from envs.data.market_data import MarketData
from envs.environments.base import TradingEnvBase
from envs.environments.options import ENV_ID as OPTIONS_ENV_ID
from envs.environments.options import OptionsEnv, holdings
from envs.environments.portfolio import PortfolioEnv
from envs.environments.stocks import StocksEnv
from envs.features import FeatureConfig, compute_features
from envs.options.account import OptionCosts
from envs.sim.execution import ExecutionConfig
from envs.sim.metrics import Stats, compute_stats
from envs.sim.replay import replay_weights
from envs.sim.risk import RiskConfig, RiskEvent
from envs.sim.trades import round_trips, round_trips_marked, traded_value

logger = logging.getLogger(__name__)

# Rule bots ignore the observation; one feature keeps the env's warm-up at a single bar.
MINIMAL_FEATURES = FeatureConfig(features=("ret_1",), normalize="none")

STOCK_ENV_IDS = ("AlpacaGym/Stocks-v0", "AlpacaGym/Portfolio-v0")


@dataclass(frozen=True)
class BacktestConfig:
    """Everything a backtest run shares across policies.

    :param initial_cash: starting cash (the seed's 100,000).
    :param execution: costs and fill conventions.
    :param risk: risk limits, or ``None`` to trade the policy's targets unchanged.
    :param start: first decision bar; default the first bar every policy's env can start at.
    :param periods_per_year: bars per year for the annualised metrics; ``None`` (default) takes them from
        the data's trading calendar and bar frequency (``MarketData.periods_per_year``).
    :param seed: seed passed to ``env.reset`` and ``policy.reset``.
    :param commission_per_contract: commission per option contract (options runs).
    """

    initial_cash: float = 100_000.0
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    risk: RiskConfig | None = field(default_factory=RiskConfig)
    start: int | None = None
    periods_per_year: float | None = None
    seed: int = 0
    commission_per_contract: float = 0.65

    def option_costs(self) -> OptionCosts:
        """The options env's costs: per-contract commission, and the stock envs' costs for shares."""
        return OptionCosts.from_execution(self.execution, self.commission_per_contract)


@dataclass(frozen=True)
class BacktestResult:
    """One policy's run.

    :param name: the policy's name.
    :param equity: equity at each close from the start bar (first value: initial cash).
    :param fills: the env's trade log (one row per fill, with its reason).
    :param trades: round trips, positions still open at the end included, marked to market at the last
        close and flagged in the ``open`` column (:func:`envs.sim.trades.round_trips_marked`); the trade
        statistics count them.
    :param positions: shares held after each bar, ``(len(equity), S)``; for an options run
        ``(len(equity), 2)``: shares of the underlying and option contracts held (gross, all legs).
    :param risk_events: every risk-layer intervention (fields of :class:`envs.sim.risk.RiskEvent`).
    :param benchmark: the benchmark equity for alpha and beta: the one given to :func:`run_backtest`
        (the backtest command passes buy-and-hold under the same rules), else equal-weight buy-and-hold of
        the same symbols with no rules, rebased to the initial cash.
    :param stats: the headline metrics.
    :param mode: ``"step"`` or ``"replay"``.
    :param env_id: the env the policy ran in.
    :param notes: settings of the backtest that did not apply to this run, and why.
    """

    name: str
    equity: pd.Series
    fills: pd.DataFrame
    trades: pd.DataFrame
    positions: np.ndarray
    risk_events: pd.DataFrame
    benchmark: pd.Series
    stats: Stats
    mode: Literal["step", "replay"]
    env_id: str = STOCK_ENV_IDS[0]
    notes: tuple[str, ...] = ()


def policy_env_id(policy: Policy, data: MarketData) -> str:
    """The env ``policy`` trades in: its ``env_id``, else ``Stocks-v0`` for one symbol and
    ``Portfolio-v0`` for several.

    :param policy: the policy.
    :param data: the bars.
    """
    env_id = getattr(policy, "env_id", None) or STOCK_ENV_IDS[data.n_symbols > 1]
    known = (*STOCK_ENV_IDS, OPTIONS_ENV_ID)
    if env_id not in known:
        hint = ""
        if env_id in ("AlpacaGym/MarketMaking-v0", "AlpacaGym/Execution-v0"):
            hint = f"; backtest it with python -m experiments.backtest --env {env_id.split('/')[1]} {_name(policy)}"
        raise ValueError(f"{_name(policy)} names env_id {env_id!r}; the backtest runs {known}{hint}")
    return env_id


def make_env(policy: Policy, data: MarketData, config: BacktestConfig) -> TradingEnvBase | OptionsEnv:
    """The env a policy is backtested in.

    :param policy: the policy (its optional ``env_options`` dict overrides the defaults, its
        ``env_id`` picks the env).
    :param data: the bars.
    :param config: the backtest settings.
    """
    if policy_env_id(policy, data) == OPTIONS_ENV_ID:
        if data.n_symbols != 1:
            raise ValueError(
                f"{_name(policy)} trades options on one underlying ({OPTIONS_ENV_ID}) but the data has "
                f"{data.n_symbols} symbols {list(data.symbols)}: select one (--symbols on the command line)"
            )
        options: dict[str, Any] = {"costs": config.option_costs()}
        options.update(getattr(policy, "env_options", None) or {})
        return OptionsEnv(data, initial_cash=config.initial_cash, **options)
    options = {"window_size": 1, "features": MINIMAL_FEATURES, "action_mode": "weights"}
    options.update(getattr(policy, "env_options", None) or {})
    env_cls = StocksEnv if data.n_symbols == 1 else PortfolioEnv
    return env_cls(
        data, initial_cash=config.initial_cash, execution=config.execution, risk=config.risk, **options
    )


def options_notes(config: BacktestConfig) -> tuple[str, ...]:
    """The settings of ``config`` that ``Options-v0`` does not apply, each with the reason.

    :param config: the backtest settings.
    """
    notes = []
    if config.risk is not None:
        notes.append(
            f"risk layer not applied in {OPTIONS_ENV_ID}: the env sizes each position so that cash covers "
            "its worst case (stock policies do use it)"
        )
    ex, default = config.execution, ExecutionConfig()
    ignored = [
        f"{f.name}={getattr(ex, f.name)!r}"
        for f in fields(ExecutionConfig)
        if f.name in _OPTIONS_IGNORE and getattr(ex, f.name) != getattr(default, f.name)
    ]
    if ignored:
        notes.append(
            f"{OPTIONS_ENV_ID} ignores {', '.join(ignored)}: it fills at the next open, holds no short "
            "stock, charges commission per contract and uses no margin"
        )
    return tuple(notes)


# Execution settings the options env has no counterpart for (its stock leg is always cash-covered,
# 100 whole shares per contract, filled at the next open). ``fractional=False`` holds there anyway.
_OPTIONS_IGNORE = frozenset(
    {"commission_per_share", "allow_short", "borrow_rate", "max_leverage", "fill_at", "min_weight_change"}
)


def _name(policy: Policy) -> str:
    return getattr(policy, "name", "") or type(policy).__name__


def start_bar(policies: list[Policy], data: MarketData, config: BacktestConfig) -> int:
    """The first bar every policy's env can start at (or ``config.start`` if later).

    :param policies: the policies to compare.
    :param data: the bars.
    :param config: the backtest settings.
    """
    first = max(_first_bar(p, data, config) for p in policies)
    if config.start is not None:
        if config.start < first:
            raise ValueError(f"start bar {config.start} is before the envs' warm-up ends (bar {first})")
        return config.start
    return first


def _first_bar(policy: Policy, data: MarketData, config: BacktestConfig) -> int:
    if getattr(policy, "env_options", None) or policy_env_id(policy, data) == OPTIONS_ENV_ID:
        return make_env(policy, data, config).first_t
    # Features are causal, so the warm-up seen on a short prefix is the whole series' warm-up; this
    # avoids building an env (and its features) over a long series just to learn the start bar.
    return compute_features(data.iloc(slice(0, 64)), MINIMAL_FEATURES).warmup


def _can_replay(policy: Policy, config: BacktestConfig) -> bool:
    mode = (getattr(policy, "env_options", None) or {}).get("action_mode", "weights")
    return config.risk is None and hasattr(policy, "act_batch") and mode == "weights"


def run_backtest(
    policy: Policy,
    data: MarketData,
    config: BacktestConfig | None = None,
    start: int | None = None,
    progress: bool = False,
    benchmark: pd.Series | None = None,
) -> BacktestResult:
    """Run ``policy`` over ``data`` and return its record and metrics.

    :param policy: any :class:`agents.policy.Policy`.
    :param data: the bars.
    :param config: the backtest settings (defaults: the seed's trading config).
    :param start: first decision bar (default: :func:`start_bar` for this policy alone).
    :param progress: show a progress bar while stepping.
    :param benchmark: benchmark equity on the same bars (e.g. buy-and-hold under the same rules); default:
        equal-weight buy-and-hold of the same symbols with no rules.
    :returns: the run; its ``notes`` list the settings that did not apply to it (for an options
        policy: the risk layer and the stock-only execution settings, see :func:`options_notes`).
    """
    config = config or BacktestConfig()
    if config.execution.borrow_rate and config.execution.periods_per_year is None:
        # The borrow fee accrues per bar: a year of bars comes from the data's calendar.
        config = replace(config, execution=config.execution.resolved(data.periods_per_year))
    name = _name(policy)
    env_id = policy_env_id(policy, data)
    options = env_id == OPTIONS_ENV_ID
    if getattr(policy, "allow_short", False) and not config.execution.allow_short:
        raise ValueError(
            f"{name} goes short (allow_short=True) but the env is long-only: "
            "set ExecutionConfig(allow_short=True) (--allow-short on the command line)"
        )
    start = start_bar([policy], data, config) if start is None else start
    policy.reset(config.seed)
    if not options and _can_replay(policy, config):
        weights = np.asarray(policy.act_batch(data), dtype=np.float64)
        run = replay_weights(data, weights, config.execution, config.initial_cash, start)
        equity, positions, fills, events = run.equity, run.positions, run.fills, []
        mode: Literal["step", "replay"] = "replay"
    else:
        equity, positions, fills, events = _step(policy, data, config, start, progress)
        mode = "step"
    close = data.close[start : start + len(equity)]
    # The options env never holds short stock, so it pays no borrow fee.
    borrow = 0.0 if options else (
        config.execution.borrow_per_bar * float((np.maximum(-positions[1:], 0.0) * close[1:]).sum())
    )
    if benchmark is None:
        benchmark = pd.Series(
            config.initial_cash * (close / close[0]).mean(axis=1), index=equity.index, name="benchmark"
        )
    elif not benchmark.index.equals(equity.index):
        raise ValueError(f"{name}: the benchmark's bars differ from the run's ({len(benchmark)} vs {len(equity)})")
    if options:
        trades = round_trips(fills).assign(open=False)
    else:
        trades = round_trips_marked(fills, positions[-1], close[-1], data.symbols, equity.index[-1])
    stats = compute_stats(
        equity,
        trades,
        positions=positions,
        traded_value=traded_value(fills, equity.index),
        benchmark=benchmark,
        costs=float(fills["commission"].sum() + fills["impact_cost"].sum()) + borrow,
        periods_per_year=config.periods_per_year or data.periods_per_year,
        calendar=data.calendar,
    )
    risk_events = pd.DataFrame(events, columns=[f.name for f in fields(RiskEvent)])
    notes = options_notes(config) if options else ()
    for note in notes:
        logger.info("%s: %s", name, note)
    logger.info("%s (%s): final equity %.2f, %d fills", name, mode, stats.final_equity, len(fills))
    return BacktestResult(
        name, equity, fills, trades, positions, risk_events, benchmark, stats, mode, env_id, notes
    )


def _step(
    policy: Policy, data: MarketData, config: BacktestConfig, start: int, progress: bool
) -> tuple[pd.Series, np.ndarray, pd.DataFrame, list[RiskEvent]]:
    env = make_env(policy, data, config)
    obs, info = env.reset(seed=config.seed, options={"start": start})
    actions = policy.act_batch(data) if hasattr(policy, "act_batch") else None
    positions = [holdings(info)]
    events: list[RiskEvent] = []
    bar = tqdm(total=data.n_bars - 1 - start, desc=getattr(policy, "name", "policy"),
               unit="bar", disable=not progress, leave=False)
    done = False
    while not done:
        action = actions[info["t"]] if actions is not None else policy.act(obs, info)
        obs, _, terminated, truncated, info = env.step(action)
        positions.append(holdings(info))
        events.extend(info["risk_events"])
        done = terminated or truncated
        bar.update()
    bar.close()
    return env.equity_series(), np.array(positions, dtype=np.float64), env.trade_frame(), events

