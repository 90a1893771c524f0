"""Time-stepping schemes for ∂t u = L u + N(u) with L diagonal, real and non-positive.

Each scheme is data (its coefficients, order and a reference) in one of three families, and
each family has one generic algorithm:

* :class:`ExplicitRK` — explicit Runge–Kutta applied to f(u) = L u + N(u);
* :class:`IMEXRK` — additive Runge–Kutta, L implicit (a division, L being diagonal), N explicit;
* :class:`ExponentialRK` — exponential Runge–Kutta: L integrated exactly, the stage and
  update weights being combinations of the functions φ_j(c h L).

Schemes are registered in :data:`SCHEMES` under their name; the tests iterate over it. A
stepper is built on a model (:mod:`sobolev_flow.models.base`): it calls ``model.explicit``, reads
``model.linear`` (None for explicit schemes on a model without a linear part) and takes its
buffers from ``model.empty()``. Every scheme has c_1 = 0 with first stage u itself, so a step
takes N(u) from its caller: the solver reuses it for diagnostics and between the two halves of
step doubling.

Every scheme also carries an embedded solution û of lower order p̂ (``order_hat``): weights b̂
(``b_hat``; for IMEX schemes one vector for N and one for L U) whose entry past the last stage,
if any, weights the slope at the new state (first same as last). The generic algorithm returns
u_new − û = h Σ_i (b_i − b̂_i) k_i − h b̂_{s+1} k(u_new), the local error estimate of the solver's
embedded error control; its order is verified in ``tests/test_error_control.py``. Each scheme
also records ``cfl_limit``, its largest stable CFL number on the advective part, measured by
``benchmarks/stability.py``.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

__all__ = ["phi", "phis", "ExplicitRK", "IMEXRK", "ExponentialRK", "SCHEMES", "get_scheme", "register"]

#: Below this |z| the φ-functions are summed from their Taylor series.
PHI_SERIES_RADIUS = 1.0
#: The bound on the relative truncation error of the series (:func:`phi_series_terms`).
PHI_SERIES_TOLERANCE = 1e-21


def phi_series_terms(j: int, radius: float) -> int:
    """The degree T of the Taylor polynomial Σ_{m≤T} z^m/(m + j)! of φ_j whose truncation error
    is below :data:`PHI_SERIES_TOLERANCE` relative to φ_0, …, φ_j for |z| ≤ ``radius`` < 2.

    The tail is at most 2 r^{T+1}/(T + 1 + j)! (a geometric series of ratio r/(T + 2 + j) ≤ ½),
    and φ_i(z) ≥ e^{−r}/i! ≥ e^{−r}/j! for i ≤ j; the recurrence φ_i = 1/i! + z φ_{i+1} carries the
    error of φ_j down multiplied by |z|^{j−i} ≤ 1. The bound 2 e^r j! r^{T+1}/(T + 1 + j)! is
    thus the relative error of every order (T = 22 at r = 1, j = 0; 7 at r = 0.01, j = 3).
    """
    scale = 2.0 * math.exp(radius) * math.factorial(j)
    terms = 0
    while scale * radius ** (terms + 1) / math.factorial(terms + 1 + j) > PHI_SERIES_TOLERANCE:
        terms += 1
    return terms


def phis(order: int, z) -> list:
    """[φ_0(z), φ_1(z), …, φ_J(z)] for J = ``order`` and real z, each as :func:`phi` defines it.

    Notes
    -----
    φ_0 = e^z. Where |z| < 1, φ_J is summed by Horner's rule to the degree
    :func:`phi_series_terms` gives for the largest such |z| (truncation error below 1e-21
    relative), then φ_j = 1/j! + z φ_{j+1} downward (stable: an error is multiplied by |z| < 1);
    where |z| ≥ 1, φ_1 = expm1(z)/z and φ_{j+1} = (φ_j − 1/j!)/z upward, which loses at most about
    one digit at |z| = 1 and is exact to rounding as |z| grows. Every order is accurate to a few
    ulps relative, including at z → 0 and z → −∞; one call costs about one φ_J.
    """
    z = np.asarray(z, dtype=float)
    shape, z = z.shape, z.reshape(-1)
    small = np.abs(z) < PHI_SERIES_RADIUS
    if order == 0:
        rest = []
    elif small.all():
        rest = _phis_series(order, z)
    elif not small.any():
        rest = _phis_recurrence(order, z)
    else:
        rest = [np.empty_like(z) for _ in range(order)]
        for parts, where in ((_phis_series(order, z[small]), small), (_phis_recurrence(order, z[~small]), ~small)):
            for value, part in zip(rest, parts):
                value[where] = part
    return [value.reshape(shape) for value in [np.exp(z)] + rest]


def _phis_series(order, z) -> list:
    """[φ_1, …, φ_J](z) for |z| < 1: φ_J by Horner's rule, the others by φ_j = 1/j! + z φ_{j+1}."""
    radius = float(np.max(np.abs(z), initial=0.0))
    terms = phi_series_terms(order, radius)
    acc = np.full_like(z, 1.0 / math.factorial(terms + order))
    for m in range(terms - 1, -1, -1):
        acc *= z
        acc += 1.0 / math.factorial(m + order)
    values = [acc]
    for j in range(order - 1, 0, -1):
        value = z * values[0]
        value += 1.0 / math.factorial(j)
        values.insert(0, value)
    return values


