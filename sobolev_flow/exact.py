"""The exact solution of the 1-D flow with s = 1 and ν ≡ 1, for any positive initial density.

In one dimension with s = 1 the flow ∂t μ = ∂x(μ ∂x ψ), −∂x²ψ = μ − 1, is solvable in closed
form along its characteristics (the derivation is in the Notes of :func:`s1_density`):

    X(t, y) = e^{−t} y + λ (2π F0(y) + Ȳ − π),    λ = 1 − e^{−t},
    μ(t, X(t, y)) = μ0(y) / (e^{−t} + λ μ0(y)),
    E(t) = E(0) e^{−2t},

with F0(y) = (1/2π)∫_0^y μ0 the cumulative mass of μ0 in dm = dx/2π and Ȳ = (1/2π)∫_0^{2π} y μ0(y) dy
its centre of mass. An initial density given on a grid is taken to be its trigonometric
interpolant (the band-limited function with those grid values), for which F0, Ȳ and E(0)
are finite Fourier sums: the functions here are exact for that interpolant, up to rounding.

Functions
---------
:func:`s1_density`   μ(t) at given points (default: the grid of μ0)
:func:`s1_energy`    E(t) = E(0) e^{−2t}
:func:`s1_map`       the characteristics X(t, y)
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["s1_density", "s1_energy", "s1_map"]

#: Largest |∫ μ0 dm − 1| accepted: the closed form assumes a probability density.
MASS_TOLERANCE = 1e-10
#: Refinement factor of the positivity check of the interpolant between grid points.
_REFINE = 4
#: Complex entries per block of the direct Fourier sums (bounds the memory: 16 MiB).
_BLOCK = 1 << 20


# ============================================================================ input checks
def _check_mu0(mu0) -> np.ndarray:
    try:
        mu0 = np.asarray(mu0, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"mu0: expected a 1-D array of grid values, got {type(mu0).__name__}") from None
    if mu0.ndim != 1 or mu0.size < 2:
        raise ValueError(f"mu0: expected a 1-D array of at least 2 grid values, got shape {mu0.shape}")
    if not np.all(np.isfinite(mu0)):
        raise ValueError(f"mu0: non-finite value at index {int(np.argmin(np.isfinite(mu0)))}")
    if not np.all(mu0 > 0):
        i = int(np.argmin(mu0))
        raise ValueError(f"mu0: min {mu0[i]!r} at index {i}; the closed form needs a positive density")
    mass = float(np.mean(mu0))
    if abs(mass - 1.0) > MASS_TOLERANCE:
        raise ValueError(f"mu0: mass ∫ μ0 dm = {mass!r}; the closed form needs mass 1 (rescale with mu0 / mu0.mean())")
    return mu0


def _check_t(t) -> float:
    try:
        value = float(t)
    except (TypeError, ValueError):
        raise ValueError(f"t={t!r}: expected a number") from None
    if math.isnan(value) or value < 0:
        raise ValueError(f"t={t!r}: expected a time t >= 0")
    return value


# ============================================================================ the interpolant
class _Interpolant:
    """The trigonometric interpolant of μ0 and its cumulative mass, evaluated anywhere.

    μ0(y) = Re Σ_{k=0}^{N} w_k c_k e^{iky},  c_k = rfft(μ0)[k] / n,
    w_0 = 1, w_k = 2 for 0 < k < n/2, and w_{n/2} = 1 for even n (the Nyquist term is the
    cosine c_{n/2} cos(ny/2), i.e. c_{n/2}/2 at k = ±n/2: the real interpolant).
    """

    def __init__(self, mu0: np.ndarray):
        n = mu0.size
        c = np.fft.rfft(mu0) / n
        w = np.full(c.size, 2.0)
        w[0] = 1.0
        if n % 2 == 0:
            w[-1] = 1.0
        self.n = n
        self.c = c
        self.w = w
        self.mass = float(c[0].real)
        k = np.arange(1, c.size)
        # the periodic part of the antiderivative: P(y) = Re Σ_{k≥1} w_k c_k e^{iky} / (2π i k)
        self.p_coef = w[1:] * c[1:] / (2j * np.pi * k)
        self.mu_coef = w[1:] * c[1:]
        self.p0 = float(self.p_coef.real.sum())  # P(0)
        # off the grid, skip the trailing modes at rounding level (|c_k| ≤ ε c_0): smooth data
        # have decaying spectra, and those modes hold FFT round-off rather than data
        significant = np.flatnonzero(np.abs(c[1:]) > np.finfo(float).eps * abs(c[0]))
        self.kmax = int(significant[-1]) + 1 if significant.size else 0
        self.k = k[: self.kmax].astype(float)

    def centre(self) -> float:
        """Ȳ = (1/2π)∫_0^{2π} y μ0(y) dy = π c_0 + Σ_{k≥1} w_k Im(c_k)/k."""
        k = np.arange(1, self.c.size)
        return float(np.pi * self.c[0].real + np.sum(self.w[1:] * self.c[1:].imag / k))

    def energy(self) -> float:
        """E(0) = ½ Σ_{k≠0} |k|^{−2} |c_k|² (the Nyquist cosine split evenly over ±n/2)."""
        k = np.arange(1, self.c.size)
        return float(0.5 * np.sum(self.w[1:] ** 2 / 2 * np.abs(self.c[1:]) ** 2 / k**2))

    def cumulative_on_grid(self) -> np.ndarray:
        """F0 at the grid points 2πj/n (one inverse FFT)."""
        n = self.n
        y = 2 * np.pi * np.arange(n) / n
        coef = np.zeros(n // 2 + 1, dtype=complex)
        coef[1:] = self.p_coef / self.w[1:] * n  # irfft doubles 0 < k < n/2 and takes Re at n/2
        if n % 2 == 0:
            coef[-1] = self.p_coef[-1].real * n  # the Nyquist sine vanishes on the grid
        return self.mass * y / (2 * np.pi) + np.fft.irfft(coef, n) - self.p0

    def __call__(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(μ0(y), F0(y)) at arbitrary points y (1-D array), by direct Fourier sums."""
        mu = np.full(y.shape, self.c[0].real)
        big_p = np.full(y.shape, -self.p0)
        if self.kmax:
            step = max(1, _BLOCK // self.kmax)
            mu_coef, p_coef = self.mu_coef[: self.kmax], self.p_coef[: self.kmax]
            for start in range(0, y.size, step):
                block = slice(start, start + step)
                phase = np.exp(1j * np.multiply.outer(y[block], self.k))
                mu[block] += (phase @ mu_coef).real
                big_p[block] += (phase @ p_coef).real
        return mu, self.mass * y / (2 * np.pi) + big_p


def _refined(mu0: np.ndarray, factor: int) -> np.ndarray:
    """The trigonometric interpolant of μ0 on a grid ``factor`` times finer (zero padding)."""
    n = mu0.size
    c = np.fft.rfft(mu0)
    if n % 2 == 0:
        c[-1] *= 0.5  # the Nyquist cosine c cos(ny/2) is split over ±n/2, resolved on the finer grid
    m = factor * n
    padded = np.zeros(m // 2 + 1, dtype=complex)
    padded[: c.size] = c
    return np.fft.irfft(padded, m) * factor


# ============================================================================ public functions
def s1_map(mu0, t, y=None) -> np.ndarray:
    """The characteristics X(t, y) of the 1-D flow with s = 1, ν ≡ 1 (see :func:`s1_density`).

    Parameters
    ----------
    mu0 : array_like, shape (n,)
        Initial density at the grid points 2πj/n, positive, with ∫ μ0 dm = mean = 1.
    t : float
        Time, t ≥ 0.
    y : array_like, optional
        Lagrangian labels (initial positions); default the grid 2πj/n.

    Returns
    -------
    numpy.ndarray
        X(t, y) = e^{−t} y + (1 − e^{−t})(2π F0(y) + Ȳ − π), the shape of ``y``.
    """
    mu0 = _check_mu0(mu0)
    t = _check_t(t)
    f = _Interpolant(mu0)
    y = 2 * np.pi * np.arange(mu0.size) / mu0.size if y is None else np.asarray(y, dtype=float)
    _, big_f = f(y.ravel())
    return (math.exp(-t) * y.ravel() + -math.expm1(-t) * (2 * np.pi * big_f + f.centre() - np.pi)).reshape(y.shape)


def s1_density(mu0, t, x=None) -> np.ndarray:
    """Exact density at time t of the 1-D flow with s = 1 and ν ≡ 1.

    Parameters
    ----------
    mu0 : array_like, shape (n,)
        Initial density at the grid points y_j = 2πj/n, relative to dm = dx/2π: finite and
        positive, with mass ∫ μ0 dm (the grid mean) equal to 1 within 1e-10. It stands for
        its trigonometric interpolant, which must be positive between the grid points too.
    t : float
        Time, t ≥ 0 (``numpy.inf`` gives the limit ν ≡ 1).
    x : array_like, optional
        Points where μ(t) is wanted (any shape, any real values: μ is 2π-periodic).
        Default: the grid 2πj/n of ``mu0``.

    Returns
    -------
    numpy.ndarray
        μ(t, x), with the shape of ``x``.

    Raises
    ------
    ValueError
        ``mu0`` not a 1-D array of positive finite values of mass 1 (or its interpolant not
        positive), ``t`` negative or not a number; the message names the argument.

    Notes
    -----
    With ψ = (−∂²)^{−1}(μ − 1) the velocity v = −∂xψ satisfies ∂x v = μ − 1, so

        v(t, x) = 2π F(t, x) − x + c(t),   F(t, x) = (1/2π) ∫_0^x μ(t, z) dz,

    with c(t) fixed by periodicity. Along a characteristic, ∂t X = v(t, X), X(0, y) = y, the
    mass to its left is conserved: F(t, X(t, y)) − F(t, X(t, 0)) = F0(y). Hence

        ∂t X = 2π F0(y) + a(t) − X,

    where a(t) = 2π F(t, X(t, 0)) + c(t) does not depend on y. The momentum vanishes,
    ∫ μ v dx = −∫ (μ − 1) ∂xψ dx − ∫ ∂xψ dx = ∫ ∂x²ψ ∂xψ dx = 0, so the centre of mass
    M(t) = (1/2π) ∫ X(t, y) μ0(y) dy is conserved: M = Ȳ = (1/2π) ∫_0^{2π} y μ0(y) dy. Since
    (1/2π) ∫ 2π F0 μ0 dy = 2π ∫_0^1 F dF = π for mass 1, dM/dt = π + a − M = 0 gives a = Ȳ − π,
    and the linear equation integrates to

        X(t, y) = e^{−t} y + λ (2π F0(y) + Ȳ − π),    λ = 1 − e^{−t}.

    X(t, y + 2π) = X(t, y) + 2π and ∂y X = e^{−t} + λ μ0(y) > 0: X(t, ·) is an increasing
    bijection of the line commuting with 2π-shifts. Conservation of mass, μ(t, X) ∂y X = μ0(y),
    gives

        μ(t, X(t, y)) = μ0(y) / (e^{−t} + λ μ0(y)),

    the logistic law dμ/dt = −μ(μ − 1) along characteristics. For the interpolant
    μ0(y) = Re Σ_{k=0}^{n/2} w_k c_k e^{iky} (c_k = rfft(μ0)/n, w_0 = w_{n/2} = 1, else 2)

        F0(y) = c_0 y/(2π) + Re Σ_{k≥1} w_k c_k (e^{iky} − 1)/(2πik),
        Ȳ = π c_0 + Σ_{k≥1} w_k Im(c_k)/k   (= 2π − ∫_0^{2π} F0(y) dy for mass 1).

    For each point x the equation X(t, y) = x is solved for y by Newton's method, safeguarded
    by bisection within the bracket [y_j, y_{j+1}] of consecutive grid labels whose images
    (computed exactly by one FFT) enclose x, started from linear interpolation; μ0 and F0 at
    the off-grid iterates are evaluated by their Fourier sums.

    Examples
    --------
    >>> import numpy as np
    >>> y = 2 * np.pi * np.arange(64) / 64
    >>> mu0 = 1 + 0.5 * np.sin(y)
    >>> mu = s1_density(mu0, 1.0)
    >>> bool(abs(mu.mean() - 1) < 1e-13), bool(np.ptp(mu) < np.ptp(mu0))
    (True, True)
    >>> float(np.max(np.abs(s1_density(mu0, 0.0) - mu0))) < 1e-14
    True
    """
    mu0 = _check_mu0(mu0)
    t = _check_t(t)
    n = mu0.size
    refined = _refined(mu0, _REFINE)
    if not np.all(refined > 0):
        i = int(np.argmin(refined))
        raise ValueError(f"mu0: its trigonometric interpolant reaches {refined[i]:.3g} at y={2 * np.pi * i / refined.size:.6g} "
                         "between the grid points; the closed form needs it positive (refine the grid)")
    x_shape = (n,) if x is None else np.shape(x)
    x = 2 * np.pi * np.arange(n) / n if x is None else np.asarray(x, dtype=float).ravel()
    if not np.all(np.isfinite(x)):
        raise ValueError("x: expected finite points")
    f = _Interpolant(mu0)
    decay, lam = math.exp(-t), -math.expm1(-t)
    shift = lam * (f.centre() - np.pi)

    def chart(y, mu, big_f):
        return decay * y + lam * 2 * np.pi * big_f + shift, decay + lam * mu

    # images of the grid labels y_0 … y_n = 2π (exact: F0 on the grid by one FFT)
    labels = 2 * np.pi * np.arange(n + 1) / n
    grid_f = np.append(f.cumulative_on_grid(), 1.0)
    images = decay * labels + lam * 2 * np.pi * grid_f + shift
    images[-1] = images[0] + 2 * np.pi
    images = np.maximum.accumulate(images)  # monotone up to rounding
    # reduce x into [X(t, 0), X(t, 0) + 2π) and find the bracketing labels
    turns = np.floor((x - images[0]) / (2 * np.pi))
    xr = x - 2 * np.pi * turns
    j = np.clip(np.searchsorted(images, xr, side="right") - 1, 0, n - 1)
    lo, hi = labels[j], labels[j + 1]
    width = images[j + 1] - images[j]
    y = lo + (hi - lo) * np.divide(xr - images[j], width, out=np.full_like(xr, 0.5), where=width > 0)
    y = np.clip(y, lo, hi)

    active = np.arange(x.size)
    extra = np.zeros(x.size, dtype=int)  # Newton steps taken after the step fell below 1e-9
    for _ in range(200):
        if active.size == 0:
            break
        ya = y[active]
        mu, big_f = f(ya)
        value, slope = chart(ya, mu, big_f)
        g = value - xr[active]
        lo[active] = np.where(g <= 0, ya, lo[active])
        hi[active] = np.where(g >= 0, ya, hi[active])
        step = g / slope
        new = ya - step
        outside = ~((new > lo[active]) & (new < hi[active]))
        new = np.where(outside, 0.5 * (lo[active] + hi[active]), new)
        done = (g == 0) | (hi[active] - lo[active] <= 4 * np.finfo(float).eps * 2 * np.pi)
        y[active] = np.where(done, ya, new)
        small = (np.abs(step) < 1e-9) & ~outside
        extra[active] = np.where(small, extra[active] + 1, 0)
        active = active[~(done | (extra[active] >= 3))]
    if active.size:  # pragma: no cover - safeguarded Newton converges well within 200 steps
        raise RuntimeError(f"s1_density: Newton did not converge at {active.size} points")
    mu, _ = f(y)
    return (mu / (decay + lam * mu)).reshape(x_shape)


def s1_energy(mu0, t):
    """Energy E(t) = ½‖μ(t) − 1‖²_{Ḣ^{−1}} of the 1-D flow with s = 1, ν ≡ 1: E(0) e^{−2t}.

    Parameters
    ----------
    mu0 : array_like, shape (n,)
        Initial density on the grid 2πj/n (positive, mass 1), standing for its interpolant.
    t : float or array_like
        Times, t ≥ 0.

    Returns
    -------
    float or numpy.ndarray
        E(0) e^{−2t} with E(0) = ½ Σ_{k≠0} |k|^{−2} |c_k|² (the Nyquist cosine counted as
        c_{n/2}/2 at k = ±n/2), the shape of ``t``.

    Notes
    -----
    E = ½ Σ_{k≠0} |k|² |ψ_k|² = ½ ∫ v² dm with v = −∂xψ. In the notation of :func:`s1_density`,
    ∂t X = e^{−t} h(y) with the periodic h(y) = 2π F0(y) + Ȳ − π − y (the velocity at t = 0),
    so substituting x = X(t, y), dx = (e^{−t} + λ μ0) dy,

        E(t) = ½ (1/2π) ∫_0^{2π} e^{−2t} h² (e^{−t} + λ μ0) dy = e^{−2t} [E(0) + λ (1/4π) ∫ h² (μ0 − 1) dy],

    and the bracket's last term vanishes: h' = μ0 − 1, so ∫ h² h' dy = [h³/3] = 0 over a
    period. Hence E(t) = E(0) e^{−2t} for every initial density.

    Examples
    --------
    >>> import numpy as np
    >>> y = 2 * np.pi * np.arange(32) / 32
    >>> round(s1_energy(1 + 0.5 * np.sin(y), 0.0), 12)  # ½ · 2 · (1/4)² = 1/16
    0.0625
    """
    mu0 = _check_mu0(mu0)
    try:
        times = np.asarray(t, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"t={t!r}: expected a number or an array of numbers") from None
    if times.ndim == 0:
        _check_t(float(times))
    elif np.any(np.isnan(times)) or np.any(times < 0):
        bad = float(times[np.isnan(times) | (times < 0)][0])
        raise ValueError(f"t={bad!r}: expected times t >= 0")
    energy = _Interpolant(mu0).energy() * np.exp(-2 * times)
    return float(energy) if energy.ndim == 0 else energy
