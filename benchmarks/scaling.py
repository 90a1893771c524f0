"""Cost and memory of the solver against the grid size.

What is measured
----------------
For 2-D grids n² (default n = 128 … 2048) and optionally 3-D grids, with the uniform target,
s = 2 and the ETDRK4 scheme:

* the median time of one right-hand-side evaluation (``SpectralModel.explicit``) and of one
  adaptive step (``Solver.step``: step doubling, 11 evaluations plus the update and
  diagnostics), from repeated calls in one process;
* the cost per evaluation divided by n^d log n^d, normalised to the smallest grid: it stays
  near 1 when the cost grows like the FFTs;
* the peak memory of building the model and the solver and taking two steps (``tracemalloc``;
  numpy and pyfftw allocations), in MiB and in "state arrays" of n^d doubles, next to the up-front
  estimate :func:`sobolev_flow.memory_estimate`.

Run (from the repository root)::

    PYTHONPATH=. python benchmarks/scaling.py                  # 2-D 128² … 2048², ~2 minutes
    PYTHONPATH=. python benchmarks/scaling.py --quick          # 64² … 256²
    PYTHONPATH=. python benchmarks/scaling.py --sizes 128 256 --d 3 --threads 1
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
import tracemalloc

import numpy as np

from sobolev_flow import Solver, SpectralModel, Torus, get_scheme, memory_estimate
from sobolev_flow.initial import density


def make_solver(grid: Torus, mu0, threads: int) -> Solver:
    """The ETDRK4 solver of the s = 2 flow from ``mu0`` to the uniform target."""
    return Solver(SpectralModel(grid, mu0, s=2.0, threads=threads))


def peak_memory(grid: Torus, threads: int) -> float:
    """Peak bytes allocated while building a model and its solver and taking two steps."""
    mu0 = density({"family": "powerlaw", "p": 6.0, "seed": 1}, grid)
    tracemalloc.start()
    try:
        solver = make_solver(grid, mu0, threads)
        solver.step(1.0)
        solver.step(1.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del solver
    return peak


def timings(grid: Torus, threads: int, min_time: float) -> tuple[float, float]:
    """Median seconds of one right-hand-side evaluation and of one adaptive step."""
    mu0 = density({"family": "powerlaw", "p": 6.0, "seed": 1}, grid)
    solver = make_solver(grid, mu0, threads)
    out = np.empty_like(solver.u)
    rhs, steps = [], []
    solver.model.explicit(solver.u, out)  # warm-up
    start = time.perf_counter()
    while len(rhs) < 5 or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        solver.model.explicit(solver.u, out)
        rhs.append(time.perf_counter() - t0)
    start = time.perf_counter()
    while len(steps) < 3 or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        solver.step(math.inf)
        steps.append(time.perf_counter() - t0)
    return statistics.median(rhs), statistics.median(steps)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512, 1024, 2048])
    parser.add_argument("--d", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--min-time", type=float, default=2.0, help="seconds of repeats per measurement")
    parser.add_argument("--quick", action="store_true", help="64² … 256², short repeats")
    args = parser.parse_args(argv)
    sizes, min_time = ([64, 128, 256], 0.5) if args.quick else (args.sizes, args.min_time)
    print(f"numpy {np.__version__}, {platform.processor() or platform.machine()}, d={args.d}, s=2, etdrk4, "
          f"threads={args.threads}; medians over ≥ {min_time:g} s of repeats")
    print()
    print("| grid | RHS ms | step ms | RHS / (N log N), normalised | peak MiB | peak state arrays | estimate MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    base = None
    for n in sizes:
        grid = Torus((n,) * args.d)
        rhs, step = timings(grid, args.threads, min_time)
        size = grid.size
        per = rhs / (size * math.log(size))
        base = base or per
        peak = peak_memory(grid, args.threads)
        estimate = memory_estimate(grid, get_scheme("etdrk4"))
        print(f"| {'×'.join(map(str, grid.shape))} | {1e3 * rhs:.2f} | {1e3 * step:.1f} | {per / base:.2f} | "
              f"{peak / 2**20:.1f} | {peak / (8 * size):.1f} | {estimate / 2**20:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
