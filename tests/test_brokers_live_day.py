"""A trading day against the local Alpaca-compatible server, through alpaca-py: each defect found there is a
regression test (cancel/fill races, fills landing mid-reconciliation, outages, bad bars, restarts,
the kill switch after the close)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from alpaca_server import FakeAlpaca, LandFills, LateFill, PartialFill, PendingCancel, alpaca_daily

from brokers.alpaca import AlpacaBroker
from brokers.journal import Journal
from brokers.reconcile import reconcile
from brokers.retry import RetryPolicy
from brokers.runner import RunnerConfig
from envs.data.market_data import MarketData
from envs.data.synthetic import generate_market
from envs.sim.execution import ExecutionConfig
from experiments.paper import make_runner

WHOLE = ExecutionConfig(fractional=False, commission=0.0)


class Scripted:
    """Target weights per bar (flat otherwise)."""

    name = "scripted"

    def __init__(self, weights: dict[pd.Timestamp, list[float]], n_symbols: int = 2) -> None:
        self.weights = weights
        self.n_symbols = n_symbols

    def reset(self, seed: int | None = None) -> None:
        """Stateless."""

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        return np.asarray(self.weights.get(info["timestamp"], [0.0] * self.n_symbols))


@pytest.fixture
def daily(alpaca_env: FakeAlpaca) -> MarketData:
    data = generate_market(symbols=("SPY", "AAPL"), n_days=60, start="2024-01-02", seed=5)
    alpaca_env.bars_until_now = True
    alpaca_env.set_bars(alpaca_daily(data.to_long()))
    alpaca_env.prices = {"SPY": 500.0, "AAPL": 200.0}
    return data


def fast_broker() -> AlpacaBroker:
    return AlpacaBroker.from_env(retry=RetryPolicy(max_attempts=3, base_delay=0), sleep=lambda s: None)


def spy(server: FakeAlpaca) -> float:
    held = server.positions.get("SPY")
    return 0.0 if held is None else held.qty


@pytest.mark.parametrize("first", ["late", "partial"])
@pytest.mark.parametrize("events", ["stale-order-fills-anyway", "cancel-completes"])
def test_cancel_fill_race_never_exceeds_the_target(
    alpaca_env: FakeAlpaca, daily: MarketData, tmp_path: Path, events: str, first: str
) -> None:
    k = daily.n_bars - 4
    bars = [daily.iloc(slice(0, k + 1 + j)) for j in range(3)]
    script = {bars[0].index[-1]: [0.10, 0.0], bars[1].index[-1]: [0.12, 0.0], bars[2].index[-1]: [0.12, 0.0]}
    config = RunnerConfig(run_id="race", execution=WHOLE, risk=None)
    runner = make_runner(Scripted(script), fast_broker(), Journal(tmp_path / "j.sqlite"), daily.symbols,
                         config, 100_000.0)
    lot = 1.0
    alpaca_env.prices["SPY"] = float(bars[1].close[-1, 0])
    target = [int(w * 100_000 / float(b.close[-1, 0])) for w, b in zip((0.10, 0.12), bars)]

    alpaca_env.inject(LateFill() if first == "late" else PartialFill(0.5))
    runner.on_bar(bars[0])
    early = spy(alpaca_env)
    assert early == (0 if first == "late" else target[0] // 2), "the first buy is not (fully) filled yet"
    # Next bar: the stale buy is cancelled, but Alpaca only marks it pending_cancel; it can still fill.
    alpaca_env.inject(PendingCancel(), "DELETE", "/v2/orders/")
    runner.on_bar(bars[1])
    seen = [spy(alpaca_env)]
    assert seen[0] == early + target[1] - target[0], "only the part of the target not in flight is bought"
    if events == "stale-order-fills-anyway":
        alpaca_env.fill_pending()
        seen.append(spy(alpaca_env))
        alpaca_env.finish_cancels()
    else:
        alpaca_env.finish_cancels()
        seen.append(spy(alpaca_env))
        alpaca_env.fill_pending()
    seen.append(spy(alpaca_env))
    equity = runner.broker.account().equity
    target.append(int(0.12 * equity / float(bars[2].close[-1, 0])))
    runner.on_bar(bars[2])  # the deferred symbol trades again, sized from the positions now
    seen.append(spy(alpaca_env))
    assert max(seen) <= max(target) + lot, (seen, target)
    assert seen[-1] == target[2], (seen, target)
    rejected = [o for o in runner.journal.orders("race") if o.status == "rejected"]
    assert rejected == [] and runner.last_reconciliation.consistent


def test_fills_landing_between_order_and_position_reads_are_no_mismatch(
    alpaca_env: FakeAlpaca, caplog: pytest.LogCaptureFixture
) -> None:
    from brokers.planning import plan_orders
    from brokers.router import OrderRouter

    broker = fast_broker()
    journal = Journal(":memory:")
    router = OrderRouter(broker, journal, "land", sleep=lambda s: None)
    bar = pd.Timestamp("2024-03-04", tz="UTC")
    reconcile(broker, journal, "land")  # the run's start, as the runner does before any order
    alpaca_env.inject(LateFill())
    router.place(bar, plan_orders({"SPY": 0.1}, {}, {"SPY": 500.0}, 100_000.0, "land", bar, fractional=False))
    alpaca_env.inject(LandFills(), "GET", "/v2/positions")  # the fill lands after the orders were polled
    with caplog.at_level(logging.INFO):
        rec = reconcile(broker, journal, "land")
    assert "position mismatch" not in caplog.text
    assert rec.consistent and rec.positions == {"SPY": 20.0} and journal.expected_positions("land") == {"SPY": 20.0}


# ---------------------------------------------------------------------- outages on a simulated clock
TRADING_PATHS = ("/v2/account", "/v2/clock", "/v2/orders", "/v2/positions")


class SimClock:
    """Sleeping moves the fake server's clock instead of waiting: a 30-minute outage takes milliseconds."""

    def __init__(self, server: FakeAlpaca) -> None:
        self.server = server
        self.slept = 0.0

    def __call__(self, seconds: float) -> None:
        self.slept += seconds
        self.server.set_time(self.server.now + pd.Timedelta(seconds=seconds))

    def monotonic(self) -> float:
        return self.server.now.timestamp()


