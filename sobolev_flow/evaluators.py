"""The potential ψ = K ⋆ (μ_N − ν) and its gradient at the particles of an empirical measure.

Conventions
-----------
The torus is T^d = [0, 2π)^d, d ∈ {1, 2, 3}; measures are taken relative to dm = dx/(2π)^d and
Fourier coefficients are f_k = ∫ f e^{−ik·x} dm (as in :mod:`sobolev_flow.grid`). The particles
carry weights in units of dm-mass,

    μ_N = Σ_i w_i δ_{x_i},     μ_k = Σ_i w_i e^{−ik·x_i},

so uniform weights w_i = 1/N give mass μ_0 = 1, the mass of the uniform density ν ≡ 1. For a
kernel with Fourier weights K̂_k (real, K̂_{−k} = K̂_k; K̂_0 may be nonzero) and a target ν with
coefficients ν_k,

    ψ(x) = Σ_k K̂_k (μ_k − ν_k) e^{ik·x},     E = ½ Σ_k K̂_k |μ_k − ν_k|².

The particles move with velocity −∇ψ(x_i); under the Wasserstein–Fisher–Rao geometry the weights
follow ẇ_i = −α ψ(x_i) w_i.

Self-interaction. ψ(x_i) = Σ_j w_j K(x_i − x_j) − ψ_ν(x_i) includes the self term w_i K(0),
K(0) = Σ_k K̂_k (finite for the truncated sums of :class:`NufftEvaluator`, and for the Sobolev
kernel in 1-D when s > 1/2: K(0) = 2ζ(2s)); ∇ψ(x_i) takes the symmetric (principal) value, in
which the term j = i contributes 0 because K is even, and so does every particle j ≠ i that
sits exactly at x_i. With these two choices

    ∂E/∂w_i = ψ(x_i),     ∂E/∂x_i = w_i ∇ψ(x_i)

hold exactly, for every evaluator. (For the Sobolev kernel with s = 1 in 1-D, K' jumps at 0 and
∂E/∂x_i is the mean of the one-sided derivatives when particles coincide. Coincident particles
then have equal velocities and never separate: start them at distinct positions.)

Evaluators
----------
All share one interface (:class:`NufftEvaluator`, :class:`DirectEvaluator`,
:class:`SortedEvaluator`), built once and called many times:

- ``potential(x, w, need_psi=False) -> (psi, grad)``: ψ(x_i) of shape (N,) (None unless
  ``need_psi``) and ∇ψ(x_i) of shape (N, d), for positions x of shape (N, d) (any real values;
  they are wrapped mod 2π) and weights w of shape (N,);
- ``energy(x, w) -> float``: E;
- attributes ``name``, ``exact`` (True when the untruncated kernel is evaluated, to rounding or
  to ``tol``), ``modes`` (the mode cut-off K of a truncated sum, |k_j| ≤ K, or None).

:func:`make_evaluator` builds one from configuration values.

The target is given as ``target=None`` (ν ≡ 1, the uniform density of mass 1), a float m (the
uniform density of mass m: ν_0 = m, ν_k = 0 otherwise), or a pair ``(grid, nu_hat)``: ν's
coefficients on the rfft half layout of a :class:`~sobolev_flow.grid.Torus` (of a real density),
of which the resolved modes (``grid.resolved``) are used and all other modes are zero.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
from numbers import Integral, Real

import numpy as np
import scipy.special

from .grid import Torus

__all__ = [
    "BACKENDS",
    "EVALUATORS",
    "DirectEvaluator",
    "NufftEvaluator",
    "SortedEvaluator",
    "make_evaluator",
    "sobolev_green_1d",
]

log = logging.getLogger(__name__)

#: Evaluator names accepted by :func:`make_evaluator`.
EVALUATORS = ("auto", "nufft", "direct", "sorted")

#: NUFFT back ends of :class:`NufftEvaluator`; "auto" is ducc0 if installed (the faster one
#: measured by ``benchmarks/particles.py``), else finufft.
BACKENDS = ("auto", "ducc0", "finufft")

_INSTALL = 'pip install "sobolev_flow[particles]"'
_TWO_PI = 2.0 * math.pi
_BLOCK_BYTES = 64 * 2**20        # size of one block of a dense matrix in the direct sums
_BYTES_PER_MODE = 80             # memory per mode of a direct Fourier sum (coefficients and one dense row)
_SERIES_TERMS = 40               # terms of the power series of the 1-D Sobolev kernel (|z| ≤ π)


# ============================================================================ kernels in 1-D
def sobolev_green_1d(z, s):
    """The 1-D Sobolev kernel G_s(z) = Σ_{k≠0} |k|^{−2s} e^{ikz} and its derivative.

    Parameters
    ----------
    z : array_like
        Points (any real values; G_s is even and 2π-periodic).
    s : float
        Sobolev order, s > 1/2 (so that G_s is bounded).

    Returns
    -------
    g, dg : ndarray
        G_s(z) and G_s'(z). At z ≡ 0 (mod 2π) dg is the symmetric value 0, also for s ≤ 1,
        where G_s' is discontinuous (s = 1) or unbounded (s < 1) there.

    Notes
    -----
    With r = min(z mod 2π, 2π − z mod 2π) ∈ [0, π] (G_s(z) = G_s(r), G_s'(z) = ±G_s'(r)):

    - integer s (Bernoulli polynomials, t = r/2π ∈ [0, ½]):
      G_s = (−1)^{s+1} (2π)^{2s} B_{2s}(t) / (2s)!,
      G_s' = (−1)^{s+1} (2π)^{2s−1} B_{2s−1}(t) / (2s−1)!;
      e.g. G_1 = r²/2 − πr + π²/3, G_1' = r − π on (0, 2π);
    - non-integer s, p = 2s (G_s = 2 Re Li_p(e^{ir}) and the expansion of the polylogarithm
      about 1, convergent for r < 2π):
      G_s = 2Γ(1−p) sin(πp/2) r^{p−1} + 2 Σ_{n≥0} (−1)^n ζ(p−2n) r^{2n}/(2n)!;
      for odd p = 2m+1 the n = m term and the first one merge into
      2(−1)^m r^{2m} (H_{2m} − ln r)/(2m)! (H the harmonic numbers).
      The series is summed to n = 40, where its terms are below 4^{−40} of its size.

    Examples
    --------
    >>> g, dg = sobolev_green_1d([0.0, 1.0, np.pi], 1)   # π²/3, 1/2 − π + π²/3, −π²/6; 0, 1 − π, 0
    >>> g
    array([ 3.28986813,  0.64827548, -1.64493407])
    >>> dg
    array([ 0.        , -2.14159265,  0.        ])
    """
    return _Green1d(s)(np.asarray(z, dtype=float))


def _bernoulli_numbers(m):
    """B_0 … B_m (B_1 = −1/2) as floats, from exact rational arithmetic (the recurrence
    Σ_{j<n+1} C(n+1, j) B_j = 0); ``scipy.special.bernoulli`` loses ~1e-13 already at B_4."""
    from fractions import Fraction
    b = [Fraction(1)]
    for n in range(1, m + 1):
        b.append(-sum(math.comb(n + 1, j) * b[j] for j in range(n)) / (n + 1))
    return [float(v) for v in b]


class _Green1d:
    """G_s and G_s' for one s, with the coefficients computed once (see :func:`sobolev_green_1d`)."""

    def __init__(self, s):
        s = float(s)
        if not s > 0.5:
            raise ValueError(f"s={s:g}: the 1-D Sobolev kernel is bounded only for s > 1/2")
        self.s = s
        p = 2.0 * s
        if s.is_integer():
            m = int(2 * s)
            bern = _bernoulli_numbers(m)
            # B_m(t) = Σ_j C(m, j) B_j t^{m−j}; G(r) = c (2π)^m B_m(r/2π) / m!, as a polynomial in r
            scale = (-1.0) ** (int(s) + 1) * _TWO_PI**m / math.factorial(m)
            self.poly = np.array([scale * math.comb(m, m - n) * bern[m - n] / _TWO_PI**n for n in range(m + 1)])
            self.dpoly = self.poly[1:] * np.arange(1, m + 1)
            self.kind = "bernoulli"
            return
        n = np.arange(_SERIES_TERMS)
        with np.errstate(over="ignore"):
            coeff = 2.0 * (-1.0) ** n * scipy.special.zeta(p - 2 * n) / scipy.special.factorial(2 * n)
        if float(p).is_integer():            # odd p = 2m + 1: ζ(1) is the pole merged into the log term
            self.m = int(p - 1) // 2
            coeff[self.m] = 0.0
            self.kind = "log"
            self.log_scale = 2.0 * (-1.0) ** self.m / math.factorial(2 * self.m)
            self.harmonic = sum(1.0 / j for j in range(1, 2 * self.m + 1))
        else:
            self.kind = "power"
            self.power_scale = 2.0 * math.gamma(1.0 - p) * math.sin(0.5 * math.pi * p)
        self.p = p
        self.coeff = coeff                                      # G = singular + Σ coeff_n r^{2n}
        self.dcoeff = coeff[1:] * 2 * np.arange(1, _SERIES_TERMS)  # G' = singular' + Σ dcoeff_n r^{2n−1}

    def __call__(self, z, need_g=True):
        z = np.remainder(z, _TWO_PI)
        upper = z > math.pi
        r = np.where(upper, _TWO_PI - z, z)
        r = np.where(r < 0.0, 0.0, r)                 # remainder can round to 2π
        g = None
        if self.kind == "bernoulli":
            g = np.polynomial.polynomial.polyval(r, self.poly) if need_g else None
            dg = np.polynomial.polynomial.polyval(r, self.dpoly)
        else:
            zero = r == 0.0
            rs = np.where(zero, 1.0, r)
            r2 = rs * rs
            series = np.polynomial.polynomial.polyval(r2, self.coeff) if need_g else None
            dseries = rs * np.polynomial.polynomial.polyval(r2, self.dcoeff)
            if self.kind == "power":
                sing = self.power_scale * rs ** (self.p - 1.0)
                dsing = (self.p - 1.0) * sing / rs
            else:
                m2 = 2 * self.m
                logr = np.log(rs)
                sing = self.log_scale * rs**m2 * (self.harmonic - logr)
                dsing = self.log_scale * rs ** (m2 - 1) * (m2 * (self.harmonic - logr) - 1.0)
            if need_g:
                g = series + sing
                g[zero] = 2.0 * scipy.special.zeta(self.p)     # the limit r → 0 (p > 1)
            dg = dseries + dsing
            dg[zero] = 0.0
        if self.kind == "bernoulli":
            dg = np.where(r == 0.0, 0.0, dg)
        dg = np.where(upper, -dg, dg)
        return g, dg


