"""Hyper-parameter sweeps with Ray Tune: ``python -m experiments.tune ppo --samples N``.

Each trial is one :func:`experiments.train_rl.train` run with sampled learning rate, entropy coefficient,
``n_steps``, ``gamma``, network size and reward. After every validation evaluation the trial reports
``validation_sharpe`` (and the other validation metrics) to Tune; an ASHA scheduler stops the weak trials
early, comparing them at the same number of environment steps. A trial checkpoints its run folder
whenever its validation Sharpe improves, so the best agent can be fetched from a cluster too.

Ray starts locally with every core of this machine unless ``--address`` joins a running cluster. Each trial
asks for ``--cpus-per-trial`` CPUs (1 by default) and torch uses that many threads, so trials never
oversubscribe the cores. Every trial writes TensorBoard logs in its run folder (``tensorboard --logdir`` on
the sweep folder shows them all, plus Tune's own).

Output, in ``runs_dir/tune/<name>/``: Ray's experiment folder, ``trials.csv`` (one row per trial),
``best_config.yaml`` (the winning :class:`~experiments.rl_config.RLConfig`, usable with ``train --config``) and
``best_agent/`` (a loadable run folder: ``python -m experiments.backtest runs/tune/<name>/best_agent``).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from agents.rl_eval import Evaluation
from envs.environments.rewards import REWARDS
from experiments.cli import Parser, command
from experiments.rl_config import (
    RLConfig,
    add_config_arguments,
    load_config,
    overrides_from_args,
    resolve,
)
from experiments.sealed import write_trials
from experiments.spec import (
    ExperimentSpec,
    add_spec_arguments,
    save_spec,
    spec_from_args,
)
from experiments.train_rl import train

logger = logging.getLogger(__name__)

METRIC = "best_validation_sharpe"
"""What Tune ranks and ASHA compares: the trial's best validation Sharpe so far, the same figure the trial's
run keeps its best model by, so Ray's status table and this command report one "best"."""
RUN_SUBDIR = "run"
# Everything a loadable agent needs; checkpoints skip TensorBoard logs and intermediate checkpoints.
AGENT_FILES = ("policy.yaml", "config.yaml", "spec.yaml", "best")

NO_DEFAULT_LOGGERS = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"

Reporter = Callable[[dict[str, float], Path | None], None]


def search_space() -> dict[str, Any]:
    """The sampled fields of :class:`RLConfig` (Ray Tune domains)."""
    from ray import tune

    return {
        "learning_rate": tune.loguniform(1e-5, 1e-3),
        "ent_coef": tune.loguniform(1e-4, 5e-2),
        "n_steps": tune.choice([64, 128, 256, 512]),
        "gamma": tune.choice([0.9, 0.95, 0.99, 0.995]),
        "net_arch": tune.choice([[32, 32], [64, 64], [128, 128]]),
        "reward": tune.choice(list(REWARDS)),
    }


def run_trial(
    params: dict[str, Any], base: RLConfig, run_dir: Path, report: Reporter, spec: ExperimentSpec | None = None
) -> dict[str, Any]:
    """Train ``base`` with ``params`` applied, reporting each validation evaluation.

    :param params: sampled field values.
    :param base: the config every trial starts from.
    :param spec: the experiment spec every trial trains and is selected under (default: the defaults).
    :param run_dir: the trial's run folder.
    :param report: called with the metrics and, when the validation Sharpe improved, a folder holding the
        agent so far (to checkpoint).
    :returns: the run's final metrics.
    """
    config = base.replace(**params, progress=False, run_name=run_dir.name, runs_dir=str(run_dir.parent))
    best = -math.inf

    def on_evaluation(timesteps: int, evaluation: Evaluation, sharpe: float) -> None:
        nonlocal best
        improved = sharpe > best
        best = max(best, sharpe)
        metrics = {METRIC: best, "validation_sharpe": sharpe, "timesteps": timesteps}
        metrics.update({f"validation_{k}": v for k, v in evaluation.scalars().items() if math.isfinite(v)})
        if improved:
            with tempfile.TemporaryDirectory() as folder:
                for name in AGENT_FILES:
                    _copy(run_dir / name, Path(folder) / name)
                report(metrics, Path(folder))
        else:
            report(metrics, None)

    return train(config, run_dir=run_dir, on_evaluation=on_evaluation, spec=spec).metrics


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy2(source, target)


