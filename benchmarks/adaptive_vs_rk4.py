"""Right-hand-side evaluations of an adaptive rate study versus fixed-step RK4 of equal accuracy.

What is measured
----------------
The study: the 1-D flow ∂t μ = div(μ∇ψ), ψ = (−Δ)^{−s}(μ − 1), with s = 2, ν ≡ 1, μ0 the
``"kink"`` density (|ρ_k|² ∝ k^{-4}, p = 4, so E ~ t^{-a} with the predicted exponent
a = (2s + p − d)/(2s − 2) = 3.5), on n = 4096 points up to t_end = 1e5. The energy
E = ½ Σ_{k≠0} |k|^{-4} |ρ_k|² is computed by this script (:func:`energy_of`, independently of the
package) from the densities at the output times t = 0 and t = 10^{j/20} (20 per decade from 0.01
to t_end, all hit exactly by the solver), and the exponent a is fitted with
:func:`sobolev_flow.rates.fit_power_law` over the fixed window [t_end/10, t_end] for every run.

Runs, all through :class:`sobolev_flow.solver.Solver` on a
:class:`sobolev_flow.models.spectral.SpectralModel` with ``threads=1`` (not :func:`solve`, which
keeps every diagnostic of every step: gigabytes for the ~10^7 steps of a stable fixed-step run):

* reference: adaptive ``etdrk4`` at rtol = 1e-10, exponent a_ref;
* adaptive: ``etdrk4`` at rtol = 1e-6 (the run under test) and the other ``--rtols``;
* fixed step: ``rk4`` with ``dt=h``.

Fixed-step RK4 is limited not only by the linear part (h·max|L| ≤ 2.785 with max|L| = 1) but, at
early times, by the advection inside the nonlinear term div(ρ∇ψ): h·k_max·max|∇ψ| must stay
within RK4's imaginary stability interval (≈ 2.83), and max|∇ψ| ≈ 0.3 at t = 0 (k_max = n/2 − 1).
(Early on, a fixed-step run also takes shorter steps to land on the geometric output times.) The
script therefore first locates the largest stable h: it halves h from 2.5 until a probe over
[0, ``t_probe``] (default 10, after which max|∇ψ| has decayed about 500-fold) stays finite with
E(t_probe) within 1e-3 of the reference (a blow-up test, not an accuracy test; the table shows
each probe's E(t_probe) error), then bisects in log h to ``--h-tol``. Then it runs RK4 to t_end at
h_stable, h_stable/2, h_stable/4, ... until a run is as accurate as the adaptive one, as long as
the projected wall time (exact step count × time per step measured in the probes) fits in what
is left of ``--rk4-budget``; the first h that does not fit is shown as a projected row (exact
step and evaluation counts, projected wall time, no exponent).

Equal accuracy
--------------
The exponent error of a run is |a − a_ref|. A fixed-step run matches the adaptive run when its
exponent error is at most that of the adaptive rtol = 1e-6 run. The reported ratio is

    ratio = RHS evaluations of the cheapest matching RK4 run / RHS evaluations of the adaptive run,

counting ``Solver.stats()["rhs_evaluations"]`` (RK4: 4 per step + 1). If the largest stable h is
already as accurate as the adaptive run, it is the cheapest matching run (larger h blow up).
When no matching run was made, the script prints a lower bound instead, the larger of

* stability: any RK4 run must use h < h_unstable (the smallest h seen to blow up, or 2.785 if
  none did), so it needs at least the evaluations of h_unstable;
* accuracy: if RK4 runs were made and all were less accurate, a matching run needs a smaller h
  than the finest of them (assuming the error keeps falling as h decreases, as it does here).

Run (from the repository root)::

    PYTHONPATH=. python benchmarks/adaptive_vs_rk4.py                     # full setting, ~10 s
    PYTHONPATH=. python benchmarks/adaptive_vs_rk4.py --quick             # n = 512, t_end = 1e4, ~15 s
    PYTHONPATH=. python benchmarks/adaptive_vs_rk4.py --rk4-budget inf    # also run stable RK4 (hours)

With n = 4096 the largest stable h is ≈ 6.3e-3 (≈ 1.6e7 steps to t_end, over an hour), so the
default budget (300 s) runs no RK4 step to t_end and the result is the stability lower bound.

Target: ratio ≥ 30, i.e. the adaptive study needs at least 30× fewer right-hand-side evaluations
than fixed-step RK4 of equal exponent accuracy.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import math
import time
import warnings
from dataclasses import dataclass

import numpy as np

from sobolev_flow.grid import Torus
from sobolev_flow.initial import density
from sobolev_flow.models.spectral import SpectralModel
from sobolev_flow.rates import energy_exponent, fit_power_law
from sobolev_flow.solver import Solver
from sobolev_flow.steppers import get_scheme

S = 2.0
P_KINK = 4.0
TARGET_RATIO = 30.0
REFERENCE_RTOL = 1e-10
COMPARED_RTOL = 1e-6
FIRST_OUTPUT = 0.01
PER_DECADE = 20
LARGEST_H = 2.5
#: A probe is stable when E(t_probe) is finite and within this relative distance of the reference
#: (a test of blow-up, not of accuracy: unstable modes grow exponentially).
PROBE_TOLERANCE = 1e-3
#: At most this many halvings of the largest stable h in search of a run as accurate as the adaptive one.
MAX_HALVINGS = 8


@dataclass(frozen=True)
class Setting:
    """The study's parameters.

    Attributes
    ----------
    n : int
        Grid points.
    t_end : float
        Final time (a power of 10).
    t_probe : float
        End of the stability probes of fixed-step RK4.
    rtols : tuple of float
        Tolerances of the adaptive runs (``COMPARED_RTOL`` among them).
    rk4_budget : float
        Seconds available for fixed-step RK4 runs to t_end (a run is made only if its projection fits).
    h_tol : float
        Relative width to which the largest stable h is bracketed.
    """

    n: int
    t_end: float
    t_probe: float
    rtols: tuple
    rk4_budget: float
    h_tol: float

    @property
    def window(self) -> tuple:
        """The fitting window [t_end/10, t_end]."""
        return (self.t_end / 10, self.t_end)

    def times(self) -> np.ndarray:
        """Output times: 0 and 10^{j/20} from ``FIRST_OUTPUT`` to t_end (exact powers of ten included)."""
        lo = round(PER_DECADE * math.log10(FIRST_OUTPUT))
        hi = round(PER_DECADE * math.log10(self.t_end))
        return np.concatenate([[0.0], 10.0 ** (np.arange(lo, hi + 1) / PER_DECADE)])


@dataclass
class Run:
    """One integration and its measurements.

    Attributes
    ----------
    scheme : str
    rtol, h : float or None
        Tolerance (adaptive) or fixed step.
    steps, evaluations : int
        Accepted steps and right-hand-side evaluations (exact; projected ones are counted, not run).
    wall : float
        Wall time (s) of the integration, or the projection.
    times, energy : ndarray or None
        Output times reached and E there (None for a projected run).
    failed_at : float or None
        Time at which the run became non-finite or failed the probe check.
    dts : ndarray or None
        Accepted step sizes (adaptive runs only).
    cfl : ndarray or None
        The CFL bound 0.5·dx/max|∇ψ| at the start of each accepted step (adaptive runs only).
    projected : bool
        Counts and wall time are projected, the run was not made.
    probe : bool
        The run stopped at t_probe (a stability probe).
    probe_error : float or None
        |E(t_probe)/E_ref(t_probe) − 1| of a probe that stayed finite.
    """

    scheme: str
    rtol: float | None = None
    h: float | None = None
    steps: int = 0
    evaluations: int = 0
    wall: float = 0.0
    times: np.ndarray | None = None
    energy: np.ndarray | None = None
    failed_at: float | None = None
    dts: np.ndarray | None = None
    cfl: np.ndarray | None = None
    projected: bool = False
    probe: bool = False
    probe_error: float | None = None


# ============================================================================ measurement
def energy_of(mu: np.ndarray, s: float = S) -> float:
    """E = ½ Σ_{k≠0} |k|^{−2s} |ρ_k|², ρ = μ − 1, from grid values (independent of the package).

    Parameters
    ----------
    mu : ndarray, shape (n,)
        Density on the 1-D grid (relative to dx/2π).
    s : float

    Returns
    -------
    float
    """
    n = mu.size
    rho = np.fft.rfft(mu - 1.0) / n
    k = np.arange(1, rho.size)
    weight = np.where(k < n / 2, 2.0, 1.0)  # ±k for 1 ≤ k < n/2; the Nyquist mode once
    return 0.5 * float(np.sum(weight * k ** (-2 * s) * np.abs(rho[1:]) ** 2))


@contextlib.contextmanager
def quiet_solver():
    """Silence the undershoot warning of the model (and any warning of the solver) and numpy
    overflow warnings of unstable runs."""
    loggers = [logging.getLogger(name) for name in ("sobolev_flow.solver", "sobolev_flow.models.spectral")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def integrate(grid: Torus, mu0: np.ndarray, times: np.ndarray, record_dt: bool, **options) -> Run:
    """Advance from μ0 through ``times``, recording E at each output time.

    Parameters
    ----------
    grid : Torus
    mu0 : ndarray
    times : ndarray
        Output times (the last is the end of the run).
    record_dt : bool
        Keep every accepted step size (for adaptive runs; fixed runs take millions of steps).
    **options
        Passed to :class:`~sobolev_flow.solver.Solver` (``scheme``, ``rtol``, ``dt``).

    Returns
    -------
    Run
        With ``failed_at`` set if the state became non-finite.
    """
    run = Run(scheme=options["scheme"], rtol=options.get("rtol"), h=options.get("dt"))
    solver = Solver(SpectralModel(grid, mu0, s=S, threads=1), **options)
    dts, speeds = [], [solver.monitor.max_speed]

    def callback(sol):
        dts.append(sol.last_dt)
        speeds.append(sol.monitor.max_speed)

    energy = []
    start = time.perf_counter()
    with quiet_solver():
        try:
            for target in times:
                solver.advance(target, callback=callback if record_dt else None)
                energy.append(energy_of(solver.model.density(solver.u)))
        except (FloatingPointError, RuntimeError):
            run.failed_at = solver.t
    run.wall = time.perf_counter() - start
    stats = solver.stats()
    run.steps, run.evaluations = stats["steps"], stats["rhs_evaluations"]
    run.times, run.energy = times[: len(energy)], np.array(energy)
    if record_dt:
        run.dts = np.array(dts)
        run.cfl = solver.cfl * min(grid.dx) / np.array(speeds[:-1])
    return run


def fixed_steps(times: np.ndarray, h: float) -> int:
    """Steps a fixed-step run of h takes through ``times``, replicating ``Solver.step`` exactly.

    Parameters
    ----------
    times : ndarray
    h : float

    Returns
    -------
    int
    """
    t, steps = 0.0, 0
    for target in times:
        target = float(target)
        whole = max(int((target - t) / h) - 2, 0)  # steps that surely do not land, summed in one go
        for _ in range(whole):
            t += h
        steps += whole
        while t < target:
            landing = target - t <= h * (1 + 1e-10)
            t = target if landing else t + h
            steps += 1
    return steps


def fit(run: Run, window: tuple):
    """The fitted power law of E over ``window`` (exact window ends with a relative slack of 1e-9).

    Parameters
    ----------
    run : Run
    window : tuple of float

    Returns
    -------
    sobolev_flow.rates.Fit or None
        None for a run that did not reach the end of the window.
    """
    if run.energy is None or run.failed_at is not None or run.times[-1] < window[1] * (1 - 1e-9):
        return None
    slack = (window[0] * (1 - 1e-9), window[1] * (1 + 1e-9))
    return fit_power_law(run.times, run.energy, slack, name="energy")


# ============================================================================ fixed-step RK4
def probe(grid, mu0, times, h, t_probe, e_ref) -> Run:
    """Run fixed-step RK4 over [0, t_probe]; mark it failed unless E(t_probe) matches ``e_ref``.

    Parameters
    ----------
    grid, mu0, times
        As for :func:`integrate`.
    h : float
    t_probe : float
        An output time.
    e_ref : float
        Reference E(t_probe).

    Returns
    -------
    Run
    """
    head = times[times <= t_probe * (1 + 1e-12)]
    run = integrate(grid, mu0, head, record_dt=False, scheme="rk4", dt=h)
    run.probe = True
    if run.failed_at is None:
        run.probe_error = abs(run.energy[-1] / e_ref - 1)
        if not run.probe_error <= PROBE_TOLERANCE:
            run.failed_at = float(head[-1])
    return run


def largest_stable_h(grid, mu0, times, setting: Setting, e_ref: float) -> list:
    """Probes that bracket the largest stable fixed RK4 step to relative width ``setting.h_tol``.

    Halves h from ``LARGEST_H`` until a probe passes, then bisects in log h.

    Returns
    -------
    list of Run
        Every probe, in the order made; at least one passes unless none could.
    """
    probes = []
    h = LARGEST_H
    while True:
        probes.append(probe(grid, mu0, times, h, setting.t_probe, e_ref))
        if probes[-1].failed_at is None or h < 1e-6:
            break
        h /= 2
    if len(probes) == 1:
        return probes
    stable, unstable = h, 2 * h
    while unstable / stable > 1 + setting.h_tol:
        mid = math.sqrt(stable * unstable)
        probes.append(probe(grid, mu0, times, mid, setting.t_probe, e_ref))
        if probes[-1].failed_at is None:
            stable = mid
        else:
            unstable = mid
    return probes


def linear_stability_limit() -> float:
    """RK4's real stability interval over max|L| = max_k |k|^{2−2s} = 1 (k = 1, s ≥ 1)."""
    return get_scheme("rk4").real_stability / 1.0


