"""SB3's PPO with the same arithmetic in fewer and cheaper tensor operations: ``train ppo`` trains faster.

Why it exists: training speed (issue #15's throughput goal). The default network is two small MLPs (policy
and value, two tanh layers of 64) updated in minibatches of 512 on one CPU thread, where the time goes to the
number of tensor operations (each costs its dispatch and autograd bookkeeping) as much as to arithmetic.
:class:`FastPPO` is stable-baselines3's ``PPO`` (rollouts, GAE, schedules, hyper-parameters, saving and
loading) with three parts computing the same numbers faster:

- :class:`FusedMlpPolicy`, its ``"MlpPolicy"``: SB3's ``ActorCriticPolicy`` whose policy and value MLPs (of
  equal layer widths) run as one batched network, :class:`FusedMlpExtractor`: each layer's two weight
  matrices stacked into one ``(2, in, out)`` tensor and applied by one batched matrix multiply. Still two
  separate networks (no weight shared), each block SB3's own orthogonally initialised ``nn.Linear`` weight,
  copied over after SB3 built it, so a seed gives the same initial weights as ``MlpPolicy``. Its tanh is
  computed through the sigmoid (:func:`fast_tanh`, half the cost). For discrete actions the
  log-probabilities and entropy come straight from ``log_softmax`` of the logits, the distribution of
  ``torch.distributions.Categorical`` without building one per call; actions are drawn from those
  probabilities with ``Categorical.sample``'s ``torch.multinomial`` call;
- :class:`TensorRolloutBuffer`: minibatches cut from tensors made once per rollout instead of six numpy
  copies per minibatch (same permutation, same rows);
- :meth:`FastPPO.train`: SB3's update loop with ``clip_grad_norm_``'s operations applied directly to the
  gradient list, the logged statistics computed once per update instead of per minibatch, and the entropy
  term left out of the backward pass when its coefficient is 0 (it adds exact zeros).

Results equal SB3's up to float32 rounding (tests/test_ppo_fast.py compares outputs, gradients, one update,
sampled actions and a short training run). Layouts that cannot be fused (different policy and value widths, a
non-shared features extractor), ``clip_range_vf`` and ``target_kl`` keep SB3's code paths. Saved models name
these classes, so they must stay importable under this path; models saved by SB3's ``PPO`` with its
``MlpPolicy`` load as before (``agents.ppo.load_agent``).
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Generator

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.distributions import CategoricalDistribution
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.torch_layers import MlpExtractor
from stable_baselines3.common.type_aliases import PyTorchObs, RolloutBufferSamples, Schedule
from stable_baselines3.common.utils import explained_variance
from torch import nn
from torch.nn import functional as F


# ------------------------------------------------------------------------------------------------ policy
class _SigmoidTanh(torch.autograd.Function):
    """``tanh(x)`` as ``2 * sigmoid(2 * x) - 1``, with ``torch.tanh``'s backward ``grad * (1 - y**2)``.

    The same function, within 2e-7 of ``torch.tanh`` (float32 rounding: a few units in the last place near
    +-1), at about half the cost: torch's float32 tanh takes ~4 ns an element on one CPU thread here, its
    sigmoid ~1.3 ns, and tanh was the largest single cost of the default network's update.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        y = torch.sigmoid(x * 2).mul_(2).sub_(1)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


def fast_tanh(x: torch.Tensor) -> torch.Tensor:
    """``tanh`` through the sigmoid (see :class:`_SigmoidTanh`); without autograd when no gradient is wanted."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _SigmoidTanh.apply(x)
    return torch.sigmoid(x * 2).mul_(2).sub_(1)


class _PairLinear(nn.Module):
    """Two ``nn.Linear`` layers of equal shape as one module: ``weight`` ``(2, in, out)`` (each block an
    ``nn.Linear.weight`` transposed) and ``bias`` ``(2, 1, out)``."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)


