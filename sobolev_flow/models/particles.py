"""Particles: the same flows for an empirical measure μ_N = Σ_i w_i δ_{x_i} on T^d.

With ψ = K ⋆ (μ_N − ν) (:mod:`sobolev_flow.evaluators` computes ψ and ∇ψ at the particles) the
Wasserstein flow of E(μ_N) = ½ Σ_k K̂_k |μ_k − ν_k|² moves the particles and, under the
Wasserstein–Fisher–Rao geometry, changes their weights:

    ẋ_i = −∇ψ(x_i),          ẇ_i = −α ψ(x_i) w_i      (α = 0: Wasserstein, weights fixed).

Weights are masses relative to dm = dx/(2π)^d: uniform weights w_i = m/N carry the mass m of the
target (m = 1 for ν ≡ 1). The self-interaction takes the symmetric (principal) value: the term
j = i contributes nothing to ∇ψ(x_i).

The state is an (N, d) array of positions, or (N, d + 1) with the relative weights r_i = N w_i / m0
(m0 the initial mass) in the last column under WFR, so that every entry is O(1) for the error
control. Positions are not wrapped while the run goes on (differences of two nearby states are
then small, whatever the torus), only for evaluation and output, where they lie in [0, 2π).
There is no linear part: the explicit schemes of the registry integrate the model.

Energy balance: dE/dt = −D, D = Σ_i w_i |∇ψ(x_i)|² + α Σ_i w_i ψ(x_i)², computed from ∂t u alone
(D = Σ w_i|ẋ_i|² + Σ ẇ_i²/(α w_i)), exact for the semi-discrete system. For a uniform target the
centre of mass Σ w_i x_i / Σ w_i of the unwrapped positions is conserved (∇G is odd).
"""

from __future__ import annotations

import logging
import math

import numpy as np

from ..grid import Torus
from ..kernels import SobolevKernel
from ..parallel import SERIAL
from .base import ArrayState, Monitor, Series
from .spectral import MASS_RTOL, check_density, describe_physics, kernel_weights, make_geometry

__all__ = ["ParticleModel", "quantiles", "lattice", "sample", "deposit", "INITIALISATIONS"]

log = logging.getLogger(__name__)

#: How particles are placed from μ0 (``particles.init``), besides a .npy path.
INITIALISATIONS = ("quantiles", "lattice", "sample")


