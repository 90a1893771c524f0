"""Fault-injection cases of ``python -m sobolev_flow.run``: kills at seeded moments, a file-size
limit, a full disk, flipped bytes, several writers of one file, a blow-up and a tolerance below
the error estimate's resolution.

Each case runs the command line of a source tree (``tree``: this one by default, or another
revision exported by ``benchmarks/faults.py --rev``) in subprocesses under a work folder and
returns :class:`Row` objects: what the faulted command did (exit code, stderr), what a follow-up
command did (``--restart`` or ``rates``) and the facts checked on the files left behind.
``tests/test_faults.py`` asserts them; ``benchmarks/faults.py`` prints them as a table.
"""

from __future__ import annotations

import dataclasses
import re
import resource
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
from test_cli import ROOT, SMALL, digest, env

from sobolev_flow import open_run

#: The one line a failed write ends with: the file, the cause and whether a checkpoint remains.
WRITE_ERROR = re.compile(r"error: cannot write '(?P<file>[^']+)': (?P<cause>[^;]+); the run stops "
                         r"\((it holds no checkpoint|its checkpoint at t=\S+ can be continued with --restart)\)")

#: The seed of the SIGKILL moments.
KILL_SEED = 20261130


@dataclasses.dataclass
class Outcome:
    """What a user sees of one command: exit code, stdout and stderr (``timed_out``: the seconds
    after which it was killed, if it was)."""

    code: int
    out: str
    err: str
    timed_out: float | None = None

    @property
    def lines(self) -> list:
        return self.err.strip().splitlines()

    def describe(self, width=80) -> str:
        """``exit C, N stderr lines: first line`` (the line cut to ``width`` characters)."""
        n = len(self.lines)
        text = f"exit {self.code}, {n} stderr line{'' if n == 1 else 's'}"
        if self.timed_out is not None:
            text = f"no exit within {self.timed_out:g} s (killed), {n} stderr line{'' if n == 1 else 's'}"
        if n:
            first = self.lines[0]
            text += f": `{first if len(first) <= width else first[:width - 1] + '…'}`"
        return text


@dataclasses.dataclass
class Row:
    """One fault: the faulted command's outcome, the follow-up's and the facts checked on the files.

    ``skipped``: why the fault could not be injected here (then ``outcome`` is None); facts whose
    name begins with ``_`` are for the tests and not shown."""

    case: str
    outcome: Outcome | None = None
    after: Outcome | None = None
    path: object = None
    facts: dict = dataclasses.field(default_factory=dict)
    skipped: str | None = None

    def result(self, width=80) -> str:
        if self.skipped:
            return f"skipped: {self.skipped}"
        parts = [self.outcome.describe(width)]
        if self.after is not None:
            parts.append(f"then {self.after.describe(width)}")
        parts += [f"{name}: {shown(value)}" for name, value in self.facts.items() if not name.startswith("_")]
        return "; ".join(parts)


def shown(value) -> str:
    """A fact as the table shows it: yes / no, — for None (not applicable), floats to 6 digits."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def start(*args, cwd, tree=ROOT, limit=None, module="run"):
    """``python -m sobolev_flow.<module> args`` of ``tree`` in the background; ``limit``:
    RLIMIT_FSIZE in bytes (with SIGXFSZ ignored, so that a write beyond it fails with EFBIG)."""

    def file_size_limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.Popen([sys.executable, "-m", f"sobolev_flow.{module}", *args], cwd=cwd, env=env(tree),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=None if limit is None else file_size_limit)


def finish(process, timeout=120) -> Outcome:
    """The outcome of ``process``; one still running after ``timeout`` seconds is killed (SIGKILL)
    and reported with ``timed_out`` set."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        return Outcome(process.returncode, out, err, timed_out=timeout)
    return Outcome(process.returncode, out, err)


def command(*args, cwd, tree=ROOT, limit=None, module="run", timeout=120) -> Outcome:
    return finish(start(*args, cwd=cwd, tree=tree, limit=limit, module=module), timeout=timeout)


