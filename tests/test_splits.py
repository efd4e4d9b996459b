"""Walk-forward splits: no overlap between train and test, gaps respected, windows as documented."""

from __future__ import annotations

import doctest

import pytest

from envs.data import splits
from envs.data.splits import WalkForward


def test_module_example_holds():
    assert doctest.testmod(splits).failed == 0


@pytest.mark.parametrize("anchored", [False, True])
@pytest.mark.parametrize("gap", [0, 5])
def test_test_windows_follow_train_and_tile_the_data(anchored, gap):
    folds = WalkForward(train_size=50, test_size=20, anchored=anchored, gap=gap).split(200)
    assert len(folds) == (200 - 50 - gap - 20) // 20 + 1
    for k, fold in enumerate(folds):
        assert fold.fold == k
        assert fold.test.start - fold.train.stop == gap
        assert fold.test.stop - fold.test.start == 20
        assert fold.train.start == (0 if anchored else k * 20)
        assert fold.train.stop == 50 + k * 20
        assert set(fold.train_index).isdisjoint(fold.test_index)
        assert fold.test.stop <= 200
    tests = [i for f in folds for i in f.test_index]
    assert tests == list(range(folds[0].test.start, folds[-1].test.stop))


def test_custom_step_overlaps_test_windows():
    folds = WalkForward(train_size=10, test_size=10, step=5).split(40)
    assert [(f.test.start, f.test.stop) for f in folds] == [(10, 20), (15, 25), (20, 30), (25, 35), (30, 40)]


def test_too_short_and_bad_sizes_raise_clear_errors():
    with pytest.raises(ValueError, match="too short for one fold"):
        WalkForward(train_size=50, test_size=20, gap=10).split(79)
    with pytest.raises(ValueError, match="test_size must be at least 1"):
        WalkForward(train_size=5, test_size=0)
    with pytest.raises(ValueError, match="gap must be non-negative"):
        WalkForward(train_size=5, test_size=5, gap=-1)
