"""Validation studies that every solver change must keep passing, as functions and a report.

``python -m sobolev_flow.validation`` prints, for every registered scheme, the observed order
of accuracy on smooth nonlinear problems in 1-D and 2-D and under the Wasserstein–Fisher–Rao
geometry, the error against the exact 1-D s = 1 solution, the error of the linear decay rates and
the order of the energy-balance residual; then the measured WFR mode rates against M(|k|² + α)K̂_k.
The test suite asserts the same quantities against their nominal values.
"""

from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np
from scipy.integrate import romb

from .grid import Torus
from .initial import bumps
from .kernels import GaussianKernel, ReluKernel
from .models.spectral import SpectralModel
from .solver import Solver, solve
from .steppers import SCHEMES, TRAINING_SCHEMES

__all__ = ["ORDER_PROBLEMS", "STABILITY_PROBLEMS", "stable_at_cfl", "amplification", "imaginary_interval", "observed_order", "energy_balance_order",
           "linear_rate_errors", "exact_solution_error", "fitted_order", "report", "WFR_RATE_STUDIES", "wfr_linear_rates",
           "NETWORK_LIMIT", "network_limit_errors", "network_mode_rates", "NETWORK_TRAINING",
           "training_problem", "gradient_descent_errors", "proximal_step_differences"]

T = 2.0

#: Smooth nonlinear problems (grid, s, μ0 as a function of the mesh, model options) with O(1)
#: amplitude, so that the quadratic term matters. "wfr": the Wasserstein–Fisher–Rao flow with
#: a Gaussian kernel (K̂_0 ≠ 0) towards a non-uniform target of another mass.
ORDER_PROBLEMS = {
    "1d": (Torus((32,)), 2.0, lambda x: 1 + 0.5 * np.sin(x[0]) + 0.3 * np.cos(2 * x[0] + 1), {}),
    "2d": (Torus((16, 16)), 1.5, lambda x: 1 + 0.4 * np.sin(x[0]) * np.cos(x[1]) + 0.3 * np.cos(x[0] + 2 * x[1]), {}),
    "wfr": (Torus((32,)), None, lambda x: 1.5 + 0.5 * np.sin(x[0]) + 0.3 * np.cos(2 * x[0] + 1),
            {"kernel": GaussianKernel(0.5), "geometry": {"name": "wfr", "alpha": 2.0},
             "nu": lambda x: 1 + 0.3 * np.cos(x[0]) + 0.2 * np.sin(3 * x[0])}),
}

#: Modes of the linear-rate study: no sum or difference of two of them is (±) a third.
LINEAR_MODES = ((1, 0), (0, 2), (3, 1), (2, -3))


#: Problems of the stability measurement (grid, s), from the default bump data: 1-D and 2-D,
#: s = 1 and 2. The limit found falls as the grid is refined (ETDRK4, s = 2, 400 steps: 0.804
#: on 128², 0.725 on 256²): a high mode at the fastest point is carried along with the flow
#: over fewer cells per step on a finer grid, so it grows there for longer, and the limit tends
#: to the frozen-coefficient bound of the scheme's stability interval on the imaginary axis.
#: The finest grid affordable is used where it binds.
STABILITY_PROBLEMS = {
    "1d s=1": (Torus((256,)), 1.0),
    "1d s=2": (Torus((256,)), 2.0),
    "2d s=1": (Torus((128, 128)), 1.0),
    "2d s=2": (Torus((256, 256)), 2.0),
}


#: Steps of the stability measurement: growth of the high modes by less than 10³ over them means an
#: amplification per step below 1.018.
STABILITY_STEPS = 400


