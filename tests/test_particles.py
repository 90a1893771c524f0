"""Particles: the exact 1-D s = 1 solution, agreement with the PDE, conservation laws, the run
file, and bad input."""

import math
import pathlib
import subprocess
import sys

import h5py
import numpy as np
import pytest

from sobolev_flow import Solver, Torus, open_run, solve
from sobolev_flow.kernels import GaussianKernel
from sobolev_flow.models.particles import ParticleModel, quantiles

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_particles(model, t_end, **options):
    """(solver at t_end, diagnostics of every accepted state from t = 0 on)."""
    solver = Solver(model, scheme=options.pop("scheme", "rk4"), **options)
    records = [solver.diagnostics()]
    solver.advance(t_end, callback=lambda s: records.append(s.diagnostics()))
    return solver, records


def test_sorted_evaluator_follows_the_exact_s1_solution():
    """d = 1, s = 1, ν ≡ 1, equal weights: ∂ψ(x_i) = x_i − x_i^∞ with x_i^∞ = 2π(i − ½)/N + c, where i
    is the rank of x_i and c = x̄ − π keeps the centre of mass x̄ (the mean position, conserved);
    so x_i(t) = x_i^∞ + (x_i(0) − x_i^∞) e^{−t}."""
    rng = np.random.default_rng(7)
    n = 200
    x0 = np.sort(rng.uniform(0, 2 * np.pi, n))
    model = ParticleModel(Torus((64,)), x0, s=1.0, evaluator="sorted")
    solver, records = run_particles(model, 2.0, rtol=1e-12, atol=1e-14)
    x_inf = 2 * np.pi * (np.arange(1, n + 1) - 0.5) / n + x0.mean() - np.pi
    exact = x_inf + (x0 - x_inf) * math.exp(-2.0)
    assert np.max(np.abs(solver.u[:, 0] - exact)) < 1e-10
    centers = np.array([r["center"][0] for r in records])
    assert np.max(np.abs(centers - x0.mean())) < 1e-12
    # the velocity is x_i^∞ − x_i: its mass-weighted RMS and maximum
    displacement = np.abs(solver.u[:, 0] - x_inf)
    assert records[-1]["rms_speed"] == pytest.approx(np.sqrt(np.mean(displacement**2)), rel=1e-9)
    assert records[-1]["max_speed"] == pytest.approx(displacement.max(), rel=1e-9)


@pytest.mark.parametrize("evaluator", ["direct", "nufft"])
def test_evaluators_give_the_same_trajectories(evaluator):
    """The s = 1 flow of 64 particles by the exact sorted evaluator, and by the others (NUFFT with
    K = 2048 modes, whose truncation error of ∇ψ is O(1/K) for s = 1)."""
    rng = np.random.default_rng(3)
    x0 = rng.uniform(0, 2 * np.pi, 64)
    grid = Torus((64,))
    reference = run_particles(ParticleModel(grid, x0, s=1.0, evaluator="sorted"), 1.0, rtol=1e-10)[0].u
    other = run_particles(ParticleModel(grid, x0, s=1.0, evaluator=evaluator, modes=2048), 1.0, rtol=1e-10)[0].u
    assert np.max(np.abs(other - reference)) < (1e-9 if evaluator == "direct" else 2e-3)


def pde_quantile_errors(counts, t_end=1.0, s=2.0):
    """max_i |x_i(t) − F_t^{−1}((i − ½)/N)| for particles started at μ0's midpoint quantiles, μ0
    even about 0 so that no mass crosses x = 0 (which the flow keeps fixed) and the quantiles
    from 0 are Lagrangian labels."""
    grid = Torus((256,))
    (x,) = grid.mesh()
    mu0 = 1 + 0.5 * np.cos(x) + 0.2 * np.cos(2 * x)
    mu_t = solve(grid, s, mu0, [t_end], rtol=1e-12).mu[-1]
    errors = []
    for n in counts:
        model = ParticleModel(grid, quantiles(grid, mu0, n), s=s, evaluator="direct")
        u = run_particles(model, t_end, rtol=1e-10)[0].u
        errors.append(float(np.max(np.abs(u[:, 0] - quantiles(grid, mu_t, n)))))
    return errors


