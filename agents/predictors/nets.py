"""Sequence models in torch (CPU): an LSTM or GRU and a small Transformer encoder over the last bars.

Each sample is the window of the last :attr:`TorchPredictor.window` feature rows up to the decision bar;
the network outputs one logit per horizon and is trained with a binary cross-entropy that skips missing
labels, so every horizon learns from every sample that has its label.

Daily returns are mostly noise and a network fits noise within a few epochs, so training stops early:
the latest ``validation`` share of the train bars is held out (with the labels that read it purged from
the rest, see :func:`~agents.predictors.base.time_split`), and the weights of the epoch with the lowest
held-out loss are kept.

Training is reproducible: the global torch RNG is forked and seeded, mini-batches are shuffled by a seeded
generator, deterministic algorithms are enforced and torch runs one thread (the default intra-op pool
would both fight the other processes for two cores and reorder float reductions).
"""

from __future__ import annotations

import copy
import logging
from contextlib import contextmanager
from typing import Iterator, Literal

import numpy as np
import torch
from torch import nn

from agents.predictors.base import Predictor, check_fit_inputs, gather, time_split

logger = logging.getLogger(__name__)

Architecture = Literal["lstm", "gru", "transformer"]
ARCHITECTURES: tuple[str, ...] = ("lstm", "gru", "transformer")


@contextmanager
def deterministic_torch(seed: int) -> Iterator[None]:
    """Seed torch, force deterministic single-threaded kernels, and restore the global state afterwards.

    :param seed: seed of weight initialisation and dropout.
    """
    threads = torch.get_num_threads()
    strict = torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(strict)
            torch.set_num_threads(threads)


