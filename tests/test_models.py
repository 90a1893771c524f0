"""The spectral model under any kernel and both geometries: right-hand side against an
independently written reference, WFR mode rates, mass, energy balance, invariances."""

import math

import numpy as np
import pytest

from sobolev_flow import Solver, SpectralModel, Torus, solve
from sobolev_flow.kernels import FourierKernel, GaussianKernel, ReluKernel, SobolevKernel
from sobolev_flow.validation import WFR_RATE_STUDIES, wfr_linear_rates
from conftest import exact_s1_1d

WFR = {"name": "wfr", "alpha": 2.0}


# ----------------------------------------------------------------------------- reference
def gaussian_weights(k2, sigma, d):
    return (sigma / math.sqrt(2 * math.pi)) ** d * np.exp(-0.5 * sigma**2 * k2)


def relu_weights(k):
    k = np.abs(k)
    out = np.where(k % 2 == 0, 1.0 / (np.pi**2 * np.maximum((k**2 - 1.0) ** 2, 1.0)), 0.0)
    return np.where(k == 1, 1 / 16, out)


def reference_rhs(mu, nu, weights, alpha):
    """∂t μ = div(μ∇ψ) − αψμ, ψ = K ⋆ (μ − ν), for band-limited μ, ν sampled on a grid fine enough
    that every product is exact: full complex FFTs, products in physical space, no dealiasing.

    ``weights(k2, ks)`` gives K̂ on the full layout."""
    shape, d = mu.shape, mu.ndim
    ks = np.meshgrid(*[np.fft.fftfreq(n, 1.0 / n) for n in shape], indexing="ij")
    k2 = sum(k**2 for k in ks)
    psi_hat = weights(k2, ks) * np.fft.fftn(mu - nu) / mu.size
    psi = np.fft.ifftn(psi_hat).real * mu.size
    div = np.zeros(shape, complex)
    for j in range(d):
        dpsi = np.fft.ifftn(1j * ks[j] * psi_hat).real * mu.size
        div += 1j * ks[j] * np.fft.fftn(mu * dpsi)
    return np.fft.ifftn(div).real - alpha * psi * mu


CASES = {
    # name: (grid, kernel, reference weights, μ, ν) — μ and ν with few modes, so that the padded
    # products are exact and the fine reference grid (twice as fine) resolves everything
    "gaussian 2-D": (Torus((16, 16)), GaussianKernel(0.7), lambda k2, ks: gaussian_weights(k2, 0.7, 2),
                     lambda x: 1 + 0.3 * np.cos(x[0]) + 0.2 * np.sin(2 * x[1] + x[0]),
                     lambda x: 1 + 0.25 * np.cos(x[0] - x[1])),
    "relu 1-D": (Torus((32,)), ReluKernel(), lambda k2, ks: relu_weights(ks[0]),
                 lambda x: 1 + 0.3 * np.cos(x[0]) + 0.2 * np.sin(2 * x[0]) + 0.1 * np.cos(4 * x[0] + 1),
                 lambda x: 1 + 0.4 * np.sin(x[0]) + 0.2 * np.cos(3 * x[0])),
    "sobolev 2-D": (Torus((16, 16)), SobolevKernel(1.5),
                    lambda k2, ks: np.where(k2 > 0, np.maximum(k2, 1) ** -1.5, 0.0),
                    lambda x: 1 + 0.3 * np.sin(x[0] + x[1]) + 0.2 * np.cos(2 * x[1]),
                    lambda x: 1 + 0.3 * np.cos(x[0]) * np.cos(x[1])),
}


@pytest.mark.parametrize("alpha", [0.0, 2.0])
@pytest.mark.parametrize("case", sorted(CASES))
def test_right_hand_side_with_a_non_uniform_target_matches_a_direct_computation(case, alpha):
    grid, kernel, weights, mu_fn, nu_fn = CASES[case]
    fine = Torus(tuple(2 * n for n in grid.shape))
    mass = 1.0 if alpha == 0 else 1.3  # WFR allows a target of another mass
    mu, nu = (np.broadcast_to(f(g.mesh()), g.shape) for f, g in ((mu_fn, grid), (nu_fn, grid)))
    geometry = {"name": "wfr", "alpha": alpha} if alpha else None
    model = SpectralModel(grid, mu, mass * nu, kernel=kernel, geometry=geometry)
    out = model.empty()
    model.rhs(model.initial_state(), out)
    x_fine = fine.mesh()
    expected = reference_rhs(np.broadcast_to(mu_fn(x_fine), fine.shape).copy(),
                             mass * np.broadcast_to(nu_fn(x_fine), fine.shape), weights, alpha)
    coarse = expected[tuple(slice(None, None, 2) for _ in grid.shape)]  # band-limited: sampling is exact
    assert np.max(np.abs(out - grid.project(grid.to_spectral(coarse)))) < 1e-14


