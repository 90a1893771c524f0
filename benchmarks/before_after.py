"""Right-hand side against its FFTs, before and after a change: a git revision against the working tree.

What is measured
----------------
``benchmarks/rhs_vs_fft.py`` twice per case and round:

* *before*: the script of git revision REV with REV's package, from a temporary ``git worktree``
  of REV (created under the system's temporary directory, removed at the end, also on an error
  or an interrupt), run with ``PYTHONPATH`` set to that worktree;
* *after*: the script of the current working tree (uncommitted changes included) with the
  current package, ``PYTHONPATH`` set to the repository root.

Each case (grid shape) is run separately, ``--rounds`` times (default 2) by each tree, the two
alternating: in round r of case i the before run goes first when i + r is even, so that neither
always runs first and slow drifts of the machine's load affect both alike. Every run reports
per-thread-count medians (FFT ms, RHS ms, ratio); the tables give, per case and thread count,
the median over the rounds of those medians.

All other options are passed through unchanged to both scripts (see
``python benchmarks/rhs_vs_fft.py --help``): ``--threads``, ``--effort``, ``--backend``,
``--repeats``, ``--min-time``, ``--seed``, ``--quick`` and, when both scripts have it,
``--geometry``. ``--cases`` selects the cases (default: the current script's default set, or
its quick set with ``--quick``); each run receives one of them. The current script is read
through its ``--json`` output; a script without ``--json`` (an older REV) through its markdown
table. An option REV's script does not know stops the comparison before any measurement, except
``--geometry wasserstein``, which is dropped for such a script: it measures that geometry
anyway, and ``--kernels``, dropped likewise: a tree without the option has one implementation
of the element-wise work, which its script measures whatever the choice.

Run (from anywhere in the repository; REV first)::

    python benchmarks/before_after.py REV [--rounds R] [rhs_vs_fft options...]

    python benchmarks/before_after.py HEAD                                   # full set, ~5 minutes
    python benchmarks/before_after.py HEAD --quick                           # quick set, ~10 s
    python benchmarks/before_after.py HEAD~2 --cases 256x256 64x64x64 --threads 1 --rounds 3
    python benchmarks/before_after.py HEAD --cases 32x32 --threads 1 --repeats 3 --min-time 0.05

The output (stdout) is a short header (the revision, the options, each side's settings line)
and one markdown table per case with the columns

    case | threads | before FFT ms | before RHS ms | before ratio | after FFT ms | after RHS ms | after ratio

progress goes to stderr. Both trees run under the same interpreter (``sys.executable``) and
environment; as for every benchmark here, do not set OMP_NUM_THREADS=1 when comparing 2-thread
runs (it caps pyFFTW's OpenMP FFTW at one thread).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
SCRIPT = pathlib.Path("benchmarks") / "rhs_vs_fft.py"
CASE = re.compile(r"^\d+(x\d+)*$")


# ============================================================================ command line
def parse_args(argv=None) -> tuple[argparse.Namespace, list]:
    """REV, the options of this script and the options passed through to ``rhs_vs_fft.py``.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``); REV must come first.

    Returns
    -------
    args : argparse.Namespace
        ``rev``, ``rounds``, ``cases`` (list of "NxN[xN]" strings or None) and ``quick``.
    passthrough : list of str
        Every other option, in order (``--quick`` included; ``--cases`` and ``--json`` left out).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = "%(prog)s REV [--rounds R] [--cases NxN[xN] ...] [rhs_vs_fft options...]"
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0], usage=usage, allow_abbrev=False,
                                     epilog="Other options go to benchmarks/rhs_vs_fft.py of both trees.")
    parser.add_argument("rev", metavar="REV", help="git revision to compare against (e.g. HEAD, HEAD~1, a tag)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each tree per case (default 2)")
    parser.add_argument("--cases", nargs="+", default=None, metavar="NxN[xN]",
                        help="grid shapes (default: rhs_vs_fft.py's default set, its quick set with --quick)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # used internally; ignored
    if not argv or argv[0] in ("-h", "--help"):
        parser.parse_args(argv or ["--help"])
    if argv[0].startswith("-"):
        parser.error(f"the revision must come first, got {argv[0]!r}")
    args, rest = parser.parse_known_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.cases is not None:
        args.cases = [case.lower() for case in args.cases]
        bad = [case for case in args.cases if not CASE.match(case)]
        if bad:
            parser.error(f"--cases {' '.join(bad)}: expected grid shapes such as 256x256")
    args.quick = "--quick" in rest
    return args, rest


def default_cases(quick: bool) -> list:
    """The current ``rhs_vs_fft.py``'s default (or quick) cases, as "NxN[xN]" strings."""
    root = str(HERE.parent)
    sys.path[:0] = [root, str(HERE)]
    try:
        import rhs_vs_fft
    finally:
        sys.path.remove(root)
        sys.path.remove(str(HERE))
    cases = rhs_vs_fft.QUICK_CASES if quick else rhs_vs_fft.FULL_CASES
    return ["x".join(map(str, shape)) for shape in cases]


# ============================================================================ git
def git(*args, cwd) -> str:
    """``git args...`` in ``cwd``; its stdout, stripped. Raises RuntimeError with git's message."""
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout.strip()


class Worktree:
    """A detached ``git worktree`` of one revision in a temporary directory (a context manager);
    removed on exit, whatever the reason."""

    def __init__(self, root: pathlib.Path, commit: str):
        self.root, self.commit = root, commit
        self.parent = pathlib.Path(tempfile.mkdtemp(prefix="before_after-"))
        self.path = self.parent / "tree"

    def __enter__(self) -> pathlib.Path:
        try:
            git("worktree", "add", "--detach", "--quiet", str(self.path), self.commit, cwd=self.root)
        except BaseException:
            self._remove()
            raise
        return self.path

    def __exit__(self, *exc):
        self._remove()
        return False

    def _remove(self):
        if self.path.exists():
            try:
                git("worktree", "remove", "--force", str(self.path), cwd=self.root)
            except RuntimeError as err:
                print(f"before_after: {err}; deleting the directory and pruning", file=sys.stderr)
        shutil.rmtree(self.parent, ignore_errors=True)
        try:
            git("worktree", "prune", cwd=self.root)
        except RuntimeError as err:  # pragma: no cover - nothing left to do
            print(f"before_after: {err}", file=sys.stderr)


# ============================================================================ one tree
class Side:
    """One tree's ``rhs_vs_fft.py`` with that tree's package.

    Parameters
    ----------
    label : str
        "before" or "after".
    tree : pathlib.Path
        Root of the tree (its ``benchmarks/rhs_vs_fft.py`` and ``sobolev_flow/`` are used).
    passthrough : list of str
        Options for the script.
    """

    def __init__(self, label: str, tree: pathlib.Path, passthrough: list):
        self.label, self.tree = label, tree
        self.script = tree / SCRIPT
        if not self.script.is_file():
            raise RuntimeError(f"{label}: {self.script} does not exist")
        self.env = dict(os.environ, PYTHONPATH=str(tree))
        self._check_package()
        help_text = self._run(["--help"]).stdout
        self.options = set(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", help_text))
        self.json = "--json" in self.options
        self.passthrough = self._accepted(passthrough)
        self.header = None  # the lines above the table (or a summary of the JSON settings), from the first run

    def _run(self, options) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, str(self.script), *options], cwd=self.tree, env=self.env,
                                stdout=subprocess.PIPE, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{self.label}: {SCRIPT} {' '.join(options)} failed with exit status "
                               f"{result.returncode} (its messages are above)")
        return result

    def _check_package(self):
        """Make sure this tree's package, not another copy, is the one imported."""
        code = "import os, sobolev_flow; print(os.path.dirname(os.path.abspath(sobolev_flow.__file__)))"
        result = subprocess.run([sys.executable, "-c", code], cwd=self.tree, env=self.env, capture_output=True,
                                text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{self.label}: cannot import sobolev_flow from {self.tree}: "
                               f"{(result.stderr.strip().splitlines() or ['?'])[-1]}")
        found = pathlib.Path(result.stdout.strip()).resolve()
        if found != (self.tree / "sobolev_flow").resolve():
            raise RuntimeError(f"{self.label}: PYTHONPATH={self.tree} imports sobolev_flow from {found}")

    def _accepted(self, passthrough: list) -> list:
        """``passthrough`` without ``--geometry wasserstein`` when the script lacks --geometry, and
        without ``--kernels`` when it lacks that (its tree has one implementation, measured
        whatever the choice); RuntimeError on any other option the script does not know."""
        out, i = [], 0
        while i < len(passthrough):
            item = passthrough[i]
            name = item.split("=", 1)[0]
            if name.startswith("--") and name not in self.options:
                value = item.split("=", 1)[1] if "=" in item else (passthrough[i + 1] if i + 1 < len(passthrough)
                                                                   else None)
                if (name == "--geometry" and value == "wasserstein") or name == "--kernels":
                    i += 1 if "=" in item else 2
                    continue
                raise RuntimeError(f"{self.label}: {SCRIPT} of this tree has no option {name} "
                                   f"(it has {', '.join(sorted(self.options - {'--help'}))})")
            out.append(item)
            i += 1
        return out

    def measure(self, case: str) -> list:
        """Run the script on one case; a list of (threads, FFT ms, RHS ms, ratio), one per thread count."""
        options = self.passthrough + ["--cases", case] + (["--json"] if self.json else [])
        stdout = self._run(options).stdout
        rows = parse_json(stdout) if self.json else parse_markdown(stdout)
        if self.header is None:
            self.header = json_header(stdout) if self.json else markdown_header(stdout)
        if not rows:
            raise RuntimeError(f"{self.label}: no timings in the output of {SCRIPT} {' '.join(options)}:\n{stdout}")
        return rows