def _trainable(params: dict[str, Any], base: RLConfig, spec: ExperimentSpec | None = None) -> None:
    """Ray Tune function trainable: one trial, run folder inside the trial folder."""
    import torch
    from ray import tune

    torch.set_num_threads(base.torch_threads)
    run_dir = Path(tune.get_context().get_trial_dir()) / RUN_SUBDIR

    def report(metrics: dict[str, float], folder: Path | None) -> None:
        checkpoint = tune.Checkpoint.from_directory(str(folder)) if folder is not None else None
        tune.report(metrics, checkpoint=checkpoint)

    run_trial(params, base, run_dir, report, spec)


def trial_name(trial: Any) -> str:
    """A readable trial name from its sampled values, e.g.
    ``t00003_lr=3.2e-04_ent=1.1e-03_n=256_g=0.99_net=64x64_log_return`` (Ray's default abbreviates values to
    ``learning_rate=0.0000``).

    :param trial: the Ray Tune trial.
    """
    c = trial.config
    net = "x".join(str(n) for n in c.get("net_arch", []))
    return (f"t{trial.trial_id.split('_')[-1]}_lr={c['learning_rate']:.1e}_ent={c['ent_coef']:.1e}_n={c['n_steps']}"
            f"_g={c['gamma']}_net={net}_{c['reward']}")


def sweep(
    base: RLConfig,
    samples: int,
    name: str | None = None,
    address: str | None = None,
    cpus_per_trial: int = 1,
    grace_period: int | None = None,
    spec: ExperimentSpec | None = None,
) -> Path:
    """Run the sweep and write ``best_config.yaml``, ``best_agent/`` and ``trials.csv``.

    :param base: the config every trial starts from (its ``total_timesteps`` is each trial's budget).
    :param samples: number of trials.
    :param name: sweep name (default: ``<algo>-<date>-<time>``).
    :param address: Ray cluster address to join; ``None`` starts a local Ray on this machine's cores.
    :param cpus_per_trial: CPUs reserved per trial (torch uses as many threads).
    :param grace_period: steps every trial runs before ASHA may stop it (default: a quarter of the budget,
        at least one evaluation).
    :param spec: the experiment spec (data, splits, costs, risk, sizing) of every trial.
    :returns: the sweep folder.
    """
    import ray
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
    from ray.tune.schedulers import ASHAScheduler

    if samples < 1:
        raise ValueError(f"--samples must be >= 1, got {samples}")
    if cpus_per_trial < 1:
        raise ValueError(f"--cpus-per-trial must be >= 1, got {cpus_per_trial}")
    name = name or f"{base.algo}-{time.strftime('%Y%m%d-%H%M%S')}"
    storage = Path(base.runs_dir, "tune").resolve()
    base = base.replace(torch_threads=cpus_per_trial)
    grace = grace_period or max(base.eval_freq, base.total_timesteps // 4)
    if address is None:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    else:
        ray.init(address=address, log_to_driver=False, ignore_reinit_error=True)
    try:
        scheduler = ASHAScheduler(
            time_attr="timesteps", max_t=base.total_timesteps, grace_period=min(grace, base.total_timesteps),
            reduction_factor=2,
        )
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(_trainable, base=base, spec=spec), {"cpu": cpus_per_trial}),
            param_space=search_space(),
            tune_config=tune.TuneConfig(
                metric=METRIC, mode="max", scheduler=scheduler, num_samples=samples,
                trial_name_creator=trial_name, trial_dirname_creator=trial_name,
            ),
            # Ray's own TensorBoard logger would show every trial a second time next to the run's tb/ logs:
            # keep only its CSV and JSON results (read back by the result grid).
            run_config=tune.RunConfig(
                name=name, storage_path=str(storage), verbose=1,
                callbacks=[CSVLoggerCallback(), JsonLoggerCallback()],
            ),
        )
        previous = os.environ.get(NO_DEFAULT_LOGGERS)
        os.environ[NO_DEFAULT_LOGGERS] = "1"
        try:
            results = tuner.fit()
        finally:
            if previous is None:
                os.environ.pop(NO_DEFAULT_LOGGERS, None)
            else:
                os.environ[NO_DEFAULT_LOGGERS] = previous
    finally:
        ray.shutdown()
    return write_best(results, base, storage / name, spec)