def stable_at_cfl(scheme: str, problem: str, cfl: float, steps=STABILITY_STEPS, noise=1e-6, growth=1e3) -> bool:
    """Whether ``steps`` steps at the step bound h = cfl·min(dx)/max|∇ψ| (and the scheme's linear
    stability bound, as the solver applies it) stay bounded, from the bump data of a
    :data:`STABILITY_PROBLEMS` entry with every grid value perturbed by ``noise`` (relative,
    seeded), which sets the starting level of the highest modes.

    The run is adaptive with an error tolerance (rtol = 1e3) that never limits the step, so every
    step is the bound; the amplification of a high mode per step depends on cfl alone (its
    eigenvalue is about i k·∇ψ, h k max|∇ψ| ≤ cfl π), not on how far the flow has relaxed, so the
    run is not stopped when it has. Bounded means: no step rejected, the state finite,
    ‖ρ‖_{L²} ≤ 2‖ρ_0‖_{L²}, and the part of ‖ρ‖² in the top third of resolved modes never more than
    ``growth`` times its starting value (where an instability starts)."""
    grid, s = STABILITY_PROBLEMS[problem]
    mu0 = bumps(grid) * (1 + noise * np.random.default_rng(0).standard_normal(grid.shape))
    model = SpectralModel(grid, mu0, s=s, threads=1, normalize=True)
    solver = Solver(model, scheme=scheme, rtol=1e3, atol=1e-300, cfl=cfl)
    norm0 = model.norm(solver.u)
    tail0 = solver.diagnostics()["tail_fraction"] * norm0**2
    try:
        with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
            for _ in range(steps):
                solver.step(np.inf)
                norm = model.norm(solver.u)
                if solver.rejected or not norm <= 2 * norm0:
                    return False
                if solver.diagnostics()["tail_fraction"] * norm**2 > growth * tail0:
                    return False
    except (FloatingPointError, RuntimeError):
        return False
    return True


class _Scalar:
    """The test equation u' = λu as a one-entry model: N(u) = λu, and L = 0 for the families
    that need a linear part."""

    def __init__(self, lam: complex, family: str):
        self.lam = lam
        self.linear = None if family == "explicit" else np.zeros(1, complex)

    def empty(self) -> np.ndarray:
        return np.empty(1, complex)

    def explicit(self, u, out, monitor=False):
        np.multiply(self.lam, u, out=out)


def amplification(scheme: str, z: complex) -> float:
    """|R(z)|: the factor one step of ``scheme`` multiplies u by on u' = λu with hλ = z taken by
    the explicit part (L = 0), computed by the scheme's own generic algorithm."""
    scheme = SCHEMES[scheme]
    model = _Scalar(z, scheme.family)
    u, n0, out = np.ones(1, complex), np.empty(1, complex), np.empty(1, complex)
    model.explicit(u, n0)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)  # φ-functions of L = 0
        scheme.stepper(model).step(u, 1.0, n0, out)
    return float(abs(out[0]))


def imaginary_interval(scheme: str, top=4.0, resolution=0.05, tol=1e-14) -> float:
    """β_I: the largest β ≤ ``top`` with |R(iy)| ≤ 1 (+ ``tol``) for 0 < y ≤ β, scanned in steps of
    ``resolution`` and bisected to 1e-9; 0 when |R(iy)| > 1 already at y = ``resolution``: the
    explicit part's stability interval on the imaginary axis.

    A high mode k advected with velocity v has the eigenvalue i k·v, so with frozen coefficients
    an explicit step is stable while h max_x Σ_j k_max,j |∂_jψ| ≤ β_I; with k_max,j dx_j ≤ π and
    Σ_j |∂_jψ| ≤ √d |∇ψ|, that is cfl ≤ β_I/(π√d) in the units of the CFL bound."""
    def stable(y):
        return amplification(scheme, 1j * y) <= 1 + tol

    low = 0.0
    while low + resolution <= top and stable(low + resolution):
        low += resolution
    if low + resolution > top:
        return top
    if low == 0.0:
        return 0.0
    high = low + resolution
    while high - low > 1e-9:
        middle = 0.5 * (low + high)
        low, high = (middle, high) if stable(middle) else (low, middle)
    return low


def fitted_order(steps, errors, t_end=T) -> float:
    """Least-squares slope of log |error| against log h, h = t_end / steps."""
    return float(np.polyfit(np.log(t_end / np.asarray(steps)), np.log(np.abs(errors)), 1)[0])


def _final(grid, s, mu0, scheme, n, t_end=T, **options):
    return solve(grid, s, mu0, [t_end], scheme=scheme, dt=t_end / n, threads=1, **options).mu[-1]


