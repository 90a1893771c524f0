"""Diagnostics of a state, as pure functions of Fourier coefficients.

Coefficients follow :mod:`sobolev_flow.grid` (f_k = ∫ f e^{-ik·x} dm on the half layout of
``rfftn``); a sum over all k ∈ Z^d of a Hermitian quantity is a weighted sum over the half
layout with :attr:`Torus.rfft_weights`.
"""

from __future__ import annotations

import numpy as np

from .grid import Torus

__all__ = ["energy", "dissipation", "sobolev_norm", "mass", "tail_fraction", "l2_norm"]


def _full_sum(grid: Torus, g: np.ndarray) -> float:
    """Σ_{k∈Z^d} g_k for g Hermitian-symmetric, given on the half layout (real part)."""
    return float(np.vdot(grid.rfft_weights, g.real)) if g.dtype.kind == "c" else float(np.vdot(grid.rfft_weights, g))


def energy(grid: Torus, weights: np.ndarray, rho_hat: np.ndarray) -> float:
    """E = ½ Σ_{k≠0} K̂(k) |ρ_k|²  (= ½‖ρ‖²_{Ḣ^{-s}} for K̂ = |k|^{-2s}).

    Parameters
    ----------
    weights : ndarray
        Kernel weights K̂(k) on the half layout, zero at k = 0.
    rho_hat : ndarray
        Coefficients of ρ = μ − ν.
    """
    return 0.5 * _full_sum(grid, weights * (rho_hat.real**2 + rho_hat.imag**2))


def dissipation(grid: Torus, psi_hat: np.ndarray, dmu_hat: np.ndarray) -> float:
    """D = −dE/dt = −Σ_k Re(conj(ψ_k) ∂t μ_k).

    For ∂t μ = div(μ∇ψ) this equals ∫ μ |∇ψ|² dm; computed this way it is exact for the
    semi-discrete (dealiased) system, so E(t1) − E(t0) + ∫ D dt vanishes up to the time
    discretisation error alone.
    """
    return -_full_sum(grid, psi_hat.conj() * dmu_hat)


def sobolev_norm(grid: Torus, f_hat: np.ndarray, q: float) -> float:
    """Homogeneous Sobolev norm ‖f‖_{Ḣ^q} = (Σ_{k≠0} |k|^{2q} |f_k|²)^{1/2}."""
    k2 = grid.k2
    nz = k2 > 0
    power = np.zeros(grid.spectral_shape)
    power[nz] = k2[nz] ** q * (f_hat.real[nz] ** 2 + f_hat.imag[nz] ** 2)
    return float(np.sqrt(_full_sum(grid, power)))


def l2_norm(grid: Torus, f_hat: np.ndarray) -> float:
    """‖f‖_{L²(dm)} = (Σ_k |f_k|²)^{1/2} (Parseval), including the mean."""
    return float(np.sqrt(_full_sum(grid, f_hat.real**2 + f_hat.imag**2)))


def mass(f_hat: np.ndarray) -> float:
    """∫ f dm = f_0."""
    return float(f_hat.flat[0].real)


def tail_fraction(grid: Torus, f_hat: np.ndarray) -> float:
    """Fraction of Σ_{k≠0} |f_k|² carried by the top third of resolved wavenumbers.

    A wavenumber is in the top third when max_j |k_j| / K_j > 2/3, with K_j the largest
    resolved |k_j| on axis j. A value that is not small signals under-resolution.
    """
    power = f_hat.real**2 + f_hat.imag**2
    power.flat[0] = 0.0
    power = power * grid.resolved
    total = _full_sum(grid, power)
    if total == 0.0:
        return 0.0
    top = np.zeros(grid.spectral_shape, dtype=bool)
    for k, n in zip(grid.wavenumbers(), grid.shape):
        kmax = (n // 2 - 1) if grid.dealias == "3/2" else int(np.ceil(n / 3) - 1)
        top = top | (np.abs(k) > 2 * kmax / 3)
    return _full_sum(grid, power * top) / total