def stored_checkpoint(path):
    """The time of the file's current checkpoint read with h5py alone (None: none, or unreadable)."""
    try:
        with h5py.File(path, "r", libver="latest", swmr=True) as f:
            current = int(f["checkpoint/current"][()])
            return None if current == 0 else float(f["checkpoint"]["a" if current == 1 else "b"]["t"][()])
    except (OSError, KeyError):
        return None


def diagnostic_rows(path):
    """Rows of /diagnostics/t a reader sees now (-1: the file cannot be read yet)."""
    try:
        with h5py.File(path, "r", libver="latest", swmr=True) as f:
            return f["diagnostics/t"].shape[0]
    except (OSError, KeyError):
        return -1


def identical_runs(path, reference) -> bool:
    """Whether the run file at ``path`` holds exactly (bit for bit) the snapshots and diagnostics of ``reference``."""
    a, b = open_run(path), open_run(reference)
    return bool(np.array_equal(a.t, b.t) and np.array_equal(a.mu, b.mu)
                and all(np.array_equal(a.diagnostics[name], b.diagnostics[name])
                        for name in ("t", "step", "energy", "dissipation", "min_mu")))


def restarted(outcome: Outcome, path, reference) -> dict:
    """The facts of a restart: whether it reached the uninterrupted run (None: it did not run; the
    error if its file cannot be read)."""
    if outcome.code != 0:
        return {"identical to the uninterrupted run": None}
    try:
        return {"identical to the uninterrupted run": identical_runs(path, reference)}
    except (OSError, KeyError, ValueError) as err:
        return {"identical to the uninterrupted run": f"cannot read the file ({type(err).__name__}: {err})"}


def flip(path, offset, count=16):
    """Invert ``count`` bytes of the file at ``offset``."""
    data = bytearray(path.read_bytes())
    data[offset:offset + count] = bytes(b ^ 0xFF for b in data[offset:offset + count])
    path.write_bytes(bytes(data))


def files(folder) -> list:
    return sorted(p.name for p in folder.iterdir())


# ----------------------------------------------------------------------------- the cases
def uninterrupted(folder, tree=ROOT):
    """An uninterrupted run of SMALL (default schedules and checkpoints): the reference of the cases."""
    folder.mkdir(parents=True, exist_ok=True)
    outcome = command(*SMALL, "--output", "whole.h5", "--quiet", cwd=folder, tree=tree, timeout=300)
    if outcome.code != 0:
        raise RuntimeError(f"the uninterrupted run failed: {outcome.err.strip()}")
    return folder / "whole.h5"


def sigkill(folder, reference, tree=ROOT, count=10, seed=KILL_SEED, batch=5):
    """SIGKILL at ``count`` seeded moments of SMALL, then ``--restart`` to t = 20.

    The moments are drawn in the run's progress (a number of diagnostic rows written, from −1:
    before the file exists, to all of them), not in wall time, so that they spread over the run
    however loaded the machine is; ``batch`` runs at a time."""
    with h5py.File(reference, "r") as f:
        rows = f["diagnostics/t"].shape[0]
    moments = np.random.default_rng(seed).integers(-1, rows + 1, size=count)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for first in range(0, count, batch):
        indices = range(first, min(first + batch, count))
        runs = {i: start(*SMALL, "--output", f"cut{i}.h5", "--quiet", cwd=folder, tree=tree) for i in indices}
        waiting = set(indices)
        while waiting:
            for i in list(waiting):
                if runs[i].poll() is not None or diagnostic_rows(folder / f"cut{i}.h5") >= moments[i]:
                    runs[i].send_signal(signal.SIGKILL)
                    waiting.remove(i)
            time.sleep(0.01)
        killed = {i: finish(runs[i], timeout=60) for i in indices}
        checkpoints = {i: stored_checkpoint(folder / f"cut{i}.h5") for i in indices}
        restarts = {i: start("--output", f"cut{i}.h5", "--restart", "--set", "time.t_end=20", "--quiet", cwd=folder,
                             tree=tree) for i in indices}
        for i in indices:
            after = finish(restarts[i])
            out.append(Row(f"SIGKILL at {moments[i]} of {rows} diagnostic rows, then --restart", killed[i], after,
                           folder / f"cut{i}.h5", {"checkpoint at": checkpoints[i],
                                                   **restarted(after, folder / f"cut{i}.h5", reference)}))
    return out


