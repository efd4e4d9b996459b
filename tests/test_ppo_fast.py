"""FastPPO (agents/ppo_fast.py) against stable-baselines3's PPO: same initial weights, same outputs, gradients,
minibatches, updates and training up to float32 rounding; saved models load both ways."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import DummyVecEnv
from torch import nn

from agents.ppo import ALGORITHMS
from agents.ppo_fast import FastPPO, FusedMlpExtractor, FusedMlpPolicy, TensorRolloutBuffer, fast_tanh

OBS = spaces.Box(-3.0, 3.0, (19,), np.float32)
ARCH = [64, 64]


def _pair(action_space: spaces.Space, seed: int = 0, **kwargs) -> tuple[ActorCriticPolicy, FusedMlpPolicy]:
    torch.manual_seed(seed)
    sb3 = ActorCriticPolicy(OBS, action_space, lambda _: 1e-4, net_arch=ARCH, **kwargs)
    torch.manual_seed(seed)
    fused = FusedMlpPolicy(OBS, action_space, lambda _: 1e-4, net_arch=ARCH, **kwargs)
    return sb3, fused


def _sb3_layout_grads(fused: FusedMlpPolicy) -> dict[str, torch.Tensor]:
    """The fused policy's gradients under SB3's parameter names."""
    grads = {name: p.grad for name, p in fused.named_parameters() if not name.startswith("mlp_extractor")}
    for k, layer in enumerate(fused.mlp_extractor.layers):
        for block, net in enumerate(("policy_net", "value_net")):
            grads[f"mlp_extractor.{net}.{2 * k}.weight"] = layer.weight.grad[block].T
            grads[f"mlp_extractor.{net}.{2 * k}.bias"] = layer.bias.grad[block, 0]
    return grads


def test_fast_tanh_is_tanh_to_float32_rounding() -> None:
    x = torch.linspace(-20, 20, 400_001, dtype=torch.float32, requires_grad=True)
    exact = torch.tanh(x.double())
    y = fast_tanh(x)
    assert (y.double() - exact).abs().max().item() < 2.5e-7
    assert y.min().item() == -1.0 and y.max().item() == 1.0
    (g,) = torch.autograd.grad(y.sum(), x)
    assert torch.allclose(g.double(), 1 - exact**2, atol=5e-7, rtol=0)
    with torch.no_grad():
        assert torch.equal(fast_tanh(x), y.detach())


def test_a_seed_gives_sb3s_initial_weights() -> None:
    sb3, fused = _pair(spaces.Discrete(2))
    assert isinstance(fused.mlp_extractor, FusedMlpExtractor)
    for k, layer in enumerate(fused.mlp_extractor.layers):
        assert torch.equal(layer.weight[0].T, sb3.mlp_extractor.policy_net[2 * k].weight)
        assert torch.equal(layer.weight[1].T, sb3.mlp_extractor.value_net[2 * k].weight)
        assert torch.equal(layer.bias[0, 0], sb3.mlp_extractor.policy_net[2 * k].bias)
        assert torch.equal(layer.bias[1, 0], sb3.mlp_extractor.value_net[2 * k].bias)
    for name in ("action_net.weight", "action_net.bias", "value_net.weight", "value_net.bias"):
        assert torch.equal(fused.get_parameter(name), sb3.get_parameter(name))
    # The optimiser updates the fused parameters (SB3's were replaced), with SB3's settings.
    assert {id(p) for g in fused.optimizer.param_groups for p in g["params"]} == {id(p) for p in fused.parameters()}
    assert fused.optimizer.defaults["eps"] == sb3.optimizer.defaults["eps"] == 1e-5


@pytest.mark.parametrize("action_space", [spaces.Discrete(2), spaces.Discrete(5), spaces.Box(-1, 1, (3,), np.float32)])
def test_outputs_and_gradients_match_sb3(action_space: spaces.Space) -> None:
    sb3, fused = _pair(action_space, seed=1)
    generator = torch.Generator().manual_seed(2)
    obs = torch.randn(512, 19, generator=generator)
    if isinstance(action_space, spaces.Discrete):
        actions = torch.randint(0, int(action_space.n), (512,), generator=generator)
    else:
        actions = torch.rand(512, 3, generator=generator) * 2 - 1
    results = []
    for policy in (sb3, fused):
        values, log_prob, entropy = policy.evaluate_actions(obs, actions)
        results.append((values, log_prob, entropy))
        # A loss touching every output, as PPO's does.
        (values.square().mean() - log_prob.mean() - 0.1 * entropy.mean()).backward()
    for a, b in zip(*results):
        torch.testing.assert_close(b, a, atol=2e-6, rtol=1e-5)
    fused_grads = _sb3_layout_grads(fused)
    for name, p in sb3.named_parameters():
        torch.testing.assert_close(fused_grads[name], p.grad, atol=2e-6, rtol=1e-4)
    # Acting alone (policy network only) and the value alone, as SB3's predict and predict_values do.
    with torch.no_grad():
        torch.testing.assert_close(fused.mlp_extractor.forward_actor(obs), sb3.mlp_extractor.forward_actor(obs),
                                   atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(fused.predict_values(obs), sb3.predict_values(obs), atol=2e-6, rtol=1e-5)


def test_rollout_actions_are_sb3s_draws() -> None:
    sb3, fused = _pair(spaces.Discrete(3), seed=4)
    obs = torch.randn(4096, 19, generator=torch.Generator().manual_seed(5))
    outputs = []
    with torch.no_grad():
        for policy in (sb3, fused):
            torch.manual_seed(6)
            outputs.append(policy(obs))
            outputs.append(policy(obs, deterministic=True))
    (a, va, la), (da, _, _), (b, vb, lb), (db, _, _) = outputs
    assert torch.equal(a, b) and torch.equal(da, db)
    assert len(a.unique()) == 3
    torch.testing.assert_close(vb, va, atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(lb, la, atol=2e-6, rtol=1e-5)


def test_other_activations_are_applied_as_sb3_does() -> None:
    sb3, fused = _pair(spaces.Discrete(2), activation_fn=nn.ReLU)
    assert isinstance(fused.mlp_extractor, FusedMlpExtractor)
    obs, actions = torch.randn(64, 19), torch.randint(0, 2, (64,))
    for a, b in zip(sb3.evaluate_actions(obs, actions), fused.evaluate_actions(obs, actions)):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-5)


def test_layouts_it_cannot_fuse_stay_sb3s() -> None:
    torch.manual_seed(0)
    policy = FusedMlpPolicy(OBS, spaces.Discrete(2), lambda _: 1e-4, net_arch={"pi": [64], "vf": [32, 32]})
    assert not isinstance(policy.mlp_extractor, FusedMlpExtractor)
    torch.manual_seed(0)
    sb3 = ActorCriticPolicy(OBS, spaces.Discrete(2), lambda _: 1e-4, net_arch={"pi": [64], "vf": [32, 32]})
    obs, actions = torch.randn(64, 19), torch.randint(0, 2, (64,))
    for a, b in zip(sb3.evaluate_actions(obs, actions), policy.evaluate_actions(obs, actions)):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-5)


def _filled_buffers(seed: int) -> tuple[RolloutBuffer, TensorRolloutBuffer]:
    rng = np.random.default_rng(seed)
    buffers = (RolloutBuffer(16, OBS, spaces.Discrete(2), n_envs=8, gamma=0.5),
               TensorRolloutBuffer(16, OBS, spaces.Discrete(2), n_envs=8, gamma=0.5))
    steps = [(rng.normal(size=(8, 19)).astype(np.float32), rng.integers(0, 2, 8), rng.normal(size=8).astype(np.float32),
              rng.random(8) < 0.1, torch.randn(8, 1), torch.randn(8)) for _ in range(16)]
    for buffer in buffers:
        for step in steps:
            buffer.add(*step)
        buffer.compute_returns_and_advantage(torch.zeros(8, 1), np.zeros(8, bool))
    return buffers


def test_tensor_buffer_gives_sb3s_minibatches() -> None:
    sb3, ours = _filled_buffers(0)
    for _epoch in range(2):  # the second get reuses the flattened rollout
        np.random.seed(7)
        expected = list(sb3.get(48))
        np.random.seed(7)
        got = list(ours.get(48))
        assert len(got) == len(expected) == 3  # 128 rows: 48, 48 and the last 32
        for a, b in zip(expected, got):
            for x, y in zip(a, b):
                assert x.dtype == y.dtype and torch.equal(x, y)


def _cartpole(n: int = 4) -> DummyVecEnv:
    return DummyVecEnv([lambda: gym.make("CartPole-v1")] * n)


def _ppo(cls: type[PPO], **kwargs) -> PPO:
    """PPO or FastPPO on four CartPoles; building it seeds torch, numpy and the envs."""
    model = cls("MlpPolicy", _cartpole(), n_steps=64, batch_size=64, n_epochs=3, seed=3, device="cpu",
                policy_kwargs={"net_arch": ARCH}, **kwargs)
    model.set_logger(Logger(None, []))
    return model


def _ppo_pair(**kwargs) -> tuple[PPO, FastPPO]:
    return _ppo(PPO, **kwargs), _ppo(FastPPO, **kwargs)


def _flat_params(model: PPO) -> torch.Tensor:
    policy = model.policy
    if isinstance(policy, FusedMlpPolicy):
        params = {n: p for n, p in policy.named_parameters() if not n.startswith("mlp_extractor")}
        for k, layer in enumerate(policy.mlp_extractor.layers):
            for block, net in enumerate(("policy_net", "value_net")):
                params[f"mlp_extractor.{net}.{2 * k}.weight"] = layer.weight[block].T
                params[f"mlp_extractor.{net}.{2 * k}.bias"] = layer.bias[block, 0]
    else:
        params = dict(policy.named_parameters())
    return torch.cat([params[n].detach().reshape(-1) for n in sorted(params)])


def _fill_from_policy(models: tuple[PPO, FastPPO], seed: int) -> None:
    """The same rollout in both models' buffers: random observations, SB3's actions, values and log-probs."""
    sb3 = models[0]
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    for model in models:
        model.rollout_buffer.reset()
    for _ in range(sb3.n_steps):
        obs = rng.normal(size=(sb3.n_envs, 4)).astype(np.float32)
        with torch.no_grad():
            actions, values, log_probs = sb3.policy(torch.as_tensor(obs))
        rewards, starts = rng.normal(size=sb3.n_envs).astype(np.float32), rng.random(sb3.n_envs) < 0.05
        for model in models:
            model.rollout_buffer.add(obs, actions.numpy(), rewards, starts, values, log_probs)
    for model in models:
        model.rollout_buffer.compute_returns_and_advantage(torch.zeros(sb3.n_envs, 1), np.zeros(sb3.n_envs, bool))


@pytest.mark.parametrize("ent_coef", [0.0, 0.01])
def test_one_update_matches_sb3(ent_coef: float) -> None:
    sb3, fast = models = _ppo_pair(ent_coef=ent_coef)
    assert type(fast.rollout_buffer) is TensorRolloutBuffer and isinstance(fast.policy, FusedMlpPolicy)
    assert torch.equal(_flat_params(sb3), _flat_params(fast))
    before = _flat_params(sb3)
    _fill_from_policy(models, seed=8)
    for model in models:
        np.random.seed(11)  # the minibatch permutation
        model._current_progress_remaining = 0.5
        model.train()
    torch.testing.assert_close(_flat_params(fast), _flat_params(sb3), atol=1e-6, rtol=1e-4)
    assert (_flat_params(sb3) - before).abs().max().item() > 1e-5  # the update moved the weights
    for key in ("train/policy_gradient_loss", "train/value_loss", "train/entropy_loss", "train/approx_kl",
                "train/clip_fraction", "train/loss", "train/explained_variance", "train/learning_rate"):
        assert fast.logger.name_to_value[key] == pytest.approx(sb3.logger.name_to_value[key], rel=1e-4, abs=1e-7), key
    assert fast._n_updates == sb3._n_updates == 3


def test_a_short_training_run_matches_sb3() -> None:
    # Each model built (which seeds torch, numpy and the envs) right before its run.
    sb3 = _ppo(PPO).learn(4 * 256)
    fast = _ppo(FastPPO).learn(4 * 256)
    torch.testing.assert_close(_flat_params(fast), _flat_params(sb3), atol=1e-5, rtol=1e-3)
    assert fast.num_timesteps == sb3.num_timesteps == 1024
    assert fast.logger.name_to_value["train/value_loss"] == pytest.approx(
        sb3.logger.name_to_value["train/value_loss"], rel=1e-3)


def test_sb3s_own_branches_still_run() -> None:
    """clip_range_vf and target_kl take SB3's loop, unchanged."""
    sb3, fast = models = _ppo_pair(clip_range_vf=0.2, target_kl=0.01)
    _fill_from_policy(models, seed=9)
    for model in models:
        np.random.seed(12)
        model.train()
    torch.testing.assert_close(_flat_params(fast), _flat_params(sb3), atol=1e-6, rtol=1e-4)


