"""Two-layer ReLU networks: the exact population loss, its mean-field flow and the WFR limit.

Expected values come from independent computations: quadrature or Monte Carlo over the inputs,
finite differences, the Fourier series of the relu kernel, and the WFR linear rates
M(n² + 2)κ_n with the closed-form κ_n of DESIGN.md §4.
"""

import math

import numpy as np
import pytest

from sobolev_flow import Solver, Torus
from sobolev_flow.models.network import (DensityTeacher, NetworkModel, NetworkTeacher, initial_network,
                                         relu_features)
from sobolev_flow.validation import (NETWORK_TRAINING, gradient_descent_errors, network_mode_rates,
                                     proximal_step_differences, training_problem)


def circle_inputs(n):
    theta = 2 * np.pi * (np.arange(n) + 0.5) / n
    return theta, np.column_stack([np.cos(theta), np.sin(theta)])


def random_network(rng, m, d, scale=1.0):
    return scale * rng.standard_normal(m), scale * rng.standard_normal((m, d + 1))


def student_outputs(x, a, w):
    return relu_features(x, w) @ a / len(a)


#: The teacher density of the training problem, 1 + ½cos 2θ + 0.3 sin θ − 0.2 cos(3θ + 0.4).
trig_density = NETWORK_TRAINING["nu"]


@pytest.fixture
def density_teacher():
    """The density teacher ν* = trig_density on a 64-point grid (that of :func:`training_problem`)."""
    return training_problem()[2]


# ----------------------------------------------------------------------------- the loss and its gradient
def test_loss_matches_quadrature_on_the_circle(rng):
    """d = 1: L = ½ E_x (f − f*)² by the midpoint rule over 2·10^5 inputs (the integrand is
    piecewise smooth with 2(m + m*) kinks: error O(n^{-2}))."""
    a, w = random_network(rng, 7, 1)
    teacher = NetworkTeacher(*random_network(rng, 5, 1))
    model = NetworkModel(a, w, teacher)
    _, x = circle_inputs(200_000)
    expected = 0.5 * np.mean((student_outputs(x, a, w) - teacher(x)) ** 2)
    assert model.energy(model.initial_state()) == pytest.approx(expected, rel=1e-8)


def test_loss_matches_monte_carlo_on_the_sphere(rng):
    """d = 2: the constant 1/(2π(d + 1)) of the arc-cosine kernel on S², against Monte Carlo over
    10^6 uniform inputs, within 4 standard errors."""
    a, w = random_network(rng, 6, 2)
    teacher = NetworkTeacher(*random_network(rng, 4, 2))
    model = NetworkModel(a, w, teacher)
    g = rng.standard_normal((1_000_000, 3))
    x = g / np.linalg.norm(g, axis=1)[:, None]
    samples = 0.5 * (student_outputs(x, a, w) - teacher(x)) ** 2
    error = model.energy(model.initial_state()) - samples.mean()
    assert abs(error) < 4 * samples.std() / math.sqrt(len(samples))
    # a wrong constant (the Gaussian's 1/(2π)) would be off by a factor 3
    assert samples.mean() > 1e-3


@pytest.mark.parametrize("d", [1, 2])
def test_gradient_matches_finite_differences(rng, d):
    a, w = random_network(rng, 6, d)
    model = NetworkModel(a, w, NetworkTeacher(*random_network(rng, 4, d)))
    u = model.initial_state()
    loss, grad = model.loss_and_gradient(u)
    eps, numeric = 1e-6, np.empty_like(u)
    for index in np.ndindex(u.shape):
        up, down = u.copy(), u.copy()
        up[index] += eps
        down[index] -= eps
        numeric[index] = (model.energy(up) - model.energy(down)) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, atol=1e-8 * np.max(np.abs(grad)))


