"""Time per step and time to solution of sobolev_flow against Dedalus 3 at equal accuracy.

What is measured
----------------
The problem: the 2-D flow ∂t μ = div(μ∇ψ), ψ = (−Δ)^{−s}(μ − 1), on [0, 2π)² with n² points
(default n = 256), s = 1 and s = 2, from the smooth density

    μ0 = 1 + 0.3 cos x + 0.2 sin(2y + 0.3) + 0.1 cos(x + y)       (min μ0 ≈ 0.42)

to T = 1. The perturbation is large enough for the nonlinear term to matter: μ(T) differs from
the solution of the linearised flow by about 0.12 (printed as "nonlinear effect").

Both codes discretise it the same way: Fourier–Galerkin on the modes |k_j| < n/2 (Nyquist
dropped), the quadratic flux dealiased on a 3/2-padded grid, and the same linear/nonlinear
split around μ = 1,

    ∂t μ = Δψ + div((μ − 1)∇ψ),

the first term implicit (exponential for the ETD schemes), the second explicit.

* sobolev_flow: :class:`sobolev_flow.solver.Solver` with a fixed step ``dt=T/steps`` on a
  :class:`sobolev_flow.models.spectral.SpectralModel` (Wasserstein geometry) with ``threads=1``
  and the pyFFTW back end (numpy's if pyFFTW is missing), timed through its public stepping loop
  (which includes the per-step monitor of min μ, max|∇ψ| and the dissipation).
* Dedalus 3: fields μ, ψ on RealFourier × RealFourier bases with ``dealias=3/2``, ψ an auxiliary
  field with a constant gauge variable τ (serial distributor, ``comm=MPI.COMM_SELF``)::

      dt(mu) - lap(psi) = div((mu - 1)*grad(psi))
      lap(psi) + mu + tau = 1              (s = 1:  −Δψ = μ − 1)
      lap(lap(psi)) - mu + tau = -1        (s = 2:   Δ²ψ = μ − 1)
      integ(psi) = 0

  The initial ψ is computed from μ0 by a Dedalus LBVP with the same constraint equations: with
  ψ = 0 at t = 0 the first step evaluates the explicit term with the wrong ψ, which makes every
  scheme first order (observed).

Scheme pairs (same order, both implicit in the linear part):

* ``ars222`` vs ``RK222``: both are the L-stable, stiffly accurate IMEX Runge–Kutta scheme
  (2,2,2) of Ascher, Ruuth & Spiteri (1997), so with the same dt the two codes compute the same
  numbers up to rounding (the check table prints the difference).
* ``etdrk4`` vs ``SBDF4``: SBDF4 (Wang & Ruuth 2008) is Dedalus' only 4th-order IMEX scheme.
  Dedalus starts it with SBDF1, SBDF2 and SBDF3 steps of the same dt; the first-order start
  contributes an O(dt²) error, so with a fixed dt it converges at order 2 only (the table shows
  the observed order).
* ``etdrk4`` vs ``RK443``: RK443, the (4,4,3) IMEX Runge–Kutta scheme of Ascher, Ruuth & Spiteri
  (1997), is Dedalus' highest-order one-step scheme: order 3, no start-up, the closest to a
  4th-order one-step scheme.

Equal accuracy: the reference is sobolev_flow ``etdrk4`` with 400 fixed steps (200 with
``--quick``; its error, estimated by comparison with half as many steps, is printed and is far
below the targets). Each code and scheme runs fixed steps dt = T/m for m = 4, 8, 16, ... until the
max-norm error of μ(T) against the reference is below the smallest target, or m reaches a cap.
The steps needed for a target error (default 1e-6 and 1e-8) are interpolated in log-log between
the two runs bracketing it (rounded up); when no run reached the target the last two runs are
extrapolated with their observed order, and the count is marked with ``*``. The order shown is
the slope of the last two runs. The Dedalus sweeps are capped lower than sobolev_flow's (a
Dedalus step costs several times more), so Dedalus' counts at 1e-8 are mostly extrapolated: for
RK222 this is safe, its errors being those of ``ars222`` to rounding, and RK222, RK443 and SBDF4
all show their asymptotic order (2, 3, 2) from 16 steps on.

The ``etdrk4``/``SBDF4`` ratio mostly measures Dedalus' low-order start-up, not the cost of a
4th-order multistep scheme: SBDF4 started accurately (e.g. from exact history, or with graded
small first steps) would need far fewer steps. The ``etdrk4``/``RK443`` rows are the
comparison of the best high-order schemes each code offers for fixed steps.

Time per step: the median of ``--repeats`` timed blocks of 20 steps (after a warm-up that
includes Dedalus' matrix factorisations), the blocks of all schemes and both codes interleaved so
that load from other processes affects them alike. Both run on one thread: OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS and MKL_NUM_THREADS default to 1, sobolev_flow gets ``threads=1``, and
Dedalus runs serially (its FFTW transforms are single-threaded). Time to solution = steps needed ×
time per step; set-up is not included (Dedalus: about 0.8 s for the LBVP giving ψ(0), once, and
about 1.5 s per solver for building and factorising its matrices at 256²; sobolev_flow: well
under 0.1 s). The ratio is Dedalus / sobolev_flow time to
solution (> 1: sobolev_flow is faster). Dedalus plans its FFTs with FFTW_MEASURE (its default),
sobolev_flow with FFTW_ESTIMATE (its default).

Installing Dedalus (a separate environment; Debian/Ubuntu, as root, Python 3.11)
------------------------------------------------------------------------------------
Dedalus 3 is a source distribution on PyPI that compiles against FFTW (with its MPI interface)
and MPI::

    apt-get update && apt-get install -y libfftw3-dev libfftw3-mpi-dev libopenmpi-dev openmpi-bin
    python3.11 -m venv ~/dedalus-env
    ~/dedalus-env/bin/pip install numpy scipy cython mpi4py setuptools wheel pyfftw h5py tqdm
    CC=mpicc FFTW_PATH=/usr FFTW_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu \\
        MPI_PATH=/usr/lib/x86_64-linux-gnu/openmpi \\
        ~/dedalus-env/bin/pip install --no-cache --no-build-isolation dedalus

sobolev_flow itself is not installed there; it is found through PYTHONPATH.

Running (from the repository root)::

    PYTHONPATH=. OMP_NUM_THREADS=1 ~/dedalus-env/bin/python benchmarks/dedalus_compare.py            # n = 256, ~6 minutes
    PYTHONPATH=. OMP_NUM_THREADS=1 ~/dedalus-env/bin/python benchmarks/dedalus_compare.py --quick    # n = 128, ~1 minute
    PYTHONPATH=. OMP_NUM_THREADS=1 ~/dedalus-env/bin/python benchmarks/dedalus_compare.py --n 128 --s 2 --repeats 9

It prints a markdown table to stdout. Without an importable Dedalus it exits with status 1 and
a one-line message. From other code: ``rows = compare(...)`` and ``print(markdown(rows))``.
"""

