"""Fault injection into ``python -m sobolev_flow.run``: what a user sees, as a table.

What is run
-----------
The cases of ``tests/fault_cases.py``, which ``tests/test_faults.py`` asserts, on the small 2-D
run of the tests (32², t_end = 20, one FFT thread): SIGKILL at 10 seeded moments, then
``--restart``; RLIMIT_FSIZE at 10, 50 and 80 % of the final file size, then ``--restart``; a
tmpfs of three quarters of it (skipped where mounting is not allowed); 16 bytes flipped in four
object headers, then ``rates`` and ``--restart``; one byte flipped in the checkpoint, in a
snapshot chunk and in an energy value; a second run, ``--overwrite`` and ``--restart`` while
another run writes the file, and an ``--overwrite`` failing before its first record; a blow-up
(rk4 at dt = 5); ``time.rtol = 1e-300``; a file of format 2.

Reported per case: the exit code, the number of stderr lines and the first (shortened), then
that of the follow-up command (``--restart`` or ``rates``) where there is one, and the facts
checked on the files (e.g. whether a restart reached the uninterrupted run bit for bit).
With ``--rev REV`` a second column gives the same for the package of git revision REV, exported
with ``git archive`` into a temporary directory (removed at the end); the cases themselves (this
tree's ``tests/fault_cases.py``) run the command line of each tree.

Run (from the repository root; about a minute and a half per tree)::

    python benchmarks/faults.py [--rev main] [--cases sigkill blow_up ...]
"""

import argparse
import pathlib
import shutil
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fault_cases import CASES, uninterrupted
from time_to_solution import export


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default=None, help="also run the command line of this git revision (before)")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--width", type=int, default=80, help="characters of a stderr line shown")
    args = parser.parse_args(argv)
    work = pathlib.Path(tempfile.mkdtemp(prefix="faults_"))
    try:
        trees = {"after": ROOT}
        if args.rev is not None:
            (work / "before").mkdir()
            trees = {"before": export(args.rev, work / "before"), **trees}
        references = {name: uninterrupted(work / name / "whole", tree) for name, tree in trees.items()
                      if any(CASES[case][1] for case in args.cases)}
        names = list(trees)
        print(f"{'before: ' + args.rev + '; after: ' if args.rev else ''}the working tree; "
              "32², t_end = 20, one FFT thread\n")
        print("| case | " + " | ".join("result" if name == "after" and len(names) == 1 else name for name in names)
              + " |")
        print("|---|" + "---|" * len(names))
        for case in args.cases:
            function, needs_reference = CASES[case]
            results = {}
            for name, tree in trees.items():
                folder = work / name / case
                try:
                    rows = function(folder, references[name], tree=tree) if needs_reference else function(folder,
                                                                                                          tree=tree)
                    results[name] = [(row.case, row.result(args.width)) for row in rows]
                except Exception as err:  # noqa: BLE001 (a tree the case does not fit: said in its column)
                    results[name] = [(case, f"the case failed: {type(err).__name__}: {err}")]
            labels = next(iter(results.values()))
            for i in range(max(len(r) for r in results.values())):
                label = labels[i][0] if i < len(labels) else results["after"][i][0]
                cells = [cell(results[name][i][1]) if i < len(results[name]) else "—" for name in names]
                print(f"| {cell(label)} | " + " | ".join(cells) + " |", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
