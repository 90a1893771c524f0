"""Error control by embedded pairs, diagnostics from the continuous extension, the CFL bound.

Every test iterates over the registry (the ``scheme`` fixture)."""

import math

import numpy as np
import pytest

from sobolev_flow import SCHEMES, Solver, SpectralModel, Torus, solve
from sobolev_flow.solver import scheme_cfl
from sobolev_flow.steppers import CFL_FRACTION
from sobolev_flow.trackers import DiagnosticsTracker, Tracker, drive
from sobolev_flow.validation import STABILITY_PROBLEMS, imaginary_interval, stable_at_cfl

GRID = Torus((32, 32))
X, Y = GRID.mesh()
MU0 = 1 + 0.5 * np.sin(X) * np.cos(Y) + 0.3 * np.cos(X + 2 * Y)

#: The documented bound: over rtol = 1e-4 … 1e-6 the global error at t = 2 (max |μ − μ_ref|
#: relative to max |μ0 − 1|) of every scheme is at most this factor times rtol.
GLOBAL_ERROR_FACTOR = 2.0


def test_embedded_estimate_scales_as_h_to_the_lower_order_plus_one(scheme):
    """‖u_new − û‖ of one step from a smooth state, h halved four times: slope p̂ + 1 (±0.2)."""
    grid = Torus((32,))
    (x,) = grid.mesh()
    model = SpectralModel(grid, 1 + 0.5 * np.cos(x) + 0.3 * np.sin(2 * x), s=1.0)
    stepper = scheme.stepper(model)
    u = model.initial_state()
    n, new, n_new, err = (model.empty() for _ in range(4))
    model.explicit(u, n)
    steps = 0.2 / 2.0 ** np.arange(5)
    estimates = []
    for h in steps:
        stepper.step(u, h, n, new, err=err)
        model.explicit(new, n_new)
        stepper.complete_error(err, h, new, n_new)
        estimates.append(model.norm(err))
    slope = np.polyfit(np.log(steps), np.log(estimates), 1)[0]
    assert abs(slope - (scheme.order_hat + 1)) <= 0.2, (slope, estimates)
    assert scheme.order_hat < scheme.order


@pytest.fixture(scope="module")
def reference():
    return solve(GRID, 2.0, MU0, [2.0], scheme="etdrk4", rtol=1e-13, cfl=0.1).mu[-1]


def test_rtol_controls_the_global_error(scheme, reference):
    """Global error at t = 2 within GLOBAL_ERROR_FACTOR·rtol over two decades, and smaller at the
    smallest rtol than at the largest."""
    scale = np.max(np.abs(MU0 - 1))
    errors = []
    for rtol in (1e-4, 1e-5, 1e-6):
        mu = solve(GRID, 2.0, MU0, [2.0], scheme=scheme.name, rtol=rtol).mu[-1]
        errors.append(np.max(np.abs(mu - reference)) / scale)
        assert errors[-1] <= GLOBAL_ERROR_FACTOR * rtol, (rtol, errors)
    assert errors[-1] < errors[0]


def test_an_accepted_step_costs_its_stages_plus_the_new_state(scheme):
    """Every attempt evaluates N at its stages after the first and once at the new state (the next
    step's first stage); step doubling costs three steps and two evaluations per attempt."""
    model = SpectralModel(GRID, MU0, s=2.0)
    solver = Solver(model, scheme=scheme.name, rtol=1e-5)
    solver.advance(1.0)
    per_attempt = (model.evaluations - 1) / (solver.steps + solver.rejected)
    assert per_attempt == solver.stepper.evaluations_per_step + 1 <= len(scheme.c) + 1
    doubling = Solver(SpectralModel(GRID, MU0, s=2.0), scheme=scheme.name, rtol=1e-5, error_estimate="doubling")
    doubling.advance(1.0)
    e = solver.stepper.evaluations_per_step
    assert (doubling.model.evaluations - 1) / (doubling.steps + doubling.rejected) == 3 * e + 2


def test_unknown_error_estimate_is_refused():
    with pytest.raises(ValueError, match=r"^error_estimate='richardson': expected one of embedded, doubling$"):
        Solver(SpectralModel(Torus((8,)), np.ones(8), s=1.0), error_estimate="richardson")


# ----------------------------------------------------------------------------- diagnostics
class Steps(Tracker):
    """Records the size of every accepted step."""

    def __init__(self):
        self.dt = []

    def after_step(self, solver):
        self.dt.append(solver.last_dt)


class Records:
    def __init__(self):
        self.rows = []

    def write_diagnostics(self, values):
        self.rows.append(values)