from __future__ import annotations

import os

# One thread for BLAS/OpenMP in both codes; must precede the first import of numpy (hence the
# imports below the loop).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import logging
import math
import statistics
import sys
import time

import numpy as np

from sobolev_flow.grid import Torus
from sobolev_flow.models.spectral import SpectralModel
from sobolev_flow.solver import Solver

__all__ = ["PAIRS", "TARGETS", "compare", "dedalus_available", "initial_density", "main", "markdown"]

#: (sobolev_flow scheme, Dedalus timestepper) pairs compared.
PAIRS = (("ars222", "RK222"), ("etdrk4", "SBDF4"), ("etdrk4", "RK443"))

#: Default target max-norm errors of μ(T).
TARGETS = (1e-6, 1e-8)

#: Largest step count of an accuracy sweep (full setting); --quick halves it.
MAX_STEPS = {"ars222": 2048, "etdrk4": 160, "RK222": 320, "SBDF4": 320, "RK443": 160}

#: Steps per timed block, and warm-up steps before the first block.
BLOCK = 20
WARMUP = 5

INSTALL_HINT = (
    "Dedalus 3 is not importable; install it in a separate environment: apt-get update && apt-get install -y "
    "libfftw3-dev libfftw3-mpi-dev libopenmpi-dev openmpi-bin && python3.11 -m venv ~/dedalus-env && "
    "~/dedalus-env/bin/pip install numpy scipy cython mpi4py setuptools wheel pyfftw h5py tqdm && "
    "CC=mpicc FFTW_PATH=/usr FFTW_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu MPI_PATH=/usr/lib/x86_64-linux-gnu/openmpi "
    "~/dedalus-env/bin/pip install --no-cache --no-build-isolation dedalus; then run PYTHONPATH=. "
    "~/dedalus-env/bin/python benchmarks/dedalus_compare.py (see its docstring)"
)


