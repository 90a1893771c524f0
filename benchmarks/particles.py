"""Particle evaluators: NUFFT back ends, the sorted evaluator's scaling, truncation errors.

What is measured
----------------
(a) One ``NufftEvaluator.potential(x, w)`` call for N = 10^6 particles in 2-D with K = 128
    (the box |k_j| ≤ 128, 257² modes), tol = 1e-9, 2 threads, Sobolev kernel s = 2, uniform
    target, for both back ends (ducc0, finufft), interleaved per repeat so that background load
    hits both alike. Reported (medians): the construction of the evaluator (K̂ on the box, finufft's
    plans), and per call the point set-up (ducc0: building its plan, which sorts the points;
    finufft: ``setpts``), the transforms (type 1 and type 2) and the whole ``potential`` call,
    without and with ``need_psi`` (one more type-2 transform in 2-D). Target: ≤ 150 ms per call.
(b) ``SortedEvaluator.potential`` (d = 1, s = 1, exact) for N = 10^3 … 10^7 random particles: cold
    (positions unrelated to the previous call: a full sort), without and with ψ, and warm (the
    previous call's positions moved by ~1 % of the mean gap, as in a time step: the kept
    permutation leaves them nearly sorted), with the exponent of time ∝ N^a fitted over N ≥ 10^4
    (N log N alone: a ≈ 1.05–1.1; random memory access at large N adds to it).
(c) The truncation error of the NUFFT evaluator (tol 1e-13) against the exact direct evaluator
    (closed forms) in 1-D for N = 2000 particles with uniform weights, s = 1, 1.5, 2: RMS of
    ∇ψ_K − ∇ψ over the particles, relative to the RMS of ∇ψ, for K = 16 … 65536, with fitted
    orders, for random positions and for a jittered lattice (one particle in the middle half of
    each cell, gaps ≥ π/N). For random positions the modes of μ_N beyond K are random, of size
    N^{−1/2}, and the error is (Σ_{k>K} k^{2−4s}/N)^{1/2} ~ K^{−(2s−3/2)}: order 1/2, 3/2, 5/2, at
    every K (pairs closer than 1/K, which exist for any K < N², keep it so). Only for separated
    particles and K ≫ N does the order become 2s − 1 (1, 2, 3), from the tail
    Σ_{k>K} k^{1−2s} sin(kz) ~ K^{1−2s}/z of each neighbour.

Run (from the repository root; it takes about a minute, run nothing else meanwhile)::

    PYTHONPATH=. python benchmarks/particles.py            # full run
    PYTHONPATH=. python benchmarks/particles.py --quick    # smoke run, a few seconds

The output is a header (versions, CPU, load) and three markdown tables.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time

import numpy as np

from rhs_vs_fft import cpu_model  # this script's folder is first on sys.path
from sobolev_flow.evaluators import DirectEvaluator, NufftEvaluator, SortedEvaluator
from sobolev_flow.kernels import SobolevKernel

TARGET_MS = 150.0


def header() -> str:
    import ducc0
    import finufft
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"numpy {np.__version__}, ducc0 {ducc0.__version__}, finufft {finufft.__version__}, "
            f"Python {platform.python_version()}; CPU: {cpu_model()} ({os.cpu_count()} logical CPUs, "
            f"load {load:.2f})")


def median_ms(times) -> float:
    return 1e3 * statistics.median(times)


# ----------------------------------------------------------------------------- (a)
def nufft_timings(N, K, tol, threads, repeats, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 2 * math.pi, (N, 2))
    w = np.full(N, 1.0 / N)
    kernel = SobolevKernel(2)
    evs, setup = {}, {}
    for backend in ("ducc0", "finufft"):
        t0 = time.perf_counter()
        evs[backend] = NufftEvaluator(kernel, 2, modes=K, tol=tol, threads=threads, backend=backend)
        setup[backend] = time.perf_counter() - t0
        evs[backend].potential(x, w, need_psi=True)                      # warm-up
    keys = ("points", "type1", "type2", "call", "call_psi")
    times = {b: {k: [] for k in keys} for b in evs}
    for rep in range(repeats):
        for backend in (("ducc0", "finufft") if rep % 2 == 0 else ("finufft", "ducc0")):
            ev, be = evs[backend], evs[backend]._backend
            y, _ = ev._particles(x, w, -math.pi)
            t = times[backend]
            t0 = time.perf_counter()
            be.set_points(y)
            t1 = time.perf_counter()
            be.type1(ev._strengths, ev._mu)
            t2 = time.perf_counter()
            be.type2(ev._coeffs[:1], ev._out[:1])
            t3 = time.perf_counter()
            ev.potential(x, w)
            t4 = time.perf_counter()
            ev.potential(x, w, need_psi=True)
            t5 = time.perf_counter()
            for k, dt in zip(keys, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                t[k].append(dt)
    # agreement of the two back ends (a check, not a timing)
    _, ga = evs["ducc0"].potential(x[:20000], w[:20000])
    _, gb = evs["finufft"].potential(x[:20000], w[:20000])
    agreement = float(np.max(np.abs(ga - gb)) / np.max(np.abs(gb)))
    print(f"## (a) one potential call: N = {N:.0e} particles, d = 2, K = {K} ((2K+1)^2 = {(2 * K + 1) ** 2} modes), "
          f"tol = {tol:g}, {threads} threads, median of {repeats}\n")
    print("| back end | construction (ms) | point set-up (ms) | type 1 (ms) | type 2 (ms) | potential (ms) "
          "| potential, need_psi (ms) |")
    print("|---|---|---|---|---|---|---|")
    for backend in evs:
        t = times[backend]
        print(f"| {backend} | {1e3 * setup[backend]:.1f} | {median_ms(t['points']):.1f} | {median_ms(t['type1']):.1f} "
              f"| {median_ms(t['type2']):.1f} | {median_ms(t['call']):.1f} | {median_ms(t['call_psi']):.1f} |")
    best = min(evs, key=lambda b: statistics.median(times[b]["call"]))
    ratio = statistics.median(times["finufft"]["call"]) / statistics.median(times["ducc0"]["call"])
    print(f"\nfaster: {best} (finufft/ducc0 = {ratio:.2f}); target <= {TARGET_MS:.0f} ms per call: "
          f"{'met' if median_ms(times[best]['call']) <= TARGET_MS else 'NOT met'}; "
          f"back ends agree to {agreement:.1e} (max relative difference of the gradient, 2·10^4 particles)\n")


# ----------------------------------------------------------------------------- (b)
def sorted_scaling(sizes, repeats, seed):
    rng = np.random.default_rng(seed)
    rows = []
    for N in sizes:
        w = np.full(N, 1.0 / N)
        reps = max(3, min(repeats, int(2e7 // N)))
        cold, cold_psi, warm = [], [], []
        ev = SortedEvaluator(SobolevKernel(1), 1)
        x = rng.uniform(0.0, 2 * math.pi, (N, 1))
        ev.potential(x, w)
        for _ in range(reps):
            fresh = rng.uniform(0.0, 2 * math.pi, (N, 1))     # unrelated positions: a full sort
            t0 = time.perf_counter()
            ev.potential(fresh, w)
            t1 = time.perf_counter()
            fresh = rng.uniform(0.0, 2 * math.pi, (N, 1))
            t2 = time.perf_counter()
            ev.potential(fresh, w, need_psi=True)
            t3 = time.perf_counter()
            cold.append(t1 - t0)
            cold_psi.append(t3 - t2)
        moved = fresh + 0.01 * (2 * math.pi / N) * rng.normal(size=fresh.shape)   # a time step later
        for _ in range(reps):
            t0 = time.perf_counter()
            ev.potential(moved, w)
            warm.append(time.perf_counter() - t0)
        rows.append((N, statistics.median(cold), statistics.median(cold_psi), statistics.median(warm), reps))
    print("## (b) sorted evaluator (d = 1, s = 1, exact), time against N\n")
    print("cold: positions unrelated to the previous call (full quicksort); warm: the previous call's "
          "positions moved by ~1 % of the mean gap (its permutation reused, adaptive merge sort)\n")
    print("| N | ∇ψ, cold (ms) | ψ and ∇ψ, cold (ms) | ∇ψ, warm (ms) | cold ns per N log2 N | warm ns per N | repeats |")
    print("|---|---|---|---|---|---|---|")
    for N, tc, tp, tw, reps in rows:
        print(f"| {N:.0e} | {1e3 * tc:.3g} | {1e3 * tp:.3g} | {1e3 * tw:.3g} | {1e9 * tc / (N * math.log2(N)):.2f} "
              f"| {1e9 * tw / N:.1f} | {reps} |")
    fit = [r for r in rows if r[0] >= 1e4]
    if len(fit) >= 2:
        logN = np.log([r[0] for r in fit])
        a = [np.polyfit(logN, np.log([r[i] for r in fit]), 1)[0] for i in (1, 2, 3)]
        print(f"\nfitted time ∝ N^a over N >= 1e4: a = {a[0]:.2f} (∇ψ, cold), {a[1]:.2f} (ψ and ∇ψ, cold), "
              f"{a[2]:.2f} (∇ψ, warm)\n")


# ----------------------------------------------------------------------------- (c)
def truncation_errors(N, Ks, seed):
    rng = np.random.default_rng(seed)
    w = np.full(N, 1.0 / N)
    layouts = {
        "random": rng.uniform(0.0, 2 * math.pi, (N, 1)),
        "lattice": (2 * math.pi * (np.arange(N) + rng.uniform(0.25, 0.75, N)) / N)[:, None],
    }
    orders = (1.0, 1.5, 2.0)
    errors = {}
    for layout, x in layouts.items():
        for s in orders:
            kernel = SobolevKernel(s)
            _, exact = DirectEvaluator(kernel, 1).potential(x, w)
            scale = np.sqrt(np.mean(exact**2))
            errors[layout, s] = [
                np.sqrt(np.mean((NufftEvaluator(kernel, 1, modes=K, tol=1e-13).potential(x, w)[1] - exact) ** 2))
                / scale for K in Ks]
    print(f"## (c) relative RMS error of ∇ψ, nufft (truncated to |k| <= K) against direct (exact), 1-D, "
          f"N = {N}, uniform weights\n")
    print("random: uniform random positions; lattice: one particle per cell 2π[i, i+1)/N, in its middle half "
          "(gaps >= π/N)\n")
    cols = [(layout, s) for layout in layouts for s in orders]
    print("| K | " + " | ".join(f"{layout}, s = {s:g}" for layout, s in cols) + " |")
    print("|---|" + "---|" * len(cols))
    for i, K in enumerate(Ks):
        print(f"| {K} | " + " | ".join(f"{errors[c][i]:.2e}" for c in cols) + " |")
    small = [i for i, K in enumerate(Ks) if K <= N / 8]
    large = [i for i, K in enumerate(Ks) if K >= 4 * N]
    every = list(range(len(Ks)))

    def order(c, idx):
        return -np.polyfit(np.log(np.take(Ks, idx)), np.log(np.take(errors[c], idx)), 1)[0]

    print("\nfitted orders (error ~ K^-order; theory in brackets: 2s − 3/2 for random positions, whose modes "
          "beyond K are random of size N^-1/2 and whose closest pairs stay unresolved at any K; 2s − 1 for "
          "separated particles once K >> N, each neighbour's tail being ~ K^(1−2s)/distance)\n")
    print("| positions, K range | " + " | ".join(f"s = {s:g}" for s in orders) + " |")
    print("|---|" + "---|" * len(orders))
    for label, layout, idx, theory in (("random, all K", "random", every, lambda s: 2 * s - 1.5),
                                        ("lattice, K <= N/8", "lattice", small, None),
                                        ("lattice, K >= 4N", "lattice", large, lambda s: 2 * s - 1)):
        if len(idx) >= 2:
            cells = [f"{order((layout, s), idx):.2f}" + (f" ({theory(s):g})" if theory else "") for s in orders]
            print(f"| {label} | " + " | ".join(cells) + " |")
    print()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats (smoke run)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per timing (default 11; quick 3)")
    parser.add_argument("--threads", type=int, default=2, help="NUFFT threads in (a) (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 11)
    print(header() + "\n")
    if args.quick:
        nufft_timings(10**5, 32, 1e-9, args.threads, repeats, args.seed)
        sorted_scaling([10**3, 10**4, 10**5], repeats, args.seed)
        truncation_errors(100, [8, 16, 32, 64, 128, 512, 1024], args.seed)
    else:
        nufft_timings(10**6, 128, 1e-9, args.threads, repeats, args.seed)
        sorted_scaling([10**3, 10**4, 10**5, 10**6, 10**7], repeats, args.seed)
        truncation_errors(2000, [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536],
                          args.seed)


if __name__ == "__main__":
    main()
