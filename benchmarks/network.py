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
(c) The linear mode rates near a uniform teacher (:func:`sobolev_flow.validation.network_mode_rates`,
    as ``tests/test_network.py`` asserts them): m = 256 balanced neurons on a grid of directions,
    M* = 1.5, rk4 at dt = 1 to t = 300; the measured decay rate of modes n = 1, 2, 4, 6 against
    M*(n² + 2)κ_n, and the drift |A_n(300)/A_n(0) − 1| of the odd modes n = 3, 5 (not damped).
(d) The training schemes (:func:`sobolev_flow.validation.gradient_descent_errors` and
    :func:`~sobolev_flow.validation.proximal_step_differences`): max|θ_GD(T) − θ(T)| against the
    flow at T = 4 for γ = 0.4, 0.2, 0.1, 0.05 (order 1), and max|θ_prox − θ_GD| of one step from
    the same state for γ = 0.2 … 0.025 (order 2), with the fitted and the local orders.

(a) is a timing; (b)–(d) are not. ``--parts`` selects among them (default: all).

Run (from the repository root; about half a minute without ``--huge``)::

    PYTHONPATH=. python benchmarks/network.py
    PYTHONPATH=. python benchmarks/network.py --quick    # smaller sizes, a few seconds
    PYTHONPATH=. python benchmarks/network.py --parts modes training
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


# ----------------------------------------------------------------------------- (c)
def modes():
    from sobolev_flow.validation import network_mode_rates

    rates, drifts = network_mode_rates(width=256, mass=1.5, dt=1.0)
    print("| n | measured rate | M*(n² + 2)κ_n | relative error |\n|---:|---:|---:|---:|")
    for n, (measured, predicted) in rates.items():
        print(f"| {n} | {measured:.8g} | {predicted:.8g} | {measured / predicted - 1:.1e} |")
    print("\n| odd n | abs(A_n(300)/A_n(0) − 1) |\n|---:|---:|")
    for n, drift in drifts.items():
        print(f"| {n} | {drift:.1e} |")


# ----------------------------------------------------------------------------- (d)
def orders_table(name, gammas, values, order):
    print(f"| γ | {name} | local order |\n|---:|---:|---:|")
    for i, (gamma, value) in enumerate(zip(gammas, values)):
        local = "" if i == 0 else f"{np.log(values[i - 1] / value) / np.log(gammas[i - 1] / gamma):.3f}"
        print(f"| {gamma:g} | {value:.4e} | {local} |")
    print(f"\nfitted order: {order:.3f}")


def training():
    from sobolev_flow.validation import gradient_descent_errors, proximal_step_differences

    gammas = [0.4, 0.2, 0.1, 0.05]
    order, errors = gradient_descent_errors(gammas, t_end=4.0)
    orders_table("max abs(θ_GD(4) − θ(4))", gammas, errors, order)
    gammas = [0.2, 0.1, 0.05, 0.025]
    order, differences, residual = proximal_step_differences(gammas, prox_tol=1e-13)
    print()
    orders_table("max abs(θ_prox − θ_GD), one step", gammas, differences, order)
    print(f"largest residual of the proximal steps: {residual:.1e} (prox_tol 1e-13)")


PARTS = ("evaluation", "limit", "modes", "training")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--huge", action="store_true", help="also one evaluation at m = 10^5 (minutes)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="(a) evaluation, (b) limit, (c) modes, (d) training")
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 5)
    print(header())
    if "evaluation" in args.parts:
        print("\n| m | m* | threads | time (ms) | ns per pair | peak numpy memory (MiB) |\n"
              "|---:|---:|---:|---:|---:|---:|")
        sizes = [(1000, 100)] if args.quick else [(1000, 100), (10**4, 10**3)]
        if args.huge:
            sizes.append((10**5, 10**3))
        for m, m_star in sizes:
            evaluation(m, m_star, args.threads, 1 if m >= 10**5 else repeats)
        if not args.huge and not args.quick:
            block_memory(10**5, args.threads)
    if "limit" in args.parts:
        print()
        convergence([8, 16, 32] if args.quick else [8, 16, 32, 64, 128, 256], 3.0 if args.quick else 30.0)
    if "modes" in args.parts:
        print()
        modes()
    if "training" in args.parts:
        print()
        training()


if __name__ == "__main__":
    main()