def _phis_recurrence(order, z) -> list:
    """[φ_1, …, φ_J](z) for |z| ≥ 1: φ_1 = expm1(z)/z, φ_{j+1} = (φ_j − 1/j!)/z."""
    values = [np.expm1(z) / z]
    for j in range(1, order):
        values.append((values[-1] - 1.0 / math.factorial(j)) / z)
    return values


def phi(j: int, z) -> np.ndarray:
    """φ_j(z) = Σ_{m≥0} z^m / (m + j)!   for real z.

    φ_0(z) = e^z, φ_1(z) = (e^z − 1)/z, φ_{j+1}(z) = (φ_j(z) − 1/j!)/z, φ_j(0) = 1/j!.

    Notes
    -----
    The last of :func:`phis` (``j``, z): for |z| < 1 the Taylor series summed by Horner's rule
    (truncation error below 1e-21); for |z| ≥ 1 the recurrence starting from ``expm1(z)/z``,
    which loses at most about one digit at |z| = 1 and is exact to rounding as |z| grows. Both
    branches are accurate to a few ulps relative, including at z → 0 and z → −∞.
    """
    return phis(j, z)[j]


# ============================================================================ schemes as data
@dataclass(frozen=True)
class ExplicitRK:
    """Explicit Runge–Kutta scheme given by its Butcher tableau (c, a, b)."""

    name: str
    order: int
    c: tuple
    a: tuple
    b: tuple
    reference: str
    #: stability interval on the negative real axis (in units of h·|L|)
    real_stability: float = 2.0
    #: embedded weights b̂ (an entry past the last stage weights f at the new state, FSAL)
    b_hat: tuple = None
    #: order p̂ of the embedded solution
    order_hat: int = None
    #: largest stable CFL number on the advective part h·max|∇ψ|/min(dx), measured by benchmarks/stability.py
    cfl_limit: float = None

    family = "explicit"

    def stepper(self, model):
        return _ExplicitRKStepper(self, model)


@dataclass(frozen=True)
class IMEXRK:
    """Additive (IMEX) Runge–Kutta scheme: explicit tableau for N, DIRK tableau for L."""

    name: str
    order: int
    c: tuple
    a_explicit: tuple
    a_implicit: tuple
    b_explicit: tuple
    b_implicit: tuple
    reference: str
    real_stability: float = math.inf
    #: embedded weights for N and for L U (an entry past the last stage weights the new state, FSAL)
    b_hat_explicit: tuple = None
    b_hat_implicit: tuple = None
    order_hat: int = None
    cfl_limit: float = None

    family = "imex"

    def stepper(self, model):
        return _IMEXRKStepper(self, model)


@dataclass(frozen=True)
class ExponentialRK:
    """Exponential Runge–Kutta scheme.

    Stage i: U_i = e^{c_i z} u + h Σ_{j<i} a_ij(z) N(U_j); update u ← e^{z} u + h Σ_i b_i(z) N(U_i),
    with z = hL. The entries of ``a`` (a dict {(i, j): f}) and ``b`` are functions
    ``f(phi)`` of an evaluator ``phi(j, c) = φ_j(c z)``.
    """

    name: str
    order: int
    c: tuple
    a: dict
    b: tuple
    reference: str
    real_stability: float = math.inf
    #: embedded weights b̂_i(z) (functions of the φ evaluator like ``b``; an entry past the last
    #: stage weights N at the new state, FSAL)
    b_hat: tuple = None
    order_hat: int = None
    cfl_limit: float = None

    family = "exponential"

    def stepper(self, model):
        return _ExponentialRKStepper(self, model)


SCHEMES: dict = {}


def register(scheme):
    """Add a scheme to :data:`SCHEMES` (at import time) and return it."""
    if scheme.c[0] != 0:
        raise ValueError(f"scheme {scheme.name!r}: the first stage must be at c = 0")
    SCHEMES[scheme.name] = scheme
    return scheme


def get_scheme(name: str):
    """The registered scheme called ``name``; a misspelt name gets a suggestion."""
    try:
        return SCHEMES[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), SCHEMES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"scheme={name!r}: unknown scheme{hint} valid: {', '.join(SCHEMES)}") from None