def order_steps(scheme) -> list:
    """Fixed step counts in the asymptotic range of a scheme of this order."""
    return [8, 16, 32, 64] if SCHEMES[scheme].order >= 4 else [16, 32, 64, 128]


def observed_order(scheme: str, problem: str) -> tuple:
    """(order, errors): max-norm errors at T = 2 for the steps of :func:`order_steps`, against
    a reference from a *different* scheme (rk4, or etdrk4 for rk4) at 1024 steps."""
    grid, s, density, options = ORDER_PROBLEMS[problem]
    mesh = grid.mesh()
    mu0 = np.broadcast_to(density(mesh), grid.shape).copy()
    options = dict(options)
    if "nu" in options:
        options["nu"] = np.broadcast_to(options["nu"](mesh), grid.shape).copy()
    reference = _final(grid, s, mu0, "etdrk4" if scheme == "rk4" else "rk4", 1024, **options)
    steps = order_steps(scheme)
    errors = [float(np.max(np.abs(_final(grid, s, mu0, scheme, n, **options) - reference))) for n in steps]
    return fitted_order(steps, errors), errors


def energy_balance_order(scheme: str) -> tuple:
    """(order, residuals) of E(T) − E(0) + ∫_0^T D dt (Romberg's rule over the fixed steps),
    2-D, s = 2; the residual is the time-discretisation error alone."""
    grid = Torus((32, 32))
    x = grid.mesh()
    mu0 = np.broadcast_to(1 + 0.7 * np.sin(x[0]) * np.cos(x[1]) + 0.25 * np.cos(x[0] + 2 * x[1]), grid.shape).copy()
    steps = [16, 32, 64] if SCHEMES[scheme].order >= 4 else [128, 256, 512]
    residuals = []
    for n in steps:
        d = solve(grid, 2.0, mu0, [T], scheme=scheme, dt=T / n, threads=1).diagnostics
        residuals.append(float(d["energy"][-1] - d["energy"][0] + romb(d["dissipation"], dx=T / n)))
    return fitted_order(steps, residuals), residuals


def linear_rate_errors(scheme: str, s: float, amplitude=1e-4, t_end=T) -> dict:
    """{k: relative error of the measured decay rate of mode k against |k|^{2−2s}}, 2-D 32²,
    from μ0 = 1 + amplitude Σ_k cos(k·x), adaptive steps."""
    grid = Torus((32, 32))
    x, y = grid.mesh()
    mu0 = 1 + amplitude * sum(np.cos(k1 * x + k2 * y) for k1, k2 in LINEAR_MODES)
    rtol = 1e-10 if SCHEMES[scheme].order >= 4 else 1e-7
    start, end = (grid.to_spectral(mu) for mu in solve(grid, s, mu0, [0.0, t_end], scheme=scheme, rtol=rtol).mu)
    errors = {}
    for k1, k2 in LINEAR_MODES:
        index = (k1 % 32, k2) if k2 >= 0 else (-k1 % 32, -k2)  # the half layout holds k2 >= 0
        rate = -np.log(end[index].real / start[index].real) / t_end
        errors[(k1, k2)] = float(rate / (k1**2 + k2**2) ** (1 - s) - 1)
    return errors


#: WFR mode-rate studies: (grid, kernel, modes, target density M); no sum or difference of two
#: modes is (±) a third, so the modes do not interact at second order.
WFR_RATE_STUDIES = {
    "relu 1-D": (Torus((32,)), ReluKernel(), ((1,), (4,), (10,)), 1.5),
    "gaussian 2-D": (Torus((32, 32)), GaussianKernel(0.6), LINEAR_MODES, 1.0),
}


