"""Time to solution with the default CLI settings (only rtol chosen): before and after a change, and against Dedalus 3.

What is measured
----------------
Two cases, 2-D 256², bump initial data (``initial.density = "bumps"``: one von Mises bump,
κ = 4, on a floor 0.1, mean 1), ν ≡ 1: s = 2 to t = 1 and s = 1 to t = 0.4. The package runs
through its command line, ``python -m sobolev_flow.run --set ...``, with every setting its default
(scheme, cfl, error estimate, the dense geometric diagnostic schedule) but the case, rtol, the
output path and the FFT threads (``--threads``, default 1: one thread like Dedalus; 0 is the
CLI's automatic choice). Each run is made by two trees:

* *before*: the package of git revision REV (default ``main``), exported with ``git archive``
  into a temporary directory (removed at the end);
* *after*: the package of this working tree.

The error of a run is max|μ(t_end) − μ_ref| / max|μ_ref − 1| against a converged reference
(this tree's ``solve``, etdrk4 at rtol 1e-11 with cfl 0.2, no output but t_end).

Sections (each can be switched on and off; the default runs the first two):

1. ``--table``: for every rtol of ``--rtols`` and case, both trees (alternating which goes
   first): accepted steps, rejected steps, right-hand-side evaluations per accepted step (all of
   them, and in brackets those of the steps alone), the evaluations for diagnostics at
   interpolated times (one per such time; none where every diagnostic time was landed on; where
   the grid model has ``observe``, none either, and the number of such times "observed" from
   backward transforms alone is given instead), the
   error, and the wall time the CLI reports: ``--repeats`` runs of each tree (at least one),
   alternating which goes first, the median (the steps, evaluations and error of every run are
   the same).

2. ``--dedalus``: time to reach each target error of ``--targets`` (default 1e-6 and 1e-8).

   * The package (both trees): the largest rtol on the ladder 10^(−k/2), k = 2..20 (``--ladder``),
     run from the top down, such that this rung and the next smaller one both reach the target
     (errors need not be monotone in rtol; the last rung counts alone). Reported: that rtol,
     steps, rejected steps, evaluations per step, and two wall times: the CLI's (the stepping
     loop with its trackers: steps, diagnostics and snapshots written to the run file, closing
     the file; *not* imports, configuration, FFT planning, the initial density, creating the
     file) and, as "setup", the rest of the process's wall time (interpreter start, imports,
     planning, ...).
   * Dedalus 3 (``benchmarks/dedalus_compare.py``'s formulation of the same semi-discrete
     problem: the same Fourier modes without Nyquist, 3/2 dealiasing, the same split around
     μ = 1, ψ(0) from an LBVP; the initial array is the package's ``bumps`` on the same grid),
     timesteppers RK443 (4 explicit evaluations per step) and SBDF2 (1) with a fixed step T/m:
     the smallest m whose error reaches the target, found by a ladder from 16 steps (doubling,
     or jumping to the step count that the last two runs' observed order predicts, at most 8×)
     and then a bisection on the integers (the next point guessed by log-log interpolation,
     safeguarded by halving); see :func:`cheapest_steps`. When the target is not reached within
     ``--max-steps`` the count is extrapolated from the last two runs at their observed order
     and marked ``*``; its wall time is then the time per step of a timed run (at the largest
     count of that scheme that reached a target, else at ``--max-steps``) times that count.
     Wall time: the loop of ``solver.step`` calls (including the first step's factorisation of
     the implicit matrices); "setup": building the IVP solver plus the shared set-up (bases,
     ψ(0)). One thread: OMP/OpenBLAS/MKL threads 1, serial distributor.
   * Convergence check: Dedalus RK443 with ``--check-steps`` steps (default 1536) against the
     reference; an error far below the targets, still falling at RK443's order 3, shows that
     the two semi-discretisations agree.
   * Timing: the chosen configurations of both codes, ``--repeats`` times (default 3; 0: search
     only), in rotating order, in this one process and its CLI children; medians are reported.
     The speed-up is Dedalus wall / package wall (CLI wall time), per package row and Dedalus
     scheme.

3. ``--study``: the 1-D s = 2 rate study ``runs/s2_polynomial.toml`` (4096 points, kink data,
   rtol 1e-7, t_end = 10^5; this tree's file for both trees) by the CLI of each tree, with
   ``--threads`` FFT threads: steps, rejected, evaluations, evaluations per step, CLI wall time
   and process wall time, ``--repeats`` times each (at least once), alternating; medians.

Dedalus' errors per (case, timestepper, step count), the package's runs of the rtol ladder (per
tree: the git tree of ``sobolev_flow/``, and for the working tree a hash of its uncommitted
changes) and the references can be kept in a directory (``--cache DIR``), so that a search
interrupted or split over several commands (e.g. ``--repeats 0`` for the search, then the
timing) is not repeated. The wall times of those cached runs are not reported; only those of
the timed repeats are.

Run (from the repository root; each command prints markdown tables)::

    # the before/after table per rtol (~1 minute)
    python benchmarks/time_to_solution.py --rev main --rtols 1e-2 1e-4 1e-6 --no-dedalus

    # against Dedalus, one case: the search (~30 minutes at 256² on one core), then the timing
    # of the chosen configurations (~10 minutes), the second reading the first's cache
    python benchmarks/time_to_solution.py --rev 5a2d440 --no-table --cases "s=2, t=1" --repeats 0 \\
        --check-steps 0 --max-steps 2048 --cache /tmp/tts_s2
    python benchmarks/time_to_solution.py --rev 5a2d440 --no-table --cases "s=2, t=1" --repeats 3 \\
        --check-steps 0 --max-steps 2048 --cache /tmp/tts_s2

    # the convergence check alone (RK443, 1536 steps; the cached search is not repeated)
    python benchmarks/time_to_solution.py --rev 5a2d440 --no-table --cases "s=2, t=1" --targets 1e-6 \\
        --schemes RK443 --repeats 0 --check-steps 1536 --cache /tmp/tts_s2

    # the 1-D rate study
    python benchmarks/time_to_solution.py --rev 5a2d440 --no-table --no-dedalus --study

On a shared machine run the timing commands alone (e.g. under ``flock -x`` of a common lock file).
"""

