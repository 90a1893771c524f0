"""Fault injection: kills at random moments, a file-size limit, a full disk, flipped bytes, two
writers, a run that blows up and a tolerance below resolution. Each case (tests/fault_cases.py,
which benchmarks/faults.py prints as a table) runs the command line in subprocesses; the tests
check the outcome a user sees (exit code, one line on stderr) and what is left in the run file."""

import re

import pytest

from fault_cases import (WRITE_ERROR, blow_up, file_size_limit, flipped_checkpoint, flipped_chunks, flipped_headers,
                         format_2, full_disk, one_writer, sigkill, tiny_rtol, uninterrupted)
from sobolev_flow import open_run


def one_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """An uninterrupted run of SMALL (default schedules and checkpoints)."""
    return uninterrupted(tmp_path_factory.mktemp("whole"))


def test_sigkill_at_random_moments_restarts_to_the_uninterrupted_run_bit_for_bit(tmp_path, whole):
    """SIGKILL at 10 seeded moments of a run: the restart reaches the uninterrupted final state
    bit for bit whenever a checkpoint was written (the first comes at the first snapshot after
    t = 0, t = 1), and says in one line that there is nothing to restart from otherwise."""
    rows = sigkill(tmp_path, whole)
    assert len(rows) == 10
    for row in rows:
        if row.facts["checkpoint at"] is None:
            assert row.after.code == 2, row.after.err
            assert one_line(row.after.err).startswith(f"error: output.path='{row.path.name}': "), row.after.err
        else:
            assert row.after.code == 0, row.after.err
            assert row.facts["identical to the uninterrupted run"] is True, row.case
    checkpointed = [row.facts["checkpoint at"] is not None for row in rows]
    assert any(checkpointed) and not all(checkpointed)  # the moments fall on both sides of the first checkpoint


def test_a_file_size_limit_stops_the_run_with_one_line_and_the_checkpoint_restarts(tmp_path, whole):
    """A write beyond RLIMIT_FSIZE (EFBIG), at a tenth, half and 80 % of the file's final size,
    stops the run: exit 1, one line naming the file and the cause, no success line, no crash;
    the last complete checkpoint continues bit for bit, and without one the restart says so."""
    rows = file_size_limit(tmp_path, whole, fractions=(0.1, 0.5, 0.8))
    for row in rows:
        assert row.outcome.code == 1, row.outcome.err
        line = WRITE_ERROR.fullmatch(one_line(row.outcome.err))
        assert line and line["file"] == "run.h5" and line["cause"] == "File too large (EFBIG)", row.outcome.err
        assert "t_end=" not in row.outcome.out and "run file:" not in row.outcome.out
        if "its checkpoint" in row.outcome.err:
            assert row.after.code == 0, row.after.err
            assert row.facts["identical to the uninterrupted run"] is True, row.case
        else:
            assert row.after.code == 2, row.after.err
            assert one_line(row.after.err).startswith("error: output.path='run.h5': "), row.after.err
    assert "its checkpoint" in rows[-1].outcome.err  # at 80 % the first checkpoint (t = 1) is in the file


def test_a_full_disk_stops_the_run_with_one_line(tmp_path, whole):
    """A tmpfs smaller than the run file (ENOSPC): exit 1 and one line; the file, moved to a
    larger disk, continues from its checkpoint to the uninterrupted result."""
    (row,) = full_disk(tmp_path, whole)
    if row.skipped:
        pytest.skip(row.skipped)
    assert row.outcome.code == 1, row.outcome.err
    line = WRITE_ERROR.fullmatch(one_line(row.outcome.err))
    assert line and line["cause"] == "No space left on device (ENOSPC)" and "t_end=" not in row.outcome.out
    assert "its checkpoint" in row.outcome.err  # the first checkpoint (t = 1) fits in three quarters of the file
    assert row.after.code == 0, row.after.err
    assert row.facts["identical to the uninterrupted run"] is True


def test_flipped_bytes_in_metadata_never_hang_and_give_one_line(tmp_path, whole):
    """16 bytes flipped in an object header (the root group, the groups, a dataset; such damage
    made `rates` and `--restart` hang for over 10 minutes in the SWMR open): `rates` and
    `--restart` end within the timeout, with exit 0 or one line (exit 2, or 1 when the damage
    is found only when the restart writes)."""
    rows = flipped_headers(tmp_path, whole)
    assert len(rows) == 8
    for row in rows:
        code, err = row.outcome.code, row.outcome.err
        assert code == 0 or (code in (1, 2) and one_line(err).startswith("error: ")), (row.case, err)


