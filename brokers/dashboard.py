"""The monitoring dashboard: a local, read-only web page over a run's journal, updated live.

:func:`dashboard_state` reads everything the page shows from the journal alone, so the same page serves a
running ``experiments.paper --dashboard`` and a finished journal (``experiments.monitor JOURNAL``):

- equity against the backtest of the same policy over the same bars (the runner's shadow env *is* that
  backtest, stepped with the run's decisions; each decision journals both);
- positions against targets (weights of equity at the last decision);
- orders and fills; every decision with its signal (the policy's action), requested and allowed weights;
- risk interventions and alerts (outages, skipped bars, stale symbols, the kill switch);
- broker health: call latency, retries, outages.

:class:`DashboardServer` serves it on 127.0.0.1 by default: the page, its script and stylesheet (bundled
in ``brokers/dashboard_assets``, no CDN, no request leaves the host) and ``/api/state``, which the page
polls every few seconds. Only GET is answered; the journal is opened with ``query_only`` so nothing can
write through it; credentials are never read, so they cannot be shown.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from brokers.journal import KILLED, Journal
from brokers.summary import summarize

log = logging.getLogger(__name__)
ASSETS = Path(__file__).with_name("dashboard_assets")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_ROWS = 500
"""Orders, fills, decisions and events sent per poll (the newest)."""
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css"}
_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:"


def open_read_only(path: str | Path) -> Journal:
    """Open a journal for reading only (SQLite refuses every write on this connection).

    :param path: the journal file; it must exist.
    :raises FileNotFoundError: no journal there.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"no journal at {path}")
    journal = Journal(path)
    journal._db.execute("PRAGMA query_only = ON")
    return journal


