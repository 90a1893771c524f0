"""Two-layer ReLU networks trained on the population square loss, and their mean-field limit.

A width-m network on inputs x uniform on the sphere S^d (d = 1, 2) is

    f(x) = (1/m) Σ_i a_i (w_i · x)_+,        θ_i = (a_i, w_i) ∈ R × R^{d+1},

trained against a teacher f* on the population loss L = ½ E_x (f − f*)². Expectations of products
of ReLU features are the degree-1 arc-cosine kernel on the sphere,

    k(u, v) = E_x[(u·x)_+ (v·x)_+] = |u||v| (sin φ + (π − φ) cos φ) / (2π(d + 1)),   φ = ∠(u, v),

(the Gaussian expectation of Cho & Saul (2009) divided by E|g|² = d + 1, since g = |g| x with |g|
independent of x), with gradient ∇_u k(u, v) = ((π − φ) v + |v| sin φ û) / (2π(d + 1)) (the
derivatives of φ cancel). So L and its gradient are exact sums over pairs of neurons, O(m² + m m*)
kernel evaluations, blocked over rows so the memory stays bounded.

The teacher is a network (a*, w*) of width m*, f*(x) = (1/m*) Σ_j a*_j (w*_j·x)_+, or for d = 1 a
density ν* on the circle relative to dm = dθ/2π, f*(x) = ∫ (ŵ(θ)·x)_+ ν*(θ) dm(θ). A density teacher
enters analytically through the Fourier weights κ_n of the relu kernel
K(θ) = k(ŵ(θ), ŵ(0)) (:class:`~sobolev_flow.kernels.ReluKernel`): its potential at a neuron is
|w| h(θ_w) with h = K ⋆ ν* = Σ_n κ_n ν*_n e^{inθ}, and ½ E f*² = ½ Σ_n κ_n |ν*_n|², over the
modes the grid resolves (exact for a trigonometric polynomial the grid carries; otherwise the
error is the density's tail Σ_{|n| ≥ N/2} κ_n |ν*_n|², with κ_n ≤ 1/(π² (n² − 1)²)).

The mean-field gradient flow θ̇_i = −m ∇_{θ_i} L reads, with G(w) = E_x[(f − f*)(x) (w·x)_+]
(homogeneous of degree 1 in w),

    ȧ_i = −G(w_i),        ẇ_i = −a_i ∇G(w_i),

and conserves a_i² − |w_i|² for every neuron (w·∇G = G). For d = 1 and balanced neurons
(a_i = |w_i|, w_i = r_i(cos θ_i, sin θ_i)), G(w) = r g(θ) with g = K ⋆ (ν − ν*), so θ̇_i = −g'(θ_i)
and (r_i²)˙ = −2 g(θ_i) r_i²: the measure ν = (1/m) Σ r_i² δ_{θ_i} follows the
Wasserstein–Fisher–Rao flow ∂t ν = ∂θ(ν ∂θ g) − 2 g ν (α = 2), and L = ½ Σ_n κ_n |ν_n − ν*_n|².
"""

from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..grid import Torus
from ..kernels import ReluKernel
from ..parallel import SERIAL
from ..theory import predictions as theory_predictions
from .base import ArrayState, Monitor, Series
from .particles import deposit
from .spectral import describe_physics, make_geometry

__all__ = ["NetworkModel", "NetworkTeacher", "DensityTeacher", "relu_features", "relu_kernel_sums", "kernel_sums_memory",
           "relu_coefficients",
           "initial_network", "directions", "load_network", "perturbation_spectrum", "relu_mean",
           "INITIALISATIONS", "UNIFORM_RTOL"]

log = logging.getLogger(__name__)

#: How the directions of the initial neurons are chosen (``network.init``), besides a .npz path.
INITIALISATIONS = ("grid", "random", "density")

#: Bytes of one work array of a block of rows in the kernel sums (about four are alive at once):
#: small enough for the processor's L2 cache, which speeds the sums up several times over
#: whole-matrix arrays.
BLOCK_BYTES = 2**17

#: Largest relative variance Var f* / (E f*)² of a teacher counted as uniform by :meth:`NetworkModel.predictions`
#: (the decay law of the loss holds while the loss stays well above the teacher's own ½ Var f*).
UNIFORM_RTOL = 1e-6


# ============================================================================ the arc-cosine kernel
def relu_features(x, w) -> np.ndarray:
    """The ReLU features (w_i · x)_+ at inputs x (n, d + 1): an (n, m) array."""
    return np.maximum(np.asarray(x) @ np.asarray(w).T, 0.0)