def test_a_flipped_byte_in_the_checkpoint_is_refused_and_the_file_kept(tmp_path, whole):
    (row,) = flipped_checkpoint(tmp_path, whole)
    assert row.outcome.code == 2, row.outcome.err
    assert one_line(row.outcome.err) == (f"error: checkpoint {row.facts['slot']} of 'run.h5' is damaged: its checksum "
                                         "does not match its contents")
    assert row.facts["file unchanged"]


def test_a_damaged_snapshot_or_diagnostic_chunk_is_detected_and_rates_needs_only_the_diagnostics(tmp_path, whole):
    snapshot, diagnostic = flipped_chunks(tmp_path, whole)
    with pytest.raises(OSError, match="filter returned failure"):
        open_run(snapshot.path)
    with pytest.raises(OSError, match="filter returned failure"):
        open_run(diagnostic.path, snapshots=False)
    assert snapshot.outcome.code == 0 and "energy" in snapshot.outcome.out, snapshot.outcome.err
    assert diagnostic.outcome.code == 2, diagnostic.outcome.err
    assert one_line(diagnostic.outcome.err).startswith("error: run='diagnostic.h5': cannot read the run file ("), \
        diagnostic.outcome.err


def test_one_writer_per_file(tmp_path):
    """While a run writes its file, a second run, one with --overwrite and a --restart are
    refused (one line naming the file, exit 2) and the first run goes on undisturbed; an
    --overwrite whose new run fails before its first record leaves the old file byte-identical."""
    first, second, overwrite, restart, failed = one_writer(tmp_path)
    assert first.facts["running while the others were tried"], "the first run ended before the others were tried"
    assert first.outcome.code == 143 and "state saved in run.h5" in first.outcome.err, first.outcome.err
    assert first.facts["its file"] == "t_end = 1000, 64×64" and first.facts["files"] == ["run.h5"]
    assert second.outcome.code == 2 and one_line(second.outcome.err) == (
        "error: output.path='run.h5': the file exists; pass --overwrite to replace it or --restart to continue it")
    busy = (f"error: output.path='run.h5': another run is writing it (process {first.facts['_pid']} holds "
            "'run.h5.lock'); wait for it to finish or stop it first")
    for row in (overwrite, restart):
        assert row.outcome.code == 2 and one_line(row.outcome.err) == busy, (row.case, row.outcome.err)
    # an overwrite that cannot write its first record (a 20 kB file size limit) keeps the old file
    assert failed.outcome.code == 1, failed.outcome.err
    assert one_line(failed.outcome.err).endswith("the run stops ('run.h5' is unchanged)"), failed.outcome.err
    assert failed.facts["old file unchanged"] and failed.facts["files"] == ["run.h5"]


def test_a_blow_up_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    """RK4 with a fixed step of 5 (stable at 1) makes E rise at t = 10: exit 1 with one line
    naming the quantity, the time and the step; nothing of the exploded state is checkpointed,
    and the checkpoint at t = 5 continues with dt = 1 to the result of a run at dt = 1 throughout."""
    (row,) = blow_up(tmp_path)
    assert row.outcome.code == 1, row.outcome.err
    line = one_line(row.outcome.err)
    assert re.fullmatch(r"error: the energy rose from \S+ to \S+ at t=10 \(step 6\): the run is unstable; the last "
                        r"good checkpoint at t=5 stays; continue it with --restart and a smaller time.dt, time.cfl "
                        r"or time.rtol", line), line
    assert row.facts["checkpoint kept at"] == 5.0
    assert row.after.code == 0, row.after.err
    assert row.facts["identical to a run at dt = 1"] is True


def test_an_unresolvable_tolerance_is_refused_in_one_line_before_any_file(tmp_path):
    (row,) = tiny_rtol(tmp_path)
    assert row.outcome.code == 2
    assert one_line(row.outcome.err) == "error: time.rtol=1e-300: expected a value >= 1e-13"
    assert row.facts["files"] == []


def test_a_file_of_format_2_without_digests_still_restarts(tmp_path, whole):
    """Files written before checkpoints carried ``energy`` and ``digest`` restart (without those
    checks) to the same state as a file of the current format."""
    (row,) = format_2(tmp_path, whole)
    assert row.outcome.code == 0, row.outcome.err
    assert row.facts["restart of the current format"] == "exit 0, 0 stderr lines"
    assert row.facts["identical to it"] is True
