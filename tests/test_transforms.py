"""Padded transforms (sobolev_flow.transforms.PaddedTransform): the pruned FFTs (pyfftw, 3/2
padding, d ≥ 2: the complex transforms skip the zero columns of the last axis) give the values
Σ_k m_k f_k e^{ik·x} on the padded grid and the truncated sums c m_k Σ_x f(x) e^{-ik·x} of a
direct zero-padding by wavenumber, with either kernels and every multiplier; stale data in the
spectral buffer does not leak into them; FFTW_WISDOM_ONLY still replays plans or refuses."""

import math

import numpy as np
import pytest

from sobolev_flow import Torus
from sobolev_flow.fft import PrunedRealFFT, empty_aligned
from sobolev_flow.transforms import PaddedTransform

pytest.importorskip("pyfftw")
KERNELS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(
    pytest.importorskip("importlib").util.find_spec("numba") is None, reason="numba not installed"))]
# n/2 even and odd on each axis; padded sizes 24, 16, 18, 12, 16, 24, 20, ...
SHAPES = [(16, 12), (10, 14), (8, 12, 10), (14, 10, 16)]


def padded_indices(grid):
    """The resolved entries of the spectral layout and, for each, its index k mod M on the padded
    spectral layout (wavenumber by wavenumber, independently of Torus.embedding)."""
    resolved = np.nonzero(grid.resolved)
    target = []
    for axis, (k, m) in enumerate(zip(grid.wavenumbers(), grid.padded_shape)):
        target.append(np.mod(k.reshape(-1)[resolved[axis]].astype(int), m))
    return resolved, tuple(target)


