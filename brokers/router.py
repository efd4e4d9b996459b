"""Sending a decision's orders through the journal to a broker, exactly once.

Every order is journalled as ``planned`` before it goes out. Sending one means: if the journal says it may
already have been sent, ask the broker by client order id first; cancel open opposite-side orders for the
symbol (Alpaca refuses them as a "potential wash trade"); then submit. An order whose closing leg has not
filled yet waits. Orders left ``planned`` when their bar has passed are marked ``unsent``: the next
decision plans again from the positions the broker reports.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence

from brokers.base import (
    Broker,
    BrokerUnavailable,
    Order,
    OrderNotFound,
    OrderRejected,
    WashTradeRejected,
    utc,
)
from brokers.journal import DRY_RUN, PLANNED, UNSENT, Journal, JournalOrder
from brokers.planning import PlannedOrder

log = logging.getLogger(__name__)


class OrderRouter:
    """Journal-first order placement for one run.

    :param broker: where orders go.
    :param journal: the run's journal.
    :param run_id: the run.
    :param dry_run: journal and log orders as ``dry_run`` without sending them.
    :param cancel_timeout: seconds to wait for cancelled opposite-side orders to finish.
    :param poll_interval: seconds between order polls while waiting.
    :param sleep: the wait function (tests pass a no-op).
    """

    def __init__(
        self,
        broker: Broker,
        journal: Journal,
        run_id: str,
        dry_run: bool = False,
        cancel_timeout: float = 10.0,
        poll_interval: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.broker = broker
        self.journal = journal
        self.run_id = run_id
        self.dry_run = dry_run
        self.cancel_timeout = cancel_timeout
        self.poll_interval = poll_interval
        self._sleep = sleep
        # Orders journalled by this process and not yet tried: the broker cannot know them, so the
        # look-up-before-send (needed after a restart) is skipped for them.
        self._fresh: set[str] = set()

    def place(self, bar_ts: object, orders: Sequence[PlannedOrder]) -> list[Order]:
        """Journal a decision's orders and send those that are ready.

        If the bar already has journalled orders (a restart re-planning it), those are finished instead
        and ``orders`` is ignored.

        :param bar_ts: the decision's bar.
        :param orders: the plan, in sending order.
        :return: the broker's view of every order sent or found in this call.
        """
        status = DRY_RUN if self.dry_run else PLANNED
        if self.journal.plan_orders(self.run_id, bar_ts, orders, status):
            for planned in orders:
                req = planned.request
                self._fresh.add(req.client_order_id)
                log.info(
                    "%s order %s: %s %g %s",
                    "dry-run" if self.dry_run else "planned",
                    req.client_order_id,
                    req.side.value,
                    req.qty,
                    req.symbol,
                )
        elif orders:
            log.info("bar %s already has journalled orders; resuming them instead of re-planning", bar_ts)
        return self.send_pending(bar_ts)

    def send_pending(self, bar_ts: object) -> list[Order]:
        """Send (or find at the broker) every ``planned`` order of this bar whose dependency has filled.

        Planned orders of earlier bars are marked ``unsent`` (after checking the broker never got them).

        :param bar_ts: the current decision's bar.
        :return: the broker's view of the orders sent or found.
        """
        now = utc(bar_ts)
        out: list[Order] = []
        for jo in self.journal.orders(self.run_id, unfinished=True):
            if jo.status != PLANNED:
                continue
            found = None if jo.client_order_id in self._fresh else self._lookup(jo)
            if found is not None:
                self.journal.update_from_broker(found)
                out.append(found)
            elif jo.bar_ts < now:
                self.journal.mark(
                    jo.client_order_id, UNSENT, f"bar {jo.bar_ts.isoformat()} passed before sending"
                )
                log.warning(
                    "order %s from bar %s was never sent; marked unsent", jo.client_order_id, jo.bar_ts
                )
            elif self._ready(jo):
                sent = self._send(jo)
                if sent is not None:
                    out.append(sent)
        return out

    def cancel_stale(self, bar_ts: object) -> int:
        """Cancel open orders of earlier bars: a new decision supersedes them.

        :param bar_ts: the new decision's bar.
        :return: how many cancels were sent.
        """
        now = utc(bar_ts)
        count = 0
        for jo in self.journal.orders(self.run_id, unfinished=True):
            if jo.status != PLANNED and jo.bar_ts < now and jo.broker_order_id:
                self.broker.cancel(jo.broker_order_id)
                count += 1
        return count

    # ------------------------------------------------------------------ internals
    def _lookup(self, jo: JournalOrder) -> Order | None:
        try:
            return self.broker.get_order(client_order_id=jo.client_order_id)
        except OrderNotFound:
            return None

    def _ready(self, jo: JournalOrder) -> bool:
        if jo.depends_on is None:
            return True
        first = self.journal.order(jo.depends_on)
        if first is not None and first.status == "filled":
            return True
        if first is not None and first.is_finished:
            self.journal.mark(jo.client_order_id, UNSENT, f"closing leg {jo.depends_on} ended {first.status}")
        return False

    def _send(self, jo: JournalOrder) -> Order | None:
        req = jo.request
        self._fresh.discard(req.client_order_id)
        if not self._clear_opposite(jo):
            log.info(
                "order %s waits: opposite-side orders for %s are still open", req.client_order_id, req.symbol
            )
            return None
        try:
            order = self.broker.submit(req)
        except WashTradeRejected as err:
            log.warning(
                "order %s refused as a wash trade (%s); will retry after cancels",
                req.client_order_id,
                err.reason,
            )
            return None
        except OrderRejected as err:
            self.journal.mark(req.client_order_id, "rejected", err.reason)
            log.error("order %s rejected: %s", req.client_order_id, err.reason)
            return None
        except BrokerUnavailable as err:
            log.error(
                "order %s not confirmed (%s); it stays planned and is looked up next time",
                req.client_order_id,
                err,
            )
            return None
        self.journal.update_from_broker(order)
        log.info(
            "sent %s: %s %g %s -> %s",
            req.client_order_id,
            req.side.value,
            req.qty,
            req.symbol,
            order.status.value,
        )
        return order

    def _clear_opposite(self, jo: JournalOrder) -> bool:
        """Cancel open orders on the other side of the symbol; True once none is left."""
        symbol, opposite = jo.request.symbol, jo.request.side.opposite

        def still_open() -> list[Order]:
            return [o for o in self.broker.open_orders(symbol) if o.side is opposite]

        waiting = still_open()
        for o in waiting:
            log.info(
                "cancelling %s (%s %s) before %s", o.client_order_id, o.side.value, symbol, jo.client_order_id
            )
            self.broker.cancel(o.id)
        polls = max(1, math.ceil(self.cancel_timeout / self.poll_interval))
        while waiting and polls > 0:
            waiting = still_open()
            if waiting:
                self._sleep(self.poll_interval)
            polls -= 1
        return not waiting
