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
  :attr:`~PaddedTransform.scratch` (free between a ``backward`` and the next ``forward``). With
  pyfftw and 3/2 padding (d ≥ 2) the plans are pruned (:class:`~sobolev_flow.fft.PrunedRealFFT`):
  the complex transforms over the leading axes run only on the n_{d−1}/2 columns of the last
  spectral axis that hold resolved coefficients, not on all M_{d−1}/2 + 1, and in 3-D those
  along axis 0 only on the n_1 − 1 resolved rows of axis 1.
- :class:`DistributedTransform`: the same interface on mpi4py-fft's padded transforms, each
  process holding its block of the fields and of the coefficients.

Both operations take a multiplier applied on the way: ``backward(f_hat, i, axis=j)``
transforms (i k_j) f_k (a derivative), ``forward(i, out, axis=j, factor=c, accumulate=True)``
adds c (i k_j) times the sum to ``out`` (a divergence). With ``kernels="numba"`` (see
:mod:`sobolev_flow.fused`) the serial transform zero-pads and multiplies, and truncates,
multiplies and adds, in one pass each; with ``"numpy"``, and on the distributed transform (whose
padding mpi4py-fft does), the multiplier takes a pass over the unpadded coefficients of its own.

A model writes its right-hand side once against this interface; the serial and distributed
runs differ only in the transform (and the layout) they are given.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from . import fused
from .fft import PrunedRealFFT, RealFFT, empty_aligned, resolve_backend, resolve_threads
from .grid import Torus

__all__ = ["PaddedTransform", "DistributedTransform", "padded_transform"]


class _Multipliers:
    """The multipliers of ``backward`` and ``forward`` as numpy passes over the unpadded
    coefficients, on a transform's raw ``_backward(f_hat, i)`` and ``_forward(i, out)``."""

    def _setup_multipliers(self, shape):
        self._ik = [1j * k for k in self.wavenumbers()]
        self._shape = shape
        self._work = None  # unpadded work array, allocated on first use

    def _work_array(self) -> np.ndarray:
        if self._work is None:
            self._work = np.empty(self._shape, complex)
        return self._work

    def backward(self, f_hat: np.ndarray, i: int, axis=None, weights=None) -> np.ndarray:
        """Field ``i`` ← Σ_k m_k f_k e^{ik·x}, m_k = w_k i k_axis (w = ``weights``, default 1;
        i k_axis = 1 without ``axis``); returns the field. ``f_hat`` (resolved coefficients) is
        not modified."""
        if weights is not None:
            f_hat = np.multiply(weights, f_hat, out=self._work_array())
        if axis is not None:
            f_hat = np.multiply(f_hat, self._ik[axis], out=self._work_array())
        return self._backward(f_hat, i)

    def forward(self, i: int, out: np.ndarray, axis=None, factor=1.0, accumulate=False) -> np.ndarray:
        """``out`` ← (``out`` +) c m_k Σ_x field_i(x) e^{-ik·x}, c = ``factor``, m_k = i k_axis (1
        without ``axis``), on the unpadded layout; unresolved wavenumbers ← 0 (unchanged when
        ``accumulate``). Field ``i`` is destroyed."""
        target = self._work_array() if accumulate else out
        self._forward(i, target)
        if axis is not None:
            target *= factor * self._ik[axis]
        elif factor != 1.0:
            target *= factor
        if accumulate:
            out += target
        return out


