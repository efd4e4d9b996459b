"""``python -m experiments.train ppo --env MarketMaking-v0`` / ``--env Execution-v0``: a tiny run end to end,
the default configs, and the saved agent acting as a policy of its env."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401
from agents.registry import load_policy
from experiments import train_lob
from experiments.rl_config import load_config
from experiments.train import main as train_main

TINY = {
    "num_envs": 8, "n_steps": 50, "batch_size": 200, "n_epochs": 2, "net_arch": (16,),
    "total_timesteps": 1600, "eval_freq": 800, "progress": False,
}


@pytest.fixture(autouse=True)
def few_episodes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(train_lob, "EVAL_EPISODES", 16)
    monkeypatch.setattr(train_lob, "TEST_EPISODES", 64)


def test_env_default_config_is_its_own() -> None:
    config = load_config(overrides={"env": "MarketMaking-v0"}, algo="ppo")
    assert config.env == "MarketMaking-v0" and config.n_steps == 200 and config.log_std_init == -1.0
    execution = load_config(overrides={"env": "Execution-v0"}, algo="ppo")
    assert execution.env == "Execution-v0" and execution.num_envs == 64


@pytest.mark.parametrize("env", ["MarketMaking-v0", "Execution-v0"])
@pytest.mark.slow
def test_tiny_run_writes_a_loadable_agent(tmp_path: Path, env: str, capsys: pytest.CaptureFixture) -> None:
    args = ["ppo", "--env", env, "--runs-dir", str(tmp_path), "--run-name", "tiny"]
    for key, value in TINY.items():
        args += [f"--{key.replace('_', '-')}", ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    assert train_main(args) == 0
    out = capsys.readouterr().out
    assert "closed-form optimum" in out and "agent (best validation)" in out
    run = tmp_path / "ppo" / "tiny"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["timesteps"] >= 1600 and len(metrics["validation_history"]) >= 2
    assert set(metrics["baselines"]) == set(train_lob.BASELINES[env])
    assert metrics["test"]["episodes"] == 64
    # The run folder holds the backtest engine's report of the test episodes, the agent beside the baselines.
    stats = json.loads((run / "stats.json").read_text())
    assert (run / "report.html").is_file() and set(stats) == {"agent (best validation)", *train_lob.BASELINES[env]}
    assert stats["agent (best validation)"]["mean_reward"] == pytest.approx(metrics["test"]["mean_reward"])
    best_baseline = max(metrics["baselines"].values(), key=lambda s: s["mean_reward"])
    # The closed-form optimum is what the best closed-form policy earns, within Monte Carlo noise.
    assert abs(best_baseline["mean_reward"] - metrics["closed_form_optimum"]) < 3 * best_baseline["ci95"]
    agent = load_policy(run)
    single = gym.make(f"AlpacaGym/{env}")
    obs, info = single.reset(seed=0)
    steps = 0
    while True:
        action = agent.act(obs, info)
        assert single.action_space.contains(action)
        obs, _, _, truncated, info = single.step(action)
        steps += 1
        if truncated:
            break
    assert steps == single.unwrapped.spec_.book.n_steps if env == "MarketMaking-v0" else steps == 20
    assert np.isfinite(info["equity"])