def bracket(probes: list) -> tuple:
    """(largest stable h, smallest unstable h) among ``probes`` (None where there is none)."""
    stable = [p.h for p in probes if p.failed_at is None]
    unstable = [p.h for p in probes if p.failed_at is not None]
    return (max(stable) if stable else None, min(unstable) if unstable else None)


def full_rk4(grid, mu0, times, h, seconds_per_step, budget) -> Run:
    """Fixed-step RK4 to t_end when its projected wall time is within ``budget``, else the projection.

    Parameters
    ----------
    grid, mu0, times
        As for :func:`integrate`.
    h : float
    seconds_per_step : float
        Measured in the probes.
    budget : float
        Seconds.

    Returns
    -------
    Run
    """
    steps = fixed_steps(times, h)
    projected_wall = steps * seconds_per_step
    if projected_wall <= budget:
        return integrate(grid, mu0, times, record_dt=False, scheme="rk4", dt=h)
    return Run(scheme="rk4", h=h, steps=steps, evaluations=4 * steps + 1, wall=projected_wall, projected=True)


# ============================================================================ report
def describe(run: Run, window, a_ref, e_ref_end, t_end) -> dict:
    """Table cells of a run: exponent, its error, E(t_end) difference and a note.

    Parameters
    ----------
    run : Run
    window : tuple of float
        Fitting window.
    a_ref, e_ref_end : float
        Reference exponent and E(t_end).
    t_end : float

    Returns
    -------
    dict
        ``a``, ``error`` (|a − a_ref|), ``e_diff`` (|E(t_end)/E_ref(t_end) − 1|), each None when not
        available, and ``note``.
    """
    result = fit(run, window)
    a = None if result is None else result.exponent
    reached_end = run.energy is not None and run.failed_at is None and run.times[-1] >= t_end * (1 - 1e-12)
    e_diff = abs(run.energy[-1] / e_ref_end - 1) if reached_end else None
    if run.projected:
        note = "projected (over --rk4-budget), not run"
    elif run.failed_at is not None and run.probe_error is not None:
        note = f"unstable: E(t_probe) off by {run.probe_error:.2g}"
    elif run.failed_at is not None:
        note = f"unstable: non-finite at t = {run.failed_at:.3g}"
    elif run.probe:
        note = f"stable: E(t_probe) off by {run.probe_error:.2g}"
    else:
        note = ""
    return {"a": a, "error": None if a is None else abs(a - a_ref), "e_diff": e_diff, "note": note}


