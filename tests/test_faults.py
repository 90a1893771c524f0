"""Fault injection: kills at random moments, a file-size limit, a full disk, flipped bytes, two
writers and a run that blows up. Each case runs the command line in a subprocess and checks the
outcome a user sees (exit code, one line on stderr) and what is left in the run file."""

import re
import resource
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from sobolev_flow import open_run
from test_cli import SMALL, cli, digest, env

RUN = [sys.executable, "-m", "sobolev_flow.run"]

#: The one line a failed write ends with: the file, the cause and whether a checkpoint remains.
WRITE_ERROR = re.compile(r"error: cannot write '(?P<file>[^']+)': (?P<cause>[^;]+); the run stops "
                         r"\((it holds no checkpoint|its checkpoint at t=\S+ can be continued with --restart)\)")


def start(*args, cwd, limit=None):
    """``python -m sobolev_flow.run args`` in the background; ``limit``: RLIMIT_FSIZE in bytes
    (with SIGXFSZ ignored, so that a write beyond it fails with EFBIG)."""

    def file_size_limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.Popen(RUN + list(args), cwd=cwd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=None if limit is None else file_size_limit)


def finish(process, timeout=120):
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def stored_checkpoint(path):
    """The time of the file's current checkpoint read with h5py alone (None: none, or unreadable)."""
    try:
        with h5py.File(path, "r", libver="latest", swmr=True) as f:
            current = int(f["checkpoint/current"][()])
            return None if current == 0 else float(f["checkpoint"]["a" if current == 1 else "b"]["t"][()])
    except (OSError, KeyError):
        return None


def assert_same_run(path, reference):
    """The run file at ``path`` holds exactly (bit for bit) the snapshots and diagnostics of ``reference``."""
    a, b = open_run(path), open_run(reference)
    assert np.array_equal(a.t, b.t) and np.array_equal(a.mu, b.mu)
    for name in ("t", "step", "energy", "dissipation", "min_mu"):
        assert np.array_equal(a.diagnostics[name], b.diagnostics[name]), name


def one_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """An uninterrupted run of SMALL (default schedules and checkpoints) and its wall time."""
    folder = tmp_path_factory.mktemp("whole")
    began = time.monotonic()
    cli(*SMALL, "--output", "whole.h5", "--quiet", cwd=folder, check=0)
    return folder / "whole.h5", time.monotonic() - began


def diagnostic_rows(path):
    """Rows of /diagnostics/t a reader sees now (-1: the file cannot be read yet)."""
    try:
        with h5py.File(path, "r", libver="latest", swmr=True) as f:
            return f["diagnostics/t"].shape[0]
    except (OSError, KeyError):
        return -1


def test_sigkill_at_random_moments_restarts_to_the_uninterrupted_run_bit_for_bit(tmp_path, whole):
    """SIGKILL at 10 seeded moments of a run: the restart reaches the uninterrupted final state
    bit for bit whenever a checkpoint was written (the first comes at the first snapshot after
    t = 0, t = 1), and says in one line that there is nothing to restart from otherwise.

    The moments are drawn in the run's progress (a number of diagnostic rows written, from
    -1: before the file exists, to all of them), not in wall time, so that they spread over the
    run however loaded the machine is."""
    reference, _ = whole
    with h5py.File(reference, "r") as f:
        rows = f["diagnostics/t"].shape[0]
    moments = np.random.default_rng(20261130).integers(-1, rows + 1, size=10)
    outcomes = []
    for batch in (range(0, 5), range(5, 10)):  # five at a time on a machine shared with others
        runs = {i: start(*SMALL, "--output", f"cut{i}.h5", "--quiet", cwd=tmp_path) for i in batch}
        waiting = set(batch)
        while waiting:
            for i in list(waiting):
                if runs[i].poll() is not None or diagnostic_rows(tmp_path / f"cut{i}.h5") >= moments[i]:
                    runs[i].send_signal(signal.SIGKILL)
                    waiting.remove(i)
            time.sleep(0.01)
        for process in runs.values():
            process.communicate(timeout=60)
        checkpoints = {i: stored_checkpoint(tmp_path / f"cut{i}.h5") for i in batch}
        restarts = {i: start("--output", f"cut{i}.h5", "--restart", "--set", "time.t_end=20", "--quiet", cwd=tmp_path)
                    for i in batch}
        for i in batch:
            code, _, err = finish(restarts[i])
            outcomes.append(checkpoints[i] is not None)
            if checkpoints[i] is None:
                assert code == 2 and one_line(err).startswith(f"error: output.path='cut{i}.h5': "), err
            else:
                assert code == 0, err
                assert_same_run(tmp_path / f"cut{i}.h5", reference)
    assert any(outcomes) and not all(outcomes)  # the moments fall on both sides of the first checkpoint


