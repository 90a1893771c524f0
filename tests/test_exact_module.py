"""sobolev_flow.exact: the closed-form 1-D s = 1 solution for any positive initial density."""

import numpy as np
import pytest
from scipy.integrate import quad

from sobolev_flow import Torus, solve
from sobolev_flow.exact import _Interpolant, s1_density, s1_energy, s1_map
from conftest import exact_s1_1d


def grid_points(n):
    return 2 * np.pi * np.arange(n) / n


def trig_mu0(y, a=0.5, b=0.2):
    return 1 + a * np.sin(y) + b * np.cos(2 * y)


def smooth_random_mu0(x, rng, modes=4, scale=0.3):
    """exp of a few random low modes, normalised to mass 1 (positive and analytic)."""
    field = np.zeros_like(x)
    for k in range(1, modes + 1):
        a, b = rng.normal(size=2) * scale / k
        field += a * np.cos(k * x) + b * np.sin(k * x)
    mu0 = np.exp(field)
    return mu0 / mu0.mean()


@pytest.mark.parametrize("t", [0.0, 0.5, 2.0, 10.0])
def test_matches_closed_form_for_trigonometric_data(t):
    """n = 64: the conftest reference (characteristics written out by hand) to 1e-12."""
    y = grid_points(64)
    assert np.max(np.abs(s1_density(trig_mu0(y), t) - exact_s1_1d(y, t))) <= 1e-12


def test_characteristics_match_closed_form():
    """X(t, y) = y − λ (a cos y − (b/2) sin 2y) for μ0 = 1 + a sin y + b cos 2y (Ȳ = π − a)."""
    y = grid_points(64)
    labels = np.linspace(-3.0, 9.0, 41)
    for t in (0.3, 4.0):
        lam = -np.expm1(-t)
        expected = labels - lam * (0.5 * np.cos(labels) - 0.1 * np.sin(2 * labels))
        assert np.max(np.abs(s1_map(trig_mu0(y), t, labels) - expected)) <= 1e-13


def test_off_grid_points_and_periodicity():
    """Arbitrary x (any shape, outside [0, 2π)) gives the periodic density at x."""
    y = grid_points(64)
    x = np.random.default_rng(5).uniform(-10, 20, size=(5, 7))
    mu = s1_density(trig_mu0(y), 1.3, x)
    assert mu.shape == x.shape
    assert np.max(np.abs(mu - exact_s1_1d(x, 1.3))) <= 1e-12
    assert np.max(np.abs(s1_density(trig_mu0(y), 1.3, x + 4 * np.pi) - mu)) <= 1e-12


@pytest.mark.parametrize("t", [0.0, 0.5, 2.0, 10.0])
def test_mass_is_one(t):
    """∫ μ(t) dm = 1: the grid mean on a fine grid (where the analytic μ(t) is resolved)."""
    mu = s1_density(trig_mu0(grid_points(64)), t, grid_points(512))
    assert abs(mu.mean() - 1) <= 1e-13


def test_initial_time_and_limit():
    y = grid_points(64)
    mu0 = trig_mu0(y, 0.6, 0.3)
    assert np.max(np.abs(s1_density(mu0, 0.0) - mu0)) <= 1e-14
    assert np.max(np.abs(s1_density(mu0, np.inf) - 1)) <= 1e-14
    assert np.max(np.abs(s1_map(mu0, 0.0) - y)) <= 1e-14


