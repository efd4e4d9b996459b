"""The live runner: same decisions as the backtest, crash and resume, per-bar work that does not grow, the
broker loop and the kill switch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from alpaca_server import FakeAlpaca, alpaca_daily

from agents.registry import make_policy
from brokers.alpaca import AlpacaBroker
from brokers.base import Order, OrderRequest
from brokers.journal import Journal
from brokers.reconcile import reconcile
from brokers.retry import RetryPolicy
from brokers.runner import LiveRunner, RunnerConfig
from brokers.sim import SimBroker
from envs.data.alpaca import AlpacaSource
from envs.data.market_data import MarketData
from envs.data.synthetic import generate_market
from envs.sim.execution import ExecutionConfig
from envs.sim.risk import RiskConfig
from experiments.engine import BacktestConfig, make_env, run_backtest, start_bar
from experiments.paper import KillSwitch, complete_bars, main, make_runner, run_broker, run_sim

EXECUTION = ExecutionConfig(commission=0.001, slippage_bps=2.0, allow_short=True)
RISK = RiskConfig(max_position=0.5, stop_loss=0.05, max_heat=None)


class Recorder:
    """Wraps a policy and records every action it gives, keyed by the bar it was asked on."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self.name = policy.name
        self.actions: dict[pd.Timestamp, list[float]] = {}

    def reset(self, seed: int | None = None) -> None:
        self.policy.reset(seed)

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> Any:
        action = self.policy.act(obs, info)
        self.actions[info["timestamp"]] = np.asarray(action).tolist()
        return action


class Crash(Exception):
    """Stands in for the process dying."""


class CrashOnSubmit:
    """A SimBroker that dies right after sending its ``n``-th order."""

    def __init__(self, inner: SimBroker, n: int) -> None:
        self.inner = inner
        self.left = n

    def submit(self, order: OrderRequest) -> Order:
        placed = self.inner.submit(order)
        self.left -= 1
        if self.left == 0:
            raise Crash(order.client_order_id)
        return placed

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Scripted:
    """A policy that returns given target weights per bar (and flat otherwise)."""

    name = "scripted"

    def __init__(self, weights: dict[pd.Timestamp, list[float]], n_symbols: int) -> None:
        self.weights = weights
        self.n_symbols = n_symbols

    def reset(self, seed: int | None = None) -> None:
        """Stateless."""

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        return np.asarray(self.weights.get(info["timestamp"], [0.0] * self.n_symbols))


@pytest.fixture(scope="module")
def market() -> MarketData:
    return generate_market(n_symbols=2, n_days=90, seed=11, model="regime")


def policy() -> Any:
    return make_policy("sma_crossover", {"fast": 3, "slow": 8, "allow_short": True, "fraction": 0.4})


# A sim replay can give the runner every bar up front (the shadow env is built once on them) or let them
# arrive one by one as from a live feed (the shadow env is extended each bar); both must act the same.
PRELOAD = pytest.mark.parametrize("preload", [False, True], ids=["bar-by-bar", "bars-up-front"])


def sim_run(
    market: MarketData, journal: Journal, bot: Any, broker: Any = None, preload: bool = False
) -> tuple[SimBroker, Any]:
    sim = broker or SimBroker(market.symbols, 100_000.0, EXECUTION)
    config = RunnerConfig(run_id="paper-test", execution=EXECUTION, risk=RISK)
    runner = make_runner(bot, sim, journal, market.symbols, config, 100_000.0, market if preload else None)
    start = start_bar([bot], market, BacktestConfig(execution=EXECUTION, risk=RISK))
    run_sim(runner, sim, market, start, KillSwitch(), progress=False)
    return sim, runner


@PRELOAD
def test_sim_paper_run_makes_the_backtests_decisions(market: MarketData, preload: bool) -> None:
    backtest_bot = Recorder(policy())
    run_backtest(backtest_bot, market, BacktestConfig(execution=EXECUTION, risk=RISK))
    journal = Journal(":memory:")
    paper_bot = Recorder(policy())
    sim_run(market, journal, paper_bot, preload=preload)
    journalled = {ts: payload["action"] for ts, payload in journal.decisions("paper-test")}
    assert len(journalled) == len(backtest_bot.actions) > 50
    assert journalled == backtest_bot.actions == paper_bot.actions
    traded = [o for o in journal.orders("paper-test") if o.status == "filled"]
    assert len(traded) >= 4, "the crossover bot should have traded several times"