class PaddedTransform(_Multipliers):
    """Padded transforms of one process.

    Parameters
    ----------
    grid : Torus
    fields : int
        Number of padded real fields to own (each with its own plan pair).
    backend, threads, effort, wisdom_only
        Passed to :class:`~sobolev_flow.fft.RealFFT`, or with pyfftw, 3/2 padding and d ≥ 2 to
        :class:`~sobolev_flow.fft.PrunedRealFFT` (the zero-padded spectra vanish beyond the
        first n_{d−1}/2 columns of the last axis, which the complex transforms skip, and in 3-D
        outside the resolved rows of axis 1, which the transforms along axis 0 skip).
    kernels : {"auto", "numba", "numpy"}
        Zero-padding and truncation with their multipliers in one compiled pass each, or in
        numpy passes (:func:`sobolev_flow.fused.select`).

    Attributes
    ----------
    fields : list of ndarray
        The padded real fields, shape ``grid.padded_shape``.
    scratch : ndarray
        A padded real array in the spectral buffer's memory: free between a :meth:`backward`
        and the next :meth:`forward`, overwritten by either.
    scale : float
        1 / (number of padded points).
    pruned : bool
        Whether the FFTs skip the zero columns (:class:`~sobolev_flow.fft.PrunedRealFFT`).
    """

    def __init__(self, grid: Torus, fields=2, backend="auto", threads=None, effort="estimate", wisdom_only=False,
                 kernels="auto"):
        from .parallel import SERIAL

        self.kernels = fused.select(kernels, points=math.prod(grid.padded_shape))
        self.grid, self.layout = grid, SERIAL
        padded = grid.padded_shape
        self._spectral = empty_aligned((1,) + grid.padded_spectral_shape, complex)
        self._buffers = [empty_aligned((1,) + padded, float) for _ in range(fields)]
        self.fields = [buffer[0] for buffer in self._buffers]
        backend = resolve_backend(backend)
        self.threads, self.effort = resolve_threads(padded, threads), effort
        # the c2r/r2c transforms of field i, between it and the spectral buffer
        self.pruned = backend == "pyfftw" and grid.dealias == "3/2" and grid.d > 1
        if self.pruned:
            # the embedding fills the columns 0 … n/2 − 1 of the last axis and, in 3-D, the rows of
            # axis 1 of |k_1| < n_1/2; the truncation reads them
            rows = _kept(grid.shape[-2], padded[-2]) if grid.d == 3 else None
            fft = PrunedRealFFT(padded, grid.shape[-1] // 2, self.fields, self._spectral[0], rows=rows,
                                threads=self.threads, effort=effort, wisdom_only=wisdom_only)
            self._backward_fft = [functools.partial(fft.backward, i) for i in range(fields)]
            self._forward_fft = [functools.partial(fft.forward, i) for i in range(fields)]
        else:
            plans = [RealFFT(padded, backend=backend, threads=self.threads, effort=effort, physical=buffer,
                             spectral=self._spectral, wisdom_only=wisdom_only) for buffer in self._buffers]
            self._backward_fft = [plan.backward for plan in plans]
            self._forward_fft = [plan.forward for plan in plans]
        self.backend = backend
        self.scale = 1.0 / math.prod(padded)
        # the spectral buffer seen as a padded real field (it holds at least as many doubles)
        self.scratch = self._spectral.view(float).reshape(-1)[:math.prod(padded)].reshape(padded)
        self._blocks = grid.embedding()
        self._padding = _padding_slabs(grid)
        self._unresolved = _unresolved_slabs(grid)
        self._setup_multipliers(grid.spectral_shape)
        self._fused = _FusedMaps(grid, fused.kernel_threads(self.threads)) if self.kernels == "numba" else None

    def wavenumbers(self) -> tuple:
        """k_j as vectors broadcastable to the spectral layout."""
        return self.grid.wavenumbers()

    def backward(self, f_hat: np.ndarray, i: int, axis=None, weights=None) -> np.ndarray:
        """Field ``i`` ← Σ_k m_k f_k e^{ik·x} on the padded grid, m_k = w_k i k_axis (w =
        ``weights``, default 1; i k_axis = 1 without ``axis``); returns the field."""
        if self._fused is None:
            return super().backward(f_hat, i, axis, weights)
        self._fused.embed(self._spectral[0], f_hat, axis, weights)
        self._backward_fft[i]()
        return self.fields[i]

    def _backward(self, f_hat, i):
        self.load(f_hat)
        self._backward_fft[i]()
        return self.fields[i]

    def load(self, f_hat: np.ndarray):
        """The padded spectral buffer ← ``f_hat`` zero-padded (the first half of :meth:`backward`)."""
        spec = self._spectral[0]
        # only the padding needs re-zeroing: the c2r transforms destroy the buffer (and the pruned
        # ones need its zero columns), but every other entry is overwritten here
        for index in self._padding:
            spec[index] = 0.0
        for src, dst in self._blocks:
            spec[dst] = f_hat[src]

    def forward(self, i: int, out: np.ndarray, axis=None, factor=1.0, accumulate=False) -> np.ndarray:
        """``out`` ← (``out`` +) c m_k Σ_x field_i(x) e^{-ik·x}, c = ``factor``, m_k = i k_axis
        (1 without ``axis``), on the unpadded layout; unresolved wavenumbers ← 0 (unchanged when
        ``accumulate``). Field ``i`` is destroyed."""
        if self._fused is None:
            return super().forward(i, out, axis, factor, accumulate)
        self._forward_fft[i]()
        self._fused.extract(out, self._spectral[0], axis, factor, accumulate)
        return out

    def _forward(self, i, out):
        self._forward_fft[i]()
        spec = self._spectral[0]
        # numpy multiplies strided block views several times slower than it copies them: the
        # blocks are copied out here and multiplied by the caller on the contiguous result
        for src, dst in self._blocks:
            np.copyto(out[src], spec[dst])
        for index in self._unresolved:  # the Nyquist planes, which no block writes (3/2)
            out[index] = 0.0
        return out

    def execute(self, i: int):
        """One backward and one forward FFT of field ``i`` and nothing else (for benchmarks)."""
        self._backward_fft[i]()
        self._forward_fft[i]()

    def execute_backward(self, i: int):
        """One backward FFT of field ``i`` and nothing else (for benchmarks)."""
        self._backward_fft[i]()

    def interpolate(self, f_hat: np.ndarray) -> np.ndarray:
        """A new array of the values of Σ_k f_k e^{ik·x} on the padded grid (set-up only)."""
        return self.backward(self.grid.project(np.array(f_hat, dtype=complex)), 0).copy()


