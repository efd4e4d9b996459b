"""Run a policy bar by bar against a broker: ``python -m experiments.paper POLICY --symbols SPY,AAPL``.

    python -m experiments.paper sma_crossover --symbols SPY --broker sim --data synthetic
    python -m experiments.paper runs/ppo/agent --symbols SPY,AAPL --broker alpaca-paper --dry-run

``--broker sim`` replays a data set through :class:`brokers.sim.SimBroker` (fills at the next bar's open,
the backtest's costs), so its decisions are the backtest's. ``--broker alpaca-paper`` trades Alpaca's paper
account (keys from ``APCA_API_KEY_ID``/``APCA_API_SECRET_KEY``; ``--live`` plus
``ALPACA_GYM_LIVE_CONFIRM=yes`` for real money): it waits for the market to open, takes the last complete
bar from Alpaca's data API, decides, orders, and keeps reconciling until the next bar. The journal
(``--journal``) makes a restart resume without duplicate or lost orders. The kill switch, a file
(``--kill-file``) or SIGTERM, cancels every order, flattens and stops (after the close it sends nothing and
says what is left for the next open). ``--dry-run`` logs orders only.

Broker and data-API outages are retried until they end (:class:`Outage`), bad bars are skipped per symbol
(:mod:`brokers.feed`), alerts go to the log, the journal and ``--webhook``, ``--dashboard [HOST:]PORT``
serves the monitoring page (:mod:`brokers.dashboard`) while the run goes on, and the run ends with a
summary (:mod:`brokers.summary`).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from agents.policy import Policy
from brokers.alerts import Alerts
from brokers.base import Broker, BrokerError, BrokerUnavailable, Clock, is_crypto
from brokers.dashboard import DashboardServer, parse_listen
from brokers.feed import AlpacaBars, DataUnavailable, LiveBars
from brokers.journal import Journal
from brokers.market_hours import trading_window
from brokers.reconcile import reconcile
from brokers.retry import RetryPolicy
from brokers.runner import LiveRunner, RunnerConfig
from brokers.summary import format_summary, record_run_end, summarize
from brokers.sim import SimBroker
from envs.data.fallback import (
    BarSource,
    is_daily_or_longer,
    parse_timeframe,
    split_symbols,
)
from envs.data.market_data import MarketData
from experiments.cli import Parser, command
from experiments.engine import BacktestConfig, make_env, start_bar
from experiments.spec import (
    add_spec_arguments,
    find_run_spec,
    policy_defaults,
    spec_from_args,
)

log = logging.getLogger("experiments.paper")
MARKET_TZ = "America/New_York"


class KillSwitch:
    """Trips when a file appears or SIGTERM/SIGINT arrives.

    :param path: the file to watch, or None.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else None
        self.reason: str | None = None

    @contextlib.contextmanager
    def installed(self) -> Iterator["KillSwitch"]:
        """Route SIGTERM and SIGINT to the switch (instead of killing the process mid-order) while inside."""
        signals = (signal.SIGTERM, signal.SIGINT)
        previous = [signal.getsignal(sig) for sig in signals]
        for sig in signals:
            signal.signal(sig, lambda signum, _: self.trip(f"signal {signal.Signals(signum).name}"))
        try:
            yield self
        finally:
            for sig, handler in zip(signals, previous):
                signal.signal(sig, handler)

    def trip(self, reason: str) -> None:
        """Ask the runner to flatten and stop."""
        self.reason = reason

    @property
    def tripped(self) -> bool:
        """True once a signal arrived or the file exists."""
        if self.reason is None and self.path is not None and self.path.exists():
            self.reason = f"kill file {self.path}"
        return self.reason is not None


