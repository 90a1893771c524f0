"""Time per step of a distributed run against the serial solver.

What is measured
----------------
For each grid (default 2-D 512², 1024² and 3-D 64³, 128³; s = 2, ETDRK4, the default powerlaw
initial data) the median wall time of one adaptive step (``Solver.step``: step doubling,
about 12 right-hand sides) in three configurations on the same machine:

* serial, 1 FFTW thread;
* serial, P FFTW threads;
* P MPI processes (``mpirun -n P``), mpi4py-fft slabs, 1 thread each.

Each configuration runs in its own process(es); the distributed time is the slowest process's
median. The table gives the speed-ups over the serial single-thread run.

Run (from the repository root; needs the ``mpi`` extra and an MPI launcher)::

    PYTHONPATH=. python benchmarks/distributed.py               # P = 2, ~2 minutes
    PYTHONPATH=. python benchmarks/distributed.py --processes 4 --cases 1024x1024
    PYTHONPATH=. python benchmarks/distributed.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: Runs in every process: build the model and the solver, warm up, time steps, print the median (rank 0).
TIMING = """
import json, math, statistics, sys, time
shape = tuple(int(n) for n in sys.argv[1].split("x"))
threads, min_time, distributed = int(sys.argv[2]), float(sys.argv[3]), sys.argv[4] == "1"
comm = None
if distributed:
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
from sobolev_flow import Solver, SpectralModel, Torus
from sobolev_flow.initial import density
grid = Torus(shape)
mu0 = density({"family": "powerlaw", "p": 6.0, "seed": 1}, grid)
solver = Solver(SpectralModel(grid, mu0, s=2.0, threads=threads, comm=comm))
solver.step(math.inf)
times = []
start = time.perf_counter()
while len(times) < 3 or time.perf_counter() - start < min_time:
    if comm is not None:
        comm.Barrier()
    t0 = time.perf_counter()
    solver.step(math.inf)
    times.append(time.perf_counter() - t0)
    if comm is not None:  # every process stops after the same number of steps
        done = len(times) >= 3 and time.perf_counter() - start >= min_time
        if not comm.allreduce(done, op=MPI.LAND):
            continue
        break
median = statistics.median(times)
if comm is not None:
    median = comm.allreduce(median, op=MPI.MAX)
if comm is None or comm.rank == 0:
    print(json.dumps({"step": median, "steps": len(times)}))
"""


def measure(shape, threads: int, processes: int, min_time: float) -> dict:
    """Median step time of one configuration, in fresh processes."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    env.pop("OMP_NUM_THREADS", None)  # it would cap FFTW's (OpenMP) threads at one
    command = [sys.executable, "-c", TIMING, "x".join(map(str, shape)), str(threads), str(min_time),
               "1" if processes > 1 else "0"]
    if processes > 1:
        command = ["mpirun", "-n", str(processes), "--oversubscribe"] + command
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:6])}: {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2, help="MPI processes and FFTW threads (default 2)")
    parser.add_argument("--cases", nargs="+", default=None, metavar="NxN[xN]")
    parser.add_argument("--min-time", type=float, default=5.0, help="seconds of timed steps per configuration")
    parser.add_argument("--quick", action="store_true", help="256² and 32³, short timings")
    args = parser.parse_args(argv)
    if shutil.which("mpirun") is None:
        print("mpirun not found: install an MPI and the mpi extra (see the README, 'Distributed runs')")
        return 1
    cases = args.cases or (["256x256", "32x32x32"] if args.quick else ["512x512", "1024x1024", "64x64x64",
                                                                          "128x128x128"])
    min_time = 1.0 if args.quick else args.min_time
    p = args.processes
    print(f"s = 2, ETDRK4, adaptive steps; medians over ≥ {min_time:g} s of steps per configuration")
    print()
    print(f"| grid | serial, 1 thread ms | serial, {p} threads ms | {p} processes ms | speed-up threads | "
          "speed-up processes |")
    print("|---|---:|---:|---:|---:|---:|")
    for case in cases:
        shape = tuple(int(n) for n in case.split("x"))
        one = measure(shape, 1, 1, min_time)["step"]
        threaded = measure(shape, p, 1, min_time)["step"]
        distributed = measure(shape, 1, p, min_time)["step"]
        print(f"| {case.replace('x', '×')} | {1e3 * one:.1f} | {1e3 * threaded:.1f} | {1e3 * distributed:.1f} | "
              f"{one / threaded:.2f} | {one / distributed:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
