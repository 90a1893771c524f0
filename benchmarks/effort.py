"""The FFTW planner effort: planning time and right-hand-side time of each effort, in one process.

For :meth:`SpectralModel.explicit` (uniform target, ``SobolevKernel(s=2)``, 3/2 dealiasing, a
random smooth ρ; the model of ``benchmarks/rhs_vs_fft.py``) the script builds one model per
planner effort (``--efforts``, default estimate, measure, patient) with an empty wisdom cache (a
temporary ``SOBOLEV_FLOW_CACHE``), so the planning time is that of a first run on the machine, and
then times their right-hand sides interleaved, one call of each per round in rotating order, so
that the machine's drifts affect all alike. Reported per case and thread count: the planning
time (building the model), the median right-hand side, and its ratio to that of "estimate".

The command line's default ``fft.effort = "auto"`` is "measure" on one process
(:func:`sobolev_flow.fft.resolve_effort`); a later run of the same shape and threads imports the
cached wisdom instead of planning.

Run (from the repository root; timings under the benchmark lock on shared machines)::

    PYTHONPATH=. python benchmarks/effort.py --cases 256x256 512x512 --threads 1 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

from sobolev_flow import SobolevKernel, SpectralModel, Torus
from sobolev_flow.fft import EFFORTS

from rhs_vs_fft import smooth_state


def measure(shape, threads, efforts, rounds, kernels):
    """{effort: (planning s, median RHS s)} for one grid and thread count."""
    grid = Torus(shape, dealias="3/2")
    models, planning = {}, {}
    with tempfile.TemporaryDirectory() as cache:
        previous = os.environ.get("SOBOLEV_FLOW_CACHE")
        os.environ["SOBOLEV_FLOW_CACHE"] = cache
        try:
            for effort in efforts:
                start = time.perf_counter()
                models[effort] = SpectralModel(grid, np.ones(shape), kernel=SobolevKernel(s=2), threads=threads,
                                               fft_effort=effort, kernels=kernels)
                planning[effort] = time.perf_counter() - start
        finally:
            if previous is None:
                os.environ.pop("SOBOLEV_FLOW_CACHE", None)
            else:
                os.environ["SOBOLEV_FLOW_CACHE"] = previous
    rho = smooth_state(grid, np.random.default_rng(0))
    out = np.empty_like(rho)
    for model in models.values():  # warm-up (compiles the kernels on a first use)
        model.explicit(rho, out)
    times = {effort: [] for effort in efforts}
    for r in range(rounds):
        for effort in efforts[r % len(efforts):] + efforts[:r % len(efforts)]:
            start = time.perf_counter()
            models[effort].explicit(rho, out)
            times[effort].append(time.perf_counter() - start)
    return {effort: (planning[effort], statistics.median(times[effort])) for effort in efforts}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cases", nargs="+", default=["256x256", "512x512"], metavar="NxN[xN]")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--efforts", nargs="+", default=["estimate", "measure", "patient"], choices=EFFORTS)
    parser.add_argument("--rounds", type=int, default=200, help="interleaved calls of each model (default 200)")
    parser.add_argument("--kernels", default="auto", choices=("auto", "numba", "numpy"))
    args = parser.parse_args(argv)
    efforts = list(dict.fromkeys(["estimate"] + args.efforts))  # the reference first
    print(f"kernels {args.kernels}, {args.rounds} interleaved rounds; planning with an empty wisdom cache\n")
    print("| case | threads | effort | planning s | RHS ms | RHS / estimate |\n|---|---:|---|---:|---:|---:|")
    for case in args.cases:
        shape = tuple(int(n) for n in case.split("x"))
        for threads in args.threads:
            rows = measure(shape, threads, efforts, args.rounds, args.kernels)
            reference = rows["estimate"][1]
            for effort, (planning, rhs) in rows.items():
                print(f"| {case} | {threads} | {effort} | {planning:.2f} | {1e3 * rhs:.3f} | {rhs / reference:.3f} |",
                      flush=True)


if __name__ == "__main__":
    main()
