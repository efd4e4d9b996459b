"""``AlpacaGym/Options-v0`` position sizing: ``allocation`` as one fraction or per template, and its defaults."""

from __future__ import annotations

import math

import numpy as np
import pytest

from envs.data.market_data import MarketData
from envs.data.synthetic import generate_market_with_state
from envs.environments.options import DEFAULT_ALLOCATION, OptionsEnv, allocation_table
from envs.options.strategies import TEMPLATES, Leg, Strategy, profit_range

# Single-expiry templates whose legs are one contract per unit, so units and the amount at risk per unit can
# be read back from the legs and the entry cost.
DEFINED_RISK = ("bull_put", "bear_call", "bull_call", "bear_put", "iron_condor", "long_straddle", "long_strangle")


@pytest.fixture(scope="module")
def synthetic() -> MarketData:
    return generate_market_with_state(n_symbols=1, n_days=320, seed=4)[0]


def _open(env: OptionsEnv, template: str) -> tuple[int, float, float]:
    """Open ``template`` from a flat account: ``(units, amount at risk per unit, equity at the decision)``."""
    _, info = env.reset(seed=0)
    equity = info["equity"]
    _, _, _, _, opened = env.step(info["actions"].encode(template, 0.30, 30))
    assert opened["strategy"] == template, opened["events"]
    legs = opened["legs"]
    units = int(abs(legs[0].quantity))
    assert all(abs(leg.quantity) == units for leg in legs)
    unit = Strategy(template, tuple(Leg(leg.kind, leg.quantity / units, leg.strike, leg.expiry) for leg in legs))
    premium = opened["position"]["entry_cost"] / units  # commissions included, as the env counts them
    return units, max(premium, profit_range(unit, premium)[1]), equity


def _assert_sized_to(units: int, at_risk: float, equity: float, fraction: float) -> None:
    budget = fraction * equity
    assert units >= 1
    assert units * at_risk <= budget + 1e-6, "the position risks more than its budget"
    assert (units + 1) * at_risk > budget - 1e-6, "one more unit would still fit in the budget"


def test_a_float_sizes_every_template_to_the_same_fraction(synthetic: MarketData) -> None:
    env = OptionsEnv(synthetic, allocation=0.1)
    assert env.allocation == dict.fromkeys(TEMPLATES, 0.1)
    for template in DEFINED_RISK:
        _assert_sized_to(*_open(env, template), 0.1)


def test_a_mapping_sizes_each_template_to_its_own_fraction(synthetic: MarketData) -> None:
    fractions = {"iron_condor": 0.03, "long_straddle": 0.08, "bull_put": 0.12}
    env = OptionsEnv(synthetic, allocation=fractions)
    for template, fraction in fractions.items():
        _assert_sized_to(*_open(env, template), fraction)
    # Templates the mapping leaves out keep their default.
    assert env.allocation["bull_call"] == DEFAULT_ALLOCATION["bull_call"]
    _assert_sized_to(*_open(env, "bull_call"), DEFAULT_ALLOCATION["bull_call"])


def test_the_defaults_size_each_template_to_its_table_entry(synthetic: MarketData) -> None:
    assert set(DEFAULT_ALLOCATION) == set(TEMPLATES)
    assert all(0.0 < f <= 1.0 for f in DEFAULT_ALLOCATION.values())
    env = OptionsEnv(synthetic)
    for template in DEFINED_RISK:
        _assert_sized_to(*_open(env, template), DEFAULT_ALLOCATION[template])


def test_the_default_keeps_half_of_equity_for_stock_backed_templates(synthetic: MarketData) -> None:
    assert DEFAULT_ALLOCATION["covered_call"] == DEFAULT_ALLOCATION["cash_secured_put"] == 0.5
    for template in ("covered_call", "cash_secured_put"):
        default, before = OptionsEnv(synthetic), OptionsEnv(synthetic, allocation=0.5)
        for env in (default, before):
            _, info = env.reset(seed=0)
            env.step(info["actions"].encode(template, 0.30, 30))
        assert repr(default.fills) == repr(before.fills) and default.fills


@pytest.mark.parametrize("allocation, message", [
    ({"butterfly": 0.1}, r"unknown template\(s\) \['butterfly'\]"),
    ({"iron_condor": 0.0}, r"allocation\['iron_condor'\] must be in \(0, 1\], got 0.0"),
    ({"bull_put": 1.5}, r"allocation\['bull_put'\] must be in \(0, 1\], got 1.5"),
    ({"calendar": math.nan}, r"allocation\['calendar'\] must be in \(0, 1\]"),
    ({"diagonal": "small"}, r"allocation\['diagonal'\] must be in \(0, 1\], got 'small'"),
    ({"long_straddle": True}, r"allocation\['long_straddle'\] must be in \(0, 1\], got True"),
    (-0.2, r"allocation must be in \(0, 1\], got -0.2"),
    (None, r"allocation must be in \(0, 1\], got None"),
])
def test_bad_allocations_raise_naming_the_template(allocation: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        allocation_table(allocation)  # type: ignore[arg-type]


def test_the_env_rejects_a_bad_mapping_and_takes_numpy_fractions(synthetic: MarketData) -> None:
    with pytest.raises(ValueError, match=r"allocation\['iron_condor'\]"):
        OptionsEnv(synthetic, allocation={"iron_condor": 2.0})
    assert allocation_table(np.float32(0.25))["calendar"] == pytest.approx(0.25)
