"""Largest stable CFL number of every registered scheme on the advective part, by bisection.

For each scheme and each problem of :data:`sobolev_flow.validation.STABILITY_PROBLEMS` (1-D 256,
2-D 128² for s = 1 and 256² for s = 2, bump data with a 1e-6 perturbation), the largest cfl for
which :func:`sobolev_flow.validation.stable_at_cfl` holds (400 steps of h = cfl·min(dx)/max|∇ψ|
stay bounded: the high modes grow by less than 10³, an amplification below 1.018 per step) is
found by raising cfl from 0.01 by factors of √2 to the first unstable value, then by bisection in
log cfl (``--iterations`` halvings, default 6).
The scheme's limit is the smallest over the problems; it is recorded as ``cfl_limit`` on the
scheme in :mod:`sobolev_flow.steppers`, and the solver's default CFL number is
``CFL_FRACTION`` (0.9) of it. A limit printed as ≥ 20 means no instability was found below 20.

For comparison the table gives each scheme's stability interval on the imaginary axis β_I
(:func:`sobolev_flow.validation.imaginary_interval`) and the frozen-coefficient bound it implies
in 2-D for a velocity along a diagonal, β_I/(π√2): the measured limits of the explicit and
exponential schemes lie above it and fall towards it as the grid is refined.

Run::

    python benchmarks/stability.py [--schemes rk4 etdrk4 ...] [--iterations 6]
"""

import argparse
import math
import time

from sobolev_flow.steppers import SCHEMES, TRAINING_SCHEMES
from sobolev_flow.validation import STABILITY_PROBLEMS, imaginary_interval, stable_at_cfl

LOW, HIGH = 0.01, 20.0


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
    parser.add_argument("--schemes", nargs="+", default=[name for name in SCHEMES if name not in TRAINING_SCHEMES])
    parser.add_argument("--iterations", type=int, default=6)
    args = parser.parse_args(argv)
    problems = list(STABILITY_PROBLEMS)
    print("| scheme | " + " | ".join(problems) + " | limit (min) | recorded | β_I | β_I/(π√2) | seconds |")
    print("|---|" + "---:|" * (len(problems) + 5))
    for name in args.schemes:
        start = time.perf_counter()
        limits = [limit(name, problem, args.iterations) for problem in problems]
        cells = [f"≥ {HIGH:g}" if x >= HIGH else f"{x:.3f}" for x in limits]
        recorded = SCHEMES[name].cfl_limit
        beta = imaginary_interval(name)
        print(f"| {name} | " + " | ".join(cells) + f" | {min(limits):.3f} | {recorded} | {beta:.3f} | "
              f"{beta / (math.pi * math.sqrt(2)):.3f} | {time.perf_counter() - start:.1f} |", flush=True)


if __name__ == "__main__":
    main()