#: The fraction of a scheme's measured CFL limit (``cfl_limit``) the solver uses by default.
#: The limits are the output of ``python benchmarks/stability.py``: the smallest over
#: :data:`~sobolev_flow.validation.STABILITY_PROBLEMS` (1-D 256, 2-D 128² and 256², bump data) of
#: the largest cfl at which 400 steps at the bound stay bounded (an amplification of the high
#: modes below 1.018 per step). The limit still falls slowly as the grid is refined, towards the
#: frozen-coefficient bound of the scheme's stability interval on the imaginary axis; the margin
#: of 0.9 covers that (for rk4 and etdrk4 it puts the default at that bound, 2√2/(π√2) ≈ 0.64 in 2-D).
CFL_FRACTION = 0.9

register(ExplicitRK(
    name="rk4", cfl_limit=0.725, order=4,
    c=(0, 0.5, 0.5, 1),
    a=((), (0.5,), (0, 0.5), (0, 0, 1)),
    b=(1 / 6, 1 / 3, 1 / 3, 1 / 6),
    # the last stage's slope replaced by the slope at the new state: û − u_new = h/6 (f(u_new) − k_4)
    b_hat=(1 / 6, 1 / 3, 1 / 3, 0, 1 / 6), order_hat=3,
    real_stability=2.785,
    reference="Kutta (1901): the classical fourth-order Runge-Kutta method; the embedded third-order "
              "solution swaps k_4 for f(u_new) (first same as last)",
))

register(ExplicitRK(
    name="bs32", cfl_limit=0.480, order=3,
    c=(0, 0.5, 0.75),
    a=((), (0.5,), (0, 0.75)),
    b=(2 / 9, 1 / 3, 4 / 9),
    b_hat=(7 / 24, 1 / 4, 1 / 3, 1 / 8), order_hat=2,
    real_stability=2.512,
    reference="Bogacki & Shampine, Appl. Math. Lett. 2 (1989) 321-325: the 3(2) pair, first same as last",
))

_G = 1 - 1 / math.sqrt(2)
_D = 1 - 1 / (2 * _G)
register(IMEXRK(
    name="ars222", cfl_limit=0.062, order=2,
    c=(0, _G, 1),
    a_explicit=((), (_G,), (_D, 1 - _D)),
    a_implicit=((0,), (0, _G), (0, 1 - _G, _G)),
    b_explicit=(_D, 1 - _D, 0),
    b_implicit=(0, 1 - _G, _G),
    # IMEX Euler through the last stage (= u_new, the scheme being stiffly accurate): u + h N(u) + h L u_new
    b_hat_explicit=(1, 0, 0), b_hat_implicit=(0, 0, 1), order_hat=1,
    reference="Ascher, Ruuth & Spiteri, Appl. Numer. Math. 25 (1997) 151-167, scheme (2,2,2): L-stable, "
              "stiffly accurate; embedded first-order IMEX Euler",
))

_GK = 1767732205903 / 4055673282236
_BK = (1471266399579 / 7840856788654, -4482444167858 / 7529755066697, 11266239266428 / 11593286722821, _GK)
_BK_HAT = (2756255671327 / 12835298489170, -10771552573575 / 22201958757719, 9247589265047 / 10645013368117,
           2193209047091 / 5459859503100)
register(IMEXRK(
    name="ark324", cfl_limit=0.056, order=3,
    c=(0, 2 * _GK, 3 / 5, 1),
    a_explicit=((), (2 * _GK,), (5535828885825 / 10492691773637, 788022342437 / 10882634858940),
                (6485989280629 / 16251701735622, -4246266847089 / 9704473918619, 10755448449292 / 10357097424841)),
    a_implicit=((0,), (_GK, _GK), (2746238789719 / 10658868560708, -640167445237 / 6845629431997, _GK), _BK),
    b_explicit=_BK,
    b_implicit=_BK,
    b_hat_explicit=_BK_HAT, b_hat_implicit=_BK_HAT, order_hat=2,
    reference="Kennedy & Carpenter, Appl. Numer. Math. 44 (2003) 139-181, ARK3(2)4L[2]SA: L-stable, "
              "stiffly accurate, embedded second order",
))

_ETD4_B4 = (lambda p: 4 * p(3, 1) - p(2, 1))
register(ExponentialRK(
    name="etdrk4", cfl_limit=0.725, order=4,
    c=(0, 0.5, 0.5, 1),
    a={
        (1, 0): lambda p: 0.5 * p(1, 0.5),
        (2, 1): lambda p: 0.5 * p(1, 0.5),
        (3, 0): lambda p: 0.5 * p(1, 0.5) * (p(0, 0.5) - 1),
        (3, 2): lambda p: p(1, 0.5),
    },
    b=(
        lambda p: p(1, 1) - 3 * p(2, 1) + 4 * p(3, 1),
        lambda p: 2 * p(2, 1) - 4 * p(3, 1),
        lambda p: 2 * p(2, 1) - 4 * p(3, 1),
        _ETD4_B4,
    ),
    # N(U_4) swapped for N(u_new): û − u_new = h (4φ_3 − φ_2)(N(u_new) − N(U_4)), third order
    # (the exponential analogue of rk4's pair; verified in tests/test_error_control.py)
    b_hat=(
        lambda p: p(1, 1) - 3 * p(2, 1) + 4 * p(3, 1),
        lambda p: 2 * p(2, 1) - 4 * p(3, 1),
        lambda p: 2 * p(2, 1) - 4 * p(3, 1),
        lambda p: 0.0,
        _ETD4_B4,
    ),
    order_hat=3,
    reference="Cox & Matthews, J. Comput. Phys. 176 (2002) 430-455; phi-function form of "
              "Hochbruck & Ostermann, Acta Numerica 19 (2010) 209-286; embedded third-order solution "
              "with N at the new state (first same as last), after Whalen, Brio & Moloney, "
              "J. Comput. Phys. 280 (2015) 579-601",
))