def relu_kernel_sums(u, c, v=None, *, threads=1, block=None):
    """S_i = Σ_j c_j k(u_i, v_j) and ∇S_i = Σ_j c_j ∇_u k(u_i, v_j) for the arc-cosine kernel.

    With φ_ij = ∠(u_i, v_j),

        S_i = |u_i| Σ_j c_j |v_j| (sin φ_ij + (π − φ_ij) cos φ_ij) / (2π(d + 1)),
        ∇S_i = (Σ_j c_j (π − φ_ij) v_j + û_i Σ_j c_j |v_j| sin φ_ij) / (2π(d + 1)),

    so that E_x[(u·x)_+ (v·x)_+] = k(u, v) for x uniform on S^d. A zero vector has no direction;
    it is given û = 0 (φ = π/2: the subgradient with (0)_+' = ½).

    Parameters
    ----------
    u : ndarray, shape (m, d + 1)
    c : ndarray, shape (n,)
    v : ndarray, shape (n, d + 1), optional
        Default: v = u (then n = m), and each pair's angle is computed once for both of its
        neurons (the upper triangle only: half the work).
    threads : int
        Workers over the row blocks (numpy releases the GIL in its loops); each sums into its
        own O(m) arrays.
    block : int, optional
        Rows per block (default: work arrays of about :data:`BLOCK_BYTES`, at least 16 rows; the
        memory is O(block × n), never O(m × n)).

    Returns
    -------
    S : ndarray, shape (m,)
    grad : ndarray, shape (m, d + 1)
    """
    symmetric = v is None
    u, c = np.asarray(u, dtype=float), np.asarray(c, dtype=float)
    v = u if symmetric else np.asarray(v, dtype=float)
    m, dim = u.shape
    ru, rv = np.linalg.norm(u, axis=1), np.linalg.norm(v, axis=1)
    uhat = u / np.where(ru > 0, ru, 1.0)[:, None]
    vhat = uhat if symmetric else v / np.where(rv > 0, rv, 1.0)[:, None]
    crv = c * rv
    cv = c[:, None] * v
    if block is None:
        block = max(16, BLOCK_BYTES // (8 * max(1, len(v))))
    starts = list(range(0, m, block))
    workers = max(1, min(threads, len(starts)))

    def work(first):
        S, grad = np.zeros(m), np.zeros((m, dim))
        for start in starts[first::workers]:
            stop = min(start + block, m)
            low = start if symmetric else 0          # symmetric: the columns j ≥ start
            cos = np.clip(uhat[start:stop] @ vhat[low:].T, -1.0, 1.0, out=None)
            phi = np.arccos(cos)
            np.subtract(math.pi, phi, out=phi)                        # π − φ
            sin = np.multiply(cos, cos)
            np.subtract(1.0, sin, out=sin)
            np.maximum(sin, 0.0, out=sin)
            np.sqrt(sin, out=sin)
            np.multiply(phi, cos, out=cos)
            cos += sin                                                # F = sin φ + (π − φ) cos φ
            S[start:stop] += cos @ crv[low:]
            grad[start:stop] += phi @ cv[low:] + (sin @ crv[low:])[:, None] * uhat[start:stop]
            if symmetric and stop < m:                                # the pairs (j, i), j ≥ stop
                k = stop - low
                S[stop:] += crv[start:stop] @ cos[:, k:]
                grad[stop:] += phi[:, k:].T @ cv[start:stop] + (crv[start:stop] @ sin[:, k:])[:, None] * uhat[stop:]
        return S, grad

    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(work, range(workers)))
    else:
        parts = [work(0)]
    S = sum(part[0] for part in parts)
    grad = sum(part[1] for part in parts)
    scale = 1.0 / (2 * math.pi * dim)
    return ru * S * scale, grad * scale