def wfr_linear_rates(study: str, alpha=2.0, amplitude=1e-4, t_end=T) -> dict:
    """{k: (measured, predicted)} decay rates of the modes of a :data:`WFR_RATE_STUDIES` entry
    under the Wasserstein–Fisher–Rao flow around the uniform target of density M, from
    μ0 = M(1 + amplitude Σ_k cos(k·x)) (rtol 1e-11): predicted M(|k|² + α)K̂_k, measured
    −log(ρ_k(T)/ρ_k(0))/T."""
    grid, kernel, modes, mass = WFR_RATE_STUDIES[study]
    x = grid.mesh()
    mu0 = mass * (1 + amplitude * sum(np.cos(sum(kj * xj for kj, xj in zip(k, x))) for k in modes))
    mu0 = np.broadcast_to(mu0, grid.shape).copy()
    sol = solve(grid, None, mu0, [0.0, t_end], nu=np.full(grid.shape, mass), kernel=kernel,
                geometry={"name": "wfr", "alpha": alpha}, rtol=1e-11)
    start, end = (grid.to_spectral(mu) for mu in sol.mu)
    weights = kernel.weights(grid)
    out = {}
    for k in modes:
        index = tuple(kj % n for kj, n in zip(k, grid.shape))
        if k[-1] < 0:  # the half layout holds k_last >= 0
            index = tuple(-kj % n for kj, n in zip(k, grid.shape))
        measured = -np.log(end[index].real / start[index].real) / t_end
        out[k] = (float(measured), float(mass * (sum(kj**2 for kj in k) + alpha) * weights[index]))
    return out


def exact_solution_error(scheme: str, exact, n=256, t_end=2.0) -> float:
    """Max-norm error at t_end of the 1-D s = 1 flow from μ0 = 1 + ½ sin x + 0.2 cos 2x against
    ``exact(x, t)``; rtol 1e-12 for fourth-order schemes, 1e-7 otherwise (a second-order scheme
    with its first-order embedded estimate takes steps ∝ rtol^{1/2}: about 4000 here)."""
    grid = Torus((n,))
    (x,) = grid.mesh()
    rtol = 1e-12 if SCHEMES[scheme].order >= 4 else 1e-7
    mu = solve(grid, 1.0, 1 + 0.5 * np.sin(x) + 0.2 * np.cos(2 * x), [t_end], scheme=scheme, rtol=rtol).mu[-1]
    return float(np.max(np.abs(mu - exact(x, t_end))))


#: The network-limit study (d = 1): the teacher density ν*, the initial measure μ0 and the times.
NETWORK_LIMIT = {
    "nu": lambda theta: 1 + 0.4 * np.cos(2 * theta) + 0.3 * np.sin(theta),
    "mu0": lambda theta: 1 + 0.5 * np.sin(2 * theta + 1) + 0.2 * np.cos(theta),
}


def network_limit_errors(widths, times, n=64) -> tuple:
    """max over ``times`` of |L_m(t) − E(t)| for balanced width-m networks on the circle with
    |w_i|² = μ0(θ_i) on an m-point grid of directions, E the energy of the WFR PDE (relu kernel,
    α = 2) from μ0 towards ν* (:data:`NETWORK_LIMIT`) on an n-point grid; both integrated with
    rtol = 1e-11. Returns (errors, E at the times)."""
    from .models.network import DensityTeacher, NetworkModel, initial_network
    from .solver import Solver

    grid = Torus((n,))
    (theta,) = grid.mesh()
    nu, mu0 = NETWORK_LIMIT["nu"](theta), NETWORK_LIMIT["mu0"](theta)
    times = np.asarray(times, dtype=float)
    pde = solve(grid, None, mu0, times, nu=nu, kernel=ReluKernel(), geometry={"name": "wfr", "alpha": 2.0},
                rtol=1e-11, atol=1e-15).diagnostics
    energy = np.array([pde["energy"][np.flatnonzero(pde["t"] == t)[0]] for t in times])
    teacher = DensityTeacher(grid, nu)
    errors = []
    for m in widths:
        solver = Solver(NetworkModel(*initial_network(m, 1, "density", mu0=mu0, grid=grid), teacher),
                        scheme="rk4", rtol=1e-11, atol=1e-15)
        loss = []
        for t in times:
            solver.advance(t)
            loss.append(solver.energy)
        errors.append(float(np.max(np.abs(np.array(loss) - energy))))
    return np.array(errors), energy


