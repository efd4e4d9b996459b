"""RL agents trade under every sizing rule of the spec, through the sizing code the rule bots use.

The env sizes an agent's action (its signal) bar by bar with :class:`envs.sim.sizing.SizingState`; these
tests check that the weights it trades are the sizer's for the same signal, that a PPO run trained with
``sizing=volatility`` stores that rule and is backtested, evaluated and paper-traded with it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from rl_fixtures import TINY_RL

from agents.ppo import SB3Agent
from agents.registry import load_policy, make_policy
from envs.data.sources import load_data
from envs.environments.portfolio import PortfolioEnv
from envs.environments.stocks import StocksEnv
from envs.environments.vector import TradingVectorEnv
from envs.sim.actions import cap_gross
from envs.sim.execution import ExecutionConfig
from envs.sim.sizing import CappedKelly, FixedFraction, VolatilityTarget, on_calendar
from experiments.engine import MINIMAL_FEATURES, BacktestConfig, make_env, run_backtest
from experiments.rl_config import RLConfig
from experiments.spec import ExperimentSpec, backtest_config, run_spec
from experiments.train_rl import load_market, make_train_env, train, training_data

DATA = "synthetic:n_days=400,n_symbols=2,seed=5"
SIZERS = [VolatilityTarget(target_vol=0.1, lookback=15, max_weight=0.5), CappedKelly(scale=0.5, lookback=30)]


def _signals(n_bars: int, n_symbols: int, seed: int) -> np.ndarray:
    """A reproducible long-only signal in [0, 1] per bar and symbol, exact in float32 (the action's type)."""
    return np.random.default_rng(seed).uniform(0.0, 1.0, size=(n_bars, n_symbols)).astype(np.float32).astype(float)


@pytest.mark.parametrize("sizer", SIZERS, ids=["volatility", "kelly"])
@pytest.mark.parametrize("env_cls", [StocksEnv, PortfolioEnv])
def test_the_env_trades_what_the_sizer_gives_for_the_same_signal(sizer: Any, env_cls: type) -> None:
    data = load_data(DATA)
    kwargs: dict[str, Any] = {"action_mode": "weights", "execution": ExecutionConfig(spread_bps=3.0),
                              "features": MINIMAL_FEATURES}
    sized = env_cls(data, sizing=sizer, **kwargs)
    plain = env_cls(data, **kwargs)
    n = sized.data.n_symbols
    signals = _signals(data.n_bars, n, seed=1)
    start = 40
    # The sizer over the whole series, with the episode's signals (flat before it starts): what a rule bot
    # with this signal would target at every bar.
    episode = np.zeros_like(signals)
    # The signal is the action adapter's weights (several symbols: within the leverage cap).
    episode[start:] = sized.adapter.to_weights_batch(signals[start:].astype(np.float32))
    sized_weights = np.clip(on_calendar(sizer, data.periods_per_year)(episode, sized.data.close), -1.0, 1.0)
    expected = cap_gross(sized_weights, sized.adapter.max_leverage)
    assert np.count_nonzero(expected[start:]) > 0.5 * expected[start:].size  # the rule sizes, not zeroes
    sized.reset(seed=0, options={"start": start})
    plain.reset(seed=0, options={"start": start})
    done = False
    while not done:
        t = sized._t
        signal = signals[t].astype(np.float32)
        np.testing.assert_allclose(sized.signal_weights(signal), expected[t], rtol=1e-9, atol=1e-15)
        _, _, term, trunc, _ = sized.step(signal)
        plain.step(expected[t].astype(np.float32))
        done = term or trunc
    # Same fills, same equity: the env traded exactly the sizer's weights.
    np.testing.assert_allclose(sized.equity_series(), plain.equity_series(), rtol=1e-6)
    assert len(sized.trade_frame()) == len(plain.trade_frame()) > 10


def test_a_bot_signal_in_a_sizing_env_is_the_bot_under_that_sizing() -> None:
    """The rule bot sizes its own signal; an agent's env sizes the agent's: the same code, the same run."""
    data = load_data("synthetic:n_days=500,n_symbols=1,seed=2")
    sizing = {"sizing": "volatility", "fraction": 0.6, "target_vol": 0.12, "sizing_lookback": 20}
    bot = make_policy("sma_crossover", sizing)

    class SignalOnly:
        """The bot's raw signal as an agent's action; its env sizes it."""

        name = "signal"
        env_options = {"action_mode": "weights", "sizing": VolatilityTarget(0.12, 20, 0.6)}

        def reset(self, seed: int | None = None) -> None:
            pass

        def act(self, obs: np.ndarray, info: dict) -> np.ndarray:
            return np.maximum(bot.signal(info["history"])[-1], 0.0).astype(np.float32)

    config = BacktestConfig()  # risk layer on: both are stepped through it
    start = 60
    a = run_backtest(bot, data, config, start=start)
    b = run_backtest(SignalOnly(), data, config, start=start)
    assert a.stats.n_trades > 3
    np.testing.assert_allclose(a.equity.to_numpy(), b.equity.to_numpy(), rtol=1e-6)
    assert len(a.risk_events) == len(b.risk_events)


def test_a_fixed_fraction_is_the_position_size_and_the_vector_env_refuses_other_rules() -> None:
    data = load_data("synthetic:n_days=200,n_symbols=1,seed=2")
    env = StocksEnv(data, sizing=FixedFraction(0.3), features=MINIMAL_FEATURES)
    assert env.adapter.position_size == 0.3 and env._sizing is None
    vector = TradingVectorEnv(2, data=data, sizing=FixedFraction(0.3), features=MINIMAL_FEATURES)
    assert vector.adapter.position_size == 0.3
    with pytest.raises(ValueError, match="fixed fraction only"):
        TradingVectorEnv(2, data=data, sizing=VolatilityTarget(), features=MINIMAL_FEATURES)
    with pytest.raises(ValueError, match="sizing or position_size"):
        StocksEnv(data, sizing=VolatilityTarget(), position_size=0.5, features=MINIMAL_FEATURES)


@pytest.fixture(scope="module")
def volatility_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RLConfig, Path, dict, ExperimentSpec]:
    # A position cap of 100%, so the risk layer's 15% default does not hide the sizing rule's weights.
    spec = ExperimentSpec().replace(
        sizing="volatility", fraction=0.8, target_vol=0.1, sizing_lookback=10, max_position=1.0
    )
    config = RLConfig(**TINY_RL, runs_dir=str(tmp_path_factory.mktemp("runs")), run_name="vol")
    result = train(config, spec=spec)
    return config, result.run_dir, result.metrics, spec


