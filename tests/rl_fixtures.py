"""A tiny RL config shared by the PPO and tuning tests: one synthetic symbol, a few hundred steps (seconds)."""

from __future__ import annotations

TINY_RL: dict = {
    "data": "synthetic:n_days=360,n_symbols=1,seed=3",
    "features": ("ret_1", "ret_5", "rvol_20", "sma_ratio_20"),
    "window_size": 2,
    "episode_length": 40,
    "num_envs": 4,
    "n_steps": 32,
    "batch_size": 64,
    "n_epochs": 2,
    "net_arch": (16,),
    "total_timesteps": 512,
    "eval_freq": 256,
    "checkpoint_freq": 256,
    "progress": False,
    "baselines": ("buy_and_hold",),
}
