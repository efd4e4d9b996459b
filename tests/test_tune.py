"""Ray Tune sweeps: the trial function with a stand-in reporter, and a 2-trial sweep end to end (~15 s)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import yaml
from rl_fixtures import TINY_RL

from agents.ppo import SB3Agent, load_agent
from agents.registry import load_policy
from experiments.rl_config import RLConfig, load_config
from experiments.tune import METRIC, run_trial, search_space, sweep

# Trials set their own n_steps and net_arch; fewer checkpoints keep the sweep short.
TINY = {**TINY_RL, "checkpoint_freq": 512}


def test_search_space_covers_the_issue_and_builds_configs() -> None:
    space = search_space()
    assert set(space) == {"learning_rate", "ent_coef", "n_steps", "gamma", "net_arch", "reward"}
    sample = {key: domain.sample() for key, domain in space.items()}
    config = RLConfig().replace(**sample)
    assert config.net_arch == tuple(sample["net_arch"]) and config.reward == sample["reward"]


def test_trial_reports_every_evaluation_and_checkpoints_loadable_agents(tmp_path: Path) -> None:
    reports: list[tuple[dict, bool]] = []

    def report(metrics: dict, folder: Path | None) -> None:
        if folder is not None:
            # The checkpoint must be a complete agent at the moment it is reported.
            assert isinstance(load_agent(folder), SB3Agent)
        reports.append((metrics, folder is not None))

    metrics = run_trial({"learning_rate": 1e-3, "n_steps": 64, "net_arch": [8]}, RLConfig(**TINY),
                        tmp_path / "trial", report)
    assert [r[0]["timesteps"] for r in reports] == [256, 512]
    assert reports[0][1], "the first evaluation is always an improvement"
    assert all(isinstance(r[0][METRIC], float) for r in reports)
    saved = yaml.safe_load((tmp_path / "trial" / "config.yaml").read_text())
    assert (saved["learning_rate"], saved["n_steps"], saved["net_arch"]) == (1e-3, 64, [8])
    assert metrics["timesteps"] == 512


def test_two_trial_sweep_end_to_end(tmp_path: Path) -> None:
    base = RLConfig(**TINY, runs_dir=str(tmp_path))
    folder = sweep(base, samples=2, name="tiny", cpus_per_trial=1)
    best = load_config(folder / "best_config.yaml")
    assert best.total_timesteps == base.total_timesteps and best.data == base.data
    assert isinstance(load_policy(folder / "best_agent"), SB3Agent)
    trials = (folder / "trials.csv").read_text().splitlines()
    assert len(trials) == 3 and METRIC in trials[0]
    trial_dirs = [d for d in folder.iterdir() if d.is_dir() and d.name.startswith("t")]
    assert len(trial_dirs) == 2
    assert all(re.fullmatch(r"t\d+_lr=\d\.\de-\d\d_ent=\d\.\de-\d\d_n=\d+_g=[\d.]+_net=[\dx]+_\w+", d.name)
               for d in trial_dirs), [d.name for d in trial_dirs]
    # Each trial once in TensorBoard: its run's tb/ logs, no second copy from Ray's own logger.
    events = sorted(folder.rglob("events.out.tfevents.*"))
    assert len(events) == 2 and all(e.parent.name == "tb" for e in events), events
    # One "best": trials.csv ranks by the best validation Sharpe each trial reached.
    rows = pd.read_csv(folder / "trials.csv")
    assert rows[METRIC].is_monotonic_decreasing and rows[METRIC].iloc[0] >= rows["validation_sharpe"].max()
