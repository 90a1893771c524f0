"""The right-hand side of the flow, split into a diagonal linear part and an explicit rest.

The solver's unknown is ρ = μ − ν in Fourier coefficients. With ψ = K ⋆ ρ (ψ_k = K̂(k) ρ_k)

    ∂t ρ = div(μ ∇ψ) = ν̄ Δψ + div((μ − ν̄) ∇ψ) = L ρ + N(ρ),

    L_k = −ν̄ |k|² K̂(k)                    (−ν̄ |k|^{2−2s} for the Sobolev kernel),
    N(ρ) = div((ρ + ν − ν̄) ∇ψ),

where ν̄ > 0 is a stabilisation constant (ν̄ = max ν by default; ν̄ = 1 for uniform ν, when
N(ρ) = div(ρ∇ψ) is purely quadratic). The product is formed on the padded grid one component at a time
(so that only four padded arrays are needed whatever d) and the divergence taken in Fourier
space, so N costs 1 + d inverse and d forward real FFTs. N_0 = 0
identically, so the mass of μ is conserved exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .fft import RealFFT, empty_aligned
from .grid import Torus

__all__ = ["Flow", "Monitor"]


@dataclass
class Monitor:
    """By-products of an evaluation of N at a state: min μ and max |∇ψ| on the padded grid."""

    min_mu: float
    max_speed: float


class Flow:
    """∂t ρ = L ρ + N(ρ) on a :class:`~sobolev_flow.grid.Torus`.

    Parameters
    ----------
    grid : Torus
    kernel : object with ``weights(grid) -> ndarray``
        Fourier weights K̂(k) ≥ 0, zero at k = 0 (e.g. :class:`~sobolev_flow.kernels.SobolevKernel`).
    nu_hat : ndarray, optional
        Fourier coefficients of the target ν on the grid's spectral layout (default: ν ≡ 1).
    stabilisation : float, optional
        ν̄ > 0; default max ν over the grid (1 for uniform ν).
    fft_backend, threads, fft_effort, fft_wisdom_only
        Passed to :class:`~sobolev_flow.fft.RealFFT` (``fft_wisdom_only`` as ``wisdom_only``).

    Attributes
    ----------
    weights : ndarray
        K̂(k), zeroed outside the resolved wavenumbers.
    linear : ndarray
        The real, non-positive symbol L_k.
    nu_hat : ndarray
        Coefficients of ν (unresolved modes removed).
    """

    def __init__(self, grid: Torus, kernel, nu_hat=None, stabilisation=None, fft_backend="auto", threads=None,
                 fft_effort="estimate", fft_wisdom_only=False):
        self.grid = grid
        self.kernel = kernel
        weights = np.asarray(kernel.weights(grid), dtype=float)
        if weights.shape != grid.spectral_shape or not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError(f"kernel={kernel}: weights must be finite, non-negative and of shape {grid.spectral_shape}")
        self.weights = weights * grid.resolved
        self.weights.flat[0] = 0.0

        if nu_hat is None:
            nu_hat = np.zeros(grid.spectral_shape, dtype=complex)
            nu_hat.flat[0] = 1.0
        self.nu_hat = grid.project(np.array(nu_hat, dtype=complex))
        self.uniform = not np.any(self.nu_hat.ravel()[1:])
        nu_max = float(self.nu_hat.flat[0].real) if self.uniform else float(grid.to_physical(self.nu_hat).max())
        self.stabilisation = nu_max if stabilisation is None else float(stabilisation)
        if not (math.isfinite(self.stabilisation) and self.stabilisation > 0):
            raise ValueError(f"stabilisation={stabilisation!r}: expected a finite number > 0")
        self.linear = -self.stabilisation * grid.k2 * self.weights

        # ---- padded buffers and transforms: one spectral buffer shared by the c2r into ρ and the
        #      c2r / r2c pair of the work field, which holds ∂_j ψ and then the flux F_j in turn
        padded, padded_spectral = grid.padded_shape, grid.padded_spectral_shape
        self._spectral = empty_aligned((1,) + padded_spectral, complex)
        self._rho = empty_aligned((1,) + padded, float)
        self._work = empty_aligned((1,) + padded, float)
        self._to_rho = RealFFT(padded, backend=fft_backend, threads=threads, effort=fft_effort,
                               physical=self._rho, spectral=self._spectral, wisdom_only=fft_wisdom_only)
        self._to_work = RealFFT(padded, backend=self._to_rho.backend, threads=threads, effort=fft_effort,
                                physical=self._work, spectral=self._spectral, wisdom_only=fft_wisdom_only)
        self.fft_backend = self._to_rho.backend
        self.threads = self._to_rho.threads
        self.fft_effort = fft_effort
        self._psi = empty_aligned(padded_spectral, complex)  # ψ on the padded layout
        self._speed2 = empty_aligned(padded, float)  # |∇ψ|², accumulated when monitoring
        self._blocks = grid.embedding()
        self._padding = _padding_slabs(grid)
        # K̂ on the padded layout (zero in the padding) and i k_j as broadcast vectors there, so
        # that ψ and ∂_j ψ are formed by contiguous products on the whole padded array
        self._weights_padded = np.zeros(padded_spectral)
        for src, dst in self._blocks:
            self._weights_padded[dst] = self.weights[src]
        self._ik_padded = [1j * kj for kj in Torus(padded).wavenumbers()]
        # (div F)_k = i k · F_k, with the forward FFT's normalisation 1/size(padded) folded in
        scale = 1.0 / math.prod(padded)
        self._ik_div = [1j * scale * kj for kj in grid.wavenumbers()]
        # one flux component's resolved modes, gathered contiguously; entries no block writes
        # (the Nyquist planes) stay 0
        self._flux = np.zeros(grid.spectral_shape, dtype=complex)
        self._tmp = np.empty(grid.spectral_shape, dtype=complex)
        if self.uniform and self.stabilisation == self.nu_hat.flat[0].real:
            self._offset = None
        else:
            # ν − ν̄ sampled on the padded grid (spectral interpolation)
            self._offset = self._interpolate(self.nu_hat) - self.stabilisation
        self.evaluations = 0

    # -------------------------------------------------------------------------
    def _interpolate(self, f_hat: np.ndarray) -> np.ndarray:
        """Values of Σ_k f_k e^{ik·x} on the padded grid (not the hot path)."""
        self._embed(f_hat)
        return self._to_rho.backward()[0].copy()

    def _embed(self, f_hat):
        """Spectral buffer ← f_hat zero-padded (only the padding needs re-zeroing: the
        c2r transforms destroy the buffer, but every other entry is overwritten)."""
        spec = self._spectral[0]
        for index in self._padding:
            spec[index] = 0.0
        for src, dst in self._blocks:
            spec[dst] = f_hat[src]
        return spec

    def psi(self, rho_hat: np.ndarray) -> np.ndarray:
        """ψ_k = K̂(k) ρ_k."""
        return self.weights * rho_hat

    def explicit(self, rho_hat: np.ndarray, out: np.ndarray, monitor: bool = False):
        """out ← N(ρ) = div((ρ + ν − ν̄) ∇ψ), dealiased.

        Parameters
        ----------
        rho_hat : ndarray
            Coefficients of ρ (resolved modes only); not modified.
        out : ndarray
            Receives the coefficients of N(ρ); must not alias ``rho_hat``.
        monitor : bool
            Also return a :class:`Monitor` with min μ and max|∇ψ| on the padded grid.
        """
        self.evaluations += 1
        # 1. ψ = K̂ ρ on the padded layout (K̂ vanishes in the padding); ρ to the padded grid
        spec = self._embed(rho_hat)
        np.multiply(self._weights_padded, spec, out=self._psi)
        rho = self._to_rho.backward()[0]
        if self._offset is not None:
            rho += self._offset  # now μ − ν̄
        work, speed2 = self._work[0], self._speed2
        if monitor:
            speed2.fill(0.0)
        # 2. for each axis: ∂_j ψ to the grid, flux F_j = (μ − ν̄) ∂_j ψ, back, (div F)_k += i k_j F_j,k
        for j, ik in enumerate(self._ik_padded):
            np.multiply(self._psi, ik, out=spec)
            self._to_work.backward()
            if monitor:
                speed2 += work * work
            work *= rho
            self._to_work.forward()
            flux = self._flux
            for src, dst in self._blocks:
                flux[src] = spec[dst]
            if j == 0:
                np.multiply(flux, self._ik_div[0], out=out)
            else:
                np.multiply(flux, self._ik_div[j], out=self._tmp)
                out += self._tmp
        if self.grid.dealias == "2/3":
            out *= self.grid.resolved
        if monitor:
            return Monitor(min_mu=float(rho.min()) + self.stabilisation, max_speed=float(np.sqrt(speed2.max())))
        return None

    def transforms_only(self):
        """Execute exactly the FFTs of one :meth:`explicit` call (1 + d c2r, d r2c) and nothing
        else, on the same plans: the reference for the cost of the element-wise work."""
        self._to_rho.backward()
        for _ in range(self.grid.d):
            self._to_work.backward()
            self._to_work.forward()

    def rhs(self, rho_hat: np.ndarray, out: np.ndarray) -> np.ndarray:
        """out ← L ρ + N(ρ), the full right-hand side."""
        self.explicit(rho_hat, out)
        out += self.linear * rho_hat
        return out


def _padding_slabs(grid: Torus) -> list:
    """Disjoint slices of the padded spectral layout that no embedding block writes.

    Along axis a the slab takes the gap between the kept wavenumbers, every index on the later
    axes and only the kept ranges on the earlier ones (2^a slabs). Empty for 2/3 truncation.
    """
    if grid.dealias == "2/3":
        return []
    kept, gaps = [], []
    for axis, (n, m) in enumerate(zip(grid.shape, grid.padded_shape)):
        if axis < grid.d - 1:
            kept.append([slice(0, n // 2), slice(m - n // 2 + 1, m)])
            gaps.append(slice(n // 2, m - n // 2 + 1))
        else:
            kept.append([slice(0, n // 2)])
            gaps.append(slice(n // 2, m // 2 + 1))
    slabs = []
    for axis in range(grid.d):
        prefixes = [()]
        for earlier in kept[:axis]:
            prefixes = [p + (s,) for p in prefixes for s in earlier]
        slabs += [p + (gaps[axis],) + (slice(None),) * (grid.d - axis - 1) for p in prefixes]
    return slabs
