"""Named densities (sobolev_flow.initial): normalisation, closed forms, spectra, files, bad specs."""


import numpy as np
import pytest

from sobolev_flow import Torus
from sobolev_flow.initial import FAMILIES, density

SHAPES = [(16,), (16, 12), (8, 10, 12)]
VALID = "uniform, bumps, mode, powerlaw, kink, file"


def check(match, call):
    with pytest.raises(ValueError, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def full_k(shape):
    """Integer wavenumbers of the full spectrum (Nyquist as -n/2), broadcastable."""
    d = len(shape)
    out = []
    for axis, n in enumerate(shape):
        view = [1] * d
        view[axis] = n
        out.append(np.rint(np.fft.fftfreq(n, 1.0 / n)).astype(int).reshape(view))
    return out


# ------------------------------------------------------------------------------- every family
def test_registry():
    assert ", ".join(FAMILIES) == VALID


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("spec", ["uniform", "bumps", "mode", "kink", {"family": "powerlaw", "p": 4}, "file"])
def test_mean_one_positive_shape(spec, shape, tmp_path):
    grid = Torus(shape)
    if spec == "file":
        rng = np.random.default_rng(3)
        np.save(tmp_path / "mu.npy", rng.uniform(0.5, 3.0, shape))
        spec = str(tmp_path / "mu.npy")
    mu = density(spec, grid)
    assert mu.shape == grid.shape and mu.dtype == np.float64
    assert np.all(np.isfinite(mu))
    assert np.all(mu > 0)
    assert abs(mu.mean() - 1) < 1e-14


def test_uniform():
    assert np.array_equal(density("uniform", Torus((8, 8))), np.ones((8, 8)))


# ----------------------------------------------------------------------------------- mode
@pytest.mark.parametrize("shape, k, amplitude, phase", [
    ((16,), [3], 0.9, 0.0),
    ((16, 12), [-2, 5], 0.25, 1.3),
    ((8, 10, 12), [1, -4, 2], 0.5, -0.7),
])
def test_mode_closed_form(shape, k, amplitude, phase):
    grid = Torus(shape)
    mu = density({"family": "mode", "k": k, "amplitude": amplitude, "phase": phase}, grid)
    x = grid.mesh()
    expected = 1 + amplitude * np.cos(sum(kj * xj for kj, xj in zip(k, x)) + phase)
    np.testing.assert_allclose(mu, np.broadcast_to(expected, shape), rtol=0, atol=1e-14)


def test_mode_default_is_first_axis():
    grid = Torus((16, 8))
    mu = density("mode", grid)
    np.testing.assert_allclose(mu, np.broadcast_to(1 + 0.5 * np.cos(grid.mesh()[0]), (16, 8)), rtol=0, atol=1e-14)


# ------------------------------------------------------------------------------- powerlaw
@pytest.mark.parametrize("shape, p, kmax, dealias", [
    ((32,), 2.0, None, "3/2"),
    ((32, 24), 3.5, None, "3/2"),
    ((32, 24), 5.0, 6, "3/2"),
    ((16, 8, 12), 4.0, None, "3/2"),
    ((24, 18), 3.0, None, "2/3"),
])
def test_powerlaw_spectrum_is_exact(shape, p, kmax, dealias):
    grid = Torus(shape, dealias=dealias)
    spec = {"family": "powerlaw", "p": p, "seed": 7, "amplitude": 0.3}
    if kmax is not None:
        spec["kmax"] = kmax
    rho = density(spec, grid) - 1
    rho_hat = grid.to_spectral(rho)
    ks = grid.wavenumbers()
    inside = grid.resolved & (grid.k2 > 0)
    if kmax is not None:
        for k in ks:
            inside &= np.abs(k) <= kmax
    ratio = np.abs(rho_hat[inside]) ** 2 * grid.k2[inside] ** (p / 2)
    assert np.ptp(ratio) <= 1e-10 * ratio.mean()
    scale = np.abs(rho_hat).max()
    assert np.abs(rho_hat[~inside]).max() <= 1e-14 * scale  # mean, Nyquist, beyond kmax, unresolved
    nyquist = np.zeros(grid.spectral_shape, dtype=bool)
    for k, n in zip(ks, grid.shape):
        nyquist |= np.abs(k) == n // 2
    assert nyquist.any() and not (inside & nyquist).any()
    assert abs(rho.mean()) < 1e-15
    assert abs(np.abs(rho).max() - 0.3) < 1e-14


def test_powerlaw_phases_are_uniform():
    """Mean resultant of e^{iφ_k} over the independent half of the modes is ~ 1/√(number of modes)."""
    grid = Torus((64, 64))
    rho_hat = grid.to_spectral(density({"family": "powerlaw", "p": 3, "seed": 11}, grid) - 1)
    kz = grid.wavenumbers()[-1]
    half = grid.resolved & (kz > 0) & np.broadcast_to(True, grid.spectral_shape)
    unit = rho_hat[half] / np.abs(rho_hat[half])
    assert half.sum() > 1500
    assert abs(unit.mean()) < 3 / np.sqrt(half.sum())
    assert abs((unit**2).mean()) < 3 / np.sqrt(half.sum())


def test_powerlaw_seed():
    grid = Torus((16, 16))
    a = density({"family": "powerlaw", "p": 3, "seed": 1}, grid)
    b = density({"family": "powerlaw", "p": 3, "seed": 1}, grid)
    c = density({"family": "powerlaw", "p": 3, "seed": 2}, grid)
    d = density({"family": "powerlaw", "p": 3}, grid)
    assert np.array_equal(a, b)
    assert np.abs(a - c).max() > 0.1
    assert np.array_equal(d, density({"family": "powerlaw", "p": 3, "seed": 0}, grid))


def test_powerlaw_kmax_one_is_a_few_modes():
    grid = Torus((16,))
    rho = density({"family": "powerlaw", "p": 2, "kmax": 1}, grid) - 1
    rho_hat = grid.to_spectral(rho)
    assert np.abs(rho_hat[2:]).max() < 1e-16
    # ρ = 2|ρ_1| cos(x + φ), whose maximum over the grid is 0.5: 0.5 ≤ 2|ρ_1| ≤ 0.5 / cos(π/16)
    assert abs(np.abs(rho).max() - 0.5) < 1e-15
    assert 0.5 - 1e-15 <= 2 * abs(rho_hat[1]) <= 0.5 / np.cos(np.pi / 16)


# ----------------------------------------------------------------------------------- kink
@pytest.mark.parametrize("shape, kmax", [((64,), None), ((64,), 10), ((32, 8), None), ((16, 8, 10), 5)])
def test_kink_coefficients(shape, kmax):
    grid = Torus(shape)
    spec = {"family": "kink", "amplitude": 0.8}
    if kmax is not None:
        spec["kmax"] = kmax
    mu = density(spec, grid)
    n = shape[0]
    big_k = n // 2 - 1 if kmax is None else kmax
    assert np.array_equal(mu, np.broadcast_to(mu[(slice(None),) + (0,) * (grid.d - 1)].reshape((n,) + (1,) * (grid.d - 1)), shape))
    rho_hat = grid.to_spectral(mu - 1)
    k = np.arange(n // 2 + 1)
    expected = np.where((k >= 1) & (k <= big_k), 0.8 * (6 / np.pi**2) / (2 * np.maximum(k, 1) ** 2), 0.0)
    if grid.d == 1:
        line = rho_hat
    else:
        line = rho_hat[(slice(None),) + (0,) * (grid.d - 1)][: n // 2 + 1]
        neg = rho_hat[(slice(None),) + (0,) * (grid.d - 1)][n // 2 + 1:][::-1]  # k = -1, -2, …
        np.testing.assert_allclose(neg, expected[1 : n // 2], rtol=0, atol=1e-15)
        rest = rho_hat.copy()
        rest[(slice(None),) + (0,) * (grid.d - 1)] = 0
        assert np.abs(rest).max() < 1e-15
    np.testing.assert_allclose(line, expected, rtol=0, atol=1e-15)


def test_kink_approaches_closed_form():
    n, a = 4096, 0.6
    grid = Torus((n,))
    big_k = n // 2 - 1
    mu = density({"family": "kink", "amplitude": a}, grid)
    x = grid.coordinates()[0]
    closed = 1 + a * (6 / np.pi**2) * (np.pi**2 / 6 - np.pi * x / 2 + x**2 / 4)
    err = np.abs(mu - closed)
    c = a * 6 / np.pi**2
    # |S − S_K| ≤ Σ_{k>K} 1/k² < 1/K, attained at the kink x = 0 where the tail is > 1/(K+1)
    assert err.max() <= c / big_k
    assert err[0] >= c / (big_k + 1) * (1 - 1e-9)
    assert np.argmax(err) == 0
    assert mu.min() >= 1 - a / 2 - c / big_k


# ---------------------------------------------------------------------------------- bumps
def test_bumps_formula_and_peak():
    grid = Torus((32, 24))
    centers = [[1.0, 2.0], [4.5, 5.0]]
    spec = {"family": "bumps", "centers": centers, "weights": [2.0, 1.0], "kappa": 6, "floor": 0.05}
    mu = density(spec, grid)
    x, y = grid.mesh()
    f = 0.05 + sum(w * np.exp(6 * (np.cos(x - cx) + np.cos(y - cy) - 2)) for w, (cx, cy) in zip([2, 1], centers))
    np.testing.assert_allclose(mu, f / f.mean(), rtol=1e-14, atol=0)
    assert mu.min() > 0
    i, j = np.unravel_index(np.argmax(mu), mu.shape)
    assert abs(2 * np.pi * i / 32 - 1.0) <= np.pi / 32 and abs(2 * np.pi * j / 24 - 2.0) <= np.pi / 24


@pytest.mark.parametrize("shape", SHAPES)
def test_bumps_default_peaks_at_the_centre(shape):
    grid = Torus(shape)
    mu = density("bumps", grid)
    centre = tuple(n // 2 for n in shape)  # x_j = π
    assert np.unravel_index(np.argmax(mu), shape) == centre
    assert mu.min() > 0


def test_bumps_are_smooth():
    """Analytic: on 32 points per axis the top modes of the default bump are ~ I_14(4)/I_0(4) ~ 1e-8."""
    grid = Torus((32, 32))
    rho_hat = grid.to_spectral(density("bumps", grid) - 1)
    top = np.zeros(grid.spectral_shape, dtype=bool)
    for k, n in zip(grid.wavenumbers(), grid.shape):
        top |= np.abs(k) >= n // 2 - 2
    assert np.abs(rho_hat[top]).max() < 1e-6 * np.abs(rho_hat).max()


def test_bumps_one_dimensional_flat_centres():
    grid = Torus((64,))
    mu = density({"family": "bumps", "centers": [1.0, 4.0], "kappa": 20}, grid)
    x = grid.coordinates()[0]
    peaks = [i for i in range(64) if mu[i] > mu[i - 1] and mu[i] > mu[(i + 1) % 64]]
    assert [round(x[i], 1) for i in peaks] == [1.0, 4.0]


# ----------------------------------------------------------------------------------- file
def test_file_round_trip(tmp_path):
    grid = Torus((8, 10))
    data = np.random.default_rng(5).uniform(0, 4, grid.shape)
    data[2, 3] = 0.0  # vacuum is allowed
    np.save(tmp_path / "mu.npy", data)
    expected = data / data.mean()
    for mu in (density(str(tmp_path / "mu.npy"), grid),
               density({"family": "file", "path": "mu.npy"}, grid, base_dir=tmp_path),
               density("mu.npy", grid, base_dir=str(tmp_path))):
        np.testing.assert_allclose(mu, expected, rtol=1e-15, atol=0)
        assert mu[2, 3] == 0 and abs(mu.mean() - 1) < 1e-14


def test_file_integer_values(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(1, 9))
    mu = density("a.npy", Torus((8,)), base_dir=tmp_path)
    np.testing.assert_allclose(mu, np.arange(1, 9) / 4.5, rtol=1e-15)


@pytest.mark.parametrize("values, match", [
    (np.ones(8), r"shape \(8,\) does not match the grid \(16,\)"),
    (np.where(np.arange(16) == 3, -0.5, 1.0), r"holds a negative value \(-0\.5 at index \(3,\)\)"),
    (np.where(np.arange(16) == 2, np.nan, 1.0), r"holds a non-finite value \(nan at index \(2,\)\)"),
    (np.where(np.arange(16) == 5, -np.inf, 1.0), r"holds a non-finite value \(-inf at index \(5,\)\)"),
    (np.zeros(16), r"holds only zeros"),
    (np.ones(16, dtype=complex), r"holds values of type complex128; expected real numbers"),
])
def test_file_errors(tmp_path, values, match):
    np.save(tmp_path / "a.npy", values)
    grid = Torus((16,))
    check(rf"^initial\.density\.path='a\.npy': {match}$",
          lambda: density({"family": "file", "path": "a.npy"}, grid, name="initial.density", base_dir=tmp_path))
    check(rf"^initial\.density='a\.npy': {match}$",
          lambda: density("a.npy", grid, name="initial.density", base_dir=tmp_path))


def test_file_missing_and_unreadable(tmp_path):
    grid = Torus((16,))
    check(r"^initial\.density\.path='x\.npy': no such file$",
          lambda: density({"family": "file", "path": "x.npy"}, grid, name="initial.density", base_dir=tmp_path))
    check(r"^initial\.density='x\.npy': no such file$",
          lambda: density("x.npy", grid, name="initial.density", base_dir=tmp_path))
    (tmp_path / "text.npy").write_text("not an array")
    check(r"^initial\.density\.path='text\.npy': cannot be read as a \.npy array \(ValueError: .*\)$",
          lambda: density({"family": "file", "path": "text.npy"}, grid, name="initial.density", base_dir=tmp_path))
    check(r"^initial\.density\.path=3: expected the path of a \.npy file$",
          lambda: density({"family": "file", "path": 3}, grid, name="initial.density"))


# ------------------------------------------------------------------------------ bad specs
@pytest.mark.parametrize("spec, match", [
    ({"family": "mode", "amplitude": 1.5}, r"initial\.density\.amplitude=1\.5: expected 0 < amplitude < 1"),
    ({"family": "powerlaw", "p": 4, "amplitude": 0}, r"initial\.density\.amplitude=0: expected 0 < amplitude < 1"),
    ({"family": "kink", "amplitude": -0.1}, r"initial\.density\.amplitude=-0\.1: expected 0 < amplitude < 1"),
    ({"family": "mode", "amplitude": "big"}, r"initial\.density\.amplitude='big': expected a number"),
    ({"family": "powrlaw"}, rf"initial\.density\.family='powrlaw': unknown density family; did you mean "
                            rf"'powerlaw'\? valid: {VALID}"),
    ({"family": "gaussian"}, rf"initial\.density\.family='gaussian': unknown density family; valid: {VALID}"),
    ("powrlaw", rf"initial\.density='powrlaw': unknown density family; did you mean 'powerlaw'\? valid: {VALID}"),
    ({"family": 3}, rf"initial\.density\.family=3: expected a family name \(a string\); valid: {VALID}"),
    ({"p": 3}, rf"initial\.density=\{{'p': 3\}}: missing key 'family'; valid families: {VALID}"),
    (3.5, r"initial\.density=3\.5: expected a family name, a \.npy path or a table with a 'family' key"),
    ({"family": "mode", "kmax": 3}, r"initial\.density\.kmax=3: unknown parameter for family 'mode'; "
                                    r"valid: k, amplitude, phase"),
    ({"family": "mode", "amplitud": 0.3}, r"initial\.density\.amplitud=0\.3: unknown parameter for family 'mode'; "
                                          r"did you mean 'amplitude'\? valid: k, amplitude, phase"),
    ({"family": "uniform", "seed": 1}, r"initial\.density\.seed=1: unknown parameter for family 'uniform', "
                                       r"which takes none"),
    ({"family": "file", "path": "a.npy", "base_dir": "."}, r"initial\.density\.base_dir='\.': unknown parameter "
                                                           r"for family 'file'; valid: path"),
    ("powerlaw", r"initial\.density\.p is missing: family 'powerlaw' requires it"),
    ({"family": "file"}, r"initial\.density\.path is missing: family 'file' requires it"),
    ({"family": "powerlaw", "p": "four"}, r"initial\.density\.p='four': expected a number"),
    ({"family": "powerlaw", "p": True}, r"initial\.density\.p=True: expected a number"),
    ({"family": "powerlaw", "p": float("inf")}, r"initial\.density\.p=inf: expected a finite number"),
    ({"family": "powerlaw", "p": 2}, r"initial\.density\.p=2: expected p > d = 2 \(so that the field is in L\^2\)"),
    ({"family": "powerlaw", "p": 4, "seed": 1.5}, r"initial\.density\.seed=1\.5: expected an integer"),
    ({"family": "powerlaw", "p": 4, "seed": -1}, r"initial\.density\.seed=-1: expected a non-negative integer"),
    ({"family": "powerlaw", "p": 4, "kmax": 0}, r"initial\.density\.kmax=0: expected 1 <= kmax <= 7 "
                                               r"\(the largest resolved wavenumber on the grid \(16, 12\)\)"),
    ({"family": "kink", "kmax": 8}, r"initial\.density\.kmax=8: expected 1 <= kmax <= 7 "
                                    r"\(the largest resolved wavenumber on the grid \(16, 12\)\)"),
    ({"family": "mode", "k": [0, 0]}, r"initial\.density\.k=\[0, 0\]: expected a nonzero wavevector"),
    ({"family": "mode", "k": [1, 6]}, r"initial\.density\.k=\[1, 6\]: not resolved on the grid \(16, 12\); "
                                      r"expected \|k_j\| < n_j/2"),
    ({"family": "mode", "k": [1]}, r"initial\.density\.k=\[1\]: expected a list of 2 integers"),
    ({"family": "mode", "k": [1, 0.5]}, r"initial\.density\.k=\[1, 0\.5\]: expected a list of 2 integers"),
    ({"family": "mode", "phase": float("nan")}, r"initial\.density\.phase=nan: expected a finite number"),
    ({"family": "bumps", "centers": [1, 2, 3]}, r"initial\.density\.centers=\[1, 2, 3\]: expected a list of "
                                                r"2-vectors \(one centre per bump\)"),
    ({"family": "bumps", "centers": [["a", "b"]]}, r"initial\.density\.centers=\[\['a', 'b'\]\]: expected a list "
                                                   r"of 2-vectors \(one centre per bump\)"),
    ({"family": "bumps", "weights": [1, 2]}, r"initial\.density\.weights=\[1, 2\]: expected 1 positive finite "
                                             r"number \(one per centre\)"),
    ({"family": "bumps", "centers": [[1, 1], [2, 2]], "weights": [1, 0]},
     r"initial\.density\.weights=\[1, 0\]: expected 2 positive finite numbers \(one per centre\)"),
    ({"family": "bumps", "kappa": -1}, r"initial\.density\.kappa=-1: expected kappa > 0"),
    ({"family": "bumps", "floor": 0}, r"initial\.density\.floor=0: expected floor > 0"),
])
def test_bad_spec(spec, match):
    check(f"^{match}$", lambda: density(spec, Torus((16, 12)), name="initial.density"))


def test_two_thirds_rule_bounds_the_modes():
    grid = Torus((12,), dealias="2/3")
    check(r"^density\.k=4: not resolved on the grid \(12,\); expected \|k_j\| < n_j/3$",
          lambda: density({"family": "mode", "k": 4}, grid))
    density({"family": "mode", "k": 3}, grid)
    rho_hat = grid.to_spectral(density("kink", grid) - 1)
    assert np.abs(rho_hat[1:4]).min() > 0 and np.abs(rho_hat[4:]).max() < 1e-16


def test_default_name_and_spec_not_modified():
    spec = {"family": "powerlaw", "p": 4, "seed": 1}
    density(spec, Torus((8,)))
    assert spec == {"family": "powerlaw", "p": 4, "seed": 1}
    check(r"^density\.amplitude=2: expected 0 < amplitude < 1$",
          lambda: density({"family": "kink", "amplitude": 2}, Torus((8,))))
