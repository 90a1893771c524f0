"""The right-hand side of the flow, split into a diagonal linear part and an explicit rest.

The solver's unknown is ρ = μ − ν in Fourier coefficients. With ψ = K ⋆ ρ (ψ_k = K̂(k) ρ_k)

    ∂t ρ = div(μ ∇ψ) = ν̄ Δψ + div((μ − ν̄) ∇ψ) = L ρ + N(ρ),

    L_k = −ν̄ |k|² K̂(k)                    (−ν̄ |k|^{2−2s} for the Sobolev kernel),
    N(ρ) = div((ρ + ν − ν̄) ∇ψ),

where ν̄ > 0 is a stabilisation constant (ν̄ = max ν by default; ν̄ = 1 for uniform ν, when
N(ρ) = div(ρ∇ψ) is purely quadratic). The product is formed on the padded grid one component at a time
and the divergence taken in Fourier space, so N costs 1 + d inverse and d forward real FFTs. Whatever
d, the padded arrays are three fields (ρ, the work field holding ∂_jψ and then F_j, and |∇ψ|² for
the monitor) and one spectral buffer; ψ stays on the unpadded layout, i k_j ψ is formed there and
copied block by block into the zero-padded spectral buffer, and each flux spectrum is copied back
block by block and multiplied there (numpy multiplies strided block views several times slower
than it copies them). N_0 = 0 identically, so the mass of μ is conserved exactly.
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
        self.weights, nu_hat, self.stabilisation = model(grid, kernel, nu_hat, stabilisation)
        self.uniform = not np.any(nu_hat.ravel()[1:])
        self.nu_mean = float(nu_hat.flat[0].real)
        # a uniform target is its mean alone: no array is kept for it
        self._nu_hat = None if self.uniform else nu_hat
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
        self._psi = np.empty(grid.spectral_shape, complex)  # ψ on the unpadded layout
        self._tmp = np.empty(grid.spectral_shape, complex)  # i k_j ψ, then the flux F_j, unpadded
        self._speed2 = empty_aligned(padded, float)  # |∇ψ|², accumulated when monitoring
        # the spectral buffer seen as a padded real field (it holds at least as many doubles)
        self._scratch = self._spectral.view(float).reshape(-1)[:math.prod(padded)].reshape(padded)
        self._blocks = grid.embedding()
        self._padding = _padding_slabs(grid)
        self._uncovered = _uncovered_slabs(grid)
        # i k_j as broadcast vectors, for ∂_j ψ (ik) and for the divergence with the forward FFT's
        # normalisation 1/size(padded) folded in (ik_div)
        scale = 1.0 / math.prod(padded)
        ks = grid.wavenumbers()
        self._ik = [1j * k for k in ks]
        self._ik_div = [1j * scale * k for k in ks]
        if self.uniform and self.stabilisation == self.nu_mean:
            self._offset = None
        else:
            # ν − ν̄ sampled on the padded grid (spectral interpolation)
            self._offset = self._interpolate(self.nu_hat) - self.stabilisation
        self.evaluations = 0

    @property
    def nu_hat(self) -> np.ndarray:
        """Coefficients of ν (unresolved modes removed); a new array for a uniform target."""
        if self._nu_hat is not None:
            return self._nu_hat
        nu_hat = np.zeros(self.grid.spectral_shape, dtype=complex)
        nu_hat.flat[0] = self.nu_mean
        return nu_hat

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
        # 1. ρ to the padded grid; ψ = K̂ ρ
        spec = self._embed(rho_hat)
        rho = self._to_rho.backward()[0]
        if self._offset is not None:
            rho += self._offset  # now μ − ν̄
        psi = np.multiply(self.weights, rho_hat, out=self._psi)
        work, speed2, blocks = self._work[0], self._speed2, self._blocks
        if monitor:
            speed2.fill(0.0)
        # 2. for each axis: ∂_j ψ to the grid, flux F_j = (μ − ν̄) ∂_j ψ, back, (div F)_k += i k_j F_j,k
        tmp = self._tmp
        for j in range(self.grid.d):
            np.multiply(psi, self._ik[j], out=tmp)
            self._embed(tmp)  # the c2r destroyed the buffer: the padding is zeroed again
            self._to_work.backward()
            if monitor:  # (∂_j ψ)² into the spectral buffer's memory, free until the r2c below
                square = np.multiply(work, work, out=self._scratch)
                speed2 += square
            work *= rho
            self._to_work.forward()
            flux = out if j == 0 else tmp
            for src, dst in blocks:
                np.copyto(flux[src], spec[dst])
            for index in self._uncovered:  # the Nyquist planes, which no block writes
                flux[index] = 0.0
            flux *= self._ik_div[j]
            if j > 0:
                out += flux
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


def model(grid: Torus, kernel, nu_hat=None, stabilisation=None) -> tuple[np.ndarray, np.ndarray, float]:
    """The checked ingredients of the split: (K̂ on the resolved modes with K̂_0 = 0, the resolved
    coefficients of ν (default ν ≡ 1), ν̄ (default max ν)), all on the global layout.

    Raises
    ------
    ValueError
        Kernel weights that are not finite, non-negative and of the spectral shape; ν̄ not > 0.
    """
    weights = np.asarray(kernel.weights(grid), dtype=float)
    if weights.shape != grid.spectral_shape or not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError(f"kernel={kernel}: weights must be finite, non-negative and of shape {grid.spectral_shape}")
    weights = weights * grid.resolved
    weights.flat[0] = 0.0
    if nu_hat is None:
        nu_hat = np.zeros(grid.spectral_shape, dtype=complex)
        nu_hat.flat[0] = 1.0
    nu_hat = grid.project(np.array(nu_hat, dtype=complex))
    uniform = not np.any(nu_hat.ravel()[1:])
    nu_max = float(nu_hat.flat[0].real) if uniform else float(grid.to_physical(nu_hat).max())
    value = nu_max if stabilisation is None else float(stabilisation)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"stabilisation={stabilisation!r}: expected a finite number > 0")
    return weights, nu_hat, value


def _uncovered_slabs(grid: Torus) -> list:
    """Slices of the unpadded spectral layout that no embedding block covers: the Nyquist
    index n/2 of every axis (empty for 2/3 truncation, whose block is the whole layout)."""
    if grid.dealias == "2/3":
        return []
    slabs = []
    for axis, n in enumerate(grid.shape):
        index = [slice(None)] * grid.d
        index[axis] = slice(n // 2, n // 2 + 1)
        slabs.append(tuple(index))
    return slabs


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
