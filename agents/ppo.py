"""A trained stable-baselines3 agent (PPO, and A2C or SAC through the same door) as a :class:`Policy`.

A run folder written by ``python -m experiments.train ppo`` holds ``policy.yaml`` (kind ``ppo``, ``a2c``
or ``sac``), the model zip and the ``VecNormalize`` statistics it was trained with. :func:`load_agent`
is registered with :mod:`agents.registry` for those kinds, so ``load_policy("runs/ppo/<run>")`` and
``python -m experiments.backtest runs/ppo/<run>`` give back an :class:`SB3Agent`.

The agent speaks the backtest's language: ``act`` returns target weights, so it runs in an env with
``action_mode="weights"`` like every rule bot, whatever action mode it was trained in (a discrete
"long" becomes weight 1). Its observations must be built like the training env's: :attr:`SB3Agent.env_options`
lists the settings (window, features) for the backtest engine, and a mismatch raises an error naming them.
An agent trained on ``Options-v0`` instead acts in that env, named by :attr:`SB3Agent.env_id` (what the
backtest engine builds for it, as for the options bots), and returns the env's action indices; one trained
on ``MarketMaking-v0`` or ``Execution-v0`` returns that env's own action.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Mapping

import gymnasium as gym
import numpy as np
import torch
import yaml
from stable_baselines3 import A2C, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecNormalize

from agents.params import coerce
from agents.ppo_fast import FastPPO
from agents.registry import MANIFEST, RegistryError, register_loader
from envs.environments.market_making import ENV_ID as MARKET_MAKING_ENV_ID
from envs.environments.optimal_execution import ENV_ID as EXECUTION_ENV_ID
from envs.environments.options import ENV_ID as OPTIONS_ENV_ID
from envs.features import DEFAULT_FEATURES, FeatureConfig
from envs.sim.actions import ActionAdapter
from envs.sim.sizing import sizer_of

# PPO is SB3's with the same arithmetic in fewer operations (agents/ppo_fast.py); it trains and loads runs
# saved by either.
ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"ppo": FastPPO, "a2c": A2C, "sac": SAC}
RAW_ACTION_ENV_IDS: tuple[str, ...] = (MARKET_MAKING_ENV_ID, EXECUTION_ENV_ID)
"""Envs whose agents return the env's own action (quotes, a trading fraction), not target weights."""
MODEL_FILE = "model.zip"
VECNORMALIZE_FILE = "vecnormalize.pkl"


