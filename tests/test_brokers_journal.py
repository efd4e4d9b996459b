"""The journal, the order router and reconciliation: exactly-once orders across crashes and restarts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from alpaca_server import FakeAlpaca, LateFill, PartialFill

from brokers.alpaca import AlpacaBroker
from brokers.base import Order, OrderRequest, OrderStatus
from brokers.journal import DRY_RUN, PLANNED, UNSENT, Journal
from brokers.planning import PlannedOrder, plan_orders
from brokers.reconcile import reconcile
from brokers.retry import RetryPolicy
from brokers.router import OrderRouter

RUN = "run-test"
BAR = pd.Timestamp("2024-03-04", tz="UTC")
NEXT_BAR = pd.Timestamp("2024-03-05", tz="UTC")


class Crash(Exception):
    """Stands in for the process dying."""


class CrashingBroker:
    """Passes calls through to a broker but dies around the first ``submit``.

    :param inner: the real broker.
    :param after_send: die after the order reached the broker (else before sending it).
    """

    def __init__(self, inner: AlpacaBroker, after_send: bool) -> None:
        self.inner = inner
        self.after_send = after_send

    def submit(self, order: OrderRequest) -> Order:
        if self.after_send:
            self.inner.submit(order)
        raise Crash(order.client_order_id)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def new_broker() -> AlpacaBroker:
    return AlpacaBroker.from_env(retry=RetryPolicy(max_attempts=4, base_delay=0), sleep=lambda s: None)


def target_plan(broker: AlpacaBroker, weights: dict[str, float], bar: pd.Timestamp) -> list[PlannedOrder]:
    held = {s: p.qty for s, p in broker.positions().items()}
    return plan_orders(
        weights, held, {"SPY": 500.0, "AAPL": 200.0}, broker.account().equity, RUN, bar, fractional=False
    )


# ---------------------------------------------------------------------- journal
def test_journal_records_decisions_once(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        assert journal.record_decision(RUN, BAR, {"action": 1, "weights": {"SPY": 0.5}})
        assert not journal.record_decision(RUN, BAR, {"action": 0})
        assert journal.decision(RUN, BAR) == {"action": 1, "weights": {"SPY": 0.5}}
        assert journal.decision(RUN, NEXT_BAR) is None
        assert [ts for ts, _ in journal.decisions(RUN)] == [BAR]


def test_journal_turns_filled_quantity_into_fills(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    req = OrderRequest("SPY", "buy", 10, "ag-x")
    assert journal.plan_orders(RUN, BAR, [PlannedOrder(req)])
    assert not journal.plan_orders(RUN, BAR, [PlannedOrder(OrderRequest("SPY", "buy", 3, "ag-y"))])
    assert [o.client_order_id for o in journal.orders(RUN)] == ["ag-x"], "the first plan of a bar wins"

    def broker_view(filled: float, avg: float | None, status: str) -> Order:
        return Order("id-1", "ag-x", "SPY", req.side, 10, filled, avg, OrderStatus(status))

    assert journal.update_from_broker(broker_view(0, None, "accepted")) is None
    first = journal.update_from_broker(broker_view(4, 100.0, "partially_filled"))
    second = journal.update_from_broker(broker_view(10, 101.2, "filled"))
    assert (first.qty, first.price) == (4, 100.0)
    assert second.qty == pytest.approx(6) and second.price == pytest.approx(102.0)
    assert journal.update_from_broker(broker_view(10, 101.2, "filled")) is None
    assert journal.expected_positions(RUN) == {"SPY": pytest.approx(10)}
    assert journal.order("ag-x").is_finished
    journal.close()
    reopened = Journal(tmp_path / "j.sqlite")
    assert [f.qty for f in reopened.fills(RUN)] == pytest.approx([4, 6])


def test_expected_positions_count_every_fill_once_across_calls_and_connections(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal, other = Journal(path), Journal(path)

    def fill(cid: str, side: str, qty: float, run: str = RUN) -> None:
        req = OrderRequest("SPY", side, qty, cid)
        journal.plan_orders(run, pd.Timestamp(f"2024-03-{len(cid):02d}", tz="UTC"), [PlannedOrder(req)])
        filled = Order("id-" + cid, cid, "SPY", req.side, qty, qty, 100.0, OrderStatus.FILLED)
        other.update_from_broker(filled)

    assert journal.expected_positions(RUN) == {}
    fill("a", "buy", 5)  # journalled before the start snapshot
    assert journal.expected_positions(RUN) == {"SPY": 5}
    assert journal.record_start_positions(RUN, {"AAPL": 2.0}) == {"AAPL": 2.0}
    assert journal.expected_positions(RUN) == {"AAPL": 2, "SPY": 5}
    fill("bb", "sell", 2)  # through the other connection, after the first call counted the earlier fills
    fill("ccc", "buy", 7, run="another-run")
    assert journal.expected_positions(RUN) == {"AAPL": 2, "SPY": 3}
    assert journal.expected_positions(RUN) == {"AAPL": 2, "SPY": 3}, "a second call adds nothing twice"
    fill("dddd", "sell", 3)
    assert journal.expected_positions(RUN) == {"AAPL": 2}
    assert Journal(path).expected_positions(RUN) == {"AAPL": 2}


def test_update_of_unknown_order_is_an_error() -> None:
    journal = Journal(":memory:")
    with pytest.raises(KeyError, match="not in the journal"):
        journal.update_from_broker(
            Order(
                "id",
                "ag-missing",
                "SPY",
                OrderRequest("SPY", "buy", 1, "x").side,
                1,
                0,
                None,
                OrderStatus.NEW,
            )
        )


# ---------------------------------------------------------------------- crash and restart
@pytest.mark.parametrize("after_send", [False, True], ids=["crash-before-send", "crash-after-send"])
def test_restart_neither_duplicates_nor_loses_orders(
    alpaca_env: FakeAlpaca, tmp_path: Path, after_send: bool
) -> None:
    path = tmp_path / "journal.sqlite"
    broker = new_broker()
    journal = Journal(path)
    reconcile(broker, journal, RUN)
    plan = target_plan(broker, {"SPY": 0.1, "AAPL": 0.1}, BAR)
    assert len(plan) == 2
    router = OrderRouter(CrashingBroker(broker, after_send), journal, RUN, sleep=lambda s: None)
    with pytest.raises(Crash):
        router.place(BAR, plan)
    journal.close()

    # A new process: fresh broker client, journal reopened, the same decision planned again.
    broker = new_broker()
    journal = Journal(path)
    assert {o.status for o in journal.orders(RUN)} == {PLANNED}
    reconcile(broker, journal, RUN)
    replanned = target_plan(broker, {"SPY": 0.1, "AAPL": 0.1}, BAR)
    OrderRouter(broker, journal, RUN, sleep=lambda s: None).place(BAR, replanned)
    rec = reconcile(broker, journal, RUN)

    client_ids = [o.client_order_id for o in alpaca_env.orders.values()]
    assert sorted(client_ids) == sorted(p.request.client_order_id for p in plan), "each order exactly once"
    assert alpaca_env.count("POST", "/v2/orders") == 2
    assert rec.consistent and rec.positions == {"AAPL": 50.0, "SPY": 20.0}
    assert {o.status for o in journal.orders(RUN)} == {"filled"}


def test_planned_order_of_a_past_bar_is_not_sent_late(alpaca_env: FakeAlpaca, tmp_path: Path) -> None:
    broker = new_broker()
    journal = Journal(tmp_path / "j.sqlite")
    journal.plan_orders(RUN, BAR, [PlannedOrder(OrderRequest("SPY", "buy", 1, "ag-old"))])
    sent = OrderRouter(broker, journal, RUN).send_pending(NEXT_BAR)
    assert sent == [] and alpaca_env.orders == {}
    assert journal.order("ag-old").status == UNSENT


def test_dry_run_journals_without_sending(alpaca_env: FakeAlpaca) -> None:
    broker = new_broker()
    journal = Journal(":memory:")
    plan = target_plan(broker, {"SPY": 0.2}, BAR)
    OrderRouter(broker, journal, RUN, dry_run=True).place(BAR, plan)
    assert alpaca_env.count("POST", "/v2/orders") == 0
    assert [o.status for o in journal.orders(RUN)] == [DRY_RUN]


# ---------------------------------------------------------------------- reconciliation
def test_late_and_partial_fills_are_reconciled(alpaca_env: FakeAlpaca) -> None:
    broker = new_broker()
    journal = Journal(":memory:")
    reconcile(broker, journal, RUN)
    router = OrderRouter(broker, journal, RUN)
    alpaca_env.inject(PartialFill(0.5))
    alpaca_env.inject(LateFill())
    router.place(BAR, target_plan(broker, {"SPY": 0.1, "AAPL": 0.1}, BAR))
    rec = reconcile(broker, journal, RUN)
    assert rec.consistent and rec.positions == {"AAPL": 25.0}
    assert len(rec.open_orders) == 2
    alpaca_env.fill_pending()
    rec = reconcile(broker, journal, RUN)
    assert rec.consistent and rec.positions == {"AAPL": 50.0, "SPY": 20.0}
    assert [f.qty for f in rec.fills] == [25.0, 20.0] and rec.open_orders == ()


def test_stale_orders_are_cancelled_and_a_late_fill_still_lands(alpaca_env: FakeAlpaca) -> None:
    broker = new_broker()
    journal = Journal(":memory:")
    reconcile(broker, journal, RUN)
    router = OrderRouter(broker, journal, RUN)
    alpaca_env.inject(PartialFill(0.4))
    router.place(BAR, target_plan(broker, {"SPY": 0.1}, BAR))
    assert router.cancel_stale(NEXT_BAR) == 1
    rec = reconcile(broker, journal, RUN)
    assert rec.consistent and rec.positions == {"SPY": 8.0}
    assert journal.orders(RUN)[0].status == "canceled"


def test_manual_trade_shows_as_a_mismatch_and_the_broker_wins(alpaca_env: FakeAlpaca) -> None:
    broker = new_broker()
    journal = Journal(":memory:")
    reconcile(broker, journal, RUN)
    broker.submit(OrderRequest("AAPL", "buy", 3, "manual-1"))  # outside the run's journal
    rec = reconcile(broker, journal, RUN)
    assert rec.mismatches == {"AAPL": (0.0, 3.0)} and rec.positions == {"AAPL": 3.0}


def test_flip_cancels_the_opposite_order_and_waits_for_the_closing_leg(alpaca_env: FakeAlpaca) -> None:
    broker = new_broker()
    journal = Journal(":memory:")
    reconcile(broker, journal, RUN)
    router = OrderRouter(broker, journal, RUN, sleep=lambda s: None)
    router.place(BAR, target_plan(broker, {"SPY": 0.1}, BAR))
    alpaca_env.inject(LateFill())
    broker.submit(OrderRequest("SPY", "buy", 1, "stray-buy"))  # an open buy would make any sell a wash trade
    reconcile(broker, journal, RUN)

    flip = target_plan(broker, {"SPY": -0.05}, NEXT_BAR)
    assert [(p.request.side.value, p.request.qty, p.depends_on is not None) for p in flip] == [
        ("sell", 20.0, False),
        ("sell", 10.0, True),
    ]
    router.place(NEXT_BAR, flip)
    assert broker.get_order(client_order_id="stray-buy").status is OrderStatus.CANCELED
    rec = reconcile(broker, journal, RUN)
    assert rec.positions == {"SPY": -10.0}
    assert [o.status for o in journal.orders(RUN)] == ["filled", "filled", "filled"]
