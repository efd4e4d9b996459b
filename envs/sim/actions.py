"""Action modes: how an action in the env's space becomes target weights of equity per symbol.

``discrete``: one choice per symbol, flat/long (or short/flat/long when shorting is allowed); chosen
symbols share the equity equally. ``weights``: target weight per symbol in ``[-1, 1]`` (``[0, 1]`` long-only);
if the gross weight exceeds the leverage limit every weight is scaled down by the same factor. This is the
mode rule bots and the risk layer speak. ``continuous``: the multi-asset allocation form, weights for every
symbol plus a cash weight (last), normalised by their absolute sum, which suits a policy network.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

ACTION_MODES = ("discrete", "weights", "continuous")


def cap_gross(weights: np.ndarray, max_leverage: float) -> np.ndarray:
    """Weights ``(..., S)`` scaled down by one factor per row where their gross exceeds ``max_leverage``.

    :param weights: target weights, one row per account.
    :param max_leverage: cap on the sum of absolute weights.
    """
    gross = np.abs(weights).sum(axis=-1, keepdims=True)
    return np.where(gross > max_leverage, weights * (max_leverage / np.maximum(gross, 1e-12)), weights)


class InvalidActionError(ValueError):
    """The action is outside the env's action space; the message says what was expected."""


class ActionAdapter:
    """Builds the action space and converts actions into target weights.

    :param mode: one of :data:`ACTION_MODES`.
    :param n_symbols: number of tradable symbols.
    :param allow_short: whether negative weights are allowed.
    :param max_leverage: cap on gross weight.
    :param position_size: weight of a full-conviction action (the experiment spec's sizing fraction): every
        weight the action maps to is multiplied by it, so a discrete "long" holds this share of equity.
    """

    def __init__(
        self, mode: str, n_symbols: int, allow_short: bool, max_leverage: float = 1.0, position_size: float = 1.0
    ) -> None:
        if mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be one of {ACTION_MODES}, got {mode!r}")
        if not 0 < position_size <= max_leverage:
            raise ValueError(f"position_size must be in (0, max_leverage={max_leverage}], got {position_size!r}")
        self.position_size = float(position_size)
        self.mode = mode
        self.n_symbols = n_symbols
        self.allow_short = allow_short
        self.max_leverage = max_leverage
        low = -1.0 if allow_short else 0.0
        if mode == "discrete":
            self.n_choices = 3 if allow_short else 2
            self.space: spaces.Space = (
                spaces.Discrete(self.n_choices)
                if n_symbols == 1
                else spaces.MultiDiscrete([self.n_choices] * n_symbols)
            )
            # choice index -> signed weight before equal sharing (0 = short if allowed, else flat)
            self._choice_weight = np.array([-1.0, 0.0, 1.0] if allow_short else [0.0, 1.0]) * self.position_size
        elif mode == "weights":
            self.space = spaces.Box(low, 1.0, shape=(n_symbols,), dtype=np.float32)
        else:
            self.space = spaces.Box(low, 1.0, shape=(n_symbols + 1,), dtype=np.float32)
        self._low = low

    def describe(self) -> str:
        """One line saying what a valid action is."""
        if self.mode == "discrete":
            names = "short/flat/long as 0/1/2" if self.allow_short else "flat/long as 0/1"
            return f"{self.space} ({names})"
        return f"{self.space}"

    def _invalid(self, action: Any, why: str) -> InvalidActionError:
        return InvalidActionError(f"invalid action {action!r}: {why}; expected {self.describe()}")

    def to_weights(self, action: Any) -> np.ndarray:
        """Target weights ``(S,)`` for ``action``; raises :class:`InvalidActionError` when outside the space."""
        return self.to_weights_batch(action, batch=False)[0]

    def to_weights_batch(self, actions: Any, batch: bool = True) -> np.ndarray:
        """Target weights ``(N, S)`` for a batch of actions (one per row), validated like :meth:`to_weights`.

        :param actions: ``N`` actions stacked on the first axis.
        :param batch: False when ``actions`` is a single action (errors then do not name an env index).
        """
        arr = np.asarray(actions)
        shape = self.space.shape
        if not batch:
            if arr.size != max(1, int(np.prod(shape))):
                raise self._invalid(actions, f"need {max(1, int(np.prod(shape)))} value(s)")
            arr = arr.reshape((1, *shape))
        elif arr.ndim == len(shape):
            arr = arr.reshape(-1, *shape) if shape else arr.reshape(-1)
        if self.mode == "discrete":
            if arr.dtype.kind not in "iub":
                raise self._invalid(actions, "choices must be integers")
            arr = arr.reshape(arr.shape[0], self.n_symbols)
            bad = (arr < 0) | (arr >= self.n_choices)
            if bad.any():
                raise self._batch_invalid(actions, bad, f"choices must be in [0, {self.n_choices - 1}]", batch)
            weights = self._choice_weight[arr]
            active = np.count_nonzero(weights, axis=1)[:, None]
            return weights / np.maximum(active, 1)
        arr = arr.astype(np.float64, copy=False)
        if arr.shape[1:] != shape:
            raise self._invalid(actions, f"shape {arr.shape[1:]} != {shape}")
        tol = 1e-6
        bad = ~np.isfinite(arr) | (arr < self._low - tol) | (arr > 1.0 + tol)
        if bad.any():
            raise self._batch_invalid(actions, bad, f"values must be finite and in [{self._low}, 1]", batch)
        arr = np.clip(arr, self._low, 1.0)
        if self.mode == "continuous":
            total = np.abs(arr).sum(axis=1, keepdims=True)
            with np.errstate(divide="ignore", invalid="ignore"):
                weights = np.where(total > 1e-12, arr[:, :-1] / total, 0.0)
            return weights * (self.max_leverage * self.position_size)
        capped = cap_gross(arr, self.max_leverage)
        return capped * self.position_size if self.position_size != 1.0 else capped

    def _batch_invalid(self, actions: Any, bad: np.ndarray, why: str, batch: bool) -> InvalidActionError:
        row = int(np.argwhere(bad)[0][0])
        if not batch:
            return self._invalid(actions, why)
        return self._invalid(np.asarray(actions)[row], f"{why} (env {row})")

    def from_weights(self, weights: np.ndarray) -> np.ndarray:
        """An action of this mode that maps to ``weights`` (``weights`` and ``continuous`` modes)."""
        w = np.asarray(weights, dtype=np.float32).reshape(self.n_symbols)
        if self.mode == "weights":
            return w
        if self.mode == "continuous":
            return np.append(w, max(0.0, 1.0 - float(np.abs(w).sum()))).astype(np.float32)
        raise ValueError("discrete actions cannot express arbitrary weights; use action_mode='weights'")
