"""``python -m experiments.microstructure``: the market-making report's measures on cases with known answers."""

from __future__ import annotations

import pytest

from agents.registry import make_policy
from experiments.microstructure import main, market_making_report


def test_fixed_spread_captures_its_half_spread_and_no_adverse_selection_without_alpha() -> None:
    policy = make_policy("fixed_spread", {"half_spread": 0.5})
    report = market_making_report(policy, episodes=128, seed=1)
    # Quotes are rounded away from the mid onto the 0.01 tick: 0.5 <= distance < 0.51.
    assert 0.5 <= report["spread_captured"] < 0.51
    # Fill probability exp(-1.5 x 0.5) per market order, within the tick's rounding.
    assert report["fill_rate"] == pytest.approx(0.472, abs=0.02)
    assert abs(report["adverse_selection"]) < 0.02
    assert report["pnl"] > report["mean_reward"], "the penalties come off the P/L"


def test_order_flow_alpha_shows_as_adverse_selection() -> None:
    policy = make_policy("avellaneda_stoikov")
    calm = market_making_report(policy, episodes=128, seed=2)
    toxic = market_making_report(policy, episodes=128, seed=2, book={"alpha_impact": 3.0})
    assert toxic["adverse_selection"] > 0.05 > abs(calm["adverse_selection"])
    assert toxic["mean_reward"] < calm["mean_reward"]
    assert calm["share_of_optimum"] == pytest.approx(1.0, abs=0.03)


def test_command_prints_the_table_and_refuses_other_policies(capsys: pytest.CaptureFixture) -> None:
    assert main(["glft", "--episodes", "16"]) == 0
    out = capsys.readouterr().out
    assert "closed-form optimum" in out and "glft" in out and "fill rate" in out
    assert main(["sma_crossover", "--episodes", "16"]) == 2
    assert "error: sma_crossover is not a AlpacaGym/MarketMaking-v0 policy" in capsys.readouterr().err


def test_execution_report_schedules_and_closed_form(capsys: pytest.CaptureFixture) -> None:
    from experiments.microstructure import execution_report

    twap = execution_report(make_policy("twap"), episodes=256, seed=3)
    for q in ("traded_q1", "traded_q2", "traded_q3", "traded_q4"):
        assert twap[q] == pytest.approx(0.25)
    ac = execution_report(make_policy("almgren_chriss"), episodes=256, seed=3)
    assert ac["traded_q1"] > 0.5 > ac["traded_q4"] * 5, "risk aversion front-loads the schedule"
    assert abs(ac["mean_reward"] - ac["optimum"]) < 2 * ac["ci95"]
    assert main(["--env", "Execution-v0", "--episodes", "16"]) == 0
    out = capsys.readouterr().out
    assert "almgren_chriss" in out and "twap" in out and "IS bps" in out
    assert main(["--env", "Execution-v0", "glft", "--episodes", "16"]) == 2
    assert "glft is not a AlpacaGym/Execution-v0 policy" in capsys.readouterr().err