class DistributedTransform(_Multipliers):
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
    which :meth:`forward` zeroes in this process's block. The multipliers take numpy passes
    (``kernels`` chooses only the grid-space products of the model).
    """

    kernels = "numpy"

    def __init__(self, layout, fields=2):
        from mpi4py_fft import newDistArray

        self.grid, self.layout = layout.grid, layout
        self._transform = layout.transform
        self.fields = [newDistArray(self._transform, False) for _ in range(fields)]
        self.scratch = np.empty(self.fields[0].shape)
        self.scale = 1.0 / math.prod(self.grid.padded_shape)
        self.backend, self.threads, self.effort = "mpi4py-fft", layout.threads, layout.effort
        self._unresolved = _unresolved_slabs(self.grid, layout.spectral_slice)
        self._setup_multipliers(tuple(b.stop - b.start for b in layout.spectral_slice))

    def wavenumbers(self) -> tuple:
        """k_j of this process's block, as vectors broadcastable to it."""
        out = []
        for axis, (k, block) in enumerate(zip(self.grid.wavenumbers(), self.layout.spectral_slice)):
            index = [slice(None)] * self.grid.d
            index[axis] = block
            out.append(k[tuple(index)])
        return tuple(out)

    def _backward(self, f_hat, i):
        """Field ``i`` ← Σ_k f_k e^{ik·x} (this process's block). Collective."""
        return self._transform.backward(f_hat, self.fields[i])

    def _forward(self, i, out):
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
                     effort="estimate", wisdom_only=False, kernels="auto"):
    """The padded transform for a run: serial, or distributed over ``comm`` when it has more than
    one process (d ≥ 2, see :mod:`sobolev_flow.parallel`; ``kernels`` applies to the serial one)."""
    if comm is not None and comm.Get_size() > 1:
        from .parallel import Distributed

        layout = Distributed(grid, comm, decomposition=decomposition, threads=threads or 1, effort=effort)
        return DistributedTransform(layout, fields)
    return PaddedTransform(grid, fields, backend=backend, threads=threads, effort=effort, wisdom_only=wisdom_only,
                           kernels=kernels)


