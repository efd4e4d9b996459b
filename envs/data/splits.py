"""Walk-forward train/test splits over a time axis: rolling or anchored windows with a purge gap.

Every test window lies strictly after its train window, so a model or a parameter choice fitted on train
is only ever scored on data it could not have seen. ``gap`` drops bars between the end of train and the
start of test: set it to the label horizon of a predictor (a label at t that looks h bars ahead overlaps
the test window unless h bars are purged), or to an embargo long enough for serial correlation to fade.

>>> [(s.train.start, s.train.stop, s.test.start, s.test.stop) for s in WalkForward(4, 2).split(10)]
[(0, 4, 4, 6), (2, 6, 6, 8), (4, 8, 8, 10)]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Split:
    """One fold: integer positions of its train and test bars.

    :param fold: fold number, from 0.
    :param train: positions of the train bars.
    :param test: positions of the test bars.
    """

    fold: int
    train: slice
    test: slice

    @property
    def train_index(self) -> np.ndarray:
        """Train positions as an integer array (for ``iloc``/fancy indexing)."""
        return np.arange(self.train.start, self.train.stop)

    @property
    def test_index(self) -> np.ndarray:
        """Test positions as an integer array."""
        return np.arange(self.test.start, self.test.stop)


@dataclass(frozen=True)
class WalkForward:
    """Walk-forward split configuration.

    :param train_size: bars in each train window (the first one, when anchored).
    :param test_size: bars in each test window.
    :param step: bars the windows move forward per fold; defaults to ``test_size`` so test windows tile
        the data without overlap.
    :param anchored: if True every train window starts at bar 0 and grows; if False it rolls with a fixed
        length.
    :param gap: bars left out between the end of train and the start of test (purge/embargo).
    """

    train_size: int
    test_size: int
    step: int | None = None
    anchored: bool = False
    gap: int = 0

    def __post_init__(self) -> None:
        for name in ("train_size", "test_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.step is not None and self.step < 1:
            raise ValueError(f"step must be at least 1, got {self.step}")
        if self.gap < 0:
            raise ValueError(f"gap must be non-negative, got {self.gap}")

    def split(self, n_bars: int) -> list[Split]:
        """All folds whose full test window fits in ``n_bars``.

        :param n_bars: length of the time axis.
        """
        step = self.step or self.test_size
        first_test = self.train_size + self.gap
        n_folds = (n_bars - first_test - self.test_size) // step + 1
        if n_folds < 1:
            raise ValueError(
                f"{n_bars} bars is too short for one fold: need train_size {self.train_size} + gap "
                f"{self.gap} + test_size {self.test_size} = {first_test + self.test_size}"
            )
        folds = []
        for k in range(n_folds):
            train_stop = self.train_size + k * step
            train_start = 0 if self.anchored else train_stop - self.train_size
            test_start = train_stop + self.gap
            folds.append(
                Split(k, slice(train_start, train_stop), slice(test_start, test_start + self.test_size))
            )
        return folds