class FusedMlpExtractor(nn.Module):
    """The policy and value MLPs of equal layer widths, evaluated together by batched matrix multiplies.

    Block 0 of every layer is the policy network's, block 1 the value network's; per block,
    ``h -> activation(h @ W + b)`` as ``nn.Linear`` then the activation.

    :param layers: the stacked layers, first to last.
    :param activation_fn: the activation after every layer (SB3's ``activation_fn``).
    """

    def __init__(self, layers: list[_PairLinear], activation_fn: type[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.activation = activation_fn()
        # tanh, the default, through the sigmoid (half the cost, same function); others as SB3 applies them.
        self._act: Callable[[torch.Tensor], torch.Tensor] = (
            fast_tanh if activation_fn is nn.Tanh else self.activation.forward
        )
        self.latent_dim_pi = self.latent_dim_vf = int(layers[-1].weight.shape[-1])

    @classmethod
    def fuse(cls, extractor: MlpExtractor) -> FusedMlpExtractor | None:
        """The fused form of SB3's ``MlpExtractor`` with its current weights, or ``None`` when the policy
        and value networks differ in layout (then nothing is fused).

        :param extractor: SB3's extractor, as ``ActorCriticPolicy._build_mlp_extractor`` made it.
        """
        pi, vf = list(extractor.policy_net), list(extractor.value_net)
        # SB3 builds Linear, activation, Linear, activation, ...
        if not pi or len(pi) != len(vf) or len(pi) % 2:
            return None
        activation = type(pi[1])
        layers = []
        for k in range(0, len(pi), 2):
            lin_pi, lin_vf = pi[k], vf[k]
            if not (isinstance(lin_pi, nn.Linear) and isinstance(lin_vf, nn.Linear)):
                return None
            if lin_pi.weight.shape != lin_vf.weight.shape or lin_pi.bias is None or lin_vf.bias is None:
                return None
            if type(pi[k + 1]) is not activation or type(vf[k + 1]) is not activation:
                return None
            layers.append(_PairLinear(
                torch.stack([lin_pi.weight.detach().T, lin_vf.weight.detach().T]).contiguous(),
                torch.stack([lin_pi.bias.detach(), lin_vf.bias.detach()]).unsqueeze(1),
            ))
        if list(activation().parameters()):
            return None
        return cls(layers, activation)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(latent_pi, latent_vf)`` for a batch ``(n, in)`` of features."""
        h = features.unsqueeze(0).expand(2, *features.shape)
        for layer in self.layers:
            h = self._act(torch.baddbmm(layer.bias, h, layer.weight))
        # unbind, not h[0] and h[1]: its backward stacks the two gradients in one op.
        latent_pi, latent_vf = h.unbind(0)
        return latent_pi, latent_vf

    def _block(self, features: torch.Tensor, block: int) -> torch.Tensor:
        h = features
        for layer in self.layers:
            h = self._act(torch.addmm(layer.bias[block], h, layer.weight[block]))
        return h

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        """The policy network's latent alone (acting, without the value)."""
        return self._block(features, 0)

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        """The value network's latent alone."""
        return self._block(features, 1)


class FusedMlpPolicy(ActorCriticPolicy):
    """SB3's ``MlpPolicy`` (``ActorCriticPolicy``) with :class:`FusedMlpExtractor` and direct categorical
    log-probabilities; same constructor arguments, same initial weights for a seed, same outputs up to
    rounding. See the module docstring."""

    def _build(self, lr_schedule: Schedule) -> None:
        # SB3 builds and initialises its networks (drawing the same random numbers as MlpPolicy), then the
        # two MLPs move into the fused layout and the optimiser is made again over the new parameters.
        super()._build(lr_schedule)
        fused = FusedMlpExtractor.fuse(self.mlp_extractor) if self.share_features_extractor else None
        if fused is None:
            return
        self.mlp_extractor = fused
        self.optimizer = self.optimizer_class(  # type: ignore[call-arg]
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )

    @property
    def _direct_categorical(self) -> bool:
        return isinstance(self.action_dist, CategoricalDistribution) and self.share_features_extractor

    def _logits_and_values(self, obs: PyTorchObs) -> tuple[torch.Tensor, torch.Tensor]:
        latent_pi, latent_vf = self.mlp_extractor(self.extract_features(obs))
        return self.action_net(latent_pi), self.value_net(latent_vf)

    def forward(
        self, obs: torch.Tensor, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Action, value and log-probability of the action (SB3's ``ActorCriticPolicy.forward``)."""
        if not self._direct_categorical:
            return super().forward(obs, deterministic)
        logits, values = self._logits_and_values(obs)
        log_p = F.log_softmax(logits, dim=-1)
        probs = log_p.exp()
        if deterministic:
            actions = probs.argmax(dim=-1)
        else:
            # Categorical.sample's draw: one sample per row, with replacement.
            actions = torch.multinomial(probs, 1, True).squeeze(-1)
        log_prob = log_p.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        return actions.reshape((-1, *self.action_space.shape)), values, log_prob  # type: ignore[misc]

    def evaluate_actions(
        self, obs: PyTorchObs, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Value, log-likelihood of ``actions`` and entropy of the policy (SB3's
        ``ActorCriticPolicy.evaluate_actions``)."""
        if not self._direct_categorical:
            return super().evaluate_actions(obs, actions)
        logits, values = self._logits_and_values(obs)
        log_p = F.log_softmax(logits, dim=-1)
        log_prob = log_p.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
        # Categorical.entropy: -(logits * probs).sum(-1); its clamp of the logits only acts on -inf ones.
        entropy = -(log_p * log_p.exp()).sum(-1)
        return values, log_prob, entropy


# ------------------------------------------------------------------------------------------------ buffer
class TensorRolloutBuffer(RolloutBuffer):
    """SB3's ``RolloutBuffer`` handing out minibatches cut from tensors made once per rollout.

    SB3 indexes six numpy arrays and copies each into a new tensor for every minibatch; this buffer turns
    the flattened rollout into tensors once (when the first ``get`` flattens it, as SB3 does) and indexes
    those. Same permutation from numpy's global generator, same rows, same dtypes: the same minibatches.
    """

    _tensors: tuple[torch.Tensor, ...]

    def get(self, batch_size: int | None = None) -> Generator[RolloutBufferSamples, None, None]:
        """Minibatches of ``batch_size`` rows in a random order (the whole rollout at once for ``None``)."""
        assert self.full, "the rollout buffer must be full before sampling"
        n = self.buffer_size * self.n_envs
        indices = torch.from_numpy(np.random.permutation(n))
        if not self.generator_ready:
            for name in ("observations", "actions", "values", "log_probs", "advantages", "returns"):
                self.__dict__[name] = self.swap_and_flatten(self.__dict__[name])
            self.generator_ready = True
            self._tensors = (
                torch.as_tensor(self.observations, device=self.device),
                # SB3 hands actions out as float32 (PPO casts discrete ones back to integers).
                torch.as_tensor(self.actions.astype(np.float32, copy=False), device=self.device),
                *(torch.as_tensor(a.reshape(-1), device=self.device)
                  for a in (self.values, self.log_probs, self.advantages, self.returns)),
            )
        size = batch_size or n
        for start in range(0, n, size):
            rows = indices[start:start + size]
            yield RolloutBufferSamples(*(t.index_select(0, rows) for t in self._tensors))


# ------------------------------------------------------------------------------------------------ algorithm
def _clip_grad_norm(grads: list[torch.Tensor], max_norm: float) -> None:
    """``torch.nn.utils.clip_grad_norm_`` (2-norm, foreach) on a list of gradients of one device and dtype:
    the same operations without its per-call grouping and checks."""
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, torch.clamp(max_norm / (total + 1e-6), max=1.0))


def _batch_means(values: list[torch.Tensor], statistic: Callable[[torch.Tensor], torch.Tensor]) -> list[float]:
    """The mean of ``statistic`` over each tensor of ``values`` (minibatches of one size in one call)."""
    if len({v.shape for v in values}) == 1:
        return statistic(torch.stack(values)).mean(dim=1).tolist()
    return [statistic(v).mean().item() for v in values]


class FastPPO(PPO):
    """stable-baselines3's ``PPO`` with :class:`FusedMlpPolicy` as ``"MlpPolicy"``, :class:`TensorRolloutBuffer`
    as the default rollout buffer and a leaner :meth:`train`; the same arguments as ``PPO``."""

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {**PPO.policy_aliases, "MlpPolicy": FusedMlpPolicy}

    def _setup_model(self) -> None:
        if self.rollout_buffer_class is None and not isinstance(self.observation_space, spaces.Dict):
            self.rollout_buffer_class = TensorRolloutBuffer
        super()._setup_model()

    def train(self) -> None:
        """Update the policy on the rollout buffer: SB3's ``PPO.train`` (clipped surrogate, value and
        entropy losses, advantage normalisation, gradient clipping, its logged statistics)."""
        if self.clip_range_vf is not None or self.target_kl is not None:
            super().train()  # their per-minibatch branches stay SB3's
            return
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)  # type: ignore[operator]
        params = list(self.policy.parameters())
        discrete = isinstance(self.action_space, spaces.Discrete)
        pg_losses: list[torch.Tensor] = []
        value_losses: list[torch.Tensor] = []
        entropy_losses: list[torch.Tensor] = []
        ratios: list[torch.Tensor] = []
        log_ratios: list[torch.Tensor] = []
        for _ in range(self.n_epochs):
            log_ratios.clear()  # SB3 logs the approximate KL of the last epoch
            for rollout_data in self.rollout_buffer.get(self.batch_size):
                actions = rollout_data.actions.long().flatten() if discrete else rollout_data.actions
                values, log_prob, entropy = self.policy.evaluate_actions(rollout_data.observations, actions)
                values = values.flatten()
                advantages = rollout_data.advantages
                # Normalisation does not make sense for minibatches of one (SB3 GH issue #325).
                if self.normalize_advantage and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
                log_ratio = log_prob - rollout_data.old_log_prob
                ratio = torch.exp(log_ratio)
                policy_loss = -torch.min(
                    advantages * ratio, advantages * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)
                ).mean()
                value_loss = F.mse_loss(rollout_data.returns, values)
                entropy_loss = -torch.mean(-log_prob) if entropy is None else -torch.mean(entropy)
                if self.ent_coef:
                    loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss
                else:
                    # SB3 adds 0 * entropy_loss: exact zeros in the gradient; skipping saves its backward.
                    loss = policy_loss + self.vf_coef * value_loss
                pg_losses.append(policy_loss.detach())
                value_losses.append(value_loss.detach())
                entropy_losses.append(entropy_loss.detach())
                ratios.append(ratio.detach())
                log_ratios.append(log_ratio.detach())

                for p in params:
                    p.grad = None  # the optimiser's zero_grad (set_to_none)
                loss.backward()
                _clip_grad_norm([p.grad for p in params if p.grad is not None], self.max_grad_norm)
                self.policy.optimizer.step()
            self._n_updates += 1

        explained_var = explained_variance(self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten())
        # SB3's statistics, per minibatch, then averaged.
        clip_fractions = _batch_means(ratios, lambda r: ((r - 1).abs() > clip_range).float())
        approx_kl_divs = _batch_means(log_ratios, lambda lr: (torch.exp(lr) - 1) - lr)
        self.logger.record("train/entropy_loss", np.mean(torch.stack(entropy_losses).tolist()))
        self.logger.record("train/policy_gradient_loss", np.mean(torch.stack(pg_losses).tolist()))
        self.logger.record("train/value_loss", np.mean(torch.stack(value_losses).tolist()))
        self.logger.record("train/approx_kl", np.mean(approx_kl_divs))
        self.logger.record("train/clip_fraction", np.mean(clip_fractions))
        self.logger.record("train/loss", loss.item())
        self.logger.record("train/explained_variance", explained_var)
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", torch.exp(self.policy.log_std).mean().item())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