def test_saved_models_load_both_ways(tmp_path: Path) -> None:
    obs = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    sb3, fast = _ppo_pair()
    sb3.save(tmp_path / "sb3.zip")
    fast.save(tmp_path / "fast.zip")
    # A run saved before FastPPO (SB3's MlpPolicy) loads through the registry's class as it was.
    old = ALGORITHMS["ppo"].load(tmp_path / "sb3.zip", device="cpu")
    assert type(old.policy) is ActorCriticPolicy
    np.testing.assert_array_equal(old.predict(obs, deterministic=True)[0], sb3.predict(obs, deterministic=True)[0])
    # A FastPPO run loads with its fused policy, in FastPPO and in plain SB3.
    for cls in (ALGORITHMS["ppo"], PPO):
        new = cls.load(tmp_path / "fast.zip", device="cpu")
        assert type(new.policy) is FusedMlpPolicy
        for a, b in zip(new.policy.state_dict().values(), fast.policy.state_dict().values()):
            assert torch.equal(a, b)
        np.testing.assert_array_equal(new.predict(obs, deterministic=True)[0], fast.predict(obs, deterministic=True)[0])


@pytest.mark.parametrize("timesteps", [
    2 * 5120,  # two rollouts
    pytest.param(200_000, marks=pytest.mark.slow),  # the whole default run
])
def test_the_default_train_ppo_config_trains_the_same_policy(timesteps: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """``train ppo``'s default config and model (build_model) from its seed, FastPPO against SB3's PPO: the
    trained policies agree to float32 rounding (same samples, same updates), so learning is the same."""
    import experiments.train_rl as train_rl
    from agents.rl_eval import split_periods
    from envs.data.sources import load_data
    from experiments.rl_config import load_config, resolve

    config = resolve(load_config(algo="ppo"))[0]
    data = load_data(config.data)
    train, _, _ = split_periods(data.n_bars, config.train_fraction, config.val_fraction)
    models, starts = {}, {}
    for name, cls in (("sb3", PPO), ("fast", FastPPO)):
        monkeypatch.setitem(train_rl.ALGORITHMS, "ppo", cls)
        model = train_rl.build_model(config, train_rl.make_train_env(config, train_rl.training_data(config, data, train)))
        assert type(model) is cls
        model.set_logger(Logger(None, []))
        starts[name] = _flat_params(model)
        models[name] = model.learn(timesteps)
    obs = torch.as_tensor(models["sb3"].rollout_buffer.observations.reshape(-1, *models["sb3"].observation_space.shape))
    with torch.no_grad():
        p_long = {k: m.policy.get_distribution(obs).distribution.probs[:, 1] for k, m in models.items()}
        values = {k: m.policy.predict_values(obs) for k, m in models.items()}
    torch.testing.assert_close(p_long["fast"], p_long["sb3"], atol=2e-5, rtol=0)
    torch.testing.assert_close(values["fast"], values["sb3"], atol=2e-5, rtol=1e-4)
    # Same initial weights; they moved in training, and apart by a hundredth of that at most.
    assert torch.equal(starts["fast"], starts["sb3"])
    moved = (_flat_params(models["sb3"]) - starts["sb3"]).abs().max().item()
    apart = (_flat_params(models["fast"]) - _flat_params(models["sb3"])).abs().max().item()
    assert moved > 1e-3 and apart < moved / 100
