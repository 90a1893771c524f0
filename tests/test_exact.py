"""The 1-D flow with s = 1 and ν ≡ 1 is exactly solvable: compare with the closed form."""

import numpy as np

from sobolev_flow import Torus, solve
from sobolev_flow.validation import exact_solution_error
from conftest import exact_s1_1d


def mu0(x, a=0.5, b=0.2):
    return 1 + a * np.sin(x) + b * np.cos(2 * x)


def test_reference_solves_the_pde():
    """The closed form itself satisfies ∂t μ = ∂x(μ ∂x ψ), −ψ'' = μ − 1 (finite differences in t)."""
    grid = Torus((256,))
    (x,) = grid.mesh()
    t, h = 0.7, 1e-4
    dmu_dt = (exact_s1_1d(x, t + h) - exact_s1_1d(x, t - h)) / (2 * h)
    mu = exact_s1_1d(x, t)
    mu_hat = grid.to_spectral(mu)
    (k,) = grid.wavenumbers()
    psi_hat = np.where(k > 0, mu_hat / np.where(k > 0, k, 1) ** 2, 0)
    flux = mu * grid.to_physical(1j * k * psi_hat)
    rhs = grid.to_physical(1j * k * grid.to_spectral(flux))
    assert np.max(np.abs(dmu_dt - rhs)) < 1e-7


def test_density_matches_exact_solution(scheme):
    """N = 256, t = 2: ≤ 1e-9 for the fourth-order schemes, ≤ 1e-6 for the second-order ones."""
    error = exact_solution_error(scheme.name, exact_s1_1d, n=256, t_end=2.0)
    assert error <= (1e-9 if scheme.order >= 4 else 1e-6)


def test_energy_decays_like_exp_minus_2t():
    """s = 1 in 1-D: E(t) = E(0) e^{-2t} for every initial density."""
    grid = Torus((128,))
    (x,) = grid.mesh()
    sol = solve(grid, 1, mu0(x, 0.6, 0.3), [3.0], rtol=1e-12)
    t, energy = sol.diagnostics["t"], sol.diagnostics["energy"]
    assert len(t) > 5
    np.testing.assert_allclose(energy, energy[0] * np.exp(-2 * t), rtol=1e-8)
