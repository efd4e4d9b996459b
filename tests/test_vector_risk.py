"""One risk layer: the batched vector env runs the single env's risk rules on every copy.

The same scripted actions go through single envs (whose ``RiskManager`` is what the backtest and the live
runner call) and through one vector env whose rows each follow one of the scripts, through random starts
and autoresets. Every step the allowed targets, shares, cash, equity and the interventions per rule must
be identical, with stops, the position cap and its drift trim, the drawdown breaker tripping and resuming
after its cool-off, and, on several symbols, the slot, correlation and heat limits all firing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from envs.data.market_data import MarketData
from envs.environments.portfolio import PortfolioEnv
from envs.environments.stocks import StocksEnv
from envs.environments.vector import TradingVectorEnv
from envs.sim.execution import ExecutionConfig
from envs.sim.risk import RULES, RiskConfig
from experiments.engine import MINIMAL_FEATURES

EXECUTION = ExecutionConfig(allow_short=True, commission=0.001, slippage_bps=2.0, min_weight_change=0.02)
RISK = RiskConfig(
    max_position=0.5, max_positions=2, stop_loss=0.04, max_drawdown=0.1, drawdown_cooloff=6, max_heat=0.03,
    max_correlation=0.5, correlation_lookback=20, stop_cooldown=3, position_drift=0.05,
)
N_ENVS = 3
EPISODE = 80


def volatile_market(n_symbols: int, n_bars: int = 400, seed: int = 3) -> MarketData:
    """Random walks with 3% daily moves, the first two symbols sharing a common factor (correlated)."""
    rng = np.random.default_rng(seed)
    common = rng.normal(0.0, 0.025, (n_bars, 1))
    own = rng.normal(0.0, 0.02, (n_bars, n_symbols))
    shared = np.zeros(n_symbols)
    shared[:2] = 1.0
    close = 100.0 * np.exp(np.cumsum(common * shared + own, axis=0))
    open_ = close * np.exp(rng.normal(0.0, 0.01, (n_bars, n_symbols)))
    high = np.maximum(open_, close) * 1.005
    low = np.minimum(open_, close) * 0.995
    values = np.stack([open_, high, low, close, np.full((n_bars, n_symbols), 1e6)], axis=-1)
    index = pd.date_range("2021-01-01", periods=n_bars, freq="D", tz="UTC")
    return MarketData(values, index, tuple(f"S{j}" for j in range(n_symbols)))


def scripted_actions(n_steps: int, n_symbols: int, mode: str, seed: int) -> np.ndarray:
    """Actions that hold for a while, then jump: long, short, flat and oversized requests."""
    rng = np.random.default_rng(seed)
    if mode == "discrete":
        choices = rng.integers(0, 3, n_steps)
        hold = rng.random(n_steps) < 0.8
    else:
        choices = rng.choice([-1.0, -0.6, -0.2, 0.0, 0.3, 0.7, 1.0], size=(n_steps, n_symbols)) / max(n_symbols - 1, 1)
        hold = rng.random(n_steps) < 0.7
    for k in range(1, n_steps):
        if hold[k]:
            choices[k] = choices[k - 1]
    return choices if mode == "discrete" else choices.reshape(n_steps, n_symbols)


def rule_counts(events: tuple) -> np.ndarray:
    counts = np.zeros(len(RULES), dtype=np.int64)
    for event in events:
        counts[RULES.index(event.rule)] += 1
    return counts


@pytest.mark.parametrize("n_symbols, mode", [(1, "weights"), (1, "discrete"), (3, "weights")],
                         ids=["one symbol, weights", "one symbol, discrete", "three symbols"])
def test_vector_env_applies_the_single_envs_risk_layer(n_symbols: int, mode: str) -> None:
    data = volatile_market(n_symbols)
    kind, single_cls = ("stocks", StocksEnv) if n_symbols == 1 else ("portfolio", PortfolioEnv)
    kwargs = dict(data=data, window_size=1, features=MINIMAL_FEATURES, action_mode=mode, execution=EXECUTION,
                  risk=RISK, episode_length=EPISODE)
    vec = TradingVectorEnv(N_ENVS, kind=kind, **kwargs)
    singles = [single_cls(**kwargs) for _ in range(N_ENVS)]
    n_steps = 3 * EPISODE
    scripts = [scripted_actions(n_steps, n_symbols, mode, seed) for seed in range(N_ENVS)]
    _, info_v = vec.reset(seed=11)
    for i, single in enumerate(singles):
        single.reset(options={"start": int(info_v["t"][i])})
    single_counts = np.zeros((N_ENVS, len(RULES)), dtype=np.int64)
    vector_counts = np.zeros((N_ENVS, len(RULES)), dtype=np.int64)
    resumed = forced = 0
    for step in range(n_steps):
        actions = np.stack([script[step] for script in scripts])
        before = vec.risk_counts.copy()
        _, rewards_v, term_v, trunc_v, info_v = vec.step(actions)
        vector_counts += vec.risk_counts - before
        for i, single in enumerate(singles):
            halted = single._risk.halted
            _, reward_s, term_s, trunc_s, info_s = single.step(actions[i])
            resumed += halted and not single._risk.halted
            single_counts[i] += rule_counts(info_s["risk_events"])
            forced += sum(event.force for event in info_s["risk_events"])
            assert info_v["equity"][i] == info_s["equity"], f"step {step}, env {i}"
            assert info_v["cash"][i] == info_s["cash"]
            assert rewards_v[i] == reward_s
            assert (term_v[i], trunc_v[i]) == (term_s, trunc_s)
            if trunc_s or term_s:
                single.reset(options={"start": int(vec._t[i])})
                continue  # the vector row has autoreset: its account is the new episode's
            np.testing.assert_array_equal(vec._shares[i], info_s["positions"])
            np.testing.assert_array_equal(vec._target[i], np.atleast_1d(single._target))
        np.testing.assert_array_equal(vector_counts, single_counts, err_msg=f"step {step}")
    totals = dict(zip(RULES, single_counts.sum(axis=0).tolist()))
    assert totals["stop_loss"] > 0 and totals["max_drawdown"] > 0 and totals["max_position"] > 0, totals
    assert resumed > 0, "the drawdown breaker should trip and resume after its cool-off"
    if n_symbols == 1:
        assert forced > 0, "a held position drifting above the cap should be trimmed"
    else:
        assert min(totals.values()) > 0, f"every rule should fire on three symbols: {totals}"


def test_risk_state_restarts_with_each_episode() -> None:
    """A row that autoresets starts with a fresh high-water mark, no halt and no stop blocks."""
    data = volatile_market(1)
    vec = TradingVectorEnv(2, data=data, features=MINIMAL_FEATURES, action_mode="weights", execution=EXECUTION,
                           risk=RISK, episode_length=EPISODE)
    vec.reset(seed=0)
    halted_once = False
    for _ in range(EPISODE - 1):
        vec.step(np.full((2, 1), 1.0))
        halted_once |= bool(vec._risk_acct[1].any())
    assert halted_once and vec.risk_counts.sum() > 0
    vec.step(np.full((2, 1), 1.0))  # the last step of the episode: both rows start again
    np.testing.assert_array_equal(vec._risk_acct, [[100_000.0] * 2, [0.0] * 2, [-1.0] * 2])
    assert not vec._risk_pos.any()
    vec.reset()
    assert not vec.risk_counts.any()
