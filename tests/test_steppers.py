"""φ-functions, the scheme registry and the step-size control."""

import math

import numpy as np
import pytest
from scipy.integrate import quad

from sobolev_flow import SCHEMES, Solver, SpectralModel, Torus, get_scheme, phi, solve
from conftest import exact_s1_1d


def phi_by_quadrature(j, z):
    """φ_j(z) = 1/(j−1)! ∫_0^1 e^{(1−θ)z} θ^{j−1} dθ, j ≥ 1."""
    value, _ = quad(lambda th: np.exp((1 - th) * z) * th ** (j - 1), 0, 1, epsabs=0, epsrel=2e-14, limit=200)
    return value / math.factorial(j - 1)


@pytest.mark.parametrize("j", [1, 2, 3])
def test_phi_functions_are_accurate_for_small_and_large_arguments(j):
    z = -np.concatenate([[0.0], np.logspace(-12, 3, 61)])
    values = phi(j, z)
    reference = np.array([phi_by_quadrature(j, zi) for zi in z])
    assert np.max(np.abs(values / reference - 1)) < 1e-13
    assert values[0] == 1 / math.factorial(j)


def test_phi_zero_is_the_exponential():
    z = np.array([0.0, -1e-3, -2.0, -700.0])
    assert np.array_equal(phi(0, z), np.exp(z))


def test_registry_lists_the_required_schemes():
    assert {"rk4", "etdrk4", "ars222"} <= set(SCHEMES)
    assert {s.family for s in SCHEMES.values()} == {"explicit", "imex", "exponential"}
    for name, scheme in SCHEMES.items():
        assert get_scheme(name) is scheme and scheme.reference


def test_adaptive_steps_grow_by_orders_of_magnitude_and_land_on_outputs():
    grid = Torus((32,))
    (x,) = grid.mesh()
    times = [0.5, 1.0, 3.0, 10.0, 100.0, 1000.0, 10000.0]
    sol = solve(grid, 2.0, 1 + 0.5 * np.cos(x) + 0.2 * np.sin(3 * x), times, rtol=1e-7)
    d = sol.diagnostics
    assert np.array_equal(sol.t, times)
    assert set(times) <= set(d["t"].tolist())  # exactly, not approximately
    steps = d["dt"][1:]
    assert steps.max() / steps[:5].max() > 100
    assert sol.stats["steps"] < 200
    assert np.all(np.diff(d["t"]) > 0)


def test_fixed_step_lands_on_output_times():
    grid = Torus((16,))
    (x,) = grid.mesh()
    sol = solve(grid, 1.0, 1 + 0.5 * np.cos(x), [0.25, 0.3, 1.0], dt=0.1)
    t = sol.diagnostics["t"]
    assert {0.25, 0.3, 1.0} <= set(t.tolist())
    assert sol.stats["steps"] == len(t) - 1 == 3 + 1 + 7


def test_fixed_step_equals_same_steps_taken_by_hand():
    """A Solver advanced output by output takes the steps of one advance (no hidden restarts) and
    follows the closed-form s = 1 solution in 1-D (ETDRK4, h = 1/16: error 6e-7 at t = 1).

    Times and step are binary fractions, so both take exactly the same steps (with 0.05 and
    outputs at 0.2, 0.6 the landing steps differ from 0.05 by an ulp, and so do the results)."""
    grid = Torus((64,))
    (x,) = grid.mesh()
    mu0 = 1 + 0.5 * np.sin(x) + 0.2 * np.cos(2 * x)
    pieces = Solver(SpectralModel(grid, mu0, s=1.0), dt=0.0625)
    for t in (0.25, 0.75, 1.0):
        pieces.advance(t)
    whole = Solver(SpectralModel(grid, mu0, s=1.0), dt=0.0625)
    whole.advance(1.0)
    assert pieces.steps == whole.steps == 16 and np.array_equal(pieces.u, whole.u)
    assert np.max(np.abs(pieces.model.density(pieces.u) - exact_s1_1d(x, 1.0))) < 1e-6


def test_error_control_meets_tolerance_roughly():
    """Global error shrinks with rtol at about the rate rtol^{p/(p+1)} allows."""
    grid = Torus((32,))
    (x,) = grid.mesh()
    mu0 = 1 + 0.5 * np.cos(x) + 0.3 * np.sin(2 * x)
    reference = solve(grid, 2.0, mu0, [5.0], scheme="rk4", dt=1e-3).mu[-1]
    errors = [np.max(np.abs(solve(grid, 2.0, mu0, [5.0], rtol=r).mu[-1] - reference)) for r in (1e-5, 1e-7, 1e-9)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 5e-8


def test_max_steps_stops_the_run():
    grid = Torus((16,))
    (x,) = grid.mesh()
    with pytest.raises(RuntimeError, match=r"^max_steps=3 reached at t="):
        solve(grid, 1.0, 1 + 0.5 * np.cos(x), [10.0], dt=0.1, max_steps=3)
