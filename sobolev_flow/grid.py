"""The torus T^d = [0, 2π)^d, its sample points, wavenumbers and dealiasing layout.

Conventions
-----------
Densities are taken with respect to the uniform probability measure dm = dx / (2π)^d.
Fourier coefficients are f_k = ∫ f e^{-ik·x} dm, i.e. ``numpy.fft.rfftn(f) / f.size``
on the grid, so that f(x) = Σ_k f_k e^{ik·x} and the uniform density has f_0 = 1.
Spectral arrays use the real-to-complex layout of ``rfftn``: full length along every
axis but the last, ``n // 2 + 1`` along the last.

The state of the solver never carries the Nyquist wavenumber ±n/2 of any axis (it is
projected out of the initial data), so every product of two resolved fields is
represented without ambiguity on the padded grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.fft

__all__ = ["Torus", "DEALIASING"]

#: Dealiasing rules: 3/2 zero padding (exact for the quadratic flux) or 2/3 truncation.
DEALIASING = ("3/2", "2/3")

MIN_POINTS = 8


@dataclass(frozen=True)
class Torus:
    """A uniform grid on T^d = [0, 2π)^d with ``shape[j]`` points along axis j.

    Parameters
    ----------
    shape : tuple of int
        Points per axis; d = len(shape) ∈ {1, 2, 3}, every entry even and ≥ 8.
    dealias : {"3/2", "2/3"}
        How the quadratic flux μ∇ψ is dealiased. "3/2": fields are transformed on a padded
        grid of at least 3n/2 points per axis, which makes the product exact for the
        resolved wavenumbers |k_j| < n/2. "2/3": no padding; only |k_j| < n/3 are kept.

    Examples
    --------
    >>> grid = Torus((64, 32))
    >>> grid.d, grid.spectral_shape, grid.padded_shape
    (2, (64, 17), (96, 48))
    """

    shape: tuple[int, ...]
    dealias: str = "3/2"

    def __post_init__(self):
        shape = self.shape
        if isinstance(shape, (int, np.integer)):
            shape = (int(shape),)
        try:
            shape = tuple(int(n) for n in shape)
        except (TypeError, ValueError):
            raise ValueError(f"shape={self.shape!r}: expected a tuple of integers") from None
        object.__setattr__(self, "shape", shape)
        if len(shape) not in (1, 2, 3):
            raise ValueError(f"d={len(shape)} (shape={shape}): the torus must have dimension 1, 2 or 3")
        for n in shape:
            if n < MIN_POINTS or n % 2:
                raise ValueError(f"n={n} (shape={shape}): points per axis must be even and at least {MIN_POINTS}")
        if self.dealias not in DEALIASING:
            raise ValueError(f"dealias={self.dealias!r}: expected one of {', '.join(DEALIASING)}")

    # ------------------------------------------------------------------ shapes
    @property
    def d(self) -> int:
        """Dimension of the torus."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of grid points."""
        return math.prod(self.shape)

    @property
    def spectral_shape(self) -> tuple[int, ...]:
        """Shape of the real-to-complex coefficient array."""
        return self.shape[:-1] + (self.shape[-1] // 2 + 1,)

    @property
    def padded_shape(self) -> tuple[int, ...]:
        """Shape of the grid on which the quadratic flux is formed.

        For 3/2 padding, the smallest FFT-friendly even size ≥ 3n/2 per axis; for 2/3
        truncation the grid itself.
        """
        if self.dealias == "2/3":
            return self.shape
        return tuple(_even_fast_len(3 * n // 2) for n in self.shape)

    @property
    def padded_spectral_shape(self) -> tuple[int, ...]:
        """Shape of the real-to-complex coefficient array of the padded grid."""
        m = self.padded_shape
        return m[:-1] + (m[-1] // 2 + 1,)

    @property
    def dx(self) -> tuple[float, ...]:
        """Grid spacing 2π/n per axis."""
        return tuple(2 * np.pi / n for n in self.shape)

    # ------------------------------------------------------------ coordinates
    def coordinates(self) -> tuple[np.ndarray, ...]:
        """1-D coordinate arrays x_j = 2π i / n_j, i = 0 … n_j − 1."""
        return tuple(2 * np.pi * np.arange(n) / n for n in self.shape)

    def mesh(self) -> tuple[np.ndarray, ...]:
        """Broadcastable coordinate arrays (sparse meshgrid, 'ij' indexing)."""
        return tuple(np.meshgrid(*self.coordinates(), indexing="ij", sparse=True))

    # ------------------------------------------------------------ wavenumbers
    def wavenumbers(self) -> tuple[np.ndarray, ...]:
        """Integer wavenumbers k_j broadcastable to ``spectral_shape`` (as floats)."""
        ks = []
        for axis, n in enumerate(self.shape):
            if axis == self.d - 1:
                k = np.arange(n // 2 + 1, dtype=float)
            else:
                k = np.fft.fftfreq(n, 1.0 / n)
            view = [1] * self.d
            view[axis] = k.size
            ks.append(k.reshape(view))
        return tuple(ks)

    @property
    def k2(self) -> np.ndarray:
        """|k|² on the spectral layout (a new array: it is needed only while setting up)."""
        return sum(k**2 for k in self.wavenumbers())

    @cached_property
    def resolved(self) -> np.ndarray:
        """Boolean mask of the wavenumbers the solver keeps.

        |k_j| < n_j/2 on every axis (Nyquist removed) for 3/2 padding, |k_j| < n_j/3 for
        2/3 truncation.
        """
        mask = np.ones(self.spectral_shape, dtype=bool)
        for k, n in zip(self.wavenumbers(), self.shape):
            bound = n / 2 if self.dealias == "3/2" else n / 3
            mask &= np.abs(k) < bound
        return mask

    @cached_property
    def rfft_weights(self) -> np.ndarray:
        """Multiplicity of each coefficient in a full-spectrum sum of a real field.

        Σ_{k∈Z^d} g_k = Σ_{half layout} w_k g_k for Hermitian g; w = 2 except on the planes
        k_last = 0 and k_last = n/2, where w = 1.
        """
        n = self.shape[-1]
        w = np.full(n // 2 + 1, 2.0)
        w[0] = 1.0
        w[-1] = 1.0
        return np.broadcast_to(w, self.spectral_shape)

    def embedding(self) -> list[tuple[tuple[slice, ...], tuple[slice, ...]]]:
        """Pairs (source, target) of slices that place the resolved coefficients into the
        padded spectral array (or into the unpadded one, for 2/3 truncation).

        Along every axis but the last, nonnegative and negative wavenumbers form two
        blocks; along the last axis one block. There are 2^{d-1} pairs.
        """
        if self.dealias == "2/3":
            full = tuple(slice(None) for _ in self.shape)
            return [(full, full)]
        pairs = [((), ())]
        for axis, (n, m) in enumerate(zip(self.shape, self.padded_shape)):
            if axis == self.d - 1:
                blocks = [(slice(0, n // 2), slice(0, n // 2))]
            else:
                # nonnegative 0 … n/2−1 and negative −(n/2−1) … −1; Nyquist row dropped
                blocks = [
                    (slice(0, n // 2), slice(0, n // 2)),
                    (slice(n // 2 + 1, n), slice(m - n // 2 + 1, m)),
                ]
            pairs = [(src + (bs,), dst + (bd,)) for src, dst in pairs for bs, bd in blocks]
        return pairs

    def project(self, f_hat: np.ndarray) -> np.ndarray:
        """Zero the coefficients the solver does not keep (in place); returns ``f_hat``."""
        f_hat[..., ~self.resolved] = 0.0
        return f_hat

    # ------------------------------------------------------- one-off transforms
    def to_spectral(self, f: np.ndarray) -> np.ndarray:
        """Fourier coefficients f_k = ∫ f e^{-ik·x} dm of grid values (not the hot path)."""
        return scipy.fft.rfftn(f, axes=range(-self.d, 0)) / self.size

    def to_physical(self, f_hat: np.ndarray, overwrite: bool = False) -> np.ndarray:
        """Grid values f(x) = Σ_k f_k e^{ik·x} of Fourier coefficients (not the hot path);
        ``overwrite=True`` lets the transform destroy ``f_hat`` instead of copying it."""
        f = scipy.fft.irfftn(f_hat, s=self.shape, axes=range(-self.d, 0), overwrite_x=overwrite)
        f *= self.size
        return f


def _even_fast_len(target: int) -> int:
    """Smallest even integer ≥ target whose FFT is fast (prime factors 2, 3, 5, 7)."""
    n = scipy.fft.next_fast_len(target, real=True)
    while n % 2:
        n = scipy.fft.next_fast_len(n + 1, real=True)
    return n