def test_centre_of_mass_and_cumulative_mass(rng):
    """Ȳ and F0 of the interpolant against quadrature of its Fourier series, and Ȳ = 2π − ∫F0."""
    n = 32
    mu0 = smooth_random_mu0(grid_points(n), rng)
    f = _Interpolant(mu0)
    c = np.fft.fft(mu0) / n
    k = np.fft.fftfreq(n, 1 / n)

    def series(y):  # the interpolant written independently, from the full FFT
        terms = c * np.exp(1j * k * y)
        return float(np.sum(terms[np.abs(k) < n // 2]).real + c[n // 2].real * np.cos(n // 2 * y))

    centre = quad(lambda y: y * series(y), 0, 2 * np.pi, limit=200, epsabs=1e-14)[0] / (2 * np.pi)
    assert abs(f.centre() - centre) <= 1e-12
    mean_f0 = quad(lambda y: f(np.array([y]))[1][0], 0, 2 * np.pi, limit=200, epsabs=1e-14)[0] / (2 * np.pi)
    assert abs(f.centre() - (2 * np.pi - 2 * np.pi * mean_f0)) <= 1e-12
    for y in (0.3, 2.0, 5.9):
        f0 = quad(series, 0, y, epsabs=1e-14)[0] / (2 * np.pi)
        assert abs(f(np.array([y]))[1][0] - f0) <= 1e-13
    assert np.max(np.abs(f.cumulative_on_grid() - f(grid_points(n))[1])) <= 1e-14


def test_nyquist_mode_is_the_real_cosine():
    """An even grid's Nyquist coefficient stands for c cos(ny/2) (real between the grid points),
    which E(0) counts as c/2 at k = ±n/2."""
    n = 16
    y = grid_points(n)
    mu0 = 1 + 0.3 * np.cos(n // 2 * y) + 0.2 * np.sin(y)
    f = _Interpolant(mu0)
    assert np.max(np.abs(f(y)[0] - mu0)) <= 1e-14
    assert abs(f(np.array([np.pi / n]))[0][0] - (1 + 0.2 * np.sin(np.pi / n))) <= 1e-14
    assert abs(f.energy() - 0.5 * (0.3**2 / 2 / (n // 2) ** 2 + 0.2**2 / 2)) <= 1e-15


def test_agrees_with_the_solver(rng):
    """A random smooth positive μ0 on N = 256: the PDE solver at t = 2 (rtol 1e-12) within 1e-9,
    and its energy against E(0) e^{-2t}."""
    grid = Torus((256,))
    (x,) = grid.mesh()
    mu0 = smooth_random_mu0(x, rng)
    sol = solve(grid, 1, mu0, [2.0], rtol=1e-12)
    assert np.max(np.abs(sol.mu[-1] - s1_density(mu0, 2.0))) <= 1e-9
    t, energy = sol.diagnostics["t"], sol.diagnostics["energy"]
    np.testing.assert_allclose(energy, s1_energy(mu0, t), rtol=1e-9)


def test_energy():
    y = grid_points(64)
    mu0 = trig_mu0(y)
    e0 = 0.5 * (2 * 0.25**2 + 2 * 0.1**2 / 4)  # ½ Σ_{k≠0} |k|^-2 |c_k|²: |c_±1| = 0.25, |c_±2| = 0.1
    assert s1_energy(mu0, 0.0) == pytest.approx(e0, rel=1e-14)
    np.testing.assert_allclose(s1_energy(mu0, [0.0, 1.0, 3.0]), e0 * np.exp(-2 * np.array([0.0, 1.0, 3.0])), rtol=1e-14)
    assert isinstance(s1_energy(mu0, 1.0), float)


@pytest.mark.parametrize("mu0, t, match", [
    (np.r_[np.ones(7), -1.0] + 1 / 4, 1.0, r"^mu0: min"),
    (np.r_[np.ones(7), 0.0] * 8 / 7, 1.0, r"^mu0: min"),
    (np.full(8, 1.5), 1.0, r"^mu0: mass"),
    (np.ones((4, 4)), 1.0, r"^mu0: expected a 1-D array"),
    (np.r_[np.ones(7), np.nan], 1.0, r"^mu0: non-finite"),
    (np.ones(8), -0.5, r"^t=-0.5"),
    (np.ones(8), float("nan"), r"^t=nan"),
    (np.ones(8), "soon", r"^t='soon'"),
])
def test_input_errors(mu0, t, match):
    for function in (s1_density, s1_energy):
        with pytest.raises(ValueError, match=match) as info:
            function(mu0, t)
        assert "\n" not in str(info.value)


def test_interpolant_must_be_positive():
    """Positive grid values whose interpolant dips below zero between the points are refused:
    a spike on a low floor interpolates to a periodic sinc with negative side lobes."""
    mu0 = np.full(16, 0.05)
    mu0[3] = 16 - 15 * 0.05
    with pytest.raises(ValueError, match=r"^mu0: its trigonometric interpolant reaches -"):
        s1_density(mu0, 1.0)


def test_negative_energy_time_array_is_refused():
    with pytest.raises(ValueError, match=r"^t=-1.0"):
        s1_energy(np.ones(8), [0.0, -1.0])