# ============================================================================ the problem
def initial_density(x, y) -> np.ndarray:
    """μ0 = 1 + 0.3 cos x + 0.2 sin(2y + 0.3) + 0.1 cos(x + y) on broadcastable coordinates.

    Parameters
    ----------
    x, y : ndarray
        Coordinates in [0, 2π), broadcastable against each other (e.g. shapes (n, 1), (1, n)).

    Returns
    -------
    ndarray
        The density, of the broadcast shape; its mean over a uniform grid is 1 up to rounding.
    """
    return 1 + 0.3 * np.cos(x) + 0.2 * np.sin(2 * y + 0.3) + 0.1 * np.cos(x + y)


def _fft_backend() -> str:
    try:
        import pyfftw  # noqa: F401
    except ImportError:
        return "numpy"
    return "pyfftw"


def _max_error(a, b) -> float:
    """max|a − b|, inf when either is not finite."""
    diff = np.abs(np.asarray(a) - np.asarray(b))
    return float(diff.max()) if np.all(np.isfinite(diff)) else math.inf


# ============================================================================ sobolev_flow
class _SobolevRun:
    """sobolev_flow on the benchmark problem: fixed-step runs to T and a stepper for timing."""

    code = "sobolev_flow"

    def __init__(self, n, s, t_end):
        self.grid = Torus((n, n))
        self.s, self.t_end = s, t_end
        self.mu0 = initial_density(*self.grid.mesh())
        self.backend = _fft_backend()

    def _model(self) -> SpectralModel:
        return SpectralModel(self.grid, self.mu0, s=self.s, threads=1, fft_backend=self.backend)

    def _solver(self, scheme, steps):
        return Solver(self._model(), scheme=scheme, dt=self.t_end / steps)

    def run(self, scheme, steps) -> np.ndarray:
        """μ(T) after ``steps`` fixed steps."""
        solver = self._solver(scheme, steps)
        solver.advance(self.t_end)
        if solver.steps != steps:
            raise RuntimeError(f"{scheme}: took {solver.steps} steps instead of {steps}")
        return solver.model.density(solver.u)

    def stepper(self, scheme, steps):
        """A callable taking ``k`` steps of T/steps each (the state runs on past T)."""
        solver = self._solver(scheme, steps)

        def advance(k):
            for _ in range(k):
                solver.step(math.inf)

        return advance

    def linear(self) -> np.ndarray:
        """μ(T) of the linearised flow ∂t ρ = Lρ (the nonlinear term dropped)."""
        model = self._model()
        rho_hat = self.grid.project(self.grid.to_spectral(self.mu0 - 1))
        return 1 + self.grid.to_physical(np.exp(model.linear * self.t_end) * rho_hat)


# ============================================================================ Dedalus
def dedalus_available() -> bool:
    """Whether Dedalus 3 (``dedalus.public``) and mpi4py can be imported."""
    try:
        _import_dedalus()
    except ImportError:
        return False
    return True


def _import_dedalus():
    """``dedalus.public`` and ``mpi4py.MPI``; Dedalus' stdout log handler is moved to stderr, warnings only."""
    import dedalus.public as d3
    from dedalus.tools import logging as dedalus_logging
    from mpi4py import MPI

    handler = getattr(dedalus_logging, "stdout_handler", None)
    if handler is not None:
        handler.setLevel(logging.WARNING)
        handler.setStream(sys.stderr)
    return d3, MPI