@PRELOAD
def test_crash_mid_bar_resumes_without_duplicates(market: MarketData, tmp_path: Path, preload: bool) -> None:
    market = market.iloc(slice(0, 50))
    bars = market if preload else None
    clean_journal = Journal(":memory:")
    clean_sim, _ = sim_run(market, clean_journal, policy(), preload=preload)

    path = tmp_path / "journal.sqlite"
    sim = SimBroker(market.symbols, 100_000.0, EXECUTION)
    with pytest.raises(Crash):
        sim_run(market, Journal(path), policy(), CrashOnSubmit(sim, n=3), preload=preload)
    crashed_at = max(o.submitted_at for o in sim.open_orders())

    # Restart: a new process, a fresh policy object, the journal reopened, the same broker account.
    journal = Journal(path)
    config = RunnerConfig(run_id="paper-test", execution=EXECUTION, risk=RISK)
    runner = make_runner(policy(), sim, journal, market.symbols, config, 100_000.0, bars)
    t = int(market.index.get_loc(crashed_at))
    decision = runner.on_bar(market.iloc(slice(0, t + 1)))
    assert decision.resumed
    for k in range(t + 1, market.n_bars):
        sim.on_bar(market.index[k], market.values[k])
        if k < market.n_bars - 1:
            runner.on_bar(market.iloc(slice(0, k + 1)))

    ids = [o.client_order_id for o in sim._orders.values()]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(o.client_order_id for o in clean_sim._orders.values())
    assert sim.portfolio.cash == pytest.approx(clean_sim.portfolio.cash)
    np.testing.assert_allclose(sim.portfolio.shares, clean_sim.portfolio.shares)


class Alternating:
    """Swaps its two target weights every bar, so every bar trades the same way."""

    name = "alternating"

    def reset(self, seed: int | None = None) -> None:
        """Stateless."""

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        return np.array([0.2, 0.1] if info["t"] % 2 else [0.1, 0.2])


class CountingEnvs:
    """The backtest's env factory, counting env builds and every ``step`` and ``extend`` of the envs built."""

    def __init__(self, policy: Any, config: BacktestConfig) -> None:
        self.policy = policy
        self.config = config
        self.counts = {"build": 0, "step": 0, "extend": 0}

    def __call__(self, data: MarketData) -> Any:
        env = make_env(self.policy, data, self.config)
        self.counts["build"] += 1
        for name in ("step", "extend"):
            setattr(env, name, self._counted(name, getattr(env, name)))
        return env

    def _counted(self, name: str, method: Any) -> Any:
        def counted(*args: Any) -> Any:
            self.counts[name] += 1
            return method(*args)

        return counted


@PRELOAD
def test_per_bar_work_does_not_grow_with_the_run(market: MarketData, preload: bool) -> None:
    bot = Alternating()
    envs = CountingEnvs(bot, BacktestConfig(execution=EXECUTION, risk=None))
    journal = Journal(":memory:")
    sql = {"work": 0}  # SQLite virtual machine instructions, in tens: the journal's work, exactly
    journal._db.set_progress_handler(lambda: sql.update(work=sql["work"] + 1), 10)
    reads = []
    journal_decisions = journal.decisions
    journal.decisions = lambda run: reads.append(run) or journal_decisions(run)
    sim = SimBroker(market.symbols, 100_000.0, EXECUTION)
    config = RunnerConfig(run_id="flat", execution=EXECUTION, risk=None)
    runner = LiveRunner(bot, sim, journal, envs, market.symbols, config, market if preload else None)
    per_bar = []
    for t in range(5, market.n_bars - 1):
        sim.on_bar(market.index[t], market.values[t])
        before = {**envs.counts, **sql}
        decision = runner.on_bar(market.iloc(slice(0, t + 1)))
        per_bar.append({k: v - before[k] for k, v in {**envs.counts, **sql}.items()})
        assert len(decision.orders) == 2
    assert per_bar[0]["build"] == 1 and per_bar[0]["step"] == 0, "built once, reset at the run's first bar"
    later = per_bar[1:]
    assert all(bar["build"] == 0 and bar["step"] == 1 for bar in later), "one env step per bar, no rebuild"
    assert all(bar["extend"] == (0 if preload else 1) for bar in later)
    assert reads == ["flat"], "the journal's decisions are read in full once, at start-up"
    work = [bar["work"] for bar in later]
    assert len(work) > 70 and np.mean(work[-20:]) <= 1.2 * np.mean(work[:20]), work


