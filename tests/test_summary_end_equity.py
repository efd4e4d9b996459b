"""The end-of-run summary read from the journal alone (``experiments.monitor``) shows the P/L the run printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments import monitor, paper


def test_monitor_summary_matches_the_runs_own(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal_path = tmp_path / "paper.sqlite"
    code = paper.main(["sma_crossover", "--symbols", "SYN0", "--broker", "sim", "--journal", str(journal_path),
                       "--data", "synthetic:n_days=300,n_symbols=1,seed=4", "--run-id", "end"])
    assert code == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("run end:") and "P/L" in line]
    assert len(printed) == 1
    assert monitor.main([str(journal_path), "--summary"]) == 0
    shown = [line for line in capsys.readouterr().out.splitlines() if line.startswith("run end:")]
    assert shown == printed