def test_gradient_matches_monte_carlo_over_inputs(rng):
    """∇_{a_i} L = (1/m) E[(f − f*) (w_i·x)_+], ∇_{w_i} L = (a_i/m) E[(f − f*) 1{w_i·x > 0} x] on the
    circle (midpoint rule over 2·10^5 inputs; the indicator jumps, so its error is O(1/n) ≈ 10^-5)."""
    a, w = random_network(rng, 5, 1)
    teacher = NetworkTeacher(*random_network(rng, 3, 1))
    model = NetworkModel(a, w, teacher)
    _, grad = model.loss_and_gradient(model.initial_state())
    _, x = circle_inputs(200_000)
    residual = student_outputs(x, a, w) - teacher(x)
    features = relu_features(x, w)
    np.testing.assert_allclose(grad[:, 0], features.T @ residual / len(x) / 5, atol=1e-9)
    active = (x @ w.T > 0) * residual[:, None]
    np.testing.assert_allclose(grad[:, 1:], a[:, None] * (active.T @ x) / len(x) / 5, atol=2e-5 * np.max(np.abs(a)))


def test_symmetric_kernel_sums_match_the_general_ones(rng):
    """Σ_j c_j k(u_i, u_j) from the upper triangle (blocks on 1 or 3 workers, a zero neuron) equals
    the sum over all ordered pairs."""
    from sobolev_flow.models.network import relu_kernel_sums

    u, c = rng.standard_normal((301, 3)), rng.standard_normal(301)
    u[7] = 0.0
    full_S, full_grad = relu_kernel_sums(u, c, u.copy(), threads=1)
    for threads, block in [(1, 16), (3, 40)]:
        S, grad = relu_kernel_sums(u, c, threads=threads, block=block)
        np.testing.assert_allclose(S, full_S, rtol=0, atol=1e-13)
        np.testing.assert_allclose(grad, full_grad, rtol=0, atol=1e-13)


def test_density_teacher_matches_quadrature(rng, density_teacher):
    """f*(x) = ∫ (ŵ(θ)·x)_+ ν*(θ) dm by a fine midpoint rule; ½ E f*² and the loss of a network
    student against it by quadrature over inputs; its gradient by finite differences."""
    theta, x = circle_inputs(128)
    tf, _ = circle_inputs(40_000)
    reference = np.maximum(np.cos(theta[:, None] - tf[None, :]), 0) @ trig_density(tf) / len(tf)
    np.testing.assert_allclose(density_teacher(x), reference, atol=1e-8)
    a, w = random_network(rng, 6, 1)
    model = NetworkModel(a, w, density_teacher)
    u = model.initial_state()
    _, xs = circle_inputs(200_000)
    assert density_teacher.energy == pytest.approx(0.5 * np.mean(density_teacher(xs) ** 2), rel=1e-12)
    loss = 0.5 * np.mean((student_outputs(xs, a, w) - density_teacher(xs)) ** 2)
    assert model.energy(u) == pytest.approx(loss, rel=1e-8)
    _, grad = model.loss_and_gradient(u)
    eps = 1e-6
    for index in [(0, 1), (2, 2), (4, 0)]:
        up, down = u.copy(), u.copy()
        up[index] += eps
        down[index] -= eps
        assert grad[index] == pytest.approx((model.energy(up) - model.energy(down)) / (2 * eps), abs=1e-8)


