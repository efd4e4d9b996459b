"""The fill model: the scalar and batched versions agree, costs and limits hold."""

from __future__ import annotations

import math

import numpy as np
import pytest

from envs.sim.execution import (
    ConfigError,
    ExecutionConfig,
    rebalance,
    rebalance_one,
    update_cost_basis,
    update_cost_basis_one,
)

CONFIGS = [
    ExecutionConfig(),
    ExecutionConfig(commission=0.002, fractional=False, allow_short=True),
    ExecutionConfig(commission=0.0005, commission_per_share=0.01, slippage_bps=5, spread_bps=10),
    ExecutionConfig(allow_short=True, max_leverage=2.0, slippage_bps=1),
]


@pytest.mark.parametrize("config", CONFIGS)
def test_scalar_twin_matches_batched_rebalance_bit_for_bit(config: ExecutionConfig) -> None:
    rng = np.random.default_rng(0)
    n = 2000
    cash = rng.uniform(0, 2e5, n)
    shares = rng.integers(-500, 1500, n).astype(float)
    if not config.allow_short:
        shares = np.abs(shares)
    low_w = -1.0 if config.allow_short else 0.0
    target = rng.uniform(low_w, 1.0, n)
    target[::7] = 0.0
    price = rng.uniform(5, 300, n)
    low, high = price * rng.uniform(0.97, 1.0, n), price * rng.uniform(1.0, 1.03, n)
    batched = rebalance(cash, shares[:, None], target[:, None], price[:, None], low[:, None], high[:, None], config)
    for i in range(n):
        one = rebalance_one(cash[i], shares[i], target[i], price[i], low[i], high[i], config)
        assert one[0] == batched.cash[i]
        assert one[1] == batched.shares[i, 0]
        assert one[2] == batched.traded[i, 0]
        if one[2]:
            assert one[3] == batched.fill_price[i, 0]
        assert one[4] == pytest.approx(batched.commission[i, 0], rel=1e-15, abs=1e-12)
        assert one[5] == pytest.approx(batched.impact_cost[i, 0], rel=1e-15, abs=1e-12)


@pytest.mark.parametrize("config", CONFIGS)
def test_cash_never_negative_without_margin_and_fills_inside_bar(config: ExecutionConfig) -> None:
    rng = np.random.default_rng(1)
    n, s = 500, 4
    cash = rng.uniform(0, 1e5, n)
    shares = rng.uniform(0, 300, (n, s))
    if not config.fractional:
        shares = np.floor(shares)
    target = rng.dirichlet(np.ones(s + 1), n)[:, :s] * rng.uniform(0.5, 1.0, (n, 1))
    price = rng.uniform(10, 200, (n, s))
    low, high = price * 0.995, price * 1.002
    result = rebalance(cash, shares, target, price, low, high, config)
    if config.max_leverage == 1.0:
        assert (result.cash >= -1e-6).all()
    traded = result.traded != 0
    assert (result.fill_price[traded] >= low[traded] - 1e-12).all()
    assert (result.fill_price[traded] <= high[traded] + 1e-12).all()
    if not config.fractional:
        np.testing.assert_array_equal(result.shares, np.round(result.shares))


def test_full_weight_from_cash_spends_cash_on_shares_and_commission() -> None:
    config = ExecutionConfig(commission=0.002, fractional=True)
    res = rebalance(np.array([10_000.0]), np.zeros((1, 1)), np.ones((1, 1)), np.full((1, 1), 50.0),
                    np.full((1, 1), 49.0), np.full((1, 1), 51.0), config)
    assert res.cash[0] == pytest.approx(0.0, abs=1e-9)
    assert res.shares[0, 0] == pytest.approx(10_000 / (50 * 1.002))


def test_inactive_symbols_do_not_trade() -> None:
    config = ExecutionConfig()
    shares = np.array([[10.0, 20.0]])
    res = rebalance(np.array([1000.0]), shares, np.array([[0.0, 0.0]]), np.array([[10.0, 10.0]]),
                    np.array([[9.0, 9.0]]), np.array([[11.0, 11.0]]), config, active=np.array([[True, False]]))
    np.testing.assert_array_equal(res.shares, [[0.0, 20.0]])


def test_cost_basis_average_reduce_and_cross() -> None:
    cost, realised = update_cost_basis_one(0.0, math.nan, 10.0, 100.0)
    assert (cost, realised) == (100.0, 0.0)
    cost, realised = update_cost_basis_one(10.0, cost, 10.0, 110.0)
    assert cost == pytest.approx(105.0) and realised == 0.0
    cost, realised = update_cost_basis_one(20.0, cost, -5.0, 120.0)
    assert cost == pytest.approx(105.0) and realised == pytest.approx(75.0)
    cost, realised = update_cost_basis_one(15.0, cost, -20.0, 100.0)
    assert cost == 100.0 and realised == pytest.approx(-75.0)
    cost, realised = update_cost_basis_one(-5.0, cost, 5.0, 90.0)
    assert math.isnan(cost) and realised == pytest.approx(50.0)
    rng = np.random.default_rng(2)
    shares = rng.integers(-10, 10, 300).astype(float)
    avg = np.where(shares != 0, rng.uniform(50, 150, 300), np.nan)
    traded = rng.integers(-15, 15, 300).astype(float)
    fill = rng.uniform(50, 150, 300)
    batched_cost, batched_realised = update_cost_basis(shares, avg, traded, fill)
    for i in range(300):
        c1, r1 = update_cost_basis_one(shares[i], avg[i], traded[i], fill[i])
        assert r1 == pytest.approx(batched_realised[i], abs=1e-9)
        assert (math.isnan(c1) and math.isnan(batched_cost[i])) or c1 == pytest.approx(batched_cost[i])


@pytest.mark.parametrize(
    "field, value",
    [("commission", -0.1), ("commission", 1.5), ("slippage_bps", float("nan")), ("max_leverage", 0.5),
     ("fill_at", "tomorrow"), ("fractional", "yes")],
)
def test_bad_config_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        ExecutionConfig(**{field: value})
