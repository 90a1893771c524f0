"""Step control through the public Solver API, against exact solutions: rejections, dt_max, cfl,
step-size underflow, a stiff s < 1 flow; wall-clock checkpoints with an injected clock; the
diagnostic sums against direct sums over the modes; the output schedules written out by hand."""

import math

import numpy as np
import pytest

from sobolev_flow import Solver, SpectralModel, Torus
from sobolev_flow.config import schedule_times
from sobolev_flow.diagnostics import SpectralSums, sobolev_norm, tail_fraction
from sobolev_flow.kernels import SobolevKernel
from sobolev_flow.run import main
from sobolev_flow.trackers import CheckpointTracker, drive
from conftest import exact_s1_1d


def s1_model(n=128):
    """The s = 1 flow in 1-D from μ0 = 1 + ½ sin x + 0.2 cos 2x (exact solution: exact_s1_1d)."""
    grid = Torus((n,))
    (x,) = grid.mesh()
    return SpectralModel(grid, 1 + 0.5 * np.sin(x) + 0.2 * np.cos(2 * x), s=1.0), x


def exact_state(grid, x, t):
    """ρ̂ = (μ − 1)^ of the exact solution at t, on the resolved modes (the solver's state)."""
    rho_hat = grid.project(grid.to_spectral(exact_s1_1d(x, t)))
    rho_hat.flat[0] -= 1.0
    return rho_hat


# ---------------------------------------------------------------------------- step control
def test_a_too_large_first_step_is_rejected_and_the_accepted_one_meets_the_tolerance():
    model, x = s1_model()
    rtol = 1e-9
    solver = Solver(model, scheme="etdrk4", rtol=rtol, atol=0.0, dt_initial=1.0, cfl=50.0)
    solver.step(2.0)
    assert solver.stats()["rejected"] >= 1 and solver.steps == 1
    assert solver.t == solver.last_dt < 1.0
    # one step from the exact initial state: its error is the local error the controller accepted
    error = model.norm(solver.u - exact_state(model.grid, x, solver.t))
    assert error <= rtol * model.norm(solver.u)


def test_steps_respect_dt_max():
    steps = {}
    for dt_max in (math.inf, 0.01):
        model, _ = s1_model(64)
        solver = Solver(model, scheme="etdrk4", rtol=1e-4, dt_max=dt_max)
        sizes = []
        solver.advance(1.0, callback=lambda s: sizes.append(s.last_dt))
        steps[dt_max] = np.array(sizes)
    assert steps[math.inf].max() > 0.05  # unbounded, the controller takes larger steps
    assert steps[0.01].max() <= 0.01 and len(steps[0.01]) >= 100


