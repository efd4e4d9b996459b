"""MarketMaking-v0 and Execution-v0: the env contract (check_env, determinism, pickle, invalid actions),
the accounting invariants, the order-book simulator's pieces, and the closed-form policies against their
closed forms."""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from rollouts import rollout
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from agents.registry import make_policy
from baselines.execution import almgren_chriss_holdings, almgren_chriss_trades, expected_reward
from baselines.market_making import glft_quotes, optimal_quotes, optimal_value, optimal_value_table, policy_value
from envs.environments.market_making import MarketMakingEnv, MarketMakingVectorEnv
from envs.environments.optimal_execution import ExecutionEnv, ExecutionVectorEnv, fraction_to_action
from envs.sim import lob
from envs.sim.actions import InvalidActionError
from envs.sim.execution import ConfigError
from envs.sim.impact import ImpactConfig
from envs.sim.lob import BookConfig, OrderBookSim

RICH_BOOK = dict(
    fill_model="queue", arrival_process="hawkes", hawkes_excitation=20.0, hawkes_decay=40.0, alpha_impact=0.02,
    alpha_vol=0.5, jump_rate=3.0, jump_std=0.5, maker_fee=-0.0002,
)
CASES = {
    "mm offsets": ("AlpacaGym/MarketMaking-v0", {}),
    "mm sizes": ("AlpacaGym/MarketMaking-v0", {"action_mode": "offsets_sizes"}),
    "mm full book": ("AlpacaGym/MarketMaking-v0", {"action_mode": "offsets_sizes", "book": RICH_BOOK}),
    "execution sell": ("AlpacaGym/Execution-v0", {}),
    "execution buy": ("AlpacaGym/Execution-v0", {"impact": {"side": "buy"}}),
}


def random_actions(env: gym.Env, n: int, seed: int) -> list:
    env.action_space.seed(seed)
    return [env.action_space.sample() for _ in range(n)]


def test_registered_with_vector_entry_points() -> None:
    for env_id in ("AlpacaGym/MarketMaking-v0", "AlpacaGym/Execution-v0"):
        assert env_id in envs.ENV_IDS and env_id in gym.registry
        vec = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point")
        obs, _ = vec.reset(seed=0)
        assert obs.shape == (3, *vec.single_observation_space.shape)


@pytest.mark.parametrize("case", CASES)
def test_check_env_without_warnings(case: str) -> None:
    env_id, kwargs = CASES[case]
    env = gym.make(env_id, **kwargs).unwrapped
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=True)


@pytest.mark.parametrize("case", CASES)
def test_same_seed_same_episode_and_pickle_round_trip(case: str) -> None:
    env_id, kwargs = CASES[case]
    a, b = gym.make(env_id, **kwargs), gym.make(env_id, **kwargs)
    actions = random_actions(a, 300, seed=3)
    ra, rb = rollout(a, actions, seed=5), rollout(b, actions, seed=5)
    assert len(ra) == len(rb) > 10
    for (oa, r_a, ia), (ob, r_b, ib) in zip(ra, rb):
        np.testing.assert_array_equal(oa, ob)
        assert r_a == r_b and ia["equity"] == ib["equity"]
    rc = rollout(gym.make(env_id, **kwargs), actions, seed=6)
    assert any(x[1] != y[1] for x, y in zip(ra, rc)), "another seed gives another path"
    a.reset(seed=1)
    for action in actions[:7]:
        a.step(action)
    clone = pickle.loads(pickle.dumps(a))
    for action in actions[7:15]:
        o1, r1, *_ = a.step(action)
        o2, r2, *_ = clone.step(action)
        np.testing.assert_array_equal(o1, o2)
        assert r1 == r2


@pytest.mark.parametrize("case", CASES)
def test_vector_env_reproduces_the_single_env(case: str) -> None:
    env_id, kwargs = CASES[case]
    single = gym.make(env_id, **kwargs).unwrapped
    vec = gym.make_vec(env_id, num_envs=1, vectorization_mode="vector_entry_point", **kwargs)
    actions = random_actions(single, 400, seed=2)
    obs_s, _ = single.reset(seed=4)
    obs_v, _ = vec.reset(seed=4)
    np.testing.assert_array_equal(obs_s, obs_v[0])
    for action in actions:
        obs_s, r_s, _, trunc_s, _ = single.step(action)
        obs_v, r_v, _, trunc_v, info_v = vec.step(action[None])
        assert r_s == r_v[0] and trunc_s == trunc_v[0]
        if trunc_s:
            np.testing.assert_array_equal(obs_s, info_v["final_obs"][0])
            break
        np.testing.assert_array_equal(obs_s, obs_v[0])
    assert trunc_s, "the episode ends at the horizon"