def test_balanced_network_loss_is_the_kmd_energy_of_its_measure(rng, density_teacher):
    """With a_i = |w_i|, L = ½ Σ_n κ_n |ν_n − ν*_n|², ν = (1/m) Σ |w_i|² δ_{θ_i}, with the closed-form
    κ_0 = 1/π², κ_{±1} = 1/16, κ_n = 1/(π²(n² − 1)²) (even n), 0 (odd |n| ≥ 3), summed to |n| ≤ 4000."""
    m = 40
    theta = rng.uniform(0, 2 * np.pi, m)
    r = rng.uniform(0.5, 1.5, m)
    w = r[:, None] * np.column_stack([np.cos(theta), np.sin(theta)])
    model = NetworkModel(r, w, density_teacher)
    n = np.arange(0, 4001)
    kappa = np.where(n % 2 == 0, 1 / (np.pi**2 * (np.where(n == 1, 2.0, n.astype(float) ** 2) - 1) ** 2), 0.0)
    kappa[1] = 1 / 16
    nu_n = (r**2 * np.exp(-1j * np.outer(n, theta))).sum(axis=1) / m
    tf = 2 * np.pi * np.arange(64) / 64
    star_n = np.zeros(n.size, complex)
    star_n[:32] = (np.fft.fft(trig_density(tf)) / 64)[:32]   # exact for a trigonometric polynomial of degree 3
    multiplicity = np.where(n == 0, 1.0, 2.0)
    energy = 0.5 * np.sum(multiplicity * kappa * np.abs(nu_n - star_n) ** 2)
    assert model.energy(model.initial_state()) == pytest.approx(energy, rel=1e-9)


# ----------------------------------------------------------------------------- the flow
def test_balance_is_conserved_by_the_flow(rng):
    """a_i² − |w_i|² is invariant; the integrated flow keeps it to about the error tolerance while
    a_i² and |w_i|² themselves change by O(1)."""
    a, w = random_network(rng, 24, 2)
    model = NetworkModel(a, w, NetworkTeacher(*random_network(rng, 8, 2, scale=2.0)))
    solver = Solver(model, scheme="rk4", rtol=1e-9, atol=1e-12)
    start = solver.u.copy()
    solver.advance(5.0)
    drift = solver.diagnostics()["balance_drift"]
    change = np.max(np.abs(solver.u[:, 0] ** 2 - start[:, 0] ** 2))
    assert change > 0.1
    assert drift < 1e-7
    assert solver.energy < 0.5 * solver.energy0
    assert abs(solver.diagnostics()["energy_balance"]) < 1e-8 * solver.energy0


def test_linear_mode_rates_and_the_odd_null_space():
    """Near a uniform teacher of mass M* = 1.5, mode n of ν decays at M*(n² + 2)κ_n (the WFR rate with
    α = 2 and time as in θ̇ = −m∇L), within 1e-3 relative, for n = 1, 2, 4, 6; the odd modes
    n = 3, 5 are not damped (drift below 1e-4 to t = 300). m = 256 balanced neurons on a grid of
    directions, all modes perturbed at once (amplitude 1e-6: their interactions are O(1e-6)
    relative), rk4 at dt = 1 (:func:`sobolev_flow.validation.network_mode_rates`)."""
    rates, drifts = network_mode_rates(width=256, mass=1.5, dt=1.0)
    assert sorted(rates) == [1, 2, 4, 6] and sorted(drifts) == [3, 5]
    kappa = {1: 1 / 16, 2: 1 / (9 * np.pi**2), 4: 1 / (225 * np.pi**2), 6: 1 / (1225 * np.pi**2)}
    for n, (measured, predicted) in rates.items():
        assert predicted == pytest.approx(1.5 * (n * n + 2) * kappa[n], rel=1e-15), n
        assert measured == pytest.approx(predicted, rel=1e-3), n
    for n, drift in drifts.items():
        assert drift < 1e-4, n


# ----------------------------------------------------------------------------- training schemes
@pytest.fixture
def small_problem():
    return training_problem()


def test_gradient_descent_tracks_the_flow_at_first_order():
    """‖θ_GD(T) − θ(T)‖ = O(γ): the fitted order over γ = T/10 … T/80 (T = 4) is 1 ± 0.1."""
    order, errors = gradient_descent_errors([0.4, 0.2, 0.1, 0.05], t_end=4.0)
    assert abs(order - 1) < 0.1, (order, errors)


