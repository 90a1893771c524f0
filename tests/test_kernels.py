"""Kernel weights against independent quadratures of their real-space formulas, and the
configuration factory with its error messages."""

import json
import math
import re
import warnings

import numpy as np
import pytest
from scipy.integrate import IntegrationWarning, quad

from sobolev_flow.grid import Torus
from sobolev_flow.kernels import (KERNELS, FileKernel, FourierKernel, GaussianKernel, ReluKernel, SobolevKernel,
                                  make_kernel)

N = 32


def exactly(message):
    """A ``match`` pattern for the whole of ``message``."""
    return "^" + re.escape(message) + "$"


def half_layout_wavenumbers(shape):
    """Integer wavenumbers of every entry of the rfftn layout, built from its definition:
    0 … n/2−1, −n/2 … −1 along every axis but the last, 0 … n/2 along the last."""
    axes = [list(range(n // 2)) + list(range(-n // 2, 0)) for n in shape[:-1]]
    axes.append(list(range(shape[-1] // 2 + 1)))
    return np.array(np.meshgrid(*axes, indexing="ij"))  # (d, *spectral_shape)


def cosine_coefficient(f, k):
    """(1/2π) ∫_{−π}^{π} f(θ) e^{−ikθ} dθ for an even f, as (1/π) ∫_0^π f(θ) cos(kθ) dθ.

    The tolerances ask for more than double precision gives; QUADPACK's warning that it
    cannot reach them is silenced, and the comparisons below bound the actual error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IntegrationWarning)
        value, _ = quad(f, 0.0, math.pi, weight="cos", wvar=k, epsabs=1e-17, epsrel=1e-14, limit=200)
    return value / math.pi


# ----------------------------------------------------------------------------- ReLU
def relu_real_space(theta):
    t = abs(theta)
    return (math.sin(t) + (math.pi - t) * math.cos(theta)) / (4 * math.pi)


def test_relu_weights_match_quadrature_of_the_arc_cosine_kernel():
    weights = ReluKernel().weights(Torus((N,)))
    expected = np.array([cosine_coefficient(relu_real_space, k) for k in range(N // 2 + 1)])
    assert weights.shape == (N // 2 + 1,)
    np.testing.assert_allclose(weights, expected, rtol=1e-12, atol=1e-16)


def test_relu_closed_forms_against_quadrature():
    pi2 = math.pi**2
    assert cosine_coefficient(relu_real_space, 0) == pytest.approx(1 / pi2, rel=1e-13)
    assert cosine_coefficient(relu_real_space, 1) == pytest.approx(1 / 16, rel=1e-13)
    assert cosine_coefficient(relu_real_space, 2) == pytest.approx(1 / (9 * pi2), rel=1e-13)
    for k in range(3, N // 2 + 1, 2):
        assert abs(cosine_coefficient(relu_real_space, k)) < 1e-16
    w = ReluKernel().weights(Torus((N,)))
    assert w[0] == pytest.approx(1 / pi2, rel=1e-15)
    assert w[1] == 1 / 16
    assert w[2] == pytest.approx(1 / (9 * pi2), rel=1e-15)
    assert np.all(w[3::2] == 0)
    assert np.all(w[4::2] > 0)


def test_relu_kernel_needs_a_circle():
    with pytest.raises(ValueError, match=exactly(
            "model.kernel='relu': the ReLU kernel lives on the circle and needs grid.d=1, got grid.d=2")):
        ReluKernel().weights(Torus((8, 8)))
    with pytest.raises(ValueError, match=exactly(
            "model.kernel='relu': the ReLU kernel lives on the circle and needs grid.d=1, got grid.d=3")):
        make_kernel("relu", None, Torus((8, 8, 8)))


# ------------------------------------------------------------------------- Gaussian
def periodised_gaussian(z, sigma, images=8):
    """Σ_n exp(−|z + 2πn|²/(2σ²)) over |n_j| ≤ images; z has the dimension on axis 0."""
    z = np.asarray(z, dtype=float)
    d = z.shape[0]
    if d == 1 and z.ndim == 1:  # a scalar point, for quad
        return sum(math.exp(-((z[0] + 2 * math.pi * n) ** 2) / (2 * sigma**2)) for n in range(-images, images + 1))
    total = np.zeros(z.shape[1:])
    for n in np.ndindex(*(2 * images + 1,) * d):
        shift = (2 * np.pi * (np.array(n) - images)).reshape((d,) + (1,) * (z.ndim - 1))
        total += np.exp(-np.sum((z + shift) ** 2, axis=0) / (2 * sigma**2))
    return total


@pytest.mark.parametrize("sigma", [0.3, 1.0, 2.5])
def test_gaussian_weights_1d_match_quadrature(sigma):
    weights = GaussianKernel(sigma).weights(Torus((N,)))

    def kernel(theta):
        return periodised_gaussian([theta], sigma)

    expected = np.array([cosine_coefficient(kernel, k) for k in range(N // 2 + 1)])
    np.testing.assert_allclose(weights, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("sigma", [0.5, 1.3])
def test_gaussian_weights_2d_match_a_periodic_trapezoid_rule(sigma):
    """(1/M²) Σ_x K(x) e^{−ik·x} on an M² grid equals Σ_m K̂_{k+Mm}: exact up to aliases of
    size exp(−σ²(M−N/2)²/2), here far below rounding."""
    grid = Torus((N, 24))
    m = 128
    x = 2 * np.pi * np.arange(m) / m
    z = np.array(np.meshgrid(x, x, indexing="ij"))
    coefficients = np.fft.fft2(periodised_gaussian(z, sigma, images=6)) / m**2
    k = half_layout_wavenumbers(grid.shape)
    expected = coefficients[k[0] % m, k[1] % m]
    assert np.max(np.abs(expected.imag)) < 1e-15
    weights = GaussianKernel(sigma).weights(grid)
    assert weights.shape == grid.spectral_shape == (N, 13)
    np.testing.assert_allclose(weights, expected.real, rtol=1e-12, atol=1e-15)
    # the periodised Gaussian factorises: K̂(k1, k2) = K̂1(k1) K̂1(k2), with K̂1 by 1-D quadrature
    one_d = {j: cosine_coefficient(lambda t: periodised_gaussian([t], sigma), j)
             for j in range(N // 2 + 1)}
    product = np.vectorize(lambda a, b: one_d[abs(a)] * one_d[abs(b)])(k[0], k[1])
    np.testing.assert_allclose(weights, product, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("sigma", [0, -1.0, math.nan, math.inf, "wide", None, True])
def test_gaussian_width_must_be_positive(sigma):
    with pytest.raises(ValueError, match=exactly(f"model.kernel.sigma={sigma!r}: expected a finite number > 0")):
        GaussianKernel(sigma)
    with pytest.raises(ValueError, match=exactly(f"model.kernel.sigma={sigma!r}: expected a finite number > 0")):
        make_kernel({"name": "gaussian", "sigma": sigma}, None, Torus((8,)))


# -------------------------------------------------------------------------- Sobolev
@pytest.mark.parametrize("shape, s", [((N,), 2.0), ((16, 8), 1.5), ((8, 8, 10), 1.0)])
def test_sobolev_weights(shape, s):
    grid = Torus(shape)
    k = half_layout_wavenumbers(shape)
    weights = SobolevKernel(s).weights(grid)
    assert weights.shape == grid.spectral_shape
    for index in np.ndindex(*weights.shape):
        k2 = sum(int(k[(j,) + index]) ** 2 for j in range(len(shape)))
        assert weights[index] == (0.0 if k2 == 0 else pytest.approx(k2 ** (-s), rel=1e-15))
    assert weights.flat[0] == 0


# ---------------------------------------------------------------- common interface
def test_interface_of_every_kernel(tmp_path):
    grid = Torus((N,))
    np.save(tmp_path / "K.npy", np.linspace(0.0, 1.0, N // 2 + 1))
    kernels = [SobolevKernel(1.5), GaussianKernel(0.5), ReluKernel(), FileKernel("K.npy", base_dir=str(tmp_path)),
               FourierKernel(np.ones(N // 2 + 1), name="flat")]
    for kernel in kernels:
        w = kernel.weights(grid)
        assert w.dtype == float and w.shape == grid.spectral_shape
        assert np.all(np.isfinite(w)) and np.all(w >= 0)
        json.dumps(kernel.parameters())
        assert str(kernel) and "\n" not in str(kernel)
    assert [k.name for k in kernels] == ["sobolev", "gaussian", "relu", "file", "flat"]
    assert [k.sobolev_order for k in kernels] == [1.5, None, 2.0, None, None]
    assert [k.parameters() for k in kernels[:4]] == [{"s": 1.5}, {"sigma": 0.5}, {}, {"path": "K.npy"}]
    assert str(SobolevKernel(2)) == "|k|^(-2s), s=2"
    assert KERNELS == ("sobolev", "gaussian", "relu", "file")
    # a named kernel is rebuilt by make_kernel from its name and parameters
    for kernel in kernels[:4]:
        assert make_kernel({"name": kernel.name, **kernel.parameters()}, None, grid, base_dir=tmp_path) == kernel


# ---------------------------------------------------------------------- user weights
def test_fourier_kernel_keeps_a_read_only_copy():
    grid = Torus((8,))
    source = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    kernel = FourierKernel(source)
    source[1] = 100.0
    assert kernel.name == "fourier"
    assert not kernel.values.flags.writeable
    with pytest.raises(ValueError):
        kernel.values[0] = 1.0
    w = kernel.weights(grid)
    np.testing.assert_array_equal(w, [0.0, 1.0, 2.0, 3.0, 4.0])
    w[0] = 7.0  # the caller's copy
    assert kernel.weights(grid)[0] == 0.0
    assert {kernel: 1}[kernel] == 1 and kernel == kernel and kernel != FourierKernel(source)
    assert FourierKernel([1, 2, 3, 4, 5], sobolev_order=1.0).sobolev_order == 1.0


def test_fourier_kernel_errors():
    with pytest.raises(ValueError, match=exactly(
            "kernel='fourier': weights of shape (3,), expected (5,) (the grid's spectral layout)")):
        FourierKernel(np.ones(3)).weights(Torus((8,)))
    with pytest.raises(ValueError, match=exactly(
            "kernel='mine': weights of shape (8, 8), expected (8, 5) (the grid's spectral layout)")):
        make_kernel(FourierKernel(np.ones((8, 8)), name="mine"), None, Torus((8, 8)))
    with pytest.raises(ValueError, match=exactly(
            "kernel='fourier': weight -0.5 at index (3,) is negative; kernel weights must be finite and >= 0")):
        FourierKernel([0, 1, 1, -0.5, 1])
    with pytest.raises(ValueError, match=exactly(
            "kernel='fourier': weight nan at index (1, 2) is not finite; kernel weights must be finite and >= 0")):
        FourierKernel([[0, 1, 1], [1, 1, np.nan]])
    with pytest.raises(ValueError, match=exactly(
            "kernel='fourier': weights of dtype complex128, expected real numbers")):
        FourierKernel(np.ones(5, dtype=complex))


@pytest.fixture
def grid32():
    return Torus((N,))


def write(path, values):
    np.save(path, np.asarray(values, dtype=float))
    return path


def test_file_kernel_reads_weights(tmp_path, grid32):
    values = np.exp(-np.arange(N // 2 + 1.0))
    write(tmp_path / "K.npy", values)
    np.testing.assert_array_equal(FileKernel("K.npy", base_dir=tmp_path).weights(grid32), values)
    np.testing.assert_array_equal(FileKernel(str(tmp_path / "K.npy")).weights(grid32), values)


def test_file_kernel_wrong_shape(tmp_path, grid32):
    write(tmp_path / "K.npy", np.ones(3))
    with pytest.raises(ValueError, match=exactly(
            "model.kernel.path='K.npy': weights of shape (3,), expected (17,) (the grid's spectral layout)")):
        FileKernel("K.npy", base_dir=tmp_path).weights(grid32)
    with pytest.raises(ValueError, match=exactly(
            "model.kernel.path='K.npy': weights of shape (3,), expected (17,) (the grid's spectral layout)")):
        make_kernel({"name": "file", "path": "K.npy"}, None, grid32, base_dir=tmp_path)


def test_file_kernel_negative_entry(tmp_path, grid32):
    values = np.ones(N // 2 + 1)
    values[3] = -0.5
    write(tmp_path / "K.npy", values)
    with pytest.raises(ValueError, match=exactly(
            "model.kernel.path='K.npy': weight -0.5 at index (3,) is negative; "
            "kernel weights must be finite and >= 0")):
        make_kernel({"name": "file", "path": "K.npy"}, None, grid32, base_dir=tmp_path)


@pytest.mark.parametrize("bad, text", [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")])
def test_file_kernel_non_finite_entry(tmp_path, grid32, bad, text):
    values = np.ones(N // 2 + 1)
    values[2] = bad
    values[5] = -1.0  # a non-finite entry is reported before a negative one
    write(tmp_path / "K.npy", values)
    with pytest.raises(ValueError, match=exactly(
            f"model.kernel.path='K.npy': weight {text} at index (2,) is not finite; "
            "kernel weights must be finite and >= 0")):
        FileKernel("K.npy", base_dir=tmp_path).weights(grid32)


def test_file_kernel_missing_or_unreadable(tmp_path, grid32):
    with pytest.raises(ValueError, match=exactly("model.kernel.path='K.npy': no such file")):
        make_kernel({"name": "file", "path": "K.npy"}, None, grid32, base_dir=tmp_path)
    (tmp_path / "K.npy").write_text("not an array\n")
    with pytest.raises(ValueError, match=r"^model\.kernel\.path='K\.npy': cannot be read \([^\n]+\)$"):
        FileKernel("K.npy", base_dir=tmp_path).weights(grid32)
    np.save(tmp_path / "words.npy", np.array(["a", "b"]))
    with pytest.raises(ValueError, match=exactly(
            "model.kernel.path='words.npy': weights of dtype <U1, expected real numbers")):
        FileKernel("words.npy", base_dir=tmp_path).weights(grid32)


# ------------------------------------------------------------------------- factory
def test_make_kernel_defaults_and_names(grid32):
    assert make_kernel(None, 2.0, grid32) == SobolevKernel(2.0)
    assert make_kernel("sobolev", 1.5, grid32) == SobolevKernel(1.5)
    assert make_kernel("relu", None, grid32) == ReluKernel()
    with pytest.raises(ValueError, match=exactly("model.kernel.sigma: required for the gaussian kernel")):
        make_kernel("gaussian", 2.0, grid32)
    with pytest.raises(ValueError, match=exactly("model.kernel.sigma: required for the gaussian kernel")):
        make_kernel({"name": "gaussian"}, 2.0, grid32)
    with pytest.raises(ValueError, match=exactly("model.kernel.path: required for the file kernel")):
        make_kernel("file", 2.0, grid32)


def test_make_kernel_tables(tmp_path, monkeypatch, grid32):
    assert make_kernel({"name": "sobolev", "s": 1.5}, 3.0, grid32) == SobolevKernel(1.5)
    assert make_kernel({"name": "sobolev"}, 3.0, grid32) == SobolevKernel(3.0)
    assert make_kernel({"name": "gaussian", "sigma": 0.5}, 3.0, grid32) == GaussianKernel(0.5)
    assert make_kernel({"name": "relu"}, 3.0, grid32) == ReluKernel()
    values = np.arange(N // 2 + 1.0)
    write(tmp_path / "K.npy", values)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a relative path is taken relative to base_dir, not the working directory
    kernel = make_kernel({"name": "file", "path": "K.npy"}, None, grid32, base_dir=tmp_path)
    np.testing.assert_array_equal(kernel.weights(grid32), values)
    absolute = make_kernel({"name": "file", "path": str(tmp_path / "K.npy")}, None, grid32, base_dir="/nonexistent")
    np.testing.assert_array_equal(absolute.weights(grid32), values)
    with pytest.raises(ValueError, match=exactly(
            "model.kernel.s=-1: the Sobolev order must be a finite number > 0")):
        make_kernel({"name": "sobolev", "s": -1}, 2.0, grid32)


def test_make_kernel_passes_objects_through(grid32):
    kernel = FourierKernel(np.ones(N // 2 + 1))
    assert make_kernel(kernel, 2.0, grid32) is kernel

    class Custom:
        def weights(self, grid):
            return np.full(grid.spectral_shape, 0.25)

    custom = Custom()
    assert make_kernel(custom, None, grid32) is custom


def test_make_kernel_errors(grid32):
    with pytest.raises(ValueError, match=exactly(
            "model.kernel='gausian': unknown kernel; did you mean 'gaussian'? valid: sobolev, gaussian, relu, file")):
        make_kernel("gausian", 2.0, grid32)
    with pytest.raises(ValueError, match=exactly(
            "model.kernel='rleu': unknown kernel; did you mean 'relu'? valid: sobolev, gaussian, relu, file")):
        make_kernel({"name": "rleu"}, 2.0, grid32)
    with pytest.raises(ValueError, match=exactly(
            "model.kernel='xyz': unknown kernel; valid: sobolev, gaussian, relu, file")):
        make_kernel("xyz", 2.0, grid32)
    with pytest.raises(ValueError, match=exactly(
            "model.kernel.foo=1: unknown parameter of the gaussian kernel; valid: sigma")):
        make_kernel({"name": "gaussian", "sigma": 0.5, "foo": 1}, 2.0, grid32)
    with pytest.raises(ValueError, match=exactly(
            "model.kernel.sigma=0.5: unknown parameter of the relu kernel; valid: none")):
        make_kernel({"name": "relu", "sigma": 0.5}, 2.0, grid32)
    with pytest.raises(ValueError, match=exactly(
            "model.kernel={'sigma': 0.5}: expected a kernel name or a table with a 'name' key")):
        make_kernel({"sigma": 0.5}, 2.0, grid32)
    with pytest.raises(ValueError, match=exactly(
            "model.kernel={'name': 3}: expected a kernel name or a table with a 'name' key")):
        make_kernel({"name": 3}, 2.0, grid32)
    with pytest.raises(ValueError, match=exactly(
            "model.kernel=3: expected a kernel name or a table with a 'name' key")):
        make_kernel(3, 2.0, grid32)

    class Broken:
        def weights(self, grid):
            return -np.ones(grid.spectral_shape)

        def __str__(self):
            return "broken"

    with pytest.raises(ValueError, match=exactly(
            "kernel='broken': weight -1.0 at index (0,) is negative; kernel weights must be finite and >= 0")):
        make_kernel(Broken(), None, grid32)
