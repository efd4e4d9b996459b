"""The run journal: SQLite record of every decision, order and fill of a live run.

It is written ahead of the broker: an order is journalled as ``planned`` *before* it is sent, so after a
crash the runner knows every order it may have sent. On restart it looks each unfinished one up at the
broker by its deterministic client order id and either adopts the broker's copy or sends it now; nothing
is sent twice and nothing is lost. Every write commits at once. The database runs in WAL mode with
``synchronous=NORMAL``: a committed write survives the process dying (the failure this guards against),
without paying an fsync per order; only a power cut can lose the last commits.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from brokers.base import Fill, Order, OrderRequest, OrderType, Side, TimeInForce, utc
from brokers.planning import PlannedOrder

PLANNED = "planned"
"""Journalled, maybe sent: the broker must be asked before anything else happens to it."""
DRY_RUN = "dry_run"
"""Logged by ``--dry-run``; never sent."""
UNSENT = "unsent"
"""Planned for a bar that passed before it could be sent (e.g. the runner was down); never sent."""
KILLED = "kill_switch"
"""Key of the decision payload a kill switch journals (the run is stopped from then on)."""
_LOCAL_TERMINAL = (DRY_RUN, UNSENT)
_BROKER_TERMINAL = ("filled", "canceled", "expired", "replaced", "rejected", "done_for_day")
# Written out rather than bound as parameters: SQLite uses the partial index below only for a query whose
# condition is the index's own, literally.
_UNFINISHED = "status NOT IN ({})".format(", ".join(f"'{s}'" for s in _LOCAL_TERMINAL + _BROKER_TERMINAL))

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    run_id TEXT NOT NULL,
    bar_ts TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (run_id, bar_ts)
);
CREATE TABLE IF NOT EXISTS orders (
    client_order_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    bar_ts TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    qty REAL NOT NULL,
    type TEXT NOT NULL,
    time_in_force TEXT NOT NULL,
    limit_price REAL,
    status TEXT NOT NULL,
    broker_order_id TEXT,
    filled_qty REAL NOT NULL DEFAULT 0,
    filled_avg_price REAL,
    reason TEXT,
    depends_on TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_by_bar ON orders (run_id, bar_ts);
CREATE INDEX IF NOT EXISTS orders_unfinished ON orders (run_id) WHERE {unfinished};
CREATE TABLE IF NOT EXISTS fills (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    client_order_id TEXT NOT NULL REFERENCES orders(client_order_id),
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    qty REAL NOT NULL,
    price REAL NOT NULL,
    timestamp TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_run ON events (run_id, id);
CREATE TABLE IF NOT EXISTS snapshots (
    run_id TEXT PRIMARY KEY,
    positions TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class JournalOrder:
    """One journalled order: what was planned and what the broker last said about it.

    :param request: the order as planned.
    :param run_id: the run it belongs to.
    :param bar_ts: the bar its decision was made on.
    :param status: ``planned``, ``dry_run``, ``unsent``, or the broker's status.
    :param broker_order_id: the broker's id once known.
    :param filled_qty: shares filled so far.
    :param filled_avg_price: average fill price so far.
    :param reason: why it was rejected or left unsent.
    :param depends_on: client order id that must fill before this one is sent (the closing leg of a flip).
    """

    request: OrderRequest
    run_id: str
    bar_ts: pd.Timestamp
    status: str
    broker_order_id: str | None
    filled_qty: float
    filled_avg_price: float | None
    reason: str | None
    depends_on: str | None = None

    @property
    def client_order_id(self) -> str:
        return self.request.client_order_id

    @property
    def is_finished(self) -> bool:
        """True when nothing more can happen to this order."""
        return self.status in _LOCAL_TERMINAL or self.status in _BROKER_TERMINAL


class Journal:
    """A SQLite journal file (created if missing).

    :param path: database file; ``":memory:"`` for a throwaway journal.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA.format(unfinished=_UNFINISHED))
        # run -> (id of the last fill counted, expected positions): fills are only ever appended and the
        # start snapshot never changes once written, so each call adds only the fills journalled since.
        self._held: dict[str, tuple[int, dict[str, float]]] = {}

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ decisions
    def record_decision(self, run_id: str, bar_ts: object, payload: dict[str, Any]) -> bool:
        """Store the decision made on a bar; the first one recorded wins.

        :param run_id: the run.
        :param bar_ts: the bar the decision was made on.
        :param payload: JSON-serialisable description (action, target weights, ...).
        :return: False when this bar already had a decision (a restart re-uses it).
        """
        cur = self._db.execute(
            "INSERT OR IGNORE INTO decisions VALUES (?, ?, ?, ?)",
            (run_id, _ts(bar_ts), json.dumps(payload, sort_keys=True), _now()),
        )
        return cur.rowcount == 1

    def decision(self, run_id: str, bar_ts: object) -> dict[str, Any] | None:
        """The decision recorded for a bar, if any."""
        row = self._db.execute(
            "SELECT payload FROM decisions WHERE run_id = ? AND bar_ts = ?", (run_id, _ts(bar_ts))
        ).fetchone()
        return None if row is None else json.loads(row["payload"])

    def first_decision(self, run_id: str) -> dict[str, Any] | None:
        """The run's first decision, if any."""
        row = self._db.execute(
            "SELECT payload FROM decisions WHERE run_id = ? ORDER BY bar_ts LIMIT 1", (run_id,)
        ).fetchone()
        return None if row is None else json.loads(row["payload"])

    def decisions(self, run_id: str) -> list[tuple[pd.Timestamp, dict[str, Any]]]:
        """Every decision of a run, oldest first."""
        rows = self._db.execute(
            "SELECT bar_ts, payload FROM decisions WHERE run_id = ? ORDER BY bar_ts", (run_id,)
        )
        return [(pd.Timestamp(r["bar_ts"]), json.loads(r["payload"])) for r in rows]

    # ------------------------------------------------------------------ events
    def record_event(
        self, run_id: str, kind: str, message: str, data: dict[str, Any] | None = None, at: object = None
    ) -> None:
        """Journal an alert-worthy event (an outage starting or ending, a skipped bar, a kill switch).

        :param run_id: the run.
        :param kind: short name (``outage_start``, ``outage_end``, ``bad_bar``, ``stale_symbol``, ...).
        :param message: one line for people.
        :param data: JSON-serialisable details.
        :param at: when it happened (now by default).
        """
        when = _now() if at is None else _ts(at)
        self._db.execute(
            "INSERT INTO events (run_id, at, kind, message, data) VALUES (?, ?, ?, ?, ?)",
            (run_id, when, kind, message, json.dumps(data or {}, sort_keys=True)),
        )

    def events(self, run_id: str, after: int = 0) -> list[dict[str, Any]]:
        """The run's events after event id ``after``, oldest first (``id``, ``at``, ``kind``, ``message``,
        ``data``).

        :param run_id: the run.
        :param after: only events with a larger id (a dashboard polls with the last id it saw).
        """
        rows = self._db.execute(
            "SELECT * FROM events WHERE run_id = ? AND id > ? ORDER BY id", (run_id, after)
        )
        return [
            {"id": r["id"], "at": r["at"], "kind": r["kind"], "message": r["message"],
             "data": json.loads(r["data"])}
            for r in rows
        ]

    def version(self) -> tuple[Any, ...]:
        """Changes whenever anything is written (a decision, an order's update, a fill, an event): a reader
        polling the journal re-reads it only when this moves."""
        row = self._db.execute(
            "SELECT (SELECT max(rowid) FROM decisions), (SELECT count(*) FROM decisions), "
            "(SELECT max(updated_at) FROM orders), (SELECT count(*) FROM orders), "
            "(SELECT max(id) FROM fills), (SELECT max(id) FROM events)"
        ).fetchone()
        return tuple(row)

    def runs(self) -> list[str]:
        """Every run id with a decision, order or event in this journal, sorted."""
        rows = self._db.execute(
            "SELECT run_id FROM decisions UNION SELECT run_id FROM orders UNION SELECT run_id FROM events"
        )
        return sorted(r["run_id"] for r in rows)

    # ------------------------------------------------------------------ positions snapshot
    def record_start_positions(self, run_id: str, positions: dict[str, float]) -> dict[str, float]:
        """Remember the broker's positions when a run first starts; later calls return the first snapshot.

        :param run_id: the run.
        :param positions: signed shares by symbol.
        """
        self._db.execute(
            "INSERT OR IGNORE INTO snapshots VALUES (?, ?, ?)",
            (run_id, json.dumps(positions, sort_keys=True), _now()),
        )
        row = self._db.execute("SELECT positions FROM snapshots WHERE run_id = ?", (run_id,)).fetchone()
        return {k: float(v) for k, v in json.loads(row["positions"]).items()}

    def expected_positions(self, run_id: str) -> dict[str, float]:
        """Start positions plus every journalled fill of the run: what the broker should hold.

        Called before every decision, so once the start snapshot exists it adds only the fills journalled
        since the last call.
        """
        cached = self._held.get(run_id)
        if cached is None:
            row = self._db.execute("SELECT positions FROM snapshots WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:  # no start snapshot to build on yet: count every fill, remember nothing
                return _nonzero(self._add_fills(run_id, 0, {})[1])
            cached = (0, {k: float(v) for k, v in json.loads(row["positions"]).items()})
        self._held[run_id] = self._add_fills(run_id, *cached)
        return _nonzero(self._held[run_id][1])

    def _add_fills(self, run_id: str, after: int, held: dict[str, float]) -> tuple[int, dict[str, float]]:
        """Add the run's fills journalled after fill id ``after`` to ``held``; return the last id and it."""
        rows = self._db.execute(
            "SELECT f.id, f.symbol, f.side, f.qty FROM fills f JOIN orders o "
            "ON o.client_order_id = f.client_order_id WHERE o.run_id = ? AND f.id > ? ORDER BY f.id",
            (run_id, after),
        )
        for r in rows:
            after = r["id"]
            held[r["symbol"]] = held.get(r["symbol"], 0.0) + Side(r["side"]).sign * float(r["qty"])
        return after, held

    # ------------------------------------------------------------------ orders
    def plan_orders(
        self, run_id: str, bar_ts: object, orders: Sequence[PlannedOrder], status: str = PLANNED
    ) -> bool:
        """Journal all of a decision's orders, in one transaction, before any is sent.

        The first plan of a bar wins: a restart that re-plans the bar from positions that moved since
        (a closing leg filled, say) must finish the journalled plan, not add a different one.

        :param run_id: the run.
        :param bar_ts: the bar the decision was made on.
        :param orders: the plan, in sending order.
        :param status: ``planned`` (will be sent) or ``dry_run``.
        :return: False when this bar already has journalled orders (nothing is added then).
        """
        bar = _ts(bar_ts)
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            taken = self._db.execute(
                "SELECT 1 FROM orders WHERE run_id = ? AND bar_ts = ? LIMIT 1", (run_id, bar)
            ).fetchone()
            if taken is not None:
                return False
            self._db.executemany(
                "INSERT INTO orders (client_order_id, run_id, bar_ts, symbol, side, qty, type, "
                "time_in_force, limit_price, status, depends_on, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        p.request.client_order_id,
                        run_id,
                        bar,
                        p.request.symbol,
                        p.request.side.value,
                        float(p.request.qty),
                        p.request.type.value,
                        p.request.time_in_force.value,
                        p.request.limit_price,
                        status,
                        p.depends_on,
                        _now(),
                    )
                    for p in orders
                ],
            )
        return True

    def order(self, client_order_id: str) -> JournalOrder | None:
        """One journalled order, or None."""
        row = self._db.execute(
            "SELECT * FROM orders WHERE client_order_id = ?", (client_order_id,)
        ).fetchone()
        return None if row is None else _journal_order(row)

    def orders(self, run_id: str | None = None, unfinished: bool = False) -> list[JournalOrder]:
        """Journalled orders in planning order.

        :param run_id: only this run's orders.
        :param unfinished: only orders that may still change (planned or open at the broker).
        """
        query, args = "SELECT * FROM orders", []
        clauses = []
        if run_id is not None:
            clauses.append("run_id = ?")
            args.append(run_id)
        if unfinished:
            # Every decision asks for these: the partial index keeps that cheap however long the run.
            clauses.append(_UNFINISHED)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        return [_journal_order(r) for r in self._db.execute(query + " ORDER BY rowid", args)]

    def mark(self, client_order_id: str, status: str, reason: str | None = None) -> None:
        """Set a local status (``unsent``, ``rejected``, ...) with its reason."""
        self._db.execute(
            "UPDATE orders SET status = ?, reason = ?, updated_at = ? WHERE client_order_id = ?",
            (status, reason, _now(), client_order_id),
        )

    def update_from_broker(self, order: Order) -> Fill | None:
        """Record the broker's view of an order and journal any new fill.

        A fill is the increase in ``filled_qty`` since the last update, priced so that the journalled fills
        average to the broker's ``filled_avg_price``.

        :param order: the broker's order.
        :return: the new fill, if the order filled more since the last update.
        """
        prev = self.order(order.client_order_id)
        if prev is None:
            raise KeyError(f"order {order.client_order_id!r} is not in the journal")
        fill = None
        delta = order.filled_qty - prev.filled_qty
        with self._db:
            self._db.execute("BEGIN")
            if delta > 1e-12 and order.filled_avg_price is not None:
                value = order.filled_qty * order.filled_avg_price - prev.filled_qty * (
                    prev.filled_avg_price or 0.0
                )
                fill = Fill(
                    order.client_order_id,
                    order.symbol,
                    order.side,
                    delta,
                    value / delta,
                    pd.Timestamp.now(tz="UTC"),
                )
                self._db.execute(
                    "INSERT INTO fills (client_order_id, symbol, side, qty, price, timestamp) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        fill.client_order_id,
                        fill.symbol,
                        fill.side.value,
                        fill.qty,
                        fill.price,
                        _ts(fill.timestamp),
                    ),
                )
            self._db.execute(
                "UPDATE orders SET status = ?, broker_order_id = ?, filled_qty = ?, filled_avg_price = ?, "
                "updated_at = ? WHERE client_order_id = ?",
                (
                    order.status.value,
                    order.id,
                    order.filled_qty,
                    order.filled_avg_price,
                    _now(),
                    order.client_order_id,
                ),
            )
        return fill

    # ------------------------------------------------------------------ fills
    def fills(self, run_id: str | None = None) -> list[Fill]:
        """Journalled fills, oldest first."""
        query = "SELECT f.* FROM fills f"
        args: Iterable[str] = ()
        if run_id is not None:
            query += " JOIN orders o ON o.client_order_id = f.client_order_id WHERE o.run_id = ?"
            args = (run_id,)
        rows = self._db.execute(query + " ORDER BY f.id", tuple(args))
        return [
            Fill(
                r["client_order_id"],
                r["symbol"],
                Side(r["side"]),
                r["qty"],
                r["price"],
                pd.Timestamp(r["timestamp"]),
            )
            for r in rows
        ]


def _nonzero(held: dict[str, float]) -> dict[str, float]:
    return {s: q for s, q in held.items() if abs(q) > 1e-9}


def _journal_order(row: sqlite3.Row) -> JournalOrder:
    request = OrderRequest(
        symbol=row["symbol"],
        side=Side(row["side"]),
        qty=row["qty"],
        client_order_id=row["client_order_id"],
        type=OrderType(row["type"]),
        time_in_force=TimeInForce(row["time_in_force"]),
        limit_price=row["limit_price"],
    )
    return JournalOrder(
        request=request,
        run_id=row["run_id"],
        bar_ts=pd.Timestamp(row["bar_ts"]),
        status=row["status"],
        broker_order_id=row["broker_order_id"],
        filled_qty=row["filled_qty"],
        filled_avg_price=row["filled_avg_price"],
        reason=row["reason"],
        depends_on=row["depends_on"],
    )


def _ts(value: object) -> str:
    return utc(value).isoformat()


def _now() -> str:
    return pd.Timestamp.now(tz="UTC").isoformat()
