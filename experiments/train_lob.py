"""Training on the microstructure envs: ``python -m experiments.train ppo --env MarketMaking-v0`` (or
``--env Execution-v0``).

These envs simulate their own market (no data set, no train/validation/test periods in time): the agent
trains on the native vector env behind SB3's ``VecNormalize``; every ``eval_freq`` steps the
deterministic policy is scored on ``EVAL_EPISODES`` validation episodes (their own seed), the best model
is kept, and at the end that model alone is scored on ``TEST_EPISODES`` test episodes (another seed),
next to the closed-form baselines (Avellaneda-Stoikov, GLFT, fixed spread; Almgren-Chriss, TWAP) on the
same episodes and against the closed-form optimum of the env's objective, through the backtest engine of
these envs (:mod:`experiments.microstructure`): the run folder holds its ``report.html``, ``stats.json``,
``paths.csv`` and ``episodes.csv``. The run folder has the layout
of :mod:`experiments.train_rl`'s, and ``policy.yaml`` loads the best model as a policy of that env.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import VecNormalize

from agents.ppo import MODEL_FILE, VECNORMALIZE_FILE, write_manifest
from agents.registry import load_policy, make_policy
from agents.rl_callbacks import StepsPerSecondCallback
from agents.vec_env import GymVecEnv
from baselines.execution import almgren_chriss_trades, expected_reward
from baselines.market_making import optimal_value
from envs.environments.market_making import ENV_ID as MARKET_MAKING_ENV_ID
from envs.environments.market_making import MarketMakingVectorEnv
from envs.environments.optimal_execution import ENV_ID as EXECUTION_ENV_ID
from envs.environments.optimal_execution import ExecutionVectorEnv
from experiments.microstructure import LobResult, run_lob
from experiments.rl_config import RLConfig

logger = logging.getLogger(__name__)

LOB_ENVS: tuple[str, ...] = ("MarketMaking-v0", "Execution-v0")
BASELINES: dict[str, tuple[str, ...]] = {
    "MarketMaking-v0": ("avellaneda_stoikov", "glft", "fixed_spread"),
    "Execution-v0": ("almgren_chriss", "twap"),
}
EVAL_EPISODES = 512
TEST_EPISODES = 4096
# Validation and test episodes are drawn from their own seeds, away from the training seed's stream.
VALIDATION_SEED = 10_007
TEST_SEED = 20_011

Actor = Callable[[np.ndarray, dict[str, Any]], np.ndarray]


def make_vector_env(config: RLConfig, num_envs: int) -> MarketMakingVectorEnv | ExecutionVectorEnv:
    """The env's native vector env with its default market.

    :param config: the run config (``env``).
    :param num_envs: number of episodes stepped together.
    """
    if config.env == "MarketMaking-v0":
        return MarketMakingVectorEnv(num_envs)
    return ExecutionVectorEnv(num_envs)


def closed_form_value(config: RLConfig) -> float:
    """The expected episode reward of the optimal policy of the env's objective, in closed form: ``h(0, 0)``
    of the Avellaneda-Stoikov/Cartea-Jaimungal model, or minus Almgren-Chriss's ``E[cost] + lambda Var``.

    :param config: the run config (``env``).
    """
    env = make_vector_env(config, 1)
    if isinstance(env, MarketMakingVectorEnv):
        return optimal_value(env.book, env.spec_.running_penalty, env.spec_.terminal_penalty)
    return expected_reward(env.impact, almgren_chriss_trades(env.impact))


def episode_returns(config: RLConfig, act: Actor, episodes: int, seed: int) -> np.ndarray:
    """Each episode's total reward when ``act(obs, info)`` (a batch) chooses the actions.

    :param config: the run config.
    :param act: the policy on a batch of observations and the vector env's info.
    :param episodes: number of episodes, all run at once.
    :param seed: seed of the episodes.
    """
    env = make_vector_env(config, episodes)
    obs, info = env.reset(seed=seed)
    total = np.zeros(episodes)
    done = np.zeros(episodes, dtype=bool)
    while not done.all():
        obs, reward, terminated, truncated, info = env.step(act(obs, info))
        total += np.where(done, 0.0, reward)
        done |= terminated | truncated
    return total


def summarise(returns: np.ndarray, optimum: float) -> dict[str, float]:
    """Mean episode reward with its 95% confidence half-width, and its share of the closed-form optimum.

    :param returns: episode rewards.
    :param optimum: the closed-form optimal value.
    """
    mean = float(returns.mean())
    half = float(1.96 * returns.std(ddof=1) / math.sqrt(returns.size))
    # A negative optimum (a cost) is matched from below: the share is optimum / mean there.
    share = mean / optimum if optimum > 0 else optimum / mean
    return {"mean_reward": mean, "ci95": half, "share_of_optimum": share, "episodes": int(returns.size)}


def model_actor(model: BaseAlgorithm, normalizer: VecNormalize | None) -> Actor:
    """The deterministic actions of ``model`` on a batch, observations normalised as in training.

    :param model: the SB3 model.
    :param normalizer: its ``VecNormalize`` (or ``None``).
    """

    def act(obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        x = normalizer.normalize_obs(obs) if normalizer is not None else obs
        action, _ = model.predict(x, deterministic=True)
        return np.clip(action, -1.0, 1.0)

    return act


class _BestModel(BaseCallback):
    """Every ``eval_freq`` steps: score the policy on the validation episodes and keep the best model."""

    def __init__(self, config: RLConfig, best_dir: Path, optimum: float) -> None:
        super().__init__()
        self.config = config
        self.best_dir = best_dir
        self.optimum = optimum
        self.every = max(config.eval_freq // config.num_envs, 1)
        self.best = -math.inf
        self.best_timesteps = 0
        self.history: list[dict[str, float]] = []

    def _on_step(self) -> bool:
        if self.n_calls % self.every == 0:
            self.evaluate()
        return True

    def _on_training_end(self) -> None:
        if not self.history or self.history[-1]["timesteps"] != self.num_timesteps:
            self.evaluate()

    def evaluate(self) -> None:
        normalizer = self.model.get_vec_normalize_env()
        returns = episode_returns(self.config, model_actor(self.model, normalizer), EVAL_EPISODES, VALIDATION_SEED)
        scores = summarise(returns, self.optimum)
        self.history.append({"timesteps": int(self.num_timesteps), **scores})
        self.logger.record("validation/mean_reward", scores["mean_reward"])
        self.logger.record("validation/share_of_optimum", scores["share_of_optimum"])
        logger.info("%d steps: validation mean reward %.3f (%.1f%% of the closed-form optimum %.3f)",
                    self.num_timesteps, scores["mean_reward"], 100 * scores["share_of_optimum"], self.optimum)
        if scores["mean_reward"] > self.best:
            self.best = scores["mean_reward"]
            self.best_timesteps = int(self.num_timesteps)
            save_model(self.model, self.best_dir)


def save_model(model: BaseAlgorithm, folder: Path) -> None:
    """The model zip and its ``VecNormalize`` statistics in ``folder``.

    :param model: the trained model.
    :param folder: the destination.
    """
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / MODEL_FILE)
    normalizer = model.get_vec_normalize_env()
    if normalizer is not None:
        normalizer.save(str(folder / VECNORMALIZE_FILE))


def train_lob(
    config: RLConfig, run_dir: Path, build_model: Callable[[RLConfig, Any], BaseAlgorithm],
    extra_callbacks: Sequence[BaseCallback] = (),
) -> dict[str, Any]:
    """Train on the config's microstructure env, keep the best validation model, score it on test episodes
    next to the baselines, and write ``metrics.json``; returns the metrics.

    :param config: the run config (``env`` in :data:`LOB_ENVS`).
    :param run_dir: the run folder (exists, ``config.yaml`` written).
    :param build_model: builds the SB3 algorithm from the config and the training env.
    :param extra_callbacks: more SB3 callbacks.
    """
    env_id = MARKET_MAKING_ENV_ID if config.env == "MarketMaking-v0" else EXECUTION_ENV_ID
    venv = VecNormalize(
        GymVecEnv(make_vector_env(config, config.num_envs)), norm_obs=config.norm_obs,
        norm_reward=config.norm_reward, gamma=config.gamma, clip_obs=10.0,
    )
    model = build_model(config, venv)
    model.set_logger(configure(str(run_dir / "tb"), ["tensorboard", "csv"]))
    write_manifest(run_dir, config.algo, f"best/{MODEL_FILE}", {"env_id": env_id}, f"best/{VECNORMALIZE_FILE}")
    optimum = closed_form_value(config)
    best = _BestModel(config, run_dir / "best", optimum)
    started = time.perf_counter()
    model.learn(config.total_timesteps, callback=[best, StepsPerSecondCallback(), *extra_callbacks],
                progress_bar=config.progress)
    seconds = time.perf_counter() - started
    save_model(model, run_dir / "final")

    # The best model and the baselines on the test episodes through the backtest engine of these envs: the
    # run folder gets the report and results `python -m experiments.backtest RUN --env ...` writes.
    from experiments.report import write_lob_report  # bokeh and matplotlib: imported when a run ends

    names = config.baselines if config.baselines is not None else BASELINES[config.env]
    agent = load_policy(run_dir)
    agent.name = "agent (best validation)"
    runs = [run_lob(policy, env_id, TEST_EPISODES, TEST_SEED)
            for policy in [agent, *(make_policy(name) for name in names)]]
    write_lob_report(runs, run_dir, title=f"{config.algo} on {config.env}: test episodes",
                     settings={"run": run_dir.name, "env": env_id, **runs[0].settings})

    def scores(run: LobResult) -> dict[str, float]:
        return {key: run.metrics[key] for key in ("mean_reward", "ci95", "share_of_optimum")} | {
            "episodes": TEST_EPISODES}

    test = scores(runs[0])
    baselines = {name: scores(run) for name, run in zip(names, runs[1:])}
    metrics: dict[str, Any] = {
        "algo": config.algo,
        "env": env_id,
        "closed_form_optimum": optimum,
        "timesteps": int(model.num_timesteps),
        "train_seconds": seconds,
        "steps_per_second": model.num_timesteps / seconds,
        "best_timesteps": best.best_timesteps,
        "validation_history": best.history,
        "test": test,
        "baselines": baselines,
    }
    metrics["summary"] = summary_table(metrics)
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    logger.info("run written to %s", run_dir)
    return metrics


def summary_table(metrics: dict[str, Any]) -> str:
    """The agent and the baselines on the test episodes, against the closed-form optimum, as text.

    :param metrics: the content of ``metrics.json``.
    """
    rows = [("agent (best validation)", metrics["test"])] + list(metrics["baselines"].items())
    lines = [
        f"closed-form optimum: {metrics['closed_form_optimum']:.3f} expected reward per episode",
        f"{'policy':<26}{'mean reward':>13}{'95% CI':>10}{'of optimum':>12}",
    ]
    for name, s in rows:
        lines.append(f"{name:<26}{s['mean_reward']:>13.3f}{'±' + format(s['ci95'], '.3f'):>10}"
                     f"{100 * s['share_of_optimum']:>11.1f}%")
    return "\n".join(lines)
