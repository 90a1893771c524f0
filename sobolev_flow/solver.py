"""Integrate the flow: the stepping loop, step-size control and the Python entry point.

:func:`solve` takes a grid, s, ν, μ0 and output times and returns the densities at those
times with per-step diagnostics, touching no file. :class:`Solver` is the stateful object
behind it, for callers that drive the loop themselves (the command line, checkpointing).

Step-size control
-----------------
Adaptive mode (``dt=None``) estimates the local error of every step by step doubling: one
step of h and two of h/2 from the same state (sharing N(u)); with p the scheme's order,

    err = ‖u_{h/2,h/2} − u_h‖ / (2^p − 1),

in the L²(dm) norm, and the step is accepted when err ≤ rtol·‖ρ‖ + atol (ρ = μ − ν, the
two-half-step result being kept). The next step is h·min(5, max(0.2, 0.9 (tol/err)^{1/(p+1)})),
capped by the CFL bound cfl·min(dx)/max|∇ψ|, by dt_max, and for explicit schemes by their
stability interval on the spectrum of L. Since ‖ρ‖ and max|∇ψ| decay, h grows by orders of
magnitude over a long run. Steps are shortened to land exactly on every output time; a
shortened step does not shrink the proposal for the step after it.

Fixed mode (``dt=h``) takes steps of h (the last before an output time shortened to land
on it) and no error control: for convergence studies.
"""

from __future__ import annotations

import logging
import math
import os
import time as _time
from dataclasses import dataclass, field

import numpy as np

from . import diagnostics as diag
from .flow import Flow
from .grid import Torus
from .kernels import SobolevKernel
from .parallel import SERIAL
from .steppers import get_scheme

__all__ = ["solve", "Solver", "Solution", "memory_estimate", "MASS_RTOL"]

log = logging.getLogger(__name__)

#: Largest relative difference between the masses of μ0 and ν accepted without normalisation.
MASS_RTOL = 1e-10

#: Names of the per-step diagnostic series, the keys of :meth:`Solver.diagnostics`.
DIAGNOSTICS = ("t", "dt", "energy", "dissipation", "mass", "min_mu", "max_speed", "tail_fraction", "energy_balance")



@dataclass
class Solution:
    """What :func:`solve` returns.

    Attributes
    ----------
    t : ndarray, shape (n,)
        The requested output times (hit exactly).
    mu : ndarray, shape (n, *grid.shape)
        The densities μ(t) on the grid, relative to dm = dx/(2π)^d.
    diagnostics : dict of ndarray
        One entry per accepted state, from t = 0 on: ``t``, ``dt`` (the step that led to it,
        0 for the initial state), ``energy`` E, ``dissipation`` D = ∫ μ|∇ψ|² dm, ``mass``
        ∫ μ dm, ``min_mu`` and ``max_speed`` max|∇ψ| (both on the padded grid),
        ``tail_fraction`` (see :func:`~sobolev_flow.diagnostics.tail_fraction`).
    stats : dict
        ``steps``, ``rejected``, ``rhs_evaluations``, ``wall_time`` (s), ``scheme``,
        ``fft_backend``, ``threads``.
    grid : Torus
    """

    t: np.ndarray
    mu: np.ndarray
    diagnostics: dict
    stats: dict
    grid: Torus = field(repr=False)


