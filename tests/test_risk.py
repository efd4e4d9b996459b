"""Risk layer: each rule on its own, their events, switching rules off, and bad input."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from envs.sim.risk import RiskConfig, RiskManager, RiskState

OFF = RiskConfig(
    max_position=None, max_positions=None, stop_loss=None, max_drawdown=None, max_heat=None,
    max_correlation=None,
)
SYMBOLS = ("AAA", "BBB", "CCC", "DDD")


def make_state(
    close: np.ndarray,
    equity: float = 100_000.0,
    positions: np.ndarray | None = None,
    entry_prices: np.ndarray | None = None,
) -> RiskState:
    """State at the last bar of ``close`` (T, S), weights from positions at the last close."""
    s = close.shape[1]
    positions = np.zeros(s) if positions is None else np.asarray(positions, float)
    entry = np.full(s, np.nan) if entry_prices is None else np.asarray(entry_prices, float)
    prices = close[-1]
    history = SimpleNamespace(close=close, symbols=SYMBOLS[:s])
    return RiskState(
        t=len(close) - 1, timestamp=pd.Timestamp("2024-01-02", tz="UTC"), equity=equity,
        weights=positions * prices / equity, positions=positions, entry_prices=entry,
        prices=prices, history=history,
    )


def flat_prices(n_bars: int = 80, n_symbols: int = 4, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n_bars, n_symbols)), axis=0))


def manager(config: RiskConfig, n_symbols: int = 4) -> RiskManager:
    risk = RiskManager(config, n_symbols)
    risk.reset(100_000.0)
    return risk


def test_defaults_are_the_seed_trading_config():
    cfg = RiskConfig()
    assert (cfg.max_position, cfg.max_positions, cfg.stop_loss, cfg.max_drawdown, cfg.max_heat) == (
        0.15, 5, 0.02, 0.20, 0.06,
    )


def test_all_rules_off_pass_weights_through():
    risk = manager(OFF)
    target = np.array([0.9, -0.7, 0.0, 0.4])
    allowed, events = risk.apply(target, make_state(flat_prices()))
    np.testing.assert_array_equal(allowed, target)
    assert events == []


def test_max_position_caps_both_sides_and_records_why():
    risk = manager(replace(OFF, max_position=0.15))
    allowed, events = risk.apply(np.array([0.5, -0.3, 0.1, 0.0]), make_state(flat_prices()))
    np.testing.assert_allclose(allowed, [0.15, -0.15, 0.1, 0.0])
    assert [(e.symbol, e.rule, e.requested, e.allowed) for e in events] == [
        ("AAA", "max_position", 0.5, 0.15), ("BBB", "max_position", -0.3, -0.15),
    ]
    assert "0.5000 > 0.15" in events[0].reason


def test_max_positions_keeps_held_positions_before_larger_new_ones():
    risk = manager(replace(OFF, max_positions=2))
    close = flat_prices()
    state = make_state(close, positions=[0, 0, 10, 0], entry_prices=[np.nan, np.nan, 100, np.nan])
    allowed, events = risk.apply(np.array([0.2, 0.3, 0.05, 0.1]), state)
    np.testing.assert_allclose(allowed, [0.0, 0.3, 0.05, 0.0])
    assert sorted(e.symbol for e in events) == ["AAA", "DDD"]
    assert {e.rule for e in events} == {"max_positions"}


@pytest.mark.parametrize("side", [1, -1])
def test_stop_loss_closes_and_blocks_reentry_until_the_signal_resets(side):
    risk = manager(replace(OFF, stop_loss=0.02), n_symbols=1)
    close = np.full((5, 1), 100.0)
    close[-1] = 100.0 * (1 - side * 0.025)
    state = make_state(close, positions=[side * 10], entry_prices=[100.0])
    allowed, events = risk.apply(np.array([side * 0.5]), state)
    assert allowed[0] == 0.0
    assert events[0].rule == "stop_loss" and "2.50% against entry" in events[0].reason
    flat = make_state(close)
    assert risk.apply(np.array([side * 0.5]), flat)[0][0] == 0.0
    assert risk.apply(np.array([0.0]), flat)[0][0] == 0.0
    assert risk.apply(np.array([side * 0.5]), flat)[0][0] == side * 0.5


def test_stop_loss_is_quiet_when_the_policy_exits_itself_and_inside_the_stop():
    risk = manager(replace(OFF, stop_loss=0.02), n_symbols=1)
    close = np.full((5, 1), 99.0)
    inside = make_state(close, positions=[10], entry_prices=[100.0])
    assert risk.apply(np.array([0.5]), inside) == (pytest.approx([0.5]), [])
    beyond = make_state(close * 0.9, positions=[10], entry_prices=[100.0])
    allowed, events = risk.apply(np.array([0.0]), beyond)
    assert allowed[0] == 0.0 and events == []


def test_drawdown_breaker_flattens_and_stops_trading_until_reset():
    risk = manager(replace(OFF, max_drawdown=0.2), n_symbols=2)
    close = flat_prices(n_symbols=2)
    assert risk.apply(np.array([0.5, 0.5]), make_state(close, equity=120_000))[0].tolist() == [0.5, 0.5]
    state = make_state(close, equity=95_000, positions=[100, 0], entry_prices=[100, np.nan])
    allowed, events = risk.apply(np.array([0.5, 0.0]), state)
    assert allowed.tolist() == [0.0, 0.0]
    assert [e.rule for e in events] == ["max_drawdown"] and "20.83% >= 20.00%" in events[0].reason
    assert risk.halted
    later = risk.apply(np.array([1.0, 1.0]), make_state(close, equity=200_000))
    assert later[0].tolist() == [0.0, 0.0]
    risk.reset(100_000)
    assert risk.apply(np.array([1.0, 1.0]), make_state(close))[0].tolist() == [1.0, 1.0]


def test_heat_scales_only_increases_when_holdings_fit():
    risk = manager(replace(OFF, stop_loss=0.02, max_heat=0.06), n_symbols=2)
    close = np.full((5, 2), 100.0)
    # Holding weight 1.0 of AAA (risk 0.02); asking for 2.0 + 2.0 (risk 0.08) leaves 0.04 for increases.
    state = make_state(close, positions=[1000, 0], entry_prices=[100, 100])
    allowed, events = risk.apply(np.array([2.0, 2.0]), state)
    np.testing.assert_allclose(allowed, [1.0 + 1.0 * 2 / 3, 2.0 * 2 / 3])
    assert np.abs(allowed) @ [0.02, 0.02] == pytest.approx(0.06)
    assert {e.rule for e in events} == {"max_heat"}


def test_heat_uses_volatility_when_stops_are_off():
    risk = manager(replace(OFF, max_heat=0.01), n_symbols=2)
    close = flat_prices(n_symbols=2)
    vol = np.diff(np.log(close[-61:]), axis=0).std(axis=0, ddof=1)
    allowed, _ = risk.apply(np.array([1.0, -1.0]), make_state(close))
    assert np.abs(allowed) @ vol == pytest.approx(0.01)


def test_correlation_limit_refuses_a_same_direction_twin_but_allows_a_hedge():
    risk = manager(replace(OFF, max_correlation=0.8), n_symbols=3)
    base = flat_prices(n_symbols=1)[:, 0]
    close = np.column_stack([base, base * 1.5, flat_prices(n_symbols=1, seed=9)[:, 0]])
    state = make_state(close, positions=[10, 0, 0], entry_prices=[100, np.nan, np.nan])
    allowed, events = risk.apply(np.array([0.1, 0.1, 0.1]), state)
    np.testing.assert_allclose(allowed, [0.1, 0.0, 0.1])
    assert events[0].rule == "max_correlation" and "with AAA" in events[0].reason
    allowed, events = risk.apply(np.array([0.1, -0.1, 0.0]), state)
    np.testing.assert_allclose(allowed, [0.1, -0.1, 0.0])
    assert events == []


def test_bad_input_raises_clear_errors():
    risk = RiskManager(RiskConfig(), 2)
    state = make_state(flat_prices(n_symbols=2))
    with pytest.raises(RuntimeError, match="before reset"):
        risk.apply(np.zeros(2), state)
    risk.reset(100_000)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        risk.apply(np.zeros(3), state)
    with pytest.raises(ValueError, match="finite"):
        risk.apply(np.array([np.nan, 0.0]), state)
    with pytest.raises(ValueError, match="RiskConfig.stop_loss"):
        RiskConfig(stop_loss=1.5)
    with pytest.raises(ValueError, match="RiskConfig.max_positions"):
        RiskConfig(max_positions=0)


@pytest.mark.parametrize("cooldown", [3, None])
def test_stop_block_lifts_after_the_cooldown_for_an_always_invested_policy(cooldown):
    risk = manager(replace(OFF, stop_loss=0.02, stop_cooldown=cooldown), n_symbols=1)
    close = np.full((5, 1), 100.0)
    close[-1] = 97.0
    hit = make_state(close, positions=[10], entry_prices=[100.0])
    assert risk.apply(np.array([1.0]), hit)[0][0] == 0.0
    for extra in range(1, 6):
        later = make_state(np.full((5 + extra, 1), 97.0))
        allowed = risk.apply(np.array([1.0]), later)[0][0]
        reentered = cooldown is not None and extra >= cooldown
        assert allowed == (1.0 if reentered else 0.0), f"{extra} bars after the stop"
    with pytest.raises(ValueError, match="stop_cooldown"):
        RiskConfig(stop_cooldown=0)


def test_held_position_drifting_above_the_cap_is_trimmed_with_a_forced_event():
    risk = manager(replace(OFF, max_position=0.15, position_drift=0.1), n_symbols=1)
    close = np.full((5, 1), 100.0)
    inside = make_state(close, positions=[160.0], entry_prices=[90.0])  # weight 0.16: within the drift
    allowed, events = risk.apply(np.array([0.15]), inside)
    assert allowed[0] == 0.15 and events == []
    drifted = make_state(close, positions=[180.0], entry_prices=[90.0])  # weight 0.18 > 0.165
    allowed, events = risk.apply(np.array([0.15]), drifted)
    assert allowed[0] == 0.15
    assert [(e.rule, e.force) for e in events] == [("max_position", True)]
    assert "drifted" in events[0].reason


def test_snapshot_and_restore_continue_exactly_where_the_layer_was():
    """The live runner journals the layer's state with every decision and restores it after a restart."""
    import json

    config = replace(RiskConfig(), stop_cooldown=4, max_heat=None, max_correlation=None)
    close = flat_prices(n_bars=120, n_symbols=2, seed=3)
    close[60:70, 0] *= 0.9  # a stop on the first symbol, then its cooldown
    rng = np.random.default_rng(1)
    targets = rng.choice([0.0, 0.1, 0.2], size=(120, 2))
    positions = np.zeros(2)

    def step(risk: RiskManager, t: int) -> tuple[list[float], list[str]]:
        entry = np.where(positions != 0, close[max(t - 5, 0)], np.nan)
        state = RiskState.of_account(
            SimpleNamespace(close=close[: t + 1], t=t, timestamp=pd.Timestamp("2024-01-02", tz="UTC"),
                            symbols=SYMBOLS[:2]),
            90_000.0 + 100.0 * t, positions, entry,
        )
        allowed, events = risk.apply(targets[t], state)
        positions[:] = allowed * state.equity / close[t]
        return allowed.tolist(), [e.rule for e in events]

    uninterrupted, first = manager(config, 2), []
    for t in range(30, 120):
        first.append(step(uninterrupted, t))
    positions[:] = 0.0
    before, second = manager(config, 2), []
    for t in range(30, 80):
        second.append(step(before, t))
    saved = json.loads(json.dumps(before.snapshot()))
    after = RiskManager(config, 2)
    after.restore(saved)
    for t in range(80, 120):
        second.append(step(after, t))
    assert any("stop_loss" in rules for _, rules in first), "the scenario should trigger a stop"
    assert second == first
    with pytest.raises(ValueError, match="3 symbols"):
        after.restore({**saved, "blocked": [0, 0, 0]})