class SB3Agent:
    """Deterministic actions of a trained SB3 model, with the observation normalisation it learned with.

    :param model: the trained algorithm.
    :param env_kwargs: the single-env settings that shape observations (``window_size``, ``features`` as
        a list of names; ``None`` means what agents of earlier versions trained on, all 63 features;
        ``symbol`` or ``symbols``) plus the training
        ``action_mode``, ``allow_short`` and ``position_size``, or ``sizing`` (the spec's sizing section, for a
        volatility or Kelly rule: the agent's weights are then the signal, which the env sizes as it did in
        training), and ``switch_prob`` (a discrete agent moves off its current position only to a choice at
        least this likely, see :meth:`_hold_unless_confident`; absent or 0: always the most likely choice);
        plain values, as stored in ``policy.yaml``. An
        options agent has ``env_id: AlpacaGym/Options-v0`` and ``symbol`` (the options env's observation is
        fixed); a market-making or execution agent has that env's ``env_id`` and its arguments.
    :param normalizer: the ``VecNormalize`` whose observation statistics the model was trained with, or
        ``None`` if observations were not normalised.
    :param name: display name.
    :param deterministic: take the most likely action (True) or sample.
    """

    def __init__(
        self,
        model: BaseAlgorithm,
        env_kwargs: Mapping[str, Any],
        normalizer: VecNormalize | None = None,
        name: str = "ppo",
        deterministic: bool = True,
    ) -> None:
        self.model = model
        self.env_kwargs = dict(env_kwargs)
        self.normalizer = normalizer if normalizer is not None and normalizer.norm_obs else None
        self.name = name
        self.deterministic = deterministic
        # None: a stock agent, run in Stocks-v0 or Portfolio-v0 by the number of symbols.
        self.env_id: str | None = self.env_kwargs.get("env_id")
        self._obs_shape = model.observation_space.shape
        self.adapter: ActionAdapter | None = None
        self.switch_prob = float(self.env_kwargs.get("switch_prob") or 0.0)
        if not 0.0 <= self.switch_prob < 1.0:
            raise ValueError(f"{name}: switch_prob must be in [0, 1), got {self.switch_prob}")
        if self.env_id == OPTIONS_ENV_ID:
            if not isinstance(model.action_space, gym.spaces.Discrete):
                raise ValueError(
                    f"{name}: an {OPTIONS_ENV_ID} agent acts in a Discrete space, got {model.action_space}"
                )
            self.n_symbols = 1
            return
        if self.env_id in RAW_ACTION_ENV_IDS:
            self.n_symbols = 1
            return
        if self.env_id is not None:
            raise ValueError(
                f"{name}: env_id must be one of {[OPTIONS_ENV_ID, *RAW_ACTION_ENV_IDS]} or absent (a stock env), "
                f"got {self.env_id!r}"
            )
        self.n_symbols = self._n_symbols(model)
        # An agent trained with a position size (the spec's sizing fraction) holds that share of equity per
        # full-conviction action; agents saved before it existed hold all of it.
        self.adapter = ActionAdapter(
            self.env_kwargs.get("action_mode", "discrete"), self.n_symbols, bool(self.env_kwargs.get("allow_short")),
            position_size=float(self.env_kwargs.get("position_size", 1.0)),
        )
        if self.adapter.space != model.action_space:
            raise ValueError(
                f"{name}: action_mode {self.adapter.mode!r} gives {self.adapter.space}, but the model acts in "
                f"{model.action_space}"
            )

    def _n_symbols(self, model: BaseAlgorithm) -> int:
        space = model.action_space
        if self.env_kwargs.get("action_mode") == "continuous":
            return int(space.shape[0]) - 1
        return int(np.prod(space.shape)) if space.shape else 1

    @property
    def env_options(self) -> dict[str, Any]:
        """Env arguments under which observations match training, in ``weights`` mode (the backtest's hook);
        for an options agent, whether it observes the chains' put/call ratio (its default action buckets are
        the env's)."""
        if self.env_id == OPTIONS_ENV_ID:
            return {"sentiment": True} if self.env_kwargs.get("sentiment") else {}
        if self.env_id is not None:
            return {}
        # Agents saved before their settings were always written down trained on the envs' defaults of that
        # time: 10 bars of every feature.
        features = self.env_kwargs.get("features") or DEFAULT_FEATURES
        options: dict[str, Any] = {
            "window_size": self.env_kwargs.get("window_size", 10),
            "features": FeatureConfig(features=tuple(features)),
            "action_mode": "weights",
        }
        if self.env_kwargs.get("sizing"):
            # The agent's weights are its signal; the env sizes it with the rule it trained under.
            options["sizing"] = sizer_of(**self.env_kwargs["sizing"])
        return options

    def reset(self, seed: int | None = None) -> None:
        """Seed the sampling of non-deterministic actions (the network keeps no episode state)."""
        if seed is not None:
            torch.manual_seed(seed)

    def act_vector(self, obs: np.ndarray) -> np.ndarray:
        """Actions for a batch of observations ``(N, *obs_shape)`` of a native vector env, one network call
        (a market-making or execution agent scored on thousands of simulated episodes at once).

        :param obs: the batch of observations.
        """
        if self.env_id not in RAW_ACTION_ENV_IDS:
            raise ValueError(f"{self.name}: act_vector is for agents of {list(RAW_ACTION_ENV_IDS)}, "
                             f"not {self.env_id or 'a stock env'}")
        obs = np.asarray(obs, dtype=np.float32)
        if obs.shape[1:] != self._obs_shape:
            raise ValueError(f"{self.name} was trained on observations of shape {self._obs_shape}, "
                             f"got a batch of {obs.shape[1:]}")
        if self.normalizer is not None:
            obs = self.normalizer.normalize_obs(obs)
        action, _ = self.model.predict(obs, deterministic=self.deterministic)
        space = self.model.action_space
        return np.clip(action, space.low, space.high).astype(np.float32)

    def act(self, obs: np.ndarray, info: Mapping[str, Any] | None = None) -> np.ndarray | int:
        """Target weights ``(S,)`` for the bar that just closed, or an options agent's action index.

        :param obs: the env observation.
        :param info: the env info (a stock agent reads only ``obs``; an options agent checks that
            ``info["actions"]``, the env's action layout, has as many actions as it was trained with).
        """
        obs = np.asarray(obs, dtype=np.float32)
        if obs.shape != self._obs_shape:
            raise ValueError(
                f"{self.name} was trained on observations of shape {self._obs_shape}, got {obs.shape}; "
                f"build the env with {self.env_options}"
            )
        raw = obs
        if self.normalizer is not None:
            obs = self.normalizer.normalize_obs(obs)
        discrete = self.adapter is not None and self.adapter.mode == "discrete"
        if discrete and self.deterministic:
            # The most likely choice from one network call that also gives the probabilities switch_prob needs
            # (SB3's predict and a second call: a 504-bar evaluation took 0.43 s instead of 0.26 s): argmax of
            # the same probabilities, first index on ties, as SB3's Categorical.mode().
            probs = self._choice_probs(obs)
            action = probs.argmax(axis=1).reshape(self.model.action_space.shape)
        else:
            action, _ = self.model.predict(obs, deterministic=self.deterministic)
            probs = self._choice_probs(obs) if discrete and self.switch_prob > 0 else None
        if probs is not None and self.switch_prob > 0:
            action = self._hold_unless_confident(probs, raw, action)
        if self.env_id in RAW_ACTION_ENV_IDS:
            # SB3 clips a Box action to the space only inside its own rollouts; the env refuses the rest.
            space = self.model.action_space
            return np.clip(action, space.low, space.high).astype(np.float32)
        if self.adapter is None:
            layout = (info or {}).get("actions")
            if layout is not None and layout.n != self.model.action_space.n:
                raise ValueError(
                    f"{self.name} was trained on {self.model.action_space.n} options actions but the env offers "
                    f"{layout.n}; build {OPTIONS_ENV_ID} with its default templates and buckets"
                )
            return int(action)
        return self.adapter.to_weights(action).astype(np.float32)

    def _choice_probs(self, obs: np.ndarray) -> np.ndarray:
        """``(S, choices)`` probabilities of each symbol's choices for one normalised observation."""
        with torch.no_grad():
            dist = self.model.policy.get_distribution(self.model.policy.obs_to_tensor(obs)[0]).distribution
        parts = dist if isinstance(dist, list) else [dist]
        return np.stack([part.probs.cpu().numpy()[0] for part in parts])

    def _hold_unless_confident(self, probs: np.ndarray, raw: np.ndarray, action: np.ndarray) -> np.ndarray:
        """Each symbol's choice, or the one its current position holds where the choice is less than
        ``switch_prob`` likely.

        An agent that learned nothing (the null market) is near even odds between its choices and would
        flip between them on noise, paying costs every time; one that learned a signal is confident where it
        trades. The current position is read from the observation's account part (the weights before the
        cash weight and drawdown in Portfolio-v0, before the unrealised return and drawdown in Stocks-v0).

        :param probs: ``(S, choices)`` probabilities (:meth:`_choice_probs`).
        :param raw: the observation before normalisation.
        :param action: the chosen action.
        """
        assert self.adapter is not None
        n = self.n_symbols
        weights = raw[-(n + 2):-2] if n > 1 else raw[-3:-2]
        # The choice whose weight has the position's sign: short, flat or long.
        held = np.sign(weights).astype(np.int64) + (1 if self.adapter.allow_short else 0)
        held = np.clip(held, 0, self.adapter.n_choices - 1)
        chosen = np.asarray(action).reshape(n)
        sure = probs[np.arange(n), chosen] >= self.switch_prob
        return np.where(sure, chosen, held).reshape(np.shape(action)).astype(np.asarray(action).dtype)