def test_unsent_opening_leg_of_a_flip_goes_out_on_the_next_bar(market: MarketData) -> None:
    sim = SimBroker(market.symbols, 100_000.0, EXECUTION)
    config = RunnerConfig(run_id="flip-sim", execution=EXECUTION, risk=None)
    t0 = 20
    script = {
        market.index[t0]: [0.3, 0.0],
        market.index[t0 + 1]: [-0.2, 0.0],
        market.index[t0 + 2]: [-0.2, 0.0],
    }
    runner = make_runner(Scripted(script, 2), sim, Journal(":memory:"), market.symbols, config, 100_000.0)
    for t in range(t0, t0 + 3):
        sim.on_bar(market.index[t], market.values[t])
        runner.on_bar(market.iloc(slice(0, t + 1)))
    sim.on_bar(market.index[t0 + 3], market.values[t0 + 3])
    statuses = [o.status for o in runner.journal.orders("flip-sim")]
    assert statuses == ["filled", "filled", "unsent", "accepted"]
    sim.on_bar(market.index[t0 + 4], market.values[t0 + 4])
    assert sim.positions()["SYN0"].qty < 0, "the short opens one bar after the flip decision"


def test_kill_switch_flattens_and_stops_the_run(market: MarketData, tmp_path: Path) -> None:
    sim = SimBroker(market.symbols, 100_000.0, EXECUTION)
    journal = Journal(":memory:")
    config = RunnerConfig(run_id="kill", execution=EXECUTION, risk=None)
    bot = make_policy("buy_and_hold", {})
    runner = make_runner(bot, sim, journal, market.symbols, config, 100_000.0)
    kill = KillSwitch(tmp_path / "STOP")
    start = start_bar([bot], market, BacktestConfig(execution=EXECUTION, risk=None))
    for t in range(start, start + 3):
        sim.on_bar(market.index[t], market.values[t])
        runner.on_bar(market.iloc(slice(0, t + 1)))
    assert sim.positions()
    (tmp_path / "STOP").touch()
    decided = run_sim(runner, sim, market.iloc(slice(0, start + 6)), start + 3, kill, progress=False)
    assert decided == 0 and kill.reason == f"kill file {tmp_path / 'STOP'}"
    sim.on_bar(market.index[start + 6], market.values[start + 6])
    assert sim.positions() == {}
    with pytest.raises(RuntimeError, match="stopped by the kill switch"):
        runner.on_bar(market.iloc(slice(0, start + 7)))


# ---------------------------------------------------------------------- against the fake Alpaca
@pytest.fixture
def daily(alpaca_env: FakeAlpaca) -> MarketData:
    data = generate_market(symbols=("SPY", "AAPL"), n_days=60, start="2024-01-02", seed=5)
    alpaca_env.set_bars(alpaca_daily(data.to_long()))
    alpaca_env.prices = {s: float(data.close[-1, j]) for j, s in enumerate(data.symbols)}
    return data


def test_broker_loop_waits_for_the_open_then_trades_the_last_complete_bar(
    alpaca_env: FakeAlpaca, daily: MarketData, tmp_path: Path
) -> None:
    day = daily.index[-1].date()
    alpaca_env.set_time(pd.Timestamp(f"{day} 13:00", tz="UTC"))  # 08:00 New York: before the open
    broker = AlpacaBroker.from_env(retry=RetryPolicy(base_delay=0), sleep=lambda s: None)
    config = RunnerConfig(run_id="alpaca-test", execution=ExecutionConfig(), risk=None)
    runner = make_runner(
        make_policy("buy_and_hold", {}),
        broker,
        Journal(tmp_path / "j.sqlite"),
        daily.symbols,
        config,
        100_000.0,
    )
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        alpaca_env.set_time(alpaca_env.now + pd.Timedelta(hours=2))  # the market opens meanwhile

    decided = run_broker(
        runner,
        AlpacaSource(),
        "1Day",
        pd.Timedelta(days=120),
        KillSwitch(),
        poll_interval=60.0,
        sleep=sleep,
        max_cycles=3,
    )
    assert decided == 1 and waits[0] == 60.0
    assert runner.last_decision.timestamp == daily.index[-2], "today's bar is still forming"
    positions = {s: p.qty for s, p in broker.positions().items()}
    assert set(positions) == {"SPY", "AAPL"} and runner.last_reconciliation.consistent


