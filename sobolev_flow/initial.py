"""Named densities for the initial condition μ0 and the target ν.

A density is given by a *spec*: a family name with default parameters (``"uniform"``), a path
ending in ``.npy`` (the ``"file"`` family), or a table with a key ``"family"`` and the family's
parameters, e.g. ``{"family": "powerlaw", "p": 4, "seed": 1}`` (what the TOML table
``density = {family = "powerlaw", p = 4, seed = 1}`` parses to). :func:`density` checks the
spec and builds the density on a :class:`~sobolev_flow.grid.Torus`.

Conventions
-----------
Densities are relative to the uniform probability measure dm = dx / (2π)^d, so the uniform
density is 1 and every density returned here has mean 1 over the grid (up to rounding). They
are finite and strictly positive, except that a ``"file"`` density may contain zeros.
Fourier coefficients are f_k = ∫ f e^{-ik·x} dm (:meth:`Torus.to_spectral`).

*Resolved* wavenumbers are those the solver keeps (:attr:`Torus.resolved`): |k_j| < n_j/2 on
every axis with 3/2 padding, |k_j| < n_j/3 with 2/3 truncation. The families built from
Fourier modes ("mode", "powerlaw", "kink") use resolved modes only, so that the solver's
projection of the initial data leaves them unchanged.

Regularity is stated for ρ = μ − 1 in the Sobolev spaces H^r of the torus,
‖ρ‖²_{H^r} ≍ Σ_k (1 + |k|²)^r |ρ_k|², for the continuum field the family describes (a
truncated Fourier series is smooth; the statements are about the limit of many modes).

Errors
------
Every bad spec raises :class:`ValueError` with a one-line message naming the full key and its
value, e.g. ``initial.density.amplitude=1.5: expected 0 < amplitude < 1``.
"""

from __future__ import annotations

import difflib
import inspect
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .grid import Torus

__all__ = ["density", "spectrum_exponent", "FAMILIES", "uniform", "bumps", "mode", "powerlaw", "kink", "from_file"]


class _SpecError(ValueError):
    """A bad parameter value; :func:`density` prefixes the configuration key."""

    def __init__(self, param, value, message):
        self.param, self.value, self.message = param, value, message
        super().__init__(f"{param}={_show(value)}: {message}")


# =============================================================================== families
def uniform(grid: Torus) -> np.ndarray:
    """The uniform density μ ≡ 1.

    No parameters. μ − 1 = 0 lies in every H^r.

    Parameters
    ----------
    grid : Torus

    Returns
    -------
    numpy.ndarray
        Ones, of shape ``grid.shape``.
    """
    return np.ones(grid.shape)


def bumps(grid: Torus, *, centers=None, weights=None, kappa=4.0, floor=0.1) -> np.ndarray:
    """Smooth periodic (von Mises) bumps on a floor.

    μ ∝ floor + Σ_i w_i exp(κ (Σ_j cos(x_j − c_ij) − d)), normalised to mean 1. Each bump
    equals w_i at its centre c_i and has width about 1/√κ per axis.

    Parameters
    ----------
    grid : Torus
    centers : list of d-vectors, optional
        Bump centres c_i (any real coordinates; they are taken modulo 2π). Default: one bump
        at (π, …, π). In 1-D a flat list of numbers gives one bump per number; in any
        dimension a single d-vector gives one bump.
    weights : list of float, optional
        Positive weights w_i, one per centre. Default: 1 for every bump.
    kappa : float, default 4
        Concentration κ > 0.
    floor : float, default 0.1
        Floor > 0 relative to a unit bump's peak; it keeps μ strictly positive.

    Returns
    -------
    numpy.ndarray
        μ on the grid, mean 1.

    Notes
    -----
    μ is analytic (an entire function of cos and sin of the coordinates), hence μ − 1 ∈ H^r for
    every r. Along each axis a bump's Fourier coefficients are proportional to the modified
    Bessel functions I_k(κ), about exp(−k²/(2κ)) for k ≲ κ and faster than any exponential
    beyond, so the grid resolves μ to rounding error when n_j/2 is well beyond both κ and a few
    √κ (n_j = 32 for the default κ = 4); the modes the grid cannot hold are aliased, not
    removed.
    """
    d = grid.d
    if centers is None:
        c = np.full((1, d), np.pi)
    else:
        c = _array("centers", centers, f"a list of {d}-vectors (one centre per bump)")
        if d == 1 and c.ndim <= 1:
            c = c.reshape(-1, 1)
        elif c.ndim == 1 and c.size == d:
            c = c[None, :]
        if c.ndim != 2 or c.shape[1] != d or c.shape[0] == 0 or not np.all(np.isfinite(c)):
            raise _SpecError("centers", centers, f"expected a list of {d}-vectors (one centre per bump)")
    m = c.shape[0]
    if weights is None:
        w = np.ones(m)
    else:
        what = f"{m} positive finite number{'s' if m > 1 else ''} (one per centre)"
        w = np.atleast_1d(_array("weights", weights, what))
        if w.shape != (m,) or not np.all(np.isfinite(w)) or not np.all(w > 0):
            raise _SpecError("weights", weights, f"expected {what}")
    kappa = _positive("kappa", kappa)
    floor = _positive("floor", floor)
    x = grid.mesh()
    f = np.full(grid.shape, floor)
    for ci, wi in zip(c, w):
        phase = sum(np.cos(xj - cj) for xj, cj in zip(x, ci))
        f += wi * np.exp(kappa * (phase - d))
    return _normalise(f)