def solve(grid, s, mu0, times, nu=None, **options) -> Solution:
    """Solve ∂t μ = div(μ∇ψ), ψ = (−Δ)^{−s}(μ − ν), on T^d from μ(0) = μ0.

    Parameters
    ----------
    grid : Torus or tuple of int
        The grid (a shape is turned into ``Torus(shape)``).
    s : float
        Sobolev order, s > 0 (or pass ``kernel=`` for another kernel and ``s=None``).
    mu0 : array_like, shape grid.shape
        Initial density relative to dm = dx/(2π)^d: finite and ≥ 0.
    times : sequence of float
        Output times, finite, ≥ 0 and non-decreasing; the last is the final time.
    nu : array_like, optional
        Target density, finite and > 0, with the mass of μ0; default ν ≡ 1.
    **options
        Passed to :class:`Solver`: ``scheme`` ('etdrk4'), ``rtol`` (1e-6), ``atol`` (1e-12),
        ``dt`` (fixed step, default adaptive), ``dt_initial``, ``dt_max``, ``cfl`` (0.5),
        ``stabilisation``, ``normalize`` (False), ``kernel``, ``fft_backend`` ('auto'),
        ``threads``, ``fft_effort`` ('estimate'), ``max_steps``.

    Returns
    -------
    Solution

    Examples
    --------
    >>> import numpy as np
    >>> from sobolev_flow import Torus, solve
    >>> grid = Torus((64,))
    >>> (x,) = grid.mesh()
    >>> sol = solve(grid, s=1, mu0=1 + 0.5 * np.sin(x), times=[0.0, 1.0, 2.0])
    >>> sol.mu.shape
    (3, 64)
    >>> E = sol.diagnostics["energy"]
    >>> bool(np.all(np.diff(E) <= 0))
    True
    >>> # s = 1 in 1-D: E(t) = E(0) exp(-2t) exactly
    >>> round(float(E[-1] / E[0] * np.exp(2 * sol.diagnostics["t"][-1])), 6)
    1.0
    """
    if not isinstance(grid, Torus):
        grid = Torus(tuple(np.atleast_1d(grid)))
    times = _check_times(times)
    solver = Solver(grid, s, mu0, nu=nu, **options)
    records = {name: [] for name in DIAGNOSTICS}

    def record(sol):
        for name, value in sol.diagnostics().items():
            records[name].append(value)

    record(solver)
    snapshots = np.empty((len(times),) + grid.shape)
    start = _time.perf_counter()
    for i, target in enumerate(times):
        solver.advance(target, callback=record)
        snapshots[i] = solver.density()
    stats = solver.stats()
    stats["wall_time"] = _time.perf_counter() - start
    return Solution(
        t=times, mu=snapshots, diagnostics={k: np.asarray(v) for k, v in records.items()}, stats=stats, grid=grid
    )


