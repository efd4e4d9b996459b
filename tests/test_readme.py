"""The README is a contract: every shell command and Python block in README.md must work as written.

Fast path (default suite): every ``python -m experiments.*`` command of the README is parsed by the command's
own parser in-process (``argparse`` stopped right after parsing), so a renamed flag, a removed choice or a
bad value in the README fails here in seconds; every ``make`` target exists; the tools it names are
installed. Slow path (``-m slow``): the commands run as written in a scratch folder, in README order, offline,
with a tiny trained PPO run standing in for ``runs/ppo/<run>``; the few that cannot run offline or would run
for hours are listed in :data:`NOT_RUN` or shrunk by :data:`QUICK` (each with its reason), then the Python
blocks run in one interpreter after them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from rl_fixtures import TINY_RL

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PYTHON = sys.executable

# Commands that cannot run offline, as (regex on the command, reason). They are still parsed (fast path).
NOT_RUN: tuple[tuple[str, str], ...] = (
    (r"--source yfinance|--sources .*yfinance", "downloads from Yahoo (tests/test_data_yfinance.py serves it locally)"),
    (r"--broker alpaca", "needs an Alpaca account (tests/test_brokers_alpaca.py runs it against the local server)"),
    (r"^tensorboard ", "a server that runs until stopped; `tensorboard --version` is checked instead"),
    (r"^python -m experiments\.monitor (?!.*--summary)", "a server that runs until stopped (the dashboard tests serve it)"),
    (r"^make test", "the test suite itself"),
)
# Commands the slow path shrinks (regex -> replacement, reason): the README shows real sizes.
QUICK: tuple[tuple[str, str, str], ...] = (
    (r"--total-timesteps 1000000", "--total-timesteps 2048", "a million steps take an hour on 2 cores"),
    (r"^(python -m experiments\.train (?:ppo|a2c|sac)(?!.*--total-timesteps).*)$", r"\1 --total-timesteps 2048",
     "the default 200k steps per run take minutes"),
    (r"^(python -m experiments\.train xgboost)", r"\1 --set train_size=504", "smaller walk-forward windows"),
    (r"--samples 8", "--samples 2 --total-timesteps 1024", "eight full trials take an hour"),
    (r"^python -m experiments\.calibrate$", "python -m experiments.calibrate --quick",
     "the full study takes hours; --quick is the README's own smoke run"),
    (r"^python -m experiments\.leaderboard$", "python -m experiments.leaderboard --quick",
     "the full board takes hours; --quick is the README's own smoke run"),
    (r"^make demo", "python -m experiments.demo --timesteps 2048", "make demo also sets up the venv"),
)


@dataclass(frozen=True)
class Command:
    """One shell command of the README, with the line it is on."""

    text: str
    line: int


def readme_blocks() -> list[tuple[str, str, int]]:
    """``(language, code, first line)`` of every fenced ``bash``/``python`` block, in order."""
    text = README.read_text()
    out = []
    for match in re.finditer(r"```(bash|python)\n(.*?)```", text, re.S):
        out.append((match.group(1), match.group(2), text[: match.start()].count("\n") + 2))
    return out


def shell_commands() -> list[Command]:
    """Every command of the README's bash blocks: comments stripped, continuation lines joined."""
    commands = []
    for language, code, first in readme_blocks():
        if language != "bash":
            continue
        pending, start = "", first
        for k, line in enumerate(code.splitlines()):
            if not pending:
                start = first + k
            pending += line.rstrip("\\").rstrip() + " " if line.rstrip().endswith("\\") else line
            if line.rstrip().endswith("\\"):
                continue
            words = shlex.split(pending, comments=True)
            if words:
                commands.append(Command(shlex.join(words), start))
            pending = ""
    return commands


COMMANDS = shell_commands()


def _id(command: Command) -> str:
    return f"L{command.line}:{command.text[:60]}"


class Parsed(Exception):
    """Raised instead of running the command once its arguments parsed."""


