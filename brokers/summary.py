"""The end-of-run summary, read from the journal alone (so ``experiments.monitor`` can print it for any
journal): P/L, orders, fills, rejections, risk interventions, outages, skipped bars and what a kill switch
left for the next open."""

from __future__ import annotations

from collections import Counter
from typing import Any

from brokers.journal import KILLED, PLANNED, Journal


RUN_END = "run_end"


def record_run_end(journal: Journal, run_id: str, equity: float) -> None:
    """Journal the account's equity when the run stops, after its last orders filled: the journal's own
    last figure is the last decision's, one bar earlier, so without it a summary read from the journal
    alone (``experiments.monitor``) would show another P/L than the run printed.

    :param journal: the run's journal.
    :param run_id: the run.
    :param equity: the broker's equity now.
    """
    decisions = journal.decisions(run_id)
    last_bar = str(decisions[-1][0]) if decisions else None
    journal.record_event(run_id, RUN_END, f"run stopped with equity {equity:,.2f}",
                         {"equity": float(equity), "last_bar": last_bar})


def summarize(
    journal: Journal,
    run_id: str,
    equity_now: float | None = None,
    decisions: list[tuple[Any, dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Counts and totals of one run.

    :param journal: the run's journal.
    :param run_id: the run.
    :param equity_now: the account's equity now, when the broker can be asked (the journal's last
        figure is the last decision's, before its orders filled).
    :param decisions: the run's decisions when the caller has read them already.
    :return: ``bars``, ``start_equity``, ``end_equity``, ``pnl``, ``orders`` (count per status), ``fills``,
        ``traded_value``, ``rejections`` (``[client id, reason]``), ``risk_interventions``, ``outages``
        (count), ``outage_seconds``, ``bad_bars``, ``stale_flattened``, ``left_for_next_open``.
    """
    decisions = journal.decisions(run_id) if decisions is None else decisions
    bars = [p for _, p in decisions if KILLED not in p]
    kills = [p for _, p in decisions if KILLED in p]
    equities = [p["equity"] for p in bars if "equity" in p]
    orders = journal.orders(run_id)
    fills = journal.fills(run_id)
    events = journal.events(run_id)
    ends = [e for e in events if e["kind"] == "outage_end"]
    start_equity = equities[0] if equities else None
    journalled = [p["equity"] for p in kills if "equity" in p] or equities
    # A run_end recorded after the run's last decision is the equity the run printed; a run that resumed
    # since has newer decisions, and then the journalled figures are the latest word.
    last_bar = str(decisions[-1][0]) if decisions else None
    stopped = [
        e["data"]["equity"] for e in events if e["kind"] == RUN_END and e["data"].get("last_bar") == last_bar
    ]
    if equity_now is None and stopped:
        equity_now = stopped[-1]
    end_equity = equity_now if equity_now is not None else (journalled[-1] if journalled else None)
    return {
        "bars": len(bars),
        "start_equity": start_equity,
        "end_equity": end_equity,
        "pnl": None if start_equity is None or end_equity is None else end_equity - start_equity,
        "orders": dict(sorted(Counter(o.status for o in orders).items())),
        "fills": len(fills),
        "traded_value": float(sum(f.qty * f.price for f in fills)),
        "rejections": [[o.client_order_id, o.reason or ""] for o in orders if o.status == "rejected"],
        "risk_interventions": sum(len(p.get("risk_events", ())) for p in bars),
        "outages": sum(1 for e in events if e["kind"] == "outage_start"),
        "outage_seconds": float(sum(e["data"].get("seconds", 0.0) for e in ends)),
        "bad_bars": sum(1 for e in events if e["kind"] == "bad_bar"),
        "stale_flattened": sorted({s for p in bars for s in p.get("stale_flattened", ())}),
        "left_for_next_open": kills[-1].get("left", {}) if kills else {},
        "still_open": [
            f"{o.request.symbol} {o.request.side.value} {o.request.qty - o.filled_qty:g} ({o.status})"
            for o in orders
            if not o.is_finished and o.status != PLANNED
        ],
    }


def format_summary(run_id: str, summary: dict[str, Any]) -> list[str]:
    """The summary as a few lines for the terminal.

    :param run_id: the run.
    :param summary: :func:`summarize`'s result.
    """
    s = summary
    pnl = "-" if s["pnl"] is None else f"{s['pnl']:+,.2f} ({s['start_equity']:,.2f} -> {s['end_equity']:,.2f})"
    orders = ", ".join(f"{n} {status}" for status, n in s["orders"].items()) or "none"
    lines = [
        f"run {run_id}: {s['bars']} bar(s); P/L {pnl}",
        f"  orders: {orders}; fills: {s['fills']} (traded {s['traded_value']:,.2f})",
        (
            f"  rejections: {len(s['rejections'])}; risk interventions: {s['risk_interventions']}; "
            f"outages: {s['outages']} ({s['outage_seconds']:.0f} s); bad bars skipped: {s['bad_bars']}"
        ),
    ]
    lines += [f"  rejected {cid}: {reason}" for cid, reason in s["rejections"]]
    if s["stale_flattened"]:
        lines.append(f"  flattened for lack of good data: {', '.join(s['stale_flattened'])}")
    if s["still_open"]:
        lines.append(f"  orders still open at the broker (not filled yet): {'; '.join(s['still_open'])}")
    if s["left_for_next_open"]:
        held = ", ".join(f"{sym} {qty:g}" for sym, qty in sorted(s["left_for_next_open"].items()))
        lines.append(f"  left for the next open (market closed at the kill switch): {held}")
    return lines
