"""A minimal pyfftw RK4 loop for the Sobolev flow: the reference of ``rhs_vs_fft.py --rk4-step``.

This is what one writes by hand for the one equation, without the package: FFTW plans built once
on aligned buffers, numpy for the rest, no monitor, no diagnostics, no error control. It integrates
the same semi-discrete system as :class:`sobolev_flow.models.spectral.SpectralModel` with a
uniform target ν ≡ ν̄ (which is then also the default stabilisation, max ν), ``SobolevKernel(s)``,
the Wasserstein geometry and 3/2 dealiasing: for the coefficients ρ_k of ρ = μ − ν on the resolved wavenumbers
(|k_j| < n_j/2, Nyquist excluded, real-to-complex half layout, f_k = ∫ f e^{-ik·x} dm),

    ∂t ρ_k = L_k ρ_k + N_k(ρ),      L_k = −ν̄ |k|² K̂_k,      K̂_k = |k|^{−2s} (K̂_0 = 0),
    N(ρ)   = div((μ − ν̄) ∇ψ) = div(ρ ∇ψ),      ψ_k = K̂_k ρ_k,

with N formed on the padded grid of the package (``Torus.padded_shape``, at least 3n/2 points per
axis): ρ and ∂_jψ zero-padded and transformed to the grid by c2r FFTs (unnormalised: the values
Σ_k f_k e^{ik·x}), the flux F_j = ρ ∂_jψ transformed back by an r2c FFT, truncated to the resolved
wavenumbers and scaled by 1/(padded points), and N_k = Σ_j i k_j F_{j,k}. One evaluation of N costs
1 + d c2r and d r2c transforms on the padded grid, as in the package. One step of the classical
fourth-order Runge–Kutta method with the linear part treated explicitly (the package's ``rk4``),
f(u) = L u + N(u):

    k1 = f(u), k2 = f(u + h/2 k1), k3 = f(u + h/2 k2), k4 = f(u + h k3),
    u ← u + h/6 (k1 + 2 k2 + 2 k3 + k4).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pyfftw


class MinimalRK4:
    """Fixed-step classical RK4 for ∂t ρ = Lρ + N(ρ) (module docstring) on a d-dimensional grid.

    Parameters
    ----------
    u0 : ndarray, complex, shape (n_1, …, n_{d−1}, n_d/2 + 1)
        Initial coefficients ρ_k on the resolved wavenumbers (copied).
    padded_shape : tuple of int
        Points per axis of the grid on which the flux is formed (each ≥ 3n_j/2, even).
    s : float
        Sobolev order of the kernel K̂_k = |k|^{−2s}.
    nu_bar : float
        Density of the uniform target, ν ≡ ν̄ (the stabilisation of the linear part).
    threads : int
        FFTW threads.
    effort : str
        FFTW planner effort ("estimate", "measure", …).

    Attributes
    ----------
    u : ndarray
        The current state (a new array after every step: the buffers are swapped).
    """

    def __init__(self, u0, padded_shape, s=2.0, nu_bar=1.0, threads=1, effort="estimate"):
        n, m = u0.shape[:-1] + (2 * (u0.shape[-1] - 1),), tuple(padded_shape)
        d = len(n)
        k = [np.fft.fftfreq(n_j, 1.0 / n_j).reshape([-1 if a == j else 1 for a in range(d)])
             for j, n_j in enumerate(n[:-1])]
        k.append(np.arange(n[-1] // 2 + 1, dtype=float).reshape([1] * (d - 1) + [-1]))
        k2 = sum(k_j**2 for k_j in k)
        resolved = np.ones(u0.shape, bool)
        for k_j, n_j in zip(k, n):
            resolved &= np.abs(k_j) < n_j / 2
        weights = np.where(k2 > 0, k2, 1.0) ** -s * (k2 > 0) * resolved
        self.linear = (-nu_bar * k2 * weights).astype(complex)                 # L_k (complex: numpy's fast loop)
        self.gradient = [1j * k_j * weights for k_j in k]                      # ∂_jψ = (i k_j K̂) ρ
        self.divergence = [1j * k_j * resolved / math.prod(m) for k_j in k]    # (i k_j / points) F_j

        # the resolved blocks (unpadded source, padded target), the padding and the Nyquist planes
        ranges = [[(slice(0, n_j // 2), slice(0, n_j // 2)),
                   (slice(n_j // 2 + 1, n_j), slice(m_j - n_j // 2 + 1, m_j))] for n_j, m_j in zip(n[:-1], m)]
        ranges.append([(slice(0, n[-1] // 2), slice(0, n[-1] // 2))])
        self.blocks = [tuple(zip(*pairs)) for pairs in itertools.product(*ranges)]
        gaps = [slice(n_j // 2, m_j - n_j // 2 + 1) for n_j, m_j in zip(n[:-1], m)] + [slice(n[-1] // 2, None)]
        self.padding = [prefix + (gaps[a],) + (slice(None),) * (d - a - 1)
                        for a in range(d) for prefix in itertools.product(*[[t for _, t in r] for r in ranges[:a]])]
        self.nyquist = [(slice(None),) * a + (n_j // 2,) for a, n_j in enumerate(n)]

        # FFTW plans on aligned buffers: ρ and the work field (∂_jψ, then F_j) on the padded grid
        self.spec = pyfftw.empty_aligned(m[:-1] + (m[-1] // 2 + 1,), complex)
        self.rho = pyfftw.empty_aligned(m, float)
        self.work = pyfftw.empty_aligned(m, float)
        flags, axes = ("FFTW_" + effort.upper(), "FFTW_DESTROY_INPUT"), tuple(range(d))
        self.to_rho = pyfftw.FFTW(self.spec, self.rho, axes=axes, direction="FFTW_BACKWARD", flags=flags,
                                  threads=threads)
        self.to_work = pyfftw.FFTW(self.spec, self.work, axes=axes, direction="FFTW_BACKWARD", flags=flags,
                                   threads=threads)
        self.from_work = pyfftw.FFTW(self.work, self.spec, axes=axes, direction="FFTW_FORWARD", flags=flags,
                                     threads=threads)
        self.u = np.array(u0, dtype=complex)
        self.next, self.stage, self.k, self.tmp, self.product = (np.zeros_like(self.u) for _ in range(5))

    def pad(self, f_hat, multiplier=None):
        """spec ← (multiplier ×) ``f_hat`` zero-padded (the product formed contiguously, then
        copied: faster than multiplying into the strided blocks)."""
        if multiplier is not None:
            f_hat = np.multiply(multiplier, f_hat, out=self.product)
        for index in self.padding:
            self.spec[index] = 0.0
        for src, dst in self.blocks:
            self.spec[dst] = f_hat[src]

    def nonlinear(self, u, out):
        """out ← N(u) = Σ_j i k_j (ρ ∂_jψ)_k, dealiased."""
        self.pad(u)
        self.to_rho.execute()
        for j, (gradient, divergence) in enumerate(zip(self.gradient, self.divergence)):
            self.pad(u, gradient)
            self.to_work.execute()
            np.multiply(self.work, self.rho, out=self.work)
            self.from_work.execute()
            # truncate (a contiguous copy, then one multiply: faster than multiplying strided blocks)
            target = out if j == 0 else self.tmp
            for src, dst in self.blocks:
                target[src] = self.spec[dst]
            for index in self.nyquist:  # the entries no block writes
                target[index] = 0.0
            target *= divergence
            if j > 0:
                out += self.tmp
        return out

    def slope(self, u, out):
        """out ← f(u) = L u + N(u)."""
        self.nonlinear(u, out)
        np.multiply(self.linear, u, out=self.tmp)
        out += self.tmp
        return out

    def step(self, h):
        """Advance :attr:`u` by one classical RK4 step of size ``h``."""
        u, new, stage, k, tmp = self.u, self.next, self.stage, self.k, self.tmp
        self.slope(u, k)                                    # k1
        np.multiply(k, h / 6, out=new)
        new += u
        for c, b in ((h / 2, h / 3), (h / 2, h / 3), (h, h / 6)):
            np.multiply(k, c, out=stage)                    # U = u + c k_{i-1}
            stage += u
            self.slope(stage, k)                            # k_i = f(U)
            np.multiply(k, b, out=tmp)
            new += tmp
        self.u, self.next = new, u
        return new
