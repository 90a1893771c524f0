"""Time to solution with the default CLI settings (only rtol chosen), before and after a change.

What is measured
----------------
Two cases, 2-D 256², bump initial data (``initial.density = "bumps"``), ν ≡ 1, everything else
the CLI's default (scheme, cfl, error estimate, the dense geometric diagnostic schedule, FFT
threads): s = 2 to t = 1 and s = 1 to t = 0.4. For every rtol and case, ``python -m
sobolev_flow.run`` is run by each tree, alternating which goes first:

* *before*: the package of git revision REV (default ``main``), exported with ``git archive``
  into a temporary directory (removed at the end);
* *after*: the package of this working tree.

Reported per run: accepted steps, rejected steps, right-hand-side evaluations per accepted
step (all of them, and in brackets those of the steps alone), the evaluations for diagnostics
at interpolated times (one per such time; none before, where every diagnostic time was landed
on), the maximum error of μ(t_end)
relative to max|μ_ref − 1| against a converged reference (this tree, etdrk4 at rtol 1e-11 with
cfl 0.2, no output but t_end), and the wall time the CLI reports. Wall times on a shared
machine are noisy: compare the two columns of one run.

Run (from the repository root)::

    python benchmarks/time_to_solution.py [--rev main] [--rtols 1e-2 1e-4 1e-6] [--n 256]
"""

import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
CASES = {"s=2, t=1": (2.0, 1.0), "s=1, t=0.4": (1.0, 0.4)}
SUMMARY = re.compile(r"steps (\d+) \(rejected (\d+)\), rhs evaluations (\d+), wall time ([0-9.]+) s")


def export(rev: str, into: pathlib.Path) -> pathlib.Path:
    """The tree of ``rev`` as files under ``into`` (git archive, no worktree)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def run_cli(tree: pathlib.Path, n: int, s: float, t_end: float, rtol: float, work: pathlib.Path) -> dict:
    """One CLI run with the defaults but for the case and rtol; its counts, wall time and μ(t_end)."""
    path = work / f"run_{os.getpid()}_{time.monotonic_ns()}.h5"
    command = [sys.executable, "-m", "sobolev_flow.run", "--set", "grid.d=2", f"grid.n={n}", f"model.s={s}",
               'initial.density="bumps"', f"time.t_end={t_end}", f"time.rtol={rtol}", f'output.path="{path}"']
    env = dict(os.environ, PYTHONPATH=str(tree))
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=work)
    if result.returncode != 0:
        raise RuntimeError(f"{tree}: {result.stderr.strip()}")
    steps, rejected, evaluations, wall = SUMMARY.search(result.stdout).groups()
    with h5py.File(path, "r") as f:
        mu = f["snapshots/mu"][-1]
        landed = np.isin(f["diagnostics/t"][:], f["snapshots/t"][:])
        # a diagnostic time the solver did not stand on cost one evaluation (the continuous extension)
        interpolated = int(np.count_nonzero(~landed)) if "method" in f["diagnostics"].attrs else 0
    path.unlink()
    return {"steps": int(steps), "rejected": int(rejected), "evaluations": int(evaluations), "wall": float(wall),
            "mu": mu, "diagnostic_evaluations": interpolated}


def reference(n: int, s: float, t_end: float) -> np.ndarray:
    """μ(t_end) converged: this tree's etdrk4 at rtol 1e-11, cfl 0.2."""
    from sobolev_flow import Torus, solve
    from sobolev_flow.initial import bumps

    grid = Torus((n, n))
    return solve(grid, s, bumps(grid), [t_end], scheme="etdrk4", rtol=1e-11, cfl=0.2).mu[-1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="main")
    parser.add_argument("--rtols", nargs="+", type=float, default=[1e-2, 1e-4, 1e-6])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = parser.parse_args(argv)
    work = pathlib.Path(tempfile.mkdtemp(prefix="time_to_solution_"))
    try:
        (work / "before").mkdir()
        trees = {"before": export(args.rev, work / "before"), "after": ROOT}
        print(f"before: {args.rev}; after: the working tree; {args.n}², bumps, CLI defaults but rtol\n")
        print("| case | rtol | tree | steps | rejected | evaluations / step (steps only) | diagnostic evaluations "
              "| error at t_end | wall time (s) |")
        print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
        for i, case in enumerate(args.cases):
            s, t_end = CASES[case]
            ref = reference(args.n, s, t_end)
            scale = np.max(np.abs(ref - 1))
            for j, rtol in enumerate(args.rtols):
                order = ["before", "after"] if (i + j) % 2 == 0 else ["after", "before"]
                rows = {name: run_cli(trees[name], args.n, s, t_end, rtol, work) for name in order}
                for name in ("before", "after"):
                    r = rows[name]
                    error = np.max(np.abs(r["mu"] - ref)) / scale
                    stepping = r["evaluations"] - r["diagnostic_evaluations"] - 1  # less the initial N(u0)
                    print(f"| {case} | {rtol:g} | {name} | {r['steps']} | {r['rejected']} | "
                          f"{r['evaluations'] / r['steps']:.2f} ({stepping / r['steps']:.2f}) | "
                          f"{r['diagnostic_evaluations']} | {error:.2e} | {r['wall']:.2f} |", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