class _DedalusRun:
    """Dedalus 3 on the benchmark problem (see the module docstring for the equations).

    The bases (and their FFT plans) and ψ(0) are computed once; every solver gets fresh fields
    set to the same initial coefficients. ``mu0`` (an n × n array on the points 2πj/n, optional)
    replaces the benchmark's initial density. ``setup_time`` is the wall time (s) of that shared
    set-up (bases, distributor, the LBVP giving ψ(0)).
    """

    code = "Dedalus"

    def __init__(self, n, s, t_end, mu0=None):
        if s not in (1, 2):
            raise ValueError(f"s={s}: the Dedalus formulation is written for s = 1 and s = 2")
        start = time.perf_counter()
        d3, mpi = _import_dedalus()
        self.d3, self.n, self.s, self.t_end = d3, n, s, t_end
        coords = d3.CartesianCoordinates("x", "y")
        self.dist = d3.Distributor(coords, dtype=np.float64, comm=mpi.COMM_SELF)
        self.bases = tuple(d3.RealFourier(coords[c], size=n, bounds=(0, 2 * np.pi), dealias=3 / 2) for c in "xy")
        names = self._fields()
        mu, psi, tau = names["mu"], names["psi"], names["tau"]
        mu["g"] = initial_density(*self.dist.local_grids(*self.bases)) if mu0 is None else mu0
        # ψ(0) from μ0: the constraint of the IVP with μ given
        init = d3.LBVP([psi, tau], namespace=names)
        init.add_equation("lap(psi) + tau = 1 - mu" if s == 1 else "lap(lap(psi)) + tau = mu - 1")
        init.add_equation("integ(psi) = 0")
        init.build_solver().solve()
        self.initial = {name: np.array(field["c"]) for name, field in names.items()}
        self.setup_time = time.perf_counter() - start

    def _fields(self):
        dist = self.dist
        return {"mu": dist.Field(name="mu", bases=self.bases), "psi": dist.Field(name="psi", bases=self.bases),
                "tau": dist.Field(name="tau")}

    def _solver(self, timestepper):
        """A fresh IVP solver with μ = μ0 and ψ consistent with it; returns (solver, mu)."""
        names = self._fields()
        for name, field in names.items():
            field["c"] = self.initial[name]
        problem = self.d3.IVP([names["mu"], names["psi"], names["tau"]], namespace=names)
        problem.add_equation("dt(mu) - lap(psi) = div((mu - 1)*grad(psi))")
        problem.add_equation("lap(psi) + mu + tau = 1" if self.s == 1 else "lap(lap(psi)) - mu + tau = -1")
        problem.add_equation("integ(psi) = 0")
        return problem.build_solver(getattr(self.d3, timestepper)), names["mu"]

    def run(self, timestepper, steps) -> np.ndarray:
        """μ(T) after ``steps`` fixed steps."""
        return self.timed_run(timestepper, steps)[0]

    def timed_run(self, timestepper, steps) -> tuple[np.ndarray, dict]:
        """μ(T) after ``steps`` fixed steps, and the wall times (s) of the run's parts.

        Returns
        -------
        mu : ndarray
            μ(T) on the n × n grid.
        times : dict
            ``solver``: building the IVP solver (fields, equations, matrices); ``loop``: the
            ``steps`` calls of ``solver.step``, the first of which factorises the implicit
            matrices for the step T/steps; ``first_step``: that first call alone.
        """
        start = time.perf_counter()
        solver, mu = self._solver(timestepper)
        built = time.perf_counter()
        dt = self.t_end / steps
        solver.step(dt)
        first = time.perf_counter()
        for _ in range(steps - 1):
            solver.step(dt)
        end = time.perf_counter()
        mu.change_scales(1)
        return np.array(mu["g"]), {"solver": built - start, "loop": end - built, "first_step": first - built}

    def stepper(self, timestepper, steps):
        """A callable taking ``k`` steps of T/steps each (the state runs on past T)."""
        solver, _ = self._solver(timestepper)
        dt = self.t_end / steps

        def advance(k):
            for _ in range(k):
                solver.step(dt)

        return advance