def loop(runner: Any, clock: SimClock, cycles: int, kill: Any = None) -> int:
    from brokers.feed import AlpacaBars
    from experiments.paper import KillSwitch, run_broker

    feed = AlpacaBars(runner.broker.config, retry=RetryPolicy(max_attempts=3, base_delay=0.5, seed=2), sleep=clock)
    return run_broker(
        runner,
        feed,
        "1Day",
        pd.Timedelta(days=120),
        kill or KillSwitch(),
        poll_interval=60.0,
        sleep=clock,
        max_cycles=cycles,
        outage_backoff=RetryPolicy(base_delay=1.0, max_delay=60.0, seed=3),
        monotonic=clock.monotonic,
    )


def session_runner(alpaca_env: FakeAlpaca, daily: MarketData, tmp_path: Path, clock: SimClock, run: str) -> Any:
    alpaca_env.set_time(pd.Timestamp(f"{daily.index[-1].date()} 15:00", tz="UTC"))  # 10:00 New York
    alpaca_env.prices = {s: float(daily.close[-2, j]) for j, s in enumerate(daily.symbols)}  # last complete bar
    broker = AlpacaBroker.from_env(retry=RetryPolicy(max_attempts=4, base_delay=0.5, seed=1), sleep=clock)
    config = RunnerConfig(run_id=run, execution=ExecutionConfig(), risk=None)
    from agents.registry import make_policy

    return make_runner(make_policy("buy_and_hold", {}), broker, Journal(tmp_path / f"{run}.sqlite"), daily.symbols,
                       config, 100_000.0)


