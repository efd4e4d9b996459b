"""The monitoring dashboard: its data against the run and the backtest, its server (local, read-only, no
credentials), the monitor command, alert webhooks, and the page itself in a real headless Chromium."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from agents.registry import make_policy
from brokers.alerts import Alerts
from brokers.dashboard import DashboardServer, dashboard_state, open_read_only, parse_listen
from brokers.journal import Journal
from brokers.runner import LiveRunner, RunnerConfig
from brokers.sim import SimBroker
from envs.data.market_data import MarketData
from envs.data.synthetic import generate_market
from envs.sim.execution import ExecutionConfig
from envs.sim.risk import RiskConfig
from experiments.engine import BacktestConfig, run_backtest, start_bar
from experiments.paper import make_runner

EXECUTION = ExecutionConfig(commission=0.001, allow_short=True)
RISK = RiskConfig(max_position=0.3, stop_loss=0.05, max_heat=None)
SECRET = "sekret-value-that-must-never-show"


def bot() -> Any:
    return make_policy("sma_crossover", {"fast": 3, "slow": 8, "allow_short": True, "fraction": 0.4})


class ScriptedRun:
    """A simulated paper run written to a journal file, advanced bar by bar on demand."""

    def __init__(self, path: Path, market: MarketData) -> None:
        self.market = market
        self.sim = SimBroker(market.symbols, 100_000.0, EXECUTION)
        config = RunnerConfig(run_id="dash", execution=EXECUTION, risk=RISK)
        self.runner: LiveRunner = make_runner(bot(), self.sim, Journal(path), market.symbols, config, 100_000.0,
                                              market)
        self.t = start_bar([bot()], market, BacktestConfig(execution=EXECUTION, risk=RISK))

    def advance(self, bars: int) -> None:
        for _ in range(bars):
            self.sim.on_bar(self.market.index[self.t], self.market.values[self.t])
            self.runner.on_bar(self.market.iloc(slice(0, self.t + 1)))
            self.t += 1


@pytest.fixture
def market() -> MarketData:
    return generate_market(n_symbols=2, n_days=80, seed=11, model="regime")


@pytest.fixture
def run(tmp_path: Path, market: MarketData) -> ScriptedRun:
    scripted = ScriptedRun(tmp_path / "journal.sqlite", market)
    scripted.advance(30)
    return scripted


def test_state_shows_the_runs_positions_and_the_backtests_equity(run: ScriptedRun, market: MarketData) -> None:
    state = dashboard_state(open_read_only(run.runner.journal.path))
    decisions = run.runner.journal.decisions("dash")
    assert state["run_id"] == "dash" and len(state["equity"]) == len(decisions) == 30
    held = {s: p.qty for s, p in run.sim.positions().items()}
    shown = {p["symbol"]: p["qty"] for p in state["positions"] if p["qty"]}
    assert shown == pytest.approx(held) and held, "positions as the broker reported them at the last bar"
    last = decisions[-1][1]
    assert {p["symbol"]: p["target"] for p in state["positions"]} == last["target"]
    # The backtest line is the backtest of the same policy over the same bars (the engine's own result).
    reference = run_backtest(bot(), market, BacktestConfig(execution=EXECUTION, risk=RISK)).equity
    for point in state["equity"]:
        assert point["backtest"] == pytest.approx(reference[pd.Timestamp(point["t"])], rel=1e-9)
    assert len(state["orders"]) == len(run.runner.journal.orders("dash")) and state["fills"]
    assert state["summary"]["bars"] == 30 and state["decisions"][-1]["signal"] == last["action"]


def fetch(url: str, method: str = "GET") -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(url, method=method, data=b"{}" if method != "GET" else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.read().decode(), dict(reply.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(), dict(err.headers)


def test_server_is_local_read_only_and_never_shows_credentials(
    run: ScriptedRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APCA_API_KEY_ID", SECRET)
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
    before = len(run.runner.journal.decisions("dash"))
    with DashboardServer(run.runner.journal.path, port=0) as server:
        assert server.url.startswith("http://127.0.0.1:")
        pages = [fetch(server.url + p) for p in ("", "dashboard.js", "dashboard.css", "api/state")]
        assert [status for status, _, _ in pages] == [200] * 4
        assert all(SECRET not in body for _, body, _ in pages)
        assert "default-src 'none'" in pages[0][2]["Content-Security-Policy"]
        assert "http://" not in pages[0][1] and "https://" not in pages[0][1] + pages[1][1], "no CDN"
        for method in ("POST", "PUT", "DELETE"):
            assert fetch(server.url + "api/state", method)[0] == 405
        assert fetch(server.url + "../journal.sqlite")[0] == 404
    assert len(Journal(run.runner.journal.path).decisions("dash")) == before
    assert parse_listen("9000") == ("127.0.0.1", 9000) and parse_listen("[::1]:80") == ("::1", 80)
    with pytest.raises(ValueError, match=r"\[HOST:\]PORT"):
        parse_listen("localhost:http")


def test_the_page_in_a_real_browser_shows_the_run_and_updates_live(run: ScriptedRun, chromium: Any) -> None:
    with DashboardServer(run.runner.journal.path, port=0, refresh_seconds=0.3) as server:
        with chromium.open(server.url) as loaded:
            page = loaded.page
            page.locator("body[data-bars='30']").wait_for(timeout=20_000)
            assert page.locator("#run-id").inner_text() == "dash"
            live = page.locator("#equity-chart path.live")
            assert live.get_attribute("data-points") == "30"
            assert page.locator("#equity-chart path.backtest").get_attribute("data-points") == "30"
            rows = page.locator("#positions tbody tr").all_inner_texts()
            for symbol, position in run.sim.positions().items():
                row = next(r for r in rows if r.startswith(symbol))
                assert f"{position.qty:,.4f}" in row, (row, position.qty)
            equity = run.sim.account().equity
            card = page.locator(".card[data-name='equity'] .value").inner_text()
            assert card == f"{equity:,.2f}"
            assert page.locator("#decisions tbody tr").count() == 30
            # The journal grows while the page is open: it follows without a reload.
            run.advance(5)
            page.locator("body[data-bars='35']").wait_for(timeout=20_000)
            assert live.get_attribute("data-points") == "35"
            assert page.locator("#decisions tbody tr").count() == 35
            assert loaded.problems() == []


class Receiver:
    """A loopback HTTP server that records the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.got = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                outer.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()
                outer.got.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_alerts_reach_the_log_the_journal_and_a_webhook(tmp_path: Path) -> None:
    receiver = Receiver()
    journal = Journal(tmp_path / "j.sqlite")
    try:
        alerts = Alerts(journal, "hooked", receiver.url)
        alerts.send("outage_start", "broker unavailable: HTTP 503", {"what": "broker"})
        alerts.flush()
        assert receiver.got.wait(5)
    finally:
        receiver.close()
    body = receiver.bodies[0]
    assert body["run_id"] == "hooked" and body["kind"] == "outage_start" and body["data"] == {"what": "broker"}
    assert [e["kind"] for e in journal.events("hooked")] == ["outage_start"]
    dead = Alerts(journal, "hooked", "http://127.0.0.1:9/nothing-listens", timeout=1.0)
    dead.send("risk", "a failing webhook is logged, never raised")
    dead.flush()
    assert len(journal.events("hooked")) == 2


