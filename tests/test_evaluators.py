"""Particle evaluators of ψ = K ⋆ (μ_N − ν) and ∇ψ: against each other, against closed forms
summed independently (Fourier series, aliasing sums for equispaced particles), against finite
differences of the energy, and the factory's error messages."""

import math
import re
import sys

import numpy as np
import pytest
from scipy.special import digamma, zeta

from sobolev_flow import evaluators
from sobolev_flow.evaluators import DirectEvaluator, NufftEvaluator, SortedEvaluator, make_evaluator, sobolev_green_1d
from sobolev_flow.grid import Torus
from sobolev_flow.kernels import GaussianKernel, SobolevKernel

TWO_PI = 2 * np.pi
BACKENDS = ("ducc0", "finufft")


def exactly(message):
    return "^" + re.escape(message) + "$"


def cosine_target(d, n=16):
    """A smooth band-limited target: ν = 1 + 0.3 cos x_1 + 0.2 sin(2x_d + x_1) (+ a third mode in 3-D),
    as (grid, coefficients)."""
    grid = Torus((n,) * d)
    X = np.broadcast_arrays(*grid.mesh())
    nu = 1 + 0.3 * np.cos(X[0]) + 0.2 * np.sin(2 * X[-1] + X[0])
    if d == 3:
        nu = nu + 0.1 * np.cos(X[1] - X[0])
    return grid, grid.to_spectral(nu)


def particles(rng, N, d, uniform):
    x = rng.uniform(-7.0, 7.0, (N, d))          # deliberately outside [0, 2π): wrapped inside
    w = np.full(N, 1.0 / N) if uniform else rng.uniform(0.5, 1.5, N) / N
    return x, w