def make_runner(
    policy: Policy,
    broker: Broker,
    journal: Journal,
    symbols: tuple[str, ...],
    runner_config: RunnerConfig,
    initial_cash: float,
    bars: MarketData | None = None,
    alerts: Alerts | None = None,
) -> LiveRunner:
    """A runner whose shadow env is exactly the backtest's env for this policy.

    :param policy: the policy.
    :param broker: the broker.
    :param journal: the journal.
    :param symbols: traded symbols.
    :param runner_config: trading settings.
    :param initial_cash: the shadow env's starting cash.
    :param bars: every bar of the run when known up front (``--broker sim``), so the shadow env is built
        once on them.
    :param alerts: where alerts go (the journal only by default).
    """
    backtest = BacktestConfig(
        initial_cash=initial_cash,
        execution=runner_config.execution,
        risk=runner_config.risk,
        seed=runner_config.seed,
    )
    return LiveRunner(
        policy, broker, journal, lambda d: make_env(policy, d, backtest), symbols, runner_config, bars, alerts
    )


def run_sim(
    runner: LiveRunner,
    broker: SimBroker,
    data: MarketData,
    start: int,
    kill: KillSwitch,
    progress: bool = True,
) -> int:
    """Replay ``data`` through the simulated broker: bar ``t`` is delivered, then decided on.

    :param runner: the runner (its broker must be ``broker``).
    :param broker: the simulated broker.
    :param data: the bars.
    :param start: first decision bar (the env's warm-up must lie before it).
    :param kill: checked before every bar.
    :param progress: show a progress bar.
    :return: how many bars were decided.
    """
    decided = 0
    bars = tqdm(
        range(start, data.n_bars), desc=f"paper {runner.config.run_id}", unit="bar", disable=not progress
    )
    for t in bars:
        broker.on_bar(data.index[t], data.values[t])
        if kill.tripped:
            runner.flatten(kill.reason or "kill switch")
            break
        if t == data.n_bars - 1:
            runner.poll(data.index[t])
            break
        runner.on_bar(data.iloc(slice(0, t + 1)))
        decided += 1
        bars.set_postfix_str(runner.status(), refresh=False)
    return decided


def complete_bars(data: MarketData, clock: Clock, timeframe: str) -> MarketData:
    """Drop the bar still forming at ``clock.timestamp`` (today's daily bar while the market trades).

    :param data: bars up to now.
    :param clock: the broker's clock.
    :param timeframe: bar size.
    """
    now = clock.timestamp
    if is_daily_or_longer(timeframe):
        today = pd.Timestamp(now.tz_convert(MARKET_TZ).date(), tz="UTC")
        done = data.index < today
    else:
        amount, unit = parse_timeframe(timeframe)
        length = pd.Timedelta(**{{"Min": "minutes", "Hour": "hours"}[unit]: amount})
        done = data.index + length <= now
    if not done.any():
        raise ValueError(f"no complete {timeframe} bar before {now.isoformat()}")
    return data.iloc(slice(0, int(done.sum())))


class Outage:
    """An outage of the broker or the data API: logged and alerted when it starts and ends, retried with
    exponential backoff and jitter for as long as it lasts (no time limit: the market clock cannot even
    be read while the broker is down, and giving up would leave positions unwatched).

    :param alerts: where the start and end go.
    :param backoff: waits between failed cycles (capped at ``backoff.max_delay``).
    :param now: seconds on a monotonic clock (tests pass a simulated one).
    """

    def __init__(
        self, alerts: Alerts, backoff: RetryPolicy, now: Callable[[], float] = time.monotonic
    ) -> None:
        self.alerts = alerts
        self.backoff = backoff
        self.now = now
        self.started: float | None = None
        self.failures = 0
        self.what = ""

    def failed(self, err: BrokerUnavailable) -> float:
        """Note a failed cycle; return the seconds to wait before the next one.

        :param err: what failed.
        """
        if self.started is None:
            self.started = self.now()
            self.what = "data API" if isinstance(err, DataUnavailable) else "broker"
            self.alerts.send(
                "outage_start", f"{self.what} unavailable: {err}; retrying until it is back", {"what": self.what}
            )
        self.failures += 1
        wait = self.backoff.delay(self.failures - 1)
        log.warning("%s still unavailable (%d failed cycle(s)); next try in %.1fs", self.what, self.failures, wait)
        return wait

    def recovered(self) -> None:
        """Close the outage, if one was open: the cycle that just worked reconciled and resumed."""
        if self.started is None:
            return
        seconds = self.now() - self.started
        self.alerts.send(
            "outage_end",
            f"{self.what} back after {seconds:.0f} s ({self.failures} failed cycle(s)); reconciled and resumed",
            {"what": self.what, "seconds": seconds, "failures": self.failures},
        )
        self.started, self.failures = None, 0


