"""Largest stable CFL number of every registered scheme on the advective part, by bisection.

For each scheme and each problem of :data:`sobolev_flow.validation.STABILITY_PROBLEMS` (1-D 256,
2-D 64² for s = 1 and 128² for s = 2, bump data with a 1e-6 perturbation), the largest cfl for
which :func:`sobolev_flow.validation.stable_at_cfl` holds (100 steps of h = cfl·min(dx)/max|∇ψ|
stay bounded) is found by raising cfl from 0.1 by factors of √2 to the first unstable value, then
by bisection in log cfl (``--iterations`` halvings, default 6).
The scheme's limit is the smallest over the problems; it is recorded as ``cfl_limit`` on the
scheme in :mod:`sobolev_flow.steppers`, and the solver's default CFL number is
``CFL_FRACTION`` (0.5) of it. A limit printed as ≥ 20 means no instability was found below 20.

Run::

    python benchmarks/stability.py [--schemes rk4 etdrk4 ...] [--iterations 6]
"""

import argparse
import math
import time

from sobolev_flow.steppers import SCHEMES
from sobolev_flow.validation import STABILITY_PROBLEMS, stable_at_cfl

LOW, HIGH = 0.1, 20.0


def limit(scheme: str, problem: str, iterations: int) -> float:
    """The first instability from below: cfl is raised from LOW by factors of √2 until a run is
    unstable (stability need not be monotone in cfl: a run with very large steps may relax
    before an instability grows), then bisected in log cfl between the last stable value and
    that one. HIGH if none is found up to HIGH, 0 if unstable at LOW."""
    if not stable_at_cfl(scheme, problem, LOW):
        return 0.0
    low = LOW
    while True:
        high = low * math.sqrt(2)
        if high > HIGH:
            return HIGH
        if not stable_at_cfl(scheme, problem, high):
            break
        low = high
    for _ in range(iterations):
        middle = math.sqrt(low * high)
        low, high = (middle, high) if stable_at_cfl(scheme, problem, middle) else (low, middle)
    return low


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemes", nargs="+", default=list(SCHEMES))
    parser.add_argument("--iterations", type=int, default=6)
    args = parser.parse_args(argv)
    problems = list(STABILITY_PROBLEMS)
    print("| scheme | " + " | ".join(problems) + " | limit (min) | recorded | seconds |")
    print("|---|" + "---:|" * (len(problems) + 3))
    for name in args.schemes:
        start = time.perf_counter()
        limits = [limit(name, problem, args.iterations) for problem in problems]
        cells = [f"≥ {HIGH:g}" if x >= HIGH else f"{x:.3f}" for x in limits]
        recorded = SCHEMES[name].cfl_limit
        print(f"| {name} | " + " | ".join(cells) + f" | {min(limits):.3f} | {recorded} | "
              f"{time.perf_counter() - start:.1f} |", flush=True)


if __name__ == "__main__":
    main()