# ============================================================================ validation
def _did_you_mean(word, choices):
    close = difflib.get_close_matches(word, choices, n=1)
    return f" did you mean {close[0]!r}?" if close else ""


def _physical_memory() -> int:
    """Bytes of physical memory of this machine."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 16 * 2**30


def _check_d(d) -> int:
    if isinstance(d, bool) or not isinstance(d, Integral) or int(d) not in (1, 2, 3):
        raise ValueError(f"d={d!r}: the torus must have dimension 1, 2 or 3")
    return int(d)


def _check_modes(modes, d: int) -> int:
    """The mode cut-off K as an int ≥ 1 whose box (2K+1)^d of complex numbers fits in memory."""
    if isinstance(modes, bool) or not isinstance(modes, Integral) or modes < 1:
        raise ValueError(f"particles.modes={modes!r}: expected an integer >= 1")
    K = int(modes)
    size = (2 * K + 1) ** d
    need, have = 16 * size, _physical_memory()
    if need > have:
        raise ValueError(f"particles.modes={K}: the mode box (2K+1)^{d} = {size} complex numbers needs "
                         f"{need / 1e9:.3g} GB, more than the {have / 1e9:.3g} GB of memory of this machine")
    return K


def _check_tol(tol) -> float:
    if isinstance(tol, bool) or not isinstance(tol, Real) or not 0.0 < float(tol) < 1.0:
        raise ValueError(f"particles.tol={tol!r}: expected a number in (0, 1)")
    return float(tol)


def _check_threads(threads) -> int:
    if isinstance(threads, bool) or not isinstance(threads, Integral) or threads < 1:
        raise ValueError(f"threads={threads!r}: expected an integer >= 1")
    return int(threads)


def _sobolev_order(kernel):
    """s for the Sobolev kernel, else None."""
    if getattr(kernel, "name", None) == "sobolev" and hasattr(kernel, "s"):
        return float(kernel.s)
    return None


def _kernel_label(kernel) -> str:
    s = _sobolev_order(kernel)
    return f"the Sobolev kernel with s={s:g}" if s is not None else f"the {getattr(kernel, 'name', kernel)} kernel"


# ============================================================================ modes
def _full_modes(grid: Torus, half: np.ndarray, mask=None):
    """All wavevectors k ∈ Z^d held by a Hermitian array on ``grid``'s rfft half layout, with values.

    Entries with k_last > 0 also stand for −k (value conjugated); entries with k_last = 0 hold both
    k and −k already. Nyquist entries (k_j = ±n_j/2) and entries outside ``mask`` are dropped.

    Returns
    -------
    k : ndarray of int64, shape (M, d)
    values : ndarray, shape (M,)
    """
    ks = np.meshgrid(*[np.rint(k.ravel()).astype(np.int64) for k in grid.wavenumbers()], indexing="ij")
    keep = np.ones(grid.spectral_shape, dtype=bool)
    for k, n in zip(ks, grid.shape):
        keep &= 2 * np.abs(k) < n
    if mask is not None:
        keep &= mask
    k = np.stack([kj[keep] for kj in ks], axis=1)
    v = np.asarray(half)[keep]
    pos = k[:, -1] > 0
    return np.concatenate([k, -k[pos]]), np.concatenate([v, np.conj(v[pos])])


def _kernel_at(kernel, d: int, k: np.ndarray) -> np.ndarray:
    """K̂ at the integer wavevectors ``k`` (shape (M, d)), from ``kernel.weights`` on a grid
    large enough to hold them (2K+2 points per axis, K = max |k_j|), using K̂_{−k} = K̂_k.

    A kernel given by its weights on one grid only (a ``values`` attribute, as
    :class:`~sobolev_flow.kernels.FourierKernel`) is taken on that grid, as zero beyond it.
    """
    if len(k) == 0:
        return np.zeros(0)
    K = int(np.max(np.abs(k)))
    grid = Torus((max(8, 2 * K + 2),) * d)
    try:
        weights = np.asarray(kernel.weights(grid), dtype=float)
    except ValueError as exc:
        values = getattr(kernel, "values", None)
        if values is None or np.ndim(values) != d:
            raise ValueError(f"{_kernel_label(kernel)}: no weights on the {grid.shape} grid that modes up to "
                             f"|k_j| <= {K} need ({exc})") from None
        shape = tuple(np.shape(values)[:-1]) + (2 * (np.shape(values)[-1] - 1),)
        grid = Torus(shape)
        weights = np.asarray(kernel.weights(grid), dtype=float)
    inside = np.all(2 * np.abs(k) < np.array(grid.shape), axis=1)
    flip = k[:, -1] < 0
    kk = np.where(flip[:, None], -k, k)
    out = np.zeros(len(k))
    idx = tuple(kk[inside, j] % grid.shape[j] for j in range(d))
    out[inside] = weights[idx]
    return out


class _Target:
    """The target's nonzero Fourier modes on Z^d (k of shape (M, d), nu of shape (M,)) and the
    kernel there, with ψ_ν = K ⋆ ν evaluated at points by a direct sum."""

    def __init__(self, target, kernel, d: int):
        if target is None:
            target = 1.0
        if isinstance(target, Real) and not isinstance(target, bool):
            mass = float(target)
            if not (math.isfinite(mass) and mass >= 0):
                raise ValueError(f"target={target!r}: expected a finite mass >= 0")
            self.k = np.zeros((1, d), dtype=np.int64)
            self.nu = np.array([mass], dtype=complex)
            self.uniform = True
        else:
            try:
                grid, nu_hat = target
            except (TypeError, ValueError):
                raise ValueError(f"target={target!r}: expected None, a mass, or a pair (grid, nu_hat)") from None
            if not isinstance(grid, Torus) or grid.d != d:
                raise ValueError(f"target: expected a Torus of dimension d={d} with the coefficients, got {grid!r}")
            nu_hat = np.asarray(nu_hat)
            if nu_hat.shape != grid.spectral_shape or nu_hat.dtype.kind not in "biufc":
                raise ValueError(f"target: coefficients of shape {nu_hat.shape} and dtype {nu_hat.dtype}, expected "
                                 f"numbers of the grid's spectral shape {grid.spectral_shape}")
            if not np.all(np.isfinite(nu_hat)):
                raise ValueError("target: the coefficients must be finite")
            k, nu = _full_modes(grid, nu_hat.astype(complex), grid.resolved)
            nz = nu != 0
            self.k, self.nu = k[nz], nu[nz]
            if len(self.k) == 0:
                self.k, self.nu = np.zeros((1, d), dtype=np.int64), np.zeros(1, dtype=complex)
            self.uniform = not np.any(self.k)
        self.band = int(np.max(np.abs(self.k)))
        self.khat = _kernel_at(kernel, d, self.k)
        self.psi_hat = self.khat * self.nu            # ψ_ν's coefficients
        self.energy = 0.5 * float(np.sum(self.khat * np.abs(self.nu) ** 2))   # ½ Σ K̂ |ν_k|²
        self.mass = float(np.real(np.sum(self.nu[~np.any(self.k, axis=1)])))
        active = self.psi_hat != 0
        self._k_active, self._c_active = self.k[active], self.psi_hat[active]

    @property
    def trivial(self) -> bool:
        """True when ψ_ν = K ⋆ ν is identically 0."""
        return len(self._k_active) == 0

    def potential(self, y, need_psi):
        """ψ_ν(y_i) (or None) and ∇ψ_ν(y_i) by a direct sum over ν's modes, in blocks."""
        return _trig_sum(self._k_active, self._c_active, y, need_psi)