register(ExponentialRK(
    name="etdrk2", cfl_limit=0.107, order=2,
    c=(0, 1),
    a={(1, 0): lambda p: p(1, 1)},
    b=(lambda p: p(1, 1) - p(2, 1), lambda p: p(2, 1)),
    # exponential Euler, first order: û − u_new = h φ_2 (N(u) − N(U_2))
    b_hat=(lambda p: p(1, 1), lambda p: 0.0), order_hat=1,
    reference="Cox & Matthews, J. Comput. Phys. 176 (2002) 430-455, ETD2RK, with exponential Euler embedded",
))


# ============================================================================ generic algorithms
def distinct_values(linear: np.ndarray) -> tuple:
    """(values, index): the distinct entries of the symbol L and, for every entry, the position of
    its value (the smallest integer type that holds it), so that f(L) = np.take(f(values), index)
    costs f on the few distinct values (L depends on |k|² alone) and one gather."""
    values, inverse = np.unique(linear, return_inverse=True)
    index = np.int32 if values.size < 2**31 else np.int64
    return values, inverse.reshape(linear.shape).astype(index)


def _padded(weights, length) -> tuple:
    """``weights`` extended by zeros to ``length`` entries."""
    return tuple(weights) + (0,) * (length - len(weights))


class _Stepper:
    """Shared buffers and helpers of the generic algorithms.

    ``step(u, h, n0, out, err=None)`` writes the new state into ``out`` given N(u) in ``n0``;
    neither ``u`` nor ``n0`` is modified, and ``out`` must alias neither. With ``err`` (a
    buffer like the state) it also writes the stage part of the embedded error estimate
    u_new − û = h Σ_i (b_i − b̂_i) k_i, and :meth:`complete_error` then adds the part of the
    new state, − h b̂_{s+1} k(u_new), given N(u_new) (which the next step needs as its first
    stage anyway, first same as last). An accepted step thus costs its stages plus the one
    evaluation at the new state.
    """

    def __init__(self, scheme, model):
        if model.linear is None and scheme.family != "explicit":
            raise ValueError(f"scheme={scheme.name!r}: {scheme.family} schemes need a model with a linear part; "
                             f"valid: {', '.join(name for name, s in SCHEMES.items() if s.family == 'explicit')}")
        self.scheme = scheme
        self.model = model
        self.linear = model.linear
        self.stages = len(scheme.c)
        self._n = [None] + [model.empty() for _ in range(self.stages - 1)]
        self._u = model.empty() if self.needs_scratch else None
        self._tmp = model.empty() if self.needs_scratch else None

    #: Whether the algorithm needs a stage buffer and a scratch array of its own.
    needs_scratch = True

    @property
    def embedded(self) -> bool:
        """Whether the scheme carries an embedded solution."""
        return self.scheme.order_hat is not None

    def _accumulate(self, out, terms, tmp=None):
        """out += Σ coef · x over (coef, x) pairs, coef a scalar or a real array; ``tmp`` (default
        the stepper's scratch) receives each product and must alias none of the arrays."""
        tmp = self._tmp if tmp is None else tmp
        for coef, x in terms:
            if coef is None:
                continue
            if np.isscalar(coef):
                if coef == 0:
                    continue
                np.multiply(x, coef, out=tmp)
            else:
                np.multiply(coef, x, out=tmp)
            out += tmp

    def _require_embedded(self):
        if not self.embedded:
            raise ValueError(f"scheme={self.scheme.name!r}: has no embedded solution; use error_estimate='doubling'")

    @property
    def evaluations_per_step(self) -> int:
        """Evaluations of N per step besides the given N(u)."""
        return sum(self._needs_stage(i) for i in range(1, self.stages))

    def _needs_stage(self, i) -> bool:
        return True


def _combination(weights) -> tuple:
    """(coefficients, rows) of the non-zero ``weights``, as :func:`sobolev_flow.fused.combine` takes them."""
    rows = [j for j, w in enumerate(weights) if w != 0]
    return np.array([weights[j] for j in rows], dtype=float), np.array(rows, dtype=np.int64)