def test_a_dense_diagnostic_schedule_takes_exactly_the_same_steps():
    runs = []
    for times in ([0.0, 3.0], np.linspace(0, 3.0, 301)):
        solver = Solver(SpectralModel(GRID, MU0, s=2.0), rtol=1e-6)
        steps, records = Steps(), Records()
        drive(solver, 3.0, [DiagnosticsTracker(times, records), steps])
        runs.append((steps.dt, records.rows, solver))
    (dt_sparse, _, sparse), (dt_dense, rows, dense) = runs
    assert dt_dense == dt_sparse and len(dt_dense) < 30
    assert np.array_equal(dense.u, sparse.u)
    assert [row["t"] for row in rows] == list(np.linspace(0, 3.0, 301))
    assert np.all(np.diff([row["energy"] for row in rows]) < 0)


def test_interpolated_diagnostics_converge_at_the_interpolation_order():
    """diagnostics_at(t*) inside a step of h against the same solver landing on t* (a step of θh
    from the same state): the difference is the cubic Hermite error, O(h^4)."""
    names = ("energy", "dissipation", "max_speed", "min_mu")
    differences = []
    steps = [0.4, 0.2, 0.1]
    for h in steps:
        t0, t_star = 1.0, 1.0 + 0.3 * h
        interpolated = Solver(SpectralModel(GRID, MU0, s=2.0), dt=h / 4)
        interpolated.advance(t0)
        interpolated.fixed_dt = h
        interpolated.advance(t0 + h)
        at = interpolated.diagnostics_at(t_star)
        landed = Solver(SpectralModel(GRID, MU0, s=2.0), dt=h / 4)
        landed.advance(t0)
        landed.fixed_dt = h
        landed.advance(t_star)
        exact = landed.diagnostics()
        differences.append([abs(at[name] - exact[name]) / abs(exact[name]) for name in names])
    differences = np.array(differences)
    orders = np.polyfit(np.log(steps), np.log(differences), 1)[0]
    assert np.all(orders >= 3.6), dict(zip(names, orders))
    assert np.all(differences[-1] < 1e-5), differences


# ----------------------------------------------------------------------------- stability
def test_every_scheme_is_stable_at_its_bound_and_not_well_above_its_measured_limit(scheme):
    """400 steps at the default bound stay bounded on the 1-D problems (the 2-D ones, where the
    limits bind, take minutes for all schemes: benchmarks/stability.py, and the next test for the
    default scheme); at 1.5 times the limit some problem is unstable."""
    assert scheme_cfl(scheme) == CFL_FRACTION * scheme.cfl_limit
    assert all(stable_at_cfl(scheme.name, problem, scheme_cfl(scheme))
               for problem, (grid, _) in STABILITY_PROBLEMS.items() if grid.d == 1)
    assert not all(stable_at_cfl(scheme.name, problem, 1.5 * scheme.cfl_limit) for problem in STABILITY_PROBLEMS)


def test_the_default_scheme_is_stable_at_its_bound_where_its_limit_binds():
    """2-D 256², s = 2: the problem that sets etdrk4's limit."""
    assert stable_at_cfl("etdrk4", "2d s=2", scheme_cfl(SCHEMES["etdrk4"]))


def test_the_default_cfl_is_the_schemes_fraction():
    solver = Solver(SpectralModel(GRID, MU0, s=2.0), scheme="rk4")
    assert math.isclose(solver.cfl, 0.9 * SCHEMES["rk4"].cfl_limit)


def test_the_stability_intervals_on_the_imaginary_axis_are_the_closed_forms():
    """From the schemes' own steps on u' = iy u: |R(iy)|² = 1 − y⁶/72 + y⁸/576 for four-stage
    fourth-order schemes (rk4, and etdrk4 with L = 0), 1 − y⁴/12 + y⁶/36 for bs32, and
    1 + y⁴/4 for the two-stage second-order explicit parts (no interval)."""
    assert imaginary_interval("rk4") == pytest.approx(2 * math.sqrt(2), abs=1e-8)
    assert imaginary_interval("etdrk4") == pytest.approx(2 * math.sqrt(2), abs=1e-8)
    assert imaginary_interval("bs32") == pytest.approx(math.sqrt(3), abs=1e-8)
    assert imaginary_interval("ars222") == 0.0 and imaginary_interval("etdrk2") == 0.0


@pytest.mark.parametrize("name", ["rk4", "etdrk4", "bs32"])
def test_the_measured_limits_are_above_the_frozen_coefficient_bound(name):
    """A high mode at the fastest point moves on with the flow, so the measured limit exceeds the
    worst case β_I/(π√d) (velocity along a diagonal, coefficients frozen), and the default
    (0.9 of it) stays within 15 % of that bound in 2-D."""
    bound = imaginary_interval(name) / (math.pi * math.sqrt(2))
    assert SCHEMES[name].cfl_limit >= bound
    assert scheme_cfl(SCHEMES[name]) <= 1.15 * bound
