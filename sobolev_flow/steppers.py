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
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass

import numpy as np

__all__ = ["phi", "ExplicitRK", "IMEXRK", "ExponentialRK", "SCHEMES", "get_scheme", "register"]

#: Below this |z| the φ-functions are summed from their Taylor series.
PHI_SERIES_RADIUS = 1.0
_PHI_SERIES_TERMS = 22


def phi(j: int, z) -> np.ndarray:
    """φ_j(z) = Σ_{m≥0} z^m / (m + j)!   for real z.

    φ_0(z) = e^z, φ_1(z) = (e^z − 1)/z, φ_{j+1}(z) = (φ_j(z) − 1/j!)/z, φ_j(0) = 1/j!.

    Notes
    -----
    For |z| < 1 the Taylor series is summed by Horner's rule (22 terms, truncation error
    below 1e-21); for |z| ≥ 1 the recurrence starting from ``expm1(z)/z`` is used, which
    loses at most about one digit at |z| = 1 and is exact to rounding as |z| grows. Both
    branches are accurate to a few ulps relative, including at z → 0 and z → −∞.
    """
    z = np.asarray(z, dtype=float)
    if j == 0:
        return np.exp(z)
    out = np.empty_like(z)
    small = np.abs(z) < PHI_SERIES_RADIUS
    zs = z[small]
    acc = np.full_like(zs, 1.0 / math.factorial(_PHI_SERIES_TERMS + j))
    for m in range(_PHI_SERIES_TERMS - 1, -1, -1):
        acc = acc * zs + 1.0 / math.factorial(m + j)
    out[small] = acc
    zl = z[~small]
    value = np.expm1(zl) / zl
    for m in range(1, j):
        value = (value - 1.0 / math.factorial(m)) / zl
    out[~small] = value
    return out


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


register(ExplicitRK(
    name="rk4", order=4,
    c=(0, 0.5, 0.5, 1),
    a=((), (0.5,), (0, 0.5), (0, 0, 1)),
    b=(1 / 6, 1 / 3, 1 / 3, 1 / 6),
    real_stability=2.785,
    reference="Kutta (1901): the classical fourth-order Runge-Kutta method",
))

_G = 1 - 1 / math.sqrt(2)
_D = 1 - 1 / (2 * _G)
register(IMEXRK(
    name="ars222", order=2,
    c=(0, _G, 1),
    a_explicit=((), (_G,), (_D, 1 - _D)),
    a_implicit=((0,), (0, _G), (0, 1 - _G, _G)),
    b_explicit=(_D, 1 - _D, 0),
    b_implicit=(0, 1 - _G, _G),
    reference="Ascher, Ruuth & Spiteri, Appl. Numer. Math. 25 (1997) 151-167, scheme (2,2,2): L-stable, stiffly accurate",
))

register(ExponentialRK(
    name="etdrk4", order=4,
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
        lambda p: 4 * p(3, 1) - p(2, 1),
    ),
    reference="Cox & Matthews, J. Comput. Phys. 176 (2002) 430-455; phi-function form of "
              "Hochbruck & Ostermann, Acta Numerica 19 (2010) 209-286",
))

register(ExponentialRK(
    name="etdrk2", order=2,
    c=(0, 1),
    a={(1, 0): lambda p: p(1, 1)},
    b=(lambda p: p(1, 1) - p(2, 1), lambda p: p(2, 1)),
    reference="Cox & Matthews, J. Comput. Phys. 176 (2002) 430-455, ETD2RK",
))


