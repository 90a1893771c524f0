"""Translation-invariant kernels on T^d, given by their Fourier weights K̂(k).

The kernel mean discrepancy of a signed measure ρ = μ − ν is

    E = ½ Σ_{k≠0} K̂(k) |ρ_k|²,      ψ = K ⋆ ρ,  ψ_k = K̂(k) ρ_k,

with coefficients normalised as in :mod:`sobolev_flow.grid`. The negative Sobolev kernel
K̂(k) = |k|^{-2s} gives E = ½‖μ − ν‖²_{Ḣ^{-s}} and ψ = (−Δ)^{-s}(μ − ν).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from .grid import Torus

__all__ = ["SobolevKernel"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SobolevKernel:
    """The Ḣ^{-s} kernel: K̂(k) = |k|^{-2s} for k ≠ 0 and K̂(0) = 0.

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

    def weights(self, grid: Torus) -> np.ndarray:
        """K̂(k) = |k|^{-2s} on the spectral layout of ``grid`` (0 at k = 0)."""
        k2 = grid.k2
        out = np.zeros(grid.spectral_shape)
        nz = k2 > 0
        out[nz] = k2[nz] ** (-self.s)
        return out

    def __str__(self):
        return f"|k|^(-2s), s={self.s:g}"
