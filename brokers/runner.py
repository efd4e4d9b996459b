"""The live runner: drives a policy against a broker bar by bar, through the same env code as the backtest.

On every new bar:

1. **reconcile**: stale orders of earlier bars are cancelled, unfinished orders are polled and their fills
   journalled, and the broker's positions become the truth (:func:`brokers.reconcile.reconcile`);
2. **observe**: a shadow env (:class:`brokers.shadow.ShadowEnv`), built once by the factory the backtest
   uses and stepped once per bar with the run's decisions, gives the policy exactly the observation and
   ``info`` the backtest env would give it after the same decisions;
3. **decide**: ``policy.act(obs, info)``, turned into target weights by the env's action adapter and sizing
   rule (:meth:`envs.environments.base.TradingEnvBase.signal_weights`), then the risk layer
   (:class:`envs.sim.risk.RiskManager`) on the broker's real account;
4. **order**: as in the env, only symbols whose target changed trade, plus those whose previous orders
   ended unfilled (a flip's opening leg waits for its closing leg, so against a broker that fills at the
   next bar it goes out one bar later than in the backtest); orders are planned from the broker's
   positions (:func:`brokers.planning.plan_orders`) and sent journal-first
   (:class:`brokers.router.OrderRouter`).

A symbol whose bar was missing or bad (:attr:`brokers.feed.LiveBars.stale`) is not traded on that bar;
after ``max_stale_bars`` such bars in a row it is flattened and reported. Each decision also journals the
account (equity, cash, positions, prices) and the broker's health, which the dashboard and the end-of-run
summary read.

The decision (action, weights, risk state) is journalled before any order, so a restarted runner re-uses
it for that bar instead of asking the policy again, and resends nothing that already reached the broker.
Replaying the journal at start-up also rebuilds a stateful policy's memory by feeding it the past bars.
After that, a bar costs the same however long the run has been going: one env step, one policy call, and
journal look-ups by key (the journal is read in full only once, at start-up).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from agents.policy import Policy
from brokers.alerts import Alerts
from brokers.base import Broker, Order, OrderRequest, Side
from brokers.journal import KILLED, UNSENT, Journal
from brokers.order_ids import client_order_id
from brokers.planning import PlannedOrder, plan_orders
from brokers.reconcile import Reconciliation, reconcile
from brokers.router import OrderRouter
from brokers.shadow import EnvFactory, ShadowEnv
from envs.data.history import History
from envs.data.market_data import CLOSE, MarketData
from envs.sim.execution import ExecutionConfig, should_trade
from envs.sim.risk import RiskConfig, RiskManager, RiskState

log = logging.getLogger(__name__)

UNFILLED = frozenset({UNSENT, "canceled", "expired", "rejected", "done_for_day"})
LEGS = ("", "close", "open")
"""The order legs :func:`brokers.planning.plan_orders` names a symbol's orders of one decision with."""


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
    :param max_stale_bars: a symbol without a good bar this many bars in a row is flattened.
    """

    run_id: str
    execution: ExecutionConfig = ExecutionConfig()
    risk: RiskConfig | None = RiskConfig()
    min_trade_value: float = 1.0
    dry_run: bool = False
    seed: int = 0
    max_stale_bars: int = 3

    def __post_init__(self) -> None:
        if self.max_stale_bars < 1:
            raise ValueError(f"RunnerConfig.max_stale_bars must be >= 1, got {self.max_stale_bars}")


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
    :param bars: every bar of the run when known up front (a sim replay): the shadow env is built on them
        once instead of growing bar by bar (features are causal, so the policy sees the same).
    :param alerts: where risk interventions and stale symbols are reported (journal only by default).
    """

    def __init__(
        self,
        policy: Policy,
        broker: Broker,
        journal: Journal,
        make_env: EnvFactory,
        symbols: tuple[str, ...],
        config: RunnerConfig,
        bars: MarketData | None = None,
        alerts: Alerts | None = None,
    ) -> None:
        self.policy = policy
        self.broker = broker
        self.journal = journal
        self.symbols = tuple(symbols)
        self.config = config
        self.router = OrderRouter(broker, journal, config.run_id, dry_run=config.dry_run)
        self.risk = RiskManager(config.risk, len(self.symbols), self.symbols) if config.risk else None
        self.shadow = ShadowEnv(make_env, config.seed, None if bars is None else bars.select(list(symbols)))
        self.last_decision: Decision | None = None
        self.last_reconciliation: Reconciliation | None = None
        # The run's decisions, oldest first: read from the journal once, then appended as they are made.
        self._decisions: list[tuple[pd.Timestamp, dict[str, Any]]] = []
        self._stopped: str | None = None
        self.alerts = alerts or Alerts(journal, config.run_id)
        self.left_for_next_open: dict[str, float] = {}

    # ------------------------------------------------------------------ the bar step
    def on_bar(self, data: MarketData, stale: frozenset[str] = frozenset()) -> Decision:
        """Handle a new bar: reconcile, decide (or re-use the journalled decision), send orders.

        :param data: every bar up to and including the new one (the env's warm-up included).
        :param stale: symbols whose new bar was missing or bad (forward-filled in ``data``): not traded.
        """
        if data.symbols != self.symbols:
            data = data.select(list(self.symbols))
        ts = data.index[-1]
        run = self.config.run_id
        self.router.cancel_stale(ts)
        self.router.send_pending(ts)  # settles orders of earlier bars that never went out
        rec = self.last_reconciliation = reconcile(self.broker, self.journal, run)
        account = self.broker.account()
        if not self.shadow.started:
            self._load_decisions()
            data = self._anchored(data)
        if self._stopped is not None:
            raise RuntimeError(
                f"run {run!r} was stopped by the kill switch at {self._stopped}; start a new run id"
            )
        before = self._decision_before(ts)
        if before is None or not self.shadow.started:
            self._start(data, account.equity)
        else:
            self.shadow.advance(data, before[1]["action"])
        # What each symbol last traded to: the trade rule compares a new target with it, as the env does
        # (not with the previous bar's target, which may not have traded). Journals written before it was
        # recorded fall back to the previous target.
        if before:
            last_traded = before[1].get("traded", before[1]["target"])
        else:
            last_traded = self._held_weights(rec.positions, data, account.equity)
        recorded = self.journal.decision(run, ts)
        prices = dict(zip(self.symbols, data.values[-1, :, CLOSE].tolist()))
        market_open = self._market_open(data)
        if recorded is None:
            payload = self._decide(data, rec, account.equity)
            self._handle_stale(payload, before, stale, ts)
            skip = set(payload["stale"])
            changed_now = self._changed(last_traded, payload["target"], market_open)
            moved = {s: w for s, w in changed_now.items() if s not in skip}
            payload["traded"] = {**last_traded, **moved}
            # Symbols with orders still open (a cancel Alpaca has not finished) may get less than their
            # target now; they trade again on the next bar, sized from the positions then.
            trading = self._to_trade(before, last_traded, payload, market_open)
            payload["deferred"] = sorted(s for s in trading if s in rec.pending)
            payload.update(self._account_view(account, rec, prices))
            if before is None:
                payload["data_start"] = data.index[0].isoformat()
            self.journal.record_decision(run, ts, payload)
            self._decisions.append((ts, payload))
            # A limit that keeps binding bar after bar (a position trimmed to its cap) is alerted once,
            # when it starts; every bar's interventions stay in the decision.
            active = {_rule_of(line) for line in before[1].get("risk_events", ())} if before else set()
            for line in payload["risk_events"]:
                if _rule_of(line) not in active:
                    self.alerts.send("risk", f"{ts:%Y-%m-%d %H:%M} {line}", at=ts)
        else:
            payload = recorded
            log.info("bar %s already decided before a restart; re-using the journalled decision", ts)
        self._restore_risk(payload)
        changed = self._to_trade(before, last_traded, payload, market_open)
        plan = plan_orders(
            changed,
            rec.positions,
            prices,
            account.equity,
            run,
            ts,
            fractional=self.config.execution.fractional,
            min_trade_value=self.config.min_trade_value,
            pending=rec.pending,
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

        While the market is closed nothing is sent (a market order would only queue for the open, at
        whatever price that brings): the open orders are cancelled, and what is left is journalled,
        alerted and kept in :attr:`left_for_next_open`.

        :param reason: logged and journalled with the closing orders' decision.
        :return: the closing orders sent (none while the market is closed).
        """
        log.warning("kill switch: %s; cancelling orders and flattening", reason)
        for order in self.broker.open_orders():
            self.broker.cancel(order.id)
        clock = self.broker.clock()
        now = pd.Timestamp.now(tz="UTC").floor("s")
        rec = reconcile(self.broker, self.journal, self.config.run_id)
        account = self.broker.account()
        payload: dict[str, Any] = {KILLED: reason, "equity": float(account.equity)}
        if not clock.is_open:
            self.left_for_next_open = dict(sorted(rec.positions.items()))
            payload["left"] = self.left_for_next_open
            self.journal.record_decision(self.config.run_id, now, payload)
            self._stopped = str(now)
            held = ", ".join(f"{s} {q:g}" for s, q in self.left_for_next_open.items()) or "nothing"
            self.alerts.send(
                "kill_switch",
                f"{reason} while the market is closed: open orders cancelled, no market orders sent; "
                f"left for the next open ({clock.next_open.isoformat()}): {held}",
                {"left": self.left_for_next_open, "next_open": clock.next_open.isoformat()},
            )
            return []
        self.journal.record_decision(self.config.run_id, now, payload)
        self._stopped = str(now)
        self.alerts.send("kill_switch", f"{reason}: open orders cancelled, closing every position")
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

    def data_start(self) -> pd.Timestamp | None:
        """The first bar of the data the run started on (None for a new run): a restarted runner must be
        fed bars from there, so its shadow env, features and risk state are the uninterrupted run's."""
        first = self.journal.first_decision(self.config.run_id)
        if first is None or "data_start" not in first:
            return None
        return pd.Timestamp(first["data_start"])

    # ------------------------------------------------------------------ internals
    def _anchored(self, data: MarketData) -> MarketData:
        """``data`` from the run's first data bar on, as the uninterrupted run saw it."""
        first = self._decisions[0][1].get("data_start") if self._decisions else None
        if first is None:
            return data
        start = pd.Timestamp(first)
        if data.index[0] > start:
            log.warning(
                "the feed starts at %s, after the run's first bar %s: decisions may differ from an "
                "uninterrupted run; feed more history", data.index[0], start
            )
            return data
        return data.iloc(slice(int(data.index.searchsorted(start)), data.n_bars))

    def _load_decisions(self) -> None:
        """Read the run's decisions from the journal (once per process) and note a kill-switch stop."""
        self._decisions = []
        for ts, payload in self.journal.decisions(self.config.run_id):
            if KILLED in payload:
                self._stopped = self._stopped or str(ts)
            else:
                self._decisions.append((ts, payload))

    def _decision_before(self, ts: pd.Timestamp) -> tuple[pd.Timestamp, dict[str, Any]] | None:
        """The latest decision on a bar before ``ts`` (normally the last one made)."""
        for k in range(len(self._decisions) - 1, -1, -1):
            if self._decisions[k][0] < ts:
                return self._decisions[k]
        return None

    def _start(self, data: MarketData, equity: float) -> None:
        """The run's first bar in this process: reset the policy and the risk layer, build the shadow env
        and bring it to now through the journalled decisions, which the policy sees again to rebuild its
        memory."""
        ts = data.index[-1]
        past = [(t, p) for t, p in self._decisions if t < ts]
        self.policy.reset(self.config.seed)
        if self.risk is not None:
            self.risk.reset(equity)
        seen = self.shadow.start(data, [(t, p["action"]) for t, p in past])
        if past:
            journalled = dict(past)
            for obs, info in seen:
                replayed = _jsonable(self.policy.act(obs, info))
                payload = journalled.get(info["timestamp"])
                if payload is not None and replayed != payload["action"]:
                    log.warning(
                        "policy state rebuilt: bar %s gives %s now, %s was journalled",
                        info["timestamp"],
                        replayed,
                        payload["action"],
                    )
            self._restore_risk(past[-1][1])
            log.info("resumed run %s after %d journalled decisions", self.config.run_id, len(past))

    def _restore_risk(self, payload: dict[str, Any]) -> None:
        if self.risk is not None and payload.get("risk"):
            self.risk.restore(payload["risk"])

    def _decide(self, data: MarketData, rec: Reconciliation, equity: float) -> dict[str, Any]:
        action = self.policy.act(self.shadow.obs, self.shadow.info)
        requested = self.shadow.env.signal_weights(action)
        allowed, events = requested, []
        if self.risk is not None:
            positions = np.array([rec.positions.get(s, 0.0) for s in self.symbols])
            held = self.broker.positions()
            entry = np.array([held[s].avg_entry_price if s in held else np.nan for s in self.symbols])
            state = RiskState.of_account(History(data, data.n_bars - 1), equity, positions, entry)
            allowed, events = self.risk.apply(requested, state)
        return {
            "action": _jsonable(action),
            "requested": dict(zip(self.symbols, np.asarray(requested, dtype=float).tolist())),
            "target": dict(zip(self.symbols, np.asarray(allowed, dtype=float).tolist())),
            "risk_events": [f"{e.symbol} {e.rule}: {e.reason}" for e in events],
            "risk": None if self.risk is None else self.risk.snapshot(),
        }

    def _market_open(self, data: MarketData) -> dict[str, bool]:
        """Whether each symbol's market is open on the bar its orders fill on (the next one), by its own
        calendar, as the env reads :attr:`MarketData.tradable`: in a stock and crypto run the stock waits
        for its session while the coin trades every bar. Data of one calendar is open on every bar (the
        market clock decides when a stock-only run trades at all)."""
        if data.tradable is None:
            return dict.fromkeys(self.symbols, True)
        after = pd.DatetimeIndex([data.index[-1] + data.frequency.step])
        return {
            s: bool(c.is_open(after, data.frequency)[0]) for s, c in zip(data.symbols, data.symbol_calendars)
        }

    def _changed(
        self, previous: dict[str, float], target: dict[str, float], market_open: dict[str, bool]
    ) -> dict[str, float]:
        """Symbols to trade, by the env's rule (:func:`envs.sim.execution.should_trade`) against the target
        each symbol last traded to."""
        band = self.config.execution.min_weight_change
        out = {}
        for s, w in target.items():
            before = previous.get(s, 0.0)
            if should_trade(w, before, band, market_open.get(s, True), False):
                out[s] = w
        return out

    def _to_trade(
        self,
        before: tuple[pd.Timestamp, dict[str, Any]] | None,
        last_traded: dict[str, float],
        payload: dict[str, Any],
        market_open: dict[str, bool],
    ) -> dict[str, float]:
        """Symbols to order this bar: those whose target changed, plus those whose previous orders ended
        unfilled or were deferred behind open orders (or skipped for a bad bar), if their market is open;
        never a symbol whose bar is bad now."""
        target = payload["target"]
        changed = self._changed(last_traded, target, market_open)
        if before:
            earlier = before[1]
            retry = self._unfilled_symbols(before[0]) | set(earlier.get("deferred", ()))
            retry |= set(earlier.get("stale", ())) - set(payload.get("stale", ()))
            retry = {s for s in retry if market_open.get(s, True)}
            changed.update({s: target[s] for s in sorted(retry - set(changed))})
        return {s: w for s, w in changed.items() if s not in payload.get("stale", {})}

    def _handle_stale(
        self,
        payload: dict[str, Any],
        before: tuple[pd.Timestamp, dict[str, Any]] | None,
        stale: frozenset[str],
        ts: pd.Timestamp,
    ) -> None:
        """Count each symbol's bad bars in a row; at ``max_stale_bars`` set its target to 0 and report it.

        A flattened symbol trades (to 0) even though its bar is bad: holding a position blind is worse.
        """
        earlier = before[1].get("stale", {}) if before else {}
        counts = {s: int(earlier.get(s, 0)) + 1 for s in sorted(stale) if s in self.symbols}
        limit = self.config.max_stale_bars
        for s, n in counts.items():
            log.warning("%s: no good bar at %s (%d in a row); not traded on this bar", s, ts, n)
        flatten = [s for s, n in counts.items() if n >= limit]
        for s in flatten:
            payload["target"][s] = 0.0
            payload["risk_events"].append(f"{s} stale_data: no good bar for {counts[s]} bars; flattened")
            self.alerts.send(
                "stale_symbol",
                f"{s}: no good bar for {counts[s]} bars in a row (limit {limit}); flattening it",
                {"symbol": s, "bars": counts[s]},
                at=ts,
            )
        # A symbol being flattened is traded (not skipped), so it is left out of the skip list.
        payload["stale"] = {s: n for s, n in counts.items() if s not in flatten}
        payload["stale_flattened"] = flatten

    def _account_view(self, account: Any, rec: Reconciliation, prices: dict[str, float]) -> dict[str, Any]:
        """What the dashboard and the summary read back: the account and the broker's health now."""
        health = getattr(self.broker, "health", None)
        backtest = self.shadow.info.get("equity")
        return {
            # The shadow env is the backtest of this policy over these bars with these decisions.
            "backtest_equity": None if backtest is None else float(backtest),
            "equity": float(account.equity),
            "cash": float(account.cash),
            "positions": {s: float(q) for s, q in sorted(rec.positions.items())},
            "prices": prices,
            "health": health.snapshot() if health is not None else {},
        }

    def _unfilled_symbols(self, bar_ts: pd.Timestamp) -> set[str]:
        """Symbols whose orders of ``bar_ts`` ended without filling (a flip's opening leg left unsent, a
        partial fill cancelled, a reject): they trade again towards the current target. The orders are
        looked up by their deterministic ids, so the cost does not grow with the run."""
        out = set()
        for s in self.symbols:
            for leg in LEGS:
                order = self.journal.order(client_order_id(self.config.run_id, bar_ts, s, leg))
                if order is not None and order.status in UNFILLED:
                    out.add(s)
        return out

    def _held_weights(self, positions: dict[str, float], data: MarketData, equity: float) -> dict[str, float]:
        closes = dict(zip(self.symbols, data.values[-1, :, CLOSE].tolist()))
        return {s: positions.get(s, 0.0) * closes[s] / equity for s in self.symbols}


def _rule_of(line: str) -> str:
    """``"SYM rule"`` of a journalled risk event line (``"SYM rule: reason"``)."""
    return line.split(":", 1)[0]


def _jsonable(action: Any) -> Any:
    arr = np.asarray(action)
    return arr.tolist() if arr.ndim else arr.item()
