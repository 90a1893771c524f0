"""Cost of the nonlinear right-hand side relative to the FFTs it performs.

What is measured
----------------
For :meth:`sobolev_flow.models.spectral.SpectralModel.explicit` (N(ρ) = div((ρ + ν − ν̄)∇ψ),
uniform target, ``SobolevKernel(s=2)``, 3/2 dealiasing, a random smooth ρ projected with
``grid.project``) the script reports

    ratio = median time of one ``SpectralModel.explicit(rho_hat, out)`` call
            / median time of the FFTs that call performs,

where "the FFTs" are those of :meth:`SpectralModel.transforms_only`: one c2r for ρ and, per
axis, one c2r for ∂_j ψ and one r2c for the flux F_j, on the padded grid, with the same plans
and threads. With ``--geometry wfr`` (Wasserstein–Fisher–Rao, α = 2) the right-hand side also
has the reaction −α ψ (μ − ν̄), N(ρ) = div((ρ + ν − ν̄)∇ψ) − α ψ (ρ + ν − ν̄), and both N and its
FFTs take one more transform pair (a c2r for ψ and an r2c for the reaction). The padded
spectral buffer is filled with the zero-padded ρ (``model.transform.load``) before each FFT
timing (not timed), so the transforms see realistic data. RHS and FFT
measurements are interleaved, one of each per repeat (alternating which goes first), so
background load affects both alike, and the element-wise work is reported as the median of
the per-repeat differences RHS − FFT (so the columns need not subtract exactly).

"The FFTs" are the right-hand side's own: with pyFFTW and 3/2 padding (d ≥ 2) the pruned
transforms of :class:`~sobolev_flow.fft.PrunedRealFFT`, which skip the zero columns of the padded
spectrum. The column "full FFT" times, interleaved with the two, the same number of unpruned
c2r and r2c transforms of the padded grid (:class:`~sobolev_flow.fft.RealFFT`, same threads and
planner effort), what the right-hand side would transform without pruning; "RHS / full" is the
right-hand side over that time.

Cases: 2-D 256², 512², 1024², 3-D 64³, 128³, each with ``threads`` 1 and 2 (``--cases``,
``--threads`` and ``--quick`` change the set). Every measurement is warmed up and then
repeated at least ``--repeats`` times and for at least ``--min-time`` seconds of each kind
(defaults: 20 repeats, 2 s).

Run (from the repository root)::

    PYTHONPATH=. python benchmarks/rhs_vs_fft.py                 # full run, ~1-2 minutes
    PYTHONPATH=. python benchmarks/rhs_vs_fft.py --quick         # smoke run, a few seconds
    PYTHONPATH=. python benchmarks/rhs_vs_fft.py --threads 1 --effort measure --cases 256x256 512x512
    PYTHONPATH=. python benchmarks/rhs_vs_fft.py --geometry wfr  # the WFR right-hand side
    PYTHONPATH=. python benchmarks/rhs_vs_fft.py --kernels numpy # the numpy element-wise passes
    PYTHONPATH=. python benchmarks/rhs_vs_fft.py --quick --json  # the results as JSON

The output is a header (versions, CPU, load; the settings, geometry included) and a markdown
table; with ``--json`` it is instead one JSON object on stdout: ``versions`` and
``description`` (the two header lines), ``settings`` (backend, effort, kernels, geometry,
geometry_description, repeats, min_time, target_ratio) and ``timings``, a list of
``{"shape", "threads", "fft", "rhs", "elementwise", "ratio", "full_fft", "ratio_full",
"repeats"}``, times in seconds.
``benchmarks/before_after.py`` compares this script's results with those of a git revision.

``--kernels`` chooses the element-wise kernels (:mod:`sobolev_flow.fused`): ``numba`` (fused
single passes), ``numpy`` (the numpy passes) or ``auto`` (the model's default: numba when
installed and the padded grid has at least ``sobolev_flow.fused.AUTO_POINTS`` points); the
choice is in the settings line (``auto`` as given: it may differ between cases). Compilation
happens in the warm-up, outside the timings.

With ``--rk4-step DT`` the script instead times the fixed-step path of the solver: per repeat,
in rotating order, (a) one ``Solver(model, scheme="rk4", dt=DT).step(inf)`` (its three stage
evaluations, N at the new state with the monitor, the stage combinations and the per-step
measurements: energy, dissipation, the state check), (b) the same FFTs in a bare loop, four
``model.transforms_only()`` calls and nothing else, (c) the four right-hand sides alone (three
``explicit`` calls and one with the monitor), and (d) one step of a minimal pyfftw RK4 loop doing
the same FFTs (:class:`minimal_rk4.MinimalRK4`, ``benchmarks/minimal_rk4.py``: what one writes by
hand for this equation, FFTW plans on aligned buffers with the model's threads and planner effort,
numpy passes with ``out=`` for the padding, the multipliers, the products and the stage
combinations, no monitor and no diagnostics; it gives the solver's step to rounding, see
``tests/test_benchmark_minimal.py``). The model starts from μ0 = 1 + ½ f/max|f|, f the grid values
of the random smooth state, and the minimal loop from the same coefficients. It reports the
medians and the ratios step / minimal loop (the target: a fixed-step RK4 step ≤ 1.05× a minimal
pyfftw RK4 loop doing the same FFTs, ``STEP_TARGET_RATIO``), step / FFTs (which cannot reach it:
the right-hand side alone costs ~1.15× its FFTs), step / RHS (the stepping's own overhead) and
minimal / FFTs (the element-wise work of the minimal loop)::

    PYTHONPATH=. python benchmarks/rhs_vs_fft.py --rk4-step 1e-3 --cases 256x256 512x512 --threads 1 2

With ``--json`` the fixed-step results are one JSON object like the one above, its settings with
``rk4_step`` and ``target_ratio`` 1.05, and ``step_timings``, a list of ``{"shape", "threads",
"step", "minimal", "fft", "rhs", "step_over_minimal", "repeats"}`` (seconds), in place of
``timings``. The minimal loop always uses pyfftw (``--backend numpy`` changes the model alone) and
solves the Wasserstein flow alone (``--rk4-step`` with ``--geometry wfr`` is an error).

Target of the right-hand side table: ratio ≤ 1.15 with one thread and ≤ 1.3 with two at 256² and 512² (``TARGET_RATIO`` is
the one-thread target), i.e. the element-wise work of the right-hand side (zero padding,
gradient, product, divergence, and the reaction under WFR) costs at most 15 % of its FFTs.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass

import numpy as np

from sobolev_flow import SobolevKernel, SpectralModel, Torus
from sobolev_flow.fft import RealFFT
from sobolev_flow.models import make_geometry

FULL_CASES = ((256, 256), (512, 512), (1024, 1024), (64, 64, 64), (128, 128, 128))
QUICK_CASES = ((64, 64), (32, 32, 32))
TARGET_RATIO = 1.15
#: The fixed-step target: one ``Solver.step`` of rk4 over one step of the minimal pyfftw RK4 loop.
STEP_TARGET_RATIO = 1.05

#: The ``geometry`` argument of :class:`SpectralModel` for each ``--geometry`` choice.
GEOMETRIES = {"wasserstein": "wasserstein", "wfr": {"name": "wfr", "alpha": 2.0}}


@dataclass(frozen=True)
class Timing:
    """Medians (in seconds) of one benchmark case.

    Attributes
    ----------
    shape : tuple of int
        Grid shape (unpadded).
    threads : int
        FFTW threads of the model's transform.
    fft, rhs, elementwise : float
        Median times of the FFTs of one call, of one ``SpectralModel.explicit`` call, and of the
        per-repeat difference RHS − FFT.
    full_fft : float
        Median time of as many unpruned transforms of the padded grid (equal to ``fft`` when the
        right-hand side's transforms are not pruned).
    repeats : int
        Number of interleaved repeats behind the medians.
    """

    shape: tuple
    threads: int
    fft: float
    rhs: float
    elementwise: float
    repeats: int
    full_fft: float

    @property
    def ratio(self) -> float:
        """RHS time over FFT time."""
        return self.rhs / self.fft

    @property
    def ratio_full(self) -> float:
        """RHS time over the time of the unpruned transforms."""
        return self.rhs / self.full_fft


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    argparse.Namespace
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="smaller cases and fewer repeats (smoke run)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="FFTW thread counts (default: 1 2)")
    parser.add_argument("--effort", choices=("estimate", "measure"), default="estimate", help="FFTW planner effort")
    parser.add_argument("--backend", choices=("pyfftw", "numpy"), default="pyfftw", help="FFT back end")
    parser.add_argument("--geometry", choices=tuple(GEOMETRIES), default="wasserstein",
                        help="geometry of the right-hand side: wasserstein (default) or wfr "
                             "(Wasserstein-Fisher-Rao, alpha = 2: one more transform pair)")
    parser.add_argument("--kernels", choices=("auto", "numba", "numpy"), default="auto",
                        help="element-wise kernels of the right-hand side (default auto: numba when installed and "
                             "the padded grid is large, see sobolev_flow.fused.AUTO_POINTS)")
    parser.add_argument("--repeats", type=int, default=None, help="minimum repeats per case (default 20; quick 5)")
    parser.add_argument("--min-time", type=float, default=None,
                        help="minimum seconds per measurement (default 2; quick 0.2)")
    parser.add_argument("--cases", nargs="+", default=None, metavar="NxN[xN]",
                        help="grid shapes to run instead of the default set, e.g. 256x256 128x128x128")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random initial coefficients")
    parser.add_argument("--rk4-step", type=float, default=None, metavar="DT",
                        help="time fixed RK4 steps of size DT through the solver against steps of a minimal pyfftw "
                             "RK4 loop (benchmarks/minimal_rk4.py), four bare transforms_only() calls and four "
                             "right-hand sides instead")
    parser.add_argument("--json", action="store_true",
                        help="print the results as one JSON object instead of the header and the table")
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 5 if args.quick else 20
    if args.min_time is None:
        args.min_time = 0.2 if args.quick else 2.0
    if args.cases is not None:
        try:
            args.cases = [Torus(tuple(int(n) for n in case.lower().split("x"))).shape for case in args.cases]
        except ValueError as err:
            parser.error(f"--cases {' '.join(args.cases)}: expected grid shapes such as 256x256 ({err})")
    if args.rk4_step is not None and args.geometry != "wasserstein":
        parser.error("--rk4-step compares with a minimal loop of the Wasserstein flow: use --geometry wasserstein")
    if args.repeats < 1 or args.min_time < 0 or any(t < 1 for t in args.threads):
        parser.error("--repeats and --threads must be positive, --min-time non-negative")
    return args


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, or the platform's best guess."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def versions_header() -> str:
    """One line with the library versions, the CPU model and the current 1-minute load average.

    The load matters: with 2 cores, FFTW with ``threads=2`` slows down sharply when another
    process keeps one core busy.
    """
    try:
        import pyfftw

        fftw = pyfftw.__version__
    except ImportError:
        fftw = "not installed"
    try:
        load = ", load average {:.2f}".format(os.getloadavg()[0])
    except (AttributeError, OSError):  # pragma: no cover - not Unix
        load = ""
    return (f"numpy {np.__version__}, pyfftw {fftw}, Python {platform.python_version()}, "
            f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs{load})")


def smooth_state(grid: Torus, rng: np.random.Generator) -> np.ndarray:
    """Random smooth coefficients of ρ = μ − ν with zero mean, projected onto the resolved modes.

    Parameters
    ----------
    grid : Torus
    rng : numpy.random.Generator

    Returns
    -------
    ndarray
        Complex array of shape ``grid.spectral_shape``.
    """
    shape = grid.spectral_shape
    noise = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    rho_hat = 0.1 * noise * np.exp(-grid.k2 / 32.0)
    rho_hat.flat[0] = 0.0
    return grid.project(rho_hat)


def time_rhs(model: SpectralModel, rho_hat: np.ndarray, out: np.ndarray) -> float:
    """Seconds taken by one ``model.explicit(rho_hat, out)`` call."""
    start = time.perf_counter()
    model.explicit(rho_hat, out)
    return time.perf_counter() - start


def time_ffts(model: SpectralModel, rho_hat: np.ndarray) -> float:
    """Seconds taken by the FFTs of one ``explicit`` call (:meth:`SpectralModel.transforms_only`).

    The spectral buffer is first filled with the zero-padded ρ (``model.transform.load``),
    outside the timed region, so that the transforms see realistic data rather than the
    previous call's leftovers.
    """
    model.transform.load(rho_hat)
    start = time.perf_counter()
    model.transforms_only()
    return time.perf_counter() - start


def full_transforms(model: SpectralModel):
    """A function executing the transforms of one ``explicit`` call unpruned: (1 + d) c2r and d
    r2c (one pair more under WFR) of a :class:`~sobolev_flow.fft.RealFFT` on the padded grid with
    the model's back end, threads and planner effort; its spectral buffer is filled with the
    zero-padded state before each backward transform, outside the returned function's work
    (see :func:`time_full_ffts`). None when the model's transforms are not pruned (they are
    then the full ones)."""
    transform = model.transform
    if not getattr(transform, "pruned", False):
        return None
    fft = RealFFT(model.grid.padded_shape, backend=transform.backend, threads=transform.threads,
                  effort=transform.effort)
    pairs = model.grid.d + (1 if model.alpha else 0)
    return fft, pairs


def time_full_ffts(full, model: SpectralModel) -> float:
    """Seconds taken by the unpruned transforms of :func:`full_transforms`: one c2r, then per pair
    a c2r and an r2c, the spectral buffer holding the padded spectrum of the state (copied from
    the model's, untimed) before the first."""
    fft, pairs = full
    np.copyto(fft.spectral[0], model.transform._spectral[0])
    start = time.perf_counter()
    fft.backward()
    for _ in range(pairs):
        fft.backward()
        fft.forward()
    return time.perf_counter() - start


def make_model(grid: Torus, threads: int, args: argparse.Namespace) -> SpectralModel:
    """The model whose right-hand side is timed: μ0 ≡ ν ≡ 1 (the timed states are passed to
    ``explicit`` directly), ``SobolevKernel(s=2)``, the geometry, back end, threads, planner
    effort and element-wise kernels of the options."""
    return SpectralModel(grid, np.ones(grid.shape), kernel=SobolevKernel(s=2), geometry=GEOMETRIES[args.geometry],
                         fft_backend=args.backend, threads=threads, fft_effort=args.effort, kernels=args.kernels)


def measure_case(shape, threads: int, args: argparse.Namespace) -> Timing:
    """Interleaved timings of ``SpectralModel.explicit`` and of its FFTs for one grid and thread count.

    Parameters
    ----------
    shape : tuple of int
        Grid shape.
    threads : int
        FFTW threads.
    args : argparse.Namespace
        Parsed options (backend, effort, geometry, repeats, min_time, seed).

    Returns
    -------
    Timing
    """
    grid = Torus(shape, dealias="3/2")
    model = make_model(grid, threads, args)
    rho_hat = smooth_state(grid, np.random.default_rng(args.seed))
    out = np.empty_like(rho_hat)

    full = full_transforms(model)
    for _ in range(3):  # warm-up: page in buffers, wake the FFTW thread pool
        time_rhs(model, rho_hat, out)
        time_ffts(model, rho_hat)
        if full is not None:
            time_full_ffts(full, model)

    rhs, fft, full_fft = [], [], []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        while len(rhs) < args.repeats or min(sum(rhs), sum(fft)) < args.min_time:
            # alternate the order so that neither measurement always follows the other
            if len(rhs) % 2:
                fft.append(time_ffts(model, rho_hat))
                rhs.append(time_rhs(model, rho_hat, out))
            else:
                rhs.append(time_rhs(model, rho_hat, out))
                fft.append(time_ffts(model, rho_hat))
            if full is not None:  # after the FFT timing, whose load left the padded state in the buffer
                full_fft.append(time_full_ffts(full, model))
    finally:
        if gc_was_enabled:
            gc.enable()

    diff = [r - f for r, f in zip(rhs, fft)]
    fft = statistics.median(fft)
    return Timing(tuple(shape), model.transform.threads, fft, statistics.median(rhs), statistics.median(diff),
                  len(rhs), statistics.median(full_fft) if full_fft else fft)


@dataclass(frozen=True)
class StepTiming:
    """Medians (in seconds) of the fixed-step case: one RK4 step through the solver, one step of the
    minimal pyfftw RK4 loop (:class:`minimal_rk4.MinimalRK4`), the solver step's FFTs in a bare loop
    (four ``transforms_only``), and its four right-hand sides alone."""

    shape: tuple
    threads: int
    step: float
    minimal: float
    fft: float
    rhs: float
    repeats: int


def measure_step_case(shape, threads: int, args: argparse.Namespace) -> StepTiming:
    """Interleaved timings of a fixed RK4 step (``Solver.step``), of one step of the minimal pyfftw
    RK4 loop from the same state, of four ``transforms_only`` calls and of four ``explicit`` calls
    (the last with the monitor), for one grid and thread count."""
    from minimal_rk4 import MinimalRK4

    from sobolev_flow import Solver

    grid = Torus(shape, dealias="3/2")
    f = grid.to_physical(smooth_state(grid, np.random.default_rng(args.seed)))
    mu0 = 1.0 + 0.5 * f / np.abs(f).max()
    model = SpectralModel(grid, mu0, kernel=SobolevKernel(s=2), geometry=GEOMETRIES[args.geometry],
                          fft_backend=args.backend, threads=threads, fft_effort=args.effort, kernels=args.kernels)
    solver = Solver(model, scheme="rk4", dt=args.rk4_step)
    rho_hat, out = solver.u.copy(), model.empty()
    minimal = MinimalRK4(rho_hat, grid.padded_shape, s=2.0, nu_bar=model.stabilisation,
                         threads=model.transform.threads, effort=args.effort)

    def time_step():
        start = time.perf_counter()
        solver.step(math.inf)
        return time.perf_counter() - start

    def time_minimal():
        start = time.perf_counter()
        minimal.step(args.rk4_step)
        return time.perf_counter() - start

    def time_ffts():
        start = time.perf_counter()
        for _ in range(4):
            model.transforms_only()
        return time.perf_counter() - start

    def time_rhs():
        start = time.perf_counter()
        for i in range(4):
            model.explicit(rho_hat, out, monitor=i == 3)
        return time.perf_counter() - start

    kinds = (time_step, time_minimal, time_ffts, time_rhs)
    for _ in range(3):
        for kind in kinds:
            kind()
    samples = {kind: [] for kind in kinds}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        n = 0
        while n < args.repeats or min(sum(v) for v in samples.values()) < args.min_time:
            order = kinds[n % len(kinds):] + kinds[:n % len(kinds)]  # rotate the order
            for kind in order:
                samples[kind].append(kind())
            n += 1
    finally:
        if gc_was_enabled:
            gc.enable()
    median = {kind: statistics.median(samples[kind]) for kind in kinds}
    return StepTiming(tuple(shape), model.transform.threads, median[time_step], median[time_minimal],
                      median[time_ffts], median[time_rhs], n)


def case_name(shape) -> str:
    """"2-D 256×256" for the shape (256, 256)."""
    return f"{len(shape)}-D " + "×".join(map(str, shape))


def format_step_table(timings) -> str:
    """A markdown table of the fixed-step timings."""
    lines = [
        "| case | threads | RK4 step ms | minimal RK4 ms | 4 FFT sets ms | 4 RHS ms | **step / minimal** | "
        "step / FFTs | step / RHS | minimal / FFTs | repeats |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in timings:
        lines.append(f"| {case_name(t.shape)} | {t.threads} | {1e3 * t.step:.2f} | {1e3 * t.minimal:.2f} | "
                     f"{1e3 * t.fft:.2f} | {1e3 * t.rhs:.2f} | **{t.step / t.minimal:.3f}** | {t.step / t.fft:.3f} | "
                     f"{t.step / t.rhs:.3f} | {t.minimal / t.fft:.3f} | {t.repeats} |")
    return "\n".join(lines)


def format_table(timings) -> str:
    """A markdown table of the timings."""
    lines = [
        "| case | threads | FFT ms | RHS ms | element-wise ms | ratio | full FFT ms | RHS / full | repeats |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in timings:
        lines.append(f"| {case_name(t.shape)} | {t.threads} | {1e3 * t.fft:.2f} | {1e3 * t.rhs:.2f} | "
                     f"{1e3 * t.elementwise:.2f} | {t.ratio:.2f} | {1e3 * t.full_fft:.2f} | {t.ratio_full:.2f} | "
                     f"{t.repeats} |")
    return "\n".join(lines)


def settings_line(args: argparse.Namespace) -> str:
    """The line under the versions: back end, effort, geometry, fixed settings, repeats, target."""
    return (f"backend {args.backend}, effort {args.effort}, kernels {args.kernels}, "
            f"geometry {make_geometry(GEOMETRIES[args.geometry])}, "
            f"uniform target, SobolevKernel(s=2), dealias 3/2; ≥ {args.repeats} repeats and ≥ {args.min_time:g} s "
            f"per measurement; target ratio ≤ {STEP_TARGET_RATIO if args.rk4_step is not None else TARGET_RATIO}"
            + (" (step / minimal loop)" if args.rk4_step is not None else ""))


def as_json(timings, args: argparse.Namespace) -> str:
    """The timings and the settings as one JSON object (times in seconds; see the module docstring):
    ``timings`` for :class:`Timing` rows, ``step_timings`` (and the step target) for :class:`StepTiming` rows."""
    step = args.rk4_step is not None
    if step:
        rows = {"step_timings": [{"shape": list(t.shape), "threads": t.threads, "step": t.step, "minimal": t.minimal,
                                  "fft": t.fft, "rhs": t.rhs, "step_over_minimal": t.step / t.minimal,
                                  "repeats": t.repeats} for t in timings]}
    else:
        rows = {"timings": [{"shape": list(t.shape), "threads": t.threads, "fft": t.fft, "rhs": t.rhs,
                             "elementwise": t.elementwise, "ratio": t.ratio, "full_fft": t.full_fft,
                             "ratio_full": t.ratio_full, "repeats": t.repeats} for t in timings]}
    return json.dumps({
        "versions": versions_header(),
        "description": settings_line(args),
        "settings": {"backend": args.backend, "effort": args.effort, "kernels": args.kernels,
                     "geometry": args.geometry,
                     "geometry_description": str(make_geometry(GEOMETRIES[args.geometry])),
                     "repeats": args.repeats, "min_time": args.min_time,
                     "target_ratio": STEP_TARGET_RATIO if step else TARGET_RATIO,
                     **({"rk4_step": args.rk4_step} if step else {})},
        **rows,
    })


def main(argv=None) -> int:
    """Run every case and print the header and the table (or, with ``--json``, one JSON object).

    Returns
    -------
    int
        Exit status (0).
    """
    args = parse_args(argv)
    cases = args.cases or (QUICK_CASES if args.quick else FULL_CASES)
    if not args.json:
        print(versions_header())
        print(settings_line(args))
        if args.backend == "numpy":
            print("(numpy.fft ignores the thread count)")
        print()
    if args.rk4_step is not None:
        steps = [measure_step_case(shape, threads, args) for shape in cases for threads in args.threads]
        print(as_json(steps, args) if args.json else format_step_table(steps))
        return 0
    timings = []
    for shape in cases:
        for threads in args.threads:
            timings.append(measure_case(shape, threads, args))
    print(as_json(timings, args) if args.json else format_table(timings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