class _ExplicitRKStepper(_Stepper):
    """With a model whose element-wise work is compiled (``model.kernels == "numba"``, complex
    states) each stage value U_i = u + h Σ_j a_ij k_j, each slope k_i = L U_i + N(U_i) and the
    update u + h Σ_i b_i k_i (and the error estimate's combination) is one pass of
    :mod:`sobolev_flow.fused` over the slopes, kept in one block; the results are those of the
    numpy passes to the last bit (the same operations in the same order)."""

    def __init__(self, scheme, model):
        super().__init__(scheme, model)
        self._fused = _stepping_kernels(model)
        if self._fused is None:
            self._k = [model.empty() for _ in range(self.stages)]
        else:
            block = np.empty((self.stages,) + self._u.shape, complex)
            self._k = list(block)
            self._slopes = block.reshape(self.stages, -1).view(float)
            self._linear = None if self.linear is None else np.ascontiguousarray(self.linear, dtype=float).reshape(-1)
            self._no_base = np.empty(0)
            self._stage_weights = [None] + [_combination(a) for a in scheme.a[1:]]
            self._update_weights = _combination(scheme.b)
        if self.embedded:
            b_hat = _padded(scheme.b_hat, self.stages + 1)
            self._b_diff = [b - bh for b, bh in zip(scheme.b, b_hat)]
            self._b_hat_new = b_hat[self.stages]
            if self._fused is not None:
                self._diff_weights = _combination(self._b_diff)

    def _slope(self, u, n, out):
        """out ← f(u) = L u + N(u) given N(u) in ``n`` (N alone for a model without a linear part)."""
        if self.linear is None:
            out[...] = n
        else:
            np.multiply(self.linear, u, out=out)
            out += n
        return out

    def step(self, u, h, n0, out, err=None):
        if self._fused is not None and all(a.flags.c_contiguous for a in (u, n0, out)) and (
                err is None or err.flags.c_contiguous):
            return self._step_fused(u, h, n0, out, err)
        k, stage = self._k, self._u
        self._slope(u, n0, k[0])
        for i in range(1, self.stages):
            # U_i = u + h Σ_j a_ij k_j, then k_i = L U_i + N(U_i)
            stage[...] = u
            self._accumulate(stage, [(h * a, k[j]) for j, a in enumerate(self.scheme.a[i])])
            self.model.explicit(stage, out=k[i])
            if self.linear is not None:
                np.multiply(self.linear, stage, out=self._tmp)
                k[i] += self._tmp
        # update u + h Σ b_i k_i
        out[...] = u
        self._accumulate(out, [(h * b, k[i]) for i, b in enumerate(self.scheme.b)])
        if err is not None:
            self._require_embedded()
            err[...] = 0
            self._accumulate(err, [(h * d, k[i]) for i, d in enumerate(self._b_diff)])
        return out

    def _step_fused(self, u, h, n0, out, err):
        """:meth:`step` with the compiled combinations (one pass each)."""
        kernels, slopes, stage, linear = self._fused, self._slopes, self._u, self._linear
        chunks = kernels.chunks
        flat_u, flat_stage = u.reshape(-1).view(float), stage.reshape(-1).view(float)
        if linear is None:
            self._k[0][...] = n0
        else:
            kernels.add_linear(slopes[0], linear, flat_u, n0.reshape(-1).view(float), chunks)
        for i in range(1, self.stages):
            coefs, rows = self._stage_weights[i]
            kernels.combine(flat_stage, flat_u, h * coefs, slopes, rows, chunks)
            self.model.explicit(stage, out=self._k[i])
            if linear is not None:
                kernels.add_linear(slopes[i], linear, flat_stage, self._no_base, chunks)
        coefs, rows = self._update_weights
        kernels.combine(out.reshape(-1).view(float), flat_u, h * coefs, slopes, rows, chunks)
        if err is not None:
            self._require_embedded()
            coefs, rows = self._diff_weights
            kernels.combine(err.reshape(-1).view(float), self._no_base, h * coefs, slopes, rows, chunks)
        return out

    def complete_error(self, err, h, u_new, n_new):
        """err −= h b̂_{s+1} f(u_new), given N(u_new) in ``n_new``."""
        if self._b_hat_new:
            self._slope(u_new, n_new, self._tmp)
            self._accumulate(err, [(-h * self._b_hat_new, self._tmp)], tmp=self._u)
        return err


def _stepping_kernels(model):
    """The compiled stage combinations (:func:`sobolev_flow.fused.stepping`, on
    :func:`~sobolev_flow.fused.model_threads`) for a model whose element-wise work is compiled
    and whose states are complex, else None (the numpy passes)."""
    from . import fused

    threads = fused.model_threads(model)
    return None if threads is None else fused.stepping(threads)


