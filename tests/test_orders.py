"""Observed orders of every registered scheme, from fixed-step runs at three or more step sizes."""

import numpy as np
import pytest
from scipy.integrate import romb

from sobolev_flow import SCHEMES, Torus, solve

T = 2.0


def fitted_order(steps, errors):
    """Least-squares slope of log error against log h = log(T / steps)."""
    return np.polyfit(np.log(T / np.asarray(steps)), np.log(np.abs(errors)), 1)[0]


def final_density(grid, s, mu0, scheme, n):
    return solve(grid, s, mu0, [T], scheme=scheme, dt=T / n, threads=1).mu[-1]


PROBLEMS = {
    # smooth nonlinear problems: amplitude O(1) so that the quadratic term matters
    "1d": (Torus((32,)), 2.0, lambda x: 1 + 0.5 * np.sin(x[0]) + 0.3 * np.cos(2 * x[0] + 1)),
    "2d": (Torus((16, 16)), 1.5, lambda x: 1 + 0.4 * np.sin(x[0]) * np.cos(x[1]) + 0.3 * np.cos(x[0] + 2 * x[1])),
}


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_observed_order(problem, scheme):
    """Errors against a reference from a *different* scheme at 1024 steps; slope within ±0.1."""
    grid, s, density = PROBLEMS[problem]
    mu0 = np.broadcast_to(density(grid.mesh()), grid.shape).copy()
    reference_scheme = "etdrk4" if scheme.name == "rk4" else "rk4"
    reference = final_density(grid, s, mu0, reference_scheme, 1024)
    steps = [8, 16, 32, 64] if scheme.order >= 4 else [16, 32, 64, 128]
    errors = [np.max(np.abs(final_density(grid, s, mu0, scheme.name, n) - reference)) for n in steps]
    assert min(errors) > 1e-11, "errors must stay above round-off for the fit to mean anything"
    assert abs(fitted_order(steps, errors) - scheme.order) <= 0.1


def test_energy_balance_converges_at_scheme_order(scheme):
    """E(T) − E(0) + ∫_0^T D dt → 0 at the scheme's order (D integrated by Romberg's rule).

    D is evaluated from the semi-discrete right-hand side, for which dE/dt = −D holds exactly,
    so the residual is the time-discretisation error alone.
    """
    grid = Torus((32, 32))
    x = grid.mesh()
    mu0 = np.broadcast_to(1 + 0.7 * np.sin(x[0]) * np.cos(x[1]) + 0.25 * np.cos(x[0] + 2 * x[1]), grid.shape).copy()
    steps = [16, 32, 64] if scheme.order >= 4 else [128, 256, 512]
    residuals = []
    for n in steps:
        d = solve(grid, 2.0, mu0, [T], scheme=scheme.name, dt=T / n, threads=1).diagnostics
        assert len(d["t"]) == n + 1
        residuals.append(d["energy"][-1] - d["energy"][0] + romb(d["dissipation"], dx=T / n))
    assert abs(fitted_order(steps, residuals) - scheme.order) <= 0.1
