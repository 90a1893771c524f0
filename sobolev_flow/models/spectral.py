"""Grid densities: the kernel mean discrepancy flow of μ in Fourier coefficients.

The state is ρ = μ − ν in Fourier coefficients (resolved modes, half layout). With a kernel of
Fourier weights K̂ (:mod:`sobolev_flow.kernels`), ψ = K ⋆ ρ, ψ_k = K̂_k ρ_k (K̂_0 included), the
energy E = ½ Σ_k K̂_k |ρ_k|² (with K̂_0 ≠ 0 it holds ½K̂_0 (m_μ − m_ν)²), and the geometry sets the
flow:

    Wasserstein:              ∂t μ = div(μ ∇ψ)
    Wasserstein–Fisher–Rao:   ∂t μ = div(μ ∇ψ) − α ψ μ       (α ≥ 0; α = 0 is Wasserstein)

Both are written once, as the WFR flow with α = 0 for Wasserstein. With a constant ν̄ > 0
(stabilisation; max ν by default) the right-hand side splits into a diagonal linear part and an
explicit rest:

    ∂t ρ = L ρ + N(ρ),
    L_k  = −ν̄ (|k|² + α) K̂_k,
    N(ρ) = div((μ − ν̄) ∇ψ) − α ψ (μ − ν̄),      μ − ν̄ = ρ + (ν − ν̄).

The products are formed on the padded grid of a padded transform
(:mod:`sobolev_flow.transforms`), one component of the flux at a time, and the divergence taken in
Fourier space: N costs 1 + d (+1 for the reaction) backward and d (+1) forward real FFTs. Between
the FFTs, each product and the monitor's reductions take one pass over the padded grid, and each
multiplier one pass with the zero-padding or the truncation, with compiled kernels
(:mod:`sobolev_flow.fused`; ``kernels="numpy"`` does the same in several numpy passes). Under the
Wasserstein geometry N_0 = 0 identically, so the mass of μ is conserved to the last bit; under WFR
d/dt ∫μ dm = −α ∫ ψ μ dm, and positivity is kept (the reaction is multiplicative).

Energy balance: dE/dt = −D, D = ∫ μ (|∇ψ|² + α ψ²) dm, computed as D = −Re Σ_k conj(ψ_k) ∂t ρ_k,
which is exact for the semi-discrete system, so the recorded balance measures time error alone.
Linearised about a uniform target of density M (ν̄ = M), mode k decays at M(|k|² + α)K̂_k.
"""

from __future__ import annotations

import difflib
import logging
import math
from dataclasses import dataclass

import numpy as np

from .. import diagnostics as diag
from .. import fused
from ..grid import Torus
from ..kernels import SobolevKernel
from ..theory import predictions
from ..transforms import padded_transform
from .base import Monitor, Series

__all__ = ["SpectralModel", "Wasserstein", "WassersteinFisherRao", "GEOMETRIES", "make_geometry", "memory_estimate",
           "MASS_RTOL"]

log = logging.getLogger(__name__)

#: Largest relative difference between the masses of μ0 and ν accepted without normalisation
#: under the Wasserstein geometry (which conserves mass).
MASS_RTOL = 1e-10


# ============================================================================ geometries
@dataclass(frozen=True)
class Wasserstein:
    """The Wasserstein-2 geometry: ∂t μ = div(μ∇ψ); mass is conserved."""

    name = "wasserstein"
    alpha = 0.0

    def parameters(self) -> dict:
        return {}

    def __str__(self):
        return "Wasserstein"