def test_a_file_size_limit_stops_the_run_with_one_line_and_the_checkpoint_restarts(tmp_path, whole):
    """A write beyond RLIMIT_FSIZE (EFBIG), at a tenth, half and 80 % of the file's final size,
    stops the run: exit 1, one line naming the file and the cause, no success line, no crash;
    the last complete checkpoint continues bit for bit, and without one the restart says so."""
    reference, _ = whole
    fractions = (0.1, 0.5, 0.8)
    for fraction in fractions:
        (tmp_path / str(fraction)).mkdir()
    limited = [start(*SMALL, "--output", "run.h5", "--quiet", cwd=tmp_path / str(fraction),
                     limit=int(fraction * reference.stat().st_size)) for fraction in fractions]
    errors = []
    for process in limited:
        code, out, err = finish(process)
        assert code == 1, err
        line = WRITE_ERROR.fullmatch(one_line(err))
        assert line and line["file"] == "run.h5" and line["cause"] == "File too large (EFBIG)", err
        assert "t_end=" not in out and "run file:" not in out
        errors.append(err)
    assert "its checkpoint" in errors[-1]  # at 80 % the first checkpoint (t = 1) is in the file
    restarts = [start("--output", "run.h5", "--restart", "--quiet", cwd=tmp_path / str(fraction))
                for fraction in fractions]
    for fraction, err, process in zip(fractions, errors, restarts):
        code, _, restart_err = finish(process)
        if "its checkpoint" in err:
            assert code == 0, restart_err
            assert_same_run(tmp_path / str(fraction) / "run.h5", reference)
        else:
            assert code == 2 and one_line(restart_err).startswith("error: output.path='run.h5': "), restart_err


def test_a_full_disk_stops_the_run_with_one_line(tmp_path, whole):
    """A tmpfs smaller than the run file (ENOSPC): exit 1 and one line; the file, moved to a
    larger disk, continues from its checkpoint to the uninterrupted result."""
    reference, _ = whole
    disk = tmp_path / "disk"
    disk.mkdir()
    size = reference.stat().st_size * 3 // 4 // 4096 * 4096
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()})")
    try:
        code, out, err = finish(start(*SMALL, "--output", "run.h5", "--quiet", cwd=disk))
        shutil.copyfile(disk / "run.h5", tmp_path / "run.h5")
    finally:
        subprocess.run(["umount", str(disk)], check=True)
    assert code == 1, err
    line = WRITE_ERROR.fullmatch(one_line(err))
    assert line and line["cause"] == "No space left on device (ENOSPC)" and "t_end=" not in out
    assert "its checkpoint" in err  # the first checkpoint (t = 1) fits in three quarters of the file
    cli("--output", "run.h5", "--restart", "--quiet", cwd=tmp_path, check=0)
    assert_same_run(tmp_path / "run.h5", reference)


def flip(path, offset, count=16):
    data = bytearray(path.read_bytes())
    data[offset:offset + count] = bytes(b ^ 0xFF for b in data[offset:offset + count])
    path.write_bytes(bytes(data))