class ParticleModel(ArrayState):
    """The KMD flow of N weighted particles (module docstring).

    Parameters
    ----------
    grid : Torus
        The grid of the target ν and of the density estimate written as a snapshot.
    positions : array_like, shape (N, d) or (N,) in 1-D
        Initial positions; finite; wrapped into [0, 2π).
    weights : array_like, shape (N,), optional
        Masses relative to dm, finite and ≥ 0 (default: the target's mass shared equally). Under the
        Wasserstein geometry they must add up to the target's mass (see ``normalize``).
    nu : array_like, optional
        Target density on the grid, finite and > 0; default ν ≡ 1.
    kernel, s, geometry
        As for :class:`~sobolev_flow.models.spectral.SpectralModel`.
    evaluator : str
        "auto", "nufft", "direct" or "sorted" (:func:`sobolev_flow.evaluators.make_evaluator`).
    modes : int, optional
        Mode cut-off K of the NUFFT evaluator (|k_j| ≤ K).
    tol : float
        NUFFT tolerance.
    normalize : bool
        Rescale the weights to the target's mass instead of rejecting a mismatch (Wasserstein).
    threads : int
        Threads of the evaluator.
    """

    name = "particles"

    def __init__(self, grid: Torus, positions, weights=None, nu=None, *, kernel=None, s=None, geometry=None,
                 evaluator="auto", modes=None, tol=1e-9, normalize=False, threads=1):
        from ..evaluators import make_evaluator

        self.grid, self.layout, self.d = grid, SERIAL, grid.d
        self.kernel = kernel if kernel is not None else SobolevKernel(s)
        self.geometry = make_geometry(geometry)
        self.alpha = self.geometry.alpha
        x = check_positions(positions, grid.d)
        nu = None if nu is None else check_density("nu", nu, grid, strict=True)
        target_mass = 1.0 if nu is None else float(nu.mean())
        w = check_weights(weights, len(x), target_mass)
        mass = float(w.sum())
        if abs(mass - target_mass) > MASS_RTOL * target_mass and (normalize or not self.alpha):
            if not normalize:
                raise ValueError(f"particles.weights add up to {mass:.12g} but nu has mass {target_mass:.12g}; the "
                                 "Wasserstein flow conserves mass: pass normalize=True (initial.normalize) or use the "
                                 "wfr geometry")
            if mass == 0:
                raise ValueError("particles.weights add up to 0 and cannot be normalised")
            w = w * (target_mass / mass)
        self.n = len(x)
        self.mass0 = float(w.sum())
        weights_hat = kernel_weights(grid, self.kernel)
        self._weights_grid = weights_hat
        if nu is None:
            target = None
            self.uniform, nu_max = True, 1.0
        else:
            nu_hat = grid.project(grid.to_spectral(nu))
            self.uniform = not np.any(nu_hat.ravel()[1:])
            target = (grid, nu_hat)
            nu_max = float(nu.max())
        self.evaluator = make_evaluator(evaluator, self.kernel, grid.d, modes=modes, target=target, tol=tol,
                                        threads=threads)
        # the linearised dynamics' fastest rate M max_k (|k|² + α) K̂_k bounds explicit steps
        self.stiffness = nu_max * float(np.max((grid.k2 + self.alpha) * weights_hat))
        self.threads = threads
        self._fixed_weights = None if self.alpha else w
        self._shape = (self.n, self.d + (1 if self.alpha else 0))
        self._state = np.empty(self._shape)
        self._state[:, :self.d] = x
        if self.alpha:
            self._state[:, self.d] = w * (self.n / self.mass0)
        self.evaluations = 0

    # ------------------------------------------------------------------ the state
    def positions(self, u) -> np.ndarray:
        """The positions wrapped into [0, 2π), a new (N, d) array."""
        return np.mod(u[:, :self.d], 2 * np.pi)

    def weights(self, u) -> np.ndarray:
        """The masses w_i (relative to dm)."""
        if self._fixed_weights is not None:
            return self._fixed_weights
        return u[:, self.d] * (self.mass0 / self.n)

    # ------------------------------------------------------------ right-hand side
    def explicit(self, u, out, monitor=False):
        """out ← (−∇ψ(x_i), −α ψ(x_i) r_i): the velocities and, under WFR, the weight rates."""
        self.evaluations += 1
        w = self.weights(u)
        psi, grad = self.evaluator.potential(u[:, :self.d], w, need_psi=bool(self.alpha) or monitor)
        np.negative(grad, out=out[:, :self.d])
        if self.alpha:
            np.multiply(psi, u[:, self.d], out=out[:, self.d])
            out[:, self.d] *= -self.alpha
        if not monitor:
            return None
        speed2 = np.einsum("ij,ij->i", grad, grad)
        mass = float(w.sum())
        return Monitor(min_mu=float(w.min(initial=math.inf)), max_speed=math.sqrt(float(speed2.max(initial=0.0))),
                       max_psi=float(np.abs(psi).max(initial=0.0)),
                       rms_speed=math.sqrt(float(w @ speed2) / mass) if mass > 0 else 0.0)

    # ------------------------------------------------------------ norms and bounds
    def norm(self, u) -> float:
        """RMS of the state's entries. Positions are about π and relative weights about 1, so the
        error control err ≤ rtol·‖u‖ + atol asks for positions accurate to about rtol·π (and relative
        weights to rtol): an absolute accuracy, whatever the size of the displacements."""
        return float(np.sqrt(np.mean(np.square(u)))) if u.size else 0.0

    def energy(self, u) -> float:
        """E = ½ Σ_k K̂_k |μ_k − ν_k|² of the empirical measure (exact or truncated, as the evaluator)."""
        return float(self.evaluator.energy(u[:, :self.d], self.weights(u)))

    def dissipation(self, u, du) -> float:
        """D = Σ w_i |ẋ_i|² + Σ ẇ_i²/(α w_i) = Σ w_i(|∇ψ(x_i)|² + α ψ(x_i)²)."""
        w = self.weights(u)
        out = float(np.einsum("i,ij,ij->", w, du[:, :self.d], du[:, :self.d]))
        if self.alpha:
            r, dr = u[:, self.d], du[:, self.d]
            positive = r > 0
            out += float(np.sum(dr[positive] ** 2 / (self.alpha * r[positive]))) * (self.mass0 / self.n)
        return out

    def step_bound(self, monitor: Monitor, cfl: float) -> float:
        """None beyond the error control: particles have no grid to cross (the stability of the
        explicit scheme is bounded by the solver through :attr:`stiffness`)."""
        return math.inf

    def summary(self) -> dict:
        return {}

    def check(self, monitor: Monitor, t: float):
        if not (np.isfinite(monitor.max_speed) and np.isfinite(monitor.min_mu) and np.isfinite(monitor.max_psi)):
            raise FloatingPointError(f"the particles' velocities became non-finite at t={t:.6g}; reduce dt or rtol")

    # ------------------------------------------------------------ declared outputs
    @property
    def diagnostics(self) -> tuple:
        out = (
            Series("mass", "1", "Σ w_i, the mass of the empirical measure relative to dm"),
            Series("max_speed", "1", "max_i |∇ψ(x_i)|, the largest particle speed"),
            Series("rms_speed", "1", "(Σ w_i |∇ψ(x_i)|² / Σ w_i)^{1/2}, the mass-weighted RMS speed"),
            Series("center", "1", "Σ w_i x_i / Σ w_i of the unwrapped positions (conserved for uniform ν)",
                   shape=(self.d,)),
        )
        if self.alpha:
            out += (Series("min_weight", "1", "min_i w_i"), Series("max_psi", "1", "max_i |ψ(x_i)|"))
        return out

    def diagnose(self, u, monitor: Monitor) -> dict:
        w = self.weights(u)
        mass = float(w.sum())
        out = {
            "mass": mass,
            "max_speed": monitor.max_speed,
            "rms_speed": monitor.rms_speed,
            "center": (w @ u[:, :self.d]) / mass if mass > 0 else np.zeros(self.d),
        }
        if self.alpha:
            out["min_weight"] = float(w.min(initial=math.inf))
            out["max_psi"] = monitor.max_psi
        return out

    @property
    def snapshots(self) -> tuple:
        return (
            Series("positions", "1", "particle positions in [0, 2π)^d", shape=(self.n, self.d)),
            Series("weights", "1", "particle masses w_i relative to dm", shape=(self.n,)),
            Series("mu", "1", "density estimate on the grid: the mass in each cell over its measure 1/n^d",
                   shape=self.grid.shape, on_grid=True),
        )

    def snapshot(self, u) -> dict:
        x, w = self.positions(u), self.weights(u)
        return {"positions": x, "weights": np.array(w, dtype=float), "mu": self.density(u)}

    def density(self, u) -> np.ndarray:
        """Cell averages of μ_N on the grid (cells centred on the grid points), relative to dm."""
        return deposit(self.grid, self.positions(u), self.weights(u))

    def describe(self) -> dict:
        return {
            "name": self.name,
            **describe_physics(self.kernel, self.geometry),
            "particles": self.n,
            "evaluator": {"name": self.evaluator.name, "exact": bool(self.evaluator.exact),
                          "modes": self.evaluator.modes},
            "uniform_target": bool(self.uniform),
        }

    def arrays(self) -> dict:
        return {"kernel_weights": self._weights_grid}

    def predictions(self, quantities=None) -> dict:
        """None: the empirical measure's energy has a discreteness floor that the PDE's laws do not
        describe (compare with a grid run instead)."""
        return {}

    @property
    def fft(self) -> dict:
        return {"fft_backend": f"{self.evaluator.name}", "threads": self.threads, "fft_effort": "none"}


