"""Crypto as an asset class: the synthetic 24/7 market, fractional quantities, per-asset fees in basis
points and minimum order sizes through the one fill implementation, and the envs on crypto data."""

from __future__ import annotations

import gymnasium as gym
from gymnasium.utils.env_checker import check_env
import numpy as np
import pytest
import scipy.stats

import envs  # noqa: F401  (registers the envs)
from brokers.base import OrderRejected, OrderRequest, Side
from brokers.sim import SimBroker
from envs.data.crypto import generate_crypto_market
from envs.data.sources import load_data
from envs.environments.vector import TradingVectorEnv
from envs.features import FeatureConfig
from envs.sim.execution import ConfigError, ExecutionConfig, rebalance, rebalance_one
from envs.sim.replay import replay_weights

COSTS = ExecutionConfig(commission=0.001, asset_costs=("BTC/USD:25:0.001", "ETH/USD:15:0.01"))


@pytest.fixture(scope="module")
def market():
    return generate_crypto_market(n_bars=24 * 365 * 2, seed=11)


def test_synthetic_crypto_has_fat_tails_clustering_and_quiet_weekends(market):
    r = np.diff(np.log(market.close), axis=0)
    assert market.calendar.name == "24/7" and market.frequency.label == "1h"
    assert (market.index.day_of_week >= 5).mean() == pytest.approx(2 / 7, abs=0.01)
    # Fat tails: excess kurtosis far above a normal's 0.
    assert (scipy.stats.kurtosis(r, axis=0) > 5).all()
    # Volatility clustering: absolute returns are autocorrelated, raw returns are not.
    a = np.abs(r[:, 0])
    assert np.corrcoef(a[1:], a[:-1])[0, 1] > 0.1
    assert abs(np.corrcoef(r[1:, 0], r[:-1, 0])[0, 1]) < 0.05
    weekend = market.index[1:].day_of_week >= 5
    assert (r[weekend].std(axis=0) < 0.85 * r[~weekend].std(axis=0)).all()
    assert (market.volume[1:][weekend].mean(axis=0) < 0.7 * market.volume[1:][~weekend].mean(axis=0)).all()
    assert r.std(axis=0).mean() * np.sqrt(8766) == pytest.approx(0.7, rel=0.15)
    same = generate_crypto_market(n_bars=24 * 365 * 2, seed=11)
    assert np.array_equal(same.values, market.values)


def test_asset_costs_are_validated_and_resolved_per_symbol():
    assert COSTS.for_symbol("BTC/USD").commission == pytest.approx(0.0025)
    assert COSTS.for_symbol("BTC/USD").min_order_qty == 0.001
    assert COSTS.for_symbol("SPY") is COSTS
    commission, min_qty = COSTS.per_symbol(("SPY", "ETH/USD"))
    assert commission.tolist() == [0.001, pytest.approx(0.0015)] and min_qty.tolist() == [0.0, 0.01]
    with pytest.raises(ConfigError, match="asset_costs entry 'BTC/USD' is not SYMBOL:FEE_BPS"):
        ExecutionConfig(asset_costs=("BTC/USD",))
    with pytest.raises(ConfigError, match="fee in"):
        ExecutionConfig(asset_costs=("BTC/USD:-3",))


def test_the_batched_and_scalar_fills_agree_with_a_minimum_order_size():
    rng = np.random.default_rng(4)
    config = COSTS.for_symbol("BTC/USD")
    for _ in range(2000):
        cash = float(rng.uniform(0, 2_000))
        shares = float(rng.choice([0.0, rng.uniform(0, 0.05)]))
        target = float(rng.choice([0.0, rng.uniform(0, 1)]))
        price, low, high = 30_000.0, 29_000.0, 31_000.0
        one = rebalance_one(cash, shares, target, price, low, high, config)
        many = rebalance(np.array([cash]), np.array([[shares]]), np.array([[target]]), np.array([[price]]),
                         np.array([[low]]), np.array([[high]]), COSTS, symbols=("BTC/USD",))
        assert one == (float(many.cash[0]), float(many.shares[0, 0]), float(many.traded[0, 0]),
                       float(many.fill_price[0, 0]), float(many.commission[0, 0]), float(many.impact_cost[0, 0]))
        if one[2] != 0.0 and target != 0.0:
            assert abs(one[2]) >= 0.001
        if one[2] != 0.0:
            assert one[4] == pytest.approx(abs(one[2]) * one[3] * 0.0025)


