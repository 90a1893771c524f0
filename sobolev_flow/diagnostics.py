"""Diagnostics of a state, as pure functions of Fourier coefficients.

Coefficients follow :mod:`sobolev_flow.grid` (f_k = ∫ f e^{-ik·x} dm on the half layout of
``rfftn``); a sum over all k ∈ Z^d of a Hermitian quantity is a weighted sum over the half
layout with :attr:`Torus.rfft_weights`.
"""

from __future__ import annotations

import numpy as np

from .grid import Torus

__all__ = ["SpectralSums", "energy", "dissipation", "sobolev_norm", "mass", "tail_fraction", "l2_norm"]


class SpectralSums:
    """Weighted sums over all k ∈ Z^d of spectral quantities, without temporaries.

    A real field's coefficients are Hermitian, so Σ_{k∈Z^d} a_k conj(f_k) g_k =
    Re Σ_{half layout} w_k a_k conj(f_k) g_k with the multiplicities w of
    :attr:`Torus.rfft_weights`. The forms of the hot path (energy, dissipation, L² norm) keep
    their real weight arrays w·a; the diagnostics (Sobolev norms of any order, the tail
    fraction) start from the power spectrum w|f_k|², formed once per call in one scratch array:
    the Sobolev norms sum it over the shells of equal |k|² (one ``bincount`` against an index
    array of 32-bit integers, built on first use) and then raise only the shells' |k|² to each
    order; the tail fraction sums it over two masks. A run thus keeps 4 real arrays here (w and
    w·K̂ also repeated per real and imaginary part, for :meth:`bilinear`) whatever the number of
    Sobolev orders it records, and allocates nothing of grid size per call.

    Under a distributed layout (:mod:`sobolev_flow.parallel`) the arrays are this process's
    block and every sum is completed by one reduction, so each call is collective.

    Parameters
    ----------
    grid : Torus
    weights : ndarray, optional
        Kernel weights K̂(k) on the layout's block (needed for :meth:`energy` and
        :meth:`dissipation`).
    layout : Serial or Distributed, optional
        Which block of the spectral arrays this process holds (default: all of it).
    """

    def __init__(self, grid: Torus, weights=None, layout=None):
        from .parallel import SERIAL

        self.grid = grid
        self.layout = layout = SERIAL if layout is None else layout
        local = layout.local
        self._w = local(np.ascontiguousarray(grid.rfft_weights, dtype=float))
        self._kernel = None if weights is None else self._w * weights
        self._scratch = np.empty(self._w.shape)
        self._shells = None  # (|k|² of each shell, each mode's shell), built on first use
        nonzero = grid.k2 > 0
        top = np.zeros(grid.spectral_shape, dtype=bool)
        for k, n in zip(grid.wavenumbers(), grid.shape):
            kmax = (n // 2 - 1) if grid.dealias == "3/2" else int(np.ceil(n / 3) - 1)
            top |= np.abs(k) > 2 * kmax / 3
        self._resolved = local(grid.resolved & nonzero)
        self._top = local(grid.resolved & nonzero & top)
        if weights is not None:  # the tail counts only the modes the kernel sees (K̂_k > 0)
            seen = np.asarray(weights) > 0
            self._resolved = self._resolved & seen
            self._top = self._top & seen
        # the stored weights repeated per real and imaginary part (see bilinear), by identity
        self._repeated = {id(a): (a, np.repeat(a.reshape(-1), 2)) for a in (self._w, self._kernel) if a is not None}

    def bilinear(self, a: np.ndarray, f: np.ndarray, g: np.ndarray) -> float:
        """Re Σ_{k∈Z^d} a_k conj(f_k) g_k for a = w·(the coefficient) as stored here.

        Re conj(f)·(a g) = a (f.re g.re + f.im g.im) is summed in one pass by ``einsum`` over the
        real views, against a repeated once per real and imaginary part (kept for the weights
        stored here, formed for any other ``a``): a flat three-operand product, several times
        faster than einsum's loop over (re, im) pairs; and not by a BLAS dot product: a
        multithreaded BLAS leaves its threads spinning after each call, which here slowed the
        FFTs that follow by a factor of 3.
        """
        repeated = self._repeated.get(id(a))
        if repeated is None or repeated[0] is not a:
            repeated = (a, np.repeat(a.reshape(-1), 2))
        flat_f = np.ascontiguousarray(f).reshape(-1).view(float)
        flat_g = np.ascontiguousarray(g).reshape(-1).view(float)
        return self.layout.sum(float(np.einsum("i,i,i->", flat_f, flat_g, repeated[1])))

    def mass(self, f_hat) -> float:
        """∫ f dm = f_0."""
        return self.layout.sum(float(f_hat.flat[0].real) if self.layout.owns_origin and f_hat.size else 0.0)

    def energy(self, rho_hat) -> float:
        """E = ½ Σ_k K̂(k) |ρ_k|² (K̂_0 = 0 for the Sobolev kernel)."""
        return 0.5 * self.bilinear(self._kernel, rho_hat, rho_hat)

    def dissipation(self, rho_hat, drho_hat) -> float:
        """D = −dE/dt = −Re Σ_k K̂(k) conj(ρ_k) ∂t ρ_k = −Re Σ_k conj(ψ_k) ∂t μ_k."""
        return -self.bilinear(self._kernel, rho_hat, drho_hat)

    def l2_norm(self, f_hat) -> float:
        """‖f‖_{L²(dm)} = (Σ_k |f_k|²)^{1/2}, the mean included."""
        return float(np.sqrt(self.bilinear(self._w, f_hat, f_hat)))

    def power(self, f_hat) -> np.ndarray:
        """w_k |f_k|², the power spectrum on the half layout (Σ over it = Σ_{k∈Z^d} |f_k|²), in the
        scratch array (overwritten by the next call of any diagnostic)."""
        out = np.abs(f_hat, out=self._scratch)
        out *= out
        out *= self._w
        return out

    def sobolev_norms(self, f_hat, orders) -> np.ndarray:
        """‖f‖_{Ḣ^q} = (Σ_{k≠0} |k|^{2q} |f_k|²)^{1/2} for each q of ``orders``, from the power
        spectrum summed over the shells of equal |k|² (one pass over the modes for all orders)."""
        orders = np.atleast_1d(np.asarray(orders, dtype=float))
        if self._shells is None:
            k2, shell = np.unique(self.layout.local(self.grid.k2), return_inverse=True)
            self._shells = (k2, shell.astype(np.int32 if k2.size < 2**31 else np.int64).reshape(-1))
        k2, shell = self._shells
        shell_power = np.bincount(shell, weights=self.power(f_hat).reshape(-1), minlength=k2.size)
        nonzero = k2 > 0  # k = 0 does not count, whatever q
        local = [float(np.sum(k2[nonzero] ** q * shell_power[nonzero])) for q in orders]
        return np.sqrt(np.maximum([self.layout.sum(value) for value in local], 0.0))

    def sobolev_norm(self, f_hat, q: float) -> float:
        """‖f‖_{Ḣ^q} = (Σ_{k≠0} |k|^{2q} |f_k|²)^{1/2}."""
        return float(self.sobolev_norms(f_hat, [q])[0])

    def tail_fraction(self, f_hat) -> float:
        """Share of Σ_{k≠0} |f_k|² (resolved modes) in the top third of resolved wavenumbers:
        max_j |k_j| / K_j > 2/3, K_j the largest resolved |k_j|. Not small: under-resolved.

        With kernel weights, only the modes the kernel sees (K̂_k > 0) count: the modes of its null
        space (the odd |k| ≥ 3 of the ReLU kernel) do not move and say nothing of resolution."""
        power = self.power(f_hat)
        total = self.layout.sum(float(np.sum(power, where=self._resolved)))
        if total == 0.0:
            return 0.0
        return self.layout.sum(float(np.sum(power, where=self._top))) / total


def energy(grid: Torus, weights: np.ndarray, rho_hat: np.ndarray) -> float:
    """E = ½ Σ_k K̂(k) |ρ_k|²  (= ½‖ρ‖²_{Ḣ^{-s}} for K̂ = |k|^{-2s}, K̂_0 = 0).

    Parameters
    ----------
    weights : ndarray
        Kernel weights K̂(k) on the half layout (K̂_0 counts the mass difference).
    rho_hat : ndarray
        Coefficients of ρ = μ − ν.
    """
    return SpectralSums(grid, weights).energy(rho_hat)


def dissipation(grid: Torus, psi_hat: np.ndarray, dmu_hat: np.ndarray) -> float:
    """D = −dE/dt = −Σ_k Re(conj(ψ_k) ∂t μ_k).

    For ∂t μ = div(μ∇ψ) this equals ∫ μ |∇ψ|² dm; computed this way it is exact for the
    semi-discrete (dealiased) system, so E(t1) − E(t0) + ∫ D dt vanishes up to the time
    discretisation error alone.
    """
    sums = SpectralSums(grid)
    return -sums.bilinear(sums._w, psi_hat, dmu_hat)


def sobolev_norm(grid: Torus, f_hat: np.ndarray, q: float) -> float:
    """Homogeneous Sobolev norm ‖f‖_{Ḣ^q} = (Σ_{k≠0} |k|^{2q} |f_k|²)^{1/2}."""
    return SpectralSums(grid).sobolev_norm(f_hat, q)


def l2_norm(grid: Torus, f_hat: np.ndarray) -> float:
    """‖f‖_{L²(dm)} = (Σ_k |f_k|²)^{1/2} (Parseval), including the mean."""
    return SpectralSums(grid).l2_norm(f_hat)


def mass(f_hat: np.ndarray) -> float:
    """∫ f dm = f_0."""
    return float(f_hat.flat[0].real)


def tail_fraction(grid: Torus, f_hat: np.ndarray) -> float:
    """Fraction of Σ_{k≠0} |f_k|² carried by the top third of resolved wavenumbers.

    A wavenumber is in the top third when max_j |k_j| / K_j > 2/3, with K_j the largest
    resolved |k_j| on axis j. A value that is not small signals under-resolution.
    """
    return SpectralSums(grid).tail_fraction(f_hat)