# ============================================================================ accuracy
def _sweep(run, scheme, reference, stop, max_steps, first=4):
    """Fixed-step runs with 4, 8, 16, ... steps until the error is below ``stop`` or past ``max_steps``.

    Returns the step counts, the errors and a dict step count -> μ(T).
    """
    steps, errors, results = [], [], {}
    m = first
    while m <= max_steps:
        try:
            results[m] = run(scheme, m)
            err = _max_error(results[m], reference)
        except (RuntimeError, FloatingPointError):  # blow-up or step failure
            err = math.inf
        steps.append(m)
        errors.append(err)
        if err <= stop:
            break
        m *= 2
    return steps, errors, results


def _order(steps, errors) -> float:
    """Observed order −d log(err)/d log(steps) of the last two finite runs (nan if undefined)."""
    pts = [(m, e) for m, e in zip(steps, errors) if math.isfinite(e) and e > 0]
    if len(pts) < 2:
        return math.nan
    (m0, e0), (m1, e1) = pts[-2:]
    return -math.log(e1 / e0) / math.log(m1 / m0)


def steps_for(target, steps, errors) -> tuple[float, bool]:
    """Steps needed for a max error ``target``, by log-log interpolation of a sweep.

    Parameters
    ----------
    target : float
    steps, errors : sequence
        A sweep: step counts (increasing) and the errors of their runs.

    Returns
    -------
    steps_needed : float
        Rounded up to an integer; nan when the sweep has fewer than two finite runs.
    extrapolated : bool
        True when no run reached the target (or the first already did), so the count comes
        from extending the line through the nearest two runs.
    """
    pts = [(m, e) for m, e in zip(steps, errors) if math.isfinite(e) and e > 0]
    if len(pts) < 2:
        return math.nan, True
    hit = next((i for i, (_, e) in enumerate(pts) if e <= target), None)
    if hit is None:
        (m0, e0), (m1, e1), extrapolated = pts[-2], pts[-1], True
    elif hit == 0:
        (m0, e0), (m1, e1), extrapolated = pts[0], pts[1], True
    else:
        (m0, e0), (m1, e1), extrapolated = pts[hit - 1], pts[hit], False
    if e1 >= e0:  # not converging: no estimate
        return math.nan, True
    slope = math.log(m1 / m0) / math.log(e1 / e0)
    needed = m0 * math.exp(slope * math.log(target / e0))
    return float(math.ceil(needed - 1e-9)), extrapolated


# ============================================================================ timing
def _time_steps(codes, schemes, timing_steps, repeats):
    """Median seconds per step of every (code, scheme), blocks of all of them interleaved."""
    steppers = {}
    for code, scheme in schemes:
        advance = codes[code].stepper(scheme, timing_steps)
        advance(WARMUP)
        steppers[code, scheme] = advance
    samples = {key: [] for key in steppers}
    for _ in range(repeats):
        for key, advance in steppers.items():
            start = time.perf_counter()
            advance(BLOCK)
            samples[key].append((time.perf_counter() - start) / BLOCK)
    return {key: statistics.median(values) for key, values in samples.items()}