@pytest.mark.parametrize(
    "what, paths, minutes",
    [("broker", TRADING_PATHS, 30), ("data API", ("/v2/stocks",), 10)],
    ids=["broker-30min", "data-10min"],
)
def test_runner_survives_an_outage_then_reconciles_and_resumes(
    alpaca_env: FakeAlpaca, daily: MarketData, tmp_path: Path, what: str, paths: tuple[str, ...], minutes: int
) -> None:
    from alpaca_server import DropConnection

    clock = SimClock(alpaca_env)
    runner = session_runner(alpaca_env, daily, tmp_path, clock, "outage")
    began = alpaca_env.now
    fault = DropConnection() if what == "data API" else None
    alpaca_env.outage(began + pd.Timedelta(minutes=minutes), paths, fault)
    decided = loop(runner, clock, cycles=60)
    assert decided == 1 and alpaca_env.now - began >= pd.Timedelta(minutes=minutes)
    events = runner.journal.events("outage")
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "outage_start" and "outage_end" in kinds and what in events[0]["message"]
    end = next(e for e in events if e["kind"] == "outage_end")
    assert end["data"]["seconds"] >= minutes * 60
    held = {s: p.qty for s, p in runner.broker.positions().items()}
    assert set(held) == {"SPY", "AAPL"} and runner.last_reconciliation.consistent
    from brokers.summary import summarize

    summary = summarize(runner.journal, "outage")
    assert summary["outages"] == 1 and summary["outage_seconds"] >= minutes * 60
    from brokers.dashboard import dashboard_state

    shown = dashboard_state(runner.journal, "outage")["health"]
    assert shown["outages"] == 1 and not shown["in_outage"] and shown["calls"] > 0
    if what == "broker":
        assert shown["retries"] >= 3 * end["data"]["failures"], "every failed cycle retried the call"


@pytest.mark.parametrize("fault", ["http-500", "dropped"])
def test_a_data_api_error_is_retried_not_a_traceback(
    alpaca_env: FakeAlpaca, daily: MarketData, tmp_path: Path, fault: str
) -> None:
    from alpaca_server import DropConnection, server_error

    clock = SimClock(alpaca_env)
    runner = session_runner(alpaca_env, daily, tmp_path, clock, "data-error")
    alpaca_env.inject(server_error(500) if fault == "http-500" else DropConnection(), "GET", "/v2/stocks/bars")
    assert loop(runner, clock, cycles=1) == 1
    assert alpaca_env.count("GET", "/v2/stocks/bars") >= 2 and runner.journal.events("data-error") == []


