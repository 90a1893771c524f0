"""The performance report: every benchmark of the package in one run, as one markdown document.

Sections
--------
1. Right-hand side against its own FFTs (``rhs_vs_fft.py``): 2-D 256², 512², 1024², 3-D 64³,
   128³, 1 and 2 threads; target ratio ≤ 1.2.
2. Time per step against Dedalus 3 at equal accuracy (``dedalus_compare.py``): 2-D 256²,
   s = 1 and 2; target ≥ 15× faster. Needs Dedalus, which is installed only in a benchmark
   environment (see that script's docstring); without it the section says so and the rest runs.
3. Cost growth from 128² to 2048² against N² log N and peak memory per grid size
   (``scaling.py``, 2-D and 3-D); target ≤ 30 state arrays.
4. A 3-D 256³ run on this machine: the solver is built, one adaptive step is taken, and the
   peak resident memory of that process is reported with the up-front estimate; target: fits
   in 24 GiB.
5. Distributed runs (``distributed.py``): time per step on 2 MPI processes against the serial
   solver with 1 and 2 threads (needs the ``mpi`` extra and an MPI launcher; skipped without).

Every timing is a median of repeated measurements taken in this one run; ratios are formed
from measurements interleaved in the same process.

Run (from the repository root)::

    PYTHONPATH=. python benchmarks/report.py                # ~12 minutes without Dedalus
    PYTHONPATH=. python benchmarks/report.py --quick        # smoke run, ~1 minute
    PYTHONPATH=. /path/to/dedalus-env/bin/python benchmarks/report.py   # with Dedalus, ~18 minutes

Do not set OMP_NUM_THREADS=1 for the whole report: pyFFTW's FFTW is built with OpenMP, and that
variable caps its threads at one, which turns every 2-thread measurement into a 1-thread one
(the Dedalus comparison runs both codes on one thread by construction).

``--skip`` leaves sections out (e.g. ``--skip 4``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import pathlib
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent

#: Run in a separate process: build a 256³ model and solver, take one adaptive step, report peak RSS
#: (refused up front, as by :func:`sobolev_flow.solve`, when the estimate exceeds the memory).
LARGE_3D = """
import json, resource, sys, time
from sobolev_flow import Solver, SpectralModel, Torus, memory_estimate, get_scheme
from sobolev_flow.initial import density
from sobolev_flow.solver import check_memory
n = int(sys.argv[1])
grid = Torus((n, n, n))
estimate = memory_estimate(grid, get_scheme("etdrk4"))
check_memory(grid.shape, estimate)
mu0 = density({"family": "powerlaw", "p": 6.0, "seed": 1}, grid)
start = time.perf_counter()
solver = Solver(SpectralModel(grid, mu0, s=2.0))
del mu0
built = time.perf_counter()
solver.step(1.0)
done = time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"peak": peak, "estimate": estimate, "build": built - start,
                  "step": done - built, "evaluations": solver.model.evaluations,
                  "threads": solver.model.transform.threads}))
"""


def section(title: str, module: str, argv: list[str]) -> str:
    """Run ``benchmarks/<module>.py``'s ``main(argv)`` and return its output under a heading."""
    sys.path.insert(0, str(HERE))
    buffer = io.StringIO()
    try:
        mod = importlib.import_module(module)
        start = time.perf_counter()
        with contextlib.redirect_stdout(buffer):
            status = mod.main(argv)
        took = time.perf_counter() - start
    except (SystemExit, ImportError) as stop:  # a benchmark that cannot run (e.g. Dedalus missing) says why
        return f"## {title}\n\nnot run: {buffer.getvalue().strip() or stop}\n"
    finally:
        sys.path.remove(str(HERE))
    note = "" if not status else f"\n(exit status {status})\n"
    return (f"## {title}\n\n`PYTHONPATH=. python benchmarks/{module}.py {' '.join(argv)}` ({took:.0f} s)\n\n"
            f"{buffer.getvalue().strip()}\n{note}")


def large_3d(n: int) -> str:
    """Peak memory of a 3-D n³ run (one adaptive step), in a fresh process."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", LARGE_3D, str(n)], capture_output=True, text=True,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    if result.returncode != 0:
        return f"## {n}³ run\n\nfailed: {result.stderr.strip().splitlines()[-1]}\n"
    data = json.loads(result.stdout)
    gib = 2**30
    arrays = data["peak"] / (8 * n**3)
    return (f"## A {n}³ run\n\nSolver built in {data['build']:.0f} s, one adaptive step "
            f"({data['evaluations']} right-hand sides, {data['threads']} threads) in {data['step']:.0f} s; "
            f"peak resident memory {data['peak'] / gib:.2f} GiB ({arrays:.1f} state arrays of {n}³ doubles, "
            f"interpreter and libraries included), estimate {data['estimate'] / gib:.2f} GiB; target ≤ 24 GiB "
            f"({'met' if data['peak'] <= 24 * gib else 'missed'}). Total {time.perf_counter() - start:.0f} s.\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small cases and short repeats (smoke run)")
    parser.add_argument("--skip", type=int, nargs="+", default=[], help="section numbers to leave out")
    args = parser.parse_args(argv)
    quick = ["--quick"] if args.quick else []
    parts = ["# sobolev_flow performance report\n"]
    if 1 not in args.skip:
        parts.append(section("1. Right-hand side / its FFTs", "rhs_vs_fft", quick))
    if 2 not in args.skip:
        parts.append(section("2. Time per step against Dedalus 3 at equal accuracy", "dedalus_compare", quick))
    if 3 not in args.skip:
        parts.append(section("3a. Cost growth and peak memory, 2-D", "scaling", quick))
        parts.append(section("3b. Peak memory, 3-D", "scaling",
                             ["--d", "3", "--sizes", "32", "64"] + (["--min-time", "0.2"] if args.quick else [])))
    if 4 not in args.skip:
        parts.append(large_3d(64 if args.quick else 256))
    if 5 not in args.skip:
        parts.append(section("5. Distributed runs", "distributed", quick))
    print("\n".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
