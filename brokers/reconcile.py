"""Reconciliation: bring the journal up to date with the broker before every decision.

Every unfinished order is polled by client order id, so partial fills, cancels and fills that arrive late
land in the journal as they happen (the runner never relies on a stream for this). The broker's positions
are the truth the next decision is made from; the journal's own account of them (start positions plus
journalled fills) is compared against it and any difference is reported, e.g. a manual trade or a fill
the journal could not see.

Orders and positions are two requests, and a fill can land between them: the positions then hold a fill
the journal has not seen yet, which is no mismatch at all. So the orders that were open are polled again
after the positions are read, and the comparison is made only once both agree (the positions are
sandwiched between two identical order snapshots); a difference left while fills keep landing is logged
as unsettled, not as a mismatch.

Orders still open (``pending_cancel`` included: Alpaca cancels asynchronously and such an order can
still fill) are summed per symbol and side in :attr:`Reconciliation.pending`, which order sizing counts as
possible fills (:func:`brokers.planning.plan_orders`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from brokers.base import Broker, Fill, Order, OrderNotFound, Side
from brokers.journal import PLANNED, Journal

log = logging.getLogger(__name__)
TOLERANCE = 1e-6
SETTLE_ROUNDS = 3
"""Reads of positions between order polls before a difference is reported as unsettled."""


@dataclass(frozen=True)
class Reconciliation:
    """The outcome of one reconciliation.

    :param positions: the broker's signed shares by symbol (what decisions use).
    :param fills: fills journalled by this reconciliation.
    :param mismatches: ``symbol -> (journal's expected shares, broker's shares)`` where they differ.
    :param open_orders: client order ids still working at the broker.
    :param pending: ``symbol -> (shares still to buy, shares still to sell)`` in the run's open orders.
    :param settled: False when fills kept landing while positions were read (mismatches not reported).
    """

    positions: dict[str, float]
    fills: tuple[Fill, ...]
    mismatches: dict[str, tuple[float, float]]
    open_orders: tuple[str, ...]
    pending: dict[str, tuple[float, float]] = field(default_factory=dict)
    settled: bool = True

    @property
    def consistent(self) -> bool:
        """True when the journal's positions match the broker's."""
        return not self.mismatches


def reconcile(broker: Broker, journal: Journal, run_id: str) -> Reconciliation:
    """Poll the run's unfinished orders, journal what changed and compare positions with the broker.

    ``planned`` orders are left to :class:`brokers.router.OrderRouter`, which looks them up before sending.

    :param broker: the broker.
    :param journal: the run's journal.
    :param run_id: the run.
    """
    fills: list[Fill] = []
    still_open: dict[str, Order] = {}
    for jo in journal.orders(run_id, unfinished=True):
        if jo.status == PLANNED:
            continue
        order = _poll(broker, journal, jo.client_order_id, jo.status, fills)
        if order is not None and order.is_open:
            still_open[order.client_order_id] = order
    settled = False
    for _ in range(SETTLE_ROUNDS):
        positions = {s: p.qty for s, p in broker.positions().items() if abs(p.qty) > TOLERANCE}
        before = len(fills)
        for cid, prev in list(still_open.items()):
            order = _poll(broker, journal, cid, prev.status.value, fills)
            if order is None or not order.is_open:
                still_open.pop(cid)
            else:
                still_open[cid] = order
        if len(fills) == before:
            settled = True
            break
    journal.record_start_positions(run_id, positions)
    expected = journal.expected_positions(run_id)
    mismatches = {
        s: (expected.get(s, 0.0), positions.get(s, 0.0))
        for s in sorted(set(expected) | set(positions))
        if abs(expected.get(s, 0.0) - positions.get(s, 0.0)) > TOLERANCE
    }
    if not settled:
        log.info("fills still landing while positions were read; %d difference(s) left to the next check",
                 len(mismatches))
        mismatches = {}
    for s, (want, have) in mismatches.items():
        log.warning("position mismatch %s: journal expects %g, broker holds %g (broker wins)", s, want, have)
    pending: dict[str, tuple[float, float]] = {}
    for order in still_open.values():
        buy, sell = pending.get(order.symbol, (0.0, 0.0))
        if order.side is Side.BUY:
            buy += order.remaining_qty
        else:
            sell += order.remaining_qty
        pending[order.symbol] = (buy, sell)
    return Reconciliation(positions, tuple(fills), mismatches, tuple(still_open), pending, settled)


def _poll(broker: Broker, journal: Journal, cid: str, status: str, fills: list[Fill]) -> Order | None:
    """Ask the broker about one order and journal what changed (a new fill is appended to ``fills``)."""
    try:
        order = broker.get_order(client_order_id=cid)
    except OrderNotFound:
        log.error("journalled order %s (%s) is unknown to the broker", cid, status)
        return None
    fill = journal.update_from_broker(order)
    if fill is not None:
        fills.append(fill)
        log.info(
            "fill %s: %s %g %s @ %.4f", fill.client_order_id, fill.side.value, fill.qty, fill.symbol, fill.price
        )
    if not order.is_open and order.status.value != status:
        log.info("order %s is now %s", order.client_order_id, order.status.value)
    return order