def test_ppo_trains_under_volatility_sizing_and_its_run_keeps_the_rule(
    volatility_run: tuple[RLConfig, Path, dict, ExperimentSpec],
) -> None:
    config, run_dir, metrics, spec = volatility_run
    stored = run_spec(run_dir)
    assert stored.sizing == spec.sizing and stored.sizing.sizing == "volatility"
    manifest = yaml.safe_load((run_dir / "policy.yaml").read_text())
    assert manifest["env_kwargs"]["sizing"] == dataclasses.asdict(spec.sizing)
    assert manifest["env_kwargs"]["position_size"] == 1.0
    # The training env sizes the agent's actions with the spec's rule (copies of the single env).
    full = load_data(config.data if config.data else stored.data.data)
    train_period, _, _ = stored.splits.periods(full.index)
    venv = make_train_env(config, training_data(config, full, train_period), stored)
    env = venv.venv.envs[0].unwrapped
    assert env._sizing is not None and env.sizing == on_calendar(spec.sizing.sizer(), full.periods_per_year)
    # The saved agent returns its signal and asks the backtest for the same rule.
    agent = load_policy(run_dir)
    assert isinstance(agent, SB3Agent) and agent.adapter.position_size == 1.0
    assert agent.env_options["sizing"] == spec.sizing.sizer()
    data = load_market(config)
    assert make_env(agent, data, backtest_config(stored)).sizing == on_calendar(
        spec.sizing.sizer(), data.periods_per_year
    )


def test_backtest_and_evaluate_of_the_run_use_its_sizing(
    volatility_run: tuple[RLConfig, Path, dict, ExperimentSpec], tmp_path: Path, capsys: pytest.CaptureFixture,
) -> None:
    from experiments import evaluate as evaluate_cli

    config, run_dir, metrics, spec = volatility_run
    agent = load_policy(run_dir)
    data = load_market(config)
    _, val, _ = spec.splits.periods(data.index)
    window = data.iloc(slice(0, val.stop))
    result = run_backtest(agent, window, backtest_config(spec, start=val.start))
    # Training selected and scored the model in an env sized like the backtest's: the same number.
    assert result.stats.sharpe == pytest.approx(metrics["best"]["validation"]["sharpe"], rel=1e-9)
    assert result.stats.total_return == pytest.approx(metrics["best"]["validation"]["total_return"], rel=1e-12)
    # The same model sized by a fixed 80% instead trades other weights: the rule reached the backtest.
    fixed = SB3Agent(agent.model, {**agent.env_kwargs, "sizing": None, "position_size": 0.8}, agent.normalizer)
    other = run_backtest(fixed, window, backtest_config(spec, start=val.start))
    assert result.stats.n_trades > 0 and not np.allclose(other.equity.to_numpy(), result.equity.to_numpy())
    assert evaluate_cli.main([str(run_dir), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "volatility sizing capped at 80%" in out and "trades its own sizing" not in out
    # Another rule for the table's bots cannot retrain the agent: the output says it keeps its own.
    assert evaluate_cli.main([str(run_dir), "--out", str(tmp_path), "--sizing", "fixed", "--period", "validation"]) == 0
    out = capsys.readouterr().out
    assert "note: ppo:vol trades its own sizing (volatility, fraction 0.8), not the spec's (fixed, fraction 0.8)" in out


def test_paper_trading_the_run_sizes_like_its_backtest(
    volatility_run: tuple[RLConfig, Path, dict, ExperimentSpec], tmp_path: Path,
) -> None:
    """The live runner asks its shadow env for the sized weights: on bars without overnight gaps (the one
    difference between paper and backtest, see tests/test_paper_parity.py) the two are equal to the cent."""
    from test_paper_parity import _gapless

    from brokers.journal import Journal
    from brokers.runner import RunnerConfig
    from brokers.sim import SimBroker
    from experiments.engine import start_bar
    from experiments.paper import KillSwitch, make_runner, run_sim

    config, run_dir, _, spec = volatility_run
    data = _gapless(load_market(config))
    agent = load_policy(run_dir)
    bt_config = backtest_config(spec)
    start = start_bar([agent], data, bt_config)
    backtest = run_backtest(agent, data, bt_config, start=start)
    broker = SimBroker(data.symbols, spec.initial_cash, spec.execution)
    runner_config = RunnerConfig(run_id="sized", execution=spec.execution, risk=spec.risk, seed=spec.seed)
    runner = make_runner(load_policy(run_dir), broker, Journal(tmp_path / "j.sqlite"), data.symbols, runner_config,
                         spec.initial_cash, data)
    run_sim(runner, broker, data, start, KillSwitch(), progress=False)
    assert backtest.stats.n_trades > 0
    assert len(broker.portfolio.trade_frame()) == len(backtest.fills)
    assert broker.account().equity == pytest.approx(backtest.stats.final_equity, abs=0.01)