def test_stabilisation_leaves_the_solution_unchanged():
    """ν̄ only moves terms between the linear and the explicit part: the flow is the same."""
    grid = Torus((32,))
    (x,) = grid.mesh()
    mu0, nu = 1.2 + 0.5 * np.sin(x), 1 + 0.4 * np.cos(x)
    options = dict(kernel=GaussianKernel(0.5), geometry=WFR, rtol=1e-11)
    a = solve(grid, None, mu0, [2.0], nu=nu, **options).mu[-1]
    b = solve(grid, None, mu0, [2.0], nu=nu, stabilisation=3.0, **options).mu[-1]
    c = solve(grid, None, mu0, [2.0], nu=nu, stabilisation=0.5, **options).mu[-1]
    assert np.max(np.abs(a - b)) < 1e-9 and np.max(np.abs(a - c)) < 1e-9


# ----------------------------------------------------------------------------- WFR rates and mass
@pytest.mark.parametrize("study", sorted(WFR_RATE_STUDIES))
def test_wfr_linear_mode_rates(study):
    """Around a uniform target of density M, mode k decays at M(|k|² + α)K̂_k (α = 2); the kernel
    weights come from the closed forms written here, not from the kernel under test."""
    grid, kernel, modes, mass = WFR_RATE_STUDIES[study]
    rates = wfr_linear_rates(study)
    assert set(rates) == set(modes)
    for k, (measured, predicted) in rates.items():
        k2 = sum(kj**2 for kj in k)
        weight = float(relu_weights(np.array(k[0]))) if grid.d == 1 else gaussian_weights(k2, kernel.sigma, grid.d)
        assert predicted == pytest.approx(mass * (k2 + 2.0) * weight, rel=1e-13)
        assert abs(measured / predicted - 1) < 1e-4, (k, measured, predicted)


@pytest.mark.parametrize("kernel", [ReluKernel(), GaussianKernel(0.8)], ids=["relu", "gaussian"])
def test_wfr_mass_mode_follows_the_linearised_closed_form(kernel):
    """m(t) − M = (m0 − M) e^{−αMK̂_0 t} to first order, for a perturbation of amplitude 1e-4."""
    grid, mass, alpha = Torus((16,)), 1.5, 2.0
    k0 = float(kernel.weights(grid)[0])
    sol = solve(grid, None, np.full(grid.shape, mass * (1 + 1e-4)), np.linspace(0, 3, 4), nu=np.full(grid.shape, mass),
                kernel=kernel, geometry={"name": "wfr", "alpha": alpha}, rtol=1e-12)
    m = sol.mu.mean(axis=1)
    linear = mass + (m[0] - mass) * np.exp(-alpha * mass * k0 * sol.t)
    assert np.max(np.abs((m - mass) / (linear - mass) - 1)[1:]) < 1e-4


def test_wfr_mass_of_a_uniform_density_is_logistic():
    """A uniform μ = m stays uniform, ψ = K̂_0(m − M), and dm/dt = −αK̂_0 m(m − M) exactly:
    m(t) = M / (1 + (M/m0 − 1) e^{−αK̂_0 M t}), whatever the size of m0 − M."""
    grid, mass, m0, alpha = Torus((16,)), 1.0, 3.0, 2.0
    kernel = GaussianKernel(0.8)
    k0 = float(kernel.weights(grid)[0])
    times = np.linspace(0, 4, 9)
    sol = solve(grid, None, np.full(grid.shape, m0), times, kernel=kernel, geometry={"name": "wfr", "alpha": alpha},
                rtol=1e-12)
    exact = mass / (1 + (mass / m0 - 1) * np.exp(-alpha * k0 * mass * times))
    assert np.max(np.abs(sol.mu.mean(axis=1) - exact)) < 1e-10
    assert np.allclose(sol.diagnostics["mass"][[0, -1]], [m0, exact[-1]], rtol=1e-10)