class Solver:
    """The state of a run and the loop that advances it.

    Parameters
    ----------
    grid : Torus
    s : float or None
        Sobolev order; ignored when ``kernel`` is given.
    mu0, nu : array_like
        See :func:`solve`.
    scheme : str
        A name in :data:`~sobolev_flow.steppers.SCHEMES`.
    rtol, atol : float
        Local error tolerance per step: err ≤ rtol·‖ρ‖_{L²} + atol.
    dt : float, optional
        Fixed step size (no error control). Default: adaptive.
    dt_initial, dt_max : float, optional
        First trial step (default from the CFL bound and ‖ρ‖/‖∂tρ‖) and upper bound.
    cfl : float
        h ≤ cfl·min(dx)/max|∇ψ| in adaptive mode.
    stabilisation : float, optional
        ν̄ of :class:`~sobolev_flow.flow.Flow`.
    normalize : bool
        Rescale μ0 to the mass of ν instead of rejecting a mismatch.
    kernel : object, optional
        Kernel with ``weights(grid)``; default ``SobolevKernel(s)``.
    fft_backend, threads, fft_effort
        See :class:`~sobolev_flow.fft.RealFFT`.
    fft_wisdom_only : bool
        Plan only from FFTW wisdom already imported (``wisdom_only`` of
        :class:`~sobolev_flow.fft.RealFFT`): how a restart re-creates its run's measured plans.
    max_steps : int, optional
        Give up (RuntimeError) after this many accepted steps.
    comm : mpi4py.MPI.Comm, optional
        Distribute the run over the processes of ``comm`` (d ≥ 2; see
        :mod:`sobolev_flow.parallel`). Every process constructs the solver with the same
        arguments and makes the same calls; the state and the work arrays are then this
        process's block, while :meth:`density`, :meth:`diagnostics` and :meth:`checkpoint`
        return global values on every process. None or a one-process communicator: serial.
    decomposition : {"slab", "pencil"}
        How a distributed grid is split (pencils only differ from slabs in 3-D).
    """

    def __init__(self, grid, s, mu0, nu=None, *, scheme="etdrk4", rtol=1e-6, atol=1e-12, dt=None, dt_initial=None,
                 dt_max=math.inf, cfl=0.5, stabilisation=None, normalize=False, kernel=None, fft_backend="auto",
                 threads=None, fft_effort="estimate", max_steps=None, comm=None, decomposition="slab",
                 fft_wisdom_only=False):
        # ---- validation at the edge
        self.grid = grid
        self.scheme = get_scheme(scheme)
        self.kernel = kernel if kernel is not None else SobolevKernel(s)
        _check_positive("rtol", rtol)
        _check_positive("atol", atol, allow_zero=True)
        _check_positive("cfl", cfl)
        if dt is not None:
            _check_positive("dt", dt)
        if dt_initial is not None:
            _check_positive("dt_initial", dt_initial)
        _check_positive("dt_max", dt_max, allow_inf=True)
        processes = 1 if comm is None else comm.Get_size()
        need = memory_estimate(grid, self.scheme) // processes
        have = physical_memory()
        if have and need > have:
            raise ValueError(
                f"shape={grid.shape}: the run needs an estimated {_gib(need)} of working memory, "
                f"more than the {_gib(have)} of this machine"
            )
        mu0 = _check_density("mu0", mu0, grid, strict=False)
        nu = None if nu is None else _check_density("nu", nu, grid, strict=True)
        target_mass = 1.0 if nu is None else float(nu.mean())
        mass0 = float(mu0.mean())
        if abs(mass0 - target_mass) > MASS_RTOL * target_mass:
            if not normalize:
                raise ValueError(
                    f"mu0 has mass {mass0:.12g} but nu has mass {target_mass:.12g} (relative difference "
                    f"{abs(mass0 - target_mass) / target_mass:.3g} > {MASS_RTOL:g}); pass normalize=True to rescale mu0"
                )
            if mass0 == 0:
                raise ValueError("mu0 has mass 0 and cannot be normalised")
            mu0 = mu0 * (target_mass / mass0)
        # ---- the model and the scheme
        nu_hat = None if nu is None else grid.to_spectral(nu)
        if processes > 1:
            from .parallel import Distributed, DistributedFlow

            layout = Distributed(grid, comm, decomposition=decomposition, threads=threads or 1, effort=fft_effort)
            self.flow = DistributedFlow(grid, self.kernel, layout, nu_hat=nu_hat, stabilisation=stabilisation)
        else:
            layout = SERIAL
            self.flow = Flow(grid, self.kernel, nu_hat=nu_hat, stabilisation=stabilisation, fft_backend=fft_backend,
                             threads=threads, fft_effort=fft_effort, fft_wisdom_only=fft_wisdom_only)
        self.layout = layout
        self.stepper = self.scheme.stepper(self.flow)
        self.rtol, self.atol, self.cfl, self.dt_max = float(rtol), float(atol), float(cfl), float(dt_max)
        self.fixed_dt = None if dt is None else float(dt)
        self.max_steps = max_steps
        # ---- the state ρ = μ − ν in Fourier coefficients, and N(ρ) with its monitor
        shape = self.flow.linear.shape
        self.rho_hat = layout.local(grid.project(grid.to_spectral(mu0) - layout.gather(self.flow.nu_hat)))
        self._n = np.empty(shape, complex)
        # "full" holds the one-step result until the error is measured and is scratch afterwards
        self._buffers = {name: np.empty(shape, complex) for name in ("full", "half", "n_half", "two")}
        self.t = 0.0
        self.steps = 0
        self.rejected = 0
        self.last_dt = 0.0
        self.sums = diag.SpectralSums(grid, self.flow.weights, layout=layout)
        self._lmax = layout.max(float(np.max(-self.flow.linear, initial=0.0)))
        self._evaluate()
        self.energy0 = self.energy
        self.dissipated = 0.0
        self._dissipation_mid = None
        self.dt_next = self.fixed_dt or dt_initial or self._initial_dt()
        self._warned = set()

    # ------------------------------------------------------------------ state
    def _evaluate(self):
        """N at the current state, with min μ, max|∇ψ|, the energy E and the dissipation D."""
        self.monitor = self.flow.explicit(self.rho_hat, self._n, monitor=True)
        self.energy = self.sums.energy(self.rho_hat)
        self.dissipation = self._dissipation(self.rho_hat, self._n)

    def density(self) -> np.ndarray:
        """μ on the grid (the whole grid, on every process of a distributed run)."""
        mu_hat = self.layout.gather(self.rho_hat).copy()
        if self.flow.uniform:
            mu_hat.flat[0] += self.flow.nu_mean
        else:
            mu_hat += self.layout.gather(self.flow.nu_hat)
        return self.grid.to_physical(mu_hat, overwrite=True)

    def diagnostics(self) -> dict:
        """The series of :data:`DIAGNOSTICS` at the current state.

        ``energy_balance`` is E(t) − E(0) + ∫_0^t D dt', the integral accumulated step by step
        by Simpson's rule with D at the step's midpoint from step doubling (adaptive mode) or
        by the trapezoidal rule (fixed mode); for the exact semi-discrete flow it vanishes.
        """
        flow, energy = self.flow, self.energy
        return {
            "t": self.t,
            "dt": self.last_dt,
            "energy": energy,
            "dissipation": self.dissipation,
            "mass": self.sums.mass(self.rho_hat) + flow.nu_mean,
            "min_mu": self.monitor.min_mu,
            "max_speed": self.monitor.max_speed,
            "tail_fraction": self.sums.tail_fraction(self.rho_hat),
            "energy_balance": energy - self.energy0 + self.dissipated,
        }

    def _dissipation(self, rho_hat, n_hat) -> float:
        """D = −Σ conj(ψ_k)(Lρ + N)_k at a state with N(ρ) = ``n_hat``."""
        dmu = self._buffers["full"]  # scratch whenever this is called
        np.multiply(self.flow.linear, rho_hat, out=dmu)
        dmu += n_hat
        return self.sums.dissipation(rho_hat, dmu)

    def stats(self) -> dict:
        """Counters of the run so far."""
        return {
            "steps": self.steps,
            "rejected": self.rejected,
            "rhs_evaluations": self.flow.evaluations,
            "scheme": self.scheme.name,
            "fft_backend": self.flow.fft_backend,
            "threads": self.flow.threads,
            "processes": self.layout.size,
        }

    def _norm(self, x) -> float:
        return self.sums.l2_norm(x)

    # ------------------------------------------------------------- step sizes
    def _bound(self) -> float:
        """Largest admissible step from CFL, dt_max and the scheme's linear stability."""
        bound = self.dt_max
        if self.monitor.max_speed > 0:
            bound = min(bound, self.cfl * min(self.grid.dx) / self.monitor.max_speed)
        if math.isfinite(self.scheme.real_stability) and self._lmax > 0:
            bound = min(bound, 0.9 * self.scheme.real_stability / self._lmax)
        return bound

    def _initial_dt(self) -> float:
        """0.01‖ρ‖/‖∂tρ‖ (Hairer, Nørsett & Wanner, II.4), within the bound."""
        dmu = self.flow.linear * self.rho_hat + self._n
        rate = self._norm(dmu)
        guess = 0.01 * self._norm(self.rho_hat) / rate if rate > 0 else 1.0
        return min(guess, self._bound(), 1.0)

    # ------------------------------------------------------------------ loop
    def advance(self, t_end: float, callback=None):
        """Step until t = t_end exactly; ``callback(self)`` after every accepted step."""
        t_end = float(t_end)
        if t_end < self.t:
            raise ValueError(f"t_end={t_end}: before the current time t={self.t}")
        while self.t < t_end:
            self.step(t_end)
            if callback is not None:
                callback(self)

    def step(self, t_target: float):
        """Take one accepted step towards ``t_target``, landing on it exactly when it is in reach."""
        if self.max_steps is not None and self.steps >= self.max_steps:
            raise RuntimeError(f"max_steps={self.max_steps} reached at t={self.t:.6g} before t={t_target:.6g}")
        while True:
            remaining = t_target - self.t
            if self.fixed_dt is not None:
                h = self.fixed_dt
                landing = remaining <= h * (1 + 1e-10)
                h = remaining if landing else h
                self._step_fixed(h)
                break
            h = min(self.dt_next, self._bound())
            landing = remaining <= h
            if landing:
                h = remaining
            elif remaining < 1.5 * h:  # avoid a sliver before the target
                h = 0.5 * remaining
            if h <= 1e-14 * max(1.0, abs(self.t)):
                raise RuntimeError(f"step size underflow (dt={h:.3g}) at t={self.t:.6g}")
            if self._step_adaptive(h):
                break
        self.t = t_target if landing else self.t + h
        self.steps += 1
        self.last_dt = h
        start = self.dissipation
        self._evaluate()
        if self._dissipation_mid is None:  # trapezoidal rule
            self.dissipated += 0.5 * h * (start + self.dissipation)
        else:  # Simpson's rule with the midpoint of step doubling
            self.dissipated += h * (start + 4 * self._dissipation_mid + self.dissipation) / 6
        self._check_state()

    # ------------------------------------------------------------ checkpoints
    def checkpoint(self) -> dict:
        """Everything needed to continue the run exactly: the spectral state and the counters.

        The schemes are one-step methods, so their history is the proposed next step alone.
        In a distributed run ``rho_hat`` is the global array, on every process.
        """
        return {
            "rho_hat": self.layout.gather(self.rho_hat).copy(),
            "t": self.t,
            "dt_next": self.dt_next,
            "last_dt": self.last_dt,
            "steps": self.steps,
            "rejected": self.rejected,
            "evaluations": self.flow.evaluations,
            "energy0": self.energy0,
            "dissipated": self.dissipated,
        }

    def restore(self, state: dict):
        """Continue from a :meth:`checkpoint` (global; in a distributed run, as the root process has it)."""
        state = self.layout.broadcast(state)
        rho_hat = np.asarray(state["rho_hat"])
        if rho_hat.shape != self.grid.spectral_shape:
            raise ValueError(f"checkpoint state has shape {rho_hat.shape}, expected {self.grid.spectral_shape}")
        self.rho_hat[...] = self.layout.local(rho_hat)
        self.t = float(state["t"])
        self.dt_next = float(state["dt_next"])
        self.last_dt = float(state["last_dt"])
        self.steps = int(state["steps"])
        self.rejected = int(state["rejected"])
        self.flow.evaluations = int(state["evaluations"])
        self.energy0 = float(state["energy0"])
        self.dissipated = float(state["dissipated"])
        self._evaluate()
        self.flow.evaluations -= 1

    def _accept(self, buffer_name):
        """Swap a result buffer in as the new state."""
        self.rho_hat, self._buffers[buffer_name] = self._buffers[buffer_name], self.rho_hat

    def _step_fixed(self, h):
        self.stepper.step(self.rho_hat, h, self._n, self._buffers["full"])
        self._accept("full")

    def _step_adaptive(self, h) -> bool:
        """One attempt by step doubling; returns whether it was accepted."""
        b, step = self._buffers, self.stepper.step
        step(self.rho_hat, h, self._n, b["full"])
        step(self.rho_hat, 0.5 * h, self._n, b["half"])
        self.flow.explicit(b["half"], b["n_half"])
        step(b["half"], 0.5 * h, b["n_half"], b["two"])
        difference = np.subtract(b["two"], b["full"], out=b["full"])
        p = self.scheme.order
        err = self._norm(difference) / (2**p - 1)
        tol = self.rtol * self._norm(b["two"]) + self.atol
        ratio = err / tol if tol > 0 else math.inf
        if not math.isfinite(ratio):
            factor = 0.2
        elif ratio == 0:
            factor = 5.0
        else:
            factor = min(5.0, max(0.2, 0.9 * ratio ** (-1.0 / (p + 1))))
        if ratio <= 1.0:
            self._dissipation_mid = self._dissipation(b["half"], b["n_half"])
            shortened = h < self.dt_next
            self.dt_next = max(h * factor, self.dt_next) if shortened else h * factor
            self._accept("two")
            return True
        self.rejected += 1
        self.dt_next = h * factor
        return False

    def _check_state(self):
        if not np.isfinite(self.monitor.min_mu):
            raise FloatingPointError(f"the solution became non-finite at t={self.t:.6g}; reduce dt or rtol")
        if self.monitor.min_mu < 0 and "negative" not in self._warned:
            self._warned.add("negative")
            log.warning("min mu = %.3g < 0 at t=%.6g: the density undershoots, the grid is too coarse for this "
                        "solution", self.monitor.min_mu, self.t)