# ============================================================================ checks and initialisation
def deposit(grid: Torus, x, w) -> np.ndarray:
    """Cell averages on the grid of Σ_i w_i δ_{x_i} relative to dm (cells centred on the grid
    points): the mass in each cell over its measure 1/n^d. ``x`` is (N, d) in [0, 2π)."""
    shifted = np.mod(np.asarray(x) + 0.5 * np.asarray(grid.dx), 2 * np.pi)
    counts, _ = np.histogramdd(shifted, bins=grid.shape, range=[(0, 2 * np.pi)] * grid.d, weights=w)
    return counts * grid.size


def check_positions(positions, d) -> np.ndarray:
    """Positions as an (N, d) float array wrapped into [0, 2π) (one-line errors name the key)."""
    x = np.asarray(positions, dtype=float)
    if d == 1 and x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] != d or x.shape[0] == 0:
        raise ValueError(f"particles.init: positions of shape {np.shape(positions)}, expected (N, {d})"
                         + (" or (N,)" if d == 1 else ""))
    bad = ~np.isfinite(x)
    if bad.any():
        i = np.unravel_index(np.argmax(bad), x.shape)
        raise ValueError(f"particles.init: position {x[i]} of particle {i[0]} is not finite")
    return np.mod(x, 2 * np.pi)


def check_weights(weights, n, mass) -> np.ndarray:
    """Weights as an (N,) float array, finite and ≥ 0 (default: ``mass`` shared equally)."""
    if weights is None:
        return np.full(n, mass / n)
    w = np.asarray(weights, dtype=float)
    if w.shape != (n,):
        raise ValueError(f"particles.weights: shape {w.shape}, expected ({n},) (one per particle)")
    bad = ~np.isfinite(w)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"particles.weights: weight {w[i]} of particle {i} is not finite")
    if np.any(w < 0):
        i = int(np.argmin(w))
        raise ValueError(f"particles.weights: weight {w[i]:.6g} of particle {i} is negative")
    return w


