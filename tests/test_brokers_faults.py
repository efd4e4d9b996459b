"""A trading cycle (reconcile -> plan -> place -> reconcile) survives every fault the fake Alpaca injects,
and afterwards the journal's positions equal the broker's."""

from __future__ import annotations

import pandas as pd
import pytest
from alpaca_server import (
    DropConnection,
    FakeAlpaca,
    Fault,
    HttpError,
    LateFill,
    PartialFill,
    rate_limited,
    rejected,
    server_error,
)

from brokers.alpaca import AlpacaBroker
from brokers.journal import Journal
from brokers.planning import plan_orders
from brokers.reconcile import Reconciliation, reconcile
from brokers.retry import RetryPolicy
from brokers.router import OrderRouter

RUN = "faults"
PRICES = {"SPY": 500.0, "AAPL": 200.0}
BARS = pd.date_range("2024-03-04", periods=3, freq="D", tz="UTC")
TARGETS = [{"SPY": 0.2, "AAPL": 0.1}, {"SPY": 0.05, "AAPL": 0.3}, {"SPY": 0.0, "AAPL": 0.0}]

FAULTS: dict[str, Fault] = {
    "http-500": server_error(500),
    "http-429": rate_limited(retry_after=0.0),
    "reject-403": rejected("insufficient buying power", status=403),
    "reject-422": rejected("qty must be > 0", status=422),
    "partial-fill": PartialFill(0.5),
    "late-fill": LateFill(),
    "drop-before": DropConnection(),
    "drop-after": DropConnection(after_processing=True),
    "504-after": HttpError(504, "gateway timeout", after_processing=True),
}


def cycle(
    broker: AlpacaBroker, journal: Journal, router: OrderRouter, bar: pd.Timestamp, weights: dict[str, float]
) -> Reconciliation:
    """One decision as the live runner makes it."""
    router.cancel_stale(bar)
    rec = reconcile(broker, journal, RUN)
    plan = plan_orders(weights, rec.positions, PRICES, broker.account().equity, RUN, bar, fractional=False)
    router.place(bar, plan)
    return reconcile(broker, journal, RUN)


@pytest.mark.parametrize("fault", list(FAULTS.values()), ids=list(FAULTS))
def test_cycle_survives_fault_and_positions_match(alpaca_env: FakeAlpaca, fault: Fault) -> None:
    broker = AlpacaBroker.from_env(retry=RetryPolicy(max_attempts=4, base_delay=0), sleep=lambda s: None)
    journal = Journal(":memory:")
    router = OrderRouter(broker, journal, RUN, sleep=lambda s: None)
    for k, (bar, weights) in enumerate(zip(BARS, TARGETS)):
        if k == 1:
            alpaca_env.inject(fault)
        rec = cycle(broker, journal, router, bar, weights)
        broker_positions = {s: p.qty for s, p in broker.positions().items()}
        server_positions = {s: p.qty for s, p in alpaca_env.positions.items()}
        assert rec.consistent, rec.mismatches
        assert rec.positions == broker_positions == server_positions
        alpaca_env.fill_pending()
    client_ids = [o.client_order_id for o in alpaca_env.orders.values()]
    assert len(client_ids) == len(set(client_ids))
    journalled = {o.client_order_id for o in journal.orders(RUN) if o.broker_order_id}
    assert set(client_ids) == journalled, "every order at the broker is in the journal and vice versa"
    final = reconcile(broker, journal, RUN)
    assert final.consistent and final.positions == {}