def file_size_limit(folder, reference, tree=ROOT, fractions=(0.1, 0.5, 0.8)):
    """RLIMIT_FSIZE at ``fractions`` of the uninterrupted file's size (writes beyond it fail with
    EFBIG), then ``--restart``."""
    runs = {}
    for fraction in fractions:
        (folder / str(fraction)).mkdir(parents=True)
        runs[fraction] = start(*SMALL, "--output", "run.h5", "--quiet", cwd=folder / str(fraction), tree=tree,
                               limit=int(fraction * reference.stat().st_size))
    limited = {fraction: finish(process) for fraction, process in runs.items()}
    restarts = {fraction: start("--output", "run.h5", "--restart", "--quiet", cwd=folder / str(fraction), tree=tree)
                for fraction in fractions}
    out = []
    for fraction in fractions:
        after = finish(restarts[fraction])
        path = folder / str(fraction) / "run.h5"
        out.append(Row(f"RLIMIT_FSIZE at {fraction:.0%} of the final size, then --restart", limited[fraction], after,
                       path, restarted(after, path, reference)))
    return out


def full_disk(folder, reference, tree=ROOT):
    """A tmpfs of three quarters of the uninterrupted file's size (ENOSPC); the file, moved to a
    larger disk, then continued with ``--restart``. Skipped where a tmpfs cannot be mounted."""
    case = "tmpfs of 3/4 of the final size, then --restart on a larger disk"
    disk = folder / "disk"
    disk.mkdir(parents=True)
    size = reference.stat().st_size * 3 // 4 // 4096 * 4096
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        return [Row(case, skipped=f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()})")]
    try:
        outcome = command(*SMALL, "--output", "run.h5", "--quiet", cwd=disk, tree=tree)
        shutil.copyfile(disk / "run.h5", folder / "run.h5")
    finally:
        subprocess.run(["umount", str(disk)], check=True)
    after = command("--output", "run.h5", "--restart", "--quiet", cwd=folder, tree=tree, timeout=300)
    return [Row(case, outcome, after, folder / "run.h5", restarted(after, folder / "run.h5", reference))]


def flipped_headers(folder, reference, tree=ROOT):
    """16 bytes flipped in the object header of the root group, two groups and a dataset, then
    ``rates`` or ``--restart`` (to t = 40) on each damaged copy (all at once, timeout 60 s)."""
    with h5py.File(reference, "r") as f:
        headers = {name: h5py.h5o.get_info(f[name].id).addr
                   for name in ("/", "diagnostics", "checkpoint/a", "diagnostics/energy")}
    commands = []
    for name, address in headers.items():
        for module, args in (("rates", ["damaged.h5"]),
                             ("run", ["--output", "damaged.h5", "--restart", "--set", "time.t_end=40", "--quiet"])):
            where = folder / f"{name.replace('/', '_')}-{module}"
            where.mkdir(parents=True)
            shutil.copyfile(reference, where / "damaged.h5")
            flip(where / "damaged.h5", address + 6)
            label = "rates" if module == "rates" else "--restart"
            commands.append((f"16 bytes flipped in the header of {name}, then {label}", where / "damaged.h5",
                             start(*args, cwd=where, tree=tree, module=module)))
    return [Row(case, finish(process, timeout=60), path=path) for case, path, process in commands]


