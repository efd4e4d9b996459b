"""The layers import one way: ``envs.data -> envs.features / envs.sim / envs.options -> envs.environments
-> agents / baselines -> brokers -> experiments``, and nothing in ``envs`` imports stable-baselines3.

Every import statement counts, including those inside functions, so a lazy import cannot hide an arrow
pointing the wrong way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package -> the project packages it may import (itself always allowed)
ALLOWED: dict[str, set[str]] = {
    "envs.data": set(),
    "envs.features": {"envs.data"},
    "envs.sim": {"envs.data", "envs.features"},
    "envs.options": {"envs.data", "envs.sim"},
    "envs.environments": {"envs.data", "envs.features", "envs.sim", "envs.options"},
    "envs": {"envs.data", "envs.features", "envs.sim", "envs.options", "envs.environments"},
    "agents": {"envs"},
    "baselines": {"envs", "agents"},
    "brokers": {"envs", "agents"},
    "experiments": {"envs", "agents", "baselines", "brokers"},
}
FORBIDDEN_THIRD_PARTY: dict[str, set[str]] = {"envs": {"stable_baselines3", "sb3_contrib", "ray"}}
PROJECT = ("envs", "agents", "baselines", "brokers", "experiments")


def layer_of(module: str) -> str | None:
    """The most specific entry of :data:`ALLOWED` that ``module`` belongs to."""
    best = None
    for layer in ALLOWED:
        if module == layer or module.startswith(layer + "."):
            if best is None or len(layer) > len(best):
                best = layer
    return best


def imported_modules(source: str, module: str) -> list[tuple[int, str]]:
    """``(line, module)`` for every import in ``source`` (relative imports resolved against ``module``)."""
    out = []
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            # "from envs import data" imports envs.data, not the envs package's own __init__ names
            out.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
    return out


def violations(source: str, module: str) -> list[str]:
    """Imports in ``source`` (the text of ``module``) that point up or sideways across the layers."""
    own = layer_of(module)
    assert own is not None, module
    found = []
    for line, target in imported_modules(source, module):
        root = target.split(".")[0]
        if root in PROJECT:
            layer = layer_of(target)
            # "from envs import X": X may be a sub-package (resolved above) or a name of envs/__init__
            if layer == "envs" and target.count(".") == 1 and own != "envs":
                if own.startswith("envs."):
                    found.append(f"line {line}: {module} imports the envs package itself ({target})")
                    continue
            if layer is None or layer == own or layer.startswith(own + "."):
                continue
            allowed = ALLOWED[own]
            if not any(layer == a or layer.startswith(a + ".") for a in allowed):
                found.append(f"line {line}: {module} ({own}) imports {target} ({layer})")
        for prefix, banned in FORBIDDEN_THIRD_PARTY.items():
            if (own == prefix or own.startswith(prefix + ".")) and root in banned:
                found.append(f"line {line}: {module} imports {root}")
    return found


def project_modules() -> list[tuple[str, Path]]:
    out = []
    for folder in PROJECT:
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out.append((name, path))
    return out


@pytest.mark.parametrize("module,path", project_modules(), ids=lambda v: v if isinstance(v, str) else "")
def test_imports_point_down(module: str, path: Path) -> None:
    assert violations(path.read_text(), module) == []


@pytest.mark.parametrize(
    "module,source,expected",
    [
        ("envs.sim.risk", "from envs.environments.base import TradingEnvBase", 1),
        ("envs.data.sources", "def f():\n    from envs.sim import execution", 1),
        ("envs.features.library", "import envs", 1),
        ("envs.environments.vector", "from stable_baselines3 import PPO", 1),
        ("agents.registry", "from baselines.sma_crossover import SmaCrossover", 1),
        ("brokers.runner", "import experiments.engine", 1),
        ("envs.options.account", "from envs.sim.execution import ExecutionConfig", 0),
        ("experiments.train", "from brokers import runner\nimport agents.ppo", 0),
        ("envs.sim.replay", "from .execution import fill_one", 0),
    ],
)
def test_the_check_catches_upward_imports(module: str, source: str, expected: int) -> None:
    assert len(violations(source, module)) == expected


def test_every_module_is_in_a_layer() -> None:
    assert all(layer_of(name) for name, _ in project_modules())
    assert len(project_modules()) > 100