def _at(close: np.ndarray, t: int, equity: float) -> RiskState:
    return make_state(close[: t + 1], equity=equity)


def test_drawdown_breaker_resumes_after_the_cooloff_from_a_new_high_water_mark():
    """Tripped at bar 40, flat for ``drawdown_cooloff`` bars, then trading from the equity of that bar."""
    risk = manager(replace(OFF, max_drawdown=0.2, drawdown_cooloff=10), n_symbols=1)
    close = flat_prices(n_symbols=1)
    assert risk.apply(np.array([1.0]), _at(close, 30, 120_000))[0].tolist() == [1.0]
    allowed, events = risk.apply(np.array([1.0]), _at(close, 40, 90_000))
    assert allowed.tolist() == [0.0] and "stopped for 10 bars" in events[0].reason
    assert risk.apply(np.array([1.0]), _at(close, 49, 90_000))[0].tolist() == [0.0]
    # Cool-off over at bar 50: trading resumes although equity is still 25% below the old peak of 120,000.
    assert risk.apply(np.array([1.0]), _at(close, 50, 90_000))[0].tolist() == [1.0]
    assert risk.peak_equity == 90_000 and not risk.halted
    # The next breach is measured from the new high-water mark (90,000): 20% below it trips again.
    assert risk.apply(np.array([1.0]), _at(close, 55, 75_000))[0].tolist() == [1.0]
    assert risk.apply(np.array([1.0]), _at(close, 56, 71_000))[0].tolist() == [0.0]


def test_drawdown_breaker_without_cooloff_stops_for_good_and_snapshots_its_halt():
    risk = manager(replace(OFF, max_drawdown=0.2, drawdown_cooloff=None), n_symbols=1)
    close = flat_prices(n_symbols=1)
    risk.apply(np.array([1.0]), _at(close, 40, 70_000))
    assert risk.apply(np.array([1.0]), _at(close, 79, 150_000))[0].tolist() == [0.0]
    resumable = manager(replace(OFF, max_drawdown=0.2, drawdown_cooloff=5), n_symbols=1)
    resumable.apply(np.array([1.0]), _at(close, 40, 70_000))
    restored = RiskManager(resumable.config, 1)
    restored.restore(resumable.snapshot())
    assert restored.halted_at == 40
    assert restored.apply(np.array([1.0]), _at(close, 44, 70_000))[0].tolist() == [0.0]
    assert restored.apply(np.array([1.0]), _at(close, 45, 70_000))[0].tolist() == [1.0]
