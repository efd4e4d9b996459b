"""Market makers and execution schedules through ``python -m experiments.backtest --env ...`` (and its alias
``python -m experiments.microstructure``): the measures on cases with known answers, the table, the report
(offline, in a real browser) and the machine-readable results, and a saved PPO agent as a policy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agents.registry import load_policy, make_policy
from experiments.backtest import main as backtest
from experiments.microstructure import (
    MARKET_MAKING_METRICS,
    execution_report,
    main,
    market_making_report,
    run_execution,
    run_market_making,
)


def test_fixed_spread_captures_its_half_spread_and_no_adverse_selection_without_alpha() -> None:
    policy = make_policy("fixed_spread", {"half_spread": 0.5})
    report = market_making_report(policy, episodes=128, seed=1)
    # Quotes are rounded away from the mid onto the 0.01 tick: 0.5 <= distance < 0.51.
    assert 0.5 <= report["spread_captured"] < 0.51
    # Fill probability exp(-1.5 x 0.5) per market order, within the tick's rounding.
    assert report["fill_rate"] == pytest.approx(0.472, abs=0.02)
    assert abs(report["adverse_selection"]) < 0.02
    assert report["pnl"] > report["mean_reward"], "the penalties come off the P/L"


def test_order_flow_alpha_shows_as_adverse_selection() -> None:
    policy = make_policy("avellaneda_stoikov")
    calm = market_making_report(policy, episodes=128, seed=2)
    toxic = market_making_report(policy, episodes=128, seed=2, book={"alpha_impact": 3.0})
    assert toxic["adverse_selection"] > 0.05 > abs(calm["adverse_selection"])
    assert toxic["mean_reward"] < calm["mean_reward"]
    assert calm["share_of_optimum"] == pytest.approx(1.0, abs=0.03)


def test_paths_and_episodes_agree_with_the_metrics() -> None:
    run = run_market_making(make_policy("glft"), episodes=64, seed=5)
    assert len(run.paths) == 200 and run.paths.index[-1] == pytest.approx(1.0)
    assert run.paths["pnl_mean"].iloc[-1] == pytest.approx(run.metrics["pnl"])
    assert run.episodes["pnl"].mean() == pytest.approx(run.metrics["pnl"])
    assert run.episodes["reward"].mean() == pytest.approx(run.metrics["mean_reward"])
    assert run.paths["abs_inventory_mean"].iloc[-1] == pytest.approx(run.metrics["abs_inventory_end"])
    assert run.episodes["terminal_inventory"].abs().mean() == pytest.approx(run.metrics["abs_inventory_end"])
    assert (run.paths["pnl_p05"] <= run.paths["pnl_mean"]).all() and (run.paths["pnl_mean"] <= run.paths["pnl_p95"]).all()
    execution = run_execution(make_policy("twap"), episodes=32, seed=5)
    np.testing.assert_allclose(execution.paths["shares_left"], 1 - np.arange(1, 21) / 20, atol=1e-6)
    assert execution.episodes["shortfall_bps"].mean() == pytest.approx(execution.metrics["shortfall_bps"])


def test_execution_report_schedules_and_closed_form() -> None:
    twap = execution_report(make_policy("twap"), episodes=256, seed=3)
    for q in ("traded_q1", "traded_q2", "traded_q3", "traded_q4"):
        assert twap[q] == pytest.approx(0.25)
    ac = execution_report(make_policy("almgren_chriss"), episodes=256, seed=3)
    assert ac["traded_q1"] > 0.5 > ac["traded_q4"] * 5, "risk aversion front-loads the schedule"
    assert abs(ac["mean_reward"] - ac["optimum"]) < 2 * ac["ci95"]


def test_backtest_writes_the_table_report_and_results(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "mm"
    assert backtest(["avellaneda_stoikov", "fixed_spread", "--param", "fixed_spread.half_spread=0.5",
                     "--episodes", "32", "--seeds", "7", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "MarketMaking-v0, 32 episodes, seed 7" in text
    for label, _ in MARKET_MAKING_METRICS.values():
        assert label in text
    stats = json.loads((out / "stats.json").read_text())
    assert list(stats) == ["avellaneda_stoikov", "fixed_spread"]
    assert stats["fixed_spread"]["env"] == "AlpacaGym/MarketMaking-v0"
    direct = market_making_report(make_policy("fixed_spread", {"half_spread": 0.5}), episodes=32, seed=7)
    for key, value in direct.items():
        assert stats["fixed_spread"][key] == pytest.approx(value), key
    paths = pd.read_csv(out / "paths.csv")
    episodes = pd.read_csv(out / "episodes.csv")
    assert len(paths) == 2 * 200 and len(episodes) == 2 * 32
    assert episodes.groupby("policy")["pnl"].mean()["fixed_spread"] == pytest.approx(direct["pnl"])
    page = (out / "report.html").read_text()
    assert "P/L and inventory paths" in page and "adverse selection per unit" in page
    assert "<script src=" not in page  # Bokeh inlined (the browser test checks no request leaves the file)


def test_microstructure_command_is_the_backtest(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["glft", "--episodes", "16", "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "closed-form optimum" in out and "glft" in out and "fill rate" in out
    assert (tmp_path / "a" / "report.html").is_file()
    assert main(["sma_crossover", "--episodes", "16", "--out", str(tmp_path / "b")]) == 2
    assert "error: sma_crossover is not a AlpacaGym/MarketMaking-v0 policy" in capsys.readouterr().err
    assert main(["--env", "Execution-v0", "--episodes", "16", "--out", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "almgren_chriss" in out and "twap" in out and "implementation shortfall (bps)" in out
    assert main(["--env", "Execution-v0", "glft", "--episodes", "16"]) == 2
    assert "glft is not a AlpacaGym/Execution-v0 policy" in capsys.readouterr().err


def test_bad_mixes_and_flags_are_one_line_errors(capsys: pytest.CaptureFixture) -> None:
    assert backtest(["avellaneda_stoikov", "sma_crossover"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: these policies trade different markets") and "sma_crossover (stocks)" in err
    assert backtest(["twap", "--start", "2020-01-01"]) == 2
    assert "error: --start does not apply to AlpacaGym/Execution-v0" in capsys.readouterr().err
    assert backtest(["twap", "--alpha-impact", "1"]) == 2
    assert "error: --alpha-impact is a MarketMaking-v0 setting" in capsys.readouterr().err
    assert backtest(["glft", "--episodes", "1"]) == 2
    assert "error: --episodes must be at least 2" in capsys.readouterr().err


def _saved_agent(folder: Path, env: str) -> Path:
    """A PPO agent of ``env`` saved as training saves one (untrained: the route, not the skill, is tested)."""
    from stable_baselines3 import PPO

    from agents.ppo import MODEL_FILE, write_manifest
    from agents.vec_env import GymVecEnv
    from experiments.train_lob import make_vector_env
    from experiments.rl_config import load_config

    config = load_config(overrides={"env": env}, algo="ppo")
    model = PPO("MlpPolicy", GymVecEnv(make_vector_env(config, 4)), n_steps=8, batch_size=32, seed=0,
                policy_kwargs={"net_arch": [8]})
    (folder / "best").mkdir(parents=True)
    model.save(folder / "best" / MODEL_FILE)
    write_manifest(folder, "ppo", f"best/{MODEL_FILE}", {"env_id": f"AlpacaGym/{env}"})
    return folder


@pytest.mark.parametrize("env", ["MarketMaking-v0", "Execution-v0"])
def test_a_saved_agent_runs_beside_the_baselines(tmp_path: Path, env: str, capsys: pytest.CaptureFixture) -> None:
    run = _saved_agent(tmp_path / "run", env)
    baseline = "glft" if env == "MarketMaking-v0" else "twap"
    out = tmp_path / "out"
    assert backtest([str(run), baseline, "--episodes", "8", "--out", str(out)]) == 0
    stats = json.loads((out / "stats.json").read_text())
    agent = load_policy(run)
    assert set(stats) == {agent.name, baseline} and stats[agent.name]["env"] == f"AlpacaGym/{env}"
    # The batch route acts as the agent does one observation at a time.
    obs = np.random.default_rng(0).normal(size=(5, *agent._obs_shape)).astype(np.float32)
    np.testing.assert_allclose(agent.act_vector(obs), np.stack([agent.act(o) for o in obs]), atol=1e-6)
    direct = (run_market_making if env == "MarketMaking-v0" else run_execution)(agent, episodes=8, seed=0)
    assert stats[agent.name]["mean_reward"] == pytest.approx(direct.metrics["mean_reward"])


@pytest.mark.parametrize("env", ["MarketMaking-v0", "Execution-v0"])
def test_report_renders_offline_in_a_real_browser(tmp_path: Path, env: str, chromium) -> None:
    from test_report import CHARTS_DRAWN

    assert backtest(["--env", env, "--episodes", "16", "--out", str(tmp_path)]) == 0
    path = tmp_path / "report.html"
    with chromium.open(path.resolve().as_uri()) as loaded:
        page = loaded.page
        page.wait_for_function("document.querySelectorAll('div.chart').length > 0")
        page.wait_for_timeout(1000)
        drawn = page.evaluate(CHARTS_DRAWN)
        assert drawn and all(drawn) and len(drawn) == (6 if env == "MarketMaking-v0" else 3), drawn
        assert loaded.problems() == []
        assert env in page.title()
        assert "share of closed-form optimum" in page.inner_text("body")