def test_stocks_env_trades_fractional_bitcoin_with_its_fee_and_minimum(market):
    btc = market.select(["BTC/USD"])
    costs = ExecutionConfig(asset_costs=("BTC/USD:25:0.05",))
    env = gym.make("AlpacaGym/Stocks-v0", data=btc, action_mode="weights", execution=costs).unwrapped
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([0.5], dtype=np.float32))
    (fill,) = info["fills"]
    assert 0 < fill.quantity < 3 and fill.quantity != int(fill.quantity), "fractional coins"
    assert fill.commission == pytest.approx(fill.quantity * fill.price * 0.0025)
    # A move to 51% is worth less than the 0.05 BTC minimum order size: nothing fills.
    price = btc.open[env._t + 1, 0]
    wanted = np.float32(0.51) * (env._cash + env._shares * price) / price - env._shares
    assert 0 < wanted < 0.05
    _, _, _, _, info = env.step(np.array([0.51], dtype=np.float32))
    assert info["fills"] == ()
    _, _, _, _, info = env.step(np.array([0.0], dtype=np.float32))
    assert info["fills"][0].quantity == pytest.approx(-fill.quantity), "closing is never held back"


def test_portfolio_env_vector_env_and_replay_charge_the_same_per_asset_fees(market):
    data = market.iloc(slice(0, 400))
    rng = np.random.default_rng(2)
    weights = np.round(rng.dirichlet([1, 1], size=data.n_bars) * rng.choice([0.0, 0.5, 0.9], (data.n_bars, 1)), 3)
    env = gym.make("AlpacaGym/Portfolio-v0", data=data, action_mode="weights", execution=COSTS,
                   window_size=1).unwrapped
    env.reset(seed=0)
    start = env._t
    for t in range(start, data.n_bars - 1):
        env.step(weights[t].astype(np.float32))
    replay = replay_weights(data, weights.astype(np.float32).astype(np.float64), COSTS, env.initial_cash, start)
    assert replay.equity.iloc[-1] == pytest.approx(env.equity_curve[-1], rel=1e-9)
    fills = env.trade_frame()
    for symbol, bps in (("BTC/USD", 25), ("ETH/USD", 15)):
        mine = fills[fills["symbol"] == symbol]
        assert len(mine) > 10
        np.testing.assert_allclose(mine["commission"], mine["quantity"].abs() * mine["price"] * bps * 1e-4,
                                   rtol=1e-12)
    vec = TradingVectorEnv(2, kind="portfolio", data=data, action_mode="weights", execution=COSTS, window_size=1)
    vec.reset(seed=0, options={"start": start})
    for t in range(start, start + 50):
        vec.step(np.tile(weights[t].astype(np.float32), (2, 1)))
    assert vec._equity[0] == pytest.approx(env.equity_curve[50], rel=1e-9)


def test_sim_broker_rejects_orders_below_the_minimum_size_but_lets_a_position_close():
    broker = SimBroker(("BTC/USD",), 100_000.0, COSTS)
    bar = np.array([[30_000.0, 30_100.0, 29_900.0, 30_000.0, 10.0]])
    broker.on_bar("2024-06-01T00:00Z", bar)
    with pytest.raises(OrderRejected, match="below the minimum order size 0.001"):
        broker.submit(OrderRequest("BTC/USD", Side.BUY, 0.0005, "a"))
    broker.submit(OrderRequest("BTC/USD", Side.BUY, 0.5, "b"))
    (fill,) = broker.on_bar("2024-06-01T01:00Z", bar)
    assert fill.qty == 0.5
    assert broker.portfolio.commission_paid == pytest.approx(0.5 * 30_000.0 * 0.0025)


def test_envs_run_on_the_real_bitcoin_sample_and_synthetic_crypto():
    monthly = load_data("sample:BTCUSD")
    few = FeatureConfig(features=("ret_1", "ret_5"), normalize="none")  # 13 years of months: short warm-up
    env = gym.make("AlpacaGym/Stocks-v0", data=monthly, window_size=3, features=few)
    check_env(env.unwrapped, skip_render_check=True)
    crypto = load_data("synthetic_crypto:n_bars=300")
    check_env(gym.make("AlpacaGym/Portfolio-v0", data=crypto).unwrapped,
                                    skip_render_check=True)


def test_volatility_sizing_annualises_on_the_data_calendar(market):
    from agents.registry import make_policy

    data = market.iloc(slice(0, 500))
    bot = make_policy("buy_and_hold", {"sizing": "volatility", "target_vol": 0.5, "fraction": 1.0,
                                       "sizing_lookback": 48})
    weights = bot.act_batch(data)
    r = np.diff(np.log(data.close[:, 0]))
    realised = r[-48:].std(ddof=1) * np.sqrt(8766)  # hourly bars of a market that never closes
    signal = bot.signal(data)[-1, 0]  # buy_and_hold splits equally: 0.5 each
    assert weights[-1, 0] == pytest.approx(signal * min(0.5 / realised, 1.0), rel=1e-6)
    assert realised > 0.4, "with 252 bars a year this would read as a sixth of the volatility"