def flipped_checkpoint(folder, reference, tree=ROOT):
    """One byte flipped in the current checkpoint's ρ̂, then ``--restart``: refused, the file kept."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "run.h5"
    shutil.copyfile(reference, path)
    with h5py.File(path, "r") as f:
        slot = "a" if int(f["checkpoint/current"][()]) == 1 else "b"
        offset = f["checkpoint"][slot]["rho_hat"].id.get_offset()
    flip(path, offset + 100, count=1)
    before = digest(path)
    outcome = command("--output", "run.h5", "--restart", "--set", "time.t_end=40", "--quiet", cwd=folder, tree=tree)
    return [Row("one byte flipped in the checkpoint, then --restart", outcome, path=path,
                facts={"slot": slot, "file unchanged": digest(path) == before})]


def flipped_chunks(folder, reference, tree=ROOT):
    """One byte flipped in the fourth snapshot chunk, or in E at the 21st diagnostic record,
    then ``rates`` (which reads the diagnostics alone)."""
    folder.mkdir(parents=True, exist_ok=True)
    snapshot, diagnostic = folder / "snapshot.h5", folder / "diagnostic.h5"
    for path in (snapshot, diagnostic):
        shutil.copyfile(reference, path)
    with h5py.File(reference, "r") as f:
        chunk = f["snapshots/mu"].id.get_chunk_info(3)
        energy = f["diagnostics/energy"].id.get_chunk_info(0)
    flip(snapshot, chunk.byte_offset + chunk.size // 2, count=1)
    flip(diagnostic, energy.byte_offset + 8 * 20 + 3, count=1)
    return [Row(case, command(path.name, cwd=folder, tree=tree, module="rates", timeout=60), path=path)
            for case, path in (("one byte flipped in a snapshot chunk, then rates", snapshot),
                               ("one byte flipped in an energy value, then rates", diagnostic))]


def one_writer(folder, tree=ROOT):
    """While a slow run (64², a fixed step of 10⁻³ to t_end 1000: a million steps, far longer than
    the test) writes run.h5: a second run, one with ``--overwrite`` and a ``--restart`` on the same
    file; then the first stops (SIGTERM), and an ``--overwrite`` whose run cannot write its first
    record (a 20 kB file size limit)."""
    folder.mkdir(parents=True, exist_ok=True)
    slow = ["--set", "grid.n=64", "time.dt=1e-3", "time.t_end=1000", "fft.threads=1"]
    first = start(*slow, "--output", "run.h5", "--quiet", cwd=folder, tree=tree)
    deadline = time.monotonic() + 60
    while stored_checkpoint(folder / "run.h5") is None and time.monotonic() < deadline:
        time.sleep(0.05)
    others = {"a second run": start(*SMALL, "--output", "run.h5", "--quiet", cwd=folder, tree=tree),
              "--overwrite": start(*SMALL, "--output", "run.h5", "--overwrite", "--quiet", cwd=folder, tree=tree),
              "--restart": start("--output", "run.h5", "--restart", "--set", "time.t_end=2000", "--quiet", cwd=folder,
                                 tree=tree)}
    refusals = {name: finish(process) for name, process in others.items()}
    alive = first.poll() is None
    first.send_signal(signal.SIGTERM)  # the first run stops as it would anyway: checkpointed, exit 143
    stopped = finish(first)
    written = open_run(folder / "run.h5")
    shape = "×".join(map(str, written.mu.shape[1:]))
    rows = [Row("the first run, sent SIGTERM after the others were tried", stopped, path=folder / "run.h5",
                facts={"_pid": first.pid, "running while the others were tried": alive,
                       "its file": f"t_end = {written.config['time']['t_end']:g}, {shape}", "files": files(folder)})]
    rows += [Row(f"{name} while another run writes the file", outcome) for name, outcome in refusals.items()]
    before = digest(folder / "run.h5")
    failed = command(*SMALL, "--output", "run.h5", "--overwrite", "--quiet", cwd=folder, tree=tree, limit=20000)
    rows.append(Row("--overwrite failing before its first record (20 kB file size limit)", failed,
                    path=folder / "run.h5", facts={"old file unchanged": digest(folder / "run.h5") == before,
                                                   "files": files(folder)}))
    return rows


def blow_up(folder, tree=ROOT):
    """RK4 at a fixed step of 5 (stable at 1), continued from a checkpoint at t = 5: E rises at t = 10;
    then ``--restart`` with dt = 1, compared with a run at dt = 1 throughout."""
    folder.mkdir(parents=True, exist_ok=True)
    common = ["grid.n=32", "fft.threads=1", "time.scheme=rk4", "output.snapshots=[0.0, 20.0]",
              "output.diagnostics={every = 5.0}"]
    runs = [start("--set", *common, "time.dt=1", f"time.t_end={t_end}", "--output", name, "--quiet", cwd=folder,
                  tree=tree) for name, t_end in (("steady.h5", 20), ("run.h5", 5))]
    for process in runs:
        prepared = finish(process)
        if prepared.code != 0:
            raise RuntimeError(f"a run at dt = 1 failed: {prepared.err.strip()}")
    blown = command("--output", "run.h5", "--restart", "--set", "time.dt=5", "time.t_end=20", "--quiet", cwd=folder,
                    tree=tree)
    checkpoint = stored_checkpoint(folder / "run.h5")
    after = command("--output", "run.h5", "--restart", "--set", "time.dt=1", "time.t_end=20", "--quiet", cwd=folder,
                    tree=tree)
    same = None
    if after.code == 0:
        split, steady = open_run(folder / "run.h5"), open_run(folder / "steady.h5")
        same = bool(np.array_equal(split.mu[-1], steady.mu[-1]) and split.t[-1] == steady.t[-1] == 20.0
                    and all(np.array_equal(split.diagnostics[name], steady.diagnostics[name])
                            for name in ("t", "step", "energy", "min_mu")))
    return [Row("blow-up (rk4, dt = 5), then --restart with dt = 1", blown, after, folder / "run.h5",
                {"checkpoint kept at": checkpoint, "identical to a run at dt = 1": same})]


def tiny_rtol(folder, tree=ROOT):
    """``time.rtol=1e-300``, below what the error estimate resolves: refused before any file is written."""
    folder.mkdir(parents=True, exist_ok=True)
    outcome = command(*SMALL, "--set", "time.rtol=1e-300", "--output", "run.h5", "--quiet", cwd=folder, tree=tree)
    return [Row("time.rtol = 1e-300", outcome, facts={"files": files(folder)})]


def format_2(folder, reference, tree=ROOT):
    """A file of format 2 (checkpoints without ``energy`` and ``digest``), then ``--restart`` to
    t = 40, compared with the same restart of the current format."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("old.h5", "new.h5"):
        shutil.copyfile(reference, folder / name)
    with h5py.File(folder / "old.h5", "r+") as f:
        f.attrs["format_version"] = 2
        for slot in ("a", "b"):
            del f["checkpoint"][slot]["digest"], f["checkpoint"][slot]["energy"]
    restarts = {name: start("--output", name, "--restart", "--set", "time.t_end=40", "--quiet", cwd=folder, tree=tree)
                for name in ("old.h5", "new.h5")}
    old, new = (finish(process) for process in restarts.values())
    return [Row("format 2 (no checkpoint digests), then --restart", old, path=folder / "old.h5",
                facts={"restart of the current format": new.describe(),
                       "identical to it": identical_runs(folder / "old.h5", folder / "new.h5")
                       if old.code == new.code == 0 else None})]


#: The cases in the order of the table: name → (function, whether it takes the uninterrupted run).
CASES = {
    "sigkill": (sigkill, True),
    "file_size_limit": (file_size_limit, True),
    "full_disk": (full_disk, True),
    "flipped_headers": (flipped_headers, True),
    "flipped_checkpoint": (flipped_checkpoint, True),
    "flipped_chunks": (flipped_chunks, True),
    "one_writer": (one_writer, False),
    "blow_up": (blow_up, False),
    "tiny_rtol": (tiny_rtol, False),
    "format_2": (format_2, True),
}