def direct_backward(grid, f_hat):
    """Σ_k f_k e^{ik·x} over the resolved k on the padded grid: numpy's full inverse FFT of the
    coefficients placed at k mod M."""
    m = grid.padded_shape
    resolved, target = padded_indices(grid)
    padded = np.zeros(m[:-1] + (m[-1] // 2 + 1,), complex)
    padded[target] = f_hat[resolved]
    return np.fft.irfftn(padded, s=m, axes=range(grid.d)) * math.prod(m)


def direct_forward(grid, field):
    """Σ_x f(x) e^{-ik·x} on the resolved k (0 elsewhere): numpy's full FFT read at k mod M."""
    resolved, target = padded_indices(grid)
    out = np.zeros(grid.spectral_shape, complex)
    out[resolved] = np.fft.rfftn(field, axes=range(grid.d))[target]
    return out


def real_field_coefficients(grid, rng):
    """Resolved coefficients of a random real field (Hermitian on the plane k_last = 0)."""
    return grid.project(grid.to_spectral(rng.standard_normal(grid.shape)))


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_pruned_backward_and_forward_equal_the_direct_padded_transforms(shape, kernels, rng):
    grid = Torus(shape)
    transform = PaddedTransform(grid, fields=2, backend="pyfftw", threads=1, kernels=kernels)
    assert transform.pruned and transform.kernels == kernels
    f_hat = real_field_coefficients(grid, rng)
    weights = rng.random(grid.spectral_shape)
    ks = grid.wavenumbers()
    for axis in [None] + list(range(grid.d)):
        for w in (None, weights):
            m = (1.0 if w is None else w) * (1.0 if axis is None else 1j * ks[axis])
            expected = direct_backward(grid, m * f_hat)
            values = transform.backward(f_hat, 1, axis=axis, weights=w)
            assert np.max(np.abs(values - expected)) < 1e-13 * np.max(np.abs(expected)), (axis, w is None)
    # a product: modes up to |k_j| < n_j, beyond the resolved ones
    field = direct_backward(grid, f_hat) * direct_backward(grid, real_field_coefficients(grid, rng))
    total = direct_forward(grid, field)
    kept = np.zeros(transform._spectral[0].shape, bool)
    kept[padded_indices(grid)[1]] = True
    assert np.abs(np.fft.rfftn(field)[~kept]).max() > 0.1 * np.abs(total).max()  # the truncation drops modes
    for axis in [None] + list(range(grid.d)):
        for factor, accumulate in ((1.0, False), (-0.3, False), (0.7, True)):
            m = factor * (1.0 if axis is None else 1j * ks[axis])
            start = rng.standard_normal(grid.spectral_shape) + 1j * rng.standard_normal(grid.spectral_shape)
            out = start.copy()
            transform.fields[0][...] = field
            transform.forward(0, out, axis=axis, factor=factor, accumulate=accumulate)
            expected = (start if accumulate else 0) + m * total
            if accumulate:  # the unresolved entries are left as they were
                expected[~grid.resolved] = start[~grid.resolved]
            scale = np.max(np.abs(m * total))
            assert np.max(np.abs(out - expected)) < 1e-13 * scale, (axis, factor, accumulate)


@pytest.mark.parametrize("kernels", KERNELS)
def test_stale_data_in_the_spectral_buffer_does_not_reach_the_pruned_transforms(kernels, rng):
    """The c2r transforms destroy the spectral buffer, the right-hand side writes scratch into it
    and the forward transforms leave partial sums in its zero columns: the next backward
    transform must still see zeros there."""
    grid = Torus((12, 10, 14))
    transform = PaddedTransform(grid, fields=1, backend="pyfftw", threads=1, kernels=kernels)
    f_hat = real_field_coefficients(grid, rng)
    expected = direct_backward(grid, f_hat)
    transform.fields[0][...] = rng.standard_normal(grid.padded_shape)
    transform.forward(0, np.empty(grid.spectral_shape, complex))  # partial sums in the buffer's zero columns
    transform.scratch[...] = 1e300
    assert np.max(np.abs(transform.backward(f_hat, 0) - expected)) < 1e-13 * np.max(np.abs(expected))


def test_execute_runs_the_pruned_transforms_alone(rng):
    """execute_backward is the backward FFT of the loaded buffer; execute a round trip whose
    forward FFT leaves size × the coefficients in the resolved columns."""
    grid = Torus((16, 12))
    transform = PaddedTransform(grid, fields=1, backend="pyfftw", threads=1)
    f_hat = real_field_coefficients(grid, rng)
    expected = direct_backward(grid, f_hat)
    transform.load(f_hat)
    transform.execute_backward(0)
    assert np.max(np.abs(transform.fields[0] - expected)) < 1e-13 * np.max(np.abs(expected))
    transform.load(f_hat)
    transform.execute(0)
    out = np.zeros(grid.spectral_shape, complex)
    for src, dst in grid.embedding():
        out[src] = transform._spectral[0][dst] * transform.scale
    assert np.max(np.abs(out - f_hat)) < 1e-14 * np.max(np.abs(f_hat))


@pytest.mark.parametrize("dealias,backend,shape", [("2/3", "pyfftw", (16, 12)), ("3/2", "numpy", (16, 12)),
                                                   ("3/2", "pyfftw", (16,))])
def test_full_transforms_where_there_is_nothing_to_prune(dealias, backend, shape, rng):
    grid = Torus(shape, dealias=dealias)
    transform = PaddedTransform(grid, fields=1, backend=backend, threads=1)
    assert not transform.pruned
    f_hat = real_field_coefficients(grid, rng)
    expected = direct_backward(grid, f_hat)
    assert np.max(np.abs(transform.backward(f_hat, 0) - expected)) < 1e-13 * np.max(np.abs(expected))


def test_wisdom_only_replays_the_pruned_plans_or_refuses(tmp_path, monkeypatch, rng):
    """fft.deterministic: with the wisdom of a measured run the pruned plans are rebuilt from it
    alone and give the same values to the last bit; without it planning is refused."""
    import pyfftw

    from sobolev_flow.fft import export_wisdom, import_wisdom

    monkeypatch.setenv("SOBOLEV_FLOW_CACHE", str(tmp_path))
    grid = Torus((20, 18))
    pyfftw.forget_wisdom()
    with pytest.raises(ValueError, match=r"^fft\.deterministic=true: the stored FFTW wisdom has no plan for a "
                                         r"\(30, 30\) transform with threads=1"):
        PaddedTransform(grid, fields=2, backend="pyfftw", threads=1, effort="measure", wisdom_only=True)
    measured = PaddedTransform(grid, fields=2, backend="pyfftw", threads=1, effort="measure")
    wisdom = export_wisdom()
    pyfftw.forget_wisdom()
    (tmp_path / next(tmp_path.iterdir()).name).unlink()  # the cache too: only the imported wisdom remains
    assert import_wisdom(wisdom)
    replayed = PaddedTransform(grid, fields=2, backend="pyfftw", threads=1, effort="measure", wisdom_only=True)
    assert measured.pruned and replayed.pruned
    f_hat = real_field_coefficients(grid, rng)
    for i in (0, 1):
        np.testing.assert_array_equal(replayed.backward(f_hat, i, axis=1), measured.backward(f_hat, i, axis=1))
        out = [np.empty(grid.spectral_shape, complex) for _ in range(2)]
        for transform, o in zip((measured, replayed), out):
            transform.fields[i][...] = transform.fields[i] ** 2
            transform.forward(i, o, axis=0, factor=0.5)
        np.testing.assert_array_equal(out[0], out[1])


def test_pruned_fft_checks_its_columns_and_buffers():
    fields = [empty_aligned((12, 10), float)]
    with pytest.raises(ValueError, match=r"^columns=7 of a \(12, 10\) transform: expected d >= 2 and "
                                         r"1 <= columns <= 6$"):
        PrunedRealFFT((12, 10), 7, fields, empty_aligned((12, 6), complex))
    with pytest.raises(ValueError, match="^buffer shapes do not match the transform$"):
        PrunedRealFFT((12, 10), 5, fields, empty_aligned((12, 5), complex))
    with pytest.raises(ValueError, match=r"^rows of a \(12, 10\) transform: only for d = 3$"):
        PrunedRealFFT((12, 10), 5, fields, empty_aligned((12, 6), complex), rows=[slice(0, 4)])
