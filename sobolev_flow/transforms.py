"""Padded transforms: between resolved Fourier coefficients and fields on the padded grid.

A right-hand side that forms products of fields (the flux μ∇ψ, the reaction ψμ) needs them on
a grid fine enough for the product to be exact on the resolved wavenumbers (3/2 padding), or
the products truncated (2/3). A *padded transform* owns a few real fields on that grid and
offers exactly two operations on them:

    backward(f_hat, i):  field i ← Σ_k f_k e^{ik·x}     (f_hat: resolved coefficients, unpadded
                                                         half layout; not modified)
    forward(i, out):     out_k ← Σ_x field_i(x) e^{-ik·x}  (truncated to the unpadded layout,
                                                         unnormalised; field i may be destroyed)

so that ``scale · forward`` gives coefficients f_k = ∫ f e^{-ik·x} dm, ``scale`` = 1/(number of
padded points), which the caller folds into the multiplier it applies anyway (i k_j for a
divergence). ``forward`` leaves the wavenumbers outside :attr:`~sobolev_flow.grid.Torus.resolved`
at zero (the Nyquist planes for 3/2 padding, |k_j| ≥ n_j/3 for 2/3 truncation), by zeroing slabs,
not by a pass over the array. :meth:`~PaddedTransform.wavenumbers` gives the k_j of this process's
block as broadcastable vectors.

- :class:`PaddedTransform`: one process, pyfftw plans (or numpy.fft) on aligned buffers built
  once; the fields share one padded spectral buffer, whose memory is also offered as
  :attr:`~PaddedTransform.scratch` (free between a ``backward`` and the next ``forward``).
- :class:`DistributedTransform`: the same interface on mpi4py-fft's padded transforms, each
  process holding its block of the fields and of the coefficients.

A model writes its right-hand side once against this interface; the serial and distributed
runs differ only in the transform (and the layout) they are given.
"""

from __future__ import annotations

import math

import numpy as np

from .fft import RealFFT, empty_aligned
from .grid import Torus

__all__ = ["PaddedTransform", "DistributedTransform", "padded_transform"]