# ============================================================================ parsing
def parse_json(stdout: str) -> list:
    """(threads, FFT ms, RHS ms, ratio) rows from ``rhs_vs_fft.py --json`` output (its last line)."""
    data = json.loads(stdout.strip().splitlines()[-1])
    return [(int(t["threads"]), 1e3 * float(t["fft"]), 1e3 * float(t["rhs"]), float(t["ratio"]))
            for t in data["timings"]]


def json_header(stdout: str) -> str:
    """The two header lines of ``--json`` output (versions, settings)."""
    data = json.loads(stdout.strip().splitlines()[-1])
    description = data.get("description") or ", ".join(f"{k} {v}" for k, v in data.get("settings", {}).items())
    return f"{data.get('versions', '')}\n{description}"


def parse_markdown(stdout: str) -> list:
    """(threads, FFT ms, RHS ms, ratio) rows from the markdown table of ``rhs_vs_fft.py``.

    The table's columns are found by their names (``threads``, ``FFT ms``, ``RHS ms``, ``ratio``).
    """
    lines = [line.strip() for line in stdout.splitlines() if line.strip().startswith("|")]
    if len(lines) < 2:
        return []
    names = [cell.strip() for cell in lines[0].strip("|").split("|")]
    try:
        columns = [names.index(name) for name in ("threads", "FFT ms", "RHS ms", "ratio")]
    except ValueError:
        raise RuntimeError(f"unexpected table header: {lines[0]}") from None
    rows = []
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        threads, fft, rhs, ratio = (cells[j] for j in columns)
        rows.append((int(threads), float(fft), float(rhs), float(ratio)))
    return rows