def network_mode_rates(width=256, mass=1.5, amplitude=1e-6, modes=(1, 2, 3, 4, 5, 6), dt=1.0, t_end=300.0,
                       every=2.0) -> tuple:
    """Linear mode rates of the network model near a uniform teacher of mass M* (``mass``).

    ``width`` balanced neurons on a grid of directions θ_i with |w_i|² = M*(1 + ε Σ_n cos(nθ_i + 0.3n))
    (ε = ``amplitude``: every mode perturbed at once, their interactions O(ε) relative), against
    the density teacher ν* ≡ M*; rk4 at the fixed step ``dt`` to ``t_end``, the Fourier
    coefficients A_n(t) = |Σ_i |w_i|² e^{−inθ_i}| of the measure every ``every``. Mode n of ν
    decays at M*(n² + 2)κ_n (the WFR rate with α = 2 and time as in θ̇ = −m∇L, κ_n the weights of
    :class:`~sobolev_flow.kernels.ReluKernel`); the measured rate is the least-squares slope of −log A_n over
    t ≤ 3/rate (a decay by e³ at most: the amplitude stays well above the coupling).

    Returns
    -------
    rates : dict
        {n: (measured, M*(n² + 2)κ_n)} for the modes with κ_n > 0.
    drifts : dict
        {n: |A_n(t_end)/A_n(0) − 1|} for the odd modes n ≥ 3 (the kernel's null space: not damped).
    """
    from .models.network import DensityTeacher, NetworkModel

    modes = np.asarray(modes)
    theta = 2 * np.pi * (np.arange(width) + 0.5) / width
    r2 = mass * (1 + amplitude * np.cos(np.outer(theta, modes) + 0.3 * modes).sum(axis=1))
    x = np.column_stack([np.cos(theta), np.sin(theta)])
    model = NetworkModel(np.sqrt(r2), np.sqrt(r2)[:, None] * x, DensityTeacher(Torus((16,)), np.full(16, mass)))
    solver = Solver(model, scheme="rk4", dt=dt)
    times, coefficients = np.arange(0.0, t_end + every / 2, every), []
    for t in times:
        solver.advance(t)
        angles, masses = model.measure(solver.u)
        coefficients.append(np.exp(-1j * np.outer(modes, angles)) @ masses)
    amplitude_n = np.abs(np.array(coefficients))
    kappa = ReluKernel().weights(Torus((2 * int(modes.max()) + 2,)))  # κ_n at n = 0 … max(modes) + 1
    rates, drifts = {}, {}
    for j, n in enumerate(modes.tolist()):
        if kappa[n] == 0.0:
            drifts[n] = float(abs(amplitude_n[-1, j] / amplitude_n[0, j] - 1))
            continue
        rate = mass * (n * n + 2) * kappa[n]
        window = times <= 3 / rate
        measured = -np.polyfit(times[window], np.log(amplitude_n[window, j]), 1)[0]
        rates[n] = (float(measured), float(rate))
    return rates, drifts


#: The training-scheme study (d = 1): the teacher density ν* on a 64-point grid and the student,
#: 16 neurons with random directions, |w_i| = 0.7, balanced (seed 3).
NETWORK_TRAINING = {
    "nu": lambda theta: 1 + 0.5 * np.cos(2 * theta) + 0.3 * np.sin(theta) - 0.2 * np.cos(3 * theta + 0.4),
    "n": 64, "width": 16, "scale": 0.7, "seed": 3,
}


def training_problem() -> tuple:
    """(a, w, teacher) of :data:`NETWORK_TRAINING`: the student's weights and the density teacher."""
    from .models.network import DensityTeacher, initial_network

    grid = Torus((NETWORK_TRAINING["n"],))
    (theta,) = grid.mesh()
    a, w = initial_network(NETWORK_TRAINING["width"], 1, "random", scale=NETWORK_TRAINING["scale"],
                           seed=NETWORK_TRAINING["seed"])
    return a, w, DensityTeacher(grid, NETWORK_TRAINING["nu"](theta))