class PaddedTransform:
    """Padded transforms of one process.

    Parameters
    ----------
    grid : Torus
    fields : int
        Number of padded real fields to own (each with its own plan pair).
    backend, threads, effort, wisdom_only
        Passed to :class:`~sobolev_flow.fft.RealFFT`.

    Attributes
    ----------
    fields : list of ndarray
        The padded real fields, shape ``grid.padded_shape``.
    scratch : ndarray
        A padded real array in the spectral buffer's memory: free between a :meth:`backward`
        and the next :meth:`forward`, overwritten by either.
    scale : float
        1 / (number of padded points).
    """

    def __init__(self, grid: Torus, fields=2, backend="auto", threads=None, effort="estimate", wisdom_only=False):
        from .parallel import SERIAL

        self.grid, self.layout = grid, SERIAL
        padded = grid.padded_shape
        self._spectral = empty_aligned((1,) + grid.padded_spectral_shape, complex)
        self._buffers = [empty_aligned((1,) + padded, float) for _ in range(fields)]
        self._plans = []
        for buffer in self._buffers:
            backend = self._plans[0].backend if self._plans else backend
            self._plans.append(RealFFT(padded, backend=backend, threads=threads, effort=effort, physical=buffer,
                                       spectral=self._spectral, wisdom_only=wisdom_only))
        self.fields = [buffer[0] for buffer in self._buffers]
        self.backend, self.threads, self.effort = self._plans[0].backend, self._plans[0].threads, effort
        self.scale = 1.0 / math.prod(padded)
        # the spectral buffer seen as a padded real field (it holds at least as many doubles)
        self.scratch = self._spectral.view(float).reshape(-1)[:math.prod(padded)].reshape(padded)
        self._blocks = grid.embedding()
        self._padding = _padding_slabs(grid)
        self._unresolved = _unresolved_slabs(grid)

    def wavenumbers(self) -> tuple:
        """k_j as vectors broadcastable to the spectral layout."""
        return self.grid.wavenumbers()

    def backward(self, f_hat: np.ndarray, i: int) -> np.ndarray:
        """Field ``i`` ← Σ_k f_k e^{ik·x} on the padded grid; returns the field."""
        self.load(f_hat)
        self._plans[i].backward()
        return self.fields[i]

    def load(self, f_hat: np.ndarray):
        """The padded spectral buffer ← ``f_hat`` zero-padded (the first half of :meth:`backward`)."""
        spec = self._spectral[0]
        # only the padding needs re-zeroing: the c2r transforms destroy the buffer, but every
        # other entry is overwritten here
        for index in self._padding:
            spec[index] = 0.0
        for src, dst in self._blocks:
            spec[dst] = f_hat[src]

    def forward(self, i: int, out: np.ndarray) -> np.ndarray:
        """``out`` ← Σ_x field_i(x) e^{-ik·x} on the unpadded layout (field ``i`` is destroyed)."""
        spec = self._plans[i].forward()[0]
        # numpy multiplies strided block views several times slower than it copies them: the
        # blocks are copied out here and multiplied by the caller on the contiguous result
        for src, dst in self._blocks:
            np.copyto(out[src], spec[dst])
        for index in self._unresolved:  # the Nyquist planes, which no block writes (3/2)
            out[index] = 0.0
        return out

    def execute(self, i: int):
        """One backward and one forward FFT of field ``i`` and nothing else (for benchmarks)."""
        self._plans[i].backward()
        self._plans[i].forward()

    def execute_backward(self, i: int):
        """One backward FFT of field ``i`` and nothing else (for benchmarks)."""
        self._plans[i].backward()

    def interpolate(self, f_hat: np.ndarray) -> np.ndarray:
        """A new array of the values of Σ_k f_k e^{ik·x} on the padded grid (set-up only)."""
        return self.backward(self.grid.project(np.array(f_hat, dtype=complex)), 0).copy()


class DistributedTransform:
    """:class:`PaddedTransform`'s interface on mpi4py-fft's padded transforms.

    Parameters
    ----------
    layout : sobolev_flow.parallel.Distributed
        The decomposition; its ``transform`` pads to the serial padded shape (3/2) or not (2/3).
    fields : int
        Number of padded real fields (this process's blocks).

    Notes
    -----
    mpi4py-fft's backward transform zero-pads the coefficients and its forward transform
    truncates; with ``normalize=False`` the forward transform is the unnormalised sum, as in the
    serial class. Its truncation keeps the Nyquist entries (and, for 2/3, the modes above n/3),
    which :meth:`forward` zeroes in this process's block.
    """

    def __init__(self, layout, fields=2):
        from mpi4py_fft import newDistArray

        self.grid, self.layout = layout.grid, layout
        self._transform = layout.transform
        self.fields = [newDistArray(self._transform, False) for _ in range(fields)]
        self.scratch = np.empty(self.fields[0].shape)
        self.scale = 1.0 / math.prod(self.grid.padded_shape)
        self.backend, self.threads, self.effort = "mpi4py-fft", layout.threads, layout.effort
        self._unresolved = _unresolved_slabs(self.grid, layout.spectral_slice)

    def wavenumbers(self) -> tuple:
        """k_j of this process's block, as vectors broadcastable to it."""
        out = []
        for axis, (k, block) in enumerate(zip(self.grid.wavenumbers(), self.layout.spectral_slice)):
            index = [slice(None)] * self.grid.d
            index[axis] = block
            out.append(k[tuple(index)])
        return tuple(out)

    def backward(self, f_hat: np.ndarray, i: int) -> np.ndarray:
        """Field ``i`` ← Σ_k f_k e^{ik·x} (this process's block). Collective."""
        return self._transform.backward(f_hat, self.fields[i])

    def forward(self, i: int, out: np.ndarray) -> np.ndarray:
        """``out`` ← Σ_x field_i(x) e^{-ik·x}, unnormalised (this process's block). Collective."""
        self._transform.forward(self.fields[i], out, normalize=False)
        for index in self._unresolved:
            out[index] = 0.0
        return out

    def execute(self, i: int):
        self._transform.backward(None, self.fields[i])
        self._transform.forward(self.fields[i], None, normalize=False)

    def execute_backward(self, i: int):
        self._transform.backward(None, self.fields[i])

    def interpolate(self, f_hat: np.ndarray) -> np.ndarray:
        """Values of Σ_k f_k e^{ik·x} on this process's block of the padded grid (``f_hat``
        global; set-up only)."""
        local = self.layout.local(self.grid.project(np.array(f_hat, dtype=complex)))
        return np.array(self.backward(local, 0))