# ============================================================================ validation helpers
def _check_positive(name, value, allow_zero=False, allow_inf=False):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r}: expected a number") from None
    ok = (v >= 0 if allow_zero else v > 0) and (math.isfinite(v) or (allow_inf and v == math.inf))
    if not ok:
        raise ValueError(f"{name}={value!r}: expected a {'non-negative' if allow_zero else 'positive'} finite number")


def _check_times(times) -> np.ndarray:
    t = np.atleast_1d(np.asarray(times, dtype=float))
    if t.ndim != 1 or t.size == 0 or not np.all(np.isfinite(t)) or np.any(t < 0) or np.any(np.diff(t) < 0):
        raise ValueError(f"times={times!r}: expected a non-empty list of finite times >= 0 in non-decreasing order")
    return t


def _check_density(name, values, grid, strict) -> np.ndarray:
    f = np.asarray(values, dtype=float)
    if f.shape != grid.shape:
        raise ValueError(f"{name} has shape {f.shape}, expected {grid.shape} (the grid's shape)")
    bad = ~np.isfinite(f)
    if bad.any():
        i = np.unravel_index(np.argmax(bad), f.shape)
        raise ValueError(f"{name} has a non-finite value ({f[i]} at index {tuple(int(j) for j in i)})")
    low = f <= 0 if strict else f < 0
    if low.any():
        i = np.unravel_index(np.argmin(f), f.shape)
        need = "> 0" if strict else ">= 0"
        raise ValueError(f"{name} has a value {f[i]:.6g} at index {tuple(int(j) for j in i)}; a density must be {need}")
    return f