def test_particles_track_the_pde_quantiles_s2():
    counts = [16, 32, 64, 128]
    errors = pde_quantile_errors(counts)
    order = -np.polyfit(np.log(counts), np.log(errors), 1)[0]
    assert order >= 1.0, (order, errors)


def test_energy_decreases_and_the_balance_closes_in_2d():
    grid = Torus((32, 32))
    x, y = grid.mesh()
    mu0 = 1 + 0.4 * np.cos(x) * np.sin(y)
    from sobolev_flow.models.particles import lattice

    positions, weights = lattice(grid, mu0, 400)
    residuals = []  # E(T) − E(0) + ∫D dt: Simpson's rule per step, error O(h⁴) with h ≤ dt_max
    for dt_max in (0.2, 0.05):
        model = ParticleModel(grid, positions, weights, kernel=GaussianKernel(0.7), evaluator="nufft", modes=24,
                              tol=1e-13)
        solver, records = run_particles(model, 2.0, rtol=1e-10, dt_max=dt_max)
        energy = np.array([r["energy"] for r in records])
        assert np.all(np.diff(energy) <= 1e-15 * energy[0]) and energy[-1] < energy[0]
        residuals.append(abs(records[-1]["energy_balance"]) / energy[0])
    assert residuals[1] < 1e-8 and residuals[1] < residuals[0] / 50, residuals
    assert np.max(np.abs(np.array([r["center"] for r in records]) - records[0]["center"])) < 1e-9
    # the particles' mass as the density estimate on the grid counts it: every particle stays in a cell
    assert abs(model.density(solver.u).mean() - 1) < 1e-13


def test_wfr_weights_change_mass_and_the_balance_closes():
    grid = Torus((64,))
    (x,) = grid.mesh()
    mu0 = 1.5 + 0.5 * np.sin(x)
    positions = quantiles(grid, mu0, 100)
    model = ParticleModel(grid, positions, np.full(100, 1.5 / 100), kernel=GaussianKernel(0.5),
                          geometry={"name": "wfr", "alpha": 2.0}, evaluator="direct", tol=1e-14)
    solver, records = run_particles(model, 3.0, rtol=1e-10, dt_max=0.05)
    mass = np.array([r["mass"] for r in records])
    energy = np.array([r["energy"] for r in records])
    assert mass[0] == pytest.approx(1.5) and mass[-1] < 1.2  # mass flows towards the target's
    assert np.all(np.diff(energy) <= 1e-14 * energy[0])
    assert abs(records[-1]["energy_balance"]) < 1e-7 * energy[0]
    assert min(r["min_weight"] for r in records) > 0


@pytest.mark.parametrize("args, message", [
    (dict(positions=[[0.0], [np.nan]]), r"^particles.init: position nan of particle 1 is not finite$"),
    (dict(positions=np.zeros((3, 2))), r"^particles.init: positions of shape \(3, 2\), expected \(N, 1\) or \(N,\)$"),
    (dict(weights=[0.5, -0.1, 0.6]), r"^particles.weights: weight -0.1 of particle 1 is negative$"),
    (dict(weights=[0.5, np.inf, 0.6]), r"^particles.weights: weight inf of particle 1 is not finite$"),
    (dict(weights=[0.5, 0.5, 0.5]), r"^particles.weights add up to 1.5 but nu has mass 1; the Wasserstein flow "
                                    r"conserves mass: pass normalize=True \(initial.normalize\) or use the wfr geometry$"),
])
def test_bad_particles_are_refused_with_one_line(args, message):
    options = {"positions": [0.1, 1.0, 2.0], "weights": None, **args}
    with pytest.raises(ValueError, match=message):
        ParticleModel(Torus((16,)), options["positions"], options["weights"], s=1.0, evaluator="direct")


def test_positions_are_wrapped():
    model = ParticleModel(Torus((16,)), [-0.5, 7.0], s=1.0, evaluator="direct")
    u = model.initial_state()
    assert np.allclose(u[:, 0], [2 * np.pi - 0.5, 7.0 - 2 * np.pi])


# ---------------------------------------------------------------------------- the command line
def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "sobolev_flow.run", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})