def mode(grid: Torus, *, k=None, amplitude=0.5, phase=0.0) -> np.ndarray:
    """A single Fourier mode on the uniform density.

    μ = 1 + amplitude · cos(k·x + phase).

    Parameters
    ----------
    grid : Torus
    k : list of d int, optional
        Nonzero, resolved wavevector (|k_j| < n_j/2 with 3/2 padding, < n_j/3 with 2/3
        truncation). Default: (1, 0, …, 0). In 1-D a plain integer is accepted.
    amplitude : float, default 0.5
        0 < amplitude < 1, so that μ ≥ 1 − amplitude > 0.
    phase : float, default 0
        Phase in radians.

    Returns
    -------
    numpy.ndarray
        μ on the grid, mean 1.

    Notes
    -----
    μ − 1 is a trigonometric polynomial: it lies in every H^r.
    """
    d = grid.d
    if k is None:
        kv = np.zeros(d, dtype=int)
        kv[0] = 1
    else:
        kv = _int_vector("k", k, d)
        if not np.any(kv):
            raise _SpecError("k", k, "expected a nonzero wavevector")
        bound, rule = _resolved_bounds(grid)
        if np.any(np.abs(kv) >= bound):
            raise _SpecError("k", k, f"not resolved on the grid {grid.shape}; expected |k_j| < {rule}")
    amplitude = _amplitude(amplitude)
    phase = _finite("phase", phase)
    arg = sum(kj * xj for kj, xj in zip(kv.tolist(), grid.mesh())) + phase
    return _normalise(np.broadcast_to(1.0 + amplitude * np.cos(arg), grid.shape).copy())


