"""Alerts: risk interventions, outages, skipped bars and stale symbols go to the log, the journal (where
the dashboard shows them) and, when configured, a webhook.

The webhook gets one JSON POST per alert (``{"run_id", "kind", "message", "at", "data"}``), sent in a
background thread with a short timeout: a slow or failing receiver is logged and never holds up trading.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from typing import Any

import pandas as pd

from brokers.journal import Journal

log = logging.getLogger(__name__)


class Alerts:
    """Where a run's alerts go.

    :param journal: the run's journal (events table).
    :param run_id: the run.
    :param webhook: URL receiving a JSON POST per alert, or None.
    :param timeout: seconds a webhook POST may take.
    """

    def __init__(self, journal: Journal, run_id: str, webhook: str | None = None, timeout: float = 5.0) -> None:
        self.journal = journal
        self.run_id = run_id
        self.webhook = webhook
        self.timeout = timeout
        self._threads: list[threading.Thread] = []

    def __repr__(self) -> str:
        return f"Alerts(run_id={self.run_id!r}, webhook={'set' if self.webhook else None})"

    def send(self, kind: str, message: str, data: dict[str, Any] | None = None, at: object = None) -> None:
        """Log, journal and (if configured) post one alert.

        :param kind: short name (``outage_start``, ``risk``, ``bad_bar``, ...).
        :param message: one line for people.
        :param data: JSON-serialisable details.
        :param at: when it happened (now by default).
        """
        when = pd.Timestamp.now(tz="UTC") if at is None else pd.Timestamp(at)
        # Risk interventions are the risk layer doing its job: info, not a warning (they are journalled
        # and posted all the same).
        log.log(logging.INFO if kind == "risk" else logging.WARNING, "alert %s: %s", kind, message)
        self.journal.record_event(self.run_id, kind, message, data, when)
        if self.webhook:
            body = {"run_id": self.run_id, "kind": kind, "message": message, "at": when.isoformat(),
                    "data": data or {}}
            thread = threading.Thread(target=self._post, args=(body,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def flush(self) -> None:
        """Wait for webhook posts still in flight (at the end of a run)."""
        for thread in self._threads:
            thread.join(self.timeout)
        self._threads.clear()

    def _post(self, body: dict[str, Any]) -> None:
        request = urllib.request.Request(
            str(self.webhook),
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                reply.read()
        except OSError as err:  # URLError, timeouts and refused connections are all OSErrors
            log.error("alert webhook failed (%s): %s", body["kind"], err)
