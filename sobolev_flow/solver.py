"""Integrate a model: the stepping loop, step-size control and the Python entry point.

:class:`Solver` advances any model of the protocol in :mod:`sobolev_flow.models.base` (a state,
its linear and explicit parts, a norm, an energy and its dissipation, declared diagnostics);
it does step control and scheduling and nothing model-specific. :func:`solve` is the entry point
for grid densities: it takes a grid, s (or a kernel), ν, μ0 and output times, builds a
:class:`~sobolev_flow.models.spectral.SpectralModel` and returns the densities at those times with
per-step diagnostics, touching no file.

Step-size control
-----------------
Adaptive mode (``dt=None``) estimates the local error of every step, by default
(``error_estimate="embedded"``) from the scheme's embedded pair: with b the scheme's weights
and b̂ those of its embedded solution û of lower order p̂ (an entry past the last stage weighting
the slope at the new state, first same as last),

    err = ‖u_new − û‖ = ‖h Σ_i (b_i − b̂_i) k_i − h b̂_{s+1} k(u_new)‖

in the model's norm, an estimate of the local error of û, O(h^{p̂+1}); the step advances with
u_new (the higher order). N(u_new) is evaluated before the decision (for the estimate and for
the model's monitor) and, the step accepted, is the next step's first stage: an attempt costs
its stages plus one evaluation. With ``error_estimate="doubling"`` the estimate is step
doubling: one step of h and two of h/2 from the same state, err = ‖u_{h/2,h/2} − u_h‖/(2^p − 1)
with p the scheme's order, the two half steps' result being kept (about three times the cost).

The step is accepted when err ≤ rtol·‖u_new‖ + atol. The next step is

    h_new = h·min(5, max(0.2, 0.9 (tol/err)^{1/(q+1)})),   q = p̂ (embedded) or p (doubling),

also after a rejection, capped by the model's explicit bound (for grid densities
h ≤ cfl·min(dx)/max|∇ψ|, with cfl by default :data:`~sobolev_flow.steppers.CFL_FRACTION` = 0.9
of the scheme's measured stability limit ``cfl_limit``, see ``benchmarks/stability.py``), by
dt_max, and for explicit schemes by their stability interval on the spectrum of L. Since ‖u‖
and the velocities decay, h grows by orders of magnitude over a long run. The tolerance is
local; on the problems of ``tests/test_error_control.py`` the global error at t = 2 (max |μ −
μ_ref| relative to max |μ0 − 1|) stays within 2·rtol for every scheme over rtol = 1e-4 … 1e-6.

Steps are shortened to land exactly on the times the caller asks for (snapshots, t_end); a
shortened step does not shrink the proposal for the step after it. Diagnostics need no landing:
:meth:`Solver.diagnostics_at` gives them at any time of the last step from its continuous
extension (``Solver._extend``: e^{τL}u_0 exactly plus the cubic Hermite interpolant of the rest
from u and ∂t u = L u + N(u) at both ends; order 3, and exact for the linear decay however long
the step). ``energy_balance`` integrates D by Simpson's rule, D at the midpoint taken from that
extension (embedded) or from the half step (doubling).

Fixed mode (``dt=h``) takes steps of h (the last before an output time shortened to land
on it) and no error control: for convergence studies.
"""

from __future__ import annotations

import logging
import math
import os
import time as _time
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from .grid import Torus
from .models.base import SOLVER_SERIES
from .models.spectral import SpectralModel, make_geometry, memory_estimate
from .steppers import CFL_FRACTION, distinct_values, get_scheme

__all__ = ["solve", "Solver", "Solution", "memory_estimate", "check_memory"]

log = logging.getLogger(__name__)

#: Keyword arguments of :func:`solve` that configure the model rather than the solver.
MODEL_OPTIONS = ("kernel", "geometry", "stabilisation", "normalize", "orders", "spectrum", "comm", "decomposition",
                 "fft_backend", "threads", "fft_effort", "fft_wisdom_only")


#: How adaptive steps estimate their error (see the module docstring).
ERROR_ESTIMATES = ("embedded", "doubling")

#: Work buffers per mode: the result of a step, N there, a scratch array, then others ("mid" and
#: "mid_du" hold a state of the continuous extension and its derivative or N there).
STEP_BUFFERS = {
    "fixed": ("new", "n_new", "err", "mid", "mid_du"),
    "embedded": ("new", "n_new", "err", "mid", "mid_du"),
    "doubling": ("two", "n_half", "full", "half", "mid", "mid_du"),
}