class CrashBeforeSubmit:
    """Passes calls to a broker but dies instead of sending its ``n``-th order."""

    def __init__(self, inner: AlpacaBroker, n: int) -> None:
        self.inner = inner
        self.left = n

    def submit(self, order: OrderRequest) -> Order:
        self.left -= 1
        if self.left == 0:
            raise Crash(order.client_order_id)
        return self.inner.submit(order)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_restart_between_the_legs_of_a_flip_sends_only_the_opening_leg(
    alpaca_env: FakeAlpaca, daily: MarketData, tmp_path: Path
) -> None:
    k = daily.n_bars - 3
    bars = [daily.iloc(slice(0, k + 1)), daily.iloc(slice(0, k + 2))]
    script = {bars[0].index[-1]: [0.1, 0.0], bars[1].index[-1]: [-0.05, 0.0]}
    config = RunnerConfig(run_id="flip", execution=ExecutionConfig(allow_short=True), risk=None)
    path = tmp_path / "journal.sqlite"

    def runner_on(broker: Any) -> Any:
        return make_runner(Scripted(script, 2), broker, Journal(path), daily.symbols, config, 100_000.0)

    def price(data: MarketData) -> None:
        alpaca_env.prices = {s: float(data.close[-1, j]) for j, s in enumerate(data.symbols)}

    broker = AlpacaBroker.from_env(retry=RetryPolicy(base_delay=0), sleep=lambda s: None)
    first = runner_on(CrashBeforeSubmit(broker, n=3))
    price(bars[0])
    first.on_bar(bars[0])
    price(bars[1])
    with pytest.raises(Crash):
        first.on_bar(bars[1])  # the closing sell went out and filled; the opening short did not
    assert alpaca_env.positions == {}

    restarted = runner_on(AlpacaBroker.from_env(retry=RetryPolicy(base_delay=0), sleep=lambda s: None))
    decision = restarted.on_bar(bars[1])
    assert decision.resumed
    legs = [o for o in restarted.journal.orders("flip") if o.bar_ts == bars[1].index[-1]]
    assert [o.depends_on is not None for o in legs] == [False, True]
    assert alpaca_env.count("POST", "/v2/orders") == 3
    assert {s: p.qty for s, p in broker.positions().items()} == {"SPY": -legs[1].request.qty}
    assert reconcile(restarted.broker, restarted.journal, "flip").consistent


def test_complete_bars_drops_the_forming_bar(daily: MarketData) -> None:
    from brokers.base import Clock

    now = daily.index[-1] + pd.Timedelta(hours=16)
    clock = Clock(now, True, now, now)
    assert complete_bars(daily, clock, "1Day").index[-1] == daily.index[-2]
    hourly = generate_market(n_symbols=1, n_days=1, start="2024-01-02", freq="1h", seed=1)
    clock = Clock(hourly.index[3] + pd.Timedelta(minutes=30), True, now, now)
    assert complete_bars(hourly, clock, "1Hour").index[-1] == hourly.index[2]


def test_cli_sim_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0 and "--kill-file" in capsys.readouterr().out
    code = main(
        [
            "buy_and_hold",
            "--symbols",
            "SYN0",
            "--data",
            "synthetic:n_symbols=1,n_days=40",
            "--quiet",
            "--no-risk",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "bar(s) decided" in out
    assert main(["no_such_bot", "--symbols", "SYN0"]) == 2
    assert main(["covered_calls", "--symbols", "SYN0", "--data", "synthetic:n_symbols=1,n_days=40"]) == 2
    assert "trades options" in capsys.readouterr().err


def test_cli_alpaca_dry_run_with_kill_file(alpaca_env: FakeAlpaca, daily: MarketData, tmp_path: Path) -> None:
    stop = tmp_path / "STOP"
    stop.touch()
    code = main(
        [
            "buy_and_hold",
            "--symbols",
            "SPY,AAPL",
            "--broker",
            "alpaca-paper",
            "--dry-run",
            "--kill-file",
            str(stop),
            "--journal",
            str(tmp_path / "j.sqlite"),
        ]
    )
    assert code == 0 and alpaca_env.count("POST", "/v2/orders") == 0
