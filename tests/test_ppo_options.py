"""PPO on Options-v0: a tiny end-to-end run, the saved agent as an options Policy, the backtest engine on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.ppo import SB3Agent
from agents.registry import load_policy
from envs.data.sources import load_data
from envs.environments.options import ENV_ID, OptionsEnv
from envs.sim.execution import ConfigError
from experiments import train as train_cli
from experiments.engine import BacktestConfig, make_env, run_backtest
from experiments.rl_config import (
    OPTIONS_BASELINES,
    RLConfig,
    load_config,
    overrides_from_args,
    resolve,
)
from experiments.spec import run_spec
from experiments.train_rl import load_market, make_train_env, train, training_data

TINY = {
    "env": "Options-v0",
    "data": "synthetic:n_days=360,n_symbols=2,seed=3",
    "symbol": "SYN1",
    "episode_length": 40,
    "num_envs": 2,
    "n_steps": 64,
    "batch_size": 64,
    "n_epochs": 2,
    "net_arch": (16,),
    "total_timesteps": 256,
    "eval_freq": 128,
    "checkpoint_freq": 128,
    "progress": False,
    "baselines": ("buy_and_hold", "covered_calls"),
}


@pytest.fixture(scope="module")
def options_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RLConfig, Path, dict]:
    config = RLConfig(**TINY, runs_dir=str(tmp_path_factory.mktemp("runs")), run_name="opt")
    result = train(config)
    return config, result.run_dir, result.metrics


def test_run_folder_and_metrics(options_run: tuple[RLConfig, Path, dict]) -> None:
    _, run_dir, _ = options_run
    for name in ("config.yaml", "policy.yaml", "metrics.json", "best/model.zip", "best/vecnormalize.pkl",
                 "final/model.zip", "final/vecnormalize.pkl"):
        assert (run_dir / name).is_file(), name
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["env"] == ENV_ID and saved["timesteps"] == 256
    assert [h["timesteps"] for h in saved["validation_history"]] == [128, 256]
    assert set(saved["baselines"]) == {"buy_and_hold", "covered_calls"}
    # Covered calls hold shares and sell calls from the first bar: they trade in the validation period.
    assert all(saved["baselines"]["covered_calls"][p]["n_trades"] > 0 for p in ("validation",))


def test_saved_agent_is_an_options_policy(options_run: tuple[RLConfig, Path, dict]) -> None:
    config, run_dir, _ = options_run
    agent = load_policy(run_dir)
    assert isinstance(agent, SB3Agent) and agent.env_id == ENV_ID and agent.env_options == {}
    data = load_market(config)
    assert data.symbols == ("SYN1",)
    env = make_env(agent, data, BacktestConfig())
    assert isinstance(env, OptionsEnv)
    obs, info = env.reset(seed=0)
    action = agent.act(obs, info)
    assert isinstance(action, int) and env.action_space.contains(action)
    small = OptionsEnv(data, templates=("covered_call",))
    obs, info = small.reset(seed=0)
    with pytest.raises(ValueError, match="default templates"):
        agent.act(obs, info)


def test_training_metrics_match_the_backtest_engine(options_run: tuple[RLConfig, Path, dict]) -> None:
    config, run_dir, metrics = options_run
    agent = load_policy(run_dir)
    data = load_market(config)
    _, val, _ = run_spec(run_dir).splits.periods(data.index)
    result = run_backtest(agent, data.iloc(slice(0, val.stop)), BacktestConfig(start=val.start))
    assert result.env_id == ENV_ID and result.mode == "step"
    assert result.stats.sharpe == pytest.approx(metrics["best"]["validation"]["sharpe"], rel=1e-9, nan_ok=True)
    assert result.stats.total_return == pytest.approx(metrics["best"]["validation"]["total_return"], rel=1e-12)


def test_train_env_copies_start_at_random_train_bars() -> None:
    config = RLConfig(**{**TINY, "num_envs": 3, "norm_obs": False}, train_symbols=("all",))
    full = load_data(config.data)
    train_period, _, _ = resolve(config)[1].splits.periods(full.index)
    venv = make_train_env(config, training_data(config, full, train_period))
    venv.seed(0)
    venv.reset()
    starts = [env.unwrapped._start_t for env in venv.venv.envs]
    assert [env.unwrapped.data.symbols for env in venv.venv.envs] == [("SYN0",), ("SYN0",), ("SYN1",)]
    assert all(env.unwrapped.data.n_bars == train_period.stop for env in venv.venv.envs)
    assert len(set(starts)) > 1
    assert venv.action_space.n == venv.venv.envs[0].unwrapped.layout.n


def test_options_config() -> None:
    args = train_cli.build_parser().parse_args(["ppo", "--env", "Options-v0", "--timesteps", "5000"])
    config = load_config(args.config, overrides_from_args(args), algo=args.algo)
    assert config.env == "Options-v0" and config.baseline_names == OPTIONS_BASELINES
    assert RLConfig().baseline_names[0] == "buy_and_hold" and "covered_calls" not in RLConfig().baseline_names
    with pytest.raises(ConfigError, match="action_mode"):
        RLConfig(env="Options-v0", action_mode="weights")
    with pytest.raises(ConfigError, match="allow_short"):
        RLConfig(env="Options-v0", allow_short=True)
    with pytest.raises(ConfigError, match="commission_per_contract"):
        RLConfig(env="Options-v0", commission_per_contract=-1.0)


def test_an_agent_trained_on_the_put_call_ratio_is_backtested_observing_it(tmp_path: Path) -> None:
    config = RLConfig(**TINY, sentiment=True, runs_dir=str(tmp_path), run_name="sentiment")
    result = train(config)
    agent = load_policy(result.run_dir)
    assert agent.env_options == {"sentiment": True}
    data = load_market(config)
    env = make_env(agent, data, BacktestConfig())
    assert env.observation_space.shape == (22,)
    _, val, _ = run_spec(result.run_dir).splits.periods(data.index)
    replay = run_backtest(agent, data.iloc(slice(0, val.stop)), BacktestConfig(start=val.start))
    assert replay.stats.total_return == pytest.approx(
        result.metrics["best"]["validation"]["total_return"], rel=1e-12)
    with pytest.raises(ConfigError, match="put/call"):
        RLConfig(sentiment=True)
