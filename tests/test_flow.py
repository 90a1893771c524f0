"""The right-hand side: dealiasing, back ends, symmetry, conservation."""

import numpy as np
import pytest

from sobolev_flow import SobolevKernel, SpectralModel, Torus, solve


def random_state(grid, rng, decay=1.0):
    """Coefficients of a real field with smoothly decaying random spectrum, resolved modes only."""
    field = grid.to_spectral(rng.standard_normal(grid.shape))
    field *= np.exp(-decay * np.sqrt(grid.k2) / 4)
    field.flat[0] = 0
    return grid.project(field)


def direct_flux_divergence(grid, s, rho_hat, factor=4):
    """Independent reference for N(ρ) = div(ρ ∇ψ): products on a grid `factor` times finer
    (no aliasing for band-limited data), written with numpy.fft only, then truncated."""
    n = grid.shape
    fine = tuple(factor * m for m in n)
    full = np.zeros(fine, dtype=complex)
    # place the half-layout coefficients of rho into a full fine spectrum (Hermitian completion)
    k_axes = [np.fft.fftfreq(m, 1 / m).astype(int) for m in n]
    for index in np.ndindex(*n):
        k = tuple(k_axes[j][index[j]] for j in range(grid.d))
        if any(abs(kj) >= m // 2 for kj, m in zip(k, n)):
            continue
        kk = k if k[-1] >= 0 else tuple(-kj for kj in k)
        half_index = tuple(kj % m for kj, m in zip(kk, n))
        value = rho_hat[half_index] if k[-1] >= 0 else np.conj(rho_hat[half_index])
        full[tuple(kj % M for kj, M in zip(k, fine))] = value
    kf = np.meshgrid(*[np.fft.fftfreq(M, 1 / M) for M in fine], indexing="ij")
    k2 = sum(k**2 for k in kf)
    psi = np.where(k2 > 0, full / np.where(k2 > 0, k2, 1) ** s, 0)
    size = np.prod(fine)
    rho = np.fft.ifftn(full).real * size
    flux_div = sum(1j * k * np.fft.fftn(rho * (np.fft.ifftn(1j * k * psi).real * size)) / size for k in kf)
    out = np.zeros(grid.spectral_shape, dtype=complex)
    for index in np.ndindex(*grid.spectral_shape):
        k = tuple(k_axes[j][index[j]] if j < grid.d - 1 else index[j] for j in range(grid.d))
        if all(abs(kj) < m // 2 for kj, m in zip(k, n)):
            out[index] = flux_div[tuple(kj % M for kj, M in zip(k, fine))]
    return out


@pytest.mark.parametrize("shape", [(16,), (12, 10), (8, 10, 8)])
def test_padded_flux_is_exact_for_resolved_modes(shape, rng):
    grid = Torus(shape)
    flow = SpectralModel(grid, np.ones(grid.shape), kernel=SobolevKernel(1.5))
    rho_hat = random_state(grid, rng, decay=0.0)
    out = np.empty(grid.spectral_shape, complex)
    flow.explicit(rho_hat.copy(), out)
    reference = direct_flux_divergence(grid, 1.5, rho_hat)
    assert np.max(np.abs(out - reference)) < 1e-13 * np.max(np.abs(reference))


def test_two_thirds_rule_keeps_a_third_fewer_modes(rng):
    grid = Torus((24, 24), dealias="2/3")
    flow = SpectralModel(grid, np.ones(grid.shape), kernel=SobolevKernel(2))
    rho_hat = random_state(grid, rng)
    out = np.empty(grid.spectral_shape, complex)
    flow.explicit(rho_hat, out)
    assert np.all(out[~grid.resolved] == 0)
    # on modes below n/3 the truncated product agrees with the exact one (no aliasing)
    reference = direct_flux_divergence(Torus((24, 24)), 2.0, rho_hat)
    assert np.max(np.abs((out - reference)[grid.resolved])) < 1e-13 * np.max(np.abs(reference))


def test_single_top_mode_products_are_dropped_not_aliased():
    """ρ = cos((n/2 − 1)x): the flux lives on mode n − 2, beyond the grid; nothing may alias to −2."""
    grid = Torus((16,))
    (x,) = grid.mesh()
    flow = SpectralModel(grid, np.ones(grid.shape), kernel=SobolevKernel(1))
    out = np.empty(grid.spectral_shape, complex)
    flow.explicit(grid.to_spectral(np.cos(7 * x)), out)
    assert np.max(np.abs(out)) < 1e-15
    # and a low mode gives −k^{2−2s} A² cos 2kx exactly: here k = 3, s = 1, A = 0.5
    flow.explicit(grid.to_spectral(0.5 * np.cos(3 * x)), out)
    expected = np.zeros_like(out)
    expected[6] = -0.25 / 2
    assert np.max(np.abs(out - expected)) < 1e-15


def test_pyfftw_and_numpy_back_ends_agree(rng):
    pytest.importorskip("pyfftw")
    grid = Torus((32, 24))
    x, y = grid.mesh()
    mu0 = 1 + 0.5 * np.cos(x) * np.sin(2 * y) + 0.2 * np.sin(3 * x + y)
    runs = [solve(grid, 2.0, mu0, [0.5, 3.0], fft_backend=b, rtol=1e-8) for b in ("pyfftw", "numpy")]
    assert runs[0].stats["fft_backend"] == "pyfftw" and runs[1].stats["fft_backend"] == "numpy"
    assert np.max(np.abs(runs[0].mu - runs[1].mu)) < 1e-12
    out = [np.empty(grid.spectral_shape, complex) for _ in range(2)]
    rho_hat = random_state(grid, rng)
    for o, b in zip(out, ("pyfftw", "numpy")):
        SpectralModel(grid, np.ones(grid.shape), kernel=SobolevKernel(2.5), fft_backend=b).explicit(rho_hat, o)
    assert np.max(np.abs(out[0] - out[1])) < 1e-12 * np.max(np.abs(out[0]))


def test_3d_run_is_invariant_under_permuting_axes():
    grid = Torus((16, 16, 16))
    x, y, z = grid.mesh()
    mu0 = 1 + 0.4 * np.cos(x) * np.sin(2 * y) + 0.3 * np.sin(x + 3 * z) + 0.1 * np.cos(y - z)
    base = solve(grid, 1.5, mu0, [1.0], rtol=1e-8).mu[-1]
    for perm in [(1, 2, 0), (2, 0, 1), (0, 2, 1)]:
        permuted = solve(grid, 1.5, np.transpose(mu0, perm).copy(), [1.0], rtol=1e-8).mu[-1]
        assert np.max(np.abs(permuted - np.transpose(base, perm))) < 1e-12


def test_mass_energy_and_positivity(scheme):
    grid = Torus((32, 32))
    x, y = grid.mesh()
    mu0 = np.exp(np.cos(x) + 0.5 * np.sin(2 * y + x))
    mu0 /= mu0.mean()
    sol = solve(grid, 1.5, mu0, [0.1, 1.0, 5.0], scheme=scheme.name, rtol=1e-6)
    d = sol.diagnostics
    # the mass of the density on the grid (the trapezoidal rule, exact for the band-limited μ)
    assert np.max(np.abs(sol.mu.mean(axis=(1, 2)) - 1)) < 1e-13
    assert np.all(np.diff(d["energy"]) <= 0)
    assert np.all(d["dissipation"] >= 0)
    assert np.all(d["min_mu"] > 0)
    assert np.all(sol.mu > 0)


def test_dissipation_equals_integral_of_mu_grad_psi_squared():
    """D = −Σ ψ̄_k ∂tμ_k agrees with ∫ μ|∇ψ|² dm evaluated on a fine grid."""
    grid = Torus((32,))
    (x,) = grid.mesh()
    mu0 = 1 + 0.6 * np.sin(x) + 0.2 * np.cos(3 * x)
    d = solve(grid, 2.0, mu0, [0.0]).diagnostics
    fine = np.linspace(0, 2 * np.pi, 4096, endpoint=False)
    # ψ = Σ_k |k|^{-4} ρ_k e^{ikx}: ρ = 0.6 sin x + 0.2 cos 3x → ψ' = 0.6 cos x − 0.2·3/81 sin 3x
    dpsi = 0.6 * np.cos(fine) - 0.2 * 3 / 81 * np.sin(3 * fine)
    mu = 1 + 0.6 * np.sin(fine) + 0.2 * np.cos(3 * fine)
    assert abs(d["dissipation"][0] - np.mean(mu * dpsi**2)) < 1e-14
    assert abs(d["energy"][0] - 0.5 * (0.6**2 / 2 + 0.2**2 / 2 / 81)) < 1e-15


def test_explicit_part_leaves_the_state_untouched(rng):
    """c2r transforms destroy their input: the state must never be that input."""
    for shape in [(16,), (16, 16), (8, 8, 8)]:
        for dealias in ("3/2", "2/3"):
            grid = Torus(shape, dealias=dealias)
            flow = SpectralModel(grid, np.ones(grid.shape), kernel=SobolevKernel(2))
            rho_hat = random_state(grid, rng)
            before = rho_hat.copy()
            out = np.empty_like(rho_hat)
            flow.explicit(rho_hat, out, monitor=True)
            assert np.array_equal(rho_hat, before)


def test_numpy_fallback_when_pyfftw_is_missing(monkeypatch):
    import sys

    from sobolev_flow.fft import resolve_backend

    monkeypatch.setitem(sys.modules, "pyfftw", None)  # makes `import pyfftw` raise ImportError
    assert resolve_backend("auto") == "numpy"
    with pytest.raises(ValueError, match=r"^fft_backend='pyfftw': pyfftw is not installed \(pip install pyfftw\)$"):
        resolve_backend("pyfftw")
    grid = Torus((16,))
    (x,) = grid.mesh()
    sol = solve(grid, 1, 1 + 0.5 * np.cos(x), [1.0])
    assert sol.stats["fft_backend"] == "numpy"


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
    assert np.max(np.abs(sol.mu.mean(axis=(1, 2)) - 1)) < 1e-13  # ∫μ dm of the density on the grid


def test_fftw_wisdom_is_cached_and_a_corrupt_cache_is_ignored(tmp_path, monkeypatch, caplog):
    pytest.importorskip("pyfftw")
    import logging

    from sobolev_flow.fft import RealFFT, wisdom_path

    monkeypatch.setenv("SOBOLEV_FLOW_CACHE", str(tmp_path))
    path = wisdom_path(1)
    assert path.parent == tmp_path and "threads1" in path.name
    RealFFT((24, 20), batch=2, threads=1, effort="measure")
    assert path.is_file() and path.stat().st_size > 0
    path.write_bytes(b"not a pickle")
    with caplog.at_level(logging.WARNING, logger="sobolev_flow.fft"):
        fft = RealFFT((24, 20), batch=2, threads=1, effort="measure")
    assert "ignoring unreadable FFTW wisdom" in caplog.text
    fft.physical[...] = 1.0
    assert abs(fft.forward()[0, 0, 0] - 480) < 1e-12  # planning still worked
    RealFFT((16, 16), threads=1, effort="estimate")  # estimate never touches the cache
    assert path.read_bytes() != b"not a pickle"  # rewritten by the measuring plan


def test_fftw_wisdom_cache_is_rewritten_only_with_new_plans_and_a_failed_save_leaves_no_file(tmp_path, monkeypatch,
                                                                                            caplog):
    """Plans the cached wisdom already covers add nothing, so the cache is not written again (a
    run under a file size limit then has nothing to fail on); a save that fails (here the
    replacing rename) is noted in one line at INFO level (the run itself is unaffected, and a run
    under a full disk must report its own write error alone) and leaves the old cache and no
    temporary file."""
    pytest.importorskip("pyfftw")
    import logging
    import os

    from sobolev_flow import fft as fft_module
    from sobolev_flow.fft import RealFFT, wisdom_path

    monkeypatch.setenv("SOBOLEV_FLOW_CACHE", str(tmp_path))
    path = wisdom_path(1)
    RealFFT((30, 18), threads=1, effort="measure")
    saved = path.stat()
    os.utime(path, ns=(saved.st_atime_ns, saved.st_mtime_ns - 10**9))  # a rewrite would move it back
    before = path.stat().st_mtime_ns
    RealFFT((30, 18), threads=1, effort="measure")
    assert path.stat().st_mtime_ns == before
    content = path.read_bytes()

    def full(src, dst):  # the disk fills as the new cache replaces the old
        raise OSError(27, "File too large")

    with monkeypatch.context() as patch, caplog.at_level(logging.INFO, logger="sobolev_flow.fft"):
        patch.setattr(fft_module.os, "replace", full)
        RealFFT((42, 10), threads=1, effort="measure")  # a new plan: the cache would be written
    notes = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "sobolev_flow.fft"]
    assert len(notes) == 1 and notes[0][0] == logging.INFO  # the run is unaffected: no warning
    assert notes[0][1].startswith(f"could not save FFTW wisdom to {path}")
    assert path.read_bytes() == content and sorted(p.name for p in tmp_path.iterdir()) == [path.name]