def markdown_header(stdout: str) -> str:
    """The non-empty lines above the table."""
    head = []
    for line in stdout.splitlines():
        if line.strip().startswith("|"):
            break
        if line.strip():
            head.append(line.strip())
    return "\n".join(head)


# ============================================================================ report
def case_label(case: str) -> str:
    """ "64x64" → "2-D 64×64", as rhs_vs_fft.py labels its rows."""
    shape = case.split("x")
    return f"{len(shape)}-D " + "×".join(shape)


def table(case: str, before: list, after: list) -> str:
    """The markdown table of one case from the per-round rows of both sides.

    Parameters
    ----------
    case : str
    before, after : list of list of (threads, fft, rhs, ratio)
        One list of rows per round.
    """
    lines = ["| case | threads | before FFT ms | before RHS ms | before ratio | after FFT ms | after RHS ms "
             "| after ratio |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for index, row in enumerate(before[0]):
        cells = []
        for rounds in (before, after):
            values = [run[index] for run in rounds if index < len(run)]
            cells += [statistics.median(v[column] for v in values) for column in (1, 2, 3)]
        lines.append(f"| {case_label(case)} | {row[0]} | {cells[0]:.2f} | {cells[1]:.2f} | {cells[2]:.2f} "
                     f"| {cells[3]:.2f} | {cells[4]:.2f} | {cells[5]:.2f} |")
    return "\n".join(lines)


def compare(args: argparse.Namespace, passthrough: list) -> int:
    """Set up both sides, run every case and round, print the tables."""
    root = pathlib.Path(git("rev-parse", "--show-toplevel", cwd=HERE))
    try:
        commit = git("rev-parse", "--verify", "--quiet", f"{args.rev}^{{commit}}", cwd=root)
    except RuntimeError:
        raise RuntimeError(f"{args.rev!r} is not a commit of the repository in {root}") from None
    described = git("log", "-1", "--format=%h %s", commit, cwd=root)
    head = git("log", "-1", "--format=%h", "HEAD", cwd=root)
    dirty = bool(git("status", "--porcelain", "--untracked-files=no", cwd=root))
    cases = args.cases or default_cases(args.quick)
    with Worktree(root, commit) as tree:
        print(f"before_after: worktree of {described} in {tree}", file=sys.stderr, flush=True)
        sides = {"before": Side("before", tree, passthrough), "after": Side("after", root, passthrough)}
        results = {case: {"before": [], "after": []} for case in cases}
        for i, case in enumerate(cases):
            for r in range(args.rounds):
                order = ("before", "after") if (i + r) % 2 == 0 else ("after", "before")
                for label in order:
                    start = time.perf_counter()
                    results[case][label].append(sides[label].measure(case))
                    print(f"before_after: {case} round {r + 1}/{args.rounds}: {label} "
                          f"({time.perf_counter() - start:.1f} s)", file=sys.stderr, flush=True)
                before, after = ([row[0] for row in results[case][label][-1]] for label in ("before", "after"))
                if before != after:
                    raise RuntimeError(f"{case}: the two scripts report different thread counts ({before} vs {after})")
    print(f"before: {args.rev} = {described} (its {SCRIPT} and package, in a temporary worktree)")
    print(f"after: the working tree of {root} (HEAD {head}{', with uncommitted changes' if dirty else ''})")
    print(f"options: {' '.join(passthrough) or '(defaults)'}; {args.rounds} round(s) per case, the order alternating; "
          "every number is the median over the rounds of the medians each run reports")
    for label, side in sides.items():
        reading = "--json" if side.json else "markdown table"
        dropped = [item for item in passthrough if item not in side.passthrough]
        note = f"; dropped {' '.join(dropped)} (not an option of this script)" if dropped else ""
        print(f"\n{label} ({reading}{note}):")
        for line in (side.header or "").splitlines():
            print(f"    {line}")
    for case in cases:
        print()
        print(table(case, results[case]["before"], results[case]["after"]))
    return 0


def main(argv=None) -> int:
    """Parse the command line, compare, print; exit status 1 with a message on failure."""
    args, passthrough = parse_args(argv)

    def terminate(signum, frame):  # let the worktree be removed on SIGTERM too
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        return compare(args, passthrough)
    except RuntimeError as err:
        print(f"before_after: {err}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    raise SystemExit(main())