class _IMEXRKStepper(_Stepper):
    def __init__(self, scheme, model):
        super().__init__(scheme, model)
        self._lu = [model.empty() for _ in range(self.stages)]
        if self.embedded:
            explicit = _padded(scheme.b_hat_explicit, self.stages + 1)
            implicit = _padded(scheme.b_hat_implicit, self.stages + 1)
            self._diff_explicit = [b - bh for b, bh in zip(scheme.b_explicit, explicit)]
            self._diff_implicit = [b - bh for b, bh in zip(scheme.b_implicit, implicit)]
            self._hat_new = (explicit[self.stages], implicit[self.stages])

    def _needs_stage(self, i):
        s = self.scheme
        weights = (s.b_explicit,) + ((s.b_hat_explicit,) if s.b_hat_explicit else ())
        return (any(len(b) > i and b[i] != 0 for b in weights)
                or any(len(row) > i and row[i] != 0 for row in s.a_explicit))

    def step(self, u, h, n0, out, err=None):
        s, L, stage = self.scheme, self.linear, self._u
        n = [n0] + self._n[1:]
        for i in range(self.stages):
            # explicit sum: u + h Σ_{j<i} (aE_ij N_j + aI_ij L U_j)
            stage[...] = u
            self._accumulate(stage, [(h * a, n[j]) for j, a in enumerate(s.a_explicit[i])])
            self._accumulate(stage, [(h * a, self._lu[j]) for j, a in enumerate(s.a_implicit[i][:i])])
            # implicit solve (1 − h aI_ii L) U_i = stage, diagonal
            gamma = s.a_implicit[i][i] if len(s.a_implicit[i]) > i else 0.0
            if gamma != 0:
                stage /= 1.0 - h * gamma * L
            np.multiply(L, stage, out=self._lu[i])
            if i > 0 and self._needs_stage(i):
                self.model.explicit(stage, out=n[i])
        out[...] = u
        self._accumulate(out, [(h * b, n[j]) for j, b in enumerate(s.b_explicit)])
        self._accumulate(out, [(h * b, self._lu[j]) for j, b in enumerate(s.b_implicit)])
        if err is not None:
            self._require_embedded()
            err[...] = 0
            self._accumulate(err, [(h * d, n[j]) for j, d in enumerate(self._diff_explicit)])
            self._accumulate(err, [(h * d, self._lu[j]) for j, d in enumerate(self._diff_implicit)])
        return out

    def complete_error(self, err, h, u_new, n_new):
        """err −= h (b̂E_{s+1} N(u_new) + b̂I_{s+1} L u_new), given N(u_new) in ``n_new``."""
        explicit, implicit = self._hat_new
        self._accumulate(err, [(-h * explicit, n_new)])
        if implicit:
            np.multiply(self.linear, u_new, out=self._u)
            self._accumulate(err, [(-h * implicit, self._u)])
        return err


def _phi_orders(scheme) -> dict:
    """{c: the highest j of the φ_j(c z) an exponential scheme's coefficients take}, found by
    evaluating them with an evaluator that records its arguments."""
    orders: dict = {}

    def record(j, c):
        orders[c] = max(j, orders.get(c, 0))
        return 1.0

    for f in [*scheme.a.values(), *scheme.b, *(scheme.b_hat or ())]:
        f(record)
    for c in scheme.c[1:]:
        record(0, c)
    return orders