@pytest.mark.parametrize(
    "case, bad",
    [
        ("mm offsets", np.array([0.0, 1.5], dtype=np.float32)),
        ("mm offsets", np.array([np.nan, 0.0], dtype=np.float32)),
        ("mm offsets", np.zeros(3, dtype=np.float32)),
        ("mm sizes", np.array([0.0, 0.0, -2.0, 0.0], dtype=np.float32)),
        ("execution sell", np.array([1.2], dtype=np.float32)),
        ("execution sell", np.array([np.inf], dtype=np.float32)),
        ("execution sell", 0.5),
    ],
)
def test_out_of_space_action_gives_clear_error_and_changes_nothing(case: str, bad) -> None:
    env_id, kwargs = CASES[case]
    env, twin = gym.make(env_id, **kwargs), gym.make(env_id, **kwargs)
    env.reset(seed=0)
    twin.reset(seed=0)
    with pytest.raises(InvalidActionError, match="invalid action .* expected"):
        env.step(bad)
    good = np.zeros(env.action_space.shape, dtype=np.float32)
    o1, r1, *_ = env.step(good)
    o2, r2, *_ = twin.step(good)
    np.testing.assert_array_equal(o1, o2)
    assert r1 == r2, "a rejected action must not consume the episode's randomness"
    vec = gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", **kwargs)
    vec.reset(seed=0)
    with pytest.raises(InvalidActionError, match="invalid action"):
        vec.step(np.stack([good, np.full_like(good, 3.0)]))


def test_bad_config_names_the_field() -> None:
    with pytest.raises(ConfigError, match="fill_decay"):
        MarketMakingEnv(book={"fill_decay": 0})
    with pytest.raises(ConfigError, match="unknown book setting"):
        MarketMakingEnv(book={"sigmaa": 1})
    with pytest.raises(ConfigError, match="hawkes_excitation"):
        BookConfig(arrival_process="hawkes", hawkes_excitation=5, hawkes_decay=5)
    with pytest.raises(ValueError, match="running_penalty"):
        MarketMakingEnv(running_penalty=-1)
    with pytest.raises(ValueError, match="action_mode"):
        MarketMakingEnv(action_mode="prices")
    with pytest.raises(ConfigError, match="side"):
        ExecutionEnv(impact={"side": "short"})
    with pytest.raises(ConfigError, match="eta - gamma"):
        ImpactConfig(eta=1e-9, gamma=1e-6)


@pytest.mark.parametrize("book", [{"maker_fee": 0.0003}, dict(RICH_BOOK, max_inventory=4, book_depth=1.0)])
def test_market_making_accounting(book: dict) -> None:
    env = gym.make("AlpacaGym/MarketMaking-v0", action_mode="offsets_sizes", book=book)
    u = env.unwrapped
    lot, fee, limit = u.book.lot, u.book.maker_fee, u.book.max_inventory
    _, info = env.reset(seed=0)
    rewards, penalties, n_fills = [], [], 0
    cash, inventory = info["cash"], 0.0
    for action in random_actions(env, 10_000, seed=1):
        action[:2] = np.minimum(action[:2], -0.6)  # quote near the mid so that fills happen
        _, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
        penalties.append(info["penalty"])
        for fill in info["fills"]:
            n_fills += 1
            quoted = info["bid"] if fill.reason == "bid" else info["ask"]
            assert fill.price == quoted, "every fill is at the quoted price"
            assert (fill.quantity > 0) == (fill.reason == "bid")
            assert fill.commission == pytest.approx(fee * abs(fill.quantity) * fill.price, rel=1e-12)
            cash -= fill.quantity * fill.price + fill.commission
            inventory += fill.quantity
        assert info["cash"] == pytest.approx(cash, rel=1e-12)
        assert info["positions"][0] == pytest.approx(inventory) == info["inventory"] * lot
        assert abs(info["inventory"]) <= limit
        assert info["equity"] == pytest.approx(info["cash"] + info["positions"][0] * info["mid"], rel=1e-12)
        if terminated or truncated:
            break
    assert truncated and info["t"] == u.book.n_steps
    assert n_fills > 20
    pnl = info["equity"] - u.initial_cash
    assert sum(rewards) + sum(penalties) == pytest.approx(pnl, abs=1e-8)
    assert info["pnl"] == pytest.approx(pnl, abs=1e-8)
    assert penalties[-1] >= u.spec_.terminal_penalty * info["positions"][0] ** 2


