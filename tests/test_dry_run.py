"""--dry-run makes every check of the real run: the same one line, exit 2, no file touched."""

import hashlib
import re

import numpy as np
import pytest

from sobolev_flow.run import main, output_memory
from sobolev_flow.config import resolve
from sobolev_flow.grid import Torus

SMALL = ["grid.n=16", "time.t_end=0.01", "fft.threads=1", "particles.n=10"]
PARTICLES = ['model.method="particles"']


def write_inputs(tmp_path):
    np.save(tmp_path / "short.npy", np.ones((8, 8)))
    np.save(tmp_path / "zeros.npy", np.zeros((16, 16)))
    nu = np.ones((16, 16))
    nu[3, 4] = 0.0
    np.save(tmp_path / "nu_zero.npy", nu)
    np.save(tmp_path / "pos_3d.npy", np.zeros((10, 3)))
    np.save(tmp_path / "pos.npy", np.linspace(0.1, 6.0, 20).reshape(10, 2))
    np.save(tmp_path / "w_short.npy", np.ones(7))
    np.save(tmp_path / "w_neg.npy", -np.ones(10))
    np.save(tmp_path / "w_heavy.npy", np.ones(10))


#: bad inputs the real run used to find only after --dry-run had accepted them: (overrides, the one line)
CASES = {
    "initial npy missing": (['initial.density="gone.npy"'], "error: initial.density='gone.npy': no such file"),
    "initial npy shape": (['initial.density="short.npy"'],
                          "error: initial.density='short.npy': shape (8, 8) does not match the grid (16, 16)"),
    "initial npy zeros": (['initial.density="zeros.npy"'], "error: initial.density='zeros.npy': holds only zeros"),
    "target npy missing": (['model.target="gone.npy"'], "error: model.target='gone.npy': no such file"),
    "target npy shape": (['model.target="short.npy"'],
                         "error: model.target='short.npy': shape (8, 8) does not match the grid (16, 16)"),
    "target with a zero": (['model.target="nu_zero.npy"'],
                           "error: nu has a value 0 at index (3, 4); a density must be > 0"),
    "target floor zero": (['model.target={family="bumps", floor=0}'],
                          "error: model.target.floor=0: expected floor > 0"),
    "p <= d": (["initial.density.p=2"], "error: initial.density.p=2: expected p > d = 2 (so that the field is in L^2)"),
    "positions missing": (PARTICLES + ['particles.init="gone.npy"'], "error: particles.init='gone.npy': no such file"),
    "positions shape": (PARTICLES + ['particles.init="pos_3d.npy"'],
                        "error: particles.init: positions of shape (10, 3), expected (N, 2)"),
    "weights missing": (PARTICLES + ['particles.init="pos.npy"', 'particles.weights="gone.npy"'],
                        "error: particles.weights='gone.npy': no such file"),
    "weights shape": (PARTICLES + ['particles.init="pos.npy"', 'particles.weights="w_short.npy"'],
                      "error: particles.weights: shape (7,), expected (10,) (one per particle)"),
    "weights negative": (PARTICLES + ['particles.init="pos.npy"', 'particles.weights="w_neg.npy"'],
                         "error: particles.weights: weight -1 of particle 0 is negative"),
    "weights mass": (PARTICLES + ['particles.init="pos.npy"', 'particles.weights="w_heavy.npy"'],
                     "error: particles.weights add up to 10 but nu has mass 1; the Wasserstein flow conserves mass: "
                     "pass normalize=True (initial.normalize) or use the wfr geometry"),
    "quantiles in 2-D": (PARTICLES + ['particles.init="quantiles"'],
                         "error: particles.init='quantiles': needs d=1, got d=2; use 'lattice' or 'sample'"),
    "unknown init": (PARTICLES + ['particles.init="grid"'],
                     "error: particles.init='grid': expected one of auto, quantiles, lattice, sample or a .npy path"),
    "sorted in 2-D": (PARTICLES + ['particles.evaluator="sorted"'],
                      "error: particles.evaluator='sorted': needs d=1 and the Sobolev kernel with s=1, got d=2"),
    "nufft tolerance": (PARTICLES + ["particles.tol=10.0"], "error: particles.tol=10.0: expected a number in (0, 1)"),
    "exponential scheme for particles": (PARTICLES + ['time.scheme="etdrk4"'],
                                         "error: scheme='etdrk4': exponential schemes need a model with a linear "
                                         "part; valid: rk4, bs32, gd"),
}


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", CASES)
def test_dry_run_and_run_refuse_alike_and_leave_the_file(tmp_path, monkeypatch, capsys, name):
    monkeypatch.chdir(tmp_path)
    write_inputs(tmp_path)
    overrides, line = CASES[name]
    existing = tmp_path / "existing.h5"
    existing.write_bytes(b"a run file that must survive")
    before = {p.name: digest(p) for p in tmp_path.iterdir()}
    for dry in ([], ["--dry-run"]):
        code = main(["--quiet", "--set", *SMALL, *overrides, "--output", "existing.h5", "--overwrite", *dry])
        captured = capsys.readouterr()
        assert code == 2, (dry, captured.err)
        assert captured.err.splitlines() == [line], dry
        assert {p.name: digest(p) for p in tmp_path.iterdir()} == before
    assert existing.read_bytes() == b"a run file that must survive"


def test_output_memory_counts_the_snapshot_buffers_and_the_output_times():
    cfg = resolve({}, ["grid.n=64", "time.t_end=10.0", "output.snapshots={every=1.0}", "output.diagnostics=[0.5]"])
    # μ0, ν, μ and its compressed chunk: 4 float64 grids; the times 0, 1, ..., 10 (10 + 2 counted),
    # [0.5] (1 + 2), each in its schedule and the union: 3 float64 per time
    assert output_memory(cfg, Torus((64, 64))) == 4 * 8 * 64 * 64 + 3 * 8 * (12 + 3)


def test_dry_run_reports_the_output_memory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["--dry-run", "--set", "grid.n=512", "output.snapshots={every=1.0}", "time.t_end=1.0"]) == 0
    memory = re.search(r"# estimated working memory: ([\d.]+) MiB, outputs ([\d.]+) MiB", capsys.readouterr().out)
    assert float(memory.group(2)) == pytest.approx(4 * 8 * 512 * 512 / 2**20, rel=1e-2)
    assert float(memory.group(1)) > float(memory.group(2))
    assert list(tmp_path.iterdir()) == []


def test_a_kernel_parameter_can_be_set_when_no_kernel_table_is_given(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["--dry-run", "--set", 'model.kernel.name="gaussian"', "model.kernel.sigma=0.5"]) == 0
    assert 'kernel = {name = "gaussian", sigma = 0.5}' in capsys.readouterr().out