def run_broker(
    runner: LiveRunner,
    feed: BarSource | AlpacaBars,
    timeframe: str,
    history: pd.Timedelta,
    kill: KillSwitch,
    poll_interval: float = 30.0,
    close_buffer: pd.Timedelta = pd.Timedelta(minutes=5),
    sleep: Callable[[float], None] = time.sleep,
    max_cycles: int | None = None,
    outage_backoff: RetryPolicy = RetryPolicy(base_delay=1.0, max_delay=60.0),
    monotonic: Callable[[], float] = time.monotonic,
) -> int:
    """Trade against a real (or Alpaca-compatible) broker until the kill switch trips.

    Each cycle: outside the trading window, wait (holidays and weekends have no session, so they are
    skipped; a run with crypto never waits: crypto trades around the clock and a stock beside it is held
    on its closed-market bars by the trade rule); inside it, fetch the bars, decide on a new complete bar once, otherwise poll orders. A
    cycle that fails on a transient error (the broker's or the data API's retries ran out) is an outage:
    it is retried with backoff until the services are back, and the next cycle reconciles and resumes.
    Bars are always fetched from the run's first data bar, so a restarted run sees what it saw.

    :param runner: the runner.
    :param feed: where bars come from: :class:`brokers.feed.AlpacaBars` (bad bars skipped per symbol) or
        any :class:`envs.data.fallback.BarSource`.
    :param timeframe: bar size.
    :param history: how far back to fetch at the run's start (the env's and the policy's warm-up).
    :param kill: the kill switch.
    :param poll_interval: seconds between cycles.
    :param close_buffer: no new orders this close to the close.
    :param sleep: the wait function (tests pass a simulated clock).
    :param max_cycles: stop after this many cycles (None: until killed).
    :param outage_backoff: waits between the cycles of an outage.
    :param monotonic: the clock outages are timed with.
    :return: how many bars were decided.
    """
    decided, cycles, last_bar = 0, 0, None
    around_the_clock = any(is_crypto(s) for s in runner.symbols)
    outage = Outage(runner.alerts, outage_backoff, monotonic)
    anchor: pd.Timestamp | None = None
    while max_cycles is None or cycles < max_cycles:
        cycles += 1
        try:
            if kill.tripped:
                runner.flatten(kill.reason or "kill switch")
                outage.recovered()
                break
            clock = runner.broker.clock()
            window = trading_window(clock, close_buffer)
            # Crypto trades around the clock; a stock beside it waits for its own session bar by bar (the
            # trade rule reads each symbol's calendar), so only a stock-only run waits for the market.
            if not window.can_trade and not around_the_clock:
                outage.recovered()
                log.info("%s", window.reason)
                wait = (
                    (window.wait_until - clock.timestamp).total_seconds()
                    if window.wait_until is not None
                    else poll_interval
                )
                sleep(max(min(wait, poll_interval), 0.0))
                continue
            if anchor is None:
                anchor = runner.data_start() or clock.timestamp - history
            bars = fetch_live(feed, runner.symbols, anchor, clock.timestamp, timeframe)
            for bad in bars.bad:
                runner.alerts.send("bad_bar", str(bad), {"symbol": bad.symbol, "rule": bad.rule})
            data = complete_bars(bars.data, clock, timeframe)
            if last_bar is None or data.index[-1] > last_bar:
                decision = runner.on_bar(data, bars.stale(data.index[-1]))
                last_bar = decision.timestamp
                decided += 1
            else:
                runner.poll(last_bar)
            outage.recovered()
        except BrokerUnavailable as err:  # the data API's DataUnavailable included
            sleep(outage.failed(err))
            continue
        log.info("%s", runner.status())
        sleep(poll_interval)
    return decided