def padded_transform(grid: Torus, fields=2, comm=None, decomposition="slab", backend="auto", threads=None,
                     effort="estimate", wisdom_only=False):
    """The padded transform for a run: serial, or distributed over ``comm`` when it has more than
    one process (d ≥ 2, see :mod:`sobolev_flow.parallel`)."""
    if comm is not None and comm.Get_size() > 1:
        from .parallel import Distributed

        layout = Distributed(grid, comm, decomposition=decomposition, threads=threads or 1, effort=effort)
        return DistributedTransform(layout, fields)
    return PaddedTransform(grid, fields, backend=backend, threads=threads, effort=effort, wisdom_only=wisdom_only)


def _unresolved_slabs(grid: Torus, block=None) -> list:
    """Slices of (a block of) the unpadded spectral layout that together cover every wavenumber
    outside :attr:`~sobolev_flow.grid.Torus.resolved`: along each axis j the index range of
    |k_j| ≥ n_j/2 (the Nyquist plane; 3/2 padding) or |k_j| ≥ n_j/3 (2/3 truncation), every index
    on the other axes. ``block``: this process's slices of the global layout (default: all);
    the slices returned are local to it."""
    slabs = []
    for axis, n in enumerate(grid.shape):
        b = n // 2 if grid.dealias == "3/2" else math.ceil(n / 3)  # smallest unresolved |k_j|
        top = n // 2 if axis == grid.d - 1 else n - b  # last axis: k = 0 … n/2; others: fftfreq order
        lo, hi = b, top + 1
        if block is not None:
            start, stop = block[axis].start, block[axis].stop
            lo, hi = max(lo, start) - start, min(hi, stop) - start
        if lo < hi:
            index = [slice(None)] * grid.d
            index[axis] = slice(lo, hi)
            slabs.append(tuple(index))
    return slabs


def _padding_slabs(grid: Torus) -> list:
    """Disjoint slices of the padded spectral layout that no embedding block writes.

    Along axis a the slab takes the gap between the kept wavenumbers, every index on the later
    axes and only the kept ranges on the earlier ones (2^a slabs). Empty for 2/3 truncation.
    """
    if grid.dealias == "2/3":
        return []
    kept, gaps = [], []
    for axis, (n, m) in enumerate(zip(grid.shape, grid.padded_shape)):
        if axis < grid.d - 1:
            kept.append([slice(0, n // 2), slice(m - n // 2 + 1, m)])
            gaps.append(slice(n // 2, m - n // 2 + 1))
        else:
            kept.append([slice(0, n // 2)])
            gaps.append(slice(n // 2, m // 2 + 1))
    slabs = []
    for axis in range(grid.d):
        prefixes = [()]
        for earlier in kept[:axis]:
            prefixes = [p + (s,) for p in prefixes for s in earlier]
        slabs += [p + (gaps[axis],) + (slice(None),) * (grid.d - axis - 1) for p in prefixes]
    return slabs
