"""Stepping an env through a fixed list of actions, for tests that compare two runs step by step."""

from __future__ import annotations

import gymnasium as gym


def rollout(env: gym.Env, actions: list, seed: int | None = 0, options: dict | None = None) -> list[tuple]:
    """``(obs, reward, info)`` of the reset (reward 0.0) and of each step, until the episode ends.

    :param env: the env (Gymnasium-made or constructed directly).
    :param actions: actions in order; the ones left when the episode ends are not taken.
    :param seed: passed to ``reset``.
    :param options: passed to ``reset``.
    """
    obs, info = env.reset(seed=seed, options=options)
    out = [(obs, 0.0, info)]
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        out.append((obs, reward, info))
        if terminated or truncated:
            break
    return out
