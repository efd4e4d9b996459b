"""One error style: every bad input a user can give a command is one ``error:`` line and exit code 2.

Each case runs the command's real ``main`` (the same function ``python -m`` calls); one case runs the
module as a subprocess to check what a shell sees. ``--debug`` turns the line back into a traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from rl_fixtures import TINY_RL

from experiments import backtest, bench, data, demo, paper, train, tune
from experiments.cli import closest, command

ROOT = Path(__file__).resolve().parents[1]
TINY_DATA = "synthetic:n_days=300,n_symbols=2,seed=4"


def one_error_line(capsys: pytest.CaptureFixture[str], code: int) -> str:
    """The single ``error:`` line a failed command printed (and nothing else on stderr)."""
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return f"csv:{path}"


GOOD_ROWS = "2020-01-01,1,2,0.5,1,10\n2020-01-02,1,2,0.5,1.1,10\n2020-01-03,1,2,0.5,1.2,10\n"
HEADER = "date,open,high,low,close,volume\n"


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("wrong_columns", "date,o,h,l,c\n2020-01-01,1,2,0.5,1\n", "missing_column"),
        ("empty", HEADER, "no bars"),
        ("blank", "", "cannot read"),
        ("na_price", HEADER + "2020-01-01,1,2,0.5,1,10\n2020-01-02,1,2,0.5,n/a,10\n", "'n/a'"),
        ("duplicate", HEADER + "2020-01-01,1,2,0.5,1,10\n2020-01-01,1,2,0.5,1,10\n", "line 3"),
        ("unsorted", HEADER + "2020-01-02,1,2,0.5,1,10\n2020-01-01,1,2,0.5,1,10\n", "unsorted_timestamp"),
        ("no_volume", "date,open,high,low,close\n2020-01-01,1,2,0.5,1\n", "volume"),
        ("high_below_low", HEADER + "2020-01-01,1,0.4,0.5,1,10\n", "line 2: '2020-01-01,1,0.4,0.5,1,10'"),
    ],
)
def test_bad_data_files_through_backtest(tmp_path, capsys, name, text, expected):
    spec = write(tmp_path / f"{name}.csv", text)
    line = one_error_line(capsys, backtest.main(["buy_and_hold", "--data", spec, "--out", str(tmp_path)]))
    assert expected in line


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["nope"], "unknown policy 'nope'"),
        (["sma_crosover"], "did you mean sma_crossover"),
        (["buy_and_hold", "--data", "csv:/no/such/file.csv"], "no such file"),
        (["buy_and_hold", "--data", "foo:bar"], "unknown data source 'foo'"),
        (["sma_crossover", "--param", "fsat=5"], "did you mean fast?"),
        (["sma_crossover", "--param", "sma_crossover.slwo=5"], "did you mean slow?"),
        (["sma_crossover", "--param", "rsi_reversion.fast=5"], "not a policy of this run"),
        (["sma_crossover", "--param", "fast=abc"], "fast"),
        (["buy_and_hold", "--bogus"], "unrecognized arguments: --bogus"),
        (["buy_and_hold", "--data", TINY_DATA, "--symbols", "SPY"], "SPY"),
    ],
)
def test_backtest_user_errors(tmp_path, capsys, argv, expected):
    line = one_error_line(capsys, _exit_code(backtest.main, [*argv, "--out", str(tmp_path)]))
    assert expected in line


def test_a_directory_as_a_file(tmp_path, capsys):
    (tmp_path / "prices").mkdir()
    line = one_error_line(capsys, backtest.main(["buy_and_hold", "--data", f"csv:{tmp_path / 'prices'}"]))
    assert "holds no .csv" in line


def test_train_refuses_negative_timesteps(capsys):
    line = one_error_line(capsys, train.main(["ppo", "--total-timesteps", "-5"]))
    assert "total_timesteps must be >= 1, got -5" in line


def test_tune_refuses_bad_config_value(capsys):
    line = one_error_line(capsys, tune.main(["ppo", "--total-timesteps", "0"]))
    assert "total_timesteps" in line


def test_paper_with_symbols_not_in_the_data(capsys):
    code = paper.main(["sma_crossover", "--symbols", "SPY,AAPL", "--broker", "sim", "--data", TINY_DATA])
    line = one_error_line(capsys, code)
    assert "SPY,AAPL not in --data" in line and "SYN0, SYN1" in line


def test_paper_refuses_misspelled_param(capsys):
    code = paper.main(["sma_crossover", "--symbols", "SYN0", "--broker", "sim", "--param", "fsat=3"])
    assert "did you mean fast?" in one_error_line(capsys, code)


def test_data_and_bench_and_demo_use_the_same_style(capsys):
    assert "required: --symbols" in one_error_line(capsys, _exit_code(data.main, ["load", "--nope"]))
    assert "invalid choice" in one_error_line(capsys, _exit_code(bench.main, ["everything"]))
    assert "invalid int" in one_error_line(capsys, _exit_code(demo.main, ["--timesteps", "many"]))


def test_debug_shows_the_traceback():
    with pytest.raises(ValueError, match="unknown policy"):
        backtest.main(["nope", "--debug"])


def test_a_shell_sees_one_line_and_exit_code_2(tmp_path):
    spec = write(tmp_path / "bad.csv", HEADER + "2020-01-01,1,2,0.5,n/a,10\n")
    done = subprocess.run(
        [sys.executable, "-m", "experiments.backtest", "buy_and_hold", "--data", spec],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and done.stderr.startswith("error: "), done.stderr


def test_closest_and_command_helpers(capsys):
    assert closest("fsat", ["fast", "slow"]) == " (did you mean fast?)"
    assert closest("zzz", ["fast", "slow"]) == ""

    @command
    def missing(argv):
        raise KeyError("symbols not in data: ['X']")

    assert "error: symbols not in data: ['X']" == one_error_line(capsys, missing([]))


@pytest.fixture(scope="module")
def tiny_agent(tmp_path_factory) -> Path:
    from experiments.rl_config import RLConfig
    from experiments.train_rl import train as train_rl

    folder = tmp_path_factory.mktemp("runs")
    return train_rl(RLConfig(**TINY_RL, runs_dir=str(folder), run_name="tiny")).run_dir


def test_agent_on_more_symbols_suggests_symbols(tiny_agent, tmp_path, capsys):
    spec = TINY_RL["data"].replace("n_symbols=1", "n_symbols=3")
    line = one_error_line(capsys, backtest.main([str(tiny_agent), "--data", spec, "--out", str(tmp_path)]))
    assert "trained on 1 symbol(s) (SYN0)" in line and "add --symbols SYN0" in line


def test_agent_backtest_defaults_to_its_test_period(tiny_agent, tmp_path, capsys):
    import json

    test_start = json.loads((tiny_agent / "metrics.json").read_text())["periods"]["test"]["start"][:10]
    assert backtest.main([str(tiny_agent), "buy_and_hold", "--data", TINY_RL["data"], "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert f"backtesting its held-out test period from {test_start}" in err
    assert backtest.main([str(tiny_agent), "--data", TINY_RL["data"], "--start", "2015-03-01",
                          "--out", str(tmp_path)]) == 0
    assert "in-sample" in capsys.readouterr().err


def _exit_code(main, argv) -> int:
    """``main(argv)``'s exit code whether it returns it or argparse raises ``SystemExit``."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
