"""Deterministic client order ids.

The same (run, bar, symbol, leg) always maps to the same id, so a retry or a restarted runner that plans
the same order again is recognised by the broker (which refuses a repeated client_order_id) and by the
journal, and the order is never placed twice.
"""

from __future__ import annotations

import hashlib

from brokers.base import MAX_CLIENT_ORDER_ID, utc

PREFIX = "ag-"


def client_order_id(run_id: str, bar_timestamp: object, symbol: str, leg: str = "") -> str:
    """The client order id of one order of one decision.

    The parts are hashed (SHA-256, 40 hex digits) because run ids and symbols are unbounded while Alpaca
    accepts at most 48 characters.

    :param run_id: the live run's identifier.
    :param bar_timestamp: timestamp of the bar the decision was made on (normalised to UTC).
    :param symbol: asset symbol.
    :param leg: distinguishes several orders for one symbol in one decision (e.g. ``"close"`` and
        ``"open"`` when a position flips from long to short).
    :return: an id of the form ``ag-<40 hex digits>``.
    """
    if not run_id:
        raise ValueError("run_id is empty")
    if not symbol:
        raise ValueError("symbol is empty")
    key = "|".join((run_id, utc(bar_timestamp).isoformat(), symbol, leg))
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]
    ident = PREFIX + digest
    assert len(ident) <= MAX_CLIENT_ORDER_ID
    return ident
