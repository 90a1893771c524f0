"""Two-layer ReLU networks: the cost of the exact loss and gradient, and the mean-field limit in m.

What is measured
----------------
(a) One loss-and-gradient evaluation (:meth:`NetworkModel.loss_and_gradient`) of a width-m
    network on S^1 (d = 1) against a network teacher of width m*: m = 10^4, m* = 10^3 by
    default, row blocks on 2 threads. Reported: the median wall time over repeats, the time per
    ordered pair (m² + m m*; the student's pairs are evaluated once for both neurons, so about
    m²/2 + m m* angles are computed) and the peak of numpy's allocations during the call
    (tracemalloc), which is O(m + m*) vectors plus a few cache-sized blocks: never O(m²).
    At m = 10^5 the blocks' peak is measured on 64 rows (``--huge`` runs the whole evaluation,
    which takes many minutes): the memory stays far below 2 GiB.
(b) The convergence in m of the loss curve of balanced networks with |w_i|² = μ0(θ_i) on an
    m-point grid of directions to the energy of the WFR PDE (relu kernel, α = 2, same μ0 and
    teacher density ν*), max over t ∈ {0, 1, 3, 10, 30} of |L_m(t) − E(t)|, for m = 8 … 256, and
    the fitted order (the self-energy of the discrete measure, ½ Σ_{j≠0} κ_{jm} M², predicts 4).

Run (from the repository root; about half a minute without ``--huge``)::

    PYTHONPATH=. python benchmarks/network.py
    PYTHONPATH=. python benchmarks/network.py --quick    # smaller sizes, a few seconds
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import tracemalloc

import numpy as np


def header() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"numpy {np.__version__}, Python {platform.python_version()}; {os.cpu_count()} logical CPUs, "
            f"load {load:.2f}")


# ----------------------------------------------------------------------------- (a)
def evaluation(m, m_star, threads, repeats, seed=0):
    from sobolev_flow.models.network import NetworkModel, NetworkTeacher

    rng = np.random.default_rng(seed)
    teacher = NetworkTeacher(rng.standard_normal(m_star), rng.standard_normal((m_star, 2)), threads=threads)
    w = rng.standard_normal((m, 2))
    model = NetworkModel(np.linalg.norm(w, axis=1), w, teacher, threads=threads)
    u = model.initial_state()
    times = []
    tracemalloc.start()
    for _ in range(repeats):
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        t0 = time.perf_counter()
        model.loss_and_gradient(u)
        times.append(time.perf_counter() - t0)
        peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    seconds = statistics.median(times)
    pairs = m * m + m * m_star
    print(f"| {m} | {m_star} | {threads} | {seconds * 1e3:.0f} | {seconds / pairs * 1e9:.1f} | {peak / 2**20:.1f} |")


def block_memory(m, threads, seed=0):
    """The peak of the row blocks at width m, from the first 64 rows against all m neurons (the
    blocks' arrays do not depend on how many rows are done; the rest of a full call is O(m))."""
    from sobolev_flow.models.network import relu_kernel_sums

    rng = np.random.default_rng(seed)
    w, a = rng.standard_normal((m, 2)), rng.standard_normal(m)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    relu_kernel_sums(w[:64], a, w, threads=threads)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    vectors = 12 * m * 8 / 2**20
    print(f"\nm = {m}: peak of the row blocks {peak / 2**20:.1f} MiB (64 rows against all m), plus about "
          f"{vectors:.0f} MiB of O(m) vectors: a full evaluation fits in 2 GiB")


# ----------------------------------------------------------------------------- (b)
def convergence(widths, t_end):
    from sobolev_flow.validation import network_limit_errors

    times = [t for t in (0.0, 1.0, 3.0, 10.0, 30.0) if t <= t_end]
    errors, energy = network_limit_errors(widths, times, n=128)
    print("| m | max_t abs(L_m − E) | relative to E(t_end) |\n|---:|---:|---:|")
    for m, error in zip(widths, errors):
        print(f"| {m} | {error:.3e} | {error / energy[-1]:.2e} |")
    order = -np.polyfit(np.log(widths), np.log(errors), 1)[0]
    print(f"\nfitted order in m: {order:.2f} (E(0) = {energy[0]:.4e}, E({times[-1]:g}) = {energy[-1]:.4e})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--huge", action="store_true", help="also one evaluation at m = 10^5 (minutes)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 5)
    print(header() + "\n")
    print("| m | m* | threads | time (ms) | ns per pair | peak numpy memory (MiB) |\n|---:|---:|---:|---:|---:|---:|")
    sizes = [(1000, 100)] if args.quick else [(1000, 100), (10**4, 10**3)]
    if args.huge:
        sizes.append((10**5, 10**3))
    for m, m_star in sizes:
        evaluation(m, m_star, args.threads, 1 if m >= 10**5 else repeats)
    if not args.huge and not args.quick:
        block_memory(10**5, args.threads)
    print()
    convergence([8, 16, 32] if args.quick else [8, 16, 32, 64, 128, 256], 3.0 if args.quick else 30.0)


if __name__ == "__main__":
    main()