import os

# The package's runs get the caller's environment (their threads are fft.threads); Dedalus, in
# this process, runs on one thread: these must be set before numpy is imported.
CLI_ENVIRONMENT = dict(os.environ)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import pathlib  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import h5py  # noqa: E402
import numpy as np  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from dedalus_compare import _DedalusRun, dedalus_available  # noqa: E402

CASES = {"s=2, t=1": (2.0, 1.0), "s=1, t=0.4": (1.0, 0.4)}
SUMMARY = re.compile(r"steps (\d+) \(rejected (\d+)\), rhs evaluations (\d+), wall time ([0-9.]+) s")
STUDY = ROOT / "runs" / "s2_polynomial.toml"
#: Right-hand-side evaluations per step of Dedalus' timesteppers (explicit stages).
DEDALUS_EVALUATIONS = {"RK443": 4, "SBDF2": 1, "RK222": 2, "SBDF4": 1}


# ============================================================================ the package's CLI
def export(rev: str, into: pathlib.Path) -> pathlib.Path:
    """The tree of ``rev`` as files under ``into`` (git archive, no worktree)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def _cli(tree: pathlib.Path, arguments: list, work: pathlib.Path) -> dict:
    """One CLI process of ``tree``: its counts, the CLI's wall time and the process's."""
    env = dict(CLI_ENVIRONMENT, PYTHONPATH=str(tree))
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "sobolev_flow.run", *arguments], capture_output=True, text=True,
                            env=env, cwd=work)
    process = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{tree}: {result.stderr.strip()}")
    steps, rejected, evaluations, wall = SUMMARY.search(result.stdout).groups()
    return {"steps": int(steps), "rejected": int(rejected), "evaluations": int(evaluations), "wall": float(wall),
            "process": process}


def observes(tree: pathlib.Path) -> bool:
    """Whether the grid model of ``tree`` takes interpolated diagnostics from ``observe`` (backward
    transforms only, not counted in the CLI's rhs evaluations)."""
    return "def observe(" in (tree / "sobolev_flow" / "models" / "spectral.py").read_text()


def diagnostic_cost(r: dict) -> str:
    """The evaluations of N spent on interpolated diagnostics, or how many were observed instead."""
    return f"0 ({r['observations']} observed)" if r.get("observations") else str(r["diagnostic_evaluations"])


def run_cli(tree: pathlib.Path, n: int, s: float, t_end: float, rtol: float, work: pathlib.Path,
            threads: int = 0) -> dict:
    """One CLI run with the defaults but for the case, rtol and FFT threads; its counts, wall times and μ(t_end)."""
    path = work / f"run_{os.getpid()}_{time.monotonic_ns()}.h5"
    r = _cli(tree, ["--set", "grid.d=2", f"grid.n={n}", f"model.s={s}", 'initial.density="bumps"',
                    f"time.t_end={t_end}", f"time.rtol={rtol}", f'output.path="{path}"', f"fft.threads={threads}"],
             work)
    with h5py.File(path, "r") as f:
        r["mu"] = f["snapshots/mu"][-1]
        landed = np.isin(f["diagnostics/t"][:], f["snapshots/t"][:])
        # a diagnostic time the solver did not stand on cost one evaluation of N (the continuous
        # extension), or, where the grid model has observe, backward transforms only (not counted)
        interpolated = int(np.count_nonzero(~landed)) if "method" in f["diagnostics"].attrs else 0
        r["diagnostic_evaluations"] = 0 if observes(tree) else interpolated
        r["observations"] = interpolated if observes(tree) else 0
    path.unlink()
    return r


def run_study(tree: pathlib.Path, config: pathlib.Path, work: pathlib.Path, threads: int = 0) -> dict:
    """The CLI of ``tree`` on the TOML file ``config`` (output in ``work``): counts and wall times."""
    path = work / f"study_{os.getpid()}_{time.monotonic_ns()}.h5"
    r = _cli(tree, [str(config), "-q", "--set", f'output.path="{path}"', f"fft.threads={threads}"], work)
    path.unlink()
    return r


def reference(n: int, s: float, t_end: float, cache: pathlib.Path | None = None) -> np.ndarray:
    """μ(t_end) converged: this tree's etdrk4 at rtol 1e-11, cfl 0.2 (kept in ``cache`` if given)."""
    stored = None if cache is None else cache / f"reference_n{n}_s{s:g}_t{t_end:g}.npy"
    if stored is not None and stored.exists():
        return np.load(stored)
    from sobolev_flow import Torus, solve
    from sobolev_flow.initial import bumps

    grid = Torus((n, n))
    mu = solve(grid, s, bumps(grid), [t_end], scheme="etdrk4", rtol=1e-11, cfl=0.2, threads=1).mu[-1]
    if stored is not None:
        np.save(stored, mu)
    return mu


def tree_id(rev: str | None) -> str:
    """The package's source at ``rev`` (its git tree object); with None the working tree's (HEAD's, plus a
    hash of the uncommitted changes of ``sobolev_flow/``)."""
    def git(*command):
        return subprocess.run(["git", "-C", str(ROOT), *command], check=True, capture_output=True).stdout

    if rev is not None:
        return git("rev-parse", f"{rev}:sobolev_flow").decode().strip()
    head = git("rev-parse", "HEAD:sobolev_flow").decode().strip()
    diff = git("diff", "HEAD", "--", "sobolev_flow")
    return head + (f"+{hashlib.sha1(diff).hexdigest()[:10]}" if diff else "")


def relative_error(mu, ref) -> float:
    """max|μ − μ_ref| / max|μ_ref − 1| (inf when μ is not finite)."""
    diff = np.abs(np.asarray(mu) - ref)
    return float(diff.max() / np.max(np.abs(ref - 1))) if np.all(np.isfinite(diff)) else math.inf


# ============================================================================ the searches
def rtol_ladder(first: int = 2, last: int = 20) -> list:
    """The relative tolerances 10^(−k/2), k = first, ..., last (decreasing)."""
    return [10 ** (-k / 2) for k in range(first, last + 1)]


def largest_sufficient_rtol(run, ladder, targets) -> tuple[dict, list]:
    """For each target error, the largest rtol of ``ladder`` whose run and the next smaller rung's both reach it.

    The rungs are run from the top (largest rtol) down, each once, until every target is
    settled; the last rung, having no successor, counts alone.

    Parameters
    ----------
    run : callable
        ``run(rtol)`` returns a dict with at least the key ``"error"`` (nan or inf: not reached).
    ladder : sequence of float
        Decreasing tolerances.
    targets : sequence of float

    Returns
    -------
    chosen : dict
        target -> (rtol, the run's dict), or None when no rung qualifies.
    runs : list of (rtol, dict)
        Every run made, in order.
    """
    runs, chosen = [], {}
    for k, rtol in enumerate(ladder):
        runs.append((rtol, run(rtol)))
        last = k == len(ladder) - 1
        for target in targets:
            if target in chosen:
                continue
            if k >= 1 and runs[k - 1][1]["error"] <= target and runs[k][1]["error"] <= target:
                chosen[target] = runs[k - 1]
            elif last and runs[k][1]["error"] <= target:
                chosen[target] = runs[k]
        if len(chosen) == len(targets):
            break
    return {target: chosen.get(target) for target in targets}, runs


def cheapest_steps(error, target, start=16, max_steps=4096, known=None, max_jump=8.0, tol=0.0):
    """The smallest step count m with ``error(m) <= target``, error assumed to decrease with m.

    A ladder brackets the answer: from ``start`` (or from the bracket that the values in
    ``known`` already give) up by doubling, or by the jump to the count predicted by the
    power law through the last two finite errors (10 % beyond it, at most ``max_jump`` times
    the last count, at most ``max_steps``), down by halving when ``start`` already passes. A
    bisection on the integers then narrows the bracket [lo, hi] (lo fails, hi passes) to
    hi − lo ≤ max(1, tol·hi): each new point is the log-log interpolation of the bracket's
    errors, or its midpoint when the last two interpolations each removed less than half of it.

    Parameters
    ----------
    error : callable
        ``error(m)`` for a positive integer m; nan or inf count as failing.
    target : float
    start, max_steps : int
    known : dict, optional
        m -> error(m) already computed; updated in place with every new evaluation.
    max_jump : float
    tol : float
        Relative width at which the bisection stops (0: exact).

    Returns
    -------
    steps : int
        The smallest passing count found (hi), or the extrapolated count (see below).
    extrapolated : bool
        True when no m ≤ ``max_steps`` passes: ``steps`` is then the count where the line
        through the last two finite errors in log-log reaches the target (rounded up; nan
        when they do not decrease).
    """
    known = {} if known is None else known

    def passes(m):
        if m not in known:
            known[m] = float(error(m))
        return known[m] <= target  # False for nan

    def finite(ms):
        return [(m, known[m]) for m in sorted(ms) if math.isfinite(known[m]) and known[m] > 0]

    def predicted(points):
        (m0, e0), (m1, e1) = points[-2:]
        if e1 >= e0:
            return math.nan
        return m0 * math.exp(math.log(m1 / m0) / math.log(e1 / e0) * math.log(target / e0))

    def bracket():
        hi = min((m for m in known if known[m] <= target), default=None)
        lo = max((m for m in known if not known[m] <= target and (hi is None or m < hi)), default=None)
        return lo, hi

    lo, hi = bracket()
    if lo is None and hi is None:
        passes(start)
        lo, hi = bracket()
    while hi is None:  # up
        if lo >= max_steps:
            points = finite(m for m in known if m <= max_steps)
            needed = predicted(points) if len(points) >= 2 else math.nan
            return (float(math.ceil(needed - 1e-9)) if math.isfinite(needed) else math.nan), True
        points = finite(m for m in known if m <= lo)
        guess = predicted(points) if len(points) >= 2 else math.nan
        step = 2 * lo if not math.isfinite(guess) else math.ceil(1.1 * guess)
        passes(min(max_steps, max(lo + 1, min(step, math.floor(max_jump * lo)))))
        lo, hi = bracket()
    while lo is None:  # down
        if hi == 1:
            return 1, False
        passes(max(1, hi // 2))
        lo, hi = bracket()
    slow = 0  # consecutive interpolations that did not halve the bracket
    while hi - lo > max(1, tol * hi):
        width = hi - lo
        m = (lo + hi) // 2
        if slow < 2 and all(math.isfinite(known[k]) and known[k] > 0 for k in (lo, hi)) and known[lo] > known[hi]:
            guess = predicted([(lo, known[lo]), (hi, known[hi])])
            m = min(hi - 1, max(lo + 1, math.ceil(guess)))
        passes(m)
        lo, hi = bracket()
        slow = 0 if hi - lo <= width / 2 else slow + 1
    return hi, False


# ============================================================================ Dedalus
class DedalusSearch:
    """Dedalus on one case: errors per (timestepper, steps) against the reference, cached on disk if asked."""

    def __init__(self, n, s, t_end, ref, cache: pathlib.Path | None = None):
        from sobolev_flow import Torus
        from sobolev_flow.initial import bumps

        self.run = _DedalusRun(n, int(s), t_end, mu0=bumps(Torus((n, n))))
        self.ref, self.key = ref, f"n={n}, s={s:g}, t_end={t_end:g}, bumps"
        self.path = None if cache is None else cache / "dedalus_errors.json"
        self.table = json.loads(self.path.read_text()) if self.path is not None and self.path.exists() else {}

    def errors(self, timestepper) -> dict:
        """steps -> error of the runs made (an int-keyed copy of the cache)."""
        return {int(m): e for m, e in self.table.get(f"{self.key}, {timestepper}", {}).items()}

    def error(self, timestepper, steps) -> float:
        table = self.table.setdefault(f"{self.key}, {timestepper}", {})
        if str(steps) not in table:
            try:
                mu = self.run.run(timestepper, steps)
                table[str(steps)] = relative_error(mu, self.ref)
            except (RuntimeError, FloatingPointError):
                table[str(steps)] = math.inf
            print(f"  Dedalus {timestepper}, {steps} steps: error {table[str(steps)]:.3e}", file=sys.stderr, flush=True)
            if self.path is not None:
                self.path.write_text(json.dumps(self.table, indent=1))
        return table[str(steps)]

    def cheapest(self, timestepper, target, max_steps, tol=0.0):
        known = self.errors(timestepper)
        result = cheapest_steps(lambda m: self.error(timestepper, m), target, max_steps=max_steps, known=known,
                                tol=tol)
        return result

    def timed(self, timestepper, steps) -> dict:
        """One run: error, loop and setup wall times (s)."""
        mu, times = self.run.timed_run(timestepper, steps)
        return {"error": relative_error(mu, self.ref), "wall": times["loop"],
                "setup": times["solver"] + self.run.setup_time, "first_step": times["first_step"]}


# ============================================================================ sections
def _per_step(r) -> str:
    return f"{r['evaluations'] / r['steps']:.2f}"


def rtol_table(args, trees, work):
    print(f"### Before/after per rtol: {args.n}², bumps, CLI defaults but rtol, fft.threads={args.threads}\n")
    repeats = max(1, args.repeats)
    print("| case | rtol | tree | steps | rejected | evaluations / step (steps only) | diagnostic evaluations "
          f"| error at t_end | wall time (s), median of {repeats} |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for i, case in enumerate(args.cases):
        s, t_end = CASES[case]
        ref = reference(args.n, s, t_end, args.cache)
        for j, rtol in enumerate(args.rtols):
            runs = {"before": [], "after": []}
            for rep in range(repeats):  # alternating which tree goes first
                order = ["before", "after"] if (i + j + rep) % 2 == 0 else ["after", "before"]
                for name in order:
                    runs[name].append(run_cli(trees[name], args.n, s, t_end, rtol, work, args.threads))
            for name in ("before", "after"):
                r = dict(runs[name][0], wall=statistics.median(x["wall"] for x in runs[name]))
                stepping = r["evaluations"] - r["diagnostic_evaluations"] - 1  # less the initial N(u0)
                print(f"| {case} | {rtol:g} | {name} | {r['steps']} | {r['rejected']} | "
                      f"{_per_step(r)} ({stepping / r['steps']:.2f}) | "
                      f"{diagnostic_cost(r)} | "
                      f"{relative_error(r['mu'], ref):.2e} | {r['wall']:.2f} |",
                      flush=True)
    print()


def dedalus_section(args, trees, work):
    targets = sorted(args.targets, reverse=True)
    for case in args.cases:
        s, t_end = CASES[case]
        t0 = time.perf_counter()
        ref = reference(args.n, s, t_end, args.cache)
        print(f"  reference {case}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        # the package: the rtol ladder, per tree
        package, scans = {}, {}
        stored = None if args.cache is None else args.cache / "package_runs.json"
        known = json.loads(stored.read_text()) if stored is not None and stored.exists() else {}
        for name, tree in trees.items():
            key = f"{tree_id(args.rev if name == 'before' else None)}, n={args.n}, {case}, threads={args.threads}"

            def run(rtol, tree=tree, name=name, key=key):
                runs = known.setdefault(key, {})
                if repr(rtol) not in runs:
                    r = run_cli(tree, args.n, s, t_end, rtol, work, args.threads)
                    r["error"] = relative_error(r.pop("mu"), ref)
                    print(f"  {name} rtol {rtol:.3g}: {r['steps']} steps, error {r['error']:.3e}", file=sys.stderr,
                          flush=True)
                    runs[repr(rtol)] = r
                    if stored is not None:
                        stored.write_text(json.dumps(known, indent=1))
                return runs[repr(rtol)]

            package[name], scans[name] = largest_sufficient_rtol(run, rtol_ladder(*args.ladder), targets)
        # Dedalus: the cheapest fixed step
        dd = DedalusSearch(args.n, s, t_end, ref, args.cache)
        dedalus = {(scheme, target): dd.cheapest(scheme, target, args.max_steps, args.step_tol)
                   for scheme in args.schemes for target in targets}
        check = dd.error("RK443", args.check_steps) if args.check_steps else math.nan

        # timing: every chosen configuration once per round, rotating order; an extrapolated count
        # is timed at the largest count of its scheme that reached a target (else at --max-steps)
        timed = {}  # configuration -> what is run: ("package", tree, rtol) or ("Dedalus", scheme, steps)
        for target in targets:
            for name in trees:
                if package[name][target] is not None:
                    timed["package", name, target] = ("package", name, package[name][target][0])
            for scheme in args.schemes:
                steps, extrapolated = dedalus[scheme, target]
                if math.isfinite(steps):
                    reached = [int(m) for (sc, _), (m, ex) in dedalus.items() if sc == scheme and not ex]
                    made = max(reached, default=args.max_steps) if extrapolated else int(steps)
                    timed["Dedalus", scheme, target] = ("Dedalus", scheme, made)
        runs = list(dict.fromkeys(timed.values()))
        results = {run: [] for run in runs}
        for rep in range(args.repeats):
            shift = rep % len(runs) if runs else 0
            for run in runs[shift:] + runs[:shift]:
                code, name, setting = run
                if code == "package":
                    r = run_cli(trees[name], args.n, s, t_end, setting, work, args.threads)
                    r["error"] = relative_error(r.pop("mu"), ref)
                else:
                    r = dd.timed(name, setting)
                    r["steps"] = setting
                results[run].append(r)
        samples = {config: results[run] for config, run in timed.items()}
        _dedalus_tables(args, case, targets, package, scans, dedalus, dd, samples, check)


def _median(samples, key):
    return statistics.median(r[key] for r in samples) if samples else math.nan


def _dedalus_tables(args, case, targets, package, scans, dedalus, dd, samples, check):
    print(f"### {case}, {args.n}², bumps: package (CLI defaults but rtol, fft.threads={args.threads}) against "
          f"Dedalus 3 (fixed step, one thread); medians of {args.repeats} timed runs\n")
    print("| target | code | setting | steps | rejected | evaluations / step | error | wall time (s) | setup (s) |")
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|")
    walls = {}
    for target in targets:
        for name in package:
            chosen = package[name][target]
            if chosen is None:
                print(f"| {target:.0e} | package {name} | no rung of the ladder reaches it | | | | | | |")
                continue
            rtol, r = chosen
            runs = samples.get(("package", name, target), [])
            wall, process = _median(runs, "wall"), _median(runs, "process")
            walls[name, target] = wall
            print(f"| {target:.0e} | package {name} | rtol {rtol:.3g} | {r['steps']} | {r['rejected']} | "
                  f"{_per_step(r)} | {r['error']:.2e} | {wall:.2f} | {process - wall:.2f} |")
        for scheme in args.schemes:
            steps, extrapolated = dedalus[scheme, target]
            if not math.isfinite(steps):
                print(f"| {target:.0e} | Dedalus {scheme} | not converging within {args.max_steps} steps | | | | | | |")
                continue
            runs = samples.get(("Dedalus", scheme, target), [])
            made = runs[0]["steps"] if runs else steps
            wall = _median(runs, "wall") * steps / made  # an extrapolated count: per-step time × count
            walls[scheme, target] = wall
            error = dd.errors(scheme).get(int(steps), math.nan)
            mark = "*" if extrapolated else ""
            print(f"| {target:.0e} | Dedalus {scheme} | dt = T/{int(steps)}{mark} | {int(steps)}{mark} | 0 | "
                  f"{DEDALUS_EVALUATIONS.get(scheme, math.nan)} | {'—' if extrapolated else f'{error:.2e}'} "
                  f"| {wall:.2f}{mark} | {_median(runs, 'setup'):.2f} |")
    print()
    print("| target | tree | " + " | ".join(f"Dedalus {scheme} / package" for scheme in args.schemes) + " |")
    print("|---:|---|" + "---:|" * len(args.schemes))
    for target in targets:
        for name in package:
            ratios = []
            for scheme in args.schemes:
                a, b = walls.get((scheme, target), math.nan), walls.get((name, target), math.nan)
                mark = "*" if dedalus[scheme, target][1] else ""
                ratios.append(f"{a / b:.1f}{mark}" if b > 0 else "—")
            print(f"| {target:.0e} | {name} | " + " | ".join(ratios) + " |")
    print()
    for name, runs in scans.items():
        text = ", ".join(f"{rtol:.3g}: {r['steps']}, {r['error']:.2e}" for rtol, r in runs)
        print(f"- package {name} (rtol: steps, error): {text}")
    for scheme in args.schemes:
        text = ", ".join(f"{m}: {e:.2e}" for m, e in sorted(dd.errors(scheme).items()))
        print(f"- Dedalus {scheme} errors (steps: error): {text}")
    if args.check_steps:
        print(f"- Convergence check: Dedalus RK443 with {args.check_steps} steps, error {check:.2e}")
    print("- `*`: target not reached within --max-steps; the count is extrapolated at the observed order and "
          "its wall time is the time per step of the largest count of the scheme that reached a target "
          "(else of --max-steps) times that count.\n", flush=True)


def study_section(args, trees, work):
    print(f"### 1-D s = 2 rate study ({STUDY.relative_to(ROOT)}), fft.threads={args.threads}; medians of "
          f"{max(1, args.repeats)} runs\n")
    print("| tree | steps | rejected | evaluations | evaluations / step | wall time (s) | process wall time (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    samples = {name: [] for name in trees}
    for rep in range(max(1, args.repeats)):
        for name in (list(trees) if rep % 2 == 0 else list(trees)[::-1]):
            samples[name].append(run_study(trees[name], STUDY, work, args.threads))
    for name, runs in samples.items():
        r = runs[0]
        print(f"| {name} | {r['steps']} | {r['rejected']} | {r['evaluations']} | {_per_step(r)} | "
              f"{_median(runs, 'wall'):.2f} | {_median(runs, 'process'):.2f} |")
    print(flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="main", help="the 'before' git revision (default main)")
    parser.add_argument("--rtols", nargs="+", type=float, default=[1e-2, 1e-4, 1e-6], help="rtols of the table")
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--threads", type=int, default=1, help="the package's fft.threads (0: automatic; default 1)")
    parser.add_argument("--table", action=argparse.BooleanOptionalAction, default=True,
                        help="the before/after table per rtol (default on)")
    parser.add_argument("--dedalus", action=argparse.BooleanOptionalAction, default=True,
                        help="time to reach --targets against Dedalus 3 (default on)")
    parser.add_argument("--study", action=argparse.BooleanOptionalAction, default=False,
                        help="the 1-D s = 2 rate study to t = 1e5 (default off)")
    parser.add_argument("--targets", nargs="+", type=float, default=[1e-6, 1e-8], help="target relative errors")
    parser.add_argument("--ladder", nargs=2, type=int, default=[2, 20], metavar=("K0", "K1"),
                        help="rtol ladder 10^(-k/2), k = K0..K1 (default 2 20)")
    parser.add_argument("--schemes", nargs="+", default=["RK443", "SBDF2"], choices=list(DEDALUS_EVALUATIONS),
                        help="Dedalus timesteppers (default RK443 SBDF2)")
    parser.add_argument("--max-steps", type=int, default=4096, help="largest Dedalus step count tried (default 4096)")
    parser.add_argument("--step-tol", type=float, default=0.0,
                        help="relative width at which the step search stops (default 0: the exact integer)")
    parser.add_argument("--check-steps", type=int, default=1536,
                        help="Dedalus RK443 steps of the convergence check (0: none; default 1536)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each chosen configuration (default 3)")
    parser.add_argument("--cache", type=pathlib.Path, default=None,
                        help="directory keeping references and Dedalus errors between runs")
    args = parser.parse_args(argv)
    if args.dedalus and not dedalus_available():
        print("time_to_solution: Dedalus 3 is not importable; its section is skipped", file=sys.stderr)
        args.dedalus = False
    if args.cache is not None:
        args.cache.mkdir(parents=True, exist_ok=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="time_to_solution_"))
    start = time.perf_counter()
    try:
        (work / "before").mkdir()
        trees = {"before": export(args.rev, work / "before"), "after": ROOT}
        print(f"before: {args.rev}; after: the working tree\n")
        if args.table:
            rtol_table(args, trees, work)
        if args.dedalus:
            dedalus_section(args, trees, work)
        if args.study:
            study_section(args, trees, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"(total {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
