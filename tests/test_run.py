"""The command line entry point and the README's promises about it."""

import pathlib
import re
import subprocess
import sys

import numpy as np

from sobolev_flow import Torus, solve

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "sobolev_flow.run", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_cli_runs_and_summarises():
    result = run_cli("--n", "32", "--t-end", "100", "--quiet")
    assert result.returncode == 0, result.stderr
    assert re.search(r"steps \d+ \(rejected \d+\), rhs evaluations \d+, wall time [\d.]+ s, final E [\d.e+-]+",
                     result.stdout)


def test_cli_bad_input_exits_2_with_one_line():
    result = run_cli("--n", "15", "--quiet")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: n=15 (shape=(15, 15)): points per axis must be even and at least 8"]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^    (pip install .*)$", readme, flags=re.M)
    assert commands[0].endswith("python -m sobolev_flow.run")
    assert "[test]" in commands[1] and "pytest" in commands[1]
    assert commands[1] in (ROOT / ".ci" / "run").read_text().splitlines()


def test_non_uniform_target_is_reached():
    grid = Torus((32, 32))
    x, y = grid.mesh()
    nu = 1 + 0.5 * np.sin(x) * np.cos(y)
    mu0 = np.ones(grid.shape)
    sol = solve(grid, 1.0, mu0, [0.0, 20.0], nu=nu, rtol=1e-8)
    d = sol.diagnostics
    assert np.all(np.diff(d["energy"]) <= 0)
    assert d["energy"][-1] < 1e-9 * d["energy"][0]  # rate at least min ν = 0.5 per unit time in ‖ρ‖
    assert np.max(np.abs(sol.mu[-1] - nu)) < 0.5 * np.exp(-0.5 * 20)  # every mode decays at rate >= min ν
    assert np.max(np.abs(d["mass"] - 1)) < 1e-13