def test_execution_accounting_and_forced_completion() -> None:
    env = gym.make("AlpacaGym/Execution-v0")
    u = env.unwrapped
    c = u.impact
    _, info = env.reset(seed=0)
    total, penalties, sold = 0.0, 0.0, 0.0
    actions = [fraction_to_action(0.0)] * c.n_steps  # never trades until the last step forces it
    for k, action in enumerate(actions):
        before = info["price"]
        _, reward, _, truncated, info = env.step(action)
        total += reward
        penalties += info["penalty"]
        sold -= sum(f.quantity for f in info["fills"])
        assert truncated == (k == c.n_steps - 1)
    assert sold == pytest.approx(c.shares) and info["shares_left"] == 0
    (fill,) = info["fills"]
    assert fill.price == pytest.approx(before - c.epsilon - c.eta * c.shares / c.tau, rel=1e-12)
    assert total + penalties == pytest.approx(-1e4 * info["shortfall"] / c.notional, rel=1e-9)
    assert info["cash"] - u.initial_cash == pytest.approx(c.shares * c.s0 - info["shortfall"], rel=1e-12)


def test_queue_fill_by_hand() -> None:
    # 5 lots rest at each level. An order joining the best level behind 5 lots, hit by 7 lots: 2 fill.
    assert lob._queue_fill(7.0, 0.0, 5.0, 5.0, 3.0) == (2.0, 0.0)
    # One level further out: the 7 lots consume the first level (5) and 2 of the queue ahead (5).
    assert lob._queue_fill(7.0, 1.0, 5.0, 5.0, 3.0) == (0.0, 3.0)
    # Improving the price: nothing ahead, the size caps the fill.
    assert lob._queue_fill(7.0, 0.0, 0.0, 5.0, 3.0) == (3.0, 0.0)


def test_queue_position_is_kept_while_the_price_is() -> None:
    book = BookConfig(fill_model="queue", sigma=0.0, arrival_rate=400.0, book_depth=20.0, cancel_rate=0.0)
    sim = OrderBookSim(book, 1)
    rng = np.random.default_rng(0)
    one = np.ones(1)
    queue, filled = [], []
    for _ in range(30):  # the mid never moves: the same offset is the same price, at the best ask
        sim.step(rng, np.full(1, 0.004), np.full(1, 0.004), one * 1000, one * 1000)
        queue.append(sim.state[lob.QUEUE_ASK, 0])
        filled.append(sim.events[lob.ASK_FILL, 0])
    first = next(k for k, lots in enumerate(filled) if lots > 0)
    assert first > 0 and all(b < a for a, b in zip(queue[:first], queue[1:first])), "the queue ahead shrinks"
    assert queue[first] == 0.0, "the agent fills once the queue ahead is gone"
    assert sum(filled[first:]) > 0


def test_optimal_value_is_the_value_of_the_optimal_quotes_and_beats_others() -> None:
    book = BookConfig(n_steps=50, max_inventory=8)
    phi, alpha = 0.1, 0.1
    h = optimal_value(book, phi, alpha)
    table = optimal_value_table(book, phi, alpha)
    assert table[-1, 8] == 0.0 and table[-1, 9] == pytest.approx(-alpha)
    exact = policy_value(book, phi, alpha, lambda k, q: optimal_quotes(book, phi, alpha, k, q))
    # Quotes held over a step of 1/50 lose a little against continuous re-quoting.
    assert exact == pytest.approx(h, rel=2e-3) and exact <= h
    for policy in ("glft", "fixed_spread"):
        quoter = make_policy(policy)
        assert policy_value(book, phi, alpha, lambda k, q: quoter.quotes(book, phi, alpha, k, q)) < exact
    # Without penalties the best quote is 1/kappa on each side: h(0, 0) = 2 A T / (e kappa) while no
    # inventory limit binds.
    free = BookConfig(max_inventory=60)
    assert optimal_value(free, 0.0, 0.0) == pytest.approx(2 * 140 / (np.e * 1.5), rel=1e-3)