def test_monitor_command(run: ScriptedRun, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from experiments.monitor import main

    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0 and "--listen" in capsys.readouterr().out
    assert main([run.runner.journal.path, "--summary"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("run dash: 30 bar(s); P/L ") and "fills:" in out
    assert main([str(tmp_path / "missing.sqlite")]) == 2
    assert capsys.readouterr().err.startswith("error: no journal at")
    assert main([run.runner.journal.path, "--run-id", "nope"]) == 2
    assert "has no run 'nope'" in capsys.readouterr().err
    (tmp_path / "junk.sqlite").write_text("not a database")
    assert main([str(tmp_path / "junk.sqlite"), "--summary"]) == 2
    assert capsys.readouterr().err.strip().endswith("is not a readable journal: file is not a database")
    assert np.isfinite(dashboard_state(open_read_only(run.runner.journal.path))["summary"]["pnl"])


def test_paper_serves_the_dashboard_while_it_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from experiments.paper import main

    args = ["buy_and_hold", "--symbols", "SYN0", "--data", "synthetic:n_symbols=1,n_days=40", "--quiet", "--no-risk"]
    journal = tmp_path / "j.sqlite"
    assert main([*args, "--dashboard", "127.0.0.1:0", "--journal", str(journal)]) == 0
    out = capsys.readouterr().out
    assert "dashboard at http://127.0.0.1:" in out and "bar(s) decided" in out
    assert dashboard_state(open_read_only(journal))["summary"]["bars"] > 0
    assert main([*args, "--dashboard", "0", "--journal", ":memory:"]) == 2
    assert "--dashboard reads the journal from a file" in capsys.readouterr().err
