"""One trade rule: the single envs, the vector env, the backtest replay and the live runner make the same
trade decisions on the same targets, and all of them decide through ``envs.sim.execution.should_trade``."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from brokers.journal import Journal
from brokers.order_ids import client_order_id
from brokers.runner import LEGS, RunnerConfig
from brokers.sim import SimBroker
from envs.data.calendar import combine
from envs.data.crypto import generate_crypto_market
from envs.data.market_data import MarketData
from envs.data.synthetic import generate_market
from envs.environments.portfolio import PortfolioEnv
from envs.environments.stocks import StocksEnv
from envs.environments.vector import TradingVectorEnv
from envs.sim.execution import ExecutionConfig, should_trade, should_trade_batch
from envs.sim.replay import replay_weights
from experiments.engine import MINIMAL_FEATURES
from experiments.paper import KillSwitch, make_runner, run_sim

ROOT = Path(__file__).resolve().parents[1]
BAND = 0.045  # targets move by multiples of 0.01, so no move sits on the band itself
EXECUTION = ExecutionConfig(commission=0.001, slippage_bps=1.0, min_weight_change=BAND)
CASH = 100_000.0


def test_rule_cases() -> None:
    assert not should_trade(0.3, 0.3, 0.0, True, False), "an unchanged target never trades"
    assert should_trade(0.31, 0.3, 0.0, True, False)
    assert not should_trade(0.33, 0.3, BAND, True, False), "inside the band"
    assert should_trade(0.36, 0.3, BAND, True, False)
    assert should_trade(0.0, 0.02, BAND, True, False), "going flat is never held back by the band"
    assert not should_trade(0.0, 0.0, BAND, True, False)
    assert should_trade(-0.2, 0.2, BAND, True, False)
    assert should_trade(0.33, 0.3, BAND, True, True), "the risk layer forces a trade inside the band"
    assert not should_trade(0.9, 0.0, BAND, False, False), "never while the market is closed"
    assert not should_trade(0.0, 0.5, BAND, False, True), "not even a forced exit"


def test_batch_form_is_the_same_function() -> None:
    rng = np.random.default_rng(0)
    target = np.round(rng.uniform(-1, 1, 2000), 2)
    last = np.where(rng.random(2000) < 0.3, target, np.round(rng.uniform(-1, 1, 2000), 2))
    target[::7] = 0.0
    band = rng.choice([0.0, 0.05, 0.2], 2000)
    market_open = rng.random(2000) < 0.8
    force = rng.random(2000) < 0.1
    expected = [should_trade(*args) for args in zip(target, last, band, market_open, force)]
    assert should_trade_batch(target, last, band, market_open, force).tolist() == expected


def scripted_targets(n: int, n_symbols: int, seed: int) -> np.ndarray:
    """Targets that wander by small and large steps, repeat, and go flat: every branch of the rule."""
    rng = np.random.default_rng(seed)
    steps = rng.choice([0.0, 0.01, -0.02, 0.04, 0.08, -0.1, 0.3], size=(n, n_symbols))
    w = np.clip(np.cumsum(steps, axis=0) % 0.9, 0.0, 0.9 / n_symbols)
    w[rng.random((n, n_symbols)) < 0.08] = 0.0
    return np.round(w, 3)


def expected_decisions(targets: np.ndarray, market_open: np.ndarray | None = None) -> np.ndarray:
    """Bar-by-bar application of the rule, in plain Python (``market_open[i, j]``: symbol j's market is
    open on the bar decision i fills on)."""
    last = np.zeros(targets.shape[1])
    out = np.zeros(targets.shape, dtype=bool)
    for i, row in enumerate(targets):
        for j, w in enumerate(row):
            is_open = True if market_open is None else bool(market_open[i, j])
            if should_trade(float(w), float(last[j]), BAND, is_open, False):
                out[i, j] = True
                last[j] = w
    return out


@pytest.fixture(scope="module", params=[1, 2], ids=["one symbol", "two symbols"])
def case(request: pytest.FixtureRequest) -> tuple[MarketData, int, np.ndarray]:
    n_symbols = request.param
    data = generate_market(n_symbols=n_symbols, n_days=140, seed=7)
    env = make_env(data)
    env.reset()
    start = env.first_t
    targets = scripted_targets(data.n_bars - 1 - start, n_symbols, seed=n_symbols)
    decisions = expected_decisions(targets)
    assert decisions.any() and not decisions.all() and (targets[~decisions.any(axis=1)] != 0).any()
    return data, start, targets


def make_env(data: MarketData) -> StocksEnv | PortfolioEnv:
    kwargs: dict[str, Any] = dict(
        data=data, window_size=1, features=MINIMAL_FEATURES, action_mode="weights", execution=EXECUTION
    )
    if data.n_symbols == 1:
        return StocksEnv(**kwargs)
    return PortfolioEnv(**kwargs)


def traded_bars_single_env(data: MarketData, targets: np.ndarray) -> np.ndarray:
    env = make_env(data)
    env.reset()
    out = np.zeros(targets.shape, dtype=bool)
    for i, row in enumerate(targets):
        _, _, terminated, truncated, info = env.step(row.astype(np.float32))
        for fill in info["fills"]:
            out[i, data.symbols.index(fill.symbol)] = True
        if terminated or truncated:
            break
    return out


def traded_bars_vector_env(data: MarketData, targets: np.ndarray) -> np.ndarray:
    """Decisions read off the shares of each copy, for every row but the last: the episode's last step
    autoresets the account, so its shares no longer show the fill."""
    kind = "stocks" if data.n_symbols == 1 else "portfolio"
    vec = TradingVectorEnv(
        2, kind=kind, data=data, window_size=1, features=MINIMAL_FEATURES, action_mode="weights",
        execution=EXECUTION,
    )
    vec.reset(seed=0)
    out = np.zeros((len(targets) - 1, targets.shape[1]), dtype=bool)
    for i, row in enumerate(targets[:-1]):
        before = vec._shares.copy()
        vec.step(np.tile(row, (2, 1)))
        changed = vec._shares != before
        assert (changed[0] == changed[1]).all()
        out[i] = changed[0]
    return out


def traded_bars_replay(data: MarketData, start: int, targets: np.ndarray) -> np.ndarray:
    weights = np.zeros((data.n_bars, data.n_symbols))
    weights[start : start + len(targets)] = targets
    replay = replay_weights(data, weights, EXECUTION, CASH, start)
    out = np.zeros(targets.shape, dtype=bool)
    for ts, symbol in zip(replay.fills["timestamp"], replay.fills["symbol"]):
        out[data.index.get_loc(ts) - 1 - start, data.symbols.index(symbol)] = True
    return out


class Scripted:
    """Returns the scripted target weights of each bar."""

    name = "scripted"

    def __init__(self, data: MarketData, start: int, targets: np.ndarray) -> None:
        self.by_time = {data.index[start + i]: row for i, row in enumerate(targets)}
        self.n_symbols = data.n_symbols

    def reset(self, seed: int | None = None) -> None:
        """Stateless."""

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        return np.asarray(self.by_time.get(info["timestamp"], np.zeros(self.n_symbols)), dtype=np.float32)


def traded_bars_runner(data: MarketData, start: int, targets: np.ndarray) -> np.ndarray:
    journal = Journal(":memory:")
    broker = SimBroker(data.symbols, CASH, EXECUTION)
    config = RunnerConfig(run_id="rule", execution=EXECUTION, risk=None)
    runner = make_runner(Scripted(data, start, targets), broker, journal, data.symbols, config, CASH, data)
    run_sim(runner, broker, data, start, KillSwitch(), progress=False)
    ids = {o.client_order_id for o in journal.orders("rule")}
    out = np.zeros(targets.shape, dtype=bool)
    for i in range(len(targets)):
        for j, symbol in enumerate(data.symbols):
            out[i, j] = any(client_order_id("rule", data.index[start + i], symbol, leg) in ids for leg in LEGS)
    return out


def test_every_path_makes_the_rules_decisions(case: tuple[MarketData, int, np.ndarray]) -> None:
    data, start, targets = case
    expected = expected_decisions(targets)
    assert_every_path_decides(data, start, targets, expected)


def test_a_stock_never_fills_on_a_closed_bar_while_crypto_trades_every_bar() -> None:
    """Stock and crypto on one daily 24/7 clock: every path holds the stock over weekends and holidays
    (its new target waits for the next session) and trades the coin on any day."""
    stock = generate_market(n_symbols=1, n_days=100, seed=3, start="2021-01-04")
    coin = generate_crypto_market(n_bars=150, freq="1D", symbols=("BTC/USD",), initial_prices=(30_000.0,),
                                  start="2021-01-01", seed=3)
    data = combine(stock, coin)
    assert data.calendar.name == "24/7" and [c.name for c in data.symbol_calendars] == ["XNYS", "24/7"]
    env = make_env(data)
    env.reset()
    start = env.first_t
    targets = scripted_targets(data.n_bars - 1 - start, 2, seed=5)
    market_open = data.tradable[start + 1 : start + 1 + len(targets)]
    assert not market_open[:, 0].all() and market_open[:, 1].all()
    expected = expected_decisions(targets, market_open)
    # The mask matters: without it the stock would trade on closed bars.
    assert (expected_decisions(targets)[:, 0] & ~market_open[:, 0]).any()
    assert expected[:, 1][~market_open[:, 0]].any(), "the coin trades on weekends"
    assert not (expected[:, 0] & ~market_open[:, 0]).any()
    assert_every_path_decides(data, start, targets, expected)
    closed_days = data.index[~data.tradable[:, 0]]
    assert (closed_days.day_of_week >= 5).sum() > 20 and pd.Timestamp("2021-04-02", tz="UTC") in closed_days


def assert_every_path_decides(data: MarketData, start: int, targets: np.ndarray, expected: np.ndarray) -> None:
    paths = {
        "single env": traded_bars_single_env(data, targets),
        "vector env": traded_bars_vector_env(data, targets),
        "replay": traded_bars_replay(data, start, targets),
        "live runner": traded_bars_runner(data, start, targets),
    }
    for name, decided in paths.items():
        wrong = np.argwhere(decided != expected[: len(decided)])
        assert not len(wrong), f"{name} differs from the rule at (bar, symbol) {wrong[:5].tolist()}"


def _band_comparisons(path: Path) -> list[int]:
    """Lines comparing something against ``min_weight_change`` or a band outside the rule itself."""
    tree = ast.parse(path.read_text())
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            names = {n.attr if isinstance(n, ast.Attribute) else getattr(n, "id", None) for n in ast.walk(node)}
            if names & {"min_weight_change", "band", "_band"}:
                lines.append(node.lineno)
    return lines


def test_the_rule_is_written_once() -> None:
    rule = ROOT / "envs" / "sim" / "execution.py"
    offenders = {}
    for folder in ("envs", "agents", "baselines", "brokers", "experiments"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == rule:
                continue
            lines = _band_comparisons(path)
            if lines:
                offenders[str(path.relative_to(ROOT))] = lines
    assert not offenders, f"compare against the band only in should_trade: {offenders}"
    assert pd.Series(_band_comparisons(rule)).size == 1
