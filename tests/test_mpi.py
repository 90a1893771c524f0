"""Distributed runs: ``mpirun -n 2 python -m sobolev_flow.run`` against the serial run.

These tests need an MPI launcher and the ``mpi`` extra (mpi4py, mpi4py-fft). Without them they
are skipped, unless ``SOBOLEV_FLOW_REQUIRE_MPI=1`` (set by the continuous integration, which
installs both), when a missing piece is a failure.
"""

import os
import pathlib
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from sobolev_flow import open_run

ROOT = pathlib.Path(__file__).resolve().parents[1]
REQUIRED = os.environ.get("SOBOLEV_FLOW_REQUIRE_MPI") == "1"


def _missing() -> str:
    if shutil.which("mpirun") is None:
        return "no mpirun on PATH"
    try:
        import mpi4py  # noqa: F401
        import mpi4py_fft  # noqa: F401
    except ImportError as err:
        return f"the mpi extra is not installed ({err})"
    return ""


MISSING = _missing()
if MISSING and REQUIRED:
    raise RuntimeError(f"SOBOLEV_FLOW_REQUIRE_MPI=1 but {MISSING}")
pytestmark = pytest.mark.skipif(bool(MISSING), reason=MISSING)


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    # Open MPI refuses to start as root without these (containers, CI)
    e.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1")
    return e


def run(*args, cwd, processes=1, check=0):
    launcher = [] if processes == 1 else ["mpirun", "-n", str(processes), "--oversubscribe"]
    result = subprocess.run(launcher + [sys.executable, "-m", "sobolev_flow.run", "--quiet", *args], cwd=cwd,
                            env=env(), capture_output=True, text=True, timeout=300)
    if check is not None:
        assert result.returncode == check, result.stdout + result.stderr
    return result


def assert_same_run(serial, distributed, tol=1e-12):
    a, b = open_run(serial), open_run(distributed)
    assert np.array_equal(a.t, b.t)
    assert a.mu.shape == b.mu.shape
    assert np.max(np.abs(a.mu - b.mu)) <= tol
    assert sorted(a.diagnostics) == sorted(b.diagnostics)
    for name, x in a.diagnostics.items():
        y = b.diagnostics[name]
        assert x.shape == y.shape, name
        scale = max(1.0, float(np.max(np.abs(x)))) if x.size else 1.0
        # the step size comes from the error estimate, a difference of two nearly equal states
        # whose rounding differs with the order of the sums: it agrees to 1e-9 relative
        bound = 1e-9 * np.abs(x) if name == "dt" else tol * scale
        assert np.all(np.abs(x - y) <= bound), name
    # the same schema: every dataset of the serial file, with the same shape and type
    with h5py.File(serial, "r") as f, h5py.File(distributed, "r") as g:
        names = []
        f.visit(names.append)
        for name in names:
            assert name in g, name
            if isinstance(f[name], h5py.Dataset):
                assert f[name].shape == g[name].shape and f[name].dtype == g[name].dtype, name
        assert int(g.attrs["processes"]) == 2 and int(f.attrs["processes"]) == 1


CASES = {
    "2-D slab, non-uniform target": ["grid.n=48", "time.t_end=5", 'model.target={family="bumps", floor=0.3}'],
    "2-D 2/3 truncation, s=1.5": ["grid.n=48", "time.t_end=3", "grid.dealias=2/3", "model.s=1.5"],
    "3-D pencils": ["grid.d=3", "grid.n=16", "time.t_end=3", "fft.decomposition=pencil"],
}


@pytest.mark.parametrize("case", list(CASES))
def test_two_processes_reproduce_the_serial_run(tmp_path, case):
    overrides = ["--set", *CASES[case], "fft.threads=1"]
    run("-o", "serial.h5", *overrides, cwd=tmp_path)
    result = run("-o", "distributed.h5", *overrides, cwd=tmp_path, processes=2)
    assert "processes" in result.stdout and result.stdout.count("run file:") == 1  # one process reports
    assert_same_run(tmp_path / "serial.h5", tmp_path / "distributed.h5")


def test_serial_checkpoint_continues_on_two_processes(tmp_path):
    """A run cut at t = 2 serially and continued to t = 6 on two processes equals the whole
    serial run: checkpoints are global, whatever wrote them."""
    small = ["--set", "grid.n=48", "fft.threads=1", "output.snapshots=[1.0, 2.0, 4.0]"]
    run("-o", "whole.h5", *small, "time.t_end=6", cwd=tmp_path)
    run("-o", "split.h5", *small, "time.t_end=2", cwd=tmp_path)
    run("-o", "split.h5", "--restart", "--set", "time.t_end=6", cwd=tmp_path, processes=2)
    whole, split = open_run(tmp_path / "whole.h5"), open_run(tmp_path / "split.h5")
    assert np.array_equal(whole.t, split.t)
    assert np.max(np.abs(whole.mu - split.mu)) <= 1e-12
    # the split run also recorded its end time t = 2, which is not on the whole run's schedule
    t = split.diagnostics["t"]
    keep = t != 2.0
    assert np.array_equal(whole.diagnostics["t"], t[keep])
    assert np.max(np.abs(whole.diagnostics["energy"] - split.diagnostics["energy"][keep])) <= 1e-14


def test_one_dimensional_grid_is_refused_under_mpi(tmp_path):
    result = run("-o", "x.h5", "--set", "grid.d=1", cwd=tmp_path, processes=2, check=None)
    assert result.returncode != 0
    assert "error: d=1: distributed runs need a grid of dimension 2 or 3" in result.stderr
    assert not (tmp_path / "x.h5").exists()


SOLVE_SCRIPT = """
import numpy as np
from mpi4py import MPI
from sobolev_flow import Torus, solve

grid = Torus((32, 24))
x, y = grid.mesh()
mu0 = 1 + 0.4 * np.cos(x) * np.sin(2 * y) + 0.2 * np.cos(3 * y)
options = dict(s=1.5, mu0=mu0, times=[0.5, 2.0], threads=1)
distributed = solve(grid, comm=MPI.COMM_WORLD, **options)
serial = solve(grid, **options)
assert distributed.stats["processes"] == 2 and serial.stats["processes"] == 1
error = float(np.max(np.abs(distributed.mu - serial.mu)))
energy = float(np.max(np.abs(distributed.diagnostics["energy"] - serial.diagnostics["energy"])))
# one writer: lines printed by two processes to one pipe can interleave
rows = MPI.COMM_WORLD.gather((MPI.COMM_WORLD.rank, error, energy))
if MPI.COMM_WORLD.rank == 0:
    for row in rows:
        print(*row, flush=True)
"""


def test_solve_with_a_communicator_returns_the_whole_result_on_every_process(tmp_path):
    script = tmp_path / "solve_mpi.py"
    script.write_text(SOLVE_SCRIPT)
    result = subprocess.run(["mpirun", "-n", "2", "--oversubscribe", sys.executable, str(script)], cwd=tmp_path,
                            env=env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = sorted(line.split() for line in result.stdout.splitlines())
    assert [line[0] for line in lines] == ["0", "1"]
    for _, error, energy in lines:
        assert float(error) <= 1e-12 and float(energy) <= 1e-14