def padded_max_speed(grid, rho_hat, s):
    """max |∇ψ| over the 3/2-padded 1-D grid, ψ_k = |k|^{−2s} ρ_k, by numpy's inverse FFT."""
    n = grid.shape[0]
    m = 3 * n // 2
    k = np.arange(rho_hat.size)
    with np.errstate(divide="ignore"):
        gradient = np.where(k > 0, 1j * k * rho_hat / np.where(k > 0, k, 1.0) ** (2 * s), 0.0)
    padded = np.zeros(m // 2 + 1, complex)
    padded[: n // 2] = gradient[: n // 2]
    return float(np.max(np.abs(np.fft.irfft(padded, m) * m)))


def test_steps_respect_the_cfl_bound():
    """h ≤ cfl · dx / max|∇ψ| at the state each step starts from, and the bound is what limits them."""
    grid = Torus((64,))
    (x,) = grid.mesh()
    model = SpectralModel(grid, 1 + 0.6 * np.sin(x) + 0.3 * np.cos(3 * x), s=1.0)
    cfl = 0.05
    solver = Solver(model, scheme="etdrk4", rtol=1e-2, cfl=cfl)
    ratios = []
    while solver.t < 0.5:
        bound = cfl * (2 * np.pi / 64) / padded_max_speed(grid, solver.u, 1.0)
        solver.step(0.5)
        ratios.append(solver.last_dt / bound)
    assert max(ratios) <= 1 + 1e-9
    assert np.median(ratios) > 0.9  # active: the loose rtol alone would allow far larger steps


def test_a_tolerance_below_rounding_is_refused():
    model, _ = s1_model(32)
    with pytest.raises(ValueError, match=r"^rtol=1e-300: expected a value >= 1e-13 \(below it the error estimate is "
                                         r"rounding error\)$"):
        Solver(model, scheme="etdrk4", rtol=1e-300, atol=0.0)


def test_a_step_below_rounding_stops_with_a_step_size_underflow():
    model, _ = s1_model(32)
    solver = Solver(model, scheme="etdrk4", dt_max=1e-16)
    with pytest.raises(RuntimeError, match=r"^step size underflow \(dt=1e-16\) at t=0$"):
        solver.advance(1.0)
    assert solver.steps == 0


def test_the_command_line_reports_a_step_size_underflow_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["--quiet", "--set", "grid.n=16", "time.t_end=1.0", "time.dt_max=1e-16", "fft.threads=1"])
    lines = capsys.readouterr().err.splitlines()
    assert code == 1
    assert lines == ["error: step size underflow (dt=1e-16) at t=0"]


def test_the_command_line_refuses_a_tolerance_below_rounding(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["--quiet", "--set", "time.rtol=1e-300"])
    assert code == 2
    assert capsys.readouterr().err.splitlines() == ["error: time.rtol=1e-300: expected a value >= 1e-13"]
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("scheme, estimate", [("etdrk4", "embedded"), ("etdrk2", "embedded"), ("ark324", "embedded"),
                                              ("ars222", "doubling")])
def test_a_stiff_flow_with_s_one_half_follows_the_linear_solution(scheme, estimate):
    """s = ½, μ0 = 1 + ε g with ε = 1e-7: to O(ε²), ρ_k(t) = ρ_k(0) e^{−|k| t} (rates |k|^{2−2s} = |k|
    up to 511 on n = 1024: explicit RK4 would need h < 2.8/511). Exponential schemes are exact on
    the linear part; the IMEX schemes take steps beyond the explicit bound (ARS222 with step
    doubling: its embedded IMEX Euler is first order and, on this stiff problem, pessimistic)."""
    n, eps, t_end = 1024, 1e-7, 1.0
    grid = Torus((n,))
    (x,) = grid.mesh()
    k = np.arange(1, n // 2)
    phases = np.random.default_rng(5).uniform(0, 2 * np.pi, k.size)
    g = np.cos(np.multiply.outer(x, k) + phases) @ (1.0 / k)
    exact = np.cos(np.multiply.outer(x, k) + phases) @ (np.exp(-k * t_end) / k)
    model = SpectralModel(grid, 1 + eps * g, s=0.5)
    options = {"dt": 0.25} if scheme.startswith("etd") else {"rtol": 1e-6, "error_estimate": estimate}
    solver = Solver(model, scheme=scheme, **options)
    solver.advance(t_end)
    rho = (model.density(solver.u) - 1) / eps
    assert np.max(np.abs(rho - exact)) < (1e-6 if scheme.startswith("etd") else 2e-4) * np.max(np.abs(g))
    explicit_steps = t_end * (n // 2 - 1) / 2.8  # 183; adaptive RK4 takes 207 here
    assert solver.steps < (5 if scheme.startswith("etd") else explicit_steps / 2)


# ---------------------------------------------------------------------------- checkpoints
class Writer:
    """Records the clock and the step of every checkpoint."""

    n_snapshots = n_diagnostics = 0

    def __init__(self, clock):
        self.clock, self.saved = clock, []

    def write_checkpoint(self, state):
        self.saved.append((self.clock(), state["steps"]))


def test_checkpoints_follow_the_wall_clock():
    """3 s of (injected) wall time per step, a checkpoint every 10 s: after steps 4, 8, …, 48 and at
    the end (step 50), never more than 10 s + one step apart."""
    model, _ = s1_model(32)
    solver = Solver(model, scheme="etdrk4", dt=0.01)

    def clock():
        return 3.0 * solver.steps

    writer = Writer(clock)
    drive(solver, 0.5, [CheckpointTracker(writer, seconds=10.0, clock=clock)])
    assert solver.steps == 50
    steps = [step for _, step in writer.saved]
    assert set(range(4, 49, 4)) | {50} <= set(steps) and steps[-1] == 50
    assert np.all(np.diff([0.0] + [when for when, _ in writer.saved]) <= 13.0)


# ---------------------------------------------------------------------------- diagnostic sums
def full_spectrum(f):
    """(signed integer wavevectors, coefficients f_k = mean(f e^{−ik·x})) of every mode of a grid field."""
    coefficients = np.fft.fftn(f) / f.size
    ks = [np.fft.fftfreq(n, 1.0 / n) for n in f.shape]
    return [(np.array([ks[j][i[j]] for j in range(f.ndim)]), coefficients[i]) for i in np.ndindex(f.shape)]


@pytest.mark.parametrize("shape", [(16,), (12, 10), (8, 12, 10)])
@pytest.mark.parametrize("q", [-2.0, -0.5, 1.0])
def test_sobolev_norm_is_the_direct_sum_over_the_modes(shape, q, rng):
    grid = Torus(shape)
    f = rng.standard_normal(shape)
    modes = full_spectrum(f)
    direct = math.sqrt(sum(float(k @ k) ** q * abs(c) ** 2 for k, c in modes if np.any(k)))
    assert sobolev_norm(grid, grid.to_spectral(f), q) == pytest.approx(direct, rel=1e-12)
    # several orders in one pass over the modes (the run's diagnostic), in the order asked
    orders = [1.0, q, 0.0]
    directs = [math.sqrt(sum(float(k @ k) ** r * abs(c) ** 2 for k, c in modes if np.any(k))) for r in orders]
    np.testing.assert_allclose(SpectralSums(grid).sobolev_norms(grid.to_spectral(f), orders), directs, rtol=1e-12)


@pytest.mark.parametrize("dealias", ["3/2", "2/3"])
@pytest.mark.parametrize("shape", [(30,), (12, 18), (12, 10, 8)])
def test_tail_fraction_is_the_direct_share_of_the_top_third(shape, dealias, rng):
    """Resolved: |k_j| < n_j/2 (3/2 padding) or < n_j/3 (2/3 truncation) on every axis; the top
    third: max_j |k_j|/K_j > 2/3 with K_j the largest resolved |k_j|; the share of Σ_{k≠0} |f_k|²."""
    grid = Torus(shape, dealias=dealias)
    f = rng.standard_normal(shape)
    modes = full_spectrum(f)
    cut = [n / 2 if dealias == "3/2" else n / 3 for n in shape]
    largest = [max(k for k in range(n) if k < c) for n, c in zip(shape, cut)]
    resolved = [(k, c) for k, c in modes if np.any(k) and all(abs(kj) < cj for kj, cj in zip(k, cut))]
    top = sum(abs(c) ** 2 for k, c in resolved if max(abs(kj) / K for kj, K in zip(k, largest)) > 2 / 3)
    total = sum(abs(c) ** 2 for _, c in resolved)
    assert tail_fraction(grid, grid.to_spectral(f)) == pytest.approx(top / total, rel=1e-12)
    # with kernel weights the modes the kernel does not see are left out; the Sobolev kernel sees all
    sums = SpectralSums(grid, SobolevKernel(1.0).weights(grid))
    assert sums.tail_fraction(grid.to_spectral(f)) == pytest.approx(top / total, rel=1e-12)


# ---------------------------------------------------------------------------- schedules
def test_schedule_times_written_out():
    assert schedule_times([0.5, 2.0, 7.0], 5.0).tolist() == [0.0, 0.5, 2.0, 5.0]
    assert schedule_times({"every": 0.25}, 1.0).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert schedule_times({"every": 0.3}, 1.0).tolist() == pytest.approx([0.0, 0.3, 0.6, 0.9, 1.0], abs=1e-15)
    np.testing.assert_allclose(schedule_times({"t0": 0.1, "ratio": 10.0}, 50.0), [0.0, 0.1, 1.0, 10.0, 50.0],
                               rtol=1e-15)
    np.testing.assert_allclose(schedule_times({"t0": 1.0, "ratio": 2.0}, 8.0), [0.0, 1.0, 2.0, 4.0, 8.0], rtol=1e-15)
    assert schedule_times({"t0": 2.0, "ratio": 2.0}, 1.0).tolist() == [0.0, 1.0]