def parse_only(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> argparse.Namespace:
    """Run ``python -m MODULE ARGS`` in-process up to the end of argument parsing."""
    original = argparse.ArgumentParser.parse_args

    def stop(self: argparse.ArgumentParser, args=None, namespace=None):  # noqa: ANN001, ANN202
        raise Parsed(original(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", stop)
    module = importlib.import_module(argv[2])
    with pytest.raises(Parsed) as parsed:
        module.main(argv[3:])
    return parsed.value.args[0]


@pytest.mark.parametrize("command", COMMANDS, ids=_id)
def test_every_readme_command_parses(command: Command, monkeypatch: pytest.MonkeyPatch) -> None:
    words = shlex.split(command.text.replace("<run>", "tiny"))
    if words[0] == "export":
        assert all("=" in w for w in words[1:]), command
    elif words[0] == "make":
        done = subprocess.run(["make", "-n", *words[1:]], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    elif words[0] == "tensorboard":
        assert shutil.which("tensorboard", path=str(Path(PYTHON).parent)) or shutil.which("tensorboard")
    else:
        assert words[:2] == ["python", "-m"] and words[2].startswith("experiments."), command
        assert parse_only(monkeypatch, words) is not None


def test_the_readme_has_commands_and_python_blocks() -> None:
    blocks = readme_blocks()
    assert sum(lang == "python" for lang, _, _ in blocks) >= 2 and len(COMMANDS) >= 15
    for code in (code for lang, code, _ in blocks if lang == "python"):
        compile(code, "README.md", "exec")  # a syntax error in an example fails fast


def _plan(command: Command) -> tuple[str | None, str]:
    """The command to run for ``command`` (None: not run) and why it differs from the README, if it does."""
    for pattern, reason in NOT_RUN:
        if re.search(pattern, command.text):
            return None, reason
    text = command.text
    reasons = []
    for pattern, replacement, reason in QUICK:
        if re.search(pattern, text):
            text = re.sub(pattern, replacement, text)
            reasons.append(reason)
    return text, "; ".join(reasons)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder to run the README in, holding a tiny trained PPO run at ``runs/ppo/tiny``."""
    from experiments.rl_config import RLConfig
    from experiments.train_rl import train

    folder = tmp_path_factory.mktemp("readme")
    train(RLConfig(**{**TINY_RL, "data": "synthetic"}, runs_dir=str(folder / "runs"), run_name="tiny"))
    return folder


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)
def test_readme_runs_as_written(scratch: Path) -> None:
    """Every command in README order, then every Python block, in one scratch folder (offline)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    env.pop("AWS_ENDPOINT_URL", None)
    failures, skipped = [], []
    for command in COMMANDS:
        text, reason = _plan(command)
        if text is None:
            skipped.append(f"line {command.line}: {command.text} ({reason})")
            continue
        words = shlex.split(text.replace("<run>", "tiny"))
        if words[0] == "export":
            continue  # placeholders for credentials; nothing here needs them
        if words[0] == "python":
            words[0] = PYTHON
        started = time.perf_counter()
        done = subprocess.run(words, cwd=scratch, env=env, capture_output=True, text=True, timeout=3600)
        status = "ok" if done.returncode == 0 else f"exit {done.returncode}"
        print(f"line {command.line}: {text} -> {status} in {time.perf_counter() - started:.0f} s", flush=True)
        if done.returncode != 0:
            failures.append(f"line {command.line}: {text}\n{done.stderr[-2000:]}")
    code = "\n".join(code for lang, code, _ in readme_blocks() if lang == "python")
    done = subprocess.run([PYTHON, "-c", code], cwd=scratch, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        failures.append(f"python blocks:\n{done.stderr[-2000:]}")
    print("not run offline:\n" + "\n".join(skipped))
    assert not failures, "\n\n".join(failures)


def test_quick_start_python_blocks_run(tmp_path: Path) -> None:
    """The README's Python blocks that need no earlier command (all but the results example) run as written."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    blocks = [code for lang, code, _ in readme_blocks() if lang == "python" and "reports/" not in code]
    done = subprocess.run([PYTHON, "-c", "\n".join(blocks)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