def test_proximal_step_matches_gradient_descent_to_second_order():
    """One proximal step and one GD step from the same state differ by O(γ²): fitted order 2 ± 0.1
    over γ = 0.2 … 0.025; each step solves the optimality condition θ = u − γ m∇L(θ) to prox_tol."""
    order, differences, residual = proximal_step_differences([0.2, 0.1, 0.05, 0.025], prox_tol=1e-13)
    assert residual <= 1e-13
    assert abs(order - 2) < 0.1, (order, differences)


def test_prox_scheme_runs_through_the_solver(small_problem):
    a, w, teacher = small_problem
    solver = Solver(NetworkModel(a, w, teacher), scheme="prox", dt=0.5)
    solver.advance(5.0)
    d = solver.diagnostics()
    assert d["energy"] < 0.5 * solver.energy0
    assert d["balance_drift"] < 0.05     # not invariant for backward Euler, but O(γ²) per step


# ----------------------------------------------------------------------------- the command line
NETWORK = ["model.method=network", "grid.d=1", "grid.n=64", "network.width=64", "time.t_end=5", "fft.threads=1"]


def run_cli(settings, tmp_path, monkeypatch, capsys, options=("-o", "net.h5")):
    from sobolev_flow.run import main

    monkeypatch.chdir(tmp_path)
    code = main(["--quiet", *options, "--set", *NETWORK, *settings])
    return code, capsys.readouterr()


def test_cli_writes_the_network_datasets(tmp_path, monkeypatch, capsys):
    import h5py

    code, out = run_cli(['network.teacher={family="bumps"}', "network.teacher_mass=2.0"], tmp_path, monkeypatch, capsys)
    assert code == 0, out.err
    with h5py.File(tmp_path / "net.h5") as f:
        t = f["snapshots/t"][:]
        a, w, mu = f["snapshots/output_weights"][:], f["snapshots/input_weights"][:], f["snapshots/mu"][:]
        loss = f["diagnostics/loss"][:]
        energy = f["diagnostics/energy"][:]
    assert a.shape == (len(t), 64) and w.shape == (len(t), 64, 2) and mu.shape == (len(t), 64)
    # the density estimate carries the mass (1/m) Σ |w_i|² of ν; the loss is the energy and decreases
    np.testing.assert_allclose(mu.mean(axis=1), np.einsum("tij,tij->t", w, w) / 64, rtol=1e-12)
    assert np.array_equal(loss, energy) and np.all(np.diff(loss) < 0)
    np.testing.assert_allclose(a, np.linalg.norm(w, axis=2), atol=1e-6)   # balanced at the start, and it stays so


def test_cli_trains_a_network_on_the_sphere_against_a_random_teacher(tmp_path, monkeypatch, capsys):
    import h5py

    code, out = run_cli(["network.d=2", "network.width=40", "network.init=random", "network.scale=0.5",
                         'network.teacher={family="network", width=5, seed=2, scale=2.0}'], tmp_path, monkeypatch,
                        capsys)
    assert code == 0, out.err
    with h5py.File(tmp_path / "net.h5") as f:
        assert f["snapshots/input_weights"].shape[1:] == (40, 3) and "mu" not in f["snapshots"]
        loss, drift = f["diagnostics/loss"][:], f["diagnostics/balance_drift"][:]
    assert loss[-1] < 0.5 * loss[0] and np.max(drift) < 1e-6