class _ExponentialRKStepper(_Stepper):
    """Coefficients are computed on the distinct values of L (all φ_j(c z) of one c by one call of
    :func:`phis`, to the highest j the scheme takes there), for the most recent step size (a
    fixed step reuses them; an adaptive step recomputes them as h changes).

    With a model whose element-wise work is compiled (``model.kernels == "numba"``, complex
    states) each stage value U_i = e^{c_i z} u + h Σ_j a_ij(z) N_j, the update and the error
    estimate's combination is one pass of :func:`sobolev_flow.fused.stepping`'s
    ``combine_indexed``, which reads the coefficients through the index of L's distinct values;
    the stage N's are kept in one block. Otherwise the coefficients are gathered into
    preallocated arrays on the spectral layout and combined by numpy passes: equal coefficient
    arrays (e.g. b_2 = b_3 of ETDRK4, e^{c z} for equal c) are stored once, and zero ones (e.g.
    b_i − b̂_i of a stage the embedded solution shares) not at all. The two give the same states
    to the last bit (the same operations in the same order)."""

    CACHE = 1
    needs_scratch = False  # each product goes into a buffer that is free at that moment

    def __init__(self, scheme, model):
        super().__init__(scheme, model)
        self._values, self._inverse = distinct_values(model.linear)
        self._orders = _phi_orders(scheme)
        self._cache: dict = {}
        # preallocated coefficient arrays, one pool per cache slot, reused as h changes
        self._pools = [[] for _ in range(self.CACHE)]
        self._slots: dict = {}
        from . import fused

        self._index = fused.unsigned_index(self._inverse)  # None: an index too wide for the kernels
        self._fused = None if self._index is None else _stepping_kernels(model)
        if self._fused is not None:
            block = np.empty((self.stages - 1,) + self._n[1].shape, complex)
            self._n = [None] + list(block)
            self._terms = block.reshape(self.stages - 1, -1).view(float)
            self._plans: dict = {}
            self._none = np.empty(0)

    def _distinct_coefficients(self, h):
        """The tuple of :meth:`coefficients` on the distinct values of L (arrays of their length;
        None for a coefficient that vanishes)."""
        z = h * self._values
        memo: dict = {}  # c -> [φ_0, …, φ_J](c z), J the highest order the scheme takes at c

        def p(j, c):
            if c not in memo or j >= len(memo[c]):
                memo[c] = phis(max(j, self._orders.get(c, 0)), c * z)
            return memo[c][j]

        def value(v):
            v = np.asarray(v, dtype=float)
            v = v if v.shape == z.shape else np.full(z.shape, v)
            return v if v.any() else None

        s = self.scheme
        diff, hat_new = None, None
        if self.embedded:
            b_hat = list(s.b_hat) + [lambda p: 0.0] * (self.stages + 1 - len(s.b_hat))
            diff = [value(h * (b(p) - bh(p))) for b, bh in zip(s.b, b_hat)]
            hat_new = value(-h * b_hat[self.stages](p))
        return (
            [None] + [value(p(0, c)) for c in s.c[1:]],  # e^{c_1 z} = 1 is never used
            value(p(0, 1)),
            {ij: value(h * f(p)) for ij, f in s.a.items()},
            [value(h * f(p)) for f in s.b],
            diff,
            hat_new,
        )

    def coefficients(self, h):
        """(e^{c_i z}, e^{z}, h·a_ij(z), h·b_i(z), h·(b_i − b̂_i)(z), −h·b̂_{s+1}(z)) for z = hL, as
        arrays on the spectral layout (None for a coefficient that vanishes; the last two None
        without an embedded solution)."""
        if h in self._cache:
            return self._cache[h]
        if len(self._cache) >= self.CACHE:  # evict the oldest step size, reuse its arrays
            oldest = next(iter(self._cache))
            del self._cache[oldest]
            slot = self._slots.pop(oldest)
        else:
            slot = len(self._cache)
        pool = self._pools[slot]
        gathered: dict = {}  # the bytes of a coefficient's distinct values → its gathered array

        def gather(values):
            """The coefficient on the spectral layout, shared with an equal one gathered before."""
            if values is None:
                return None
            key = values.tobytes()
            if key not in gathered:
                if len(gathered) == len(pool):
                    pool.append(np.empty(self._inverse.shape))
                gathered[key] = np.take(values, self._inverse, out=pool[len(gathered)])
            return gathered[key]

        expo, expo_h, ha, hb, diff, hat_new = self._distinct_coefficients(h)
        coefficients = (
            [gather(e) for e in expo],
            gather(expo_h),
            {ij: gather(a) for ij, a in ha.items()},
            [gather(b) for b in hb],
            None if diff is None else [gather(d) for d in diff],
            gather(hat_new),
        )
        self._cache[h] = coefficients
        self._slots[h] = slot
        return coefficients

    def _plan(self, h):
        """The arguments of ``combine_indexed`` for the stages, the update, the error estimate
        and :meth:`complete_error` at step h: per combination (B, F, tables, which) with B the
        multiplier of u (or none), F that of N(u) and the tables those of the stage N's
        ``which`` (rows i − 1 of the block for N_i), all on the distinct values of L."""
        if h in self._plans:
            return self._plans[h]
        expo, expo_h, ha, hb, diff, hat_new = self._distinct_coefficients(h)
        none = self._none

        def combination(base, first, stage_terms):
            rows = [(table, i - 1) for i, table in stage_terms if table is not None]
            tables = np.array([table for table, _ in rows]).reshape(len(rows), self._values.size)
            return (none if base is None else base, none if first is None else first, tables,
                    np.array([row for _, row in rows], dtype=np.int64))

        plan = SimpleNamespace(
            stages=[None] + [combination(expo[i], ha.get((i, 0)), [(j, ha.get((i, j))) for j in range(1, i)])
                             for i in range(1, self.stages)],
            update=combination(expo_h, hb[0], list(enumerate(hb))[1:]),
            error=None if diff is None else combination(None, diff[0], list(enumerate(diff))[1:]),
            complete=hat_new,
        )
        self._plans = {h: plan}  # the most recent step size
        return plan

    def _compiled(self, *arrays) -> bool:
        """Whether the compiled combinations apply to these arrays (C-contiguous)."""
        return self._fused is not None and all(a is None or a.flags.c_contiguous for a in arrays)

    def step(self, u, h, n0, out, err=None):
        """Stage values are formed in ``out`` (free until the update) and every product goes
        into a buffer that is free at that moment, so the stepper owns only the stage N's."""
        if self._compiled(u, n0, out, err):
            return self._step_fused(u, h, n0, out, err)
        expo, expo_h, ha, hb, diff, _ = self.coefficients(h)
        n, stage = [n0] + self._n[1:], out
        for i in range(1, self.stages):
            # U_i = e^{c_i z} u + h Σ_j a_ij N_j, then N_i = N(U_i); N_i's buffer is free until then
            np.multiply(expo[i], u, out=stage)
            self._accumulate(stage, [(ha.get((i, j)), n[j]) for j in range(i)], tmp=n[i])
            self.model.explicit(stage, out=n[i])
        if err is not None:  # h Σ (b_i − b̂_i) N_i, the products in ``out`` (free until the update)
            self._require_embedded()
            err[...] = 0
            self._accumulate(err, [(d, n[i]) for i, d in enumerate(diff)], tmp=out)
        # update e^{z} u + h Σ b_i N_i: the stage N's are scaled in place once used (the caller's
        # n0 is not), and the first of them, consumed, then holds e^{z} u
        np.multiply(hb[0], n0, out=out)
        for i in range(1, self.stages):
            np.multiply(n[i], hb[i], out=n[i])
            out += n[i]
        np.multiply(expo_h, u, out=n[1])
        out += n[1]
        return out

    def _combine(self, out, base, combination, first, base_last=False):
        """out ← B base + F first + Σ_t T_t N_t of a :meth:`_plan` combination, one compiled pass."""
        base_table, first_table, tables, which = combination
        kernels, none = self._fused, self._none
        flat = (none if a is None else a.reshape(-1).view(float) for a in (out, base, first))
        out, base, first = flat
        kernels.combine_indexed(out, base, base_table, first if first_table.size else none, first_table, self._terms,
                                tables, which, self._index, base_last, kernels.chunks)

    def _step_fused(self, u, h, n0, out, err):
        """:meth:`step` with the compiled combinations (one pass each, the coefficients read
        through the index of L's distinct values)."""
        plan = self._plan(h)
        for i in range(1, self.stages):
            self._combine(out, u, plan.stages[i], n0)
            self.model.explicit(out, out=self._n[i])
        if err is not None:
            self._require_embedded()
            self._combine(err, None, plan.error, n0)
        self._combine(out, u, plan.update, n0, base_last=True)  # h Σ b_i N_i, then + e^{z} u
        return out

    def complete_error(self, err, h, u_new, n_new):
        """err −= h b̂_{s+1}(z) N(u_new); the product goes into a stage buffer (free after a step)."""
        if self._compiled(err, n_new):
            hat_new = self._plan(h).complete
            if hat_new is not None:
                self._combine(err, err, (self._none, hat_new, np.empty((0, self._values.size)), np.empty(0, np.int64)),
                              n_new)
            return err
        self._accumulate(err, [(self.coefficients(h)[5], n_new)], tmp=self._n[1])
        return err

