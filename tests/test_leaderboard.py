"""The leaderboard: one job in-process, the ranking and its files, and the board on a local Ray."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from experiments import leaderboard as board
from experiments.spec import ExperimentSpec

SPEC = ExperimentSpec()


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    jobs = [j for j in board.QUICK.jobs() if j.policy in ("buy_and_hold", "sma_crossover")]
    return [board.run_job(job, SPEC.to_dict(), board.QUICK) for job in jobs]


def test_jobs_score_the_test_period_only(rows: list[dict]) -> None:
    goog = next(r for r in rows if r["market"] == "sample:GOOG")
    # GOOG's date splits: train to 2009-12-31, validate to 2011-06-30, test after.
    assert goog["test_start"] > "2011-06-30" and goog["test_end"] == "2013-03-01"
    bh = next(r for r in rows if r["policy"] == "buy_and_hold" and r["market"] == "sample:GOOG")
    # Buy-and-hold under the same rules is the yardstick: a PSR of 0.5 against itself.
    assert bh["psr_vs_buy_and_hold"] == pytest.approx(0.5)
    assert all(len(r["returns"]) > 100 for r in rows)


def test_ranking_and_outputs(rows: list[dict], tmp_path) -> None:
    table = board.rank(rows)
    assert list(table.index) == [1, 2] and set(table["policy"]) == {"buy_and_hold", "sma_crossover"}
    assert (table["sharpe"].diff().dropna() <= 0).all()
    assert (table["sharpe_ci_low"] <= table["sharpe"]).all() and (table["sharpe"] <= table["sharpe_ci_high"]).all()
    page = board.write_outputs(table, rows, SPEC, tmp_path, "test board")
    assert "sma_crossover" in page.read_text()
    saved = json.loads((tmp_path / "leaderboard.json").read_text())
    assert len(saved["jobs"]) == 4 and saved["spec"] == SPEC.to_dict()
    assert pd.read_csv(tmp_path / "leaderboard.csv")["policy"].tolist() == table["policy"].tolist()
    # Each market says how its statistics were annualised.
    markets = {m["market"]: m for m in saved["markets"]}
    assert markets["sample:GOOG"]["calendar"] == "XNYS" and markets["sample:GOOG"]["periods_per_year"] == 252
    assert set(markets) == {r["market"] for r in rows}
    assert "<h2>Markets</h2>" in page.read_text()


def test_the_board_on_local_ray_matches_the_jobs_run_in_process(rows: list[dict], tmp_path, capsys) -> None:
    code = board.main(["--quick", "--policies", "buy_and_hold,sma_crossover", "--cpus", "2", "--out", str(tmp_path)])
    assert code == 0 and "Leaderboard (quick)" in capsys.readouterr().out
    on_ray = pd.read_csv(tmp_path / "jobs.csv")
    in_process = pd.DataFrame([{k: v for k, v in r.items() if k != "returns"} for r in rows])
    for column in ("sharpe", "total_return", "max_drawdown", "vol_matched_return", "psr_vs_buy_and_hold"):
        assert on_ray[column].tolist() == pytest.approx(in_process[column].tolist(), rel=1e-12)


def test_quick_board_end_to_end(tmp_path) -> None:
    assert board.main(["--quick", "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "leaderboard.csv")
    assert {"ppo", "xgboost", "buy_and_hold", "consensus"} <= set(table["policy"])


def test_the_deflated_sharpe_ratio_counts_what_each_job_tried(rows: list[dict]) -> None:
    """A job that kept the best of 21 validation checks (PPO) brings 21 configurations to the board."""
    assert all(r["trials"] == 1 for r in rows) and board.board_trials(rows) == len(rows)
    searched = [{**r, "trials": 21} if r["policy"] == "sma_crossover" else r for r in rows]
    assert board.board_trials(searched) == 21 * 2 + 2
    assert board.rank(searched).set_index("policy").loc["sma_crossover", "configs_tried"] == 42
    plain, deflated = board.rank(rows), board.rank(searched)
    for policy in ("buy_and_hold", "sma_crossover"):
        before = plain.set_index("policy").loc[policy, "dsr_best_job"]
        after = deflated.set_index("policy").loc[policy, "dsr_best_job"]
        assert after < before  # more configurations tried: a higher bar for luck alone


def test_the_longest_jobs_start_first() -> None:
    jobs = board.FULL.jobs()
    bars = {"sample:SPX": 5031, "sample:NDX": 5031, "sample:GOOG": 2148, "sample:GOOGL": 2335,
            **{f"synthetic:seed={k}": 2520 for k in (0, 1, 2)}}
    order = [jobs[i] for i in board.longest_first(jobs, bars)]
    assert sorted(board.longest_first(jobs, bars)) == list(range(len(jobs)))  # every job, once
    assert {(j.policy, j.market) for j in order[:2]} == {("ensemble", "sample:SPX"), ("ensemble", "sample:NDX")}
    assert all(j.kind == "bot" for j in order[-len(board.FULL.bots) * 7:])
