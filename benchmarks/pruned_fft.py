"""Pruned against full padded FFTs, in one process: the plans of
:class:`~sobolev_flow.fft.PrunedRealFFT` (what :class:`~sobolev_flow.transforms.PaddedTransform`
runs with pyFFTW and 3/2 padding) against the full multi-dimensional r2c/c2r plans of
:class:`~sobolev_flow.fft.RealFFT` on the same buffers.

For each case (the unpadded grid; the transforms are those of its 3/2-padded grid) and thread
count the four transforms (full and pruned, backward and forward) are timed in rounds, each
round running every transform ``reps`` times in turn (reps: about 2·10⁷ padded points in all), so
that drifts of the machine's load affect all four alike; the table gives the medians over the
rounds of the mean time per call, and the ratios full / pruned. The pruned backward transform
includes nothing besides its FFTs (the zero columns are the zero-padding's job, as in
``PaddedTransform.backward``).

Run (from the repository root; timings under the benchmark lock on shared machines)::

    PYTHONPATH=. python benchmarks/pruned_fft.py --cases 256x256 512x512 64x64x64 --threads 1 2
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

from sobolev_flow import Torus
from sobolev_flow.fft import EFFORTS, PrunedRealFFT, RealFFT, empty_aligned


def transforms(grid: Torus, threads: int, effort: str) -> dict:
    """{name: callable} of the full and the pruned backward and forward FFTs of ``grid``'s padded
    grid, all on one physical and one spectral buffer (zeroed)."""
    padded = grid.padded_shape
    physical = empty_aligned((1,) + padded, float)
    spectral = empty_aligned((1,) + grid.padded_spectral_shape, complex)
    full = RealFFT(padded, threads=threads, effort=effort, physical=physical, spectral=spectral)
    n, m = grid.shape[-2], padded[-2]
    rows = [slice(0, n // 2), slice(m - n // 2 + 1, m)] if grid.d == 3 else None
    pruned = PrunedRealFFT(padded, grid.shape[-1] // 2, [physical[0]], spectral[0], rows=rows, threads=threads,
                           effort=effort)
    physical[...], spectral[...] = 0.0, 0.0
    return {"full backward": full.backward, "pruned backward": lambda: pruned.backward(0),
            "full forward": full.forward, "pruned forward": lambda: pruned.forward(0)}


def measure(fns: dict, reps: int, rounds: int) -> dict:
    """{name: median over ``rounds`` of the mean seconds per call of ``reps`` calls}, the calls
    interleaved round by round."""
    times = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(reps):
                fn()
            times[name].append((time.perf_counter() - start) / reps)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cases", nargs="+", default=["256x256", "512x512", "64x64x64"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--effort", default="estimate", choices=EFFORTS)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    print(f"effort {args.effort}; medians over {args.rounds} interleaved rounds\n")
    print("| case | padded | threads | full bwd ms | pruned bwd ms | ratio | full fwd ms | pruned fwd ms | ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for case in args.cases:
        grid = Torus(tuple(int(n) for n in case.split("x")))
        reps = max(3, round(2e7 / math.prod(grid.padded_shape)))
        for threads in args.threads:
            t = measure(transforms(grid, threads, args.effort), reps, args.rounds)
            fb, pb, ff, pf = (1e3 * t[k] for k in ("full backward", "pruned backward", "full forward",
                                                    "pruned forward"))
            print(f"| {case} | {'x'.join(map(str, grid.padded_shape))} | {threads} | {fb:.3f} | {pb:.3f} | "
                  f"{fb / pb:.2f} | {ff:.3f} | {pf:.3f} | {ff / pf:.2f} |", flush=True)


if __name__ == "__main__":
    main()