def write_manifest(
    folder: str | Path,
    algo: str,
    model_path: str,
    env_kwargs: Mapping[str, Any],
    vecnormalize_path: str | None = None,
    name: str | None = None,
) -> Path:
    """Write ``policy.yaml`` so the registry can load the folder as an :class:`SB3Agent`.

    :param folder: the run folder.
    :param algo: ``ppo``, ``a2c`` or ``sac`` (also the manifest's kind).
    :param model_path: model zip, relative to ``folder``.
    :param env_kwargs: see :class:`SB3Agent`.
    :param vecnormalize_path: VecNormalize pickle relative to ``folder``, if observations were normalised.
    :param name: display name (default: ``<algo>:<folder name>``).
    """
    folder = Path(folder)
    manifest = {
        "kind": algo,
        "class": f"{SB3Agent.__module__}:{SB3Agent.__qualname__}",
        "name": name or f"{algo}:{folder.name}",
        "params": {"deterministic": True},
        "model": model_path,
        "vecnormalize": vecnormalize_path,
        "env_kwargs": dict(env_kwargs),
    }
    path = folder / MANIFEST
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


def load_normalizer(path: str | Path) -> VecNormalize:
    """Read VecNormalize statistics saved by ``VecNormalize.save`` (no env needed to normalise).

    :param path: the pickle file.
    """
    with open(path, "rb") as handle:
        normalizer = pickle.load(handle)
    if not isinstance(normalizer, VecNormalize):
        raise RegistryError(f"{path}: expected saved VecNormalize statistics, got {type(normalizer).__name__}")
    normalizer.training = False
    return normalizer