class RecurrentNet(nn.Module):
    """LSTM or GRU over the window; the last hidden state feeds a linear head.

    :param cell: ``"lstm"`` or ``"gru"``.
    :param n_features: inputs per bar.
    :param n_outputs: one logit per horizon.
    :param hidden: hidden units.
    :param layers: stacked recurrent layers.
    :param dropout: dropout on the last hidden state.
    """

    def __init__(
        self, cell: str, n_features: int, n_outputs: int, hidden: int = 32, layers: int = 1, dropout: float = 0.1
    ) -> None:
        super().__init__()
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(n_features, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


class TransformerNet(nn.Module):
    """A small pre-norm Transformer encoder with learned positions; the last bar's token feeds the head.

    :param n_features: inputs per bar.
    :param n_outputs: one logit per horizon.
    :param window: bars per sample (number of positions).
    :param hidden: model width ``d_model``.
    :param layers: encoder layers.
    :param heads: attention heads (must divide ``hidden``).
    :param dropout: dropout inside the encoder and before the head.
    """

    def __init__(
        self, n_features: int, n_outputs: int, window: int, hidden: int = 32, layers: int = 2,
        heads: int = 4, dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads})")
        self.embed = nn.Linear(n_features, hidden)
        self.position = nn.Parameter(torch.zeros(1, window, hidden))
        nn.init.normal_(self.position, std=0.02)
        block = nn.TransformerEncoderLayer(
            hidden, heads, dim_feedforward=2 * hidden, dropout=dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(hidden), nn.Dropout(dropout), nn.Linear(hidden, n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.encoder(self.embed(x) + self.position)
        return self.head(z[:, -1])


def _masked_bce(logits: torch.Tensor, y: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over the known labels only."""
    loss = nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
    return (loss * known).sum() / known.sum().clamp(min=1.0)


class TorchPredictor(Predictor):
    """A sequence network trained with Adam on a masked binary cross-entropy.

    :param arch: ``"lstm"``, ``"gru"`` or ``"transformer"``.
    :param horizons: forecast horizons in bars.
    :param seed: seed of initialisation, dropout and shuffling.
    :param window: bars of history per sample.
    :param hidden: hidden units (model width of the Transformer).
    :param layers: recurrent or encoder layers.
    :param heads: attention heads (Transformer only).
    :param dropout: dropout rate.
    :param epochs: maximum passes over the training samples.
    :param batch_size: samples per gradient step.
    :param lr: Adam learning rate.
    :param weight_decay: AdamW weight decay.
    :param validation: share of the train bars (the latest) held out for early stopping; 0 trains on all
        of them for ``epochs`` epochs.
    :param patience: epochs without a better held-out loss before training stops.
    """

    def __init__(
        self, arch: Architecture, horizons: tuple[int, ...], seed: int = 0, window: int = 20,
        hidden: int = 32, layers: int | None = None, heads: int = 4, dropout: float = 0.1,
        epochs: int = 20, batch_size: int = 256, lr: float = 1e-3, weight_decay: float = 1e-4,
        validation: float = 0.2, patience: int = 3,
    ) -> None:
        super().__init__(horizons, seed)
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown network {arch!r}; choose one of {ARCHITECTURES}")
        for name, value in (("window", window), ("hidden", hidden), ("epochs", epochs), ("batch_size", batch_size)):
            if int(value) < 1:
                raise ValueError(f"{arch}.{name} must be at least 1, got {value}")
        if not 0 <= validation <= 0.5:
            raise ValueError(f"{arch}.validation must be in [0, 0.5], got {validation}")
        self.arch = arch
        self.window = int(window)
        self.hidden = int(hidden)
        self.layers = int(layers) if layers is not None else (2 if arch == "transformer" else 1)
        self.heads = int(heads)
        self.dropout = float(dropout)
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.validation = float(validation)
        self.patience = int(patience)
        self.net: nn.Module | None = None
        #: per epoch: (train loss, held-out loss or NaN), and the epoch whose weights were kept.
        self.history: list[tuple[float, float]] = []
        self.best_epoch = -1

    def _build(self, n_features: int) -> nn.Module:
        n_out = len(self.horizons)
        if self.arch == "transformer":
            return TransformerNet(n_features, n_out, self.window, self.hidden, self.layers, self.heads, self.dropout)
        return RecurrentNet(self.arch, n_features, n_out, self.hidden, self.layers, self.dropout)

    def _windows(self, cube: np.ndarray, rows: np.ndarray) -> torch.Tensor:
        x = gather(cube, rows, self.window)
        if not np.isfinite(x).all():
            raise ValueError(f"{self.arch}: input windows contain NaN; samples must start after the warm-up")
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    def fit(self, cube: np.ndarray, rows: np.ndarray, labels: np.ndarray) -> "TorchPredictor":
        check_fit_inputs(cube, rows, labels, self.horizons)
        if self.validation > 0:
            fitting, held_out, purged = time_split(rows, labels, self.horizons, self.validation)
        else:
            fitting, held_out, purged = np.ones(len(rows), dtype=bool), np.zeros(len(rows), dtype=bool), labels
        x, y, known = self._tensors(cube, rows[fitting], purged[fitting])
        x_val, y_val, known_val = self._tensors(cube, rows[held_out], labels[held_out])
        with deterministic_torch(self.seed):
            net = self._build(x.shape[-1])
            optimiser = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            shuffle = torch.Generator().manual_seed(self.seed)
            self.history, self.best_epoch = [], -1
            best_loss, best_state = np.inf, None
            for epoch in range(self.epochs):
                net.train()
                total = 0.0
                for batch in torch.randperm(len(x), generator=shuffle).split(self.batch_size):
                    loss = _masked_bce(net(x[batch]), y[batch], known[batch])
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
                    total += loss.item() * len(batch)
                val_loss = self._held_out_loss(net, x_val, y_val, known_val)
                self.history.append((total / len(x), val_loss))
                logger.debug("%s epoch %d: train loss %.5f, held-out %.5f", self.arch, epoch, *self.history[-1])
                if not np.isfinite(val_loss):
                    self.best_epoch = epoch
                    continue
                if val_loss < best_loss:
                    best_loss, best_state, self.best_epoch = val_loss, copy.deepcopy(net.state_dict()), epoch
                elif epoch - self.best_epoch >= self.patience:
                    break
            if best_state is not None:
                net.load_state_dict(best_state)
        self.net = net.eval()
        return self

    def _tensors(
        self, cube: np.ndarray, rows: np.ndarray, labels: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        known = torch.from_numpy(np.isfinite(labels).astype(np.float32))
        y = torch.from_numpy(np.nan_to_num(labels, nan=0.0).astype(np.float32))
        return self._windows(cube, rows), y, known

    @staticmethod
    def _held_out_loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor, known: torch.Tensor) -> float:
        if not known.sum():
            return float("nan")
        net.eval()
        with torch.no_grad():
            return _masked_bce(net(x), y, known).item()

    def predict_proba(self, cube: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if self.net is None:
            raise RuntimeError(f"{self.arch}: call fit() before predict_proba()")
        x = self._windows(cube, rows)
        with deterministic_torch(self.seed), torch.no_grad():
            chunks = [self.net(chunk) for chunk in x.split(4096)]
            logits = torch.cat(chunks) if chunks else torch.empty(0, len(self.horizons))
        return torch.sigmoid(logits).double().numpy()
