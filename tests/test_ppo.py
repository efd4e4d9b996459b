"""PPO training: config loading, period split, a tiny end-to-end run, the saved agent as a Policy."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from rl_fixtures import TINY_RL

from agents.ppo import SB3Agent, load_agent
from agents.registry import RegistryError, load_policy
from agents.rl_eval import Period, evaluate, split_periods
from envs.data.market_data import MarketData
from envs.data.sources import load_data, write_parquet
from envs.features import DEFAULT_FEATURES
from envs.sim.execution import ConfigError
from experiments import train as train_cli
from experiments.rl_config import (
    RLConfig,
    field_help,
    load_config,
    overrides_from_args,
    resolve,
)
from experiments.sealed import trials_of
from experiments.spec import run_spec
from experiments.train_rl import eval_env_factory, load_market, train


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RLConfig, Path, dict]:
    runs = tmp_path_factory.mktemp("runs")
    config = RLConfig(**TINY_RL, runs_dir=str(runs), run_name="tiny")
    result = train(config)
    return config, result.run_dir, result.metrics


# ---------------------------------------------------------------------------------------------- config
def test_every_field_has_help() -> None:
    assert set(field_help()) == set(RLConfig.__dataclass_fields__)


def test_yaml_then_overrides_precedence(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"learning_rate": 1e-4, "n_steps": 64, "net_arch": [32, 32]}))
    config = load_config(path, {"n_steps": "128"}, algo="a2c")
    assert (config.algo, config.learning_rate, config.n_steps, config.net_arch) == ("a2c", 1e-4, 128, (32, 32))


def test_config_round_trips_through_yaml(tmp_path: Path) -> None:
    config = RLConfig(features=("ret_1", "rvol_20"), net_arch=(8, 8), symbol="SYN1")
    path = tmp_path / "config.yaml"
    path.write_text(config.to_yaml())
    assert load_config(path) == config


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"gamma": 1.5}, "gamma"),
        ({"num_envs": 0}, "num_envs"),
        ({"n_steps": "many"}, "n_steps"),
        ({"reward": "profit"}, "reward"),
        ({"net_arch": ()}, "net_arch"),
        ({"train_fraction": 0.7, "val_fraction": 0.3}, "train_fraction"),
        ({"algo": "sac", "action_mode": "discrete"}, "action_mode"),
    ],
)
def test_bad_values_name_the_field(changes: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        RLConfig(**changes)


def test_unknown_field_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("learning_rte: 0.001\n")
    with pytest.raises(ConfigError, match="learning_rte"):
        load_config(path)


def test_command_line_flags_reach_the_config() -> None:
    args = train_cli.build_parser().parse_args(
        ["ppo", "--timesteps", "2048", "--net-arch", "32,16", "--norm-obs", "false"]
    )
    config = load_config(args.config, overrides_from_args(args), algo=args.algo)
    assert (config.algo, config.total_timesteps, config.net_arch, config.norm_obs) == ("ppo", 2048, (32, 16), False)


def test_help_lists_the_fields(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        train_cli.main(["ppo", "--help"])
    out = capsys.readouterr().out
    assert "--learning-rate" in out and "--timesteps" in out and "--episode-length" in out


def test_help_shows_the_defaults_a_run_uses(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    # `train ppo` runs experiments/configs/ppo.yaml's values, so its help shows them, not the dataclass's;
    # a2c has no such file.
    monkeypatch.setenv("COLUMNS", "1000")  # argparse wraps at the terminal's width, mid-word for long ones
    helps = {}
    for algo in ("ppo", "a2c"):
        with pytest.raises(SystemExit):
            train_cli.main([algo, "--help"])
        helps[algo] = " ".join(capsys.readouterr().out.split())
    ppo = load_config(None, {}, algo="ppo")
    assert ppo.gamma != RLConfig.gamma and ppo.total_timesteps != RLConfig.total_timesteps
    assert f"(default: {ppo.gamma}, from experiments/configs/ppo.yaml)" in helps["ppo"]
    assert f"(default: {ppo.total_timesteps}, from experiments/configs/ppo.yaml)" in helps["ppo"]
    assert f"GAE lambda (ppo, a2c). (default: {RLConfig.gae_lambda})" in helps["ppo"]
    assert f"discount factor. (default: {RLConfig.gamma})" in helps["a2c"]


# ---------------------------------------------------------------------------------------------- periods
def test_periods_are_in_time_order_and_tile_the_data() -> None:
    train, val, test = split_periods(1000, 0.6, 0.2)
    assert (train.start, train.stop, val.start, val.stop, test.start, test.stop) == (0, 600, 600, 800, 800, 1000)


def test_evaluation_never_sees_bars_after_the_period() -> None:
    config = RLConfig(**TINY_RL)
    data = load_market(config)
    period = Period("test", 200, 300)
    changed = data.values.copy()
    changed[300:] *= 3.0
    future_changed = MarketData(changed, data.index, data.symbols, data.calendars)
    policy = _AlwaysLong()
    a = evaluate(policy, data, period, eval_env_factory(config))
    b = evaluate(policy, future_changed, period, eval_env_factory(config))
    assert a.equity.equals(b.equity)
    assert a.stats.sharpe == b.stats.sharpe


class _AlwaysLong:
    name = "always_long"

    def reset(self, seed: int | None = None) -> None:
        pass

    def act(self, obs: np.ndarray, info: dict) -> np.ndarray:
        return np.ones(1, dtype=np.float32)


# ---------------------------------------------------------------------------------------------- a tiny run
def test_run_folder_has_everything(tiny_run: tuple[RLConfig, Path, dict]) -> None:
    _, run_dir, metrics = tiny_run
    for name in ("config.yaml", "policy.yaml", "metrics.json", "best/model.zip", "best/vecnormalize.pkl",
                 "final/model.zip", "final/vecnormalize.pkl"):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "checkpoints").glob("ppo_*_steps.zip"))
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["timesteps"] == 512
    assert [h["timesteps"] for h in saved["validation_history"]] == [256, 512]
    # Training selects on validation and scores nothing on the sealed test period.
    assert set(saved["best"]) == {"validation"} and set(saved["baselines"]["buy_and_hold"]) == {"validation"}
    assert set(saved["baselines"]) == {"buy_and_hold"}
    periods = saved["periods"]
    assert periods["train"]["end"] < periods["validation"]["start"] < periods["test"]["start"]
    # The report backtests the best model over the validation period (the test period stays sealed): the same
    # Sharpe as metrics.json's validation score.
    assert (run_dir / "report.html").is_file() and (run_dir / "trades.csv").is_file()
    stats = json.loads((run_dir / "stats.json").read_text())
    agent, bot = stats[f"ppo:{run_dir.name}"], stats["buy_and_hold"]
    assert agent["start"][:10] == periods["validation"]["start"][:10] == bot["start"][:10]
    assert agent["sharpe"] == pytest.approx(saved["best"]["validation"]["sharpe"], abs=1e-6)


def test_the_run_counts_its_validation_checks_as_trials(tiny_run: tuple[RLConfig, Path, dict]) -> None:
    _, run_dir, metrics = tiny_run
    # The best model is the best of every validation check: each one counts for the Deflated Sharpe Ratio.
    checks = len(metrics["validation_history"])
    assert checks > 1 and trials_of(run_dir) == checks
    assert json.loads((run_dir / "trials.json").read_text())["validation_checks"] == checks


def test_saved_config_reloads(tiny_run: tuple[RLConfig, Path, dict]) -> None:
    config, run_dir, _ = tiny_run
    assert load_config(run_dir / "config.yaml") == resolve(config)[0]
    assert run_spec(run_dir) == resolve(config)[1]


def test_tensorboard_has_trading_metrics(tiny_run: tuple[RLConfig, Path, dict]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, run_dir, _ = tiny_run
    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"images": 0}).Reload()
    scalars = set(events.Tags()["scalars"])
    for key in ("sharpe", "total_return", "max_drawdown", "turnover", "best_sharpe"):
        assert f"validation/{key}" in scalars
    assert "time/sps_recent" in scalars and "train/value_loss" in scalars
    assert "validation/equity_curve" in events.Tags()["images"]


def test_saved_agent_loads_as_policy_and_reproduces_validation(tiny_run: tuple[RLConfig, Path, dict]) -> None:
    config, run_dir, metrics = tiny_run
    agent = load_policy(run_dir)
    assert isinstance(agent, SB3Agent) and agent.name == "ppo:tiny"
    data = load_market(config)
    _, val, _ = run_spec(run_dir).splits.periods(data.index)
    again = evaluate(agent, data, val, eval_env_factory(config)).scalars()
    best = next(h for h in metrics["validation_history"] if h["timesteps"] == metrics["best_timesteps"])
    # The reloaded best model (with its VecNormalize statistics) trades exactly as it did when selected.
    assert again["sharpe"] == pytest.approx(best["sharpe"], rel=1e-9)
    assert again["total_return"] == pytest.approx(metrics["best"]["validation"]["total_return"], rel=1e-12)


def test_agent_acts_in_weights_and_rejects_other_observations(tiny_run: tuple[RLConfig, Path, dict]) -> None:
    _, run_dir, _ = tiny_run
    agent = load_agent(run_dir)
    obs = np.zeros(agent.model.observation_space.shape, dtype=np.float32)
    action = agent.act(obs, {})
    # A full-conviction action holds the spec's position size (sizing.fraction, 10%), like a rule bot.
    assert action.shape == (1,) and action[0] in (0.0, pytest.approx(0.1))
    kwargs = agent.env_options
    assert kwargs["action_mode"] == "weights" and kwargs["window_size"] == 2
    assert kwargs["features"].features == TINY_RL["features"]
    with pytest.raises(ValueError, match="window_size"):
        agent.act(np.zeros(7, dtype=np.float32), {})


def test_a_discrete_agent_leaves_its_position_only_for_a_likely_enough_choice(
    tiny_run: tuple[RLConfig, Path, dict],
) -> None:
    _, run_dir, _ = tiny_run
    agent = load_agent(run_dir)
    rng = np.random.default_rng(0)
    observations = rng.normal(0.0, 2.0, (200, *agent.model.observation_space.shape)).astype(np.float32)
    for held in (0.0, 0.1):  # flat, or long at the spec's 10% position size
        observations[:, -3] = held
        normalized = agent.normalizer.normalize_obs(observations) if agent.normalizer else observations
        probs = agent.model.policy.get_distribution(agent.model.policy.obs_to_tensor(normalized)[0])
        p_long = probs.distribution.probs.detach().numpy()[:, 1]
        switch = float(np.median(np.maximum(p_long, 1 - p_long)))
        plain = [agent.act(o, {})[0] for o in observations]
        agent.switch_prob = switch
        sticky = [agent.act(o, {})[0] for o in observations]
        agent.switch_prob = 0.0
        sure = np.maximum(p_long, 1 - p_long) >= switch
        # The most likely choice where it is at least switch_prob likely, the held position elsewhere.
        np.testing.assert_allclose(sticky, np.where(sure, plain, held), atol=1e-7)
        assert (~sure).any() and (np.asarray(plain)[~sure] != held).any()
    with pytest.raises(ValueError, match="switch_prob"):
        SB3Agent(agent.model, {**agent.env_kwargs, "switch_prob": 1.0})


def test_a_discrete_agents_choice_is_sb3s_deterministic_prediction(tiny_run: tuple[RLConfig, Path, dict]) -> None:
    _, run_dir, _ = tiny_run
    agent = load_agent(run_dir)
    observations = np.random.default_rng(1).normal(0.0, 2.0, (300, *agent.model.observation_space.shape))
    normalized = agent.normalizer.normalize_obs(observations.astype(np.float32))
    predicted, _ = agent.model.predict(normalized, deterministic=True)
    acted = np.array([agent.act(o, {})[0] for o in observations.astype(np.float32)])
    # act takes the argmax from one network call; SB3's predict gives the same choices.
    np.testing.assert_array_equal(acted > 0, predicted == 1)
    assert 0 < (predicted == 1).sum() < len(predicted)


def test_bad_saved_agent_errors(tiny_run: tuple[RLConfig, Path, dict], tmp_path: Path) -> None:
    _, run_dir, _ = tiny_run
    manifest = yaml.safe_load((run_dir / "policy.yaml").read_text())
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump({**manifest, "model": "missing.zip"}))
    with pytest.raises(RegistryError, match="missing.zip"):
        load_policy(tmp_path)
    with pytest.raises(RegistryError, match="deterministic"):
        load_policy(run_dir, {"deterministic": "maybe"})


def test_same_seed_same_run(tiny_run: tuple[RLConfig, Path, dict], tmp_path: Path) -> None:
    config, _, metrics = tiny_run
    again = train(config.replace(runs_dir=str(tmp_path), run_name="again")).metrics
    assert again["validation_history"] == metrics["validation_history"]


def test_too_little_data_is_a_clear_error(tmp_path: Path) -> None:
    config = RLConfig(**{**TINY_RL, "data": "synthetic:n_days=60,n_symbols=1"}, runs_dir=str(tmp_path))
    with pytest.raises(ValueError, match="warm-up"):
        train(config)


def test_portfolio_env_trains(tmp_path: Path) -> None:
    config = RLConfig(
        **{**TINY_RL, "data": "synthetic:n_days=360,n_symbols=2,seed=3", "total_timesteps": 256},
        env="Portfolio-v0", action_mode="continuous", runs_dir=str(tmp_path), run_name="pf",
    )
    result = train(config)
    agent = load_agent(result.run_dir)
    assert agent.env_kwargs["symbols"] == list(load_data(config.data).symbols)
    assert np.isfinite(result.metrics["best"]["validation"]["total_return"])


def test_train_symbols_learn_from_every_symbol(tmp_path: Path) -> None:
    config = RLConfig(
        **{**TINY_RL, "data": "synthetic:n_days=360,n_symbols=3,seed=3", "total_timesteps": 256},
        train_symbols=("all",), runs_dir=str(tmp_path), run_name="multi",
    )
    result = train(config)
    assert result.metrics["timesteps"] == 256
    assert load_agent(result.run_dir).env_kwargs["symbol"] == "SYN0"
    with pytest.raises(ValueError, match="SYN9"):
        train(config.replace(train_symbols=("SYN0", "SYN9")))
    with pytest.raises(ConfigError, match="train_symbols"):
        config.replace(env="Portfolio-v0", action_mode="continuous", train_symbols=("SYN0",))
    # [all], the default config's, is what Portfolio-v0 trades anyway (`train ppo --env Portfolio-v0` works).
    assert config.replace(env="Portfolio-v0", action_mode="continuous").train_symbols == ("all",)


def test_the_kept_model_is_the_best_mean_sharpe_over_every_training_symbols_validation(tmp_path: Path) -> None:
    config = RLConfig(
        **{**TINY_RL, "data": "synthetic:n_days=360,n_symbols=3,seed=3", "total_timesteps": 768},
        train_symbols=("all",), runs_dir=str(tmp_path), run_name="select",
    )
    metrics = train(config).metrics
    history = metrics["validation_history"]
    best = max(history, key=lambda h: h["selection_sharpe"])
    assert metrics["best_timesteps"] == best["timesteps"]
    # The kept model, reloaded, scores that mean over the three symbols' validation periods (same dates).
    data = load_data(config.data)
    _, val, _ = run_spec(tmp_path / "ppo" / "select").splits.periods(data.index)
    agent, make_env = load_agent(tmp_path / "ppo" / "select"), eval_env_factory(config)
    sharpes = [evaluate(agent, data.select([s]), val, make_env).stats.sharpe for s in data.symbols]
    assert best["selection_sharpe"] == pytest.approx(np.mean(np.nan_to_num(sharpes)), rel=1e-9)
    assert best["sharpe"] == pytest.approx(np.nan_to_num(sharpes[0]), rel=1e-9)
    assert metrics["best"]["validation"]["sharpe"] == pytest.approx(best["sharpe"], rel=1e-9)

    # The other symbols' test period is never seen by the selection: changing it moves no validation score.
    for name, future in (("same", 1.0), ("changed", 2.5)):
        values = data.values.copy()
        values[val.stop :, 1:] *= future
        write_parquet(MarketData(values, data.index, data.symbols, data.calendars), tmp_path / f"{name}.parquet")
    runs = {
        name: train(config.replace(data=f"parquet:{tmp_path / name}.parquet", run_name=name)).metrics
        for name in ("same", "changed")
    }
    loaded = {name: load_data(f"parquet:{tmp_path / name}.parquet").values for name in runs}
    assert not np.array_equal(loaded["same"], loaded["changed"])
    assert runs["same"]["validation_history"] == runs["changed"]["validation_history"]
    assert len({h["selection_sharpe"] for h in runs["same"]["validation_history"]}) > 1


def test_training_metrics_match_the_backtest_engine(tiny_run: tuple[RLConfig, Path, dict]) -> None:
    from experiments.engine import run_backtest
    from experiments.spec import backtest_config

    config, run_dir, metrics = tiny_run
    agent = load_policy(run_dir)
    spec = run_spec(run_dir)
    data = load_market(config)
    _, val, _ = spec.splits.periods(data.index)
    result = run_backtest(agent, data.iloc(slice(0, val.stop)), backtest_config(spec, start=val.start))
    # The backtest engine under the run's spec (risk layer on) gives the number metrics.json reports.
    assert result.stats.sharpe == pytest.approx(metrics["best"]["validation"]["sharpe"], rel=1e-9)
    assert result.stats.total_return == pytest.approx(metrics["best"]["validation"]["total_return"], rel=1e-12)


def test_evaluate_is_the_one_place_for_test_scores_and_counts_them(
    tiny_run: tuple[RLConfig, Path, dict], capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    from experiments import evaluate as evaluate_cli
    from experiments.sealed import evaluation_count

    _, run_dir, _ = tiny_run
    before = evaluation_count(run_dir)
    assert evaluate_cli.main([str(run_dir), "--out", str(tmp_path)]) == 0
    assert evaluate_cli.main([str(run_dir), "--out", str(tmp_path), "--spread-bps", "4"]) == 0
    printed = capsys.readouterr().out
    assert f"test evaluation #{before + 2} of this run" in printed
    assert "execution.spread_bps: 0.0 -> 4.0" in printed and "buy & hold, no rules" in printed
    # The Deflated Sharpe Ratio counts the run's validation checks (and the table's other columns).
    match = re.search(r"DSR \((\d+) trials\)", printed)
    assert match and int(match.group(1)) >= trials_of(run_dir) > 1
    assert evaluation_count(run_dir) == before + 2
    # A validation look is not counted.
    assert evaluate_cli.main([str(run_dir), "--out", str(tmp_path), "--period", "validation"]) == 0
    assert evaluation_count(run_dir) == before + 2


def test_extra_markets_join_the_training_data(tmp_path: Path) -> None:
    config = RLConfig(
        **{**TINY_RL, "total_timesteps": 256},
        extra_train_data=("synthetic:n_days=200,n_symbols=1,seed=4", "synthetic:n_days=200,n_symbols=1,seed=5"),
        runs_dir=str(tmp_path), run_name="sim",
    )
    assert train(config).metrics["timesteps"] == 256
    args = train_cli.build_parser().parse_args(
        ["ppo", "--extra-train-data", "synthetic:seed=1,n_days=300;synthetic:seed=2"]
    )
    parsed = load_config(None, overrides_from_args(args))
    assert parsed.extra_train_data == ("synthetic:seed=1,n_days=300", "synthetic:seed=2")
    with pytest.raises(ConfigError, match="extra_train_data"):
        config.replace(extra_train_data=(config.data,))


def test_anneal_lr_decays_the_learning_rate_to_zero_over_the_run(tmp_path: Path) -> None:
    config = RLConfig(**{**TINY_RL, "total_timesteps": 256}, learning_rate=1e-3, anneal_lr=True,
                      runs_dir=str(tmp_path), run_name="anneal")
    run_dir = train(config).run_dir
    model = load_agent(run_dir).model
    assert model.lr_schedule(1.0) == pytest.approx(1e-3) and model.lr_schedule(0.0) == 0.0
    # Two rollouts of 128 steps: the second update ran at half the initial rate (progress remaining 0.5).
    assert model.policy.optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)
    assert RLConfig(**TINY_RL).anneal_lr is False


@pytest.mark.parametrize(("algo", "mode"), [("a2c", "discrete"), ("sac", "weights")])
def test_other_algorithms_through_the_same_command(algo: str, mode: str, tmp_path: Path) -> None:
    config = RLConfig(
        **{**TINY_RL, "total_timesteps": 256, "learning_starts": 64},
        algo=algo, action_mode=mode, runs_dir=str(tmp_path), run_name=algo,
    )
    run_dir = train(config).run_dir
    agent = load_policy(run_dir)
    assert isinstance(agent, SB3Agent) and agent.name == f"{algo}:{algo}"
    action = agent.act(np.zeros(agent.model.observation_space.shape, dtype=np.float32), {})
    assert action.shape == (1,) and 0.0 <= action[0] <= 1.0


def test_agent_saved_without_observation_settings_gets_the_old_defaults(
    tiny_run: tuple[RLConfig, Path, dict],
) -> None:
    _, run_dir, _ = tiny_run
    agent = load_agent(run_dir)
    older = {k: v for k, v in agent.env_kwargs.items() if k not in ("features", "window_size")}
    options = SB3Agent(agent.model, older, None).env_options
    assert options["window_size"] == 10 and options["features"].features == DEFAULT_FEATURES


def test_several_seeds_report_mean_and_spread(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    flags = ["--data", TINY_RL["data"], "--features", ",".join(TINY_RL["features"]), "--window-size", "2",
             "--episode-length", "40", "--num-envs", "4", "--n-steps", "32", "--batch-size", "64", "--n-epochs", "2",
             "--net-arch", "16", "--timesteps", "256", "--eval-freq", "128", "--checkpoint-freq", "256",
             "--progress", "false", "--baselines", "buy_and_hold", "--runs-dir", str(tmp_path), "--run-name", "s"]
    assert train_cli.main(["ppo", *flags, "--seeds", "0,1"]) == 0
    out = capsys.readouterr().out
    assert "agent's validation scores over 2 seeds" in out and "std (across seeds)" in out
    assert "test sharpe" not in out.lower()
    checks = [len(json.loads((tmp_path / "ppo" / f"s-seed{seed}" / "metrics.json").read_text())["validation_history"])
              for seed in (0, 1)]
    for seed in (0, 1):
        assert run_spec(tmp_path / "ppo" / f"s-seed{seed}").seeds == (seed,)
        # Evaluating one of them later counts every validation check of both seeds as configurations tried.
        assert trials_of(tmp_path / "ppo" / f"s-seed{seed}") == sum(checks) > 2


def test_paper_trading_a_run_uses_its_spec(tiny_run: tuple[RLConfig, Path, dict], capsys: pytest.CaptureFixture) -> None:
    from experiments.paper import main as paper_main

    _, run_dir, _ = tiny_run
    # The run's stored spec (data, costs, risk, cash) is the paper run's; a flag changes one field, printed.
    assert paper_main([str(run_dir), "--symbols", "SYN0", "--quiet", "--spread-bps", "3"]) == 0
    out = capsys.readouterr().out
    assert "spec: execution.spread_bps: 0.0 -> 3.0" in out and "data.data" not in out
    assert "bar(s) decided" in out


def test_training_steps_are_whole_rollouts_so_the_progress_bar_ends_at_its_total() -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from experiments.train_rl import whole_rollouts

    model = PPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2), n_steps=8, batch_size=16, device="cpu")
    assert whole_rollouts(model, 20) == 32 and whole_rollouts(model, 32) == 32
    model.learn(whole_rollouts(model, 20))
    assert model.num_timesteps == 32  # what SB3 trains for a request of 20 steps