def gradient_descent_errors(gammas=(0.4, 0.2, 0.1, 0.05), t_end=4.0) -> tuple:
    """(order, errors): max_i |θ_GD(T) − θ(T)| of gradient descent θ ← θ − γ m∇L (scheme ``gd`` at
    the learning rate γ) against the flow θ̇ = −m∇L (rk4, rtol 1e-11) at T = ``t_end``, for the
    problem of :func:`training_problem`; the order is the least-squares slope of log error
    against log γ (forward Euler: 1)."""
    from .models.network import NetworkModel

    a, w, teacher = training_problem()
    flow = Solver(NetworkModel(a, w, teacher), scheme="rk4", rtol=1e-11, atol=1e-14)
    flow.advance(t_end)
    errors = []
    for gamma in gammas:
        gd = Solver(NetworkModel(a, w, teacher), scheme="gd", dt=gamma)
        gd.advance(t_end)
        errors.append(float(np.max(np.abs(gd.u - flow.u))))
    return float(np.polyfit(np.log(gammas), np.log(errors), 1)[0]), errors


def proximal_step_differences(gammas=(0.2, 0.1, 0.05, 0.025), prox_tol=1e-13) -> tuple:
    """(order, differences, residual): max_i |θ_prox − θ_GD| of one proximal step (θ = u − γ m∇L(θ),
    solved to ``prox_tol``) against one GD step (u − γ m∇L(u)) from the initial state of
    :func:`training_problem`, the least-squares slope of their log against log γ (2: both are
    u − γ m∇L(u) + O(γ²)), and the largest residual max_i |θ − (u − γ m∇L(θ))| of the proximal
    steps (at most ``prox_tol``)."""
    from .models.network import NetworkModel

    a, w, teacher = training_problem()
    model = NetworkModel(a, w, teacher, prox_tol=prox_tol)
    m = len(a)
    u = model.initial_state()
    _, grad = model.loss_and_gradient(u)
    differences, residual = [], 0.0
    out = model.empty()
    for gamma in gammas:
        model.proximal(u, gamma, out)
        _, grad_new = model.loss_and_gradient(out)
        residual = max(residual, float(np.max(np.abs(out - (u - gamma * m * grad_new)))))
        differences.append(float(np.max(np.abs(out - (u - gamma * m * grad)))))
    return float(np.polyfit(np.log(gammas), np.log(differences), 1)[0]), differences, residual


def report(exact=None) -> str:
    """The markdown tables of the validation studies."""
    lines = ["| scheme | nominal order | observed 1-D | observed 2-D | observed WFR | energy balance "
             "| exact s=1 error | max linear-rate error |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, scheme in SCHEMES.items():
        if name in TRAINING_SCHEMES:
            continue
        o1, _ = observed_order(name, "1d")
        o2, _ = observed_order(name, "2d")
        ow, _ = observed_order(name, "wfr")
        ob, _ = energy_balance_order(name)
        err = "—" if exact is None else f"{exact_solution_error(name, exact):.2e}"
        rates = max(abs(e) for s in (1.5, 2.0, 3.0) for e in linear_rate_errors(name, s).values())
        lines.append(f"| {name} | {scheme.order} | {o1:.3f} | {o2:.3f} | {ow:.3f} | {ob:.3f} | {err} | {rates:.1e} |")
    lines += ["", "| WFR (α = 2) study | k | measured rate | M(\\|k\\|² + α)K̂_k | relative error |", "|---|---|---:|---:|---:|"]
    for study in WFR_RATE_STUDIES:
        for k, (measured, predicted) in wfr_linear_rates(study).items():
            lines.append(f"| {study} | {k} | {measured:.8g} | {predicted:.8g} | {measured / predicted - 1:.1e} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    argparse.ArgumentParser(prog="python -m sobolev_flow.validation", description=__doc__.splitlines()[0]).parse_args(argv)
    try:
        from .exact import s1_density

        def exact(x, t):
            grid = Torus((len(x),))
            (mesh,) = grid.mesh()
            return s1_density(1 + 0.5 * np.sin(mesh) + 0.2 * np.cos(2 * mesh), t)
    except ImportError:  # pragma: no cover
        exact = None
    print(report(exact))
    return 0


if __name__ == "__main__":
    sys.exit(main())