def relative(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


def fitted_order(K, err):
    """Slope of log err against log K (least squares)."""
    return np.polyfit(np.log(K), np.log(err), 1)[0]


# ------------------------------------------------------------------------ closed forms in 1-D
@pytest.mark.parametrize("s", [1, 2, 3, 0.75, 1.5, 2.3])
def test_sobolev_green_against_fourier_series(s):
    """G_s(z) = Σ_{k≠0}|k|^{-2s}e^{ikz} summed to k = 2·10^5, with the tails bounded: Σ_{k>M} 2k^{-2s}
    ≤ 2M^{1−2s}/(2s−1) for G, and (Abel summation) M^{1−2s}/|sin(z/2)| for G'."""
    z = np.array([0.0, 0.3, 1.0, 2.5, np.pi, 4.0, 6.0, -1.3, 9.0])
    M = 200_000
    k = np.arange(1, M + 1, dtype=float)
    g, dg = sobolev_green_1d(z, s)
    series = 2 * np.cos(np.outer(z, k)) @ k ** (-2 * s)
    dseries = -2 * np.sin(np.outer(z, k)) @ k ** (1 - 2 * s)
    g_tail = 2 * M ** (1 - 2 * s) / (2 * s - 1)
    np.testing.assert_allclose(g, series, rtol=0, atol=g_tail + 1e-13)
    nonzero = np.abs(np.sin(z / 2)) > 0.1
    d_tail = M ** (1 - 2 * s) / np.abs(np.sin(z[nonzero] / 2))
    assert np.all(np.abs(dg[nonzero] - dseries[nonzero]) <= d_tail + 1e-13)
    assert dg[0] == 0.0                                      # the symmetric value at 0
    if s > 0.5:
        assert g[0] == pytest.approx(2 * zeta(2 * s), rel=1e-14)


def test_sobolev_green_s1_is_the_quadratic():
    z = np.linspace(0.01, TWO_PI - 0.01, 7)
    g, dg = sobolev_green_1d(z, 1)
    np.testing.assert_allclose(g, z**2 / 2 - np.pi * z + np.pi**2 / 3, rtol=0, atol=1e-14)
    np.testing.assert_allclose(dg, z - np.pi, rtol=0, atol=1e-14)


# ------------------------------------------------------------------------ 1-D, s = 1: sorted = direct
@pytest.mark.parametrize("uniform", [True, False], ids=["uniform-w", "random-w"])
@pytest.mark.parametrize("target", ["uniform", "cosine"])
def test_sorted_equals_direct(rng, uniform, target):
    nu = None if target == "uniform" else cosine_target(1)
    x, w = particles(rng, 400, 1, uniform)
    x[7] = x[3]                                  # a tie: contributes 0 to the gradient
    kernel = SobolevKernel(1)
    sorted_, direct = SortedEvaluator(kernel, 1, target=nu), DirectEvaluator(kernel, 1, target=nu)
    psi_s, grad_s = sorted_.potential(x, w, need_psi=True)
    psi_d, grad_d = direct.potential(x, w, need_psi=True)
    assert np.max(np.abs(grad_s - grad_d)) < 1e-12
    assert np.max(np.abs(psi_s - psi_d)) < 1e-12
    assert grad_s[7, 0] == pytest.approx(grad_s[3, 0], abs=1e-14)
    assert sorted_.energy(x, w) == pytest.approx(direct.energy(x, w), rel=1e-12)
    assert sorted_.potential(x, w)[0] is None


def test_sorted_across_calls(rng):
    """The permutation kept from the previous call (nearly sorted input), a reordering and fresh
    positions (full sort) all give the direct sums."""
    kernel = SobolevKernel(1)
    sorted_, direct = SortedEvaluator(kernel, 1), DirectEvaluator(kernel, 1)
    x, w = particles(rng, 300, 1, False)
    perm = rng.permutation(300)
    steps = [(x, w), (x + 1e-3 * rng.normal(size=x.shape), w), (x[perm], w[perm]),
             particles(rng, 300, 1, False), particles(rng, 200, 1, True)]
    for xs, ws in steps:
        psi_s, grad_s = sorted_.potential(xs, ws, need_psi=True)
        psi_d, grad_d = direct.potential(xs, ws, need_psi=True)
        assert np.max(np.abs(grad_s - grad_d)) < 1e-12 and np.max(np.abs(psi_s - psi_d)) < 1e-12


@pytest.mark.parametrize("s", [1, 1.5, 2])
@pytest.mark.parametrize("shift", [0.0, 0.37])
def test_equispaced_particles_exact(s, shift):
    """N equispaced particles of weight 1/N, ν ≡ 1: μ − ν has only the modes qN, q ≠ 0, each
    μ_{qN} = e^{−iqNa}; so E = ζ(2s) N^{−2s}, ψ(x_i) = 2ζ(2s) N^{−2s}, ∇ψ = 0 exactly, while the
    truncated sum with K < N sees nothing. The values (~N^{−2s}) are sums of terms of size up to
    G_s(0) ≈ 3, so rounding leaves an absolute error of a few 1e-16."""
    N = 64
    x = (shift + TWO_PI * np.arange(N) / N)[:, None]
    w = np.full(N, 1.0 / N)
    kernel = SobolevKernel(s)
    exact = [DirectEvaluator(kernel, 1)] + ([SortedEvaluator(kernel, 1)] if s == 1 else [])
    for ev in exact:
        psi, grad = ev.potential(x, w, need_psi=True)
        np.testing.assert_allclose(psi, 2 * zeta(2 * s) / N ** (2 * s), rtol=0, atol=1e-14)
        assert np.max(np.abs(grad)) < 1e-13
        assert ev.energy(x, w) == pytest.approx(zeta(2 * s) / N ** (2 * s), rel=0, abs=1e-14)
    for backend in BACKENDS:
        ev = NufftEvaluator(kernel, 1, modes=N - 1, tol=1e-12, backend=backend)
        psi, grad = ev.potential(x, w, need_psi=True)
        assert np.max(np.abs(psi)) < 1e-12 and np.max(np.abs(grad)) < 1e-12
        assert abs(ev.energy(x, w)) < 1e-20


@pytest.mark.parametrize("s", [1, 1.5, 2])
def test_quadrature_particles_against_aliasing_sums(s):
    """Particles on the grid x_i = 2πi/N with weights ν(x_i)/N reproduce ν's modes j (|j| ≤ 2):
    μ_k = ν_j for k = qN + j, so ψ(x_i) = Σ_j ν_j e^{ijx_i} Σ_{q≠0} |qN+j|^{-2s} and
    ∇ψ(x_i) = Σ_j ν_j e^{ijx_i} Σ_{q≠0} i(qN+j)|qN+j|^{-2s}, with the lattice sums as Hurwitz zeta
    functions: Σ_{q≠0}|qN+j|^{-p} = N^{-p}(ζ(p, 1+j/N) + ζ(p, 1−j/N)) and
    Σ_{q≠0} sign(qN+j)|qN+j|^{1-2s} = N^{1-2s}(ζ(2s−1, 1+j/N) − ζ(2s−1, 1−j/N)), which for s = 1 is
    (digamma(1−j/N) − digamma(1+j/N))/N. The values are small (≲ N^{−2s}); the evaluators form them
    from terms of size up to G_s(0) ≈ 3, hence absolute tolerances."""
    N = 40
    x = TWO_PI * np.arange(N) / N
    nu = {0: 1.0, 1: 0.2 - 0.1j, -1: 0.2 + 0.1j, 2: 0.05j, -2: -0.05j}
    density = sum(c * np.exp(1j * j * x) for j, c in nu.items()).real
    grid = Torus((16,))
    target = (grid, grid.to_spectral(sum(c * np.exp(1j * j * grid.coordinates()[0]) for j, c in nu.items()).real))
    psi_ref = np.zeros(N)
    grad_ref = np.zeros(N)
    energy_ref = 0.0
    for j, c in nu.items():
        a, b = 1 + j / N, 1 - j / N
        lattice = (zeta(2 * s, a) + zeta(2 * s, b)) / N ** (2 * s)
        if s == 1:
            odd = (digamma(b) - digamma(a)) / N
        else:
            odd = (zeta(2 * s - 1, a) - zeta(2 * s - 1, b)) / N ** (2 * s - 1)
        phase = c * np.exp(1j * j * x)
        psi_ref += (phase * lattice).real
        grad_ref += (phase * 1j * odd).real
        energy_ref += 0.5 * abs(c) ** 2 * lattice
    w = density / N
    evs = [DirectEvaluator(SobolevKernel(s), 1, target=target)]
    if s == 1:
        evs.append(SortedEvaluator(SobolevKernel(1), 1, target=target))
    for ev in evs:
        psi, grad = ev.potential(x[:, None], w, need_psi=True)
        np.testing.assert_allclose(psi, psi_ref, rtol=0, atol=1e-14)
        np.testing.assert_allclose(grad[:, 0], grad_ref, rtol=0, atol=1e-14)
        assert ev.energy(x[:, None], w) == pytest.approx(energy_ref, rel=0, abs=1e-14)


# ------------------------------------------------------------------------ 1-D: nufft → direct
@pytest.mark.parametrize("target", ["uniform", "cosine"])
@pytest.mark.parametrize("uniform", [True, False], ids=["uniform-w", "random-w"])
def test_nufft_converges_to_exact_s1(rng, target, uniform):
    nu = None if target == "uniform" else cosine_target(1)
    x, w = particles(rng, 300, 1, uniform)
    exact = SortedEvaluator(SobolevKernel(1), 1, target=nu)
    _, grad = exact.potential(x, w)
    errors = []
    for K in (32, 128, 512, 2048):
        ev = NufftEvaluator(SobolevKernel(1), 1, modes=K, target=nu, tol=1e-12)
        errors.append(np.sqrt(np.mean((ev.potential(x, w)[1] - grad) ** 2)))
    assert np.all(np.diff(errors) < 0)
    assert errors[-1] < 0.25 * errors[0]


@pytest.mark.parametrize("s", [1, 1.5, 2])
def test_truncation_error_rates(rng, s):
    """RMS error of ∇ψ at the particles for the truncated kernel, fitted over K. Two regimes:
    separated particles and K ≫ N (every pair resolved): the tail Σ_{k>K} k^{1−2s} sin(kz) ~
    K^{1−2s}/z of each neighbour, order 2s − 1 (1 for s = 1); random particles: the N^{-1/2}-sized
    random modes beyond K add up to (Σ_{k>K} k^{2−4s}/N)^{1/2}, order 2s − 3/2 (1/2 for s = 1)."""
    kernel = SobolevKernel(s)
    # K ≫ N: 24 particles on a jittered lattice, gaps ≥ π/24; K up to 2^13
    N = 24
    x = (TWO_PI * (np.arange(N) + rng.uniform(0.25, 0.75, N)) / N)[:, None]
    w = rng.uniform(0.5, 1.5, N) / N
    _, exact = DirectEvaluator(kernel, 1).potential(x, w)
    Ks = np.array([1024, 2048, 4096, 8192])
    err = [np.sqrt(np.mean((NufftEvaluator(kernel, 1, modes=int(K), tol=1e-13).potential(x, w)[1] - exact) ** 2))
           for K in Ks]
    assert fitted_order(Ks, err) == pytest.approx(-(2 * s - 1), abs=0.25)
    # random particles: N = 2000, K = 16 … 128
    N = 2000
    x, w = particles(rng, N, 1, True)
    _, exact = DirectEvaluator(kernel, 1).potential(x, w)
    Ks = np.array([16, 32, 64, 128])
    err = [np.sqrt(np.mean((NufftEvaluator(kernel, 1, modes=int(K), tol=1e-13).potential(x, w)[1] - exact) ** 2))
           for K in Ks]
    assert fitted_order(Ks, err) == pytest.approx(-(2 * s - 1.5), abs=0.25)


# ------------------------------------------------------------------------ 2-D and 3-D
@pytest.mark.parametrize("d, K", [(2, 12), (3, 5)])
@pytest.mark.parametrize("kernel", [GaussianKernel(0.5), SobolevKernel(2)], ids=["gaussian", "sobolev2"])
def test_nufft_backends_against_direct_fourier_sums(rng, d, K, kernel):
    target = cosine_target(d)
    x, w = particles(rng, 250, d, False)
    direct = DirectEvaluator(kernel, d, modes=K, target=target)
    psi_ref, grad_ref = direct.potential(x, w, need_psi=True)
    energy_ref = direct.energy(x, w)
    for backend in BACKENDS:
        ev = NufftEvaluator(kernel, d, modes=K, target=target, tol=1e-11, backend=backend)
        assert ev.backend == backend
        for need_psi in (False, True):
            psi, grad = ev.potential(x, w, need_psi=need_psi)
            assert grad.shape == (len(w), d)
            assert relative(grad, grad_ref) < 1e-9
            assert (psi is None) if not need_psi else relative(psi, psi_ref) < 1e-9
        assert ev.energy(x, w) == pytest.approx(energy_ref, rel=1e-9)


def test_finufft_without_adjoint_matches(rng):
    """The finufft path for versions without ``Plan.execute_adjoint`` (type-2 plans of its own)."""
    target = cosine_target(2)
    x, w = particles(rng, 200, 2, False)
    a = NufftEvaluator(SobolevKernel(2), 2, modes=10, target=target, tol=1e-12, backend="finufft")
    b = NufftEvaluator(SobolevKernel(2), 2, modes=10, target=target, tol=1e-12, backend="finufft")
    b._backend.use_adjoint = False
    for need_psi in (False, True):
        for (pa, ga), (pb, gb) in [(a.potential(x, w, need_psi), b.potential(x, w, need_psi))]:
            assert relative(ga, gb) < 1e-10
            assert need_psi is False or relative(pa, pb) < 1e-10


def test_direct_automatic_cutoff_gaussian(rng):
    """The automatic cut-off of the direct sum meets its tolerance: against the truncated sum with
    many more modes (the Gaussian's tail beyond K = 30 is below 1e-40)."""
    target = cosine_target(2)
    x, w = particles(rng, 200, 2, False)
    ev = DirectEvaluator(GaussianKernel(0.5), 2, target=target, tol=1e-9)
    assert ev.exact and 8 <= ev.modes < 30
    psi, grad = ev.potential(x, w, need_psi=True)
    psi_ref, grad_ref = DirectEvaluator(GaussianKernel(0.5), 2, modes=30, target=target).potential(x, w, True)
    assert relative(grad, grad_ref) < 1e-9
    assert relative(psi, psi_ref) < 1e-9


@pytest.mark.parametrize("d", [1, 2])
def test_positions_modulo_2pi(rng, d):
    """Representatives in [0, 2π), in [−π, π), mixed over [−π, 2π) and far outside give the same
    results (the first three are used as given, the last is wrapped)."""
    base = rng.uniform(0.0, TWO_PI, (150, d))
    w = rng.uniform(0.5, 1.5, 150) / 150
    centred = np.where(base >= np.pi, base - TWO_PI, base)
    mixed = np.where(rng.random(base.shape) < 0.5, centred, base)
    far = base + TWO_PI * rng.integers(-3, 4, base.shape)
    evs = [NufftEvaluator(SobolevKernel(2), d, modes=8, tol=1e-12), DirectEvaluator(SobolevKernel(2), d, modes=8)]
    if d == 1:
        evs += [DirectEvaluator(SobolevKernel(2), 1), SortedEvaluator(SobolevKernel(1), 1)]
    for ev in evs:
        psi, grad = ev.potential(base, w, True)
        energy = ev.energy(base, w)
        for x in (centred, mixed, far):
            psi2, grad2 = ev.potential(x, w, True)
            assert relative(grad2, grad) < 1e-10 and relative(psi2, psi) < 1e-10
            assert ev.energy(x, w) == pytest.approx(energy, rel=1e-10)


# ------------------------------------------------------------------------ ∂E/∂x, ∂E/∂w
def _evaluators():
    s1, s2 = SobolevKernel(1), SobolevKernel(2)
    return {
        "sorted": (lambda t: SortedEvaluator(s1, 1, target=t), 1),
        "direct-bernoulli": (lambda t: DirectEvaluator(s1, 1, target=t), 1),
        "direct-series": (lambda t: DirectEvaluator(SobolevKernel(1.5), 1, target=t), 1),
        "direct-fourier-auto": (lambda t: DirectEvaluator(GaussianKernel(0.7), 2, target=t), 2),
        "direct-fourier-modes": (lambda t: DirectEvaluator(s2, 2, modes=8, target=t), 2),
        "nufft-ducc0-1d": (lambda t: NufftEvaluator(s1, 1, modes=64, target=t, tol=1e-13, backend="ducc0"), 1),
        "nufft-ducc0-2d": (lambda t: NufftEvaluator(s2, 2, modes=8, target=t, tol=1e-13, backend="ducc0"), 2),
        "nufft-finufft-3d": (lambda t: NufftEvaluator(GaussianKernel(0.7), 3, modes=5, target=t, tol=1e-13,
                                                      backend="finufft"), 3),
    }


@pytest.mark.parametrize("name", list(_evaluators()))
def test_energy_derivatives(rng, name):
    """∂E/∂x_i = w_i ∇ψ(x_i) and ∂E/∂w_i = ψ(x_i), by central differences of ``energy``."""
    build, d = _evaluators()[name]
    ev = build(cosine_target(d))
    x, w = particles(rng, 12, d, False)
    psi, grad = ev.potential(x, w, need_psi=True)
    h = 1e-5
    scale = np.max(np.abs(w[:, None] * grad))
    for i in (0, 5, 11):
        for j in range(d):
            xp, xm = x.copy(), x.copy()
            xp[i, j] += h
            xm[i, j] -= h
            fd = (ev.energy(xp, w) - ev.energy(xm, w)) / (2 * h)
            assert fd == pytest.approx(w[i] * grad[i, j], abs=1e-6 * scale)
        wp, wm = w.copy(), w.copy()
        wp[i] += 1e-3
        wm[i] -= 1e-3
        fd = (ev.energy(x, wp) - ev.energy(x, wm)) / 2e-3
        assert fd == pytest.approx(psi[i], abs=1e-9 * np.max(np.abs(psi)))


# ------------------------------------------------------------------------ factory and errors
def test_factory_choices():
    assert make_evaluator("auto", SobolevKernel(1), 1).name == "sorted"
    assert make_evaluator("auto", SobolevKernel(2), 1, modes=8).name == "nufft"
    assert make_evaluator("auto", SobolevKernel(1), 2, modes=8).name == "nufft"
    ev = make_evaluator("direct", SobolevKernel(2), 1, modes=8)        # exact: the cut-off is not used
    assert (ev.name, ev.exact, ev.modes) == ("direct", True, None)
    ev = make_evaluator("direct", GaussianKernel(0.5), 2, modes=64)
    assert (ev.name, ev.exact, ev.modes) == ("direct", True, 13)      # the automatic cut-off for tol = 1e-9
    ev = make_evaluator("sorted", SobolevKernel(1), 1, modes=8)
    assert (ev.name, ev.exact, ev.modes) == ("sorted", True, None)
    ev = make_evaluator("nufft", GaussianKernel(1.0), 3, modes=4, target=2.0, tol=1e-8, threads=1)
    assert (ev.name, ev.exact, ev.modes, ev.backend) == ("nufft", False, 4, "ducc0")


@pytest.mark.parametrize("args, message", [
    (("nuft", SobolevKernel(1), 1),
     "particles.evaluator='nuft': unknown evaluator; did you mean 'nufft'? valid: auto, nufft, direct, sorted"),
    (("fmm", SobolevKernel(1), 1), "particles.evaluator='fmm': unknown evaluator; valid: auto, nufft, direct, sorted"),
    (("nufft", SobolevKernel(1), 1, 0), "particles.modes=0: expected an integer >= 1"),
    (("nufft", SobolevKernel(1), 1, 2.5), "particles.modes=2.5: expected an integer >= 1"),
    (("nufft", SobolevKernel(1), 1, "8"), "particles.modes='8': expected an integer >= 1"),
    (("nufft", SobolevKernel(1), 1), "particles.modes=None: the nufft evaluator needs a mode cut-off K, an integer >= 1"),
    (("sorted", SobolevKernel(1), 2),
     "particles.evaluator='sorted': needs d=1 and the Sobolev kernel with s=1, got d=2"),
    (("sorted", SobolevKernel(1.5), 1),
     "particles.evaluator='sorted': needs d=1 and the Sobolev kernel with s=1, got s=1.5"),
    (("sorted", GaussianKernel(1.0), 1),
     "particles.evaluator='sorted': needs d=1 and the Sobolev kernel with s=1, got the gaussian kernel"),
])
def test_factory_errors(args, message):
    with pytest.raises(ValueError, match=exactly(message)):
        make_evaluator(*args)


def test_memory_errors(monkeypatch):
    monkeypatch.setattr(evaluators, "_physical_memory", lambda: 10**9)
    with pytest.raises(ValueError, match=exactly(
            "particles.modes=10000: the mode box (2K+1)^2 = 400040001 complex numbers needs 6.4 GB, "
            "more than the 1 GB of memory of this machine")):
        make_evaluator("nufft", SobolevKernel(2), 2, modes=10_000)
    with pytest.raises(ValueError, match=exactly(
            "particles.evaluator='direct': the Sobolev kernel with s=2 in d=2 needs modes beyond |k_j| <= 1767 "
            "for the gradient's tail below tol=1e-09, and a larger box does not fit in the 1 GB of memory "
            "(~80 bytes per mode); raise particles.tol or use particles.evaluator='nufft'")):
        make_evaluator("direct", SobolevKernel(2), 2)
    with pytest.raises(ValueError, match=exactly(
            "particles.evaluator='direct': the gradient's Fourier series of the Sobolev kernel with s=1.5 does not "
            "converge absolutely in d=2 (needs s > 1.5); use particles.evaluator='nufft' (the kernel truncated "
            "to particles.modes)")):
        make_evaluator("direct", SobolevKernel(1.5), 2)


def test_missing_backend_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ducc0", None)
    monkeypatch.setitem(sys.modules, "ducc0.nufft", None)
    with pytest.raises(ImportError, match=re.escape('pip install "sobolev_flow[particles]"')):
        NufftEvaluator(SobolevKernel(2), 1, modes=8, backend="ducc0")


def test_input_shapes():
    ev = make_evaluator("nufft", SobolevKernel(2), 2, modes=4)
    with pytest.raises(ValueError, match=exactly("x: expected positions of shape (N, 2), got (5,)")):
        ev.potential(np.zeros(5), np.zeros(5))
    with pytest.raises(ValueError, match=exactly("x, w: particle positions and weights must be finite")):
        ev.potential(np.full((3, 2), np.nan), np.ones(3))
    psi, grad = ev.potential(np.zeros((0, 2)), np.zeros(0), need_psi=True)
    assert psi.shape == (0,) and grad.shape == (0, 2)
    assert math.isclose(ev.energy(np.zeros((0, 2)), np.zeros(0)), 0.0)
