"""The minimal pyfftw RK4 loop of benchmarks/minimal_rk4.py, the reference of ``rhs_vs_fft.py
--rk4-step``, takes the package's fixed rk4 step: same semi-discrete system, same dealiasing,
same scheme (so the benchmark compares the same work)."""

import math
import pathlib
import sys

import numpy as np
import pytest

from sobolev_flow import Solver, SobolevKernel, SpectralModel, Torus

pytest.importorskip("pyfftw")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
from minimal_rk4 import MinimalRK4  # noqa: E402


def smooth_density(grid, rng, amplitude=0.5):
    """μ0 = 1 + amplitude f/max|f| for a random smooth resolved f of zero mean."""
    shape = grid.spectral_shape
    f_hat = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * np.exp(-grid.k2 / 8.0)
    f_hat.flat[0] = 0.0
    f = grid.to_physical(grid.project(f_hat))
    return 1.0 + amplitude * f / np.abs(f).max()


@pytest.mark.parametrize("kernels", ["numpy", "numba"])
@pytest.mark.parametrize("shape", [(32, 32), (24, 40), (16, 16, 16), (16, 12, 20)])
def test_minimal_rk4_steps_equal_the_solver_rk4_steps(shape, kernels, rng):
    if kernels == "numba":
        pytest.importorskip("numba")
    grid, dt = Torus(shape), 0.05
    model = SpectralModel(grid, smooth_density(grid, rng), kernel=SobolevKernel(s=2), threads=1, kernels=kernels)
    solver = Solver(model, scheme="rk4", dt=dt)
    u0 = solver.u.copy()
    minimal = MinimalRK4(u0, grid.padded_shape, s=2.0, nu_bar=model.stabilisation, threads=1)
    for _ in range(3):
        solver.step(math.inf)
        minimal.step(dt)
        scale = np.abs(solver.u).max()
        assert np.abs(minimal.u - solver.u).max() <= 1e-12 * scale
    # the steps moved the state far beyond that tolerance, the unresolved wavenumbers excepted
    assert np.abs(minimal.u - u0).max() > 1e-2 * np.abs(u0).max()
    assert not np.any(minimal.u[~grid.resolved])


def test_minimal_rk4_nonlinear_part_is_the_models_explicit_part(rng):
    """N alone (before the linear part and the stage combinations), at a state with ν̄ = 2."""
    grid = Torus((24, 16))
    model = SpectralModel(grid, 2.0 * smooth_density(grid, rng), nu=np.full(grid.shape, 2.0),
                          kernel=SobolevKernel(s=2), threads=1, kernels="numpy")
    u = model.initial_state()
    expected = model.empty()
    model.explicit(u, expected)
    minimal = MinimalRK4(u, grid.padded_shape, s=2.0, nu_bar=model.stabilisation)
    got = minimal.nonlinear(u, np.empty_like(u))
    assert np.abs(got - expected).max() <= 1e-13 * np.abs(expected).max()
    np.testing.assert_allclose(minimal.linear, model.linear, rtol=1e-15, atol=0)