def test_flipped_bytes_in_metadata_never_hang_and_give_one_line(tmp_path, whole):
    """16 bytes flipped in an object header (the root group, the groups, a dataset; such damage
    made `rates` and `--restart` hang for over 10 minutes in the SWMR open): `rates` and
    `--restart` end within the timeout, with exit 0 or one line (exit 2, or 1 when the damage
    is found only when the restart writes)."""
    reference, _ = whole
    with h5py.File(reference, "r") as f:
        headers = {name: h5py.h5o.get_info(f[name].id).addr
                   for name in ("/", "diagnostics", "checkpoint/a", "diagnostics/energy")}
    commands = []
    for name, address in headers.items():
        for command in (["rates", "damaged.h5"], ["run", "--output", "damaged.h5", "--restart", "--set",
                                                  "time.t_end=40", "--quiet"]):
            folder = tmp_path / f"{name.replace('/', '_')}-{command[0]}"
            folder.mkdir()
            shutil.copyfile(reference, folder / "damaged.h5")
            flip(folder / "damaged.h5", address + 6)
            commands.append((name, subprocess.Popen([sys.executable, "-m", f"sobolev_flow.{command[0]}", *command[1:]],
                                                    cwd=folder, env=env(), stdout=subprocess.PIPE,
                                                    stderr=subprocess.PIPE, text=True)))
    for name, process in commands:
        code, _, err = finish(process, timeout=60)
        assert code == 0 or (code in (1, 2) and one_line(err).startswith("error: ")), (name, err)


def test_a_flipped_byte_in_the_checkpoint_is_refused_and_the_file_kept(tmp_path, whole):
    reference, _ = whole
    path = tmp_path / "run.h5"
    shutil.copyfile(reference, path)
    with h5py.File(path, "r") as f:
        slot = "a" if int(f["checkpoint/current"][()]) == 1 else "b"
        offset = f["checkpoint"][slot]["rho_hat"].id.get_offset()
    flip(path, offset + 100, count=1)
    before = digest(path)
    refused = cli("--output", "run.h5", "--restart", "--set", "time.t_end=40", "--quiet", cwd=tmp_path, check=2)
    assert one_line(refused.stderr) == (f"error: checkpoint {slot} of 'run.h5' is damaged: its checksum does not "
                                        "match its contents")
    assert digest(path) == before