def _trig_sum(k, c, y, need_psi):
    """Re Σ_m c_m e^{ik_m·y} and its gradient at the points y (N, d), in blocks of rows."""
    N, d = y.shape
    psi = np.zeros(N) if need_psi else None
    grad = np.zeros((N, d))
    if len(k) == 0 or N == 0:
        return psi, grad
    kf = k.astype(float)
    ikc = (1j * kf) * c[:, None]                 # (M, d): i k c
    block = max(1, _BLOCK_BYTES // (16 * len(k)))
    for start in range(0, N, block):
        sl = slice(start, start + block)
        e = np.exp(1j * (y[sl] @ kf.T))           # (B, M)
        grad[sl] = (e @ ikc).real
        if need_psi:
            psi[sl] = (e @ c).real
    return psi, grad


# ============================================================================ base class
class _Evaluator:
    """Validation and the particle input shared by the evaluators."""

    name = ""
    exact = False
    modes = None

    def __init__(self, kernel, d, target, tol, threads):
        self.kernel = kernel
        self.d = _check_d(d)
        self.tol = _check_tol(tol)
        self.threads = _check_threads(threads)
        self._target = _Target(target, kernel, self.d)

    def _particles(self, x, w, low):
        """Positions as an (N, d) float array and the weights.

        Positions in [−π, 2π) (which covers both [0, 2π) and [−π, π)) are used as they are
        (``x`` itself when C-contiguous): every evaluator needs only some representative of each
        point mod 2π. Others are wrapped into [low, low + 2π) (a new array).
        """
        x = np.asarray(x, dtype=float)
        w = np.asarray(w, dtype=float)
        if x.ndim != 2 or x.shape[1] != self.d:
            raise ValueError(f"x: expected positions of shape (N, {self.d}), got {x.shape}")
        if w.shape != (x.shape[0],):
            raise ValueError(f"w: expected weights of shape ({x.shape[0]},), got {w.shape}")
        if x.size == 0:
            return np.zeros((0, self.d)), w
        bounds = (float(x.min()), float(x.max()), float(w.min()), float(w.max()))   # NaN propagates
        if not all(math.isfinite(b) for b in bounds):
            raise ValueError("x, w: particle positions and weights must be finite")
        if bounds[0] >= -math.pi and bounds[1] < _TWO_PI:
            return np.ascontiguousarray(x), w
        return _wrap(x, low), w

    def _minus_target(self, y, psi, grad, need_psi):
        """Subtract the target's part K ⋆ ν (and its gradient) at the wrapped positions ``y``."""
        if not self._target.trivial:
            tpsi, tgrad = self._target.potential(y, need_psi)
            grad -= tgrad
            if need_psi:
                psi -= tpsi
        return psi, grad

    def __repr__(self):
        return (f"{type(self).__name__}({_kernel_label(self.kernel)}, d={self.d}, modes={self.modes}, "
                f"exact={self.exact})")


def _wrap(x, low):
    """x − 2π floor((x − low)/2π) in [low, low + 2π), as a new array (clipped: rounding can leave
    it an ulp outside)."""
    y = x - low
    turns = np.floor(y * (1.0 / _TWO_PI))
    turns *= _TWO_PI
    y -= turns
    np.clip(y, 0.0, math.nextafter(_TWO_PI, 0.0), out=y)
    y += low
    return y


# ============================================================================ NUFFT back ends
class _Ducc0Backend:
    """ducc0.nufft: a plan binds the points, so one is built per call, for both transforms
    (there is no separate FFT planning)."""

    name = "ducc0"

    def __init__(self, shape, tol, threads):
        try:
            import ducc0.nufft
        except ImportError:
            raise ImportError(f"the ducc0 back end of particles.evaluator='nufft' needs ducc0: {_INSTALL}") from None
        self._nufft = ducc0.nufft
        best = ducc0.nufft.bestEpsilon(ndim=len(shape), singleprec=False)
        self.tol = max(tol, 2.0 * best)
        self.shape, self.threads = tuple(shape), threads
        self._plan = None

    def set_points(self, y):
        self._plan = self._nufft.plan(nu2u=True, coord=y, grid_shape=self.shape, epsilon=self.tol,
                                      nthreads=self.threads)

    def type1(self, strengths, out):
        """out_k = Σ_i c_i e^{−ik·y_i}, k in the centred box."""
        self._plan.nu2u(points=strengths, forward=True, out=out)

    def type2(self, coeffs, out):
        """out[t, i] = Σ_k coeffs[t, k] e^{+ik·y_i}."""
        self._plan.u2nu(grid=coeffs, forward=False, out=out)


class _FinufftBackend:
    """finufft: plans built once (at construction), the points set in each call. The type-2
    transforms reuse the type-1 plan (``execute_adjoint``, finufft ≥ 2.4: one sort of the points);
    older versions get type-2 plans of their own."""

    name = "finufft"

    def __init__(self, shape, tol, threads, use_adjoint=None):
        try:
            import finufft
        except ImportError:
            raise ImportError(f"the finufft back end of particles.evaluator='nufft' needs finufft: {_INSTALL}") from None
        self._finufft = finufft
        self.shape, self.tol, self.threads = tuple(shape), tol, threads
        self._type1 = finufft.Plan(1, self.shape, n_trans=1, eps=tol, isign=-1, nthreads=threads)
        if use_adjoint is None:
            use_adjoint = hasattr(self._type1, "execute_adjoint")
        self.use_adjoint = use_adjoint
        self._type2 = {}        # n_trans -> [plan, points set?]
        self._xt = None

    def set_points(self, y):
        self._xt = np.ascontiguousarray(y.T)      # finufft keeps references to these arrays
        self._type1.setpts(*self._xt)
        for entry in self._type2.values():
            entry[1] = False

    def type1(self, strengths, out):
        self._type1.execute(strengths, out=out)

    def type2(self, coeffs, out):
        if self.use_adjoint:
            for t in range(len(coeffs)):
                self._type1.execute_adjoint(coeffs[t], out=out[t])
            return
        n = len(coeffs)
        if n not in self._type2:
            plan = self._finufft.Plan(2, self.shape, n_trans=n, eps=self.tol, isign=1, nthreads=self.threads)
            self._type2[n] = [plan, False]
        entry = self._type2[n]
        if not entry[1]:
            entry[0].setpts(*self._xt)
            entry[1] = True
        entry[0].execute(coeffs if n > 1 else coeffs[0], out=out if n > 1 else out[0])


def _installed(module):
    import importlib.util
    return importlib.util.find_spec(module) is not None


def _make_backend(backend, shape, tol, threads):
    if backend == "auto":
        backend = "ducc0" if _installed("ducc0") or not _installed("finufft") else "finufft"
    if backend == "ducc0":
        return _Ducc0Backend(shape, tol, threads)
    if backend == "finufft":
        return _FinufftBackend(shape, tol, threads)
    raise ValueError(f"backend={backend!r}: unknown NUFFT back end;"
                     f"{_did_you_mean(str(backend), BACKENDS)} valid: {', '.join(BACKENDS)}")


# ============================================================================ NUFFT evaluator
class NufftEvaluator(_Evaluator):
    """ψ and ∇ψ at the particles from the Fourier modes |k_j| ≤ K by two non-uniform FFTs.

    1. type 1: μ_k = Σ_i w_i e^{−ik·x_i} on the box |k_j| ≤ K ((2K+1)^d modes, centred order);
    2. ψ_k = K̂_k (μ_k − ν_k) on the box (ν's modes outside it are dropped);
    3. type 2: Σ_k c_k e^{ik·x_i} at the particles, with the real outputs packed in pairs into
       complex transforms: c = ψ_k(ik_1 − k_2) gives ∂_1ψ + i∂_2ψ, c = iψ_k(k_3 + 1) gives
       ∂_3ψ + iψ, so one transform in d = 1 and d = 2 (two with ``need_psi`` in d = 2), two in
       d = 3.

    The result is that of the truncated kernel K_K(z) = Σ_{|k_j|≤K} K̂_k e^{ik·z}, to the NUFFT
    tolerance ``tol`` (relative to Σ|c_k| in each transform); the truncation error is not
    controlled here (``exact`` is False). For the Sobolev kernel in 1-D, the RMS truncation
    error of ∇ψ at N random particles behaves like K^{−(2s−3/2)} (the modes of μ_N beyond K are
    random, of size N^{−1/2}: order 1/2 for s = 1, and pairs closer than 1/K keep it so at any
    K); like K^{−(2s−1)} (order 1 for s = 1) only for particles separated by ≳ 1/N and K ≫ N.
    The largest error sits at the closest pairs and, for s = 1, does not go to 0 until K exceeds
    their inverse distance (G_1' jumps at 0). See ``benchmarks/particles.py``.

    Parameters
    ----------
    kernel
        A kernel object (``weights(grid)`` on the rfft half layout); K̂ on the box is taken from
        ``kernel.weights(Torus((2K+2,)*d))`` (at least 8 points per axis) by Hermitian symmetry.
    d : int
        Dimension, 1, 2 or 3.
    modes : int
        The cut-off K ≥ 1.
    target : None, float or (Torus, ndarray)
        The target ν (see the module docstring).
    tol : float
        NUFFT tolerance (ducc0: at least twice its best attainable accuracy).
    threads : int
        Threads of the NUFFT.
    backend : {"auto", "ducc0", "finufft"}
        "auto" picks ducc0 when installed, else finufft. ducc0 was 1.8–1.9× faster for one call with
        N = 10^6, d = 2, K = 128, tol = 1e-9 on 2 threads (107–110 vs 192–211 ms;
        ``benchmarks/particles.py``):
        its spreading and interpolation are faster, and one plan (one sort of the points) serves
        both transforms.

    Raises
    ------
    ValueError
        For an invalid ``modes``, ``tol``, ``threads``, target or back end.
    ImportError
        If the back end is not installed (``pip install "sobolev_flow[particles]"``).
    """

    name = "nufft"
    exact = False

    def __init__(self, kernel, d, *, modes=None, target=None, tol=1e-9, threads=1, backend="auto"):
        super().__init__(kernel, d, target, tol, threads)
        d = self.d
        if modes is None:
            raise ValueError("particles.modes=None: the nufft evaluator needs a mode cut-off K, an integer >= 1")
        self.modes = K = _check_modes(modes, d)
        n = 2 * K + 1
        self.shape = (n,) * d
        self._backend = _make_backend(backend, self.shape, self.tol, self.threads)
        self.backend = self._backend.name
        kv = np.arange(-K, K + 1)
        box = np.stack([g.ravel() for g in np.meshgrid(*([kv] * d), indexing="ij")], axis=1)
        self._khat = _kernel_at(kernel, d, box).reshape(self.shape)
        # ν on the box, as flat indices and values
        t = self._target
        inside = np.all(np.abs(t.k) <= K, axis=1)
        self._nu_index = np.ravel_multi_index(tuple((t.k[inside] + K).T), self.shape)
        self._nu_values = t.nu[inside]
        # multipliers of ψ_k packing the real outputs into complex transforms (broadcastable, small)

        def view(j):
            return kv.reshape([n if i == j else 1 for i in range(d)]).astype(float)

        if d == 1:
            self._mult = [1j * (view(0) + 1.0)]                     # ∂ψ + iψ
        elif d == 2:
            self._mult = [1j * view(0) - view(1)]                   # ∂_1ψ + i∂_2ψ  (+ ψ when needed)
        else:
            self._mult = [1j * view(0) - view(1), 1j * (view(2) + 1.0)]   # ∂_1ψ + i∂_2ψ, ∂_3ψ + iψ
        self._mu = np.zeros(self.shape, dtype=complex)
        self._coeffs = np.zeros((2 if d > 1 else 1,) + self.shape, dtype=complex)
        self._n = -1

    def _buffers(self, N):
        if N != self._n:
            self._strengths = np.zeros(N, dtype=complex)
            self._out = np.zeros((2 if self.d > 1 else 1, N), dtype=complex)
            self._n = N

    def _residual(self, y, w):
        """μ_k − ν_k on the box, in the buffer ``self._mu``; sets the points of the back end."""
        self._buffers(len(w))
        self._backend.set_points(y)
        self._strengths.real = w
        self._backend.type1(self._strengths, self._mu)
        self._mu.reshape(-1)[self._nu_index] -= self._nu_values
        return self._mu

    def potential(self, x, w, need_psi=False):
        """ψ(x_i) (if ``need_psi``, else None) and ∇ψ(x_i), shapes (N,) and (N, d)."""
        y, w = self._particles(x, w, -math.pi)
        N, d = y.shape
        if N == 0:
            return (np.zeros(0) if need_psi else None), np.zeros((0, d))
        psi_k = self._residual(y, w)
        psi_k *= self._khat
        # pack the outputs: coefficient arrays t = 0 (and 1), see the class docstring
        ntrans = 1 if d == 1 or (d == 2 and not need_psi) else 2
        coeffs = self._coeffs[:ntrans]
        np.multiply(psi_k, self._mult[0], out=coeffs[0])
        if ntrans == 2:
            if d == 2:
                coeffs[1] = psi_k
            else:
                np.multiply(psi_k, self._mult[1], out=coeffs[1])
        out = self._out[:ntrans]
        self._backend.type2(coeffs, out)
        grad = np.empty((N, d))
        psi = None
        if d == 1:
            grad[:, 0] = out[0].real
            if need_psi:
                psi = out[0].imag.copy()
        else:
            grad[:, 0] = out[0].real
            grad[:, 1] = out[0].imag
            if d == 3:
                grad[:, 2] = out[1].real
                if need_psi:
                    psi = out[1].imag.copy()
            elif need_psi:
                psi = out[1].real.copy()
        return psi, grad

    def energy(self, x, w):
        """E_K = ½ Σ_{|k_j|≤K} K̂_k |μ_k − ν_k|²: the energy truncated to the mode box (ν's modes
        outside the box are dropped too), to the NUFFT tolerance."""
        y, w = self._particles(x, w, -math.pi)
        if len(w) == 0:
            r = np.zeros(self.shape, dtype=complex)
            r.reshape(-1)[self._nu_index] -= self._nu_values
        else:
            r = self._residual(y, w)
        return 0.5 * float(np.sum(self._khat * (r.real**2 + r.imag**2)))


# ============================================================================ direct evaluator
class DirectEvaluator(_Evaluator):
    """The reference: exact sums, O(N²) or O(N·M).

    Three methods, chosen at construction:

    - d = 1, Sobolev kernel (s > 1/2), ``modes=None``: pairwise sums with the closed forms of
      G_s and G_s' (:func:`sobolev_green_1d`; Bernoulli polynomials for integer s, a convergent
      power series for non-integer s), exact to rounding; O(N²) work in blocks;
    - ``modes=K`` given: the Fourier series of the truncated kernel over the box |k_j| ≤ K,
      summed directly (dense matrices e^{ik·x}, O(N·M) with M = (2K+1)^d, in blocks): the same
      truncation as :class:`NufftEvaluator` with ``modes=K``, without its NUFFT error
      (``exact`` is False);
    - otherwise (d ≥ 2, or another kernel): the Fourier series summed directly over the box
      |k_j| ≤ K with K the smallest cut-off for which a bound of the gradient series' tail is
      below ``tol`` relative:

          T(K) = Σ_{|k|_∞>K} |k| K̂_k ≤ tol · A,   A = Σ_k |k| K̂_k,

      so |∇ψ − ∇ψ_K| ≤ ‖w‖₁ T(K) ≤ tol ‖w‖₁ A, where ‖w‖₁ A bounds |∇ψ_μ| (ν's modes are all
      kept: K is at least ν's band; ψ's tail Σ K̂_k is smaller still). For the Sobolev kernel
      T(K) ≤ 2d (2 + 1/K)^{d−1} K^{d−p}/(p − d) with p = 2s − 1, which needs s > (d+1)/2 (the
      gradient series converges absolutely); for the Gaussian kernel the bound sums shells
      |k|_∞ = m with at most 2d(2m+1)^{d−1} points and |k| K̂_k ≤ sup_{r≥m} r K̂(r); for other
      kernels K is doubled until the box between K/2 and K adds less than ``tol`` · A (a
      heuristic, not a bound). A is replaced by its partial sum over |k_j| ≤ 8 (a lower bound).
      A ValueError is raised if the cut-off needs more memory than the machine has (about
      80 bytes per mode) or the series does not converge absolutely; the time, O(N·M), is the
      caller's to judge.

    The target's contribution ψ_ν = K ⋆ ν is a direct sum over its (band-limited) modes.
    ``threads`` is accepted for the common interface and not used.
    """

    name = "direct"

    def __init__(self, kernel, d, *, modes=None, target=None, tol=1e-9, threads=1):
        super().__init__(kernel, d, target, tol, threads)
        s = _sobolev_order(kernel)
        self._green = None
        if modes is not None:
            K = _check_modes(modes, self.d)
            self.exact = False
        elif self.d == 1 and s is not None:
            if not s > 0.5:
                raise ValueError(f"particles.evaluator='direct': the 1-D Sobolev kernel is unbounded for "
                                 f"s={s:g} <= 1/2; use particles.evaluator='nufft' (the kernel truncated to "
                                 f"particles.modes)")
            self._green = _Green1d(s)
            self.exact = True
            self.modes = None
            return
        else:
            K = max(_cutoff(kernel, self.d, self.tol), self._target.band)
            self.exact = True
        self.modes = K
        kv = np.arange(-K, K + 1)
        self._kv = kv.astype(float)
        self.shape = (2 * K + 1,) * self.d
        box = np.stack([g.ravel() for g in np.meshgrid(*([kv] * self.d), indexing="ij")], axis=1)
        self._k = box.astype(float)
        self._khat = _kernel_at(kernel, self.d, box)
        t = self._target
        inside = np.all(np.abs(t.k) <= K, axis=1)
        self._nu_index = np.ravel_multi_index(tuple((t.k[inside] + K).T), self.shape)
        self._nu_values = t.nu[inside]

    # ------------------------------------------------------------------ Fourier sums
    def _phases(self, yb):
        """e^{−ik·y} for a block of points, shape (B, M), from per-axis factors."""
        e = np.exp(-1j * yb[:, 0:1] * self._kv)
        for j in range(1, self.d):
            f = np.exp(-1j * yb[:, j:j + 1] * self._kv)
            e = (e[:, :, None] * f[:, None, :]).reshape(len(yb), -1)
        return e

    def _block(self):
        return max(1, _BLOCK_BYTES // (16 * len(self._k)))

    def _residual(self, y, w):
        mu = np.zeros(len(self._k), dtype=complex)
        B = self._block()
        for start in range(0, len(w), B):
            sl = slice(start, start + B)
            mu += w[sl] @ self._phases(y[sl])
        mu[self._nu_index] -= self._nu_values
        return mu

    def _fourier_potential(self, y, w, need_psi):
        psi_k = self._residual(y, w) * self._khat
        # Re Σ c_k e^{ik·x} = Re Σ conj(c_k) e^{−ik·x}
        cols = [np.conj(1j * self._k[:, j] * psi_k) for j in range(self.d)]
        if need_psi:
            cols.append(np.conj(psi_k))
        c = np.stack(cols, axis=1)
        out = np.empty((len(w), len(cols)))
        B = self._block()
        for start in range(0, len(w), B):
            sl = slice(start, start + B)
            out[sl] = (self._phases(y[sl]) @ c).real
        return (out[:, self.d].copy() if need_psi else None), np.ascontiguousarray(out[:, :self.d])

    # ------------------------------------------------------------------ closed forms (1-D)
    def _pairwise(self, y, w, need_psi):
        N = len(w)
        x = y[:, 0]
        psi = np.empty(N) if need_psi else None
        grad = np.empty((N, 1))
        B = max(1, _BLOCK_BYTES // (8 * max(N, 1)) // 4)
        for start in range(0, N, B):
            sl = slice(start, start + B)
            g, dg = self._green(x[sl, None] - x[None, :], need_g=need_psi)
            grad[sl, 0] = dg @ w
            if need_psi:
                psi[sl] = g @ w
        return self._minus_target(y, psi, grad, need_psi)

    # ------------------------------------------------------------------ interface
    def potential(self, x, w, need_psi=False):
        """ψ(x_i) (if ``need_psi``, else None) and ∇ψ(x_i), shapes (N,) and (N, d)."""
        y, w = self._particles(x, w, 0.0)
        if self._green is not None:
            return self._pairwise(y, w, need_psi)
        return self._fourier_potential(y, w, need_psi)

    def energy(self, x, w):
        """E = ½ Σ_k K̂_k |μ_k − ν_k|², exact to rounding (closed forms: as
        ½ Σ_i w_i (ψ(x_i) − ψ_ν(x_i)) + ½ Σ_k K̂_k |ν_k|²), to ``tol`` (automatic cut-off), or of
        the truncated kernel (``modes`` given)."""
        y, w = self._particles(x, w, 0.0)
        if self._green is None:
            r = self._residual(y, w)
            return 0.5 * float(np.sum(self._khat * (r.real**2 + r.imag**2)))
        return _energy_from_psi(self, y, w)


def _energy_from_psi(evaluator, y, w):
    """E = ½ Σ_i w_i ψ(x_i) − ½ Σ_i w_i ψ_ν(x_i) + ½ Σ_k K̂_k |ν_k|², with ψ = K⋆(μ − ν)."""
    t = evaluator._target
    if len(w) == 0:
        return t.energy
    psi, _ = evaluator.potential(y, w, need_psi=True)
    value = 0.5 * float(w @ psi) + t.energy
    if not t.trivial:
        tpsi, _ = t.potential(y, True)
        value -= 0.5 * float(w @ tpsi)
    return value


def _cutoff(kernel, d: int, tol: float) -> int:
    """The smallest K with T(K) ≤ tol·A (see :class:`DirectEvaluator`), checked against memory."""
    label = _kernel_label(kernel)
    have = _physical_memory()

    def too_big():
        raise ValueError(f"particles.evaluator='direct': {label} in d={d} needs modes beyond |k_j| <= {kmax} "
                         f"for the gradient's tail below tol={tol:g}, and a larger box does not fit in the "
                         f"{have / 1e9:.3g} GB of memory (~{_BYTES_PER_MODE} bytes per mode); raise "
                         f"particles.tol or use particles.evaluator='nufft'")

    kmax = int(((have / _BYTES_PER_MODE) ** (1.0 / d) - 1) / 2)     # the largest box that fits
    small = np.stack([g.ravel() for g in np.meshgrid(*([np.arange(-8, 9)] * d), indexing="ij")], axis=1)
    A = float(np.sum(np.linalg.norm(small, axis=1) * _kernel_at(kernel, d, small)))
    if A == 0:
        return 1
    s = _sobolev_order(kernel)
    name = getattr(kernel, "name", None)
    if s is not None:
        p = 2 * s - 1
        if not p > d:
            raise ValueError(f"particles.evaluator='direct': the gradient's Fourier series of {label} does not "
                             f"converge absolutely in d={d} (needs s > {(d + 1) / 2:g}); use "
                             f"particles.evaluator='nufft' (the kernel truncated to particles.modes)")

        def tail(K):
            return 2 * d * (2 + 1 / K) ** (d - 1) * K ** (d - p) / (p - d)
    elif name == "gaussian" and hasattr(kernel, "sigma"):
        sigma = float(kernel.sigma)
        c = (sigma / math.sqrt(_TWO_PI)) ** d

        def tail(K):
            m = np.arange(K + 1, K + 2 + int(math.sqrt(1500.0) / sigma), dtype=float)
            r = np.maximum(m, 1.0 / sigma)
            return float(np.sum(2 * d * (2 * m + 1) ** (d - 1) * c * r * np.exp(-0.5 * sigma**2 * r**2)))
    else:
        K, previous = 8, A
        while True:
            K2 = 2 * K
            if K2 > kmax:
                too_big()
            box = np.stack([g.ravel() for g in np.meshgrid(*([np.arange(-K2, K2 + 1)] * d), indexing="ij")], axis=1)
            current = float(np.sum(np.linalg.norm(box, axis=1) * _kernel_at(kernel, d, box)))
            if current - previous <= tol * current:
                return K
            K, previous = K2, current
    # smallest K with tail(K) <= tol*A: doubling, then bisection (tail decreases with K)
    hi = 1
    while tail(hi) > tol * A:
        if hi > kmax:
            too_big()
        hi *= 2
    lo = max(1, hi // 2)
    while lo < hi:
        mid = (lo + hi) // 2
        if tail(mid) <= tol * A:
            hi = mid
        else:
            lo = mid + 1
    if hi > kmax:
        too_big()
    return hi


# ============================================================================ sorted evaluator
class SortedEvaluator(_Evaluator):
    """Exact O(N log N) evaluation for d = 1 and the Sobolev kernel with s = 1.

    G_1(z) = z²/2 − πz + π²/3 and G_1'(z) = z − π on [0, 2π) (z = (x_i − x_j) mod 2π). After
    sorting the particles (positions y_i, all in one interval of length 2π, e.g. [0, 2π) or
    [−π, π): then (y_i − y_j) mod 2π is y_i − y_j or y_i − y_j + 2π according to their order),
    with W, S1 = Σ w_j y_j, S2 = Σ w_j y_j² and the
    same sums over the particles strictly before (L) and strictly after (R) y_i (prefix sums):

        ∂ψ_μ(x_i) = W y_i − S1 − π (W_L − W_R),
        ψ_μ(x_i)  = ½ (W y_i² − 2 y_i S1 + S2) − π (y_i W_L − S1_L) + π (y_i W_R − S1_R) + π²/3 · W,

    particles at y_i itself (j = i and ties) contributing 0 to ∂ψ (the principal value) and
    G_1(0) = π²/3 to ψ. A non-uniform target adds −ψ_ν(x_i), −∂ψ_ν(x_i) by a direct sum over
    its modes (O(N·M_ν)); a uniform one adds nothing (K̂_0 = 0). Sorting costs O(N log N), the rest
    O(N); the evaluator keeps the last permutation, so that in a time loop, where the particles
    keep their order, sorting takes about O(N) (see ``_sort``).

    Raises
    ------
    ValueError
        Unless d = 1 and the kernel is the Sobolev kernel with s = 1.
    """

    name = "sorted"
    exact = True
    modes = None

    def __init__(self, kernel, d, *, modes=None, target=None, tol=1e-9, threads=1):
        s = _sobolev_order(kernel)
        if d != 1:
            got = f"d={d}"
        elif s is None:
            got = f"{_kernel_label(kernel)}"
        elif s != 1:
            got = f"s={s:g}"
        else:
            got = None
        if got is not None:
            raise ValueError(f"particles.evaluator='sorted': needs d=1 and the Sobolev kernel with s=1, got {got}")
        super().__init__(kernel, d, target, tol, threads)
        self._order = None          # the sorting permutation of the last call

    def potential(self, x, w, need_psi=False):
        """ψ(x_i) (if ``need_psi``, else None) and ∇ψ(x_i), shapes (N,) and (N, 1)."""
        y, w = self._particles(x, w, -math.pi)
        if len(w) and float(y.max()) - float(y.min()) >= _TWO_PI:
            y = _wrap(y, -math.pi)              # the sums below need all points in one period
        N = len(w)
        pi = math.pi
        order, ys = self._sort(y[:, 0])
        ws = w[order]
        wy = ws * ys
        # prefix sums with a leading 0: P[j] = Σ_{i<j}
        PW = np.zeros(N + 1)
        np.cumsum(ws, out=PW[1:])
        PS = np.zeros(N + 1)
        np.cumsum(wy, out=PS[1:])
        # runs of equal positions: [lo, hi) holds the particles at ys[i]
        idx = np.arange(N)
        if N:
            new = np.empty(N, dtype=bool)
            new[0] = True
            np.not_equal(ys[1:], ys[:-1], out=new[1:])
            lo = np.maximum.accumulate(np.where(new, idx, 0))
            last = np.empty(N, dtype=bool)
            last[-1] = True
            last[:-1] = new[1:]
            hi = np.minimum.accumulate(np.where(last, idx + 1, N)[::-1])[::-1]
        else:
            lo = hi = idx
        W, S1 = PW[N], PS[N]
        WL, WR = PW[lo], W - PW[hi]
        grad_s = W * ys - S1 - pi * (WL - WR)
        grad = np.empty((N, 1))
        grad[order, 0] = grad_s
        psi = None
        if need_psi:
            PQ = np.zeros(N + 1)
            np.cumsum(wy * ys, out=PQ[1:])
            S2 = PQ[N]
            SL, SR = PS[lo], S1 - PS[hi]
            psi_s = (0.5 * (W * ys * ys - 2.0 * ys * S1 + S2) - pi * (ys * WL - SL) + pi * (ys * WR - SR)
                     + pi * pi / 3.0 * W)
            psi = np.empty(N)
            psi[order] = psi_s
        return self._minus_target(y, psi, grad, need_psi)

    def _sort(self, y):
        """The sorting permutation of ``y`` and the sorted values.

        Particles move little between calls, and in 1-D they keep their order: the permutation of
        the previous call, applied first, leaves ``y`` nearly sorted, which an adaptive merge sort
        (numpy's "stable") finishes in about O(N). Otherwise (first call, another N, or more than
        N/16 descents left) a full quicksort.
        """
        N = len(y)
        prev = self._order
        if prev is not None and len(prev) == N:
            ys = y[prev]
            if np.count_nonzero(ys[1:] < ys[:-1]) <= N // 16:
                sub = np.argsort(ys, kind="stable")
                self._order = order = prev[sub]
                return order, ys[sub]
        self._order = order = np.argsort(y)
        return order, y[order]

    def energy(self, x, w):
        """E = ½ Σ_k |k|^{−2}|μ_k − ν_k|², exact to rounding, as
        ½ Σ_i w_i (ψ(x_i) − ψ_ν(x_i)) + ½ Σ_k K̂_k |ν_k|²."""
        y, w = self._particles(x, w, 0.0)
        return _energy_from_psi(self, y, w)


# ============================================================================ factory
def make_evaluator(name, kernel, d, modes=None, target=None, tol=1e-9, threads=1, *, backend="auto"):
    """The evaluator ``name`` for ``kernel`` on T^d, built once.

    Parameters
    ----------
    name : {"auto", "nufft", "direct", "sorted"}
        "auto": "sorted" when d = 1 and the kernel is the Sobolev kernel with s = 1 (exact,
        O(N log N)), else "nufft".
    kernel
        A kernel object of :mod:`sobolev_flow.kernels`.
    d : int
        Dimension, 1, 2 or 3.
    modes : int or None
        Mode cut-off K (|k_j| ≤ K) of "nufft", which requires it. "direct" and "sorted" are exact
        and do not use it (``DirectEvaluator(..., modes=K)`` sums the truncated kernel, for
        comparisons with "nufft"); it is validated all the same.
    target : None, float or (Torus, ndarray)
        The target ν (see the module docstring).
    tol : float
        NUFFT tolerance, or the relative tail bound of the direct Fourier sums.
    threads : int
        Threads of the NUFFT.
    backend : {"auto", "ducc0", "finufft"}
        NUFFT back end (nufft only).

    Raises
    ------
    ValueError
        One line naming ``particles.evaluator`` or ``particles.modes`` and the value: an unknown
        name, a cut-off that is not an integer ≥ 1 or whose box does not fit in memory, or an
        evaluator that does not apply to the kernel or dimension.

    Examples
    --------
    >>> from sobolev_flow.kernels import SobolevKernel
    >>> make_evaluator("auto", SobolevKernel(1), 1).name
    'sorted'
    >>> make_evaluator("nuft", SobolevKernel(1), 1)
    Traceback (most recent call last):
    ...
    ValueError: particles.evaluator='nuft': unknown evaluator; did you mean 'nufft'? valid: auto, nufft, direct, sorted
    """
    if not isinstance(name, str):
        raise ValueError(f"particles.evaluator={name!r}: expected one of {', '.join(EVALUATORS)}")
    if name not in EVALUATORS:
        raise ValueError(f"particles.evaluator={name!r}: unknown evaluator;{_did_you_mean(name, EVALUATORS)} "
                         f"valid: {', '.join(EVALUATORS)}")
    d = _check_d(d)
    if modes is not None:
        modes = _check_modes(modes, d)
    if name == "auto":
        name = "sorted" if d == 1 and _sobolev_order(kernel) == 1 else "nufft"
    common = {"target": target, "tol": tol, "threads": threads}
    if name == "nufft":
        return NufftEvaluator(kernel, d, modes=modes, backend=backend, **common)
    if name == "direct":
        return DirectEvaluator(kernel, d, **common)
    return SortedEvaluator(kernel, d, **common)