def bad_network_inputs(tmp_path):
    np.savez(tmp_path / "nan.npz", a=np.ones(64), w=np.column_stack([np.ones(64), np.full(64, np.nan)]))
    np.savez(tmp_path / "teacher3.npz", a=np.ones(5), w=np.ones((5, 3)))
    return {
        "width": (["network.width=0"], r"^error: network\.width=0: expected a value >= 1$"),
        "d": (["network.d=3"], r"^error: network\.d=3: expected one of 1, 2$"),
        "non-finite": (["network.init=nan.npz"],
                       r"^error: network\.init='nan\.npz': w\[0, 1\]=nan is not finite$"),
        "teacher shape": (["network.teacher=teacher3.npz"],
                          r"^error: network\.teacher='teacher3\.npz': a of shape \(5,\) and w of shape \(5, 3\), "
                          r"expected \(m,\) and \(m, 2\)$"),
        "gamma zero": (["time.scheme=gd", "time.dt=0"], r"^error: time\.dt=0: expected a value > 0$"),
        "gamma negative": (["time.scheme=prox", "time.dt=-0.5"], r"^error: time\.dt=-0\.5: expected a value > 0$"),
        "gamma missing": (["time.scheme=gd"], r"^error: time\.scheme='gd': needs the learning rate time\.dt > 0$"),
        "prox_tol": (["time.scheme=prox", "time.dt=0.5", "network.prox_tol=0"],
                     r"^error: network\.prox_tol=0: expected a value > 0$"),
        "teacher init": (['network.teacher={family="network", init="lattice"}'],
                         r"^error: network\.teacher\.init='lattice': expected one of random, grid$"),
        "teacher width": (['network.teacher={family="network", width=0}'],
                          r"^error: network\.teacher\.width=0: expected a value >= 1$"),
        "density teacher in 2-D": (["network.d=2"], r"^error: network\.teacher='uniform': a density teacher lives "
                                                    r"on the circle and needs network\.d=1"),
    }


