"""Bad input: one-line ValueErrors that name the parameter and its value."""

import logging
import math
import re

import numpy as np
import pytest

from sobolev_flow import SobolevKernel, Torus, solve


def smooth(grid):
    return np.broadcast_to(1 + 0.3 * np.cos(grid.mesh()[0]), grid.shape).copy()


def check(match, call):
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    assert re.search(match, message), message


@pytest.mark.parametrize("s", [0, -1.5, float("nan"), "two"])
def test_sobolev_order_must_be_positive(s):
    grid = Torus((16,))
    check(rf"^s={re.escape(repr(s))}: ", lambda: solve(grid, s, smooth(grid), [1.0]))


def test_small_s_is_accepted_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        SobolevKernel(0.5)
    assert "s=0.5 lies outside the theory" in caplog.text


@pytest.mark.parametrize("shape, match", [
    ((15,), r"^n=15 \(shape=\(15,\)\): points per axis must be even and at least 8$"),
    ((6, 8), r"^n=6 \(shape=\(6, 8\)\)"),
    ((8, 8, 8, 8), r"^d=4 \(shape=\(8, 8, 8, 8\)\): the torus must have dimension 1, 2 or 3$"),
    ((), r"^d=0"),
])
def test_grid_shape(shape, match):
    check(match, lambda: Torus(shape))


def test_unknown_dealiasing():
    check(r"^dealias='1/2': expected one of 3/2, 2/3$", lambda: Torus((8,), dealias="1/2"))


@pytest.mark.parametrize("value, match", [
    (np.nan, r"^mu0 has a non-finite value \(nan at index \(3,\)\)$"),
    (np.inf, r"^mu0 has a non-finite value \(inf at index \(3,\)\)$"),
    (-0.25, r"^mu0 has a value -0.25 at index \(3,\); a density must be >= 0$"),
])
def test_initial_density_values(value, match):
    grid = Torus((16,))
    mu0 = np.ones(16)
    mu0[3] = value
    check(match, lambda: solve(grid, 1, mu0, [1.0], normalize=True))


def test_vacuum_is_allowed():
    grid = Torus((16,))
    mu0 = np.ones(16)
    mu0[3] = 0.0
    solve(grid, 2, mu0 / mu0.mean(), [0.01])


def test_target_must_be_positive():
    grid = Torus((16,))
    nu = np.ones(16)
    nu[5] = 0.0
    check(r"^nu has a value 0 at index \(5,\); a density must be > 0$", lambda: solve(grid, 1, np.ones(16), [1.0], nu=nu))


@pytest.mark.parametrize("name", ["mu0", "nu"])
def test_wrong_shape(name):
    grid = Torus((16, 16))
    args = {"mu0": np.ones((16, 16)), "nu": None, name: np.ones((16, 8))}
    check(rf"^{name} has shape \(16, 8\), expected \(16, 16\) \(the grid's shape\)$",
          lambda: solve(grid, 1, args["mu0"], [1.0], nu=args["nu"]))


def test_masses_must_match_unless_normalised():
    grid = Torus((16,))
    mu0 = 1.5 * smooth(grid)
    check(r"^mu0 has mass 1.5 but nu has mass 1 \(relative difference 0.5 > 1e-10\); the Wasserstein flow "
          r"conserves mass: pass normalize=True to rescale mu0, or use the wfr geometry$",
          lambda: solve(grid, 1, mu0, [1.0]))
    sol = solve(grid, 1, mu0, [0.0], normalize=True)
    assert abs(sol.mu[0].mean() - 1) < 1e-14
    # a mismatch below the tolerance is accepted
    solve(grid, 1, smooth(grid) * (1 + 1e-12), [0.1])


def test_memory_is_checked_up_front():
    grid = Torus((2048, 2048, 2048))
    mu0 = np.broadcast_to(1.0, grid.shape)
    check(r"^shape=\(2048, 2048, 2048\): the run needs an estimated [\d.]+ TiB of working memory, more than the "
          r"[\d.]+ GiB of this machine$", lambda: solve(grid, 2, mu0, [1.0]))


@pytest.mark.parametrize("option, value, match", [
    ("scheme", "etdkr4", r"^scheme='etdkr4': unknown scheme; did you mean 'etdrk4'\? valid: "),
    ("rtol", 0, r"^rtol=0: expected a positive finite number$"),
    ("dt", -0.1, r"^dt=-0.1: expected a positive finite number$"),
    ("cfl", float("inf"), r"^cfl=inf: "),
    ("fft_backend", "fftpack", r"^fft_backend='fftpack': expected one of auto, pyfftw, numpy$"),
    ("fft_effort", "quick", r"^fft_effort='quick': expected one of estimate, measure, patient, exhaustive$"),
    ("stabilisation", -1.0, r"^stabilisation=-1.0: expected a finite number > 0$"),
])
def test_options(option, value, match):
    grid = Torus((16,))
    check(match, lambda: solve(grid, 1, smooth(grid), [1.0], **{option: value}))


@pytest.mark.parametrize("times", [[], [1.0, 0.5], [-1.0], [float("nan")]])
def test_times(times):
    grid = Torus((16,))
    check(r"^times=.*: expected a non-empty list of finite times >= 0 in non-decreasing order$",
          lambda: solve(grid, 1, smooth(grid), times))


@pytest.mark.parametrize("shape", [(256, 256), (32, 32, 32)])
def test_memory_estimate_matches_the_measured_peak(shape, scheme):
    """The up-front estimate is within 25 % of the peak numpy allocation of a short run (grids
    large enough that the interpreter's own allocations during the run do not count; the
    compiled kernels, loaded once per process, are loaded before)."""
    import tracemalloc

    from sobolev_flow import Solver, SpectralModel, fused, memory_estimate

    grid = Torus(shape)
    mu0 = smooth(grid)
    if fused.select("auto", points=math.prod(grid.padded_shape)) == "numba":
        fused.products("numba")
    tracemalloc.start()
    try:
        solver = Solver(SpectralModel(grid, mu0, s=2.0, threads=1), scheme=scheme.name)
        solver.advance(0.5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    estimate = memory_estimate(grid, scheme)
    assert 0.8 <= peak / estimate <= 1.25