def load_agent(folder: str | Path, manifest: Mapping[str, Any] | None = None) -> SB3Agent:
    """Load a saved run as an :class:`SB3Agent` (the registry's loader for kinds ppo, a2c and sac).

    :param folder: the run folder.
    :param manifest: its parsed ``policy.yaml`` (read from the folder when ``None``).
    """
    folder = Path(folder)
    if manifest is None:
        manifest_path = folder / MANIFEST
        if not manifest_path.is_file():
            raise RegistryError(f"{folder} is not a saved agent: no {MANIFEST} in it")
        manifest = yaml.safe_load(manifest_path.read_text())
    algo = manifest.get("kind")
    if algo not in ALGORITHMS:
        raise RegistryError(f"{folder}: kind {algo!r} is not an SB3 algorithm; known: {sorted(ALGORITHMS)}")
    for key in ("model", "env_kwargs"):
        if not manifest.get(key):
            raise RegistryError(f"{folder / MANIFEST}: missing field {key!r}")
    model_path = folder / manifest["model"]
    if not model_path.is_file():
        raise RegistryError(f"{folder}: model file {manifest['model']!r} does not exist")
    model = ALGORITHMS[algo].load(model_path, device="cpu")
    normalizer = load_normalizer(folder / manifest["vecnormalize"]) if manifest.get("vecnormalize") else None
    params = manifest.get("params") or {}
    unknown = sorted(set(params) - {"deterministic"})
    if unknown:
        raise RegistryError(f"unknown parameter(s) {unknown} for {algo} agent; known: ['deterministic']")
    try:
        deterministic = coerce(algo, "deterministic", bool, params.get("deterministic", True))
    except TypeError as err:
        raise RegistryError(str(err)) from None
    return SB3Agent(
        model, manifest["env_kwargs"], normalizer, name=manifest.get("name") or algo, deterministic=deterministic
    )


for _kind in ALGORITHMS:
    register_loader(_kind, load_agent)