# ============================================================================ generic algorithms
class _Stepper:
    """Shared buffers and helpers of the generic algorithms.

    ``step(u, h, n0, out)`` writes the new state into ``out`` given N(u) in ``n0``; neither
    ``u`` nor ``n0`` is modified, and ``out`` must alias neither.
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

    def _accumulate(self, out, terms, tmp=None):
        """out += Σ coef · x over (coef, x) pairs, coef a scalar or a real array; ``tmp`` (default
        the stepper's scratch) receives each product and must alias none of the arrays."""
        tmp = self._tmp if tmp is None else tmp
        for coef, x in terms:
            if np.isscalar(coef):
                if coef == 0:
                    continue
                np.multiply(x, coef, out=tmp)
            else:
                np.multiply(coef, x, out=tmp)
            out += tmp

    @property
    def evaluations_per_step(self) -> int:
        """Evaluations of N per step besides the given N(u)."""
        return sum(self._needs_stage(i) for i in range(1, self.stages))

    def _needs_stage(self, i) -> bool:
        return True


class _ExplicitRKStepper(_Stepper):
    def __init__(self, scheme, model):
        super().__init__(scheme, model)
        self._k = [model.empty() for _ in range(self.stages)]

    def step(self, u, h, n0, out):
        k, stage, L = self._k, self._u, self.linear
        # stage 1: f(u) = L u + N(u) (N alone for a model without a linear part)
        if L is None:
            k[0][...] = n0
        else:
            np.multiply(L, u, out=k[0])
            k[0] += n0
        for i in range(1, self.stages):
            # U_i = u + h Σ_j a_ij k_j, then k_i = L U_i + N(U_i)
            stage[...] = u
            self._accumulate(stage, [(h * a, k[j]) for j, a in enumerate(self.scheme.a[i])])
            self.model.explicit(stage, out=k[i])
            if L is not None:
                np.multiply(L, stage, out=self._tmp)
                k[i] += self._tmp
        # update u + h Σ b_i k_i
        out[...] = u
        self._accumulate(out, [(h * b, k[i]) for i, b in enumerate(self.scheme.b)])
        return out


class _IMEXRKStepper(_Stepper):
    def __init__(self, scheme, model):
        super().__init__(scheme, model)
        self._lu = [model.empty() for _ in range(self.stages)]

    def _needs_stage(self, i):
        s = self.scheme
        return s.b_explicit[i] != 0 or any(len(row) > i and row[i] != 0 for row in s.a_explicit)

    def step(self, u, h, n0, out):
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
        return out


class _ExponentialRKStepper(_Stepper):
    """Coefficients are computed on the distinct values of L and gathered into preallocated
    arrays, kept for the most recent step size (a fixed step reuses them; an adaptive step
    recomputes them for h and h/2 in any case, since h changes from step to step). Equal
    coefficient arrays (e.g. b_2 = b_3 of ETDRK4, e^{c z} for equal c) are stored once."""

    CACHE = 1
    needs_scratch = False  # each product goes into a buffer that is free at that moment

    def __init__(self, scheme, model):
        super().__init__(scheme, model)
        self._values, self._inverse = np.unique(model.linear, return_inverse=True)
        index = np.int32 if self._values.size < 2**31 else np.int64
        self._inverse = self._inverse.reshape(model.linear.shape).astype(index)
        self._cache: dict = {}
        # preallocated coefficient arrays, one pool per cache slot, reused as h changes
        self._pools = [[] for _ in range(self.CACHE)]
        self._slots: dict = {}

    def coefficients(self, h):
        """(e^{c_i z}, e^{z}, h·a_ij(z), h·b_i(z)) for z = hL, as arrays on the spectral layout."""
        if h in self._cache:
            return self._cache[h]
        if len(self._cache) >= self.CACHE:  # evict the oldest step size, reuse its arrays
            oldest = next(iter(self._cache))
            del self._cache[oldest]
            slot = self._slots.pop(oldest)
        else:
            slot = len(self._cache)
        pool = self._pools[slot]
        z = h * self._values
        memo: dict = {}

        def p(j, c):
            if (j, c) not in memo:
                memo[(j, c)] = phi(j, c * z)
            return memo[(j, c)]

        gathered: list = []

        def gather(values):
            """The coefficient on the spectral layout, shared with an equal one gathered before."""
            values = np.asarray(values, dtype=float)
            for known, array in gathered:
                if np.array_equal(known, values):
                    return array
            if len(gathered) == len(pool):
                pool.append(np.empty(self._inverse.shape))
            array = np.take(values, self._inverse, out=pool[len(gathered)])
            gathered.append((values, array))
            return array

        s = self.scheme
        coefficients = (
            [None] + [gather(p(0, c)) for c in s.c[1:]],  # e^{c_1 z} = 1 is never used
            gather(p(0, 1)),
            {ij: gather(h * f(p)) for ij, f in s.a.items()},
            [gather(h * f(p)) for f in s.b],
        )
        self._cache[h] = coefficients
        self._slots[h] = slot
        return coefficients

    def step(self, u, h, n0, out):
        """Stage values are formed in ``out`` (free until the update) and every product goes
        into a buffer that is free at that moment, so the stepper owns only the stage N's."""
        expo, expo_h, ha, hb = self.coefficients(h)
        n, stage = [n0] + self._n[1:], out
        for i in range(1, self.stages):
            # U_i = e^{c_i z} u + h Σ_j a_ij N_j, then N_i = N(U_i); N_i's buffer is free until then
            np.multiply(expo[i], u, out=stage)
            self._accumulate(stage, [(ha[(i, j)], n[j]) for j in range(i) if (i, j) in ha], tmp=n[i])
            self.model.explicit(stage, out=n[i])
        # update e^{z} u + h Σ b_i N_i: the stage N's are scaled in place once used (the caller's
        # n0 is not), and the first of them, consumed, then holds e^{z} u
        np.multiply(hb[0], n0, out=out)
        for i in range(1, self.stages):
            np.multiply(n[i], hb[i], out=n[i])
            out += n[i]
        np.multiply(expo_h, u, out=n[1])
        out += n[1]
        return out


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
