"""φ-functions, the scheme registry and the step-size control."""

import math
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np
import pytest
from scipy.integrate import quad

from sobolev_flow import SCHEMES, Solver, SpectralModel, Torus, get_scheme, phi, solve
from sobolev_flow.steppers import PHI_SERIES_TOLERANCE, phi_series_terms, phis
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


def phi_exact(j, z) -> float:
    """φ_j(z) rounded once from 60-digit decimal arithmetic: the Taylor series for |z| < 2, else
    (e^z − Σ_{m<j} z^m/m!)/z^j."""
    with localcontext() as context:
        context.prec = 60
        x = Decimal(float(z))
        if abs(x) < 2:
            term, total = Decimal(1) / math.factorial(j), Decimal(0)
            for m in range(80):
                total += term
                term = term * x / (m + j + 1)
        else:
            total = (x.exp() - sum(x**m / math.factorial(m) for m in range(j))) / x**j
        return float(total)


ULP = np.finfo(float).eps
PHI_ARGUMENTS = np.concatenate([
    [0.0, 1.0, -1.0, np.nextafter(1.0, 0), -np.nextafter(1.0, 0), np.nextafter(1.0, 2), -np.nextafter(1.0, 2)],
    -np.logspace(-16, 3, 77), np.logspace(-16, 0, 17)[:-1], np.linspace(-1.5, 1.5, 31)])


@pytest.mark.parametrize("order", [1, 3, 4])
def test_phis_gives_every_order_to_a_few_ulps(order):
    """All of φ_0 … φ_J from one call, for z from −1e3 to 1, at and around 0 and ±1: within 4 ulps
    of the exactly rounded values where |z| < 1 (the series and the downward recurrence), 16 ulps
    elsewhere (the upward recurrence loses up to about a digit at |z| = 1, as it always did)."""
    values = phis(order, PHI_ARGUMENTS)
    assert len(values) == order + 1
    small = np.abs(PHI_ARGUMENTS) < 1
    for j, value in enumerate(values):
        exact = np.array([phi_exact(j, z) for z in PHI_ARGUMENTS])
        error = np.abs(value - exact)
        assert np.all(error[small] <= 4 * ULP * exact[small]), j
        assert np.all(error <= 16 * ULP * exact), j
        assert np.allclose(value, phi(j, PHI_ARGUMENTS), rtol=16 * ULP, atol=0)
    assert [v[0] for v in values] == [1 / math.factorial(j) for j in range(order + 1)]  # z = 0 exactly
    assert np.array_equal(values[0], np.exp(PHI_ARGUMENTS))


@pytest.mark.parametrize("radius", [1e-12, 1e-3, 0.03, 0.5, np.nextafter(1.0, 0)])
def test_phis_series_degree_follows_the_largest_argument(radius):
    """The degree of the series is chosen from max |z|: fewer terms for small arguments, yet every
    order stays within 1e-15 relative of the exact values up to |z| just below 1; the exact tail
    left out is below the stated 1e-21."""
    z = radius * np.linspace(-1, 1, 41)
    for j, value in enumerate(phis(3, z)):
        exact = np.array([phi_exact(j, x) for x in z])
        assert np.max(np.abs(value / exact - 1)) <= 1e-15
    for j in range(4):
        terms = phi_series_terms(j, radius)
        r = Fraction(radius)
        for x in (r, -r):
            tail = sum(x**m / math.factorial(m + j) for m in range(terms + 1, terms + 60))
            assert abs(tail) <= PHI_SERIES_TOLERANCE * Fraction(phi_exact(j, -radius))
    assert phi_series_terms(0, 1.0) == 22  # the fixed degree used for every argument before
    assert phi_series_terms(3, radius) <= {1e-12: 1, 1e-3: 5, 0.03: 8}.get(radius, 22)


def test_registry_lists_the_required_schemes():
    assert {"rk4", "etdrk4", "ars222"} <= set(SCHEMES)
    assert {s.family for s in SCHEMES.values()} == {"explicit", "imex", "exponential", "proximal"}
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