def test_wfr_energy_balance_closes_and_positivity_is_kept():
    grid = Torus((32, 32))
    x, y = grid.mesh()
    mu0 = 0.05 + 1.5 * np.exp(np.cos(x) + np.sin(y) - 2)
    nu = 1 + 0.3 * np.cos(x - y)
    residuals = []
    for rtol in (1e-6, 1e-9):
        d = solve(grid, None, mu0, [3.0], nu=nu, kernel=GaussianKernel(0.5), geometry=WFR, rtol=rtol).diagnostics
        assert np.all(np.diff(d["energy"]) <= 0) and np.all(d["dissipation"] >= 0)
        assert np.all(d["min_mu"] > 0)
        residuals.append(abs(d["energy_balance"][-1]) / d["energy"][0])
    assert residuals[1] < 1e-8 and residuals[1] < residuals[0]


def test_wasserstein_with_a_weighted_mass_mode_conserves_mass():
    """K̂_0 ≠ 0 under the Wasserstein geometry: ψ_0 is a constant, ∇ψ does not see it."""
    grid = Torus((16, 16))
    x, y = grid.mesh()
    sol = solve(grid, None, 1 + 0.5 * np.sin(x) * np.cos(y), [0.0, 2.0], kernel=GaussianKernel(0.5))
    assert np.max(np.abs(sol.mu.mean(axis=(1, 2)) - 1)) < 1e-14  # ∫μ dm of the density on the grid


def test_kernel_object_through_the_python_api():
    """Fourier weights given as an array behave exactly as the named kernel with those weights."""
    grid = Torus((16, 16))
    x, y = grid.mesh()
    mu0 = 1 + 0.5 * np.sin(x) * np.cos(y)
    weights = SobolevKernel(1.5).weights(grid)
    named = solve(grid, 1.5, mu0, [1.0], dt=0.1)
    given = solve(grid, None, mu0, [1.0], dt=0.1, kernel=FourierKernel(weights))
    assert np.array_equal(named.mu, given.mu)


def test_explicit_schemes_run_a_model_without_a_linear_part():
    """A model with ``linear = None`` is integrated by explicit schemes and refused by the others."""
    grid = Torus((64,))
    (x,) = grid.mesh()
    model = SpectralModel(grid, 1 + 0.3 * np.sin(x), s=1.0)
    linear = model.linear

    class Explicit:  # the same flow with its linear part moved into N
        def __init__(self):
            self.__dict__.update({name: getattr(model, name) for name in
                                  ("layout", "empty", "norm", "energy", "dissipation", "step_bound", "check",
                                   "diagnostics", "diagnose", "fft")})
            self.linear, self.evaluations = None, 0

        def initial_state(self):
            return model.initial_state()

        def explicit(self, u, out, monitor=False):
            self.evaluations += 1
            result = model.explicit(u, out, monitor)
            out += linear * u
            return result

    explicit = Solver(Explicit(), scheme="rk4", dt=0.01)
    explicit.advance(1.0)
    # against the closed form of the s = 1 flow in 1-D (not the grid solver run the other way)
    assert np.max(np.abs(model.density(explicit.u) - exact_s1_1d(x, 1.0, a=0.3, b=0.0))) < 1e-9
    with pytest.raises(ValueError, match=r"^scheme='etdrk4': exponential schemes need a model with a linear part; "
                                         r"valid: rk4, bs32, gd$"):
        Solver(Explicit(), scheme="etdrk4")


def test_tail_fraction_counts_only_the_modes_the_kernel_sees():
    """An odd mode |k| ≥ 3 is in the ReLU kernel's null space: it does not enter the tail."""
    from sobolev_flow.diagnostics import SpectralSums

    grid = Torus((32,))
    rho_hat = np.zeros(grid.spectral_shape, complex)
    rho_hat[13] = 1.0  # odd, in the top third (13 > 2/3 · 15)
    rho_hat[2] = 0.1
    relu = SpectralSums(grid, ReluKernel().weights(grid))
    sobolev = SpectralSums(grid, SobolevKernel(2.0).weights(grid))
    assert relu.tail_fraction(rho_hat) == 0.0
    assert sobolev.tail_fraction(rho_hat) == pytest.approx(1 / 1.01)