def fmt(value, spec) -> str:
    """``format(value, spec)``, or an em dash for None."""
    return "—" if value is None else format(value, spec)


def table(rows) -> str:
    """A markdown table of (label, run, cells) rows."""
    lines = ["| run | scheme | rtol / h | interval | steps | RHS evals | wall [s] | exponent a | abs(a − a_ref) "
             "| E(t_end) rel. diff | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, run, cells in rows:
        param = f"rtol={run.rtol:g}" if run.rtol is not None else f"h={run.h:.4g}"
        interval = f"[0, {run.times[-1]:.3g}]" if run.times is not None and run.probe else "[0, t_end]"
        wall = ("~" if run.projected else "") + f"{run.wall:.3g}"
        lines.append(f"| {label} | {run.scheme} | {param} | {interval} | {run.steps} | {run.evaluations} | {wall} "
                     f"| {fmt(cells['a'], '.8f')} | {fmt(cells['error'], '.2e')} | {fmt(cells['e_diff'], '.2e')} "
                     f"| {cells['note']} |")
    return "\n".join(lines)


def dt_summary(run: Run, times: np.ndarray) -> str:
    """Step-size statistics of an adaptive run, overall and per decade of t.

    Per decade: the number of accepted steps, their median, and what set them: the CFL bound (the
    step equals it within 1e-9), an output time (the step ends on one, or is the first of the two
    equal halves the solver splits a remainder into before one), or else the error control.

    Parameters
    ----------
    run : Run
        An adaptive run (with ``dts`` and ``cfl``).
    times : ndarray
        Output times.

    Returns
    -------
    str
    """
    t = np.cumsum(run.dts)
    at_cfl = run.dts >= run.cfl * (1 - 1e-9)
    lands = np.isclose(t[:, None], times[None, :], rtol=1e-12, atol=0).any(axis=1)
    halves = np.zeros_like(lands)
    halves[:-1] = lands[1:] & np.isclose(run.dts[:-1], run.dts[1:], rtol=1e-9, atol=0)
    landing = lands | halves
    parts = []
    first = round(math.log10(FIRST_OUTPUT))
    for lo in range(first, round(math.log10(t[-1]))):
        upper = t <= 10.0 ** (lo + 1) * (1 + 1e-12)
        inside = upper if lo == first else upper & (t > 10.0**lo * (1 + 1e-12))
        if not inside.any():
            continue
        cfl, output = np.sum(inside & at_cfl), np.sum(inside & landing & ~at_cfl)
        control = np.sum(inside & ~landing & ~at_cfl)
        interval = f"[0, 1e{lo + 1}]" if lo == first else f"(1e{lo}, 1e{lo + 1}]"
        parts.append(f"t in {interval}: {inside.sum():4d} steps, median dt {np.median(run.dts[inside]):.3g}; "
                     f"set by CFL {cfl}, by output times {output}, by error control {control}")
    return (f"rtol={run.rtol:g}: dt min {run.dts.min():.3g}, median {np.median(run.dts):.3g}, "
            f"max {run.dts.max():.3g} over {run.dts.size} steps\n    " + "\n    ".join(parts))


def verdict(adaptive, adaptive_cells, rk4_rows, bracket_h, times) -> str:
    """The ratio line: measured when a matching RK4 run was made, else lower bounds.

    Parameters
    ----------
    adaptive : Run
        The adaptive run under test.
    adaptive_cells : dict
        Its :func:`describe` cells.
    rk4_rows : list of (Run, dict)
        Fixed-step RK4 runs to t_end (made or projected), h decreasing.
    bracket_h : tuple
        (largest stable h, smallest unstable h).
    times : ndarray
        Output times (to count the steps of an h that was not run).

    Returns
    -------
    str
    """
    base, target = adaptive.evaluations, adaptive_cells["error"]
    matching = [(run, cells) for run, cells in rk4_rows if cells["error"] is not None and cells["error"] <= target]
    if matching:
        run, cells = min(matching, key=lambda rc: rc[0].evaluations)
        largest = run.h == bracket_h[0]
        why = ", the largest stable h: already more accurate than the adaptive run" if largest else ""
        ratio = run.evaluations / base
        return (f"ratio = {run.evaluations} / {base} = {ratio:.4g} (cheapest matching run: rk4 h={run.h:.4g}{why}; "
                f"exponent error {cells['error']:.2e} ≤ {target:.2e}); target ≥ {TARGET_RATIO:g}: "
                f"{'met' if ratio >= TARGET_RATIO else 'NOT met'}")
    stable, unstable = bracket_h
    if stable is None:
        return "ratio: undetermined (no stable fixed step found)"
    lines = []
    if unstable is None:
        unstable = linear_stability_limit()
        reason = f"stability: every RK4 run needs h < {unstable:.4g}, the linear limit 2.785/max|L|"
    else:
        reason = f"stability: every RK4 run needs h < {unstable:.4g}, the smallest h seen to blow up"
    bound = 4 * fixed_steps(times, unstable) + 1
    made = [run for run, cells in rk4_rows if not run.projected]
    if made:
        finest = min(made, key=lambda run: run.h)
        lines.append(f"measured: rk4 runs with h ≥ {finest.h:.4g} are less accurate than the adaptive run "
                     f"(best exponent error {min(c['error'] for r, c in rk4_rows if not r.projected):.2e} > "
                     f"{target:.2e})")
        if finest.evaluations > bound:
            bound = finest.evaluations
            reason = (f"accuracy: a matching run needs h < {finest.h:.4g} (assuming the error keeps falling with h, "
                      f"as it does here)")
    ratio = bound / base
    lines.insert(0, f"ratio ≥ {bound} / {base} = {ratio:.4g} (lower bound from {reason}); target ≥ "
                    f"{TARGET_RATIO:g}: {'met' if ratio >= TARGET_RATIO else 'not shown'}")
    pending = [run for run, _ in rk4_rows if run.projected]
    if pending:
        run = pending[0]
        lines.append(f"next candidate not run (over --rk4-budget): rk4 h={run.h:.4g}, {run.evaluations} evaluations "
                     f"({run.evaluations / base:.4g}× the adaptive run), projected {run.wall / 60:.1f} min")
    return "\n".join(lines)


def rk4_ladder(grid, mu0, times, h0, seconds_per_step, budget, target_error, describe_run) -> list:
    """Fixed-step RK4 to t_end at h0, h0/2, h0/4, ... until one matches ``target_error``.

    Stops at the first run whose exponent error is at most ``target_error``, or at the first h whose
    projected wall time exceeds what is left of ``budget`` (that h is kept as a projected row).

    Returns
    -------
    list of (Run, dict)
        Runs and their :func:`describe` cells.
    """
    rows, spent = [], 0.0
    for j in range(MAX_HALVINGS + 1):
        run = full_rk4(grid, mu0, times, h0 / 2**j, seconds_per_step, budget - spent)
        cells = describe_run(run)
        rows.append((run, cells))
        spent += 0.0 if run.projected else run.wall
        print(f"  rk4 h={run.h:.4g}: {'projected' if run.projected else 'made'} ({run.wall:.3g} s)", flush=True)
        if run.projected or (cells["error"] is not None and cells["error"] <= target_error):
            break
    return rows


# ============================================================================ driver
def parse(argv=None) -> Setting:
    """Command-line options as a :class:`Setting`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="n = 512, t_end = 1e4 (window [1e3, 1e4])")
    parser.add_argument("--n", type=int, help="grid points (default 4096, 512 with --quick)")
    parser.add_argument("--t-end", type=float, help="final time, a power of 10 (default 1e5, 1e4 with --quick)")
    parser.add_argument("--t-probe", type=float, default=10.0, help="end of the RK4 stability probes (default 10)")
    parser.add_argument("--rtols", type=float, nargs="+", default=[1e-4, 1e-6, 1e-8],
                        help="adaptive tolerances (1e-6 is always included)")
    parser.add_argument("--rk4-budget", type=float,
                        help="seconds of fixed-step RK4 runs to t_end: a run is made only if its projected wall time "
                             "fits in what is left (default 300, 25 with --quick; inf = no limit)")
    parser.add_argument("--h-tol", type=float, default=0.05, help="relative bracket of the largest stable h")
    args = parser.parse_args(argv)
    n = args.n or (512 if args.quick else 4096)
    t_end = args.t_end or (1e4 if args.quick else 1e5)
    rtols = tuple(sorted(set(args.rtols) | {COMPARED_RTOL}, reverse=True))
    budget = args.rk4_budget if args.rk4_budget is not None else (25.0 if args.quick else 300.0)
    return Setting(n=n, t_end=t_end, t_probe=args.t_probe, rtols=rtols, rk4_budget=budget,
                   h_tol=args.h_tol)


def main(argv=None) -> int:
    """Run the benchmark and print the table and the ratio."""
    setting = parse(argv)
    start = time.perf_counter()
    grid = Torus((setting.n,))
    mu0 = density("kink", grid)
    times = setting.times()
    print(f"1-D s={S:g}, kink data (p={P_KINK:g}), n={setting.n}, t_end={setting.t_end:g}, {times.size} output "
          f"times, fit window [{setting.window[0]:g}, {setting.window[1]:g}], predicted a = "
          f"{energy_exponent(S, P_KINK, 1):g}", flush=True)

    reference = integrate(grid, mu0, times, record_dt=True, scheme="etdrk4", rtol=REFERENCE_RTOL)
    ref_fit = fit(reference, setting.window)
    a_ref, e_ref_end = ref_fit.exponent, reference.energy[-1]
    e_ref_probe = reference.energy[np.argmin(abs(times - setting.t_probe))]
    print(f"reference etdrk4 rtol={REFERENCE_RTOL:g}: a_ref = {a_ref:.8f} ± {(ref_fit.ci[1] - ref_fit.ci[0]) / 2:.2g} "
          f"(95 % CI of the fit, {ref_fit.n} points)", flush=True)

    adaptive = {rtol: integrate(grid, mu0, times, record_dt=True, scheme="etdrk4", rtol=rtol)
                for rtol in setting.rtols}
    probes = largest_stable_h(grid, mu0, times, setting, e_ref_probe)
    stable, unstable = bracket(probes)
    shown = "none ≤ 2.5 (linear limit 2.785)" if unstable is None else f"{unstable:.4g}"
    print(f"fixed-step rk4: largest stable h = {fmt(stable, '.4g')}, smallest unstable h = {shown} "
          f"({len(probes)} probes on [0, {setting.t_probe:g}])", flush=True)
    describe_run = functools.partial(describe, window=setting.window, a_ref=a_ref, e_ref_end=e_ref_end,
                                     t_end=setting.t_end)
    compared = adaptive[COMPARED_RTOL]
    compared_cells = describe_run(compared)
    rk4_rows = []
    if stable is not None:
        passing = [p for p in probes if p.failed_at is None]
        per_step = sum(p.wall for p in passing) / sum(p.steps for p in passing)
        rk4_rows = rk4_ladder(grid, mu0, times, stable, per_step, setting.rk4_budget, compared_cells["error"],
                              describe_run)

    rows = [("reference", reference, describe_run(reference))]
    rows += [("adaptive", run, describe_run(run)) for run in adaptive.values()]
    rows += [("rk4 probe", run, describe_run(run)) for run in sorted(probes, key=lambda r: -r.h)]
    rows += [("rk4 fixed", run, cells) for run, cells in rk4_rows]
    print()
    print(table(rows))
    print()
    print("adaptive step sizes:")
    for run in (reference, *adaptive.values()):
        print("  " + dt_summary(run, times))
    print()
    print(verdict(compared, compared_cells, rk4_rows, (stable, unstable), times))
    print(f"script wall time: {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