# ============================================================================ training schemes
# First-order schemes of network training at a fixed learning rate γ (the solver's fixed step,
# ``time.dt``). The accuracy studies of the integrators (observed orders, exact solutions, linear
# rates) iterate over the other schemes; these two are checked against the gradient flow instead.
@dataclass(frozen=True)
class ProximalPoint:
    """The proximal-point method u ← argmin_v E(v) + (1/2h)‖v − u‖² (backward Euler for u̇ = −∇E):
    the model's ``proximal(u, h, out)`` solves the inner problem, to its documented tolerance."""

    name: str
    order: int
    c: tuple
    reference: str
    real_stability: float = math.inf
    #: no embedded solution and no CFL limit: a training scheme takes the fixed step it is given
    b_hat: tuple = None
    order_hat: int = None
    cfl_limit: float = None

    family = "proximal"

    def stepper(self, model):
        return _ProximalStepper(self, model)


class _ProximalStepper:
    """``step(u, h, n0, out)``: out ← the model's proximal step of size h from u (n0 is not used)."""

    evaluations_per_step = 1

    def __init__(self, scheme, model):
        if not hasattr(model, "proximal"):
            raise ValueError(f"scheme={scheme.name!r}: needs a model with a proximal step (model.method='network'), "
                             f"got {getattr(model, 'name', type(model).__name__)!r}")
        self.scheme, self.model = scheme, model

    def step(self, u, h, n0, out):
        self.model.proximal(u, h, out)
        return out


register(ExplicitRK(
    name="gd", order=1,
    c=(0,), a=((),), b=(1,),
    real_stability=2.0,
    reference="forward Euler; with a fixed step γ it is gradient descent θ ← θ − γ m∇L at learning rate γ",
))

register(ProximalPoint(
    name="prox", order=1, c=(0,),
    reference="backward Euler as the proximal-point method (Rockafellar, SIAM J. Control Optim. 14 (1976) 877-898)",
))

#: Schemes for training at a fixed learning rate, left out of the integrators' accuracy studies.
TRAINING_SCHEMES = ("gd", "prox")
