"""The live runner: drives a policy against a broker bar by bar, through the same env code as the backtest.

On every new bar:

1. **reconcile**: stale orders of earlier bars are cancelled, unfinished orders are polled and their fills
   journalled, and the broker's positions become the truth (:func:`brokers.reconcile.reconcile`);
2. **observe**: a shadow env, built by the same factory the backtest uses over the bars so far, is reset
   at the run's first bar and replays the run's journalled actions, so the policy receives exactly the
   observation and ``info`` the backtest env would give it after the same decisions;
3. **decide**: ``policy.act(obs, info)``, turned into target weights by the env's action adapter, then the
   risk layer (:class:`envs.risk.RiskManager`) on the broker's real account;
4. **order**: as in the env, only symbols whose target changed trade, plus those whose previous orders
   ended unfilled (a flip's opening leg waits for its closing leg, so against a broker that fills at the
   next bar it goes out one bar later than in the backtest); orders are planned from the broker's
   positions (:func:`brokers.planning.plan_orders`) and sent journal-first
   (:class:`brokers.router.OrderRouter`).

The decision (action, weights, risk state) is journalled before any order, so a restarted runner re-uses
it for that bar instead of asking the policy again, and resends nothing that already reached the broker.
Replaying the journal at start-up also rebuilds a stateful policy's memory by feeding it the past bars.
The shadow env is rebuilt each bar (cost grows with the run's length; ample for daily and hourly bars).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from brokers.base import Broker, Order, OrderRequest, Side
from brokers.journal import UNSENT, Journal
from brokers.order_ids import client_order_id
from brokers.planning import PlannedOrder, plan_orders
from brokers.reconcile import Reconciliation, reconcile
from brokers.router import OrderRouter
from envs.execution import ExecutionConfig
from envs.history import History
from envs.market_data import CLOSE, MarketData
from envs.risk import RiskConfig, RiskManager, RiskState
from envs.trading_env import TradingEnvBase

log = logging.getLogger(__name__)

EnvFactory = Callable[[MarketData], TradingEnvBase]
KILLED = "kill_switch"
UNFILLED = frozenset({UNSENT, "canceled", "expired", "rejected", "done_for_day"})


@dataclass(frozen=True)
class RunnerConfig:
    """How the runner trades.

    :param run_id: names the run in the journal and in every client order id.
    :param execution: the backtest's execution settings (fractional shares, weight band, costs of the
        shadow env).
    :param risk: risk limits applied on the broker's account, or None.
    :param min_trade_value: skip orders smaller than this in cash.
    :param dry_run: journal and log orders without sending them.
    :param seed: seed for ``policy.reset`` and the shadow env.
    """

    run_id: str
    execution: ExecutionConfig = ExecutionConfig()
    risk: RiskConfig | None = RiskConfig()
    min_trade_value: float = 1.0
    dry_run: bool = False
    seed: int = 0


@dataclass(frozen=True)
class Decision:
    """What the runner decided on one bar.

    :param timestamp: the bar.
    :param action: the policy's action (JSON form).
    :param requested: target weights the action asks for.
    :param target: weights after the risk layer.
    :param risk_events: one line per risk intervention.
    :param orders: the orders sent or found for this bar.
    :param resumed: True when the decision came from the journal (a restart).
    """

    timestamp: pd.Timestamp
    action: Any
    requested: dict[str, float]
    target: dict[str, float]
    risk_events: tuple[str, ...]
    orders: tuple[Order, ...]
    resumed: bool


class LiveRunner:
    """One policy, one broker, one journal.

    :param policy: any :class:`agents.policy.Policy`.
    :param broker: any :class:`brokers.base.Broker`.
    :param journal: the run's journal (reopen the same file to resume after a crash).
    :param make_env: builds the backtest's env over given bars (e.g. ``experiments.engine.make_env``).
    :param symbols: the traded symbols, in the env's order.
    :param config: trading settings.
    """

    def __init__(
        self,
        policy: Any,
        broker: Broker,
        journal: Journal,
        make_env: EnvFactory,
        symbols: tuple[str, ...],
        config: RunnerConfig,
    ) -> None:
        self.policy = policy
        self.broker = broker
        self.journal = journal
        self.make_env = make_env
        self.symbols = tuple(symbols)
        self.config = config
        self.router = OrderRouter(broker, journal, config.run_id, dry_run=config.dry_run)
        self.risk = RiskManager(config.risk, len(self.symbols), self.symbols) if config.risk else None
        self.last_decision: Decision | None = None
        self.last_reconciliation: Reconciliation | None = None
        self._warm = False

    # ------------------------------------------------------------------ the bar step
    def on_bar(self, data: MarketData) -> Decision:
        """Handle a new bar: reconcile, decide (or re-use the journalled decision), send orders.

        :param data: every bar up to and including the new one (the env's warm-up included).
        """
        if data.symbols != self.symbols:
            data = data.select(list(self.symbols))
        ts = data.index[-1]
        run = self.config.run_id
        self.router.cancel_stale(ts)
        self.router.send_pending(ts)  # settles orders of earlier bars that never went out
        rec = self.last_reconciliation = reconcile(self.broker, self.journal, run)
        account = self.broker.account()
        decisions = self.journal.decisions(run)
        killed = [t for t, p in decisions if KILLED in p]
        if killed:
            raise RuntimeError(
                f"run {run!r} was stopped by the kill switch at {killed[0]}; start a new run id"
            )
        past = [(t, p) for t, p in decisions if t < ts]
        recorded = self.journal.decision(run, ts)
        if not self._warm:
            self._start(data, past, account.equity)
        if recorded is None:
            payload = self._decide(data, past, rec, account.equity)
            self.journal.record_decision(run, ts, payload)
        else:
            payload = recorded
            log.info("bar %s already decided before a restart; re-using the journalled decision", ts)
        self._restore_risk(payload)
        previous = past[-1][1]["target"] if past else self._held_weights(rec.positions, data, account.equity)
        changed = self._changed(previous, payload["target"])
        if past:
            retry = self._unfilled_symbols(past[-1][0]) - set(changed)
            changed.update({s: payload["target"][s] for s in sorted(retry)})
        prices = dict(zip(self.symbols, data.values[-1, :, CLOSE].tolist()))
        plan = plan_orders(
            changed,
            rec.positions,
            prices,
            account.equity,
            run,
            ts,
            fractional=self.config.execution.fractional,
            min_trade_value=self.config.min_trade_value,
        )
        orders = self.router.place(ts, plan)
        decision = Decision(
            ts,
            payload["action"],
            payload["requested"],
            payload["target"],
            tuple(payload["risk_events"]),
            tuple(orders),
            recorded is not None,
        )
        self.last_decision = decision
        return decision

    def poll(self, bar_ts: object) -> Reconciliation:
        """Between bars: journal fills and send orders that were waiting (a flip's opening leg).

        :param bar_ts: the current decision's bar.
        """
        rec = self.last_reconciliation = reconcile(self.broker, self.journal, self.config.run_id)
        self.router.send_pending(bar_ts)
        return rec

    def flatten(self, reason: str) -> list[Order]:
        """The kill switch: cancel every open order and close every position.

        :param reason: logged and journalled with the closing orders' decision.
        """
        log.warning("kill switch: %s; cancelling orders and flattening", reason)
        for order in self.broker.open_orders():
            self.broker.cancel(order.id)
        now = pd.Timestamp.now(tz="UTC").floor("s")
        rec = reconcile(self.broker, self.journal, self.config.run_id)
        self.journal.record_decision(self.config.run_id, now, {KILLED: reason})
        plan = [
            PlannedOrder(
                OrderRequest(
                    s,
                    Side.SELL if q > 0 else Side.BUY,
                    abs(q),
                    client_order_id(self.config.run_id, now, s, "kill"),
                )
            )
            for s, q in sorted(rec.positions.items())
        ]
        return self.router.place(now, plan)

    def status(self) -> str:
        """One line: time, equity, positions and the last decision's targets."""
        acct = self.broker.account()
        held = ", ".join(f"{s} {p.qty:g}" for s, p in sorted(self.broker.positions().items())) or "flat"
        last = self.last_decision
        decided = "-" if last is None else ", ".join(f"{s} {w:+.2f}" for s, w in last.target.items())
        when = "-" if last is None else f"{last.timestamp:%Y-%m-%d %H:%M}"
        return f"{when} equity {acct.equity:,.2f} cash {acct.cash:,.2f} | {held} | target {decided}"

    # ------------------------------------------------------------------ internals
    def _shadow(
        self, data: MarketData, past: list[tuple[pd.Timestamp, dict[str, Any]]]
    ) -> tuple[TradingEnvBase, np.ndarray, dict[str, Any], list[tuple[np.ndarray, dict[str, Any]]]]:
        """The backtest env over ``data``, stepped through the run's journalled actions to the last bar.

        Bars without a journalled decision (the runner was down) repeat the previous action, which in
        the env means holding. A placeholder bar (the last close, flat) is appended so the env can stand
        at the last real bar; features are causal, so nothing observed there depends on it.

        :return: the env, the observation and info at the last bar, and (obs, info) at every replayed bar.
        """
        last = data.values[-1:].copy()
        last[..., :4] = last[..., CLOSE : CLOSE + 1]
        last[..., 4] = 0.0
        step = data.index[-1] - data.index[-2] if data.n_bars > 1 else pd.Timedelta(days=1)
        index = data.index.append(pd.DatetimeIndex([data.index[-1] + step]))
        env = self.make_env(MarketData(np.concatenate([data.values, last]), index, data.symbols))
        actions = {ts: payload["action"] for ts, payload in past}
        missing = [ts for ts in actions if ts not in data.index]
        if missing:
            raise ValueError(f"the feed lacks journalled bar(s) {missing[:3]}; feed more history")
        start = int(data.index.get_loc(past[0][0])) if past else data.n_bars - 1
        if start < env.first_t:
            raise ValueError(
                f"bar {data.index[start]} is inside the env's warm-up ({env.first_t} bars); feed more history"
            )
        obs, info = env.reset(seed=self.config.seed, options={"start": start})
        seen = []
        action = None
        for k in range(start, data.n_bars - 1):
            seen.append((obs, info))
            action = actions.get(data.index[k], action)
            obs, _, _, _, info = env.step(_as_action(env, action))
        return env, obs, info, seen

    def _start(
        self, data: MarketData, past: list[tuple[pd.Timestamp, dict[str, Any]]], equity: float
    ) -> None:
        """First bar of this process: reset the policy and the risk layer, then replay the journal."""
        self.policy.reset(self.config.seed)
        if self.risk is not None:
            self.risk.reset(equity)
        if past:
            _, _, _, seen = self._shadow(data, past)
            journalled = dict(past)
            start = int(data.index.get_loc(past[0][0]))
            for k, (obs, info) in enumerate(seen, start):
                replayed = _jsonable(self.policy.act(obs, info))
                payload = journalled.get(data.index[k])
                if payload is not None and replayed != payload["action"]:
                    log.warning(
                        "policy state rebuilt: bar %s gives %s now, %s was journalled",
                        data.index[k],
                        replayed,
                        payload["action"],
                    )
            self._restore_risk(past[-1][1])
            log.info("resumed run %s after %d journalled decisions", self.config.run_id, len(past))
        self._warm = True

    def _restore_risk(self, payload: dict[str, Any]) -> None:
        if self.risk is not None:
            state = payload["risk"]
            self.risk.peak_equity, self.risk.halted = state["peak_equity"], state["halted"]
            self.risk.blocked[:] = state["blocked"]

    def _decide(
        self,
        data: MarketData,
        past: list[tuple[pd.Timestamp, dict[str, Any]]],
        rec: Reconciliation,
        equity: float,
    ) -> dict[str, Any]:
        env, obs, info, _ = self._shadow(data, past)
        action = self.policy.act(obs, info)
        requested = env.adapter.to_weights(action)
        allowed, events = requested, []
        if self.risk is not None:
            closes = data.values[-1, :, CLOSE]
            positions = np.array([rec.positions.get(s, 0.0) for s in self.symbols])
            held = self.broker.positions()
            entry = np.array([held[s].avg_entry_price if s in held else np.nan for s in self.symbols])
            state = RiskState(
                t=data.n_bars - 1,
                timestamp=data.index[-1],
                equity=equity,
                weights=positions * closes / equity,
                positions=positions,
                entry_prices=entry,
                prices=closes,
                history=History(data, data.n_bars - 1),
            )
            allowed, events = self.risk.apply(requested, state)
        risk = self.risk
        return {
            "action": _jsonable(action),
            "requested": dict(zip(self.symbols, np.asarray(requested, dtype=float).tolist())),
            "target": dict(zip(self.symbols, np.asarray(allowed, dtype=float).tolist())),
            "risk_events": [f"{e.symbol} {e.rule}: {e.reason}" for e in events],
            "risk": {
                "peak_equity": None if risk is None else risk.peak_equity,
                "halted": False if risk is None else risk.halted,
                "blocked": [] if risk is None else risk.blocked.tolist(),
            },
        }

    def _changed(self, previous: dict[str, float], target: dict[str, float]) -> dict[str, float]:
        """Symbols to trade, by the env's rule: a target that moved by more than the band, or went to zero."""
        band = self.config.execution.min_weight_change
        out = {}
        for s, w in target.items():
            before = previous.get(s, 0.0)
            if w != before and (abs(w - before) > band or w == 0.0):
                out[s] = w
        return out

    def _unfilled_symbols(self, bar_ts: pd.Timestamp) -> set[str]:
        """Symbols whose orders of ``bar_ts`` ended without filling (a flip's opening leg left unsent, a
        partial fill cancelled, a reject): they trade again towards the current target."""
        return {
            o.request.symbol
            for o in self.journal.orders(self.config.run_id)
            if o.bar_ts == bar_ts and o.status in UNFILLED
        }

    def _held_weights(self, positions: dict[str, float], data: MarketData, equity: float) -> dict[str, float]:
        closes = dict(zip(self.symbols, data.values[-1, :, CLOSE].tolist()))
        return {s: positions.get(s, 0.0) * closes[s] / equity for s in self.symbols}


def _jsonable(action: Any) -> Any:
    arr = np.asarray(action)
    return arr.tolist() if arr.ndim else arr.item()


def _as_action(env: TradingEnvBase, value: Any) -> Any:
    """A journalled action back in the form the policy gave it (JSON keeps ints and floats apart; float64
    is kept, as the backtest passes the policy's action to the env unconverted)."""
    arr = np.asarray(value)
    shape = env.action_space.shape
    return arr.reshape(shape) if shape else arr.item()