def test_a_damaged_snapshot_or_diagnostic_chunk_is_detected_and_rates_needs_only_the_diagnostics(tmp_path, whole):
    reference, _ = whole
    snapshot, diagnostic = tmp_path / "snapshot.h5", tmp_path / "diagnostic.h5"
    for path in (snapshot, diagnostic):
        shutil.copyfile(reference, path)
    with h5py.File(reference, "r") as f:
        chunk = f["snapshots/mu"].id.get_chunk_info(3)
        energy = f["diagnostics/energy"].id.get_chunk_info(0)
    flip(snapshot, chunk.byte_offset + chunk.size // 2, count=1)
    flip(diagnostic, energy.byte_offset + 8 * 20 + 3, count=1)  # one byte of E at the 21st record
    with pytest.raises(OSError, match="filter returned failure"):
        open_run(snapshot)
    with pytest.raises(OSError, match="filter returned failure"):
        open_run(diagnostic, snapshots=False)
    rates = subprocess.run([sys.executable, "-m", "sobolev_flow.rates", snapshot.name], cwd=tmp_path, env=env(),
                           capture_output=True, text=True, timeout=60)
    assert rates.returncode == 0 and "energy" in rates.stdout, rates.stderr


def test_one_writer_per_file(tmp_path):
    """While a run writes its file, a second run with --overwrite and a --restart are refused
    (one line naming the file, exit 2) and the first run goes on undisturbed; an --overwrite
    whose new run fails before its first record leaves the old file byte-identical."""
    slow = ["--set", "grid.n=64", "time.rtol=1e-10", "time.t_end=1000", "fft.threads=1"]
    first = start(*slow, "--output", "run.h5", "--quiet", cwd=tmp_path)
    deadline = time.monotonic() + 60
    while stored_checkpoint(tmp_path / "run.h5") is None and time.monotonic() < deadline:
        time.sleep(0.05)
    second = [start(*SMALL, "--output", "run.h5", "--overwrite", "--quiet", cwd=tmp_path),
              start("--output", "run.h5", "--restart", "--set", "time.t_end=2000", "--quiet", cwd=tmp_path)]
    refusals = [finish(process) for process in second]
    assert first.poll() is None, "the first run ended before the second writers were tried"
    first.send_signal(signal.SIGTERM)  # the first run stops as it would anyway: checkpointed, exit 143
    code, out, err = finish(first)
    assert code == 143 and "state saved in run.h5" in err, err
    busy = (f"error: output.path='run.h5': another run is writing it (process {first.pid} holds 'run.h5.lock'); "
            "wait for it to finish or stop it first")
    for code, out, err in refusals:
        assert code == 2 and one_line(err) == busy
    written = open_run(tmp_path / "run.h5")
    assert written.config["time"]["t_end"] == 1000 and written.mu.shape[1:] == (64, 64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.h5"]
    # an overwrite that cannot write its first record (a 20 kB file size limit) keeps the old file
    before = digest(tmp_path / "run.h5")
    code, out, err = finish(start(*SMALL, "--output", "run.h5", "--overwrite", "--quiet", cwd=tmp_path, limit=20000))
    assert code == 1 and one_line(err).endswith("the run stops ('run.h5' is unchanged)"), err
    assert digest(tmp_path / "run.h5") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.h5"]


def test_a_blow_up_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    """RK4 with a fixed step of 5 (stable at 1) makes E rise at t = 10: exit 1 with one line
    naming the quantity, the time and the step; nothing of the exploded state is checkpointed,
    and the checkpoint at t = 5 continues with dt = 1 to the result of a run at dt = 1 throughout."""
    common = ["grid.n=32", "fft.threads=1", "time.scheme=rk4", "output.snapshots=[0.0, 20.0]",
              "output.diagnostics={every = 5.0}"]
    runs = [start("--set", *common, "time.dt=1", f"time.t_end={t_end}", "--output", name, "--quiet", cwd=tmp_path)
            for name, t_end in (("steady.h5", 20), ("run.h5", 5))]
    assert all(finish(process)[0] == 0 for process in runs)
    blown = cli("--output", "run.h5", "--restart", "--set", "time.dt=5", "time.t_end=20", "--quiet", cwd=tmp_path,
                check=1)
    line = one_line(blown.stderr)
    assert re.fullmatch(r"error: the energy rose from \S+ to \S+ at t=10 \(step 6\): the run is unstable; the last "
                        r"good checkpoint at t=5 stays; continue it with --restart and a smaller time.dt, time.cfl "
                        r"or time.rtol", line), line
    assert stored_checkpoint(tmp_path / "run.h5") == 5.0
    cli("--output", "run.h5", "--restart", "--set", "time.dt=1", "time.t_end=20", "--quiet", cwd=tmp_path, check=0)
    split, steady = open_run(tmp_path / "run.h5"), open_run(tmp_path / "steady.h5")
    assert np.array_equal(split.mu[-1], steady.mu[-1]) and split.t[-1] == steady.t[-1] == 20.0
    for name in ("t", "step", "energy", "min_mu"):
        assert np.array_equal(split.diagnostics[name], steady.diagnostics[name]), name


def test_a_file_of_format_2_without_digests_still_restarts(tmp_path, whole):
    """Files written before checkpoints carried ``energy`` and ``digest`` restart (without those
    checks) to the same state as a file of the current format."""
    reference, _ = whole
    for name in ("old.h5", "new.h5"):
        shutil.copyfile(reference, tmp_path / name)
    with h5py.File(tmp_path / "old.h5", "r+") as f:
        f.attrs["format_version"] = 2
        for slot in ("a", "b"):
            del f["checkpoint"][slot]["digest"], f["checkpoint"][slot]["energy"]
    restarts = [start("--output", name, "--restart", "--set", "time.t_end=40", "--quiet", cwd=tmp_path)
                for name in ("old.h5", "new.h5")]
    for process in restarts:
        code, _, err = finish(process)
        assert code == 0, err
    assert_same_run(tmp_path / "old.h5", tmp_path / "new.h5")
