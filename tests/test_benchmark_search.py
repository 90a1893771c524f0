"""The searches of benchmarks/time_to_solution.py: cheapest fixed step and largest sufficient rtol."""

import math
import os
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
_ENVIRONMENT = dict(os.environ)
from time_to_solution import cheapest_steps, largest_sufficient_rtol, rtol_ladder  # noqa: E402

# the benchmark sets one BLAS/OpenMP thread for Dedalus when imported; the other tests' processes
# must not inherit that
os.environ.clear()
os.environ.update(_ENVIRONMENT)


def power_law(c, p, unstable_below=0):
    """error(m) = c m^-p, inf below ``unstable_below`` steps; records the calls."""
    calls = []

    def error(m):
        calls.append(m)
        return math.inf if m < unstable_below else c * m ** -p

    return error, calls


@pytest.mark.parametrize("c, p, target, unstable_below", [
    (1.0, 3, 1e-8, 0), (7.3, 2, 1e-6, 40), (0.02, 4, 1e-8, 0), (1.0, 3, 0.5, 0),
])
def test_cheapest_steps_is_the_smallest_passing_integer(c, p, target, unstable_below):
    error, calls = power_law(c, p, unstable_below)
    steps, extrapolated = cheapest_steps(error, target, start=16, max_steps=10**6)
    exact = max(1, next(m for m in range(1, 10**6) if m >= unstable_below and c * m ** -p <= target))
    assert (steps, extrapolated) == (exact, False)
    assert len(calls) == len(set(calls)) <= 12


def test_cheapest_steps_reuses_known_errors():
    error, calls = power_law(1.0, 3)
    known = {}
    first = cheapest_steps(error, 1e-7, known=known, max_steps=10**6)
    n = len(calls)
    assert cheapest_steps(error, 1e-7, known=known, max_steps=10**6) == first
    assert len(calls) == n


def test_cheapest_steps_extrapolates_past_the_cap():
    error, calls = power_law(1.0, 2)
    steps, extrapolated = cheapest_steps(error, 1e-8, start=16, max_steps=1000)
    assert extrapolated and max(calls) == 1000
    assert steps == 10_000  # (1/1e-8)^(1/2), on the line through the last two runs


def test_largest_sufficient_rtol_needs_the_next_rung_too():
    ladder = rtol_ladder(2, 8)  # 1e-1 ... 1e-4
    errors = dict(zip(ladder, [1e-3, 1e-7, 1e-5, 1e-7, 1e-9, 1e-10, 1e-11]))
    made = []

    def run(rtol):
        made.append(rtol)
        return {"error": errors[rtol]}

    chosen, runs = largest_sufficient_rtol(run, ladder, [1e-6, 1e-8])
    assert chosen[1e-6][0] == ladder[3]  # ladder[1] reaches 1e-6 but ladder[2] does not
    assert chosen[1e-8][0] == ladder[4]
    assert made == ladder[:6]  # stops once both are settled


def test_largest_sufficient_rtol_last_rung_alone_and_unreached():
    ladder = [1e-2, 1e-3]

    def run(rtol):
        return {"error": {1e-2: 1e-4, 1e-3: 1e-7}[rtol]}

    chosen, _ = largest_sufficient_rtol(run, ladder, [1e-6, 1e-8])
    assert chosen[1e-6][0] == 1e-3 and chosen[1e-8] is None