def write_best(results: Any, base: RLConfig, folder: Path, spec: ExperimentSpec | None = None) -> Path:
    """Write the best trial's config and agent (with the spec and the number of trials, which the
    Deflated Sharpe Ratio of its evaluation accounts for), and a table of every trial, into ``folder``.

    :param results: the ``ResultGrid`` of the sweep.
    :param base: the config the trials started from.
    :param folder: the sweep folder.
    :param spec: the experiment spec of the trials.
    """
    errors = [r.error for r in results if r.error is not None]
    if len(errors) == len(results):
        raise RuntimeError(f"every trial failed; first error: {errors[0]}")
    best = results.get_best_result(METRIC, "max", scope="all")
    params = {k: best.config[k] for k in search_space()}
    best_config = base.replace(**params, run_name=None)
    (folder / "best_config.yaml").write_text(best_config.to_yaml())
    if best.checkpoint is None:
        raise RuntimeError(f"the best trial ({best.path}) saved no agent")
    agent_dir = folder / "best_agent"
    if agent_dir.exists():
        shutil.rmtree(agent_dir)
    best.checkpoint.to_directory(str(agent_dir))
    save_spec(resolve(base, spec)[1], agent_dir)
    # Tune ranks every report (one per validation check of every trial): each was a configuration tried.
    checks = sum(len(r.metrics_dataframe) for r in results if r.metrics_dataframe is not None)
    write_trials(agent_dir, checks, validation_checks=checks, tune_trials=len(results))
    table = results.get_dataframe(filter_metric=METRIC, filter_mode="max")
    columns = [c for c in table.columns
               if c.startswith(("config/", "validation_")) or c in (METRIC, "timesteps", "trial_id")]
    table[columns].sort_values(METRIC, ascending=False).to_csv(folder / "trials.csv", index=False)
    logger.info("best trial %s: validation Sharpe %.3f", Path(best.path).name, best.metrics_dataframe[METRIC].max())
    return folder


@command
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m experiments.tune``.

    :param argv: command-line arguments.
    """
    parser = Parser(
        prog="python -m experiments.tune", description="Ray Tune sweep over an RL agent's hyper-parameters."
    )
    parser.add_argument("algo", choices=("ppo", "a2c"), help="algorithm to tune")
    parser.add_argument("--samples", type=int, default=8, help="number of trials (default: 8)")
    parser.add_argument("--address", help="Ray cluster address to join (default: start a local Ray)")
    parser.add_argument("--cpus-per-trial", type=int, default=1, help="CPUs per trial (default: 1)")
    parser.add_argument("--grace-period", type=int, help="steps before ASHA may stop a trial")
    parser.add_argument("--name", help="sweep name (default: <algo>-<date>-<time>)")
    add_config_arguments(parser, algos=("ppo", "a2c"))
    add_spec_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    base = load_config(args.config, overrides_from_args(args), algo=args.algo)
    spec, _ = spec_from_args(args)  # a ConfigError names the field; @command prints it
    folder = sweep(base, args.samples, args.name, args.address, args.cpus_per_trial, args.grace_period, spec)
    print(f"best config: {folder / 'best_config.yaml'}\nbest agent:  {folder / 'best_agent'}")
    print(f"tensorboard --logdir {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