#: The smallest relative tolerance: below about 500 ε of double precision the embedded estimate of a
#: small step is rounding error (often exactly 0), and the controller would crawl instead of failing.
RTOL_MIN = 1e-13


def scheme_cfl(scheme) -> float:
    """The default CFL number of ``scheme``: :data:`~sobolev_flow.steppers.CFL_FRACTION` of its
    measured stability limit on the advective part (``scheme.cfl_limit``); unbounded for a scheme
    without a measured limit (the training schemes, which take the fixed step they are given)."""
    return math.inf if scheme.cfl_limit is None else CFL_FRACTION * scheme.cfl_limit


def step_factor(ratio: float, order: int) -> float:
    """The factor of the next step, min(5, max(0.2, 0.9 ratio^{−1/(p+1)})), for an error
    ``ratio`` = err/tol of an estimate of order p (err ∝ h^{p+1}); 0.2 for a non-finite ratio."""
    if not math.isfinite(ratio):
        return 0.2
    if ratio == 0:
        return 5.0
    return min(5.0, max(0.2, 0.9 * ratio ** (-1.0 / (order + 1))))


def cubic_hermite_weights(theta: float) -> tuple:
    """(h_00, h_10, h_01, h_11)(θ), the cubic Hermite basis on [0, 1]:

        p(θ) = h_00 p(0) + h_10 p'(0) + h_01 p(1) + h_11 p'(1),
        h_00 = (1 + 2θ)(1 − θ)², h_10 = θ(1 − θ)², h_01 = θ²(3 − 2θ), h_11 = θ²(θ − 1),

    exact for cubics; with derivatives in t on a step of h, the h_1j multiply h·∂t."""
    return ((1 + 2 * theta) * (1 - theta) ** 2, theta * (1 - theta) ** 2, theta**2 * (3 - 2 * theta),
            theta**2 * (theta - 1))


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
        One entry per accepted state, from t = 0 on: the solver's series ``t``, ``dt`` (the
        step that led to it, 0 for the initial state), ``energy`` E, ``dissipation`` D,
        ``energy_balance``, and the model's declared series (for grid densities ``mass``
        ∫ μ dm, ``min_mu`` and ``max_speed`` max|∇ψ| on the padded grid, ``tail_fraction``,
        and under WFR ``max_psi``).
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
    """Solve ∂t μ = div(μ∇ψ) (− αψμ under WFR), ψ = K ⋆ (μ − ν), on T^d from μ(0) = μ0.

    Parameters
    ----------
    grid : Torus or tuple of int
        The grid (a shape is turned into ``Torus(shape)``).
    s : float
        Sobolev order, s > 0, of the kernel K̂ = |k|^{−2s} (or pass ``kernel=`` and ``s=None``).
    mu0 : array_like, shape grid.shape
        Initial density relative to dm = dx/(2π)^d: finite and ≥ 0.
    times : sequence of float
        Output times, finite, ≥ 0 and non-decreasing; the last is the final time.
    nu : array_like, optional
        Target density, finite and > 0; default ν ≡ 1. Under the Wasserstein geometry it must
        have the mass of μ0.
    **options
        For the model (:class:`~sobolev_flow.models.spectral.SpectralModel`): ``kernel``,
        ``geometry`` ('wasserstein', or e.g. ``{"name": "wfr", "alpha": 2.0}``),
        ``stabilisation``, ``normalize`` (False), ``orders``, ``fft_backend`` ('auto'),
        ``threads``, ``fft_effort`` ('estimate'), ``comm``, ``decomposition``; for the
        :class:`Solver`: ``scheme`` ('etdrk4'), ``rtol`` (1e-6), ``atol`` (1e-12), ``dt``
        (fixed step, default adaptive), ``dt_initial``, ``dt_max``, ``cfl`` (0.9 of the scheme's
        measured limit), ``max_steps``, ``error_estimate`` ('embedded').

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
    model_options = {key: options.pop(key) for key in MODEL_OPTIONS if key in options}
    comm = model_options.get("comm")
    scheme = get_scheme(options.get("scheme", "etdrk4"))
    reaction = bool(make_geometry(model_options.get("geometry")).alpha)
    check_memory(grid.shape, memory_estimate(grid, scheme, reaction), 1 if comm is None else comm.Get_size())
    model = SpectralModel(grid, mu0, nu, s=s, **model_options)
    solver = Solver(model, **options)
    records: dict = {}

    def record(sol):
        for name, value in sol.diagnostics().items():
            records.setdefault(name, []).append(value)

    record(solver)
    snapshots = np.empty((len(times),) + grid.shape)
    start = _time.perf_counter()
    for i, target in enumerate(times):
        solver.advance(target, callback=record)
        snapshots[i] = model.density(solver.u)
    stats = solver.stats()
    stats["wall_time"] = _time.perf_counter() - start
    return Solution(
        t=times, mu=snapshots, diagnostics={k: np.asarray(v) for k, v in records.items()}, stats=stats, grid=grid
    )


class Solver:
    """The state of a run and the loop that advances it, for any model of the protocol in
    :mod:`sobolev_flow.models.base`.

    Parameters
    ----------
    model : object
        The model (e.g. :class:`~sobolev_flow.models.spectral.SpectralModel`); in a distributed
        run every process constructs it and the solver with the same arguments and makes the
        same calls: the state and work arrays are then this process's block, the diagnostics
        and checkpoints global values on every process.
    scheme : str
        A name in :data:`~sobolev_flow.steppers.SCHEMES`.
    rtol, atol : float
        Local error tolerance per step: err ≤ rtol·‖u‖ + atol in the model's norm.
    dt : float, optional
        Fixed step size (no error control). Default: adaptive.
    dt_initial, dt_max : float, optional
        First trial step (default from the step bound and ‖u‖/‖∂t u‖) and upper bound.
    cfl : float, optional
        The number of the model's explicit step bound (for grid densities h ≤ cfl·min(dx)/max|∇ψ|)
        in adaptive mode; default :data:`~sobolev_flow.steppers.CFL_FRACTION` of the scheme's
        measured limit ``cfl_limit``.
    max_steps : int, optional
        Give up (RuntimeError) after this many accepted steps.
    error_estimate : {"embedded", "doubling"}
        The local error estimate of adaptive steps (see the module docstring).
    """

    def __init__(self, model, *, scheme="etdrk4", rtol=1e-6, atol=1e-12, dt=None, dt_initial=None, dt_max=math.inf,
                 cfl=None, max_steps=None, error_estimate="embedded"):
        # ---- validation at the edge
        self.model = model
        self.layout = model.layout
        self.scheme = get_scheme(scheme)
        _check_positive("rtol", rtol)
        if rtol < RTOL_MIN:
            raise ValueError(f"rtol={rtol!r}: expected a value >= {RTOL_MIN:g} (below it the error estimate is rounding "
                             "error)")
        _check_positive("atol", atol, allow_zero=True)
        if cfl is not None:
            _check_positive("cfl", cfl)
        if dt is not None:
            _check_positive("dt", dt)
        if dt_initial is not None:
            _check_positive("dt_initial", dt_initial)
        _check_positive("dt_max", dt_max, allow_inf=True)
        if error_estimate not in ERROR_ESTIMATES:
            raise ValueError(f"error_estimate={error_estimate!r}: expected one of {', '.join(ERROR_ESTIMATES)}")
        if dt is None and error_estimate == "embedded" and self.scheme.order_hat is None:
            raise ValueError(f"error_estimate='embedded': scheme {self.scheme.name!r} has no embedded solution")
        self.stepper = self.scheme.stepper(model)
        self.rtol, self.atol, self.dt_max = float(rtol), float(atol), float(dt_max)
        self.cfl = float(cfl) if cfl is not None else scheme_cfl(self.scheme)
        self.fixed_dt = None if dt is None else float(dt)
        self.error_estimate = error_estimate
        self.max_steps = max_steps
        # ---- the state, N(u) with its monitor, and the buffers of a step: ``result`` receives the
        # new state and ``n_result`` N there; accepted, they are swapped with u and N(u), so that
        # until the next step they hold the previous state (for the continuous extension)
        self.u = model.initial_state()
        self._n = model.empty()
        names = STEP_BUFFERS["fixed" if dt is not None else error_estimate]
        self._result, self._n_result, self._scratch = names[:3]
        self._buffers = {name: model.empty() for name in names}
        self.t = 0.0
        self.t_previous = None  # start of the last step while its previous state is kept
        self.steps = 0
        self.rejected = 0
        self.last_dt = 0.0
        self.diagnostic_evaluations = 0
        linear = model.linear
        # the fastest linear rate: of L, or the model's bound for the linearisation of an explicit model
        self._lmax = (float(getattr(model, "stiffness", 0.0)) if linear is None
                      else self.layout.max(float(np.max(-linear, initial=0.0))))
        if linear is not None:  # e^{τL} of the continuous extension, from the distinct values of L
            self._linear_values, self._linear_inverse = distinct_values(linear)
            self._decays, self._decays_step = {}, None  # (τ, gathered) -> e^{τL} for the step (steps, h) (see _decay)
        self._extension = None if linear is None else _extension_kernel(model, self._linear_inverse)
        self.monitor = self.model.explicit(self.u, self._n, monitor=True)
        self._measure()
        self.energy0 = self.energy
        self.dissipated = 0.0
        self._previous = None  # (dissipation, dissipated) at the start of the last step
        self._dissipation_mid = None
        self.dt_next = self.fixed_dt or dt_initial or self._initial_dt()

    # ------------------------------------------------------------------ state
    def _measure(self):
        """The energy E and the dissipation D at the current state (N(u) being known)."""
        self.energy = self.model.energy(self.u)
        self.dissipation = self._dissipation(self.u, self._n)

    @property
    def series(self) -> tuple:
        """Declarations of every series :meth:`diagnostics` returns (the solver's, then the model's)."""
        return SOLVER_SERIES + tuple(self.model.diagnostics)

    def diagnostics(self) -> dict:
        """The solver's series (t, dt, energy, dissipation, energy_balance) and the model's
        declared diagnostics at the current state (``step`` is added by the trackers).

        ``energy_balance`` is E(t) − E(0) + ∫_0^t D dt', the integral accumulated step by step
        by Simpson's rule with D at the step's midpoint (from the continuous extension with
        embedded error control, from step doubling's half step with doubling) or by the
        trapezoidal rule (fixed mode); for the exact semi-discrete flow it vanishes.
        """
        out = {
            "t": self.t,
            "dt": self.last_dt,
            "energy": self.energy,
            "dissipation": self.dissipation,
            "energy_balance": self.energy - self.energy0 + self.dissipated,
        }
        out.update(self.model.diagnose(self.u, self.monitor))
        return out

    def diagnostics_at(self, t: float) -> dict:
        """:meth:`diagnostics` at a time ``t`` within the last accepted step [t − dt, t], from the
        state of the continuous extension there (:meth:`interpolate`, order 3): the model's
        monitor and D there come from its ``observe`` (the grid: the backward transforms of N
        alone), else from an evaluation of N (counted in ``rhs_evaluations``); either is counted
        in ``stats()["diagnostic_evaluations"]``. ∫D dt is the cubic Hermite interpolant of its
        values and slopes D at both ends. Nothing of the step sequence changes.
        """
        t = float(t)
        if abs(t - self.t) <= 1e-12 * max(1.0, abs(self.t)):
            out = self.diagnostics()
            out["t"] = t
            return out
        u = self.interpolate(t)
        self.diagnostic_evaluations += 1
        if hasattr(self.model, "observe"):  # the monitor and D without the rest of N
            monitor, dissipation = self.model.observe(u)
        else:
            n = self._buffers["mid_du"]
            monitor = self.model.explicit(u, n, monitor=True)
            dissipation = self._dissipation(u, n)
        energy = self.model.energy(u)
        d0, f0 = self._previous
        w = cubic_hermite_weights((t - self.t_previous) / self.last_dt)
        dissipated = w[0] * f0 + w[1] * self.last_dt * d0 + w[2] * self.dissipated + w[3] * self.last_dt * self.dissipation
        out = {"t": t, "dt": self.last_dt, "energy": energy, "dissipation": dissipation,
               "energy_balance": energy - self.energy0 + dissipated}
        out.update(self.model.diagnose(u, monitor))
        return out

    def interpolate(self, t: float) -> np.ndarray:
        """The state at a time t of the last accepted step [t_0, t_0 + h] from its continuous
        extension (:meth:`_extend`). Returns a buffer the next step or call overwrites."""
        if self.t_previous is None or not self.t_previous <= t <= self.t:
            raise ValueError(f"t={t!r}: outside the last accepted step "
                             f"[{self.t_previous if self.t_previous is not None else self.t}, {self.t}]")
        return self._extend((t - self.t_previous) / self.last_dt, self._buffers["mid"])

    def _extend(self, theta: float, out, derivative=None):
        """out ← u(t_0 + θh) of the continuous extension of the last step, and ``derivative`` (if
        given) ← its time derivative there.

        With E(τ) = e^{τL}, the linear flow is taken exactly and the rest by cubic Hermite
        interpolation: u(t_0 + τ) = E(τ) u_0 + v(τ), v interpolating v(0) = 0, v'(0) = N_0,
        v(h) = v_1 = u_1 − E(h) u_0, v'(h) = L v_1 + N_1 (:func:`cubic_hermite_weights`):

            u ≈ E(θh) u_0 + h h_10 N_0 + (h_01 + h h_11 L) v_1 + h h_11 N_1.

        The error is that of cubic Hermite interpolation of v, O(h^4) (order 3); where N is
        negligible (the late, linear decay) the extension is exact, however long the step.
        Without a linear part (L = None) it is the cubic Hermite interpolant of u. With a model
        whose element-wise work is compiled it is one pass (:func:`sobolev_flow.fused.extension`,
        e^{τλ} read through the index of L's distinct values λ), otherwise about a dozen numpy
        passes; the results are the same to the last bit.
        """
        h, L, b = self.last_dt, self.model.linear, self._buffers
        u0, n0, u1, n1 = b[self._result], b[self._n_result], self.u, self._n
        w00, w10, w01, w11 = cubic_hermite_weights(theta)
        # d/dθ of the basis: 6θ² − 6θ, 3θ² − 4θ + 1, 6θ − 6θ², 3θ² − 2θ; ∂t = (1/h) ∂θ
        d10, d01, d11 = 3 * theta**2 - 4 * theta + 1, 6 * theta - 6 * theta**2, 3 * theta**2 - 2 * theta
        arrays = (out, u0, n0, u1, n1) + (() if derivative is None else (derivative,))
        if self._extension is not None and all(a.flags.c_contiguous for a in arrays):
            kernel = self._extension
            flat = [a.reshape(-1).view(float) for a in (out, np.empty(0, complex) if derivative is None else derivative,
                                                        u0, n0, u1, n1)]
            weights = np.array([h * w10, h * w11, w01, h * w11, d10, d11, d01 / h])
            kernel.extend(*flat, kernel.linear, self._decay(h, gathered=False), self._decay(theta * h, gathered=False),
                          kernel.index, weights, kernel.chunks)
            return out
        v = b[self._scratch]
        if L is None:
            np.subtract(u1, u0, out=v)
            out[...] = u0
            decay = 1.0
        else:
            np.multiply(self._decay(h), u0, out=v)
            np.subtract(u1, v, out=v)
            decay = self._decay(theta * h)
            np.multiply(decay, u0, out=out)
        out += h * w10 * n0
        out += h * w11 * n1
        out += (w01 if L is None else w01 + h * w11 * L) * v
        if derivative is not None:
            derivative[...] = d10 * n0
            derivative += d11 * n1
            derivative += (d01 / h if L is None else d01 / h + d11 * L) * v
            if L is not None:
                derivative += L * decay * u0
        return out

    def _decay(self, tau: float, gathered=True) -> np.ndarray:
        """e^{τL}, gathered from the exponentials of L's distinct values (``gathered``), or those
        exponentials e^{τλ} alone; e^{hL} of the last step and one other τ are kept until the
        step changes."""
        if self._decays_step != (self.steps, self.last_dt):
            self._decays_step, self._decays = (self.steps, self.last_dt), {}
        key = (tau, gathered)
        if key not in self._decays:
            # keep e^{hL} and the newest other τ
            self._decays = {k: e for k, e in self._decays.items() if k[0] == self.last_dt}
            values = np.exp(tau * self._linear_values)
            self._decays[key] = np.take(values, self._linear_inverse) if gathered else values
        return self._decays[key]

    def _dissipation(self, u, n) -> float:
        """D = −dE/dt at a state u with N(u) = ``n`` (∂t u = L u + N(u))."""
        du = self._buffers[self._scratch]  # scratch whenever this is called
        if self.model.linear is None:
            du[...] = n
        else:
            np.multiply(self.model.linear, u, out=du)
            du += n
        return self.model.dissipation(u, du)

    def _midpoint_dissipation(self) -> float:
        """D at the midpoint of the step just accepted, from the state and time derivative of the
        continuous extension there (O(h^4) errors, the derivative's leading term vanishing at
        the midpoint), so that Simpson's rule on D is fourth order."""
        b = self._buffers
        self._extend(0.5, b["mid"], derivative=b["mid_du"])
        return self.model.dissipation(b["mid"], b["mid_du"])

    def stats(self) -> dict:
        """Counters of the run so far (``rhs_evaluations`` counts every evaluation of N,
        ``diagnostic_evaluations`` the diagnostics at interpolated times, each one ``observe`` of
        the model, or one more evaluation of N for a model without it)."""
        return {
            "steps": self.steps,
            "rejected": self.rejected,
            "rhs_evaluations": self.model.evaluations,
            "diagnostic_evaluations": self.diagnostic_evaluations,
            "scheme": self.scheme.name,
            "error_estimate": "fixed" if self.fixed_dt is not None else self.error_estimate,
            **self.model.fft,
            "processes": self.layout.size,
        }

    # ------------------------------------------------------------- step sizes
    def _bound(self) -> float:
        """Largest admissible step from the model's explicit bound, dt_max and the scheme's
        linear stability."""
        bound = min(self.dt_max, self.model.step_bound(self.monitor, self.cfl))
        if math.isfinite(self.scheme.real_stability) and self._lmax > 0:
            bound = min(bound, 0.9 * self.scheme.real_stability / self._lmax)
        return bound

    def _initial_dt(self) -> float:
        """0.01‖u‖/‖∂t u‖ (Hairer, Nørsett & Wanner, II.4), within the bound."""
        du = self._n.copy()
        if self.model.linear is not None:
            du += self.model.linear * self.u
        rate = self.model.norm(du)
        guess = 0.01 * self.model.norm(self.u) / rate if rate > 0 else 1.0
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
        self.log_notices()

    def log_notices(self):
        """Log the model's notices about the states accepted so far. :meth:`step` logs those of the
        previous step when it starts, after the caller has examined that state: a state a health
        check rejects (:class:`~sobolev_flow.trackers.HealthTracker`) is reported by that check alone."""
        for notice in getattr(self.model, "notices", list)():
            log.warning("%s", notice)

    def step(self, t_target: float):
        """Take one accepted step towards ``t_target``, landing on it exactly when it is in reach."""
        self.log_notices()
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
            if self._attempt(h):
                break
        self._previous = (self.dissipation, self.dissipated)
        self.t_previous = self.t
        self.t = t_target if landing else self.t + h
        self.steps += 1
        self.last_dt = h
        start = self.dissipation
        self._measure()
        if self.fixed_dt is not None:  # trapezoidal rule
            self.dissipated += 0.5 * h * (start + self.dissipation)
        else:  # Simpson's rule
            middle = self._dissipation_mid if self.error_estimate == "doubling" else self._midpoint_dissipation()
            self.dissipated += h * (start + 4 * middle + self.dissipation) / 6
        self._check_state()

    # ------------------------------------------------------------ checkpoints
    def checkpoint(self) -> dict:
        """Everything needed to continue the run exactly: the model's arrays (global, on every
        process) and the counters. The schemes are one-step methods, so their history is the
        proposed next step alone."""
        return {
            **self.model.checkpoint(self.u),
            "t": self.t,
            "dt_next": self.dt_next,
            "last_dt": self.last_dt,
            "steps": self.steps,
            "rejected": self.rejected,
            "evaluations": self.model.evaluations,
            "energy0": self.energy0,
            "dissipated": self.dissipated,
        }

    def restore(self, state: dict):
        """Continue from a :meth:`checkpoint` (global; in a distributed run, as the root process has it)."""
        state = self.layout.broadcast(state)
        self.u[...] = self.model.restore(state)
        self.t = float(state["t"])
        self.t_previous = self._previous = None
        self.dt_next = float(state["dt_next"])
        self.last_dt = float(state["last_dt"])
        self.steps = int(state["steps"])
        self.rejected = int(state["rejected"])
        self.model.evaluations = int(state["evaluations"])
        self.energy0 = float(state["energy0"])
        self.dissipated = float(state["dissipated"])
        self.monitor = self.model.explicit(self.u, self._n, monitor=True)
        self._measure()
        self.model.evaluations -= 1

    def _accept(self, monitor):
        """Swap the result buffers in as the new state and N there (the old ones are kept in
        their place until the next step)."""
        b = self._buffers
        self.u, b[self._result] = b[self._result], self.u
        self._n, b[self._n_result] = b[self._n_result], self._n
        self.monitor = monitor

    def _evaluate_result(self):
        """N at the new state in ``n_result``, with the model's monitor."""
        b = self._buffers
        return self.model.explicit(b[self._result], b[self._n_result], monitor=True)

    def _step_fixed(self, h):
        self.stepper.step(self.u, h, self._n, self._buffers[self._result])
        self._accept(self._evaluate_result())

    def _attempt(self, h) -> bool:
        """One attempt of a step of h with error control; returns whether it was accepted (then
        the new state, N and its monitor are in place and ``dt_next`` is proposed)."""
        if self.error_estimate == "embedded":
            err, order = self._embedded_error(h), self.scheme.order_hat
        else:
            err, order = self._doubling_error(h), self.scheme.order
        tol = self.rtol * self.model.norm(self._buffers[self._result]) + self.atol
        factor = step_factor(err / tol if tol > 0 else math.inf, order)
        if err <= tol:
            if self.error_estimate == "doubling":  # D at the midpoint, then N at the new state
                b = self._buffers
                self._dissipation_mid = self._dissipation(b["half"], b["n_half"])
                self._monitor = self._evaluate_result()
            shortened = h < self.dt_next
            self.dt_next = max(h * factor, self.dt_next) if shortened else h * factor
            self._accept(self._monitor)
            return True
        self.rejected += 1
        self.dt_next = h * factor
        return False

    def _embedded_error(self, h) -> float:
        """‖u_new − û‖ of the scheme's embedded pair; N(u_new) (the next step's first stage,
        and its monitor) is evaluated on the way."""
        b = self._buffers
        self.stepper.step(self.u, h, self._n, b["new"], err=b["err"])
        self._monitor = self._evaluate_result()
        self.stepper.complete_error(b["err"], h, b["new"], b["n_new"])
        return self.model.norm(b["err"])

    def _doubling_error(self, h) -> float:
        """‖u_{h/2,h/2} − u_h‖/(2^p − 1) from one step of h and two of h/2, whose result is the
        new state (N there is evaluated once it is accepted)."""
        b, step = self._buffers, self.stepper.step
        step(self.u, h, self._n, b["full"])
        step(self.u, 0.5 * h, self._n, b["half"])
        self.model.explicit(b["half"], b["n_half"])
        step(b["half"], 0.5 * h, b["n_half"], b["two"])
        difference = np.subtract(b["two"], b["full"], out=b["full"])
        return self.model.norm(difference) / (2**self.scheme.order - 1)

    def _check_state(self):
        self.model.check(self.monitor, self.t)


def _extension_kernel(model, index):
    """The compiled continuous extension (:func:`sobolev_flow.fused.extension`, with L and
    ``index``, the position of each entry of L among its distinct values, flattened) for a model
    with a linear part whose element-wise work is compiled (``model.kernels == "numba"``) and
    whose states are complex, else None (the numpy passes of :meth:`Solver._extend`)."""
    from . import fused

    threads, unsigned = fused.model_threads(model), fused.unsigned_index(index)
    if threads is None or unsigned is None:
        return None
    kernel = fused.extension(threads)
    return SimpleNamespace(extend=kernel.extend, chunks=kernel.chunks, index=unsigned,
                           linear=np.ascontiguousarray(model.linear, dtype=float).reshape(-1))


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


def check_memory(shape, need: int, processes: int = 1):
    """Refuse a run whose estimated working memory ``need`` (bytes, all processes) exceeds this
    machine's physical memory (per process, the work being split evenly)."""
    have = physical_memory()
    need = need // max(1, processes)
    if have and need > have:
        raise ValueError(f"shape={tuple(shape)}: the run needs an estimated {_gib(need)} of working memory, "
                         f"more than the {_gib(have)} of this machine")


def physical_memory() -> int:
    """Total physical memory in bytes (0 if unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 0


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n < 2**40 else f"{n / 2**40:.1f} TiB"