def memory_estimate(grid: Torus, scheme) -> int:
    """Bytes of working memory a run on ``grid`` with ``scheme`` allocates (an estimate).

    Counts, on the half spectral layout, the complex state ρ, N(ρ), the four step-doubling
    buffers, ψ and its work array, and the stepper's stage buffers (exponential schemes form their stages in the
    output buffer), and the real multipliers (K̂, L, the
    diagnostic weights and their scratch, and for exponential schemes the coefficient arrays
    for one step size with their index); on the padded grid, the spectral buffer and the fields
    ρ, the work field and |∇ψ|². Excludes snapshots kept by the caller.
    """
    spectral = math.prod(grid.spectral_shape)
    stages = len(scheme.c)
    complex_arrays = 1 + 1 + 4 + 2 + (stages - 1)  # ρ, N, step doubling, ψ and i k_j ψ, stage N's
    real_arrays = 2 + 3  # K̂ and L; the diagnostic weights w, w·K̂ and their scratch
    if scheme.family == "exponential":
        distinct = len({c for c in scheme.c[1:]}) + 1 + len(scheme.a) + len(scheme.b)
        real_arrays += distinct + 0.5  # the coefficients (a few coincide) and their int32 index
    else:
        complex_arrays += 2 + stages  # stage U, scratch, and the stage slopes (RK) or L U_i (IMEX)
    padded = math.prod(grid.padded_shape)
    padded_spectral = math.prod(grid.padded_spectral_shape)
    transforms = 16 * padded_spectral + 3 * 8 * padded
    return int(16 * complex_arrays * spectral + 8 * real_arrays * spectral + transforms)


def physical_memory() -> int:
    """Total physical memory in bytes (0 if unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 0


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n < 2**40 else f"{n / 2**40:.1f} TiB"