def test_cli_bad_network_input_exits_2_with_one_line_and_touches_nothing(tmp_path, monkeypatch, capsys):
    import re

    (tmp_path / "net.h5").write_bytes(b"precious")
    cases = bad_network_inputs(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for name, (settings, pattern) in cases.items():
        code, out = run_cli(settings, tmp_path, monkeypatch, capsys, options=("--overwrite", "-o", "net.h5"))
        lines = out.err.strip().splitlines()
        assert code == 2, (name, out.err)
        assert len(lines) == 1 and re.search(pattern, lines[0]), (name, out.err)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


# ----------------------------------------------------------------------------- the mean-field limit
def test_loss_of_wide_networks_converges_to_the_wfr_pde():
    """d = 1, balanced neurons on an m-point grid with |w_i|² = μ0(θ_i): the loss curve tends to
    the energy of the WFR PDE (relu kernel, α = 2, the same μ0 and ν*) as m grows. The error is
    dominated by the self-energy of the discrete measure, ½ Σ_{j≠0} κ_{jm} M² ~ M²/(π² m⁴): the fitted
    order in m over m = 8 … 64 is at least 3.5 (4.0 measured), and the curves agree to 1e-8 at m = 64."""
    from sobolev_flow.validation import network_limit_errors

    widths = [8, 16, 32, 64]
    errors, energy = network_limit_errors(widths, [0.0, 1.0, 3.0, 10.0])
    assert energy[-1] < 0.2 * energy[0]      # the flow has moved: the curves are compared along it
    order = -np.polyfit(np.log(widths), np.log(errors), 1)[0]
    assert order >= 3.5, (order, errors)
    assert errors[-1] < 1e-8


def test_cli_restart_continues_a_network_run_exactly(tmp_path, monkeypatch, capsys):
    """A run to t = 3 continued to t = 6 ends where a run straight to t = 6 does (the state is
    the checkpoint), with the balance kept: t = 3 is a snapshot time of both, so both stand on it."""
    from sobolev_flow import open_run

    settings = ["network.init=random", "network.scale=0.5", 'network.teacher={family="bumps"}', "output.snapshots=[3.0]",
                "time.rtol=1e-7"]
    assert run_cli(settings + ["time.t_end=3"], tmp_path, monkeypatch, capsys, options=("-o", "a.h5"))[0] == 0
    assert run_cli(settings + ["time.t_end=6"], tmp_path, monkeypatch, capsys, options=("--restart", "-o", "a.h5"))[0] == 0
    assert run_cli(settings + ["time.t_end=6"], tmp_path, monkeypatch, capsys, options=("-o", "b.h5"))[0] == 0
    a, b = open_run(tmp_path / "a.h5"), open_run(tmp_path / "b.h5")
    assert a.t[-1] == b.t[-1] == 6.0
    np.testing.assert_allclose(a.snapshots["input_weights"][-1], b.snapshots["input_weights"][-1], atol=1e-9)
    assert a.diagnostics["loss"][-1] < 0.5 * a.diagnostics["loss"][0]
    assert np.max(a.diagnostics["balance_drift"]) < 1e-6


# ----------------------------------------------------------------------------- the theory's decay law
def test_relu_kernel_on_the_sphere_has_sobolev_order_five_halves():
    """On S², the eigenvalues of k(u, v) (Funk–Hecke: λ_ℓ ∝ ∫_0^π K(φ) P_ℓ(cos φ) sin φ dφ with
    K(φ) = (sin φ + (π − φ) cos φ)/(6π) for unit vectors) decay like ℓ^{−(d+3)} = ℓ^{−5} on even ℓ and
    vanish on odd ℓ ≥ 3: the Sobolev case s = 5/2 the model's predictions use."""
    from scipy.special import eval_legendre

    phi, weights = np.polynomial.legendre.leggauss(400)
    phi, weights = 0.5 * np.pi * (phi + 1), 0.5 * np.pi * weights
    kernel = (np.sin(phi) + (np.pi - phi) * np.cos(phi)) / (6 * np.pi)
    ell = np.arange(0, 81)
    lam = np.array([np.sum(weights * kernel * eval_legendre(n, np.cos(phi)) * np.sin(phi)) for n in ell])
    odd = ell[(ell % 2 == 1) & (ell >= 3)]
    assert np.max(np.abs(lam[odd])) < 1e-12 * lam[0]
    even = np.arange(40, 81, 2)
    order = -np.polyfit(np.log(even), np.log(lam[even]), 1)[0]
    model = NetworkModel(*initial_network(8, 2, "random"), NetworkTeacher(*initial_network(4, 2, "random", seed=1)))
    assert order == pytest.approx(2 * model.sobolev_order, rel=2e-2)


def fibonacci_teacher(width):
    """Balanced unit neurons on the Fibonacci lattice of S²: the uniform measure of mass 1 up to a
    discreteness error of order width^{-5/4} in the loss's norm."""
    i = np.arange(width) + 0.5
    z = 1 - 2 * i / width
    angle = np.pi * (3 - np.sqrt(5)) * i
    w = np.column_stack([np.sqrt(1 - z * z) * np.cos(angle), np.sqrt(1 - z * z) * np.sin(angle), z])
    return np.ones(width), w


def test_predictions_follow_the_theory_near_a_uniform_teacher():
    """The loss law t^{−(2s + p − d)/(2s − 2)}, written out: kink data on the circle (s = 2, p = 4,
    d = 1): 3.5; i.i.d. random directions on S² against a uniform teacher (s = 5/2, white noise
    p = 0, d = 2): 1. No law for a non-uniform teacher, unbalanced neurons or an unknown spectrum."""
    from sobolev_flow.models.network import perturbation_spectrum

    uniform = DensityTeacher(Torus((32,)), np.full(32, 1.0))
    circle = NetworkModel(*initial_network(64, 1, "grid"), uniform, spectrum=perturbation_spectrum("density", 1, True,
                                                                                                    "kink"))
    assert circle.predictions() == {"energy": ("power", (2 * 2 + 4 - 1) / (2 * 2 - 2))}
    sphere = NetworkModel(*initial_network(64, 2, "random"), NetworkTeacher(*fibonacci_teacher(400)),
                          spectrum=perturbation_spectrum("random", 2, True))
    assert sphere.predictions() == {"energy": ("power", pytest.approx((2 * 2.5 + 0 - 2) / (2 * 2.5 - 2)))}
    few = NetworkTeacher(*initial_network(5, 2, "random", seed=2))
    assert NetworkModel(*initial_network(64, 2, "random"), few, spectrum=(0.0, 2)).predictions() == {}
    assert perturbation_spectrum("random", 2, balanced=False) is None
    assert perturbation_spectrum("grid", 1, True) is None
    bump = DensityTeacher(Torus((32,)), 1 + 0.5 * np.cos(Torus((32,)).mesh()[0]))
    assert NetworkModel(*initial_network(64, 1, "grid"), bump, spectrum=(4.0, 1)).predictions() == {}


def test_cli_records_the_prediction_and_rates_compares_it(tmp_path, monkeypatch, capsys):
    """A run from kink data against the uniform teacher records E ~ t^-3.5, and `rates` lists it."""
    from sobolev_flow import open_run
    from sobolev_flow.rates import describe, rate_table

    code, out = run_cli(["network.init=density", "initial.density=kink"], tmp_path, monkeypatch, capsys)
    assert code == 0, out.err
    run = open_run(tmp_path / "net.h5")
    assert run.theory == {"energy": ("power", 3.5)}
    assert rate_table(run)[0]["predicted"] == 3.5
    # S²: i.i.d. random directions against a teacher on the Fibonacci lattice, (5 + 0 − 2)/(5 − 2) = 1
    code, out = run_cli(["network.d=2", "network.init=random", "time.t_end=1",
                         'network.teacher={family="network", width=400, init="grid"}'], tmp_path, monkeypatch, capsys,
                        options=("-o", "sphere.h5"))
    assert code == 0, out.err
    sphere = open_run(tmp_path / "sphere.h5")
    assert sphere.theory == {"energy": ("power", 1.0)}
    assert "teacher: a network of width 400 with a grid of directions;" in describe(sphere)


# ----------------------------------------------------------------------------- memory
def test_memory_estimate_bounds_the_measured_peak_of_an_evaluation():
    """The estimate of one evaluation (the blocked kernel sums, student and teacher) lies between the
    peak tracemalloc measures and twice it, for one and two workers, d = 1 (density teacher) and d = 2."""
    import tracemalloc

    grid = Torus((64,))
    teachers = {1: DensityTeacher(grid, trig_density(grid.mesh()[0])),
                2: NetworkTeacher(*initial_network(300, 2, "random", seed=2))}
    for d, threads in ((1, 1), (2, 1), (2, 2)):
        teachers[d].threads = threads
        model = NetworkModel(*initial_network(2000, d, "random", seed=1), teachers[d], threads=threads)
        u, out = model.initial_state(), model.empty()
        tracemalloc.start()
        model.explicit(u, out)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak <= model.evaluation_memory() <= 2 * peak, (d, threads, peak, model.evaluation_memory())


def test_dry_run_prints_the_network_memory(tmp_path, monkeypatch, capsys):
    """--dry-run of a network reports its own estimate: O(m), far below an m × m kernel matrix, at
    least the 13 state arrays of rk4 with step doubling, and no grid."""
    import re

    m = 50_000
    code, out = run_cli(["network.d=2", f"network.width={m}", "network.init=random", "time.scheme=rk4",
                         'network.teacher={family="network", width=100}'], tmp_path, monkeypatch, capsys,
                        options=("--dry-run",))
    assert code == 0, out.err
    line = out.out.strip().splitlines()[-1]
    found = re.fullmatch(r"# estimated working memory: ([\d.]+) MiB, outputs ([\d.]+) MiB of it "
                         rf"\(network: width {m}, d = 2, scheme rk4\)", line)
    assert found, line
    need = float(found.group(1)) * 2**20
    assert 13 * 8 * m * 4 < need < 0.05 * 8 * m * m
    assert list(tmp_path.iterdir()) == []
