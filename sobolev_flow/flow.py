"""The right-hand side of the flow, split into a diagonal linear part and an explicit rest.

The solver's unknown is ρ = μ − ν in Fourier coefficients. With ψ = K ⋆ ρ (ψ_k = K̂(k) ρ_k)

    ∂t ρ = div(μ ∇ψ) = ν̄ Δψ + div((μ − ν̄) ∇ψ) = L ρ + N(ρ),

    L_k = −ν̄ |k|² K̂(k)                    (−ν̄ |k|^{2−2s} for the Sobolev kernel),
    N(ρ) = div((ρ + ν − ν̄) ∇ψ),

where ν̄ > 0 is a stabilisation constant (ν̄ = max ν by default; ν̄ = 1 for uniform ν, when
N(ρ) = div(ρ∇ψ) is purely quadratic). The product is formed on the padded grid and the
divergence taken in Fourier space, so N costs 1 + d inverse and d forward real FFTs. N_0 = 0
identically, so the mass of μ is conserved exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .fft import RealFFT
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
    fft_backend, threads, fft_effort
        Passed to :class:`~sobolev_flow.fft.RealFFT`.

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
                 fft_effort="estimate"):
        self.grid = grid
        self.kernel = kernel
        d = grid.d
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

        # ---- padded transforms: inverse of [ρ, ∂_1ψ … ∂_dψ], forward of the d flux components
        self._inverse = RealFFT(grid.padded_shape, batch=1 + d, backend=fft_backend, threads=threads, effort=fft_effort)
        self._forward = RealFFT(grid.padded_shape, batch=d, backend=self._inverse.backend, threads=threads,
                                effort=fft_effort, physical=self._inverse.physical[1:])
        self.fft_backend = self._inverse.backend
        self.threads = self._inverse.threads
        self.fft_effort = fft_effort
        self._blocks = grid.embedding()
        self._field_blocks = [((slice(None),) + src, (slice(None),) + dst) for src, dst in self._blocks]
        self._padding = _padding_slabs(grid)
        # K̂ on the padded layout (zero in the padding) and i k_j as broadcast vectors there, so
        # that ψ and ∇ψ are formed by contiguous products on the whole padded arrays
        self._weights_padded = np.zeros(grid.padded_spectral_shape)
        for src, dst in self._blocks:
            self._weights_padded[dst] = self.weights[src]
        self._ik_padded = [1j * kj for kj in Torus(grid.padded_shape).wavenumbers()]
        # (div F)_k = i k · F_k, with the forward FFT's normalisation 1/size(padded) folded in
        scale = 1.0 / math.prod(grid.padded_shape)
        self._ik_div = [1j * scale * kj for kj in grid.wavenumbers()]
        # the resolved flux, gathered contiguously; entries no block writes (Nyquist) stay 0
        self._flux = np.zeros((d,) + grid.spectral_shape, dtype=complex)
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
        buf = self._inverse.spectral
        buf.fill(0)
        for src, dst in self._blocks:
            buf[0][dst] = f_hat[src]
        return self._inverse.backward()[0].copy()

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
        spec = self._inverse.spectral
        # 1. ρ into the zero-padded spectral buffer (the c2r destroys it: its padding is re-zeroed),
        #    then ψ = K̂ ρ and ∂_j ψ = i k_j ψ by whole-array products (K̂ vanishes in the padding)
        for index in self._padding:
            spec[0][index] = 0.0
        for src, dst in self._blocks:
            spec[0][dst] = rho_hat[src]
        np.multiply(self._weights_padded, spec[0], out=spec[1])
        for j in reversed(range(self.grid.d)):  # j = 0 last: it overwrites ψ in spec[1]
            np.multiply(spec[1], self._ik_padded[j], out=spec[1 + j])
        # 2. to the padded grid: phys[0] = ρ, phys[1 + j] = ∂_j ψ
        phys = self._inverse.backward()
        if self._offset is not None:
            phys[0] += self._offset
        info = None
        if monitor:
            speed2 = np.einsum("j...,j...->...", phys[1:], phys[1:])
            info = Monitor(min_mu=float(phys[0].min()) + self.stabilisation, max_speed=float(np.sqrt(speed2.max())))
        # 3. flux F_j = (μ − ν̄) ∂_j ψ, in place in the forward transform's input
        phys[1:] *= phys[0]
        flux = self._forward.forward()
        # 4. divergence of the resolved modes: gather them contiguously, then i k · F
        gathered = self._flux
        for src, dst in self._field_blocks:
            gathered[src] = flux[dst]
        np.multiply(gathered[0], self._ik_div[0], out=out)
        for j in range(1, self.grid.d):
            np.multiply(gathered[j], self._ik_div[j], out=self._tmp)
            out += self._tmp
        if self.grid.dealias == "2/3":
            out *= self.grid.resolved
        return info

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