def test_a_particle_run_writes_positions_weights_and_a_density(tmp_path):
    result = cli("--set", "model.method=\"particles\"", "grid.d=1", "grid.n=64", "model.s=1.0", "particles.n=300",
                 'initial.density={family="mode", amplitude=0.5}', "time.t_end=3", "--output", "p.h5", "--quiet",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = open_run(tmp_path / "p.h5")
    assert run.model["name"] == "particles" and run.model["evaluator"]["name"] == "sorted"
    positions, weights = run.snapshots["positions"], run.snapshots["weights"]
    assert positions.shape == (len(run.t), 300, 1) and weights.shape == (len(run.t), 300)
    assert np.all((positions >= 0) & (positions < 2 * np.pi))
    # the density estimate holds the particles' mass, and the run's energy decreases
    assert np.allclose(run.mu.mean(axis=1), 1.0, rtol=1e-12)
    assert np.all(np.diff(run.diagnostics["energy"]) <= 0)
    with h5py.File(tmp_path / "p.h5") as f:
        assert f["checkpoint/a/state"].shape == (300, 1)
    for module in ("rates", "plot"):
        extra = ("-o", "p.png") if module == "plot" else ()
        out = subprocess.run([sys.executable, "-m", f"sobolev_flow.{module}", "p.h5", *extra], capture_output=True,
                             text=True, cwd=tmp_path, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
        assert out.returncode == 0, out.stderr


def test_a_particle_run_restarts_bit_for_bit(tmp_path):
    common = ["--quiet", "--set", "model.method=\"particles\"", "grid.d=1", "grid.n=32", "model.s=2.0",
              "particles.n=50", 'particles.evaluator="direct"', 'initial.density={family="mode", amplitude=0.4}',
              "output.checkpoint_steps=3", "output.snapshots=[0.0, 1.0, 2.0, 4.0]", "output.diagnostics={every=0.5}"]
    assert cli(*common, "time.t_end=4", "--output", "whole.h5", cwd=tmp_path).returncode == 0
    assert cli(*common, "time.t_end=1", "--output", "split.h5", cwd=tmp_path).returncode == 0
    assert cli("--output", "split.h5", "--restart", "--set", "time.t_end=4", "--quiet", cwd=tmp_path).returncode == 0
    whole, split = open_run(tmp_path / "whole.h5"), open_run(tmp_path / "split.h5")
    assert np.array_equal(whole.snapshots["positions"], split.snapshots["positions"])
    for name, values in whole.diagnostics.items():
        assert np.array_equal(values, split.diagnostics[name]), name


def test_particle_bad_input_on_the_command_line(tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((5, 3)))
    cases = {
        "particles.init=\"bad.npy\"": r"particles.init: positions of shape \(5, 3\), expected \(N, 2\)",
        "particles.init=\"none.npy\"": r"particles.init='none.npy': no such file",
        "particles.init=\"quantile\"": r"particles.init='quantile': expected one of auto, quantiles, lattice, sample "
                                       r"or a .npy path",
        "time.scheme=\"etdrk4\"": r"scheme='etdrk4': exponential schemes need a model with a linear part",
    }
    import re

    for override, pattern in cases.items():
        result = cli("--set", "model.method=\"particles\"", "grid.n=16", "particles.n=20", override, "--quiet",
                     cwd=tmp_path)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and re.search(pattern, lines[0]), (override, result.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npy"]


def test_a_grid_run_that_loses_positivity_says_so_and_records_it(tmp_path):
    """A spike on a floor of 1e-8 (s = 1): the exact flow keeps μ > 0, the grid solution does not."""
    result = cli("--set", "grid.d=1", "grid.n=128", "model.s=1.0", "time.t_end=6",
                 'initial.density={family="bumps", kappa=200.0, floor=1e-8}', "--output", "spike.h5", "--quiet",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("warning: mu went negative"))
    assert "particle method" in line
    summary = open_run(tmp_path / "spike.h5").attrs["summary"]
    worst = open_run(tmp_path / "spike.h5").diagnostics["min_mu"].min()
    assert summary["worst_min_mu"] <= worst < 0 and 0 <= summary["positivity_lost_at"] < 6
