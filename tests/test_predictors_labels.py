"""Labels: what a decision at bar t earns, nothing the features at t could not see, purged at a cut."""

from __future__ import annotations

import numpy as np
import pytest
from predictor_fixtures import market, shuffle_after

from agents.predictors.labels import Labels, check_horizons


def test_label_is_the_return_from_next_open_over_the_horizon() -> None:
    data = market()
    labels = Labels.from_opens(data.open, (1, 5, 20))
    log_open = np.log(data.open)
    for k, h in enumerate(labels.horizons):
        t = np.arange(data.n_bars - 1 - h)
        np.testing.assert_allclose(labels.returns[t, :, k], log_open[t + 1 + h] - log_open[t + 1])
        assert np.isnan(labels.returns[data.n_bars - 1 - h :, :, k]).all()


def test_label_end_is_the_last_bar_read() -> None:
    labels = Labels.from_opens(market().open, (1, 5, 20))
    assert labels.end(10).tolist() == [12, 16, 31]
    assert labels.end(np.array([0, 3])).tolist() == [[2, 6, 21], [5, 9, 24]]


def test_label_at_t_ignores_bars_up_to_t_and_after_its_end() -> None:
    data = market()
    labels = Labels.from_opens(data.open, (1, 5, 20))
    t = 200
    values = data.values.copy()
    values[: t + 1, :, 0] *= 1.3  # the open of every bar up to and including the decision bar
    before = Labels.from_opens(values[:, :, 0], (1, 5, 20)).returns
    np.testing.assert_array_equal(before[t], labels.returns[t])
    # Shuffling every bar after the last one the label reads leaves it unchanged.
    for k, h in enumerate(labels.horizons):
        shuffled = Labels.from_opens(shuffle_after(data, t + 1 + h).open, labels.horizons)
        np.testing.assert_array_equal(shuffled.returns[: t + 1, :, k], labels.returns[: t + 1, :, k])


def test_until_drops_exactly_the_labels_reaching_the_cut() -> None:
    labels = Labels.from_opens(market().open, (1, 5, 20))
    stop = 300
    cut = labels.until(stop).returns
    for k, h in enumerate(labels.horizons):
        last_kept = stop - 2 - h  # its label reads bar stop - 1
        np.testing.assert_array_equal(cut[: last_kept + 1, :, k], labels.returns[: last_kept + 1, :, k])
        assert np.isnan(cut[last_kept + 1 :, :, k]).all()


def test_direction_keeps_unknown_labels_unknown() -> None:
    labels = Labels.from_opens(market().open, (1, 20))
    direction = labels.direction
    known = np.isfinite(labels.returns)
    assert set(np.unique(direction[known])) <= {0.0, 1.0}
    np.testing.assert_array_equal(direction[known] == 1.0, labels.returns[known] > 0)
    assert np.isnan(direction[~known]).all()


@pytest.mark.parametrize("bad", [(), (0, 5), (5, 5)])
def test_bad_horizons_raise(bad: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="horizons"):
        check_horizons(bad)
