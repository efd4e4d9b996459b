"""Reconciliation: bring the journal up to date with the broker before every decision.

Every unfinished order is polled by client order id, so partial fills, cancels and fills that arrive late
land in the journal as they happen (the runner never relies on a stream for this). The broker's positions
are the truth the next decision is made from; the journal's own account of them (start positions plus
journalled fills) is compared against it and any difference is reported, e.g. a manual trade or a fill
the journal could not see.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from brokers.base import Broker, Fill, OrderNotFound
from brokers.journal import PLANNED, Journal

log = logging.getLogger(__name__)
TOLERANCE = 1e-6


@dataclass(frozen=True)
class Reconciliation:
    """The outcome of one reconciliation.

    :param positions: the broker's signed shares by symbol (what decisions use).
    :param fills: fills journalled by this reconciliation.
    :param mismatches: ``symbol -> (journal's expected shares, broker's shares)`` where they differ.
    :param open_orders: client order ids still working at the broker.
    """

    positions: dict[str, float]
    fills: tuple[Fill, ...]
    mismatches: dict[str, tuple[float, float]]
    open_orders: tuple[str, ...]

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
    still_open: list[str] = []
    for jo in journal.orders(run_id, unfinished=True):
        if jo.status == PLANNED:
            continue
        try:
            order = broker.get_order(client_order_id=jo.client_order_id)
        except OrderNotFound:
            log.error("journalled order %s (%s) is unknown to the broker", jo.client_order_id, jo.status)
            continue
        fill = journal.update_from_broker(order)
        if fill is not None:
            fills.append(fill)
            log.info(
                "fill %s: %s %g %s @ %.4f",
                fill.client_order_id,
                fill.side.value,
                fill.qty,
                fill.symbol,
                fill.price,
            )
        if order.is_open:
            still_open.append(order.client_order_id)
        elif order.status.value != jo.status:
            log.info("order %s is now %s", order.client_order_id, order.status.value)
    positions = {s: p.qty for s, p in broker.positions().items() if abs(p.qty) > TOLERANCE}
    journal.record_start_positions(run_id, positions)
    expected = journal.expected_positions(run_id)
    mismatches = {
        s: (expected.get(s, 0.0), positions.get(s, 0.0))
        for s in sorted(set(expected) | set(positions))
        if abs(expected.get(s, 0.0) - positions.get(s, 0.0)) > TOLERANCE
    }
    for s, (want, have) in mismatches.items():
        log.warning("position mismatch %s: journal expects %g, broker holds %g (broker wins)", s, want, have)
    return Reconciliation(positions, tuple(fills), mismatches, tuple(still_open))