# ============================================================================ driver
def compare(n=256, s_values=(1, 2), repeats=7, quick=False, targets=TARGETS, t_end=1.0, pairs=PAIRS) -> list[dict]:
    """Run the comparison and return one row per (s, scheme pair, target error).

    Parameters
    ----------
    n : int
        Points per axis (even).
    s_values : sequence of {1, 2}
        Sobolev orders.
    repeats : int
        Timed blocks of :data:`BLOCK` steps per scheme and code (their median is reported).
    quick : bool
        Reference with 200 instead of 400 steps and sweeps capped at half the step counts of
        :data:`MAX_STEPS`.
    targets : sequence of float
        Max-norm errors of μ(T) at which the codes are compared.
    t_end : float
        Final time T.
    pairs : sequence of (str, str)
        (sobolev_flow scheme, Dedalus timestepper) pairs.

    Returns
    -------
    list of dict
        Keys: ``n``, ``s``, ``target``, ``scheme``, ``dedalus_scheme``; per code (prefix ``sf_``
        for sobolev_flow, ``dd_`` for Dedalus): ``order`` (observed), ``step_time`` (s),
        ``steps`` (needed for the target), ``extrapolated`` (bool), ``time`` (steps × step_time,
        s), ``sweep`` (list of (steps, error)); ``ratio`` (Dedalus / sobolev_flow time);
        and per s: ``reference_steps``, ``reference_error`` (estimate), ``nonlinear_effect``
        (max|μ(T) − μ_linear(T)|), ``same_scheme_steps`` and ``same_scheme_difference``
        (max|Dedalus RK222 − sobolev_flow ars222| at equal dt, nan if that pair is absent),
        ``dedalus_best_error`` (smallest error of any Dedalus run against the sobolev_flow
        reference) with ``dedalus_best`` (its scheme and steps).

    Raises
    ------
    ImportError
        When Dedalus 3 cannot be imported.
    """
    _import_dedalus()
    targets = tuple(sorted(targets, reverse=True))
    scale = 0.5 if quick else 1.0
    ref_steps = 200 if quick else 400
    rows = []
    for s in s_values:
        codes = {"sobolev_flow": _SobolevRun(n, s, t_end), "Dedalus": _DedalusRun(n, s, t_end)}
        sf = codes["sobolev_flow"]
        reference = sf.run("etdrk4", ref_steps)
        reference_error = _max_error(sf.run("etdrk4", ref_steps // 2), reference) / 15
        nonlinear_effect = _max_error(sf.linear(), reference)

        schemes = []  # (code, scheme), in order, without repeats
        for a, b in pairs:
            for key in (("sobolev_flow", a), ("Dedalus", b)):
                if key not in schemes:
                    schemes.append(key)
        sweeps = {}
        for code, scheme in schemes:
            cap = max(8, int(MAX_STEPS.get(scheme, 160) * scale))
            sweeps[code, scheme] = _sweep(codes[code].run, scheme, reference, min(targets), cap)

        # agreement of the two codes
        same_steps, same_diff = math.nan, math.nan
        if ("sobolev_flow", "ars222") in sweeps and ("Dedalus", "RK222") in sweeps:
            common = set(sweeps["sobolev_flow", "ars222"][0]) & set(sweeps["Dedalus", "RK222"][0])
            if common:
                same_steps = max(common)
                same_diff = _max_error(sweeps["sobolev_flow", "ars222"][2].get(same_steps, math.nan),
                                       sweeps["Dedalus", "RK222"][2].get(same_steps, math.nan))
        best = min(((e, scheme, m) for (code, scheme), (ms, es, _) in sweeps.items() if code == "Dedalus"
                    for m, e in zip(ms, es)), default=(math.nan, "", 0))

        step_time = _time_steps(codes, schemes, timing_steps=100, repeats=repeats)

        for a, b in pairs:
            for target in targets:
                row = {"n": n, "s": s, "target": target, "scheme": a, "dedalus_scheme": b}
                for prefix, key in (("sf_", ("sobolev_flow", a)), ("dd_", ("Dedalus", b))):
                    ms, es, _ = sweeps[key]
                    needed, extrapolated = steps_for(target, ms, es)
                    row.update({
                        prefix + "order": _order(ms, es),
                        prefix + "step_time": step_time[key],
                        prefix + "steps": needed,
                        prefix + "extrapolated": extrapolated,
                        prefix + "time": needed * step_time[key],
                        prefix + "sweep": list(zip(ms, es)),
                    })
                row["ratio"] = row["dd_time"] / row["sf_time"]
                row.update({
                    "reference_steps": ref_steps, "reference_error": reference_error,
                    "nonlinear_effect": nonlinear_effect, "same_scheme_steps": same_steps,
                    "same_scheme_difference": same_diff, "dedalus_best_error": best[0],
                    "dedalus_best": f"{best[1]}, {best[2]} steps",
                })
                rows.append(row)
    return rows


def _steps_text(steps, extrapolated) -> str:
    if not math.isfinite(steps):
        return "—"
    return f"{int(steps)}{'*' if extrapolated else ''}"


def markdown(rows) -> str:
    """The rows of :func:`compare` as markdown: the comparison table and the agreement checks."""
    head = ("| s | target error | sobolev_flow / Dedalus scheme | observed order | time per step (ms) "
            "| steps needed | time to solution (s) | Dedalus / sobolev_flow |")
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['s']:g} | {r['target']:.0e} | {r['scheme']} / {r['dedalus_scheme']} "
            f"| {r['sf_order']:.2f} / {r['dd_order']:.2f} "
            f"| {1e3 * r['sf_step_time']:.2f} / {1e3 * r['dd_step_time']:.2f} "
            f"| {_steps_text(r['sf_steps'], r['sf_extrapolated'])} / {_steps_text(r['dd_steps'], r['dd_extrapolated'])} "
            f"| {r['sf_time']:.3g} / {r['dd_time']:.3g} | {r['ratio']:.1f} |"
        )
    lines += ["", "`*`: extrapolated from the last two runs of the sweep with their observed order.", ""]
    lines += [("| s | n | reference (etdrk4 steps, est. error) | nonlinear effect max\\|μ − μ_lin\\| "
               "| max\\|Dedalus RK222 − sobolev_flow ars222\\| (same dt) "
               "| max\\|best Dedalus run − sobolev_flow reference\\| |"),
              "|---|---|---|---|---|---|"]
    seen = set()
    for r in rows:
        if r["s"] in seen:
            continue
        seen.add(r["s"])
        same = ("—" if not math.isfinite(r["same_scheme_difference"])
                else f"{r['same_scheme_difference']:.1e} ({r['same_scheme_steps']} steps)")
        lines.append(f"| {r['s']:g} | {r['n']} | {r['reference_steps']}, {r['reference_error']:.1e} "
                     f"| {r['nonlinear_effect']:.2e} | {same} | {r['dedalus_best_error']:.1e} ({r['dedalus_best']}) |")
    lines += ["", "Sweeps (steps: max error of μ(T)):", ""]
    shown = set()
    for r in rows:
        for prefix, code, name in (("sf_", "sobolev_flow", r["scheme"]), ("dd_", "Dedalus", r["dedalus_scheme"])):
            if (r["s"], code, name) in shown:
                continue
            shown.add((r["s"], code, name))
            text = ", ".join(f"{m}: {e:.1e}" for m, e in r[prefix + "sweep"])
            lines.append(f"- s = {r['s']:g}, {code} {name}: {text}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=None, help="points per axis (default 256, 128 with --quick)")
    parser.add_argument("--s", type=int, nargs="+", default=[1, 2], choices=[1, 2], help="Sobolev orders")
    parser.add_argument("--repeats", type=int, default=None, help="timed blocks per scheme (default 7, 3 with --quick)")
    parser.add_argument("--targets", type=float, nargs="+", default=list(TARGETS), help="target max errors")
    parser.add_argument("--t-end", type=float, default=1.0, help="final time T")
    parser.add_argument("--quick", action="store_true", help="n = 128, fewer repeats, shorter sweeps")
    args = parser.parse_args(argv)
    n = args.n if args.n is not None else (128 if args.quick else 256)
    repeats = args.repeats if args.repeats is not None else (3 if args.quick else 7)
    if n < 8 or n % 2:
        parser.error(f"--n {n}: must be even and at least 8")
    if repeats < 1:
        parser.error("--repeats must be at least 1")
    if not dedalus_available():
        sys.exit(f"dedalus_compare: {INSTALL_HINT}")  # the message on stderr, exit status 1
    start = time.perf_counter()
    rows = compare(n=n, s_values=tuple(args.s), repeats=repeats, quick=args.quick, targets=args.targets,
                   t_end=args.t_end)
    print(f"## sobolev_flow vs Dedalus 3: {n}², T = {args.t_end:g}, one thread, "
          f"median of {repeats} blocks of {BLOCK} steps\n")
    print(markdown(rows))
    print(f"\n(total {time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