@dataclass(frozen=True)
class WassersteinFisherRao:
    """The Wasserstein–Fisher–Rao geometry with reaction coefficient α ≥ 0:
    ∂t μ = div(μ∇ψ) − α ψ μ; mass changes as d/dt ∫μ dm = −α ∫ ψ μ dm."""

    alpha: float = 2.0
    name = "wfr"

    def __post_init__(self):
        alpha = self.alpha
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha < 0:
            raise ValueError(f"model.geometry.alpha={alpha!r}: expected a finite number >= 0")
        object.__setattr__(self, "alpha", float(alpha))

    def parameters(self) -> dict:
        return {"alpha": self.alpha}

    def __str__(self):
        return f"Wasserstein-Fisher-Rao, alpha={self.alpha:g}"


GEOMETRIES = {"wasserstein": Wasserstein, "wfr": WassersteinFisherRao}


def make_geometry(spec):
    """A geometry from a name, a table ``{name = "wfr", alpha = 2.0}`` or a geometry object.

    Raises
    ------
    ValueError
        An unknown name (with a suggestion), an unknown or out-of-range parameter, or WFR
        parameters given with the Wasserstein geometry; the message names the key and value.
    """
    if spec is None:
        return Wasserstein()
    if hasattr(spec, "alpha") and hasattr(spec, "name") and not isinstance(spec, (str, dict)):
        return spec
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, dict) and isinstance(spec.get("name"), str):
        name, params = spec["name"], {k: v for k, v in spec.items() if k != "name"}
    else:
        raise ValueError(f"model.geometry={spec!r}: expected a geometry name or a table with a 'name' key")
    if name not in GEOMETRIES:
        close = difflib.get_close_matches(name, GEOMETRIES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ";"
        raise ValueError(f"model.geometry={name!r}: unknown geometry{hint} valid: {', '.join(GEOMETRIES)}")
    valid = {"wasserstein": (), "wfr": ("alpha",)}[name]
    for key, value in params.items():
        if key not in valid:
            if name == "wasserstein" and key == "alpha":
                raise ValueError(f"model.geometry.alpha={value!r}: a reaction coefficient needs the wfr geometry "
                                 "(model.geometry = {name = \"wfr\", alpha = ...})")
            raise ValueError(f"model.geometry.{key}={value!r}: unknown parameter of the {name} geometry; "
                             f"valid: {', '.join(valid) or 'none'}")
    return GEOMETRIES[name](**params)


# ============================================================================ the model
class SpectralModel:
    """The KMD flow of a grid density μ towards ν under a kernel and a geometry (module docstring).

    Parameters
    ----------
    grid : Torus
    mu0 : array_like, shape grid.shape
        Initial density relative to dm = dx/(2π)^d: finite and ≥ 0.
    nu : array_like, optional
        Target density, finite and > 0; default ν ≡ 1. Under the Wasserstein geometry it must
        have the mass of μ0 (see ``normalize``).
    kernel : object with ``weights(grid)``, optional
        Fourier weights K̂ ≥ 0 (:mod:`sobolev_flow.kernels`); default ``SobolevKernel(s)``.
    s : float, optional
        Sobolev order, when no kernel is given.
    geometry : Wasserstein, WassersteinFisherRao, str or dict, optional
        Default Wasserstein (see :func:`make_geometry`).
    stabilisation : float, optional
        ν̄ > 0 of the linear part; default max ν.
    normalize : bool
        Rescale μ0 to the mass of ν instead of rejecting a mismatch (Wasserstein).
    orders : sequence of float
        Orders q of the Sobolev norms ‖μ − ν‖_{Ḣ^q} recorded as the diagnostic ``sobolev_norms``.
    spectrum : (p, d), optional
        The initial data's power-law spectrum |ρ_k(0)|² ∝ |k|^{−p} over d dimensions, if it has
        one: the theory's decay exponents depend on it (:meth:`predictions`).
    comm : mpi4py.MPI.Comm, optional
        Distribute over its processes (d ≥ 2); None or one process: serial.
    decomposition, fft_backend, threads, fft_effort, fft_wisdom_only
        The padded transform (:func:`~sobolev_flow.transforms.padded_transform`).
    kernels : {"auto", "numba", "numpy"}
        The element-wise work of the right-hand side: compiled single passes (numba, the ``fast``
        extra), numpy passes, or numba when it is installed and the padded grid has at least
        :data:`~sobolev_flow.fused.AUTO_POINTS` points (:func:`sobolev_flow.fused.select`).
    """

    name = "spectral"

    def __init__(self, grid: Torus, mu0, nu=None, *, kernel=None, s=None, geometry=None, stabilisation=None,
                 normalize=False, orders=(), spectrum=None, comm=None, decomposition="slab", fft_backend="auto",
                 threads=None, fft_effort="estimate", fft_wisdom_only=False, kernels="auto"):
        # ---- validation, before any transform is planned
        self.grid = grid
        self.kernels = fused.select(kernels, points=math.prod(grid.padded_shape))
        self.kernel = kernel if kernel is not None else SobolevKernel(s)
        self.geometry = make_geometry(geometry)
        self.alpha = self.geometry.alpha
        self.orders = [float(q) for q in orders]
        self.spectrum = spectrum
        mu0, nu, weights = check_inputs(grid, mu0, nu, self.kernel, self.alpha, normalize)
        nu_hat = np.zeros(grid.spectral_shape, dtype=complex)
        if nu is None:
            nu_hat.flat[0] = 1.0
        else:
            nu_hat = grid.project(grid.to_spectral(nu))
        self.uniform = not np.any(nu_hat.ravel()[1:])
        self.nu_mean = float(nu_hat.flat[0].real)
        nu_max = self.nu_mean if self.uniform else float(grid.to_physical(nu_hat).max())
        self.stabilisation = nu_max if stabilisation is None else float(stabilisation)
        if not (math.isfinite(self.stabilisation) and self.stabilisation > 0):
            raise ValueError(f"stabilisation={stabilisation!r}: expected a finite number > 0")

        # ---- transforms and the layout of the coefficients
        fields = 3 if self.alpha else 2  # μ − ν̄, the work field (∂_j ψ, then F_j), ψ for the reaction
        self.transform = padded_transform(grid, fields, comm=comm, decomposition=decomposition, backend=fft_backend,
                                          threads=threads, effort=fft_effort, wisdom_only=fft_wisdom_only,
                                          kernels=self.kernels)
        self.layout = layout = self.transform.layout
        local = layout.local
        self.weights = local(weights)
        self.linear = local(-self.stabilisation * (grid.k2 + self.alpha) * weights)
        self._nu_hat = None if self.uniform else nu_hat  # a uniform target is its mean alone
        self._state = local(grid.project(grid.to_spectral(mu0)) - nu_hat)
        self.sums = diag.SpectralSums(grid, self.weights, layout=layout)

        # ---- work arrays and multipliers of the right-hand side
        self._psi = np.empty(self.weights.shape, complex) if self.transform.kernels == "numpy" else None  # ψ
        self._products = fused.products(self.kernels, fused.kernel_threads(self.transform.threads))
        # the padded fields, |∇ψ|² (accumulated when monitoring) and scratch, flattened for the products
        self._flat = [fused.view(field, -1) for field in self.transform.fields]
        self._speed2 = np.empty(self._flat[0].size)
        self._scratch = fused.view(self.transform.scratch, -1)
        # (div F)_k = i k·F_k, with the forward transform's 1/size folded in
        self._divergence = self.transform.scale
        self._reaction = -self.alpha * self.transform.scale if self.alpha else None
        if self.uniform and self.stabilisation == self.nu_mean:
            self._offset = np.empty(0)  # none
        else:  # ν − ν̄ sampled on the padded grid (spectral interpolation)
            self._offset = fused.view(self.transform.interpolate(nu_hat) - self.stabilisation, -1)
        self.evaluations = 0
        # the first time min μ < 0 (nan: never) and the lowest min μ seen, kept across restarts
        self.positivity = np.array([math.nan, math.inf])
        self._notices = []

    # ------------------------------------------------------------------ the state
    def empty(self) -> np.ndarray:
        """An uninitialised array like the state."""
        return np.empty(self.weights.shape, complex)

    def initial_state(self) -> np.ndarray:
        """ρ(0) = μ0 − ν in Fourier coefficients (this process's block), handed over once: the
        caller advances this array (the model keeps no second copy of its state)."""
        state, self._state = self._state, None
        if state is None:
            raise RuntimeError("the initial state has been handed over already; build a new model")
        return state

    @property
    def nu_hat(self) -> np.ndarray:
        """Coefficients of ν on the global layout (a new array for a uniform target)."""
        if self._nu_hat is not None:
            return self._nu_hat
        nu_hat = np.zeros(self.grid.spectral_shape, dtype=complex)
        nu_hat.flat[0] = self.nu_mean
        return nu_hat

    def psi(self, rho_hat: np.ndarray) -> np.ndarray:
        """ψ_k = K̂_k ρ_k."""
        return self.weights * rho_hat

    # ------------------------------------------------------------ right-hand side
    def explicit(self, rho_hat: np.ndarray, out: np.ndarray, monitor: bool = False):
        """out ← N(ρ) = div((μ − ν̄)∇ψ) − α ψ (μ − ν̄), dealiased.

        Parameters
        ----------
        rho_hat : ndarray
            Coefficients of ρ (resolved modes); not modified.
        out : ndarray
            Receives the coefficients of N(ρ); must not alias ``rho_hat``.
        monitor : bool
            Also return a :class:`~sobolev_flow.models.base.Monitor` (collective under MPI).
        """
        self.evaluations += 1
        transform, products, d = self.transform, self._products, self.grid.d
        # 1. μ − ν̄ on the padded grid (field 0; the offset ν − ν̄ is added with the first product)
        transform.backward(rho_hat, 0)
        mu = self._flat[0]
        # ψ = K̂ ρ = weights × coefficients: the fused zero-padding applies K̂ on the way, else ψ once here
        if transform.kernels == "numba":
            coefficients, weights = rho_hat, self.weights
        else:
            coefficients, weights = np.multiply(self.weights, rho_hat, out=self._psi), None
        # 2. for each axis: ∂_j ψ to the grid, F_j = (μ − ν̄) ∂_j ψ (and min μ, max |∇ψ|²), back,
        #    out (+)= i k_j F_j,k
        low, speed2 = math.inf, 0.0
        for j in range(d):
            transform.backward(coefficients, 1, axis=j, weights=weights)
            first_low, last_high = products.flux_product(self._flat[1], mu, self._speed2, self._offset,
                                                         self._scratch, j == 0, j == d - 1, monitor, products.chunks)
            low = first_low if j == 0 else low
            speed2 = last_high if j == d - 1 else speed2
            transform.forward(1, out, axis=j, factor=self._divergence, accumulate=j > 0)
        # 3. the reaction −α ψ (μ − ν̄) (WFR)
        max_psi = 0.0
        if self._reaction is not None:
            transform.backward(coefficients, 2, weights=weights)
            max_psi = products.reaction_product(self._flat[2], mu, monitor, products.chunks)
            transform.forward(2, out, factor=self._reaction, accumulate=True)
        if not monitor:
            return None
        low, speed2, max_psi = self.layout.maxima([-low, speed2, max_psi])
        return Monitor(min_mu=self.stabilisation - low, max_speed=math.sqrt(speed2), max_psi=max_psi)

    def observe(self, rho_hat: np.ndarray) -> tuple:
        """The monitor and D = −dE/dt at ρ from the backward transforms of N alone.

        With m = μ − ν̄ on the padded grid and ∂t ρ = Lρ + N(ρ), the part of D from N is, by the
        discrete Parseval identity on the padded grid (∇ψ and ψ carry resolved modes only, so the
        truncation of the products drops nothing they see),

            −Re Σ_k conj(ψ_k) N_k = ⟨m (|∇ψ|² + α ψ²)⟩,

        ⟨·⟩ the mean over the padded grid; the part from L is :meth:`dissipation` of Lρ. Equal to
        :meth:`dissipation` of Lρ + N(ρ) up to rounding, at the cost of the 1 + d (+1) backward
        transforms instead of all 2(1 + d) (+2) of :meth:`explicit`.

        Returns
        -------
        monitor : Monitor
        dissipation : float
        """
        transform, d = self.transform, self.grid.d
        m = transform.backward(rho_hat, 0)
        speed2 = self._speed2.reshape(m.shape)  # |∇ψ|², summed in place (the fields are free here)
        for j in range(d - 1):
            gradient = transform.backward(rho_hat, 1, axis=j, weights=self.weights)
            if j == 0:
                np.multiply(gradient, gradient, out=speed2)
            else:
                speed2 += np.multiply(gradient, gradient, out=gradient)
        # the last axis: m + (ν − ν̄), |∇ψ|² and the reductions min m, Σ m |∇ψ|², max |∇ψ|² in one pass
        gradient = transform.backward(rho_hat, 1, axis=d - 1, weights=self.weights)
        low, local, max_speed2 = self._products.observe(fused.view(m, -1), self._speed2, fused.view(gradient, -1),
                                                        self._offset, d == 1, self._products.chunks)
        max_psi = 0.0
        if self.alpha:
            psi = transform.backward(rho_hat, 2, weights=self.weights)
            max_psi = float(np.abs(psi).max()) if m.size else 0.0
            local += self.alpha * float(np.einsum("i,i,i->", m.ravel(), psi.ravel(), psi.ravel()))
        points = math.prod(self.grid.padded_shape)
        nonlinear = self.layout.sum(local) / points
        low, max_speed2, max_psi = self.layout.maxima([-low, max_speed2, max_psi])
        monitor = Monitor(min_mu=self.stabilisation - low, max_speed=math.sqrt(max_speed2), max_psi=max_psi)
        return monitor, self.dissipation(rho_hat, self.linear * rho_hat) + nonlinear

    def transforms_only(self):
        """Execute exactly the FFTs of one :meth:`explicit` call and nothing else, on the same
        plans: the reference for the cost of the element-wise work."""
        self.transform.execute_backward(0)
        for _ in range(self.grid.d):
            self.transform.execute(1)
        if self._reaction is not None:
            self.transform.execute(2)

    def rhs(self, rho_hat: np.ndarray, out: np.ndarray) -> np.ndarray:
        """out ← L ρ + N(ρ), the full right-hand side."""
        self.explicit(rho_hat, out)
        out += self.linear * rho_hat
        return out

    # ------------------------------------------------------------ norms and bounds
    def norm(self, u) -> float:
        """‖u‖_{L²(dm)}, the norm of the error control."""
        return self.sums.l2_norm(u)

    def energy(self, rho_hat) -> float:
        """E = ½ Σ_k K̂_k |ρ_k|²."""
        return self.sums.energy(rho_hat)

    def dissipation(self, rho_hat, drho_hat) -> float:
        """D = −dE/dt = −Re Σ_k conj(ψ_k) ∂t ρ_k (= ∫ μ(|∇ψ|² + αψ²) dm for the exact flow)."""
        return self.sums.dissipation(rho_hat, drho_hat)

    def step_bound(self, monitor: Monitor, cfl: float) -> float:
        """cfl · min(dx) / max|∇ψ| (transport), and cfl / (α max|ψ|) (reaction)."""
        bound = math.inf
        if monitor.max_speed > 0:
            bound = cfl * min(self.grid.dx) / monitor.max_speed
        if self.alpha and monitor.max_psi > 0:
            bound = min(bound, cfl / (self.alpha * monitor.max_psi))
        return bound

    def check(self, monitor: Monitor, t: float):
        """Raise on a non-finite state; record when μ undershoots below 0 (the first time also as a
        notice, see :meth:`notices`)."""
        if not np.isfinite(monitor.min_mu):
            raise FloatingPointError(f"the solution became non-finite at t={t:.6g}; reduce dt or rtol")
        if monitor.min_mu < 0:
            if math.isnan(self.positivity[0]):
                self.positivity[0] = t
                self._notices.append(f"min mu = {monitor.min_mu:.3g} < 0 at t={t:.6g}: the density undershoots, the "
                                     "grid cannot follow this solution; the particle method "
                                     "(model.method = \"particles\") keeps positivity")
            self.positivity[1] = min(self.positivity[1], monitor.min_mu)

    def notices(self) -> list:
        """What the user should know about the states checked since the last call (and forget it)."""
        notices, self._notices = self._notices, []
        return notices

    def summary(self) -> dict:
        """What the run's end should report: a loss of positivity (the first time min μ < 0 and the
        lowest min μ), or nothing."""
        if math.isnan(self.positivity[0]):
            return {}
        return {"positivity_lost_at": float(self.positivity[0]), "worst_min_mu": float(self.positivity[1])}

    # ------------------------------------------------------------ declared outputs
    @property
    def diagnostics(self) -> tuple:
        """The series :meth:`diagnose` returns, as declarations."""
        out = (
            Series("mass", "1", "∫ μ dm (μ relative to dm = dx/(2π)^d)"),
            Series("min_mu", "1", "min μ on the padded grid"),
            Series("max_speed", "1", "max |∇ψ| on the padded grid, the largest particle speed"),
        )
        if self.alpha:
            out += (Series("max_psi", "1", "max |ψ| on the padded grid, the largest reaction rate over α"),)
        out += (Series("tail_fraction", "1", "share of Σ_{k≠0}|ρ_k|² in the top third of resolved wavenumbers"),)
        if self.orders:  # no dataset for no orders (a dimension of length 0 cannot be chunked)
            out += (Series("sobolev_norms", "1", "‖μ − ν‖_{Ḣ^q} for the orders q of the attribute 'orders'",
                           shape=(len(self.orders),), attrs={"orders": np.asarray(self.orders, dtype=float)}),)
        return out

    def diagnose(self, rho_hat, monitor: Monitor) -> dict:
        """Values of the declared :attr:`diagnostics` at the state (collective)."""
        out = {
            "mass": self.sums.mass(rho_hat) + self.nu_mean,
            "min_mu": monitor.min_mu,
            "max_speed": monitor.max_speed,
        }
        if self.alpha:
            out["max_psi"] = monitor.max_psi
        out["tail_fraction"] = self.sums.tail_fraction(rho_hat)
        if self.orders:
            out["sobolev_norms"] = self.sums.sobolev_norms(rho_hat, self.orders)
        return out

    @property
    def snapshots(self) -> tuple:
        return (Series("mu", "1", "the density μ on the grid, relative to dm = dx/(2π)^d", shape=self.grid.shape,
                       on_grid=True),)

    def snapshot(self, rho_hat) -> dict:
        """{"mu": μ on the grid} (the whole grid, on every process)."""
        return {"mu": self.density(rho_hat)}

    def density(self, rho_hat) -> np.ndarray:
        """μ = ρ + ν on the grid (the whole grid, on every process)."""
        mu_hat = self.layout.gather(rho_hat).copy()
        if self.uniform:
            mu_hat.flat[0] += self.nu_mean
        else:
            mu_hat += self._nu_hat
        return self.grid.to_physical(mu_hat, overwrite=True)

    def checkpoint(self, rho_hat) -> dict:
        """{"rho_hat": the global spectral state, "positivity": (first t with min μ < 0, lowest min μ)}."""
        return {"rho_hat": self.layout.gather(rho_hat).copy(), "positivity": self.positivity.copy()}

    @property
    def checkpoint_layout(self) -> dict:
        """{name: (shape, dtype)} of the arrays of :meth:`checkpoint`."""
        return {"rho_hat": (self.grid.spectral_shape, "complex128"), "positivity": ((2,), "float64")}

    def restore(self, arrays: dict) -> np.ndarray:
        """The (local) state a :meth:`checkpoint` describes."""
        rho_hat = np.asarray(arrays["rho_hat"])
        if rho_hat.shape != self.grid.spectral_shape:
            raise ValueError(f"checkpoint state has shape {rho_hat.shape}, expected {self.grid.spectral_shape}")
        if "positivity" in arrays:  # files written before it was checkpointed have none
            self.positivity[...] = arrays["positivity"]
        return self.layout.local(rho_hat)

    def describe(self) -> dict:
        """What the run file records about the model (JSON-serialisable)."""
        return {
            "name": self.name,
            **describe_physics(self.kernel, self.geometry),
            "stabilisation": self.stabilisation,
            "uniform_target": bool(self.uniform),
            "target_mass": self.nu_mean,
            "spectrum": None if self.spectrum is None else list(self.spectrum),
        }

    def arrays(self) -> dict:
        """Arrays the run file records about the model: the kernel weights on the global layout."""
        return {"kernel_weights": self.layout.gather(self.weights)}

    def predictions(self, quantities=None) -> dict:
        """The theory's decay laws {quantity: (kind, exponent)} for the energy and the squared
        Sobolev norms ``norm2_q=<q>`` (see :func:`sobolev_flow.theory.predictions`)."""
        s = getattr(self.kernel, "sobolev_order", None)
        norms = isinstance(self.kernel, SobolevKernel)  # other kernels may leave modes unmoved
        return predictions(s, self.spectrum, self.orders, alpha=self.alpha, uniform=self.uniform, norms=norms)

    @property
    def fft(self) -> dict:
        """The transform's back end, threads and planner effort."""
        return {"fft_backend": self.transform.backend, "threads": self.transform.threads,
                "fft_effort": self.transform.effort}


def describe_physics(kernel, geometry) -> dict:
    """{"kernel": name, parameters, description; "geometry": name, parameters}, as run files
    record them (a kernel object without ``name`` or ``parameters`` gets its class name and {})."""
    parameters = getattr(kernel, "parameters", None)
    return {
        "kernel": {"name": getattr(kernel, "name", type(kernel).__name__),
                   "parameters": dict(parameters()) if parameters is not None else {}, "description": str(kernel)},
        "geometry": {"name": geometry.name, "parameters": geometry.parameters()},
    }


# ============================================================================ checks
def check_inputs(grid: Torus, mu0, nu, kernel, alpha: float, normalize: bool):
    """The checks of :class:`SpectralModel` before any transform is planned: μ0 finite and ≥ 0,
    ν finite and > 0, the masses (:func:`match_mass`), the kernel's weights (:func:`kernel_weights`).

    Returns (μ0, ν, K̂): μ0 rescaled if ``normalize``, ν as a float array or None, K̂ on the
    resolved modes. Raises ValueError with a one-line message.
    """
    mu0 = check_density("mu0", mu0, grid, strict=False)
    nu = None if nu is None else check_density("nu", nu, grid, strict=True)
    return match_mass(mu0, nu, alpha, normalize), nu, kernel_weights(grid, kernel)


def match_mass(mu0, nu, alpha, normalize) -> np.ndarray:
    """μ0, or μ0·(∫ν/∫μ0) with ``normalize``: the Wasserstein flow (α = 0) conserves ∫μ, so a
    mass mismatch beyond MASS_RTOL is a ValueError unless ``normalize``."""
    target = 1.0 if nu is None else float(nu.mean())
    mass0 = float(mu0.mean())
    if abs(mass0 - target) <= MASS_RTOL * target or (alpha and not normalize):
        return mu0
    if not normalize:
        raise ValueError(
            f"mu0 has mass {mass0:.12g} but nu has mass {target:.12g} (relative difference "
            f"{abs(mass0 - target) / target:.3g} > {MASS_RTOL:g}); the Wasserstein flow conserves mass: pass "
            "normalize=True to rescale mu0, or use the wfr geometry")
    if mass0 == 0:
        raise ValueError("mu0 has mass 0 and cannot be normalised")
    return mu0 * (target / mass0)


def kernel_weights(grid: Torus, kernel) -> np.ndarray:
    """K̂ of ``kernel`` on the global layout, resolved modes only, checked.

    Raises
    ------
    ValueError
        Weights that are not finite, non-negative and of the spectral shape.
    """
    weights = np.asarray(kernel.weights(grid), dtype=float)
    if weights.shape != grid.spectral_shape or not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError(f"kernel={kernel}: weights must be finite, non-negative and of shape {grid.spectral_shape}")
    return weights * grid.resolved


def check_density(name, values, grid, strict) -> np.ndarray:
    """``values`` as a float array of the grid's shape, finite and ≥ 0 (> 0 if ``strict``)."""
    f = np.asarray(values, dtype=float)
    if f.shape != grid.shape:
        raise ValueError(f"{name} has shape {f.shape}, expected {grid.shape} (the grid's shape)")
    bad = ~np.isfinite(f)
    if bad.any():
        i = np.unravel_index(np.argmax(bad), f.shape)
        raise ValueError(f"{name} has a non-finite value ({f[i]} at index {tuple(int(j) for j in i)})")
    low = f <= 0 if strict else f < 0
    if low.any():
        i = np.unravel_index(np.argmin(f), f.shape)
        need = "> 0" if strict else ">= 0"
        raise ValueError(f"{name} has a value {f[i]:.6g} at index {tuple(int(j) for j in i)}; a density must be {need}")
    return f


def memory_estimate(grid: Torus, scheme, reaction=False) -> int:
    """Bytes of working memory a run on ``grid`` with ``scheme`` allocates (an estimate).

    Counts, on the half spectral layout, the complex state ρ, N(ρ), the four step-doubling
    buffers, ψ and its work array, and the stepper's stage buffers (exponential schemes form
    their stages in the output buffer), and the real multipliers (K̂, L, the diagnostic weights
    and their scratch, and for exponential schemes the coefficient arrays for one step size with
    their index, which the compiled stepper does not gather: an overestimate there); on the
    padded grid, the spectral buffer and the fields μ − ν̄, the work field, |∇ψ|² and, with a
    reaction (WFR), ψ. Excludes snapshots kept by the caller.
    """
    spectral = math.prod(grid.spectral_shape)
    stages = len(scheme.c)
    complex_arrays = 1 + 1 + 4 + 2 + (stages - 1)  # ρ, N, step doubling, ψ and i k_j ψ, stage N's
    real_arrays = 2 + 3  # K̂ and L; the diagnostic weights w, w·K̂ and their scratch
    if reaction:
        real_arrays += 1  # the reaction multiplier
    if scheme.family == "exponential":
        distinct = len({c for c in scheme.c[1:]}) + 1 + len(scheme.a) + len(scheme.b)
        real_arrays += distinct + 0.5  # the coefficients (a few coincide) and their int32 index
    else:
        complex_arrays += 2 + stages  # stage U, scratch, and the stage slopes (RK) or L U_i (IMEX)
    padded = math.prod(grid.padded_shape)
    padded_spectral = math.prod(grid.padded_spectral_shape)
    transforms = 16 * padded_spectral + (4 if reaction else 3) * 8 * padded
    return int(16 * complex_arrays * spectral + 8 * real_arrays * spectral + transforms)