def kernel_sums_memory(m: int, n: int, dim: int, threads=1, symmetric=False, block=None) -> int:
    """Bytes :func:`relu_kernel_sums` holds at its peak for u (m × dim) and v (n × dim).

    Counts the norms, unit vectors and weighted copies of u and v (m + n + (m + 2n)·dim + n floats;
    v's are u's when ``symmetric``), each worker's sums S, ∇S (m(1 + dim)) and five block arrays of
    ``block`` × n (cos φ, π − φ, sin φ and the temporaries of the product û v̂ᵀ and of its clipping;
    4.5 measured with tracemalloc), and the summed and scaled results (2m(1 + dim)). The memory is
    O(m + n): the blocks are never O(m n).
    """
    if block is None:
        block = max(16, BLOCK_BYTES // (8 * max(1, n)))
    blocks = -(-m // block)
    workers = max(1, min(threads, blocks))
    vectors = m + m * dim + (0 if symmetric else n + n * dim) + n + n * dim
    sums = (workers + 2) * m * (1 + dim)
    return 8 * (vectors + sums + workers * 5 * min(block, m) * n)


def relu_coefficients(n) -> np.ndarray:
    """c_n = ∫ (cos θ)_+ e^{-inθ} dθ/2π: 1/π (n = 0), 1/4 (|n| = 1), −cos(nπ/2)/(π(n² − 1)) for even n,
    0 for odd |n| ≥ 3. The relu kernel is the autocorrelation of (cos θ)_+, so κ_n = c_n²."""
    n = np.abs(np.asarray(n, dtype=np.int64))
    out = np.zeros(n.shape)
    even = n % 2 == 0
    out[even] = -np.cos(0.5 * np.pi * n[even]) / (np.pi * (n[even].astype(float) ** 2 - 1))
    out[n == 1] = 0.25
    return out


def relu_mean(d: int) -> float:
    """c_d = E_x (x_1)_+ = Γ((d + 1)/2) / (2√π Γ(d/2 + 1)) for x uniform on S^d (1/π for d = 1, 1/4 for
    d = 2): E_x (w·x)_+ = c_d |w|, so a uniform teacher measure of mass M is the constant f* = M c_d."""
    return math.gamma((d + 1) / 2) / (2 * math.sqrt(math.pi) * math.gamma(d / 2 + 1))


# ============================================================================ teachers
class NetworkTeacher:
    """A teacher network f*(x) = (1/m*) Σ_j a*_j (w*_j · x)_+ (arrays checked by :func:`check_network`)."""

    def __init__(self, a, w, threads=1):
        self.a, self.w = check_network("network.teacher", a, w)
        self.d = self.w.shape[1] - 1
        self.width = len(self.a)
        self.threads = threads
        S, _ = relu_kernel_sums(self.w, self.a / self.width, threads=threads)
        #: ½ E f*² = ½ (1/m*²) Σ_jl a*_j a*_l k(w*_j, w*_l)
        self.energy = 0.5 * float(self.a @ S) / self.width
        #: the mass (1/m*) Σ |a*_j| |w*_j| (for a balanced teacher on the circle, that of its measure)
        self.mass = float(np.abs(self.a) @ np.linalg.norm(self.w, axis=1)) / self.width
        #: E_x f* = c_d (1/m*) Σ a*_j |w*_j| (:func:`relu_mean`)
        self.mean = relu_mean(self.d) * float(self.a @ np.linalg.norm(self.w, axis=1)) / self.width

    def potential(self, w):
        """T(w_i) = E_x[f*(x) (w_i·x)_+] and its gradient in w_i."""
        return relu_kernel_sums(w, self.a / self.width, self.w, threads=self.threads)

    def memory(self, width: int) -> int:
        """Bytes of :meth:`potential` for ``width`` student neurons: the kernel sums against the
        teacher's m* neurons (:func:`kernel_sums_memory`)."""
        return kernel_sums_memory(width, self.width, self.d + 1, self.threads)

    def __call__(self, x) -> np.ndarray:
        """f*(x) at inputs x (n, d + 1)."""
        return relu_features(x, self.w) @ self.a / self.width

    def describe(self) -> dict:
        return {"kind": "network", "width": self.width}


class DensityTeacher:
    """A density ν* on the circle (relative to dm = dθ/2π) as a teacher: f*(x) = ∫ (ŵ(θ)·x)_+ ν* dm.

    Parameters
    ----------
    grid : Torus
        A 1-D grid carrying ν* (its modes |n| < N/2 are used; the Nyquist mode is dropped).
    nu : ndarray
        ν* on the grid.
    """

    d = 1

    def __init__(self, grid: Torus, nu):
        if grid.d != 1:
            raise ValueError(f"network.teacher: a density teacher lives on the circle and needs network.d=1, got d={grid.d}")
        nu = np.asarray(nu, dtype=float)
        self.grid = grid
        nu_hat = grid.project(grid.to_spectral(nu))
        kappa = ReluKernel().weights(grid)
        self._nu_hat = nu_hat
        self._zero = float(kappa[0] * nu_hat[0].real)
        coefficients = 2 * kappa[1:] * nu_hat[1:]                # h = κ_0ν_0 + Re Σ_{n≥1} 2κ_nν_n e^{inθ}
        # modes below 1e-17 of the largest term change nothing in double precision (and their
        # subnormal products would slow the sums down a hundredfold)
        significant = np.flatnonzero(np.abs(coefficients) > 1e-17 * max(abs(self._zero), np.abs(coefficients).max(initial=0)))
        last = significant[-1] + 1 if significant.size else 0
        self.modes = np.arange(1, last + 1)
        self._coefficients = coefficients[:last]
        #: ½ E f*² = ½ Σ_n κ_n |ν*_n|²
        self.energy = 0.5 * float(np.sum(grid.rfft_weights * kappa * np.abs(nu_hat) ** 2))
        self.mass = float(nu_hat[0].real)
        #: E_x f* = c_0 ν*_0 = ν*_0/π
        self.mean = self.mass / math.pi

    @staticmethod
    def _series(theta, c0, coefficients, modes):
        """c0 + Re Σ_{n≥1} c_n e^{inθ} and its derivative at angles θ, in blocks."""
        theta = np.asarray(theta, dtype=float)
        value = np.full(theta.shape, c0)
        slope = np.zeros(theta.shape)
        block = max(16, BLOCK_BYTES // (16 * max(1, modes.size)))
        for start in range(0, theta.size, block):
            phases = np.exp(1j * np.multiply.outer(theta[start:start + block], modes))
            # einsum, not a complex BLAS product (OpenBLAS's zgemv is 100× slower here)
            value[start:start + block] += np.einsum("ij,j->i", phases, coefficients).real
            slope[start:start + block] = -np.einsum("ij,j->i", phases, modes * coefficients).imag
        return value, slope

    def field(self, theta):
        """h(θ) = (K ⋆ ν*)(θ) = Σ_n κ_n ν*_n e^{inθ} and h'(θ) at angles θ."""
        return self._series(theta, self._zero, self._coefficients, self.modes)

    def potential(self, w):
        """T(w) = |w| h(θ_w), ∇T = h(θ_w) ŵ + h'(θ_w) θ̂_w (θ̂ = (−sin θ, cos θ))."""
        w = np.asarray(w, dtype=float)
        r = np.hypot(w[:, 0], w[:, 1])
        theta = np.arctan2(w[:, 1], w[:, 0])
        h, dh = self.field(theta)
        c, s = np.cos(theta), np.sin(theta)
        grad = np.stack([h * c - dh * s, h * s + dh * c], axis=1)
        return r * h, grad

    def memory(self, width: int) -> int:
        """Bytes of :meth:`potential` for ``width`` student neurons: about twelve arrays of ``width``
        floats (angles, norms, h, h', their products, ∇T) and a block of complex phases with its
        angle products (about 1.5 :data:`BLOCK_BYTES`)."""
        return 8 * 12 * width + 3 * BLOCK_BYTES // 2

    def __call__(self, x) -> np.ndarray:
        """f*(x) = Σ_n c_n ν*_n e^{inθ_x} at inputs x (n, 2), with c_n = ∫ (cos θ)_+ e^{-inθ} dm
        (:func:`relu_coefficients`; κ_n = c_n²)."""
        x = np.asarray(x, dtype=float)
        c = relu_coefficients(np.arange(self._nu_hat.size))
        value, _ = self._series(np.arctan2(x[:, 1], x[:, 0]), float(c[0] * self._nu_hat[0].real),
                                2 * c[1:] * self._nu_hat[1:], np.arange(1, self._nu_hat.size))
        return value

    def describe(self) -> dict:
        return {"kind": "density", "points": self.grid.shape[0]}


# ============================================================================ the model
class NetworkModel(ArrayState):
    """The mean-field gradient flow θ̇_i = −m ∇_{θ_i} L of a two-layer ReLU network (module docstring).

    Parameters
    ----------
    a : array_like, shape (m,)
        Output weights at t = 0.
    w : array_like, shape (m, d + 1)
        Input weights at t = 0.
    teacher : NetworkTeacher or DensityTeacher
    grid : Torus, optional
        A 1-D grid: for d = 1 that of the density estimate of ν = (1/m) Σ |w_i|² δ_{θ_i} written as a
        snapshot (default 256 points).
    threads : int
        Row blocks of the kernel sums evaluated concurrently.
    prox_tol : float
        Tolerance of the proximal step's inner solver: max_i |θ_i − u_i + h m ∇_{θ_i} L| (:meth:`proximal`).
    spectrum : (p, d_eff), optional
        The power-law spectrum |ρ_k(0)|² ∝ |k|^{−p} over d_eff dimensions of the initial perturbation
        ρ0 = ν(0) − ν* of the measure ν = (1/m) Σ |w_i|² δ_{ŵ_i} (:func:`perturbation_spectrum`), for
        :meth:`predictions`; None: no power-law spectrum is known.

    Attributes
    ----------
    stiffness : float
        An estimate of the spectral radius of the linearisation of −m∇L, with which the solver keeps
        explicit steps stable: the trace bound mean(a²/2 + |w|²/(2(d + 1))) of the Gram part plus a
        bound (1 + 2 max|a_i|/|w_i|)/(d + 1) of the curvature of a_i G(w_i), per unit of
        max(mean(a² + |w|²)/2, teacher mass).
    """

    name = "network"

    def __init__(self, a, w, teacher, *, grid=None, threads=1, prox_tol=1e-10, spectrum=None):
        a, w = check_network("network.init", a, w)
        self.d = w.shape[1] - 1
        if teacher.d != self.d:
            raise ValueError(f"network.teacher: inputs of dimension {teacher.d + 1}, the network's are {self.d + 1}")
        if not prox_tol > 0:
            raise ValueError(f"network.prox_tol={prox_tol!r}: expected a value > 0")
        self.width = len(a)
        self.teacher = teacher
        # the mean-field limit for d = 1 (what the run file records as the model's physics)
        self.kernel, self.geometry = ReluKernel(), make_geometry({"name": "wfr", "alpha": 2.0})
        self.threads = max(1, int(threads))
        self.prox_tol = float(prox_tol)
        self.layout = SERIAL
        self.spectrum = spectrum
        #: Var f* / (E f*)² = (2 ½E f*² − (E f*)²)/(E f*)²: zero for a uniform teacher measure (inf if E f* = 0)
        self.nonuniformity = ((2 * teacher.energy - teacher.mean**2) / teacher.mean**2 if teacher.mean
                              else math.inf)
        self.grid = grid if grid is not None else Torus((256,))
        self._shape = (self.width, self.d + 2)
        self._state = np.column_stack([a, w])
        self.balance0 = a**2 - np.einsum("ij,ij->i", w, w)
        scale = max(float(np.mean(a**2 + np.einsum("ij,ij->i", w, w))) / 2, teacher.mass)
        ratio = float(np.max(np.abs(a) / np.maximum(np.linalg.norm(w, axis=1), 1e-300), initial=1.0))
        # trace bound of the Gram part plus a bound of the per-neuron curvature of a_i G(w_i)
        self.stiffness = scale * (0.5 + (1 + 2 * min(ratio, 1e6)) / (self.d + 1))
        self.evaluations = 0
        self._cache = (None, None)

    # ------------------------------------------------------------ loss and gradient
    def potentials(self, u):
        """G(w_i) = E_x[(f − f*)(x)(w_i·x)_+], ∇G(w_i) and the loss L at the state u."""
        a, w = u[:, 0], u[:, 1:]
        S, grad_S = relu_kernel_sums(w, a / self.width, threads=self.threads)
        T, grad_T = self.teacher.potential(w)
        loss = float(a @ (0.5 * S - T)) / self.width + self.teacher.energy
        return S - T, grad_S - grad_T, loss

    def loss_and_gradient(self, u):
        """L and ∇L (an (m, d + 2) array: ∂L/∂a_i = G(w_i)/m, ∇_{w_i} L = a_i ∇G(w_i)/m)."""
        G, grad_G, loss = self.potentials(u)
        grad = np.empty(u.shape)
        grad[:, 0] = G / self.width
        grad[:, 1:] = u[:, :1] * grad_G / self.width
        return loss, grad

    def explicit(self, u, out, monitor=False):
        """out ← −m ∇L: (ȧ_i, ẇ_i) = (−G(w_i), −a_i ∇G(w_i))."""
        self.evaluations += 1
        G, grad_G, loss = self.potentials(u)
        self._cache = (np.array(u), loss)
        np.negative(G, out=out[:, 0])
        np.multiply(u[:, :1], grad_G, out=out[:, 1:])
        np.negative(out[:, 1:], out=out[:, 1:])
        if not monitor:
            return None
        speed2 = np.einsum("ij,ij->i", out, out)
        return Monitor(min_mu=float(np.min(np.abs(u[:, 0]), initial=math.inf)),
                       max_speed=math.sqrt(float(speed2.max(initial=0.0))),
                       max_psi=float(np.abs(G).max(initial=0.0)),
                       rms_speed=math.sqrt(float(speed2.mean())) if speed2.size else 0.0)

    def energy(self, u) -> float:
        """The population loss L = ½ E_x (f − f*)²."""
        cached, loss = self._cache
        if cached is not None and cached.shape == u.shape and np.array_equal(cached, u):
            return loss
        return self.potentials(u)[2]

    def dissipation(self, u, du) -> float:
        """D = m Σ_i |∇_{θ_i} L|² = (1/m) Σ_i |θ̇_i|² (= −dL/dt along the flow)."""
        return float(np.einsum("ij,ij->", du, du)) / self.width

    def norm(self, u) -> float:
        """RMS of the state's entries (the weights are O(1) at unit scale)."""
        return float(np.sqrt(np.mean(np.square(u)))) if u.size else 0.0

    def step_bound(self, monitor: Monitor, cfl: float) -> float:
        """None beyond the error control and :attr:`stiffness` (no grid to cross)."""
        return math.inf

    def check(self, monitor: Monitor, t: float):
        if not (np.isfinite(monitor.max_speed) and np.isfinite(monitor.max_psi)):
            raise FloatingPointError(f"the network's weights became non-finite at t={t:.6g}; reduce time.dt or rtol")

    def summary(self) -> dict:
        return {}

    # ------------------------------------------------------------ the proximal step
    def proximal(self, u, h, out):
        """out ← argmin_θ L(θ) + (1/2h)(1/m) Σ_i |θ_i − u_i|² (one backward-Euler step of size h).

        The minimiser solves θ = u − h m ∇L(θ). scipy's L-BFGS-B minimises m L(θ) + |θ − u|²/(2h)
        from the gradient-descent step u − h m∇L(u); its line search stalls once the objective's
        changes reach rounding, so Newton–Krylov iterations on the residual
        F(θ) = θ − u + h m ∇L(θ) finish the solve, to max_i |F_i| ≤ ``prox_tol`` (a warning is
        logged if that is not reached).
        """
        from scipy.optimize import NoConvergence, minimize, newton_krylov

        m, shape = self.width, u.shape

        def objective(x):
            theta = x.reshape(shape)
            loss, grad = self.loss_and_gradient(theta)
            diff = theta - u
            self.evaluations += 1
            return m * loss + 0.5 * float(np.einsum("ij,ij->", diff, diff)) / h, (m * grad + diff / h).ravel()

        def residual(theta):
            self.evaluations += 1
            return theta - u + (h * m) * self.loss_and_gradient(theta)[1]

        self.evaluations += 1
        start = u + h * (-m) * self.loss_and_gradient(u)[1]
        result = minimize(objective, start.ravel(), jac=True, method="L-BFGS-B",
                          options={"gtol": self.prox_tol / h, "ftol": 0.0, "maxiter": 1000, "maxcor": 20})
        theta = result.x.reshape(shape)
        if np.max(np.abs(residual(theta))) > self.prox_tol:
            try:
                theta = newton_krylov(residual, theta, f_tol=self.prox_tol, maxiter=50)
            except NoConvergence as err:
                theta = err.args[0]
                log.warning("proximal step of h=%.3g: residual %.3g above network.prox_tol=%.3g", h,
                            float(np.max(np.abs(residual(theta)))), self.prox_tol)
        out[...] = theta

    # ------------------------------------------------------------ the measure and outputs
    def measure(self, u):
        """d = 1: the angles θ_i ∈ [0, 2π) and masses |w_i|²/m of ν = (1/m) Σ |w_i|² δ_{θ_i}."""
        w = u[:, 1:]
        return np.mod(np.arctan2(w[:, 1], w[:, 0]), 2 * np.pi), np.einsum("ij,ij->i", w, w) / self.width

    @property
    def diagnostics(self) -> tuple:
        return (
            Series("loss", "1", "the population loss L = ½ E_x (f − f*)²"),
            Series("balance_drift", "1", "max_i |a_i² − |w_i|² − (a_i² − |w_i|²)(0)|, zero for the exact flow"),
            Series("mass", "1", "(1/m) Σ |w_i|², the mass of ν = (1/m) Σ |w_i|² δ_{θ_i}"),
            Series("max_speed", "1", "max_i |θ̇_i|, the fastest neuron"),
        )

    def diagnose(self, u, monitor: Monitor) -> dict:
        balance = u[:, 0] ** 2 - np.einsum("ij,ij->i", u[:, 1:], u[:, 1:])
        return {
            "loss": self.energy(u),
            "balance_drift": float(np.max(np.abs(balance - self.balance0), initial=0.0)),
            "mass": float(np.einsum("ij,ij->", u[:, 1:], u[:, 1:])) / self.width,
            "max_speed": monitor.max_speed,
        }

    @property
    def snapshots(self) -> tuple:
        out = (
            Series("output_weights", "1", "the output weights a_i", shape=(self.width,)),
            Series("input_weights", "1", "the input weights w_i", shape=(self.width, self.d + 1)),
        )
        if self.d == 1:
            out += (Series("mu", "1", "ν = (1/m) Σ |w_i|² δ_{θ_i}: the mass in each cell over its measure 1/n",
                           shape=self.grid.shape, on_grid=True),)
        return out

    def snapshot(self, u) -> dict:
        out = {"output_weights": np.array(u[:, 0]), "input_weights": np.array(u[:, 1:])}
        if self.d == 1:
            out["mu"] = self.density(u)
        return out

    def density(self, u) -> np.ndarray:
        """d = 1: cell averages of ν on the grid, relative to dm."""
        theta, mass = self.measure(u)
        return deposit(self.grid, theta[:, None], mass)

    def describe(self) -> dict:
        return {"name": self.name, **describe_physics(self.kernel, self.geometry), "width": self.width, "d": self.d,
                "teacher": self.teacher.describe()}

    def arrays(self) -> dict:
        return {}

    def evaluation_memory(self) -> int:
        """Bytes one evaluation of :meth:`potentials` holds at its peak: the student's symmetric kernel
        sums, or S and ∇S kept while the teacher's potential is computed, and then the six arrays
        S, ∇S, T, ∇T, G, ∇G (3m(d + 2) floats)."""
        m, dim = self.width, self.d + 1
        kept = 8 * m * (1 + dim)
        own = kernel_sums_memory(m, m, dim, self.threads, symmetric=True)
        return max(own, kept + self.teacher.memory(m)) + 3 * kept

    def memory(self, scheme) -> int:
        """Bytes of working memory of a run of this network with ``scheme`` (an estimate, as
        :func:`~sobolev_flow.models.spectral.memory_estimate` for grids).

        Counts the state arrays (m(d + 2) floats each): the solver's state, N and four step-doubling
        buffers, the model's copy of the last evaluated state and the stepper's stage buffers
        (explicit Runge–Kutta: 2 × stages + 1; the proximal step: the 2 × 20 L-BFGS-B correction pairs
        and about 40 Newton–Krylov vectors), plus one evaluation's workspace
        (:meth:`evaluation_memory`), the teacher's weights and the initial balance (m floats).
        """
        state = 8 * self.width * (self.d + 2)
        if scheme.family == "proximal":
            stages = 2 * 20 + 40
        else:
            stages = 2 * len(scheme.c) + 1
        teacher = 8 * getattr(self.teacher, "width", 0) * (self.d + 2)
        return state * (6 + 1 + stages) + self.evaluation_memory() + teacher + 8 * self.width

    @property
    def sobolev_order(self) -> float:
        """s = (d + 3)/2: the relu kernel's eigenvalues on S^d decay like ℓ^{−(d+3)} on the modes it
        does not annihilate (2 on the circle, :class:`~sobolev_flow.kernels.ReluKernel`; 5/2 on S²)."""
        return (self.d + 3) / 2

    def predictions(self, quantities=None) -> dict:
        """The theory's decay law of the loss L (the solver's ``energy``) near a uniform teacher.

        The balanced network's measure ν = (1/m) Σ |w_i|² δ_{ŵ_i} follows the WFR flow (α = 2) of
        the relu kernel discrepancy, whose high modes decay like those of the Sobolev case
        s = (d + 3)/2 (:attr:`sobolev_order`); so for an initial perturbation ρ0 = ν(0) − ν* with
        spectrum |ρ_k(0)|² ∝ |k|^{−p} over d_eff dimensions (``spectrum``),
        L ~ t^{−(2s + p − d_eff)/(2s − 2)} (:func:`sobolev_flow.theory.predictions`): 3.5 for kink data
        on the circle (p = 4, d_eff = 1), 1 for i.i.d. random directions on S² (white noise, p = 0).

        The law concerns the part of ρ the kernel sees: the odd modes |n| ≥ 3 on the circle (odd
        degrees ℓ ≥ 3 on S²) are the kernel's null space, never decay and do not enter L. It holds
        for 1 ≪ t while L stays above the discreteness floor of m neurons and the teacher's own
        ½ Var f*. Returns {} unless the teacher counts as uniform (Var f* ≤ :data:`UNIFORM_RTOL`
        (E f*)², the linearisation the theory makes) and ``spectrum`` is known; no Sobolev norms are
        predicted (the null space keeps them from decaying).
        """
        return theory_predictions(self.sobolev_order, self.spectrum, (), alpha=self.geometry.alpha,
                                  uniform=self.nonuniformity <= UNIFORM_RTOL, norms=False)

    @property
    def fft(self) -> dict:
        return {"fft_backend": "arccos-direct", "threads": self.threads, "fft_effort": "none"}


# ============================================================================ checks and initialisation
def check_network(key, a, w):
    """(a, w) as float arrays of shapes (m,) and (m, d + 1), d ∈ {1, 2}, finite (one-line errors)."""
    a = np.asarray(a, dtype=float)
    w = np.asarray(w, dtype=float)
    if a.ndim != 1 or a.size == 0 or w.ndim != 2 or w.shape[0] != a.size or w.shape[1] not in (2, 3):
        raise ValueError(f"{key}: weights a of shape {a.shape} and w of shape {w.shape}, expected (m,) and "
                         "(m, d + 1) with d = 1 or 2")
    for name, x in (("a", a), ("w", w)):
        bad = ~np.isfinite(x)
        if bad.any():
            i = np.unravel_index(np.argmax(bad), x.shape)
            raise ValueError(f"{key}: {name}[{', '.join(map(str, i))}]={x[i]} is not finite")
    return a, w


def directions(width: int, d: int, kind: str, rng=None) -> np.ndarray:
    """Unit vectors in R^{d+1}: on a grid (d = 1: angles 2πi/m, the points of an m-point grid of
    the circle; d = 2: the Fibonacci lattice of the sphere) or uniformly at random."""
    if kind == "random":
        g = rng.standard_normal((width, d + 1))
        return g / np.linalg.norm(g, axis=1)[:, None]
    if d == 1:
        theta = 2 * np.pi * np.arange(width) / width
        return np.column_stack([np.cos(theta), np.sin(theta)])
    i = np.arange(width) + 0.5
    z = 1 - 2 * i / width
    phi = math.pi * (3 - math.sqrt(5)) * i
    rho = np.sqrt(1 - z * z)
    return np.column_stack([rho * np.cos(phi), rho * np.sin(phi), z])


def initial_network(width: int, d: int, init="grid", scale=1.0, balanced=True, seed=0, mu0=None, grid=None):
    """Initial weights (a, w): directions from ``init`` ("grid", "random", or for d = 1 "density":
    grid directions with |w_i|² = μ0(θ_i), so that ν(0) = (1/m) Σ μ0(θ_i) δ_{θ_i} ≈ μ0 dm); |w_i| =
    ``scale`` otherwise; a_i = |w_i| (balanced) or a_i = ``scale`` × N(0, 1).
    """
    rng = np.random.default_rng(seed)
    if init == "density":
        if d != 1 or mu0 is None:
            raise ValueError(f"network.init='density': needs network.d=1 and an initial density, got d={d}")
        from .particles import _interpolate

        u = directions(width, 1, "grid")
        theta = np.arctan2(u[:, 1], u[:, 0])
        values = _interpolate(grid, mu0, theta[:, None])
        if np.any(values < 0):
            raise ValueError("network.init='density': the initial density is negative at some neuron")
        w = u * np.sqrt(scale * values)[:, None]
    else:
        w = scale * directions(width, d, init, rng)
    r = np.linalg.norm(w, axis=1)
    a = r.copy() if balanced else scale * rng.standard_normal(width)
    return a, w


def perturbation_spectrum(init, d: int, balanced=True, density_spec=None):
    """(p, d_eff) of the spectrum |ρ_k(0)|² ∝ |k|^{−p} of ρ0 = ν(0) − ν* for balanced initial neurons
    (:func:`initial_network`), or None.

    "random": m i.i.d. uniform directions make ν(0) the uniform measure plus white noise,
    E|ρ_k|² = M²/m for every mode k ≠ 0 (p = 0 over d dimensions); "density" (d = 1): the spectrum of
    μ0 = ``density_spec`` (:func:`sobolev_flow.initial.spectrum_exponent`: p = 4 over 1 for kink
    data), over the modes |n| < m/2 the m neurons resolve. A uniform teacher adds nothing but its
    mean. Unbalanced neurons (their measure does not follow the WFR flow), a grid of directions
    (no power-law spectrum) and weights from a file give None.
    """
    if not balanced:
        return None
    if init == "random":
        return 0.0, d
    if init == "density" and d == 1:
        from ..initial import spectrum_exponent

        return spectrum_exponent(density_spec, 1)
    return None


def load_network(key, path, d=None, width=None, label=None):
    """Arrays ``a`` (m,) and ``w`` (m, d + 1) from a .npz file; one-line errors name ``key`` and
    ``label`` (the path as the user gave it; default ``path``)."""
    where = f"{key}={str(path if label is None else label)!r}"
    try:
        with np.load(path, allow_pickle=False) as data:
            if "a" not in data or "w" not in data:
                raise ValueError(f"{where}: expected arrays 'a' and 'w' in the .npz, found {', '.join(data.files) or 'none'}")
            a, w = data["a"], data["w"]
    except FileNotFoundError:
        raise ValueError(f"{where}: no such file") from None
    except (OSError, EOFError, AttributeError) as err:
        raise ValueError(f"{where}: cannot be read as a .npz ({err.__class__.__name__})") from None
    a, w = np.asarray(a), np.asarray(w)
    columns = "d + 1" if d is None else str(d + 1)
    rows = "m" if width is None else str(width)
    if a.ndim != 1 or w.ndim != 2 or w.shape[0] != a.shape[0] or (d is not None and w.shape[1] != d + 1) \
            or (width is not None and a.shape[0] != width):
        raise ValueError(f"{where}: a of shape {a.shape} and w of shape {w.shape}, expected ({rows},) and ({rows}, {columns})")
    return check_network(where, a, w)