def dashboard_state(journal: Journal, run_id: str | None = None) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready data.

    :param journal: the run's journal.
    :param run_id: the run (default: the journal's only or last run).
    """
    runs = journal.runs()
    run = run_id or (runs[-1] if runs else "")
    decisions = journal.decisions(run)
    bars = [(ts, p) for ts, p in decisions if KILLED not in p]
    last = bars[-1][1] if bars else {}
    equity = [
        {"t": ts.isoformat(), "equity": p["equity"], "backtest": p.get("backtest_equity")}
        for ts, p in bars
        if "equity" in p
    ]
    positions = []
    if last:
        eq = last.get("equity") or math.nan
        for s in sorted(set(last.get("target", {})) | set(last.get("positions", {}))):
            qty = last.get("positions", {}).get(s, 0.0)
            price = last.get("prices", {}).get(s, math.nan)
            positions.append(
                {
                    "symbol": s,
                    "qty": qty,
                    "price": price,
                    "weight": _finite(qty * price / eq),
                    "target": last.get("target", {}).get(s, 0.0),
                    "stale": s in last.get("stale", {}),
                }
            )
    orders = [
        {
            "client_order_id": o.client_order_id,
            "bar": o.bar_ts.isoformat(),
            "symbol": o.request.symbol,
            "side": o.request.side.value,
            "qty": o.request.qty,
            "status": o.status,
            "filled_qty": o.filled_qty,
            "filled_avg_price": o.filled_avg_price,
            "reason": o.reason,
        }
        for o in journal.orders(run)[-MAX_ROWS:]
    ]
    fills = [
        {"at": f.timestamp.isoformat(), "client_order_id": f.client_order_id, "symbol": f.symbol,
         "side": f.side.value, "qty": f.qty, "price": f.price}
        for f in journal.fills(run)[-MAX_ROWS:]
    ]
    decided = [
        {
            "t": ts.isoformat(),
            "signal": p.get("action"),
            "requested": p.get("requested", {}),
            "target": p.get("target", {}),
            "risk_events": p.get("risk_events", []),
            "stale": sorted(p.get("stale", {})),
            "kill_switch": p.get(KILLED),
        }
        for ts, p in decisions[-MAX_ROWS:]
    ]
    events = journal.events(run)
    health = dict(last.get("health", {}))
    outages = [e for e in events if e["kind"] in ("outage_start", "outage_end")]
    health["outages"] = sum(1 for e in outages if e["kind"] == "outage_start")
    health["in_outage"] = bool(outages) and outages[-1]["kind"] == "outage_start"
    summary = summarize(journal, run, decisions=decisions)
    return _clean(
        {
            "run_id": run,
            "runs": runs,
            "journal": Path(journal.path).name,
            "last_bar": bars[-1][0].isoformat() if bars else None,
            "equity": equity,
            "positions": positions,
            "orders": orders,
            "fills": fills,
            "decisions": decided,
            "events": events[-MAX_ROWS:],
            "risk": [
                {"t": ts.isoformat(), "event": line} for ts, p in bars for line in p.get("risk_events", [])
            ][-MAX_ROWS:],
            "health": health,
            "summary": summary,
        }
    )


class DashboardServer:
    """Serves the dashboard of one journal in a background thread.

    :param journal_path: the journal file (opened read-only per request, so a running runner keeps writing).
    :param run_id: the run to show (default: the journal's last run).
    :param host: interface to bind (loopback by default).
    :param port: TCP port (0 picks a free one; see :attr:`url`).
    :param refresh_seconds: how often the page polls for changes.
    """

    def __init__(
        self,
        journal_path: str | Path,
        run_id: str | None = None,
        host: str = "127.0.0.1",
        port: int = 8765,
        refresh_seconds: float = 2.0,
    ) -> None:
        self.journal_path = Path(journal_path)
        self.run_id = run_id
        self.refresh_seconds = refresh_seconds
        if host not in LOOPBACK:
            log.warning("dashboard bound to %s: anyone who can reach it sees the run (read-only)", host)
        self._cache: tuple[Any, bytes] | None = None
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The page's address."""
        host, port = self._server.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}/"

    def start(self) -> DashboardServer:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.2,), daemon=True)
        self._thread.start()
        log.info("dashboard at %s", self.url)
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted."""
        self._server.serve_forever(0.2)

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> DashboardServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def state(self, run_id: str | None = None) -> bytes:
        """The JSON the page polls, re-read only when the journal has changed since the last poll (a fresh
        read-only connection each time, so the runner's writes are always seen).

        :param run_id: overrides the server's run.
        """
        run = run_id or self.run_id
        journal = open_read_only(self.journal_path)
        try:
            key = (run, journal.version())
            with self._lock:
                if self._cache is not None and self._cache[0] == key:
                    return self._cache[1]
                state = dashboard_state(journal, run)
                state["refresh_seconds"] = self.refresh_seconds
                state["version"] = repr(key)
                body = json.dumps(state).encode()
                self._cache = (key, body)
                return body
        finally:
            journal.close()


def parse_listen(value: str) -> tuple[str, int]:
    """``[HOST:]PORT`` to ``(host, port)``; the host defaults to 127.0.0.1.

    :param value: e.g. ``8765``, ``127.0.0.1:8765``, ``[::1]:8765``.
    :raises ValueError: not a port number in 0..65535.
    """
    host, _, port = value.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--dashboard takes [HOST:]PORT with a port in 0..65535, got {value!r}")
    return host, int(port)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _clean(value: Any) -> Any:
    """JSON has no NaN: non-finite floats become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _handler_for(server: DashboardServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            log.debug("dashboard: " + format, *args)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path == "/api/state":
                run = parse_qs(url.query).get("run", [None])[-1]
                try:
                    body = server.state(run)
                except (OSError, sqlite3.Error) as err:
                    self._send(503, json.dumps({"error": str(err)}).encode(), "application/json")
                    return
                self._send(200, body, "application/json")
                return
            name = "index.html" if url.path in ("/", "/index.html") else url.path.lstrip("/")
            path = ASSETS / name
            if "/" in name or not path.is_file() or path.suffix not in _TYPES:
                self._send(404, b"not found", "text/plain")
                return
            self._send(200, path.read_bytes(), _TYPES[path.suffix])

        def do_POST(self) -> None:
            self._send(405, b"the dashboard is read-only", "text/plain")

        do_PUT = do_DELETE = do_PATCH = do_POST

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Security-Policy", _CSP)
            self.send_header("X-Content-Type-Options", "nosniff")
            if status == 405:
                self.send_header("Allow", "GET")
            self.end_headers()
            self.wfile.write(body)

    return Handler