def test_avellaneda_stoikov_monte_carlo_matches_its_closed_form() -> None:
    env = MarketMakingVectorEnv(2048)
    book, phi, alpha = env.book, env.spec_.running_penalty, env.spec_.terminal_penalty
    policy = make_policy("avellaneda_stoikov")
    _, info = env.reset(seed=0)
    total = np.zeros(env.num_envs)
    for _ in range(book.n_steps):
        bid, ask = policy.quotes(book, phi, alpha, info["t"], info["inventory"])
        _, reward, _, truncated, info = env.step(lob.offsets_to_action(bid, ask, env.spec_.max_offset))
        total += reward
    assert truncated.all()
    h = optimal_value(book, phi, alpha)
    se = total.std() / np.sqrt(total.size)
    assert abs(total.mean() - h) < 4 * se + 0.005 * h


def test_glft_is_the_limit_of_its_risk_averse_formula() -> None:
    book = BookConfig()
    gamma = 1e-5
    phi = gamma * book.sigma ** 2 / 2
    limit = glft_quotes(book, phi, np.arange(-3, 4))
    averse = glft_quotes(book, phi, np.arange(-3, 4), gamma)
    np.testing.assert_allclose(limit, averse, rtol=1e-4)
    bid, ask = limit
    # Long inventory: a lower bid and a lower ask, skewed symmetrically.
    assert np.all(np.diff(bid) > 0) and np.all(np.diff(ask) < 0)
    np.testing.assert_allclose(bid[::-1], ask)


def test_policies_act_through_the_single_env() -> None:
    for name in ("avellaneda_stoikov", "glft", "fixed_spread"):
        env = gym.make("AlpacaGym/MarketMaking-v0")
        policy = make_policy(name)
        obs, info = env.reset(seed=0)
        total = 0.0
        while True:
            obs, reward, _, truncated, info = env.step(policy.act(obs, info))
            total += reward
            if truncated:
                break
        assert total > 0, f"{name} should earn the spread"
    with pytest.raises(ValueError, match="MarketMaking-v0"):
        make_policy("glft").act(np.zeros(7), {"t": 0})


def test_almgren_chriss_closed_forms() -> None:
    c = ImpactConfig()
    x = almgren_chriss_holdings(c)
    assert x[0] == pytest.approx(c.shares) and x[-1] == pytest.approx(0.0, abs=1e-6)
    # lambda = 0 is TWAP; the trajectory satisfies the discrete Euler-Lagrange equation of the paper:
    # (x_{j-1} - 2 x_j + x_{j+1}) / tau^2 = kappa_tilde^2 x_j.
    np.testing.assert_allclose(almgren_chriss_trades(c, 0.0), np.full(c.n_steps, c.shares / c.n_steps))
    k2 = c.risk_aversion * c.sigma ** 2 / c.eta_tilde
    np.testing.assert_allclose((x[:-2] - 2 * x[1:-1] + x[2:]) / c.tau ** 2, k2 * x[1:-1], rtol=1e-9)
    best = expected_reward(c, almgren_chriss_trades(c))
    rng = np.random.default_rng(0)
    for _ in range(20):
        other = almgren_chriss_trades(c) * rng.uniform(0.8, 1.2, c.n_steps)
        other *= c.shares / other.sum()
        assert expected_reward(c, other) < best
    assert expected_reward(c, almgren_chriss_trades(c, 0.0)) < best


@pytest.mark.parametrize("name", ["almgren_chriss", "twap"])
@pytest.mark.parametrize("side", ["sell", "buy"])
def test_execution_monte_carlo_matches_closed_form(name: str, side: str) -> None:
    c = ImpactConfig(side=side)
    policy = make_policy(name)
    env = ExecutionVectorEnv(4000, impact=c)
    env.reset(seed=0)
    total = np.zeros(env.num_envs)
    for k in range(c.n_steps):
        _, reward, _, _, info = env.step(np.repeat(fraction_to_action(policy.fractions(c)[k : k + 1])[None], 4000, 0))
        total += reward
    closed = expected_reward(c, -np.diff(policy.holdings(c)))
    assert abs(total.mean() - closed) < 4 * total.std() / np.sqrt(total.size)
    single = gym.make("AlpacaGym/Execution-v0", impact=c)
    obs, info = single.reset(seed=0)
    for _ in range(c.n_steps):
        obs, _, _, truncated, info = single.step(policy.act(obs, info))
    assert truncated and info["shares_left"] == 0
