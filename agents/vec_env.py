"""stable-baselines3 ``VecEnv`` adapters of the trading envs.

- :class:`SB3VecEnv`: the batched numpy :class:`~envs.environments.vector.TradingVectorEnv` as an SB3
  ``VecEnv``, without subprocesses or copies;
- :class:`ConcatVecEnv`: several SB3 ``VecEnv`` side by side as one, so a single agent trains on several
  data sets at once;
- :class:`GymVecEnv`: any native gymnasium ``VectorEnv`` with same-step autoreset (the market-making and
  execution envs) as an SB3 ``VecEnv``.

Training a one-symbol agent on the train period of every symbol (each its own batched env) multiplies
the data it learns from without touching later bars. Sub-envs step in turn in this process; each keeps
its own batch, autoreset and seed (``seed + k`` for the k-th), and their observation and action spaces
must be identical.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvObs, VecEnvStepReturn

from envs.environments.vector import TradingVectorEnv


class ConcatVecEnv(VecEnv):
    """The envs of ``venvs`` as one batch, in order.

    :param venvs: the vector envs, with equal observation and action spaces.
    """

    def __init__(self, venvs: Sequence[VecEnv]) -> None:
        if not venvs:
            raise ValueError("ConcatVecEnv needs at least one VecEnv")
        first = venvs[0]
        for k, venv in enumerate(venvs[1:], start=1):
            if venv.observation_space != first.observation_space or venv.action_space != first.action_space:
                raise ValueError(
                    f"VecEnv {k} has spaces {venv.observation_space}, {venv.action_space}; "
                    f"VecEnv 0 has {first.observation_space}, {first.action_space}"
                )
        self.venvs = list(venvs)
        self._bounds = np.cumsum([0] + [v.num_envs for v in self.venvs])
        super().__init__(int(self._bounds[-1]), first.observation_space, first.action_space)

    def reset(self) -> VecEnvObs:
        return np.concatenate([venv.reset() for venv in self.venvs])

    def seed(self, seed: int | None = None) -> Sequence[None | int]:
        seeds: list[None | int] = []
        for k, venv in enumerate(self.venvs):
            seeds.extend(venv.seed(None if seed is None else seed + k))
        return seeds

    def step_async(self, actions: np.ndarray) -> None:
        for k, venv in enumerate(self.venvs):
            venv.step_async(actions[self._bounds[k] : self._bounds[k + 1]])

    def step_wait(self) -> VecEnvStepReturn:
        results = [venv.step_wait() for venv in self.venvs]
        obs, rewards, dones, infos = zip(*results)
        return (
            np.concatenate(obs),
            np.concatenate(rewards),
            np.concatenate(dones),
            [info for batch in infos for info in batch],
        )

    def close(self) -> None:
        for venv in self.venvs:
            venv.close()

    def _split(self, indices: Any) -> list[tuple[VecEnv, list[int]]]:
        wanted = range(self.num_envs) if indices is None else [indices] if isinstance(indices, int) else indices
        groups: dict[int, list[int]] = {}
        for i in wanted:
            k = int(np.searchsorted(self._bounds, i, side="right") - 1)
            groups.setdefault(k, []).append(i - int(self._bounds[k]))
        return [(self.venvs[k], local) for k, local in sorted(groups.items())]

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [value for venv, local in self._split(indices) for value in venv.get_attr(attr_name, local)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        for venv, local in self._split(indices):
            venv.set_attr(attr_name, value, local)

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any) -> list[Any]:
        return [
            result
            for venv, local in self._split(indices)
            for result in venv.env_method(method_name, *method_args, indices=local, **method_kwargs)
        ]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [flag for venv, local in self._split(indices) for flag in venv.env_is_wrapped(wrapper_class, local)]


class GymVecEnv(VecEnv):
    """Stable-baselines3 ``VecEnv`` view of a native gymnasium ``VectorEnv`` with same-step autoreset
    (``MarketMaking-v0``'s and ``Execution-v0``'s): no subprocesses, no copies.

    Per-copy info is not passed on (SB3 reads only the end-of-episode keys it needs).

    :param env: the vector env.
    """

    def __init__(self, env: Any) -> None:
        self.env = env
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
        self._actions: np.ndarray | None = None
        self._seed: int | None = None

    def reset(self) -> VecEnvObs:
        obs, _ = self.env.reset(seed=self._seed)
        self._seed = None
        return obs

    def seed(self, seed: int | None = None) -> Sequence[None | int]:
        self._seed = seed
        return [seed] * self.num_envs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, terminated, truncated, info = self.env.step(self._actions)
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(dones):
            infos[i]["terminal_observation"] = info["final_obs"][i]
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs, rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        self.env.close()

    def _attribute_owner(self) -> Any:
        """The object attribute and method calls go to (every copy shares it)."""
        return self.env

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self._attribute_owner(), attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self._attribute_owner(), attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[Any]:
        result = getattr(self._attribute_owner(), method_name)(*args, **kwargs)
        return [result] * len(self._indices(indices))

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._indices(indices))

    def _indices(self, indices: Any) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        return [indices] if isinstance(indices, int) else list(indices)


class SB3VecEnv(GymVecEnv):
    """Stable-baselines3 ``VecEnv`` view of a :class:`TradingVectorEnv` (no subprocesses, no copies); each
    step's infos carry the equity, and finished episodes their final equity.

    :param env: the batched env.
    """

    env: TradingVectorEnv

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, terminated, truncated, info = self.env.step(self._actions)
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{"equity": e} for e in info["equity"].tolist()]
        if dones.any():
            for i in np.flatnonzero(dones):
                infos[i]["terminal_observation"] = info["final_obs"][i]
                infos[i]["TimeLimit.truncated"] = bool(truncated[i])
                infos[i]["episode_final_equity"] = float(info["final_info"]["equity"][i])
        return obs, rewards.astype(np.float32), dones, infos

    def _attribute_owner(self) -> Any:
        return self.env.template