def fetch_live(
    feed: BarSource | AlpacaBars, symbols: Sequence[str], start: object, now: pd.Timestamp, timeframe: str
) -> LiveBars:
    """Bars up to ``now`` from either kind of feed (a plain source has no bad-bar screening).

    :param feed: the feed.
    :param symbols: the symbols.
    :param start: first timestamp.
    :param now: the broker's clock.
    :param timeframe: bar size.
    """
    if isinstance(feed, AlpacaBars):
        return feed.fetch(symbols, start, now, timeframe, now)
    return LiveBars(feed.fetch(list(symbols), start, now, timeframe), frozenset(), ())


def _parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m experiments.paper", description=__doc__.split("\n")[0])
    p.add_argument("policy", help="a policy name (sma_crossover, ...) or the folder of a saved policy")
    p.add_argument("--symbols", required=True, help="comma-separated symbols, e.g. SPY,AAPL")
    p.add_argument(
        "--broker", choices=("sim", "alpaca-paper"), default="sim", help="where orders go (default sim)"
    )
    p.add_argument(
        "--live", action="store_true", help="trade real money (also needs ALPACA_GYM_LIVE_CONFIRM=yes)"
    )
    p.add_argument("--timeframe", default="1Day", help="bar size for alpaca-paper (default 1Day)")
    p.add_argument(
        "--history-days", type=float, default=400.0, help="days of history fetched each bar (default 400)"
    )
    p.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="policy parameter (repeatable)"
    )
    p.add_argument("--run-id", default=None, help="run name; the same id resumes from the journal")
    p.add_argument(
        "--journal",
        default=None,
        help="journal file (default runs/paper/RUN_ID/journal.sqlite; in memory for --broker sim)",
    )
    p.add_argument("--kill-file", default=None, help="flatten and stop when this file exists")
    p.add_argument("--dry-run", action="store_true", help="journal and log orders without sending them")
    p.add_argument(
        "--poll-seconds", type=float, default=30.0, help="seconds between broker polls (default 30)"
    )
    p.add_argument(
        "--max-stale-bars",
        type=int,
        default=3,
        help="flatten a symbol after this many bars in a row without a good bar (default 3)",
    )
    p.add_argument("--webhook", default=None, help="URL that gets a JSON POST per alert (risk, outages)")
    p.add_argument(
        "--dashboard",
        default=None,
        metavar="[HOST:]PORT",
        help="serve the live monitoring page while running (localhost unless HOST is given; needs a journal "
        "file, runs/paper/RUN_ID/journal.sqlite by default)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="log every order and fill (default with --broker sim: only warnings, under the progress bar)")
    # Costs, risk rules, sizing, cash, seed and (for --broker sim) the data: the experiment spec, by default
    # the one stored with a saved run, so the broker trades under the rules the run was evaluated with.
    add_spec_arguments(p, skip=("symbols",))
    return p


@command
def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    from agents.registry import (
        RegistryError,
        make_policy,
        parse_overrides,
        policy_class,
    )

    args = _parser().parse_args(argv)
    # A simulated run replays years of bars in seconds: four INFO lines per order would bury the progress bar.
    quiet_logs = args.broker == "sim" and not args.verbose
    logging.basicConfig(level=logging.WARNING if quiet_logs else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stack = contextlib.ExitStack()
    runner: LiveRunner | None = None
    try:
        symbols = tuple(split_symbols(args.symbols))
        spec, changes = spec_from_args(args, base=find_run_spec(args.policy))
        for line in changes:
            print(f"spec: {line}")
        params = {key: value for _, key, value in parse_overrides(args.param)}
        if not Path(args.policy).is_dir():
            params = {**policy_defaults(policy_class(args.policy), spec), **params}
        policy = make_policy(args.policy, params)
        if getattr(policy, "env_id", None) == "AlpacaGym/Options-v0":
            raise ValueError(
                f"{args.policy} trades options (AlpacaGym/Options-v0); the live runner places stock orders "
                "only. Evaluate it with `python -m experiments.backtest` instead."
            )
        execution = spec.execution
        initial_cash = spec.initial_cash
        # A crypto pair's slash would make the default journal path a folder (BTC/USD -> BTCUSD).
        names = "-".join(s.replace("/", "") for s in symbols)
        run_id = args.run_id or f"{getattr(policy, 'name', 'policy')}-{names}-{args.broker}"
        config = RunnerConfig(
            run_id=run_id,
            execution=execution,
            risk=spec.risk,
            dry_run=args.dry_run,
            seed=spec.seed,
            max_stale_bars=args.max_stale_bars,
        )
        # A sim run starts a fresh simulated account, so by default it keeps no journal between runs (unless
        # a dashboard has to read it from another connection).
        in_memory = args.broker == "sim" and not args.dashboard
        default = ":memory:" if in_memory else Path("runs") / "paper" / run_id / "journal.sqlite"
        journal = Journal(args.journal or default)
        if args.dashboard:
            if journal.path == ":memory:":
                raise ValueError("--dashboard reads the journal from a file; give --journal PATH, not :memory:")
            host, port = parse_listen(args.dashboard)
            dashboard = stack.enter_context(DashboardServer(journal.path, run_id, host, port))
            print(f"dashboard at {dashboard.url}", flush=True)
        alerts = Alerts(journal, run_id, args.webhook)
        kill = KillSwitch(args.kill_file)
        with kill.installed():
            if args.broker == "sim":
                from envs.data.sources import load_data

                data = load_data(spec.data.data)
                data = data.select(list(symbols)) if set(symbols) <= set(data.symbols) else data
                if data.symbols != symbols:
                    missing = [s for s in symbols if s not in data.symbols]
                    raise ValueError(
                        f"--symbols {','.join(missing)} not in --data {spec.data.data} (its symbols: "
                        f"{', '.join(data.symbols)}): choose --symbols among them or give --data with those "
                        "symbols (e.g. --data csv:PATH)"
                    )
                if run_id in journal.runs():
                    raise ValueError(
                        f"{journal.path} already holds run {run_id!r}; a sim run starts a fresh account, so "
                        "give it a new --run-id or --journal"
                    )
                broker = SimBroker(symbols, initial_cash, execution)
                runner = make_runner(policy, broker, journal, symbols, config, initial_cash, data, alerts)
                backtest = BacktestConfig(initial_cash=initial_cash, execution=execution, risk=config.risk)
                decided = run_sim(
                    runner, broker, data, start_bar([policy], data, backtest), kill, not args.quiet
                )
            else:
                from brokers.alpaca import AlpacaBroker

                broker = AlpacaBroker.from_env(live=args.live)
                runner = make_runner(policy, broker, journal, symbols, config, initial_cash, None, alerts)
                decided = run_broker(
                    runner,
                    AlpacaBars(broker.config),
                    args.timeframe,
                    pd.Timedelta(days=args.history_days),
                    kill,
                    poll_interval=args.poll_seconds,
                )
        alerts.flush()
        with contextlib.suppress(BrokerError):  # the orders' last word for the summary, if the broker answers
            reconcile(runner.broker, journal, run_id)
        print(runner.status())
        if args.broker == "sim":
            equity = broker.account().equity
            print(f"P/L {equity - initial_cash:+,.2f} ({equity / initial_cash - 1:+.2%}) on "
                  f"{initial_cash:,.2f} initial cash")
        print(f"run {run_id}: {decided} bar(s) decided; journal {journal.path}")
        record_run_end(journal, run_id, broker.account().equity)
        print("\n".join(format_summary(run_id, summarize(journal, run_id))))
        return 0
    except (RegistryError, ValueError, RuntimeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        if runner is not None and runner.last_decision is not None:
            # Stopped mid-run: say what is held and what happened, as far as the broker still answers.
            with contextlib.suppress(BrokerError, OSError):
                print(f"stopped; holding: {runner.status()}")
            print("\n".join(format_summary(runner.config.run_id, summarize(runner.journal, runner.config.run_id))))
        return 2
    finally:
        stack.close()


if __name__ == "__main__":
    sys.exit(main())
