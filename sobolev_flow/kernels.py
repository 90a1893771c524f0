"""Translation-invariant kernels on T^d, given by their Fourier weights K̂(k).

The kernel mean discrepancy of a signed measure ρ = μ − ν is

    E = ½ Σ_k K̂(k) |ρ_k|²,      ψ = K ⋆ ρ,  ψ_k = K̂(k) ρ_k,

with coefficients normalised as in :mod:`sobolev_flow.grid`: f_k = ∫ f e^{-ik·x} dm with
dm = dx/(2π)^d, and the convolution taken against dm, so that

    K̂(k) = ∫_{T^d} K(z) e^{-ik·z} dm(z),      K(z) = Σ_k K̂(k) e^{ik·z}.

The sum includes k = 0: a kernel may weight the mass mode (the Gaussian and ReLU kernels
do; the Sobolev kernel has K̂(0) = 0). The negative Sobolev kernel K̂(k) = |k|^{-2s} gives
E = ½‖μ − ν‖²_{Ḣ^{-s}} and ψ = (−Δ)^{-s}(μ − ν).

Every kernel is a frozen dataclass with

- ``name``: its name in a configuration (one of :data:`KERNELS`, or a user-chosen name for
  :class:`FourierKernel`);
- ``weights(grid)``: the float array K̂(k), finite and ≥ 0, of shape ``grid.spectral_shape``
  (the half layout of ``numpy.fft.rfftn``);
- ``parameters()``: its parameters as a JSON-serialisable dict;
- ``sobolev_order``: the Sobolev order s that governs the decay-rate theory, or None;
- ``str(kernel)``: a short description.

:func:`make_kernel` builds a kernel from a configuration value.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .grid import Torus

__all__ = ["SobolevKernel", "GaussianKernel", "ReluKernel", "FourierKernel", "FileKernel", "make_kernel",
           "KERNELS"]

log = logging.getLogger(__name__)

#: Kernel names accepted by :func:`make_kernel`.
KERNELS = ("sobolev", "gaussian", "relu", "file")

_REQUIREMENT = "kernel weights must be finite and >= 0"


@dataclass(frozen=True)
class SobolevKernel:
    """The Ḣ^{-s} kernel: K̂(k) = |k|^{-2s} for k ≠ 0 and K̂(0) = 0.

    In real space K(z) = G_s(z) = Σ_{k≠0} |k|^{-2s} e^{ik·z}, the Green's function of (−Δ)^s
    with the mean removed; ψ = K ⋆ ρ = (−Δ)^{-s} ρ.

    Parameters
    ----------
    s : float
        Sobolev order, s > 0. The convergence theory covers s ≥ 1; 0 < s < 1 is accepted
        with a logged warning.

    Examples
    --------
    >>> SobolevKernel(2).weights(Torus((8,)))  # k = 0 … 4
    array([0.        , 1.        , 0.0625    , 0.01234568, 0.00390625])
    """

    name: ClassVar[str] = "sobolev"
    s: float

    def __post_init__(self):
        try:
            s = float(self.s)
        except (TypeError, ValueError):
            raise ValueError(f"s={self.s!r}: expected a real number") from None
        if not math.isfinite(s) or s <= 0:
            raise ValueError(f"s={self.s!r}: the Sobolev order must be a finite number > 0")
        if s < 1:
            log.warning("s=%g lies outside the theory (s >= 1): the flow is not known to converge", s)
        object.__setattr__(self, "s", s)

    @property
    def sobolev_order(self) -> float:
        """The Sobolev order s."""
        return self.s

    def parameters(self) -> dict:
        """``{"s": s}``."""
        return {"s": self.s}

    def weights(self, grid: Torus) -> np.ndarray:
        """K̂(k) = |k|^{-2s} on the spectral layout of ``grid`` (0 at k = 0)."""
        k2 = grid.k2
        out = np.zeros(grid.spectral_shape)
        nz = k2 > 0
        out[nz] = k2[nz] ** (-self.s)
        return out

    def __str__(self):
        return f"|k|^(-2s), s={self.s:g}"


@dataclass(frozen=True)
class GaussianKernel:
    """The periodised Gaussian kernel of width σ.

    K(z) = Σ_{n∈Z^d} exp(−|z + 2πn|² / (2σ²)), whose weights (against dm = dx/(2π)^d) are

        K̂(k) = (σ/√(2π))^d exp(−σ²|k|²/2),

    including K̂(0) = (σ/√(2π))^d > 0. The weights decay faster than any power of |k|, so
    there is no Sobolev order (``sobolev_order`` is None).

    Parameters
    ----------
    sigma : float
        Width σ, a finite number > 0.

    Examples
    --------
    >>> GaussianKernel(1.0).weights(Torus((8,)))  # k = 0 … 4
    array([3.98942280e-01, 2.41970725e-01, 5.39909665e-02, 4.43184841e-03, 1.33830226e-04])
    """

    name: ClassVar[str] = "gaussian"
    sobolev_order: ClassVar[float | None] = None
    sigma: float

    def __post_init__(self):
        object.__setattr__(self, "sigma", _positive("model.kernel.sigma", self.sigma))

    def parameters(self) -> dict:
        """``{"sigma": σ}``."""
        return {"sigma": self.sigma}

    def weights(self, grid: Torus) -> np.ndarray:
        """K̂(k) = (σ/√(2π))^d exp(−σ²|k|²/2) on the spectral layout of ``grid``."""
        with np.errstate(under="ignore"):
            out = np.exp(-0.5 * self.sigma**2 * grid.k2)
        out *= (self.sigma / math.sqrt(2 * math.pi)) ** grid.d
        return out

    def __str__(self):
        return f"periodised Gaussian, sigma={self.sigma:g}"


@dataclass(frozen=True)
class ReluKernel:
    """The degree-1 arc-cosine kernel of a two-layer ReLU network with inputs uniform on S^1.

    On the circle (d = 1 only), with θ ∈ [−π, π],

        K(θ) = (sin|θ| + (π − |θ|) cos θ) / (4π),

    whose weights K̂(n) = (1/2π) ∫ K(θ) e^{-inθ} dθ are

        K̂(0) = 1/π²,  K̂(±1) = 1/16,  K̂(n) = 1/(π²(n² − 1)²) for even n,  0 for odd |n| ≥ 3.

    On even modes this behaves like (−∂θ²)^{-2}, so ``sobolev_order`` is 2.

    Examples
    --------
    >>> w = ReluKernel().weights(Torus((8,)))  # k = 0 … 4
    >>> w * np.pi**2
    array([1.        , 0.61685028, 0.11111111, 0.        , 0.00444444])
    """

    name: ClassVar[str] = "relu"
    sobolev_order: ClassVar[float] = 2.0

    def parameters(self) -> dict:
        """``{}``: the kernel has no parameters."""
        return {}

    def weights(self, grid: Torus) -> np.ndarray:
        """The closed-form weights on the spectral layout of a 1-D ``grid``.

        Raises
        ------
        ValueError
            If ``grid.d`` ≠ 1.
        """
        if grid.d != 1:
            raise ValueError(f"model.kernel='relu': the ReLU kernel lives on the circle and needs grid.d=1, "
                             f"got grid.d={grid.d}")
        (k,) = grid.wavenumbers()
        n = np.abs(k.astype(np.int64))
        out = np.zeros(grid.spectral_shape)
        even = n % 2 == 0
        out[even] = 1.0 / (math.pi**2 * (n[even].astype(float) ** 2 - 1.0) ** 2)
        out[n == 1] = 1.0 / 16.0
        return out

    def __str__(self):
        return "ReLU arc-cosine kernel on the circle"


@dataclass(frozen=True, eq=False)
class FourierKernel:
    """A kernel given directly by its weights K̂(k) on a grid's spectral layout.

    The weights are stored as a read-only float copy; ``weights(grid)`` checks them against
    the grid and returns a fresh copy. Kernels compare and hash by identity.

    Parameters
    ----------
    values : array_like
        K̂(k) on the spectral (half) layout of the grid it will be used with, including
        k = 0; finite and ≥ 0.
    name : str
        Name shown in messages and descriptions.
    sobolev_order : float or None
        The Sobolev order for the decay-rate theory, if the weights have one.

    Raises
    ------
    ValueError
        If ``values`` is not an array of real numbers, or has an entry that is not finite
        or is negative.

    Examples
    --------
    >>> kernel = FourierKernel(SobolevKernel(1).weights(Torus((8,))), name="mine")
    >>> kernel.weights(Torus((8,)))
    array([0.        , 1.        , 0.25      , 0.11111111, 0.0625    ])
    """

    values: np.ndarray
    name: str = "fourier"
    sobolev_order: float | None = None

    def __post_init__(self):
        key = f"kernel={self.name!r}"
        values = _real_array(key, self.values)
        _check_entries(key, values)
        values.flags.writeable = False
        object.__setattr__(self, "values", values)

    def parameters(self) -> dict:
        """``{"shape": [...]}``: the shape of the stored weights."""
        return {"shape": list(self.values.shape)}

    def weights(self, grid: Torus) -> np.ndarray:
        """A copy of the stored weights, after checking their shape against ``grid``."""
        _check_shape(f"kernel={self.name!r}", self.values, grid)
        return np.array(self.values)

    def __str__(self):
        return f"{self.name}: Fourier weights of shape {self.values.shape}"


@dataclass(frozen=True)
class FileKernel:
    """A kernel whose weights K̂(k) are read from a ``.npy`` file.

    The file holds a real array of the grid's spectral (half) layout, including k = 0,
    finite and ≥ 0. It is read by every call of ``weights(grid)``.

    Parameters
    ----------
    path : str or os.PathLike
        The file, as written in the configuration.
    base_dir : str or os.PathLike
        Directory against which a relative ``path`` is resolved.
    """

    name: ClassVar[str] = "file"
    sobolev_order: ClassVar[float | None] = None
    path: str
    base_dir: str = "."

    def __post_init__(self):
        if not isinstance(self.path, (str, os.PathLike)):
            raise ValueError(f"model.kernel.path={self.path!r}: expected a file name")
        object.__setattr__(self, "path", os.fspath(self.path))
        object.__setattr__(self, "base_dir", os.fspath(self.base_dir))

    @property
    def resolved_path(self) -> str:
        """``path``, joined to ``base_dir`` unless it is absolute."""
        return os.path.join(self.base_dir, os.path.expanduser(self.path))

    def parameters(self) -> dict:
        """``{"path": path}`` as given."""
        return {"path": self.path}

    def weights(self, grid: Torus) -> np.ndarray:
        """The weights read from the file, checked against ``grid``.

        Raises
        ------
        ValueError
            If the file is missing or unreadable, or its array is not real, not of the
            grid's spectral shape, or has an entry that is not finite or is negative.
        """
        key = f"model.kernel.path={self.path!r}"
        file = self.resolved_path
        try:
            values = np.load(file, allow_pickle=False)
        except FileNotFoundError:
            raise ValueError(f"{key}: no such file") from None
        except (OSError, ValueError, EOFError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise ValueError(f"{key}: cannot be read ({reason})") from None
        if not isinstance(values, np.ndarray):
            if hasattr(values, "close"):
                values.close()
            raise ValueError(f"{key}: cannot be read (expected one array in .npy format)")
        values = _real_array(key, values)
        _check_shape(key, values, grid)
        _check_entries(key, values)
        log.debug("kernel weights of shape %s read from %s", values.shape, file)
        return values

    def __str__(self):
        return f"Fourier weights from {self.path!r}"


# ----------------------------------------------------------------------------- factory
_PARAMETERS = {"sobolev": ("s",), "gaussian": ("sigma",), "relu": (), "file": ("path",)}


def make_kernel(spec, s, grid: Torus, base_dir="."):
    """The kernel described by a configuration value, checked against ``grid``.

    Parameters
    ----------
    spec : None, str, mapping or kernel object
        None: ``SobolevKernel(s)``. A name from :data:`KERNELS`: that kernel with default
        parameters ("sobolev" uses ``s``; "gaussian" and "file" have required parameters
        and need a table). A mapping with a ``"name"`` key and the kernel's parameters, e.g.
        ``{"name": "sobolev", "s": 1.5}`` (overrides ``s``), ``{"name": "gaussian",
        "sigma": 0.5}``, ``{"name": "relu"}``, ``{"name": "file", "path": "K.npy"}``. An
        object with a ``weights`` method is returned as is.
    s : float or None
        Sobolev order used by the Sobolev kernel when ``spec`` does not give one.
    grid : Torus
        The grid; the kernel's weights are computed on it once, as a check.
    base_dir : str or os.PathLike
        Directory against which a relative ``path`` of a file kernel is resolved.

    Returns
    -------
    kernel

    Raises
    ------
    ValueError
        A one-line message naming the configuration key and value: an unknown kernel or
        parameter, a missing or invalid parameter, or weights that do not fit ``grid``.

    Examples
    --------
    >>> grid = Torus((16,))
    >>> str(make_kernel(None, 2, grid))
    '|k|^(-2s), s=2'
    >>> make_kernel({"name": "gaussian", "sigma": 0.5}, None, grid)
    GaussianKernel(sigma=0.5)
    """
    if spec is not None and callable(getattr(spec, "weights", None)):
        kernel = spec
    else:
        kernel = _build(spec, s, base_dir)
    weights = np.asarray(kernel.weights(grid))
    key = f"kernel={str(kernel)!r}"
    values = _real_array(key, weights)
    _check_shape(key, values, grid)
    _check_entries(key, values)
    log.debug("kernel: %s", kernel)
    return kernel


def _build(spec, s, base_dir):
    if spec is None:
        return SobolevKernel(s)
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
        name = spec["name"]
        params = {k: v for k, v in spec.items() if k != "name"}
    else:
        raise ValueError(f"model.kernel={spec!r}: expected a kernel name or a table with a 'name' key")
    if name not in _PARAMETERS:
        raise ValueError(f"model.kernel={name!r}: unknown kernel;{_did_you_mean(name, KERNELS)} "
                         f"valid: {', '.join(KERNELS)}")
    valid = _PARAMETERS[name]
    for key, value in params.items():
        if key not in valid:
            raise ValueError(f"model.kernel.{key}={value!r}: unknown parameter of the {name} kernel;"
                             f"{_did_you_mean(str(key), valid)} valid: {', '.join(valid) or 'none'}")
    for key in valid:
        if name != "sobolev" and key not in params:
            raise ValueError(f"model.kernel.{key}: required for the {name} kernel")
    if name == "sobolev":
        if "s" not in params:
            return SobolevKernel(s)
        try:
            return SobolevKernel(params["s"])
        except ValueError as exc:
            raise ValueError(f"model.kernel.{exc}") from None
    if name == "gaussian":
        return GaussianKernel(params["sigma"])
    if name == "relu":
        return ReluKernel()
    return FileKernel(params["path"], base_dir=base_dir)


# ----------------------------------------------------------------------------- checks
def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" did you mean {close[0]!r}?" if close else ""


def _positive(key: str, value) -> float:
    """``value`` as a float, finite and > 0 (ValueError naming ``key`` otherwise)."""
    try:
        if isinstance(value, (bool, np.bool_)):
            raise TypeError
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
    if not (math.isfinite(x) and x > 0):
        raise ValueError(f"{key}={value!r}: expected a finite number > 0")
    return x


def _real_array(key: str, values) -> np.ndarray:
    """A float copy of ``values`` (ValueError if they are not real numbers)."""
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{key}: weights are not an array of real numbers ({exc})") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{key}: weights of dtype {arr.dtype}, expected real numbers")
    return np.array(arr, dtype=float)


def _check_shape(key: str, values: np.ndarray, grid: Torus) -> None:
    if values.shape != grid.spectral_shape:
        raise ValueError(f"{key}: weights of shape {values.shape}, expected {grid.spectral_shape} "
                         f"(the grid's spectral layout)")


def _check_entries(key: str, values: np.ndarray) -> None:
    """ValueError at the first entry that is not finite, else at the first negative one."""
    finite = np.isfinite(values)
    for bad, problem in ((lambda: ~finite, "is not finite"), (lambda: values < 0, "is negative")):
        bad = bad()
        if bad.any():
            index = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), values.shape))
            raise ValueError(f"{key}: weight {float(values[index])!r} at index {index} {problem}; {_REQUIREMENT}")