def powerlaw(grid: Torus, *, p, seed=0, amplitude=0.5, kmax=None) -> np.ndarray:
    """A random field with an exact power-law spectrum on the uniform density.

    μ = 1 + ρ, where ρ is real with Fourier coefficients ρ_k = c |k|^{−p/2} e^{iφ_k} for the
    resolved k with 0 < |k|_∞ ≤ kmax and ρ_k = 0 otherwise (in particular at k = 0 and at every
    Nyquist index), so that |ρ_k|² = c² |k|^{−p} exactly in modulus. The phases are uniformly
    random and Hermitian, φ_{−k} = −φ_k (φ_k is the argument of z_k + conj(z_{−k}) for
    independent standard complex Gaussians z, drawn with ``numpy.random.default_rng(seed)``
    on the full spectrum), so ρ is real. The constant c is chosen so that max|ρ| = amplitude
    on the grid.

    Parameters
    ----------
    grid : Torus
    p : float
        Spectral exponent, required; p > d (so that ρ ∈ L² as kmax → ∞).
    seed : int, default 0
        Non-negative seed. The same seed on the same grid gives the same field; another grid
        size with the same seed gives an unrelated field.
    amplitude : float, default 0.5
        max|ρ| on the grid; 0 < amplitude < 1, which guarantees μ ≥ 1 − amplitude > 0.
    kmax : int, optional
        Cut-off on |k|_∞, at least 1 and at most the largest resolved |k_j| of the grid.
        Default: every resolved mode (|k_j| < n_j/2 with 3/2 padding).

    Returns
    -------
    numpy.ndarray
        μ on the grid, mean 1.

    Notes
    -----
    Σ_k |k|^{2r} |k|^{−p} over Z^d converges iff r < (p − d)/2: in the limit kmax → ∞, ρ ∈ H^r
    exactly for r < (p − d)/2 (and not for r = (p − d)/2).
    """
    d = grid.d
    given_p, given_seed = p, seed
    p = _finite("p", p)
    if not p > d:
        raise _SpecError("p", given_p, f"expected p > d = {d} (so that the field is in L^2)")
    seed = _integer("seed", seed)
    if seed < 0:
        raise _SpecError("seed", given_seed, "expected a non-negative integer")
    amplitude = _amplitude(amplitude)
    bound, _ = _resolved_bounds(grid)
    largest = int(max(np.ceil(b) - 1 for b in bound))
    kmax = largest if kmax is None else _kmax(kmax, largest, grid)

    # integer wavenumbers of the full spectrum (Nyquist index n/2 kept as +n/2, masked below)
    ks = []
    for axis, n in enumerate(grid.shape):
        k = np.arange(n)
        k = np.where(k <= n // 2, k, k - n)
        view = [1] * d
        view[axis] = n
        ks.append(k.reshape(view))
    mask = np.ones(grid.shape, dtype=bool)
    for k, b in zip(ks, bound):
        mask &= (np.abs(k) < b) & (np.abs(k) <= kmax)
    mask[(0,) * d] = False
    k2 = sum(k.astype(float) ** 2 for k in ks)
    modulus = np.zeros(grid.shape)
    modulus[mask] = np.broadcast_to(k2, grid.shape)[mask] ** (-p / 4)

    rng = np.random.default_rng(seed)
    z = rng.standard_normal(grid.shape) + 1j * rng.standard_normal(grid.shape)
    z_minus = z
    for axis in range(d):  # z_minus[k] = z[-k], indices taken modulo n
        z_minus = np.roll(np.flip(z_minus, axis=axis), 1, axis=axis)
    w = z + np.conj(z_minus)  # w[-k] = conj(w[k]) exactly
    size = np.abs(w)
    unit = np.divide(w, size, out=np.ones_like(w), where=size > 0)
    full = modulus * unit
    half = full[..., : grid.shape[-1] // 2 + 1]
    rho = grid.to_physical(half)
    rho *= amplitude / np.max(np.abs(rho))
    return _normalise(1.0 + rho)


def kink(grid: Torus, *, amplitude=0.5, kmax=None) -> np.ndarray:
    """A truncated Fourier series with a kink, along the first coordinate.

    μ = 1 + amplitude · (6/π²) · Σ_{k=1}^{K} cos(k x_1)/k², constant along the other axes,
    built from its Fourier coefficients ρ_{±k} = amplitude · (6/π²) / (2k²), 1 ≤ k ≤ K (the
    exact truncated series). As K → ∞ the sum tends to π²/6 − π x_1/2 + x_1²/4 on [0, 2π],
    which lies in [−π²/12, π²/6] and has a kink at x_1 = 0.

    Parameters
    ----------
    grid : Torus
    amplitude : float, default 0.5
        0 < amplitude < 1. Every truncated sum exceeds −π²/6, so μ > 1 − amplitude > 0; in the
        limit μ ≥ 1 − amplitude/2.
    kmax : int, optional
        The truncation K ≥ 1, at most the largest resolved wavenumber of the first axis.
        Default: that largest resolved wavenumber (n_1/2 − 1 with 3/2 padding).

    Returns
    -------
    numpy.ndarray
        μ on the grid, mean 1.

    Notes
    -----
    |ρ_k|² ∝ k^{−4} (a one-dimensional spectrum with p = 4): as K → ∞, ρ ∈ H^r exactly for
    r < 3/2, in every dimension.
    """
    amplitude = _amplitude(amplitude)
    bound, _ = _resolved_bounds(grid)
    largest = int(np.ceil(bound[0]) - 1)
    big_k = largest if kmax is None else _kmax(kmax, largest, grid)
    n = grid.shape[0]
    k = np.arange(1, big_k + 1, dtype=float)
    coef = np.zeros(n // 2 + 1)
    coef[1 : big_k + 1] = amplitude * (6 / np.pi**2) / (2 * k**2)
    rho = np.fft.irfft(coef, n) * n  # Σ_{k=1}^{K} 2 ρ_k cos(k x)
    view = (n,) + (1,) * (grid.d - 1)
    return _normalise(np.broadcast_to(1.0 + rho.reshape(view), grid.shape).copy())


def from_file(grid: Torus, *, path, base_dir=None) -> np.ndarray:
    """Grid values read from a ``.npy`` file, normalised to mean 1.

    μ = f / mean(f) for the array f stored in the file. The values are *rescaled* to mean 1
    whatever their mass in the file.

    Parameters
    ----------
    grid : Torus
    path : str or os.PathLike
        A ``.npy`` file (read without pickles) holding real, finite, non-negative values of
        shape ``grid.shape`` that are not all zero. Zeros (vacuum) are allowed.
    base_dir : str or os.PathLike, optional
        Directory against which a relative ``path`` is resolved (not a spec parameter: it is
        supplied by :func:`density`). Default: the working directory.

    Returns
    -------
    numpy.ndarray
        μ on the grid, mean 1.

    Notes
    -----
    The regularity is whatever the data has; as grid values it is a trigonometric
    interpolant, smooth only if its spectrum decays.
    """
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise _SpecError("path", path, "expected the path of a .npy file")
    full = Path(os.fspath(path)).expanduser()
    if base_dir is not None and not full.is_absolute():
        full = Path(base_dir) / full
    if not full.exists():
        raise _SpecError("path", path, "no such file")
    try:
        with open(full, "rb") as fh:
            f = np.lib.format.read_array(fh, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise _SpecError("path", path, f"cannot be read as a .npy array ({reason})") from None
    if f.shape != grid.shape:
        raise _SpecError("path", path, f"shape {f.shape} does not match the grid {grid.shape}")
    if f.dtype.kind not in "biuf":
        raise _SpecError("path", path, f"holds values of type {f.dtype}; expected real numbers")
    f = f.astype(float)
    bad = ~np.isfinite(f)
    if bad.any():
        i = np.unravel_index(np.argmax(bad), f.shape)
        raise _SpecError("path", path, f"holds a non-finite value ({f[i]} at index {_index(i)})")
    low = f < 0
    if low.any():
        i = np.unravel_index(np.argmax(low), f.shape)
        raise _SpecError("path", path, f"holds a negative value ({f[i]:.6g} at index {_index(i)})")
    if not f.any():
        raise _SpecError("path", path, "holds only zeros")
    return _normalise(f)


#: Density families: name -> function(grid, **parameters). Read-only by convention.
FAMILIES = {
    "uniform": uniform,
    "bumps": bumps,
    "mode": mode,
    "powerlaw": powerlaw,
    "kink": kink,
    "file": from_file,
}


def spectrum_exponent(spec, d: int) -> tuple[float, int] | None:
    """(p, d_eff) when the density of ``spec`` has a power-law spectrum |f_k|² ∝ |k|^{−p} spread
    over d_eff dimensions ("powerlaw": its p over the grid's d; "kink": a function of x_1 alone
    whose coefficients decay like k^{−2}, so p = 4 over one dimension); None otherwise.

    The decay exponents of the theory (:mod:`sobolev_flow.theory`) depend on it.
    """
    family = spec.get("family") if isinstance(spec, dict) else spec
    if family == "powerlaw":
        return float(spec["p"]), d
    if family == "kink":
        return 4.0, 1
    return None


#: Keyword arguments of the family functions that are supplied by :func:`density`, not the spec.
_CONTEXT = ("base_dir",)


# ============================================================================= the entry point
def density(spec, grid: Torus, *, name: str = "density", base_dir=None) -> np.ndarray:
    """Build a named density on a grid.

    Parameters
    ----------
    spec : str or mapping
        A family name with default parameters (``"uniform"``, ``"bumps"``, ``"mode"``,
        ``"kink"``; ``"powerlaw"`` needs ``p`` and so a table), a path ending in ``.npy``
        (the ``"file"`` family), or a mapping with a key ``"family"`` and the family's
        parameters, e.g. ``{"family": "powerlaw", "p": 4, "seed": 1}``. See :data:`FAMILIES`
        and each family's function for its parameters.
    grid : Torus
        The grid.
    name : str, default "density"
        The configuration key of ``spec``, used in error messages, e.g. ``"initial.density"``.
        A parameter ``q`` of a table is reported as ``name.q``; a string spec as ``name``.
    base_dir : str or os.PathLike, optional
        Directory against which relative ``.npy`` paths are resolved (typically that of the
        configuration file). Default: the working directory.

    Returns
    -------
    numpy.ndarray
        A new float array of shape ``grid.shape``, finite, non-negative (strictly positive for
        every family but "file"), with mean 1 up to rounding.

    Raises
    ------
    ValueError
        For any bad spec, with a one-line message naming the key and the value.

    Examples
    --------
    >>> grid = Torus((32,))
    >>> mu0 = density({"family": "powerlaw", "p": 4, "seed": 1}, grid, name="initial.density")
    >>> round(float(mu0.mean()), 12)
    1.0
    """
    valid = ", ".join(FAMILIES)
    if isinstance(spec, str):
        if spec.lower().endswith(".npy"):
            family, params, keys = "file", {"path": spec}, {"path": name}
        else:
            family, params, keys = spec, {}, {"family": name}
    elif isinstance(spec, Mapping):
        if "family" not in spec:
            raise ValueError(f"{name}={_show(spec)}: missing key 'family'; valid families: {valid}")
        params = {str(key): value for key, value in spec.items() if key != "family"}
        family, keys = spec["family"], {}
    else:
        raise ValueError(f"{name}={_show(spec)}: expected a family name, a .npy path or a table with a 'family' key")

    family_key = keys.get("family", f"{name}.family")
    if not isinstance(family, str):
        raise ValueError(f"{family_key}={_show(family)}: expected a family name (a string); valid: {valid}")
    if family not in FAMILIES:
        raise ValueError(f"{family_key}={family!r}: unknown density family;{_suggest(family, FAMILIES)} valid: {valid}")
    func = FAMILIES[family]

    parameters = _parameters(func)
    for param, value in params.items():
        if param not in parameters:
            key = f"{name}.{param}={_show(value)}"
            if not parameters:
                raise ValueError(f"{key}: unknown parameter for family {family!r}, which takes none")
            raise ValueError(f"{key}: unknown parameter for family {family!r};{_suggest(param, parameters)} "
                             f"valid: {', '.join(parameters)}")
    for param, required in parameters.items():
        if required and params.get(param) is None:
            raise ValueError(f"{name}.{param} is missing: family {family!r} requires it")

    kwargs = {param: value for param, value in params.items() if value is not None}
    if "base_dir" in inspect.signature(func).parameters:
        kwargs["base_dir"] = base_dir
    try:
        mu = func(grid, **kwargs)
    except _SpecError as exc:
        key = keys.get(exc.param, f"{name}.{exc.param}")
        raise ValueError(f"{key}={_show(exc.value)}: {exc.message}") from None
    return mu


# ===================================================================================== helpers
def _parameters(func) -> dict[str, bool]:
    """Spec parameters of a family function, in declaration order -> whether required."""
    out = {}
    for param in inspect.signature(func).parameters.values():
        if param.kind is inspect.Parameter.KEYWORD_ONLY and param.name not in _CONTEXT:
            out[param.name] = param.default is inspect.Parameter.empty
    return out


def _suggest(word, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" did you mean {close[0]!r}?" if close else ""


def _show(value) -> str:
    """A one-line, bounded repr of a spec value."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    text = " ".join(repr(value).split())
    return text if len(text) <= 80 else text[:77] + "..."


def _index(i) -> str:
    return str(tuple(int(j) for j in i))


def _normalise(f: np.ndarray) -> np.ndarray:
    f /= f.mean()
    return f


def _is_bool(value) -> bool:
    return isinstance(value, (bool, np.bool_))


def _finite(param, value) -> float:
    if _is_bool(value) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise _SpecError(param, value, "expected a number")
    v = float(value)
    if not np.isfinite(v):
        raise _SpecError(param, value, "expected a finite number")
    return v


def _positive(param, value) -> float:
    v = _finite(param, value)
    if not v > 0:
        raise _SpecError(param, value, f"expected {param} > 0")
    return v


def _amplitude(value) -> float:
    v = _finite("amplitude", value)
    if not 0 < v < 1:
        raise _SpecError("amplitude", value, "expected 0 < amplitude < 1")
    return v


def _integer(param, value) -> int:
    if _is_bool(value) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise _SpecError(param, value, "expected an integer")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if not (np.isfinite(value) and float(value).is_integer()):
        raise _SpecError(param, value, "expected an integer")
    return int(value)


def _kmax(value, largest, grid) -> int:
    k = _integer("kmax", value)
    if not 1 <= k <= largest:
        raise _SpecError("kmax", value, f"expected 1 <= kmax <= {largest} (the largest resolved wavenumber "
                                        f"on the grid {grid.shape})")
    return k


def _array(param, value, what) -> np.ndarray:
    """A real float array from a (nested) list of numbers, or a _SpecError."""
    try:
        a = np.asarray(value)
    except (TypeError, ValueError):
        a = None
    if a is None or a.dtype.kind not in "iuf":
        raise _SpecError(param, value, f"expected {what}")
    return a.astype(float)


def _int_vector(param, value, d) -> np.ndarray:
    what = "an integer" if d == 1 else f"a list of {d} integers"
    a = np.atleast_1d(_array(param, value, what))
    if a.shape != (d,) or not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
        raise _SpecError(param, value, f"expected {what}")
    return a.astype(int)


def _resolved_bounds(grid: Torus) -> tuple[tuple[float, ...], str]:
    """Per-axis strict bounds on |k_j| of the resolved modes, and the rule as text."""
    if grid.dealias == "2/3":
        return tuple(n / 3 for n in grid.shape), "n_j/3"
    return tuple(n / 2 for n in grid.shape), "n_j/2"