# ---------------------------------------------------------------------- configuration errors fail fast
def test_live_gate_checks_scheme_and_host() -> None:
    from brokers.credentials import AlpacaConfig, LiveTradingNotConfirmed

    with pytest.raises(ValueError, match="APCA_API_BASE_URL must be an http"):
        AlpacaConfig("k" * 10, "s" * 10, base_url="api.alpaca.markets")
    for url in ("https://API.ALPACA.MARKETS/v2", "https://api.alpaca.markets.:443"):
        with pytest.raises(LiveTradingNotConfirmed):
            AlpacaConfig("k" * 10, "s" * 10, base_url=url)
    with pytest.raises(ValueError, match="APCA_API_DATA_URL"):
        AlpacaConfig("k" * 10, "s" * 10, data_url="ftp://data.alpaca.markets")


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "env, message",
    [
        ({"APCA_API_BASE_URL": "api.alpaca.markets"}, "error: APCA_API_BASE_URL must be an http(s) URL"),
        ({"APCA_API_BASE_URL": f"http://127.0.0.1:{closed_port()}"}, "error: cannot reach the trading API"),
        ({"APCA_API_KEY_ID": "wrong-key"}, "error: broker rejected request (HTTP 401)"),
    ],
    ids=["no-scheme", "refused", "bad-key"],
)
def test_configuration_errors_fail_fast_with_one_line(
    alpaca_env: FakeAlpaca,
    daily: MarketData,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    message: str,
) -> None:
    from experiments.paper import main

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    code = main(["buy_and_hold", "--symbols", "SPY,AAPL", "--broker", "alpaca-paper",
                 "--journal", str(tmp_path / "j.sqlite"), "--quiet"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1 and lines[0].startswith(message), err
    assert "Traceback" not in err and "retry" not in err


# ---------------------------------------------------------------------- bad bars
def drive(runner: Any, alpaca_env: FakeAlpaca, daily: MarketData, days: range, feed: Any) -> None:
    """One broker-loop cycle per session day at 10:00 New York, deciding on the previous day's bar."""
    from experiments.paper import KillSwitch, run_broker

    clock = SimClock(alpaca_env)
    for i in days:
        alpaca_env.set_time(pd.Timestamp(f"{daily.index[i].date()} 15:00", tz="UTC"))
        alpaca_env.prices = {s: float(daily.close[i - 1, j]) for j, s in enumerate(daily.symbols)}
        run_broker(runner, feed, "1Day", pd.Timedelta(days=120), KillSwitch(), sleep=clock, max_cycles=1,
                   monotonic=clock.monotonic)


def ramp(daily: MarketData, days: range) -> Scripted:
    """Targets that change every bar for both symbols, so every good bar trades both."""
    return Scripted({daily.index[i - 1]: [0.05 + 0.03 * k] * 2 for k, i in enumerate(days)})


def bars_with(daily: MarketData, symbol: str, when: list[pd.Timestamp], edit: str) -> pd.DataFrame:
    long = alpaca_daily(daily.to_long())
    stamps = alpaca_daily(pd.DataFrame({"timestamp": pd.DatetimeIndex(when)}))["timestamp"]
    rows = (long["symbol"] == symbol) & long["timestamp"].isin(stamps)
    if edit == "nan":
        long.loc[rows, "close"] = np.nan
    elif edit == "null":
        long["close"] = long["close"].astype(object)
        long.loc[rows, "close"] = None
    elif edit == "future":
        extra = long[rows].assign(timestamp=long.loc[rows, "timestamp"] + pd.Timedelta(hours=37), injected=True)
        long = pd.concat([long.assign(injected=False), extra], ignore_index=True)
    elif edit == "out-of-order":  # the bar arrives after the next one
        moved = long[rows]
        long = pd.concat([long[~rows], moved], ignore_index=True)
    return long


@pytest.mark.parametrize("edit, rule", [("nan", "nan"), ("null", "missing_value"), ("future", "future_timestamp"),
                                        ("out-of-order", "unsorted_timestamp")])
def test_a_bad_bar_skips_that_symbols_bar_and_keeps_trading_the_others(
    alpaca_env: FakeAlpaca, daily: MarketData, tmp_path: Path, edit: str, rule: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from brokers.feed import AlpacaBars

    days = range(daily.n_bars - 5, daily.n_bars)
    bad_day = daily.index[days[2] - 1]  # the bar decided on the third day
    alpaca_env.set_bars(bars_with(daily, "SPY", [bad_day], edit), sort=edit != "out-of-order")
    config = RunnerConfig(run_id="bad", execution=ExecutionConfig(), risk=None)
    runner = make_runner(ramp(daily, days), fast_broker(), Journal(tmp_path / "j.sqlite"), daily.symbols, config,
                         100_000.0)
    feed = AlpacaBars(runner.broker.config, retry=RetryPolicy(max_attempts=2, base_delay=0), sleep=lambda s: None)
    with caplog.at_level(logging.WARNING):
        drive(runner, alpaca_env, daily, days, feed)
    named = [r.getMessage() for r in caplog.records if f"[{rule}]" in r.getMessage()]
    assert named and named[0].startswith("SPY bar "), caplog.text
    shown = bad_day + pd.Timedelta(days=1) if edit == "future" else bad_day
    assert pd.Timestamp(named[0].split()[2]).date() == shown.date(), named
    orders = runner.journal.orders("bad")
    traded = {(o.bar_ts, o.request.symbol) for o in orders if o.status == "filled"}
    decided = [ts for ts, _ in runner.journal.decisions("bad")]
    assert len(decided) == 5 and all((ts, "AAPL") in traded for ts in decided), "AAPL trades every bar"
    spy_skipped = {ts for ts in decided if (ts, "SPY") not in traded}
    if edit in ("nan", "null"):  # SPY has no good bar at bad_day: not traded on it, trades again after
        assert spy_skipped == {bad_day}
    else:  # the bad bar was not the decision bar: SPY's own bars are all there to trade on
        assert spy_skipped == set()
    assert [e["kind"] for e in runner.journal.events("bad")].count("bad_bar") == 1


def test_a_symbol_without_good_data_for_n_bars_is_flattened_and_reported(
    alpaca_env: FakeAlpaca, daily: MarketData, tmp_path: Path
) -> None:
    from brokers.feed import AlpacaBars
    from brokers.summary import format_summary, summarize

    days = range(daily.n_bars - 6, daily.n_bars)
    blind = [daily.index[i - 1] for i in days[2:5]]  # three bars in a row without a good SPY bar
    alpaca_env.set_bars(bars_with(daily, "SPY", blind, "null"))
    config = RunnerConfig(run_id="blind", execution=ExecutionConfig(), risk=None, max_stale_bars=3)
    runner = make_runner(ramp(daily, days), fast_broker(), Journal(tmp_path / "j.sqlite"), daily.symbols, config,
                         100_000.0)
    feed = AlpacaBars(runner.broker.config, retry=RetryPolicy(max_attempts=2, base_delay=0), sleep=lambda s: None)
    drive(runner, alpaca_env, daily, days[:4], feed)
    assert spy(alpaca_env) > 0, "two blind bars: SPY is held, not traded"
    drive(runner, alpaca_env, daily, days[4:5], feed)
    assert spy(alpaca_env) == 0, "the third blind bar flattens SPY"
    assert "AAPL" in alpaca_env.positions
    alerts = [e for e in runner.journal.events("blind") if e["kind"] == "stale_symbol"]
    assert len(alerts) == 1 and alerts[0]["message"].startswith("SPY: no good bar for 3 bars")
    lines = format_summary("blind", summarize(runner.journal, "blind"))
    assert any("flattened for lack of good data: SPY" in line for line in lines), lines


# ---------------------------------------------------------------------- the kill switch after the close
def test_kill_switch_after_the_close_cancels_and_says_what_is_left(
    alpaca_env: FakeAlpaca, daily: MarketData, tmp_path: Path
) -> None:
    from brokers.summary import format_summary, summarize
    from experiments.paper import KillSwitch

    clock = SimClock(alpaca_env)
    runner = session_runner(alpaca_env, daily, tmp_path, clock, "late-kill")
    alpaca_env.inject(LateFill())  # the first buy (AAPL) stays open at the broker
    assert loop(runner, clock, cycles=1) == 1
    assert len(alpaca_env.positions) == 1 and runner.broker.open_orders()
    held = {s: p.qty for s, p in alpaca_env.positions.items()}
    alpaca_env.set_time(alpaca_env.now.normalize() + pd.Timedelta(hours=22))  # 17:00 New York: closed
    posts = alpaca_env.count("POST", "/v2/orders")
    kill = KillSwitch()
    kill.trip("signal SIGTERM")
    loop(runner, clock, cycles=1, kill=kill)
    assert alpaca_env.count("POST", "/v2/orders") == posts, "no market order into a closed market"
    assert runner.broker.open_orders() == [] and {s: p.qty for s, p in alpaca_env.positions.items()} == held
    assert runner.left_for_next_open == held
    alert = [e for e in runner.journal.events("late-kill") if e["kind"] == "kill_switch"][-1]
    assert "market is closed" in alert["message"] and "left for the next open" in alert["message"]
    lines = format_summary("late-kill", summarize(runner.journal, "late-kill"))
    assert any(line.startswith("  left for the next open") and "SPY" in line for line in lines), lines


# ---------------------------------------------------------------------- deterministic restarts
def decisions_of(journal: Journal, run: str) -> dict[pd.Timestamp, tuple[Any, Any]]:
    return {ts: (p["action"], p["target"]) for ts, p in journal.decisions(run) if "action" in p}


@pytest.mark.parametrize("bot", ["macd_momentum", "rsi_reversion"])
def test_an_interrupted_run_decides_bar_by_bar_as_an_uninterrupted_one(
    alpaca_env: FakeAlpaca, tmp_path: Path, bot: str
) -> None:
    from agents.registry import make_policy
    from brokers.feed import AlpacaBars

    data = generate_market(symbols=("SPY", "AAPL"), n_days=160, start="2023-06-01", seed=8, model="regime")
    alpaca_env.bars_until_now = True
    alpaca_env.set_bars(alpaca_daily(data.to_long()))
    days = range(data.n_bars - 14, data.n_bars)
    config = RunnerConfig(run_id="restart", execution=ExecutionConfig(allow_short=True), risk=None)

    def process(path: Path, span: range) -> Journal:
        """One runner process: fresh policy, broker, feed and journal handle, as after a kill -9."""
        journal = Journal(path)
        runner = make_runner(make_policy(bot, {}), fast_broker(), journal, data.symbols, config, 100_000.0)
        feed = AlpacaBars(runner.broker.config, retry=RetryPolicy(max_attempts=2, base_delay=0), sleep=lambda s: None)
        drive_days(runner, alpaca_env, data, span, feed)
        return journal

    whole = decisions_of(process(tmp_path / "whole.sqlite", days), "restart")
    alpaca_env.positions.clear()
    alpaca_env.cash = 100_000.0
    process(tmp_path / "cut.sqlite", days[:5])
    cut = decisions_of(process(tmp_path / "cut.sqlite", days[5:]), "restart")
    assert len(whole) == len(cut) == 14
    differ = [ts for ts in whole if whole[ts] != cut[ts]]
    assert differ == [], f"{len(differ)} of {len(whole)} bars decided differently after the restart"


def drive_days(runner: Any, alpaca_env: FakeAlpaca, data: MarketData, days: range, feed: Any) -> None:
    from experiments.paper import KillSwitch, run_broker

    clock = SimClock(alpaca_env)
    for i in days:
        alpaca_env.set_time(pd.Timestamp(f"{data.index[i].date()} 15:00", tz="UTC"))
        alpaca_env.prices = {s: float(data.close[i - 1, j]) for j, s in enumerate(data.symbols)}
        run_broker(runner, feed, "1Day", pd.Timedelta(days=150), KillSwitch(), sleep=clock, max_cycles=1,
                   monotonic=clock.monotonic)


def test_sigterm_after_the_close_sends_nothing_and_says_what_is_left(alpaca_env: FakeAlpaca, tmp_path: Path) -> None:
    """The real command in its own process, stopped by a real SIGTERM while the market is closed."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from alpaca_server import _Position

    alpaca_env.set_time(pd.Timestamp("2024-03-05 23:00", tz="UTC"))  # 18:00 New York
    alpaca_env.positions["SPY"] = _Position(10.0, 500.0)
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments.paper", "buy_and_hold", "--symbols", "SPY,AAPL", "--broker",
         "alpaca-paper", "--journal", str(tmp_path / "j.sqlite"), "--poll-seconds", "0.2"],
        cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while alpaca_env.count("GET", "/v2/clock") == 0 and time.monotonic() < deadline:
        time.sleep(0.1)  # wait until the runner is up and watching the clock
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert alpaca_env.count("POST", "/v2/orders") == 0
    assert "left for the next open (market closed at the kill switch): SPY 10" in out, out
    assert "Traceback" not in err


def test_a_refused_data_request_fails_fast_with_one_line(
    alpaca_env: FakeAlpaca, daily: MarketData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from alpaca_server import HttpError

    from experiments.paper import main

    alpaca_env.inject(HttpError(403, "subscription does not permit querying recent SIP data"), "GET",
                      "/v2/stocks/bars", times=10)
    code = main(["buy_and_hold", "--symbols", "SPY,AAPL", "--broker", "alpaca-paper",
                 "--journal", str(tmp_path / "j.sqlite")])
    err = capsys.readouterr().err
    assert code == 2 and alpaca_env.count("GET", "/v2/stocks/bars") == 1, "a 403 is not retried"
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        "error: data API refused the bars request (HTTP 403): subscription does not permit querying recent SIP data"
    ]


def test_a_fatal_error_mid_run_says_what_is_held(
    alpaca_env: FakeAlpaca, daily: MarketData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from alpaca_server import HttpError

    from experiments.paper import main

    alpaca_env.prices = {s: float(daily.close[-1, j]) for j, s in enumerate(daily.symbols)}
    alpaca_env.inject(HttpError(403, "subscription does not permit querying recent SIP data"), "GET",
                      "/v2/stocks/bars", times=10, skip=1)  # the first cycle decides, the second is refused
    code = main(["buy_and_hold", "--symbols", "SPY,AAPL", "--broker", "alpaca-paper", "--poll-seconds", "0.01",
                 "--journal", str(tmp_path / "j.sqlite")])
    captured = capsys.readouterr()
    assert code == 2 and captured.err.count("error:") == 1 and "HTTP 403" in captured.err
    held = captured.out.split("stopped; holding: ", 1)[1].splitlines()[0]
    assert "SPY" in held and "AAPL" in held, captured.out
    assert "bar(s); P/L" in captured.out