class _FusedMaps:
    """Zero-padding and truncation of one grid by the compiled kernels of :mod:`sobolev_flow.fused`.

    Arrays are seen as (rows, columns), every axis but the last flattened into rows. ``embed``
    takes the padded rows' source rows (−1: padding) and the number of columns the embedding
    copies; ``extract`` the unpadded rows' padded rows (−1: an unresolved row) and the number of
    resolved columns; both the row and column wavenumbers of every axis for the multipliers.
    With ``threads`` > 1 the kernels run in that many blocks of rows on numba's threads.
    """

    def __init__(self, grid: Torus, threads=1):
        d, lead, padded_lead = grid.d, grid.spectral_shape[:-1], grid.padded_spectral_shape[:-1]
        source = np.arange(math.prod(lead)).reshape(lead)
        rows = np.full(padded_lead, -1, dtype=np.int64)
        blocks = grid.embedding()
        for src, dst in blocks:
            rows[dst[:-1]] = source[src[:-1]]
        self.embed_rows = rows.reshape(-1)
        self.embed_cols = len(range(*blocks[0][0][-1].indices(grid.spectral_shape[-1])))
        extract_rows = np.full(source.size, -1, dtype=np.int64)
        taken = self.embed_rows >= 0
        extract_rows[self.embed_rows[taken]] = np.nonzero(taken)[0]
        resolved = grid.resolved.reshape(source.size, -1)
        extract_rows[~resolved[:, 0]] = -1
        self.extract_rows = extract_rows
        self.extract_cols = int(resolved[0].sum())
        self.rows, self.cols = source.size, grid.spectral_shape[-1]
        self.padded = (self.embed_rows.size, grid.padded_spectral_shape[-1])
        ones_rows, ones_cols = np.ones(self.rows), np.ones(self.cols)
        self.row_k, self.col_k = [], []
        for axis, k in enumerate(grid.wavenumbers()):
            if axis == d - 1:
                self.row_k.append(ones_rows)
                self.col_k.append(np.array(k.reshape(-1), dtype=float))
            else:
                self.row_k.append(np.array(np.broadcast_to(k, lead + (1,)).reshape(-1), dtype=float))
                self.col_k.append(ones_cols)
        self.row_k.append(ones_rows)  # axis None: no wavenumber
        self.col_k.append(ones_cols)
        self._no_weights = np.empty((0, 0))
        self._kernels = fused.spectral(threads)

    def embed(self, spec, f_hat, axis, weights):
        """spec ← w (i k_axis) f_hat zero-padded (see :func:`sobolev_flow.fused.embed`)."""
        kind, a = (fused.COPY, -1) if axis is None else (fused.IMAGINARY, axis)
        w = self._no_weights if weights is None else fused.view(weights, (self.rows, self.cols))
        self._kernels.embed(_pairs(spec, self.padded), _pairs(f_hat, (self.rows, self.cols)), w, self.embed_rows,
                            self.embed_cols, kind, 1.0, self.row_k[a], self.col_k[a], self._kernels.chunks)

    def extract(self, out, spec, axis, factor, accumulate):
        """out (+)← factor (i k_axis) spec truncated (see :func:`sobolev_flow.fused.extract`)."""
        if axis is None:
            kind, a = (fused.COPY if factor == 1.0 else fused.REAL), -1
        else:
            kind, a = fused.IMAGINARY, axis
        self._kernels.extract(_pairs(out, (self.rows, self.cols)), _pairs(spec, self.padded), self.extract_rows,
                              self.extract_cols, kind, float(factor), self.row_k[a], self.col_k[a], bool(accumulate),
                              self._kernels.chunks)


def _pairs(a: np.ndarray, shape) -> np.ndarray:
    """A complex array of ``shape`` (rows, columns) seen as floats of shape (rows, 2 columns)."""
    return fused.view(a, shape).view(float)


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


def _kept(n: int, m: int) -> list:
    """The index ranges of a leading axis of the padded spectral layout (m points) that hold the
    resolved wavenumbers of n points with 3/2 padding, 0 ≤ k < n/2 and −n/2 < k < 0."""
    return [slice(0, n // 2), slice(m - n // 2 + 1, m)]


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
            kept.append(_kept(n, m))
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

