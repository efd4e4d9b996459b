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
    assert not should_trade(0.3, 0.3, 0.0), "an unchanged target never trades"
    assert should_trade(0.31, 0.3, 0.0)
    assert not should_trade(0.33, 0.3, BAND), "inside the band"
    assert should_trade(0.36, 0.3, BAND)
    assert should_trade(0.0, 0.02, BAND), "going flat is never held back by the band"
    assert not should_trade(0.0, 0.0, BAND)
    assert should_trade(-0.2, 0.2, BAND)


def test_batch_form_is_the_same_function() -> None:
    rng = np.random.default_rng(0)
    target = np.round(rng.uniform(-1, 1, 2000), 2)
    last = np.where(rng.random(2000) < 0.3, target, np.round(rng.uniform(-1, 1, 2000), 2))
    target[::7] = 0.0
    band = rng.choice([0.0, 0.05, 0.2], 2000)
    expected = [should_trade(a, b, c) for a, b, c in zip(target, last, band)]
    assert should_trade_batch(target, last, band).tolist() == expected


def scripted_targets(n: int, n_symbols: int, seed: int) -> np.ndarray:
    """Targets that wander by small and large steps, repeat, and go flat: every branch of the rule."""
    rng = np.random.default_rng(seed)
    steps = rng.choice([0.0, 0.01, -0.02, 0.04, 0.08, -0.1, 0.3], size=(n, n_symbols))
    w = np.clip(np.cumsum(steps, axis=0) % 0.9, 0.0, 0.9 / n_symbols)
    w[rng.random((n, n_symbols)) < 0.08] = 0.0
    return np.round(w, 3)


def expected_decisions(targets: np.ndarray) -> np.ndarray:
    """Bar-by-bar application of the rule, in plain Python."""
    last = np.zeros(targets.shape[1])
    out = np.zeros(targets.shape, dtype=bool)
    for i, row in enumerate(targets):
        for j, w in enumerate(row):
            if should_trade(float(w), float(last[j]), BAND):
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
