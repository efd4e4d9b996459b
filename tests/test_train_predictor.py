"""``python -m experiments.train MODEL``: config from YAML and --set, a tiny run of every model, the run folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from predictor_fixtures import FEATURES, TINY_PARAMS

from agents.predictors.models import MODELS
from agents.registry import load_policy
from envs.sim.execution import ConfigError
from experiments.predictor_config import PredictorConfig, load_config, parse_sets
from experiments.train import build_parser, main
from experiments.train_predictor import load_market, train

TINY = {
    "data": "synthetic:n_symbols=2,n_days=520,seed=3",
    "features": list(FEATURES),
    "regime_window": 10,
    "regime_iterations": 5,
    "train_size": 200,
    "test_size": 80,
    "horizon": 5,
    "threshold": 0.55,
    "min_regime_samples": 40,
    "progress": False,
}


def test_help_lists_every_model_and_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(model in out for model in (*MODELS, "ppo"))
    for model in MODELS:
        with pytest.raises(SystemExit):
            build_parser().parse_args([model, "--help"])
        out = capsys.readouterr().out
        assert "--set KEY=VALUE" in out and "threshold" in out and "train_size" in out


def test_yaml_then_set_overrides(tmp_path: Path) -> None:
    path = tmp_path / "xgb.yaml"
    path.write_text("train_size: 500\nthreshold: 0.65\nparams: {n_estimators: 50, max_depth: 2}\nhorizons: [1, 5]\n")
    config = load_config(path, parse_sets(["threshold=0.7", "params.max_depth=4", "horizon=5", "symbols=ON,SYN1"]),
                         model="xgboost")
    assert config.train_size == 500 and config.threshold == 0.7 and config.horizons == (1, 5)
    assert config.params == {"n_estimators": 50, "max_depth": 4}
    assert config.symbols == ("ON", "SYN1")
    reloaded = tmp_path / "again.yaml"
    reloaded.write_text(config.to_yaml())
    assert load_config(reloaded) == config


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["threshold=0.5"], "threshold must be in"),
        (["horizon=7"], "horizon must be one of"),
        (["train_size=many"], "train_size must be int"),
        (["sizing=martingale"], "sizing must be one of"),
        (["colour=red"], "unknown PredictorConfig field"),
        (["switch=true", "regime=false"], "switch needs regime"),
        (["noequals"], "key=value"),
        (["regime.window=5"], "only params"),
    ],
)
def test_bad_config_names_the_field(sets: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, parse_sets(sets), model="xgboost")


def test_unknown_model_is_rejected() -> None:
    with pytest.raises(ConfigError, match="model must be one of"):
        PredictorConfig(model="svm")


@pytest.mark.parametrize("model", MODELS)
def test_tiny_training_run_of_each_model(model: str, tmp_path: Path) -> None:
    config = PredictorConfig(model=model, params=TINY_PARAMS[model], backtest=False, **TINY)
    result = train(config, tmp_path / model)
    assert set(result.metrics["oos"]) == {"h1", "h5", "h20"}
    # Walk-forward over train and validation (the first 80% of the 520 bars): (416 - 200) // 80 folds.
    assert len(result.metrics["folds"]) == 2
    policy = load_policy(result.policy_dir)
    weights = policy.act_batch(load_market(config))
    assert weights.shape == (520, 2) and np.isfinite(weights).all()


def test_the_run_counts_the_trading_rules_it_chose_among(tmp_path: Path) -> None:
    from agents.predictors.scoring import THRESHOLDS
    from experiments.sealed import trials_of

    config = PredictorConfig(model="xgboost", params=TINY_PARAMS["xgboost"], backtest=False,
                             **{**TINY, "horizon": None, "threshold": None})
    result = train(config, tmp_path / "chosen")
    candidates = len(config.horizons) * len(THRESHOLDS)
    assert result.metrics["rule"]["candidates"] == candidates == trials_of(result.run_dir) > 1
    fixed = train(PredictorConfig(model="xgboost", params=TINY_PARAMS["xgboost"], backtest=False, **TINY),
                  tmp_path / "fixed")
    assert trials_of(fixed.run_dir) == 1


def test_command_line_run_writes_the_run_folder_and_backtests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(PredictorConfig(model="xgboost", params=TINY_PARAMS["xgboost"], **TINY).to_yaml())
    code = main(["xgboost", "--config", str(config_file), "--set", f"runs_dir={tmp_path / 'runs'}",
                 "--set", "run_name=tiny", "--set", "switch=true"])
    assert code == 0
    run = tmp_path / "runs" / "xgboost" / "tiny"
    assert {p.name for p in run.iterdir()} >= {"config.yaml", "metrics.json", "policy", "tb", "report"}
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["backtest"]["policies"]) == {"xgboost", "buy_and_hold", "consensus"}
    assert metrics["backtest"]["start"] == metrics["folds"][0]["test"][0]
    assert (run / "report" / "report.html").is_file()
    assert load_config(run / "config.yaml").switch is True

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"oos/h20/accuracy", "oos/h1/log_loss", "oos/h5/ic", "oos_total/h20/ic", "backtest/xgboost/sharpe"} <= tags
    assert len(events.Scalars("oos/h1/accuracy")) == len(metrics["folds"])

    out = capsys.readouterr().out
    assert "out-of-sample forecasts" in out and "buy_and_hold" in out and "consensus" in out


def test_train_prints_no_test_period_score(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Changing every test-period bar changes nothing train prints or fits: the test period is sealed."""
    from envs.data.market_data import MarketData
    from envs.data.sources import load_data, write_csv
    from experiments.spec import ExperimentSpec

    market = load_data(TINY["data"])
    _, val, test = ExperimentSpec().splits.periods(market.index)
    values = market.values.copy()
    values[test.start :, :, :4] *= np.linspace(1.0, 1.5, test.stop - test.start)[:, None, None]
    changed = MarketData(values, market.index, market.symbols)
    outputs = []
    for name, data in (("same", market), ("changed", changed)):
        write_csv(data, tmp_path / f"{name}.csv")
        config = PredictorConfig(model="xgboost", params=TINY_PARAMS["xgboost"],
                                 **{**TINY, "data": f"csv:{tmp_path / name}.csv"})
        (tmp_path / f"{name}.yaml").write_text(config.to_yaml())
        assert main(["xgboost", "--config", str(tmp_path / f"{name}.yaml"), "--set", f"runs_dir={tmp_path / name}",
                     "--set", "run_name=r"]) == 0
        printed = capsys.readouterr().out
        outputs.append([line for line in printed.splitlines() if str(tmp_path) not in line])
        metrics = json.loads((tmp_path / name / "xgboost" / "r" / "metrics.json").read_text())
        # Every fold forecast bars before the test period; the backtest ended with validation.
        assert all(f["test"][1] < str(market.index[test.start].date()) for f in metrics["folds"])
        assert metrics["backtest"]["end"] == str(market.index[val.stop - 1].date())
    assert outputs[0] == outputs[1] and any("accuracy" in line for line in outputs[0])