def quantiles(grid: Torus, mu0, n: int) -> np.ndarray:
    """The midpoint quantiles x_i = F^{−1}((i − ½)/N) of a 1-D density μ0 given on the grid.

    F(x) = ∫_0^x μ0 dm / ∫ μ0 dm is taken from μ0's Fourier series,
    F(x) = (μ_0 x/(2π) + (P(x) − P(0))/(2π)) / μ_0 with P(x) = Σ_{k≠0} μ_k e^{ikx}/(ik): tabulated on a
    16× finer grid (exact there), inverted by linear interpolation, then refined by Newton steps
    on the series itself (direct sums, when N × n ≤ 10^8) to rounding.
    """
    if grid.d != 1:
        raise ValueError(f"particles.init='quantiles': needs d=1, got d={grid.d}; use 'lattice' or 'sample'")
    size = grid.size
    mu_hat = np.fft.rfft(np.asarray(mu0, dtype=float).reshape(-1)) / size
    mu_hat[size // 2:] = 0.0  # the Nyquist mode is not carried
    mass = float(mu_hat[0].real)
    k = np.arange(mu_hat.size, dtype=float)
    series = np.zeros_like(mu_hat)
    series[1:] = mu_hat[1:] / (1j * k[1:])
    fine = 16 * size
    x = 2 * np.pi * np.arange(fine + 1) / fine
    p = np.fft.irfft(series, fine) * fine  # P at the fine points (2 Re of the sum over k > 0)
    p = np.append(p, p[0])
    cumulative = (mass * x + p - p[0]) / (2 * np.pi * mass)
    targets = (np.arange(n) + 0.5) / n
    xs = np.interp(targets, cumulative, x)
    if n * size <= 10**8:
        for _ in range(2):  # Newton on the series: F' = μ0/(2π μ_0)
            phases = np.exp(1j * np.multiply.outer(xs, k[1:]))
            f = (mass * xs + 2 * (phases @ series[1:]).real - p[0]) / (2 * np.pi * mass)
            density = (mass + 2 * (phases @ mu_hat[1:]).real) / (2 * np.pi * mass)
            xs = xs - (f - targets) / np.where(density > 0, density, np.inf)
    return xs


def lattice(grid: Torus, mu0, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A rank-1 (Korobov) lattice of N points in [0, 2π)^d, weighted by μ0 at the points:
    w_i ∝ μ0(x_i) (μ0 interpolated from the grid's Fourier series), normalised to μ0's mass."""
    a = _korobov(n) if grid.d > 1 else 1
    generators = (1, a, a * a % n)[:grid.d]
    points = 2 * np.pi * np.mod(np.outer(np.arange(n), generators) / n + 0.5 / n, 1.0)
    values = _interpolate(grid, mu0, points)
    values = np.maximum(values, 0.0)
    mass = float(np.mean(mu0))
    return points, values * (mass / values.sum())


def sample(grid: Torus, mu0, n: int, seed: int) -> np.ndarray:
    """N i.i.d. samples of the piecewise-constant density equal to μ0 on the grid's cells (a cell
    chosen with probability its mass, then a uniform point in it)."""
    rng = np.random.default_rng(seed)
    p = np.asarray(mu0, dtype=float).ravel()
    cells = rng.choice(p.size, size=n, p=p / p.sum())
    index = np.array(np.unravel_index(cells, grid.shape)).T
    dx = np.asarray(grid.dx)
    return np.mod((index + rng.random((n, grid.d)) - 0.5) * dx, 2 * np.pi)


def _interpolate(grid, f, points) -> np.ndarray:
    """Σ_k f_k e^{ik·x} at the points, by a direct sum over the grid's modes (set-up only)."""
    f_hat = np.fft.fftn(np.asarray(f, dtype=float)) / grid.size
    ks = np.meshgrid(*[np.fft.fftfreq(n, 1.0 / n) for n in grid.shape], indexing="ij")
    phases = sum(np.multiply.outer(points[:, j], ks[j].ravel()) for j in range(grid.d))
    return (np.exp(1j * phases) @ f_hat.ravel()).real


def _korobov(n: int) -> int:
    """A Korobov generator a (gcd(a, N) = 1) maximising the shortest dual lattice vector
    (a cheap figure of merit; O(N) candidates)."""
    best, best_score = 1, -1.0
    for a in range(2, max(3, min(n, 2000))):
        if math.gcd(a, n) != 1:
            continue
        # the dual lattice: h1 + a h2 ≡ 0 (mod N); its shortest vector among small h2
        score = min(abs(((a * h) + n // 2) % n - n // 2) ** 2 + h**2 for h in range(1, min(n, 200)))
        if score > best_score:
            best, best_score = a, score
    return best
