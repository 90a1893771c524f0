"""Element-wise kernels of the grid right-hand side, fused into single passes.

The right-hand side of :class:`~sobolev_flow.models.spectral.SpectralModel` spends, besides its
FFTs, a few passes over the padded arrays per transform: zero-padding the coefficients (times a
multiplier), forming a product on the grid (and, when monitoring, reducing it to a minimum or a
maximum), truncating back (times a multiplier, added to the result). Each group is one pass here.

Two implementations with the same results (up to round-off):

- ``"numpy"``: array expressions, several passes; always available, the reference;
- ``"numba"``: loops compiled by numba (the ``fast`` extra), one pass each, compiled on first
  use and cached on disk (``cache=True``), so only the first run on a machine pays the compile.

The compiled loops come in two variants: one thread, and a parallel one (``parallel=True``)
splitting each pass into ``threads`` blocks on numba's threads (its thread count is left as it
is; at most ``threads`` blocks are busy). The results of the two are the same to the last bit (the
monitor's extrema are combined over the blocks). Models use the parallel variant with
``threads`` > 1 only when :data:`PARALLEL` is set (it is not by default: see there). Each variant
is compiled once per machine (a few seconds each; loading them from the cache then takes well
under a second).

``"auto"`` (the default) takes numba when it is installed and the grid is large enough for the
savings to repay loading it (:data:`AUTO_POINTS`). :func:`select` resolves a choice;
:func:`products` gives the grid-space products, :func:`spectral` the padding and truncation
kernels of :class:`~sobolev_flow.transforms.PaddedTransform`, :func:`stepping` the stage
combinations of the explicit Runge–Kutta stepper (:mod:`sobolev_flow.steppers`), :func:`extension`
the continuous extension of a step (:class:`~sobolev_flow.solver.Solver`).

Grid-space products (fields flattened, μ − ν̄ written m)::

    flux_product:     F = m ∂_jψ in place of ∂_jψ; first axis: m ← m + (ν − ν̄) if given, min m;
                      monitoring: S ← Σ_{i ≤ j} (∂_iψ)² accumulated, max S at the last axis
    reaction_product: R = m ψ in place of ψ; monitoring: max |ψ|
    observe:          at the last axis of the diagnostics' transforms: m ← m + (ν − ν̄) if given,
                      S ← S + (∂_dψ)² (S = (∂_1ψ)² in 1-D); returns (min m, Σ m S, max S)

Spectral kernels (arrays seen as (rows, columns): every axis but the last flattened into rows)::

    embed:    P[p, q] = c_{rq} f[r, q], r = rows[p]    (q < ncols, r ≥ 0), else 0
    extract:  out[r, q] (+)= c_{rq} P[rows[r], q]      (q < ncols, rows[r] ≥ 0), else 0 (+ 0)

with c_{rq} = 1, g or i g, g = scale · r_k[r] · c_k[q] (i k_j is i g with k_j along the rows or
the columns). Minima and maxima propagate NaN, as numpy's do, so a non-finite state is seen.

Stage combinations (complex arrays as float views, L real and diagonal)::

    combine:     out = base + Σ_t c_t K[which[t]]      (U_i = u + h Σ_j a_ij k_j, the update)
    add_linear:  out = L u + n,  or  out ← out + L u    (k_i = L U_i + N(U_i))
    combine_indexed: out = B u + F n0 + Σ_t T_t N[which[t]],  B, F, T_t read through the index of
                 L's distinct values    (exponential RK: U_i = e^{c_i z} u + h Σ_j a_ij(z) N_j, ...)

Continuous extension of a step (E(τ) = e^{τL} from the distinct values of L, v = u1 − E(h) u0)::

    extend:      out = E(θh) u0 + h w10 n0 + h w11 n1 + (w01 + h w11 L) v,
                 ∂t out = d10 n0 + d11 n1 + (d01/h + d11 L) v + L E(θh) u0
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import logging
import math
import sys
import time
from types import SimpleNamespace

import numpy as np

__all__ = ["KERNELS", "PARALLEL", "select", "kernel_threads", "model_threads", "unsigned_index", "products", "spectral",
           "stepping", "extension", "view"]

log = logging.getLogger(__name__)

#: Choices of the ``kernels`` option.
KERNELS = ("auto", "numba", "numpy")

#: Whether a model with ``threads`` > 1 runs the compiled loops in parallel (:func:`kernel_threads`).
#: Off: on a 2-core machine the parallel loops made the right-hand side slower with 2 threads
#: (``benchmarks/rhs_passes.py``): numba's thread pool and FFTW's (pyFFTW's own OpenMP runtime)
#: wait for work by spinning, and alternating parallel regions of the two runtimes on the same
#: cores stall each other (256²: 2.2 ms serial loops, 43 ms parallel, 4.3 ms with numba's
#: workqueue layer). Set it before building a model to use the parallel variant.
PARALLEL = False


def model_threads(model):
    """The threads of the compiled loops for ``model`` (:func:`kernel_threads` of its transform's
    threads) when its element-wise work is compiled (``model.kernels == "numba"``) and its states
    are complex, else None (the numpy passes)."""
    if getattr(model, "kernels", None) != "numba" or model.empty().dtype != np.complex128:
        return None
    return kernel_threads(getattr(getattr(model, "transform", None), "threads", 1))


def unsigned_index(index: np.ndarray):
    """``index`` (non-negative int32 positions, as :func:`~sobolev_flow.steppers.distinct_values`
    gives) flattened and seen as uint32, the index type of the compiled kernels (no wraparound of
    negative indices to check); None for a wider index."""
    if index.dtype != np.int32:
        return None
    return np.ascontiguousarray(index.reshape(-1)).view(np.uint32)


def kernel_threads(threads: int) -> int:
    """The threads the compiled loops of a model on ``threads`` FFT threads use: ``threads`` when
    :data:`PARALLEL`, else 1."""
    return int(threads) if PARALLEL else 1


#: Padded grid points from which ``"auto"`` takes numba: below, the right-hand side saves
#: microseconds per call, which do not repay loading numba and the compiled kernels (about a
#: second per process, several seconds the first time, when they are compiled).
AUTO_POINTS = 2**17


def select(kernels="auto", field="kernels", points=math.inf) -> str:
    """The implementation a ``kernels`` choice names: ``"numba"`` or ``"numpy"``.

    Parameters
    ----------
    kernels : {"auto", "numba", "numpy"}
        "auto": numba when it is installed and the padded grid has at least
        :data:`AUTO_POINTS` points, else numpy.
    field : str
        How the option is named in error messages (e.g. ``fft.kernels`` in a configuration).
    points : int, optional
        Points of the padded grid (default: large).

    Raises
    ------
    ValueError
        An unknown choice, or "numba" without numba installed (one line, naming ``field``).
    """
    if kernels not in KERNELS:
        raise ValueError(f"{field}={kernels!r}: expected one of {', '.join(KERNELS)}")
    if kernels == "numba":
        try:
            import numba  # noqa: F401
        except ImportError:
            raise ValueError(f"{field}='numba': numba is not installed (pip install 'sobolev_flow[fast]')") from None
        return "numba"
    return "numba" if kernels == "auto" and points >= AUTO_POINTS and _installed("numba") else "numpy"


def _installed(name: str) -> bool:
    """Whether module ``name`` can be imported, without importing it."""
    if name in sys.modules:
        return sys.modules[name] is not None
    return importlib.util.find_spec(name) is not None


def view(a: np.ndarray, shape) -> np.ndarray:
    """``a`` as a plain ndarray of ``shape`` sharing its memory (the kernels work in place).

    Raises
    ------
    ValueError
        ``a`` is not C-contiguous (a reshape would copy).
    """
    if not a.flags.c_contiguous:
        raise ValueError(f"expected a C-contiguous array, got shape {a.shape} with strides {a.strides}")
    return np.asarray(a).reshape(shape)


# ============================================================================ numpy
def _flux_product_numpy(work, mu, speed2, offset, scratch, first, last, monitor, chunks=1):
    """The numpy passes of :func:`flux_product` (same contract; ``scratch`` holds (∂_jψ)²;
    ``chunks`` is ignored)."""
    low, high = math.inf, 0.0
    if first and offset.size:
        mu += offset
    if monitor:
        if first:
            low = float(np.min(mu, initial=math.inf))
            if last:
                high = float(np.max(np.square(work, out=scratch), initial=0.0))
            else:
                np.square(work, out=speed2)
        elif last:  # speed2 left as it is
            high = float(np.max(np.add(speed2, np.square(work, out=scratch), out=scratch), initial=0.0))
        else:
            speed2 += np.square(work, out=scratch)
    work *= mu
    return low, high


def _reaction_product_numpy(field, mu, monitor, chunks=1):
    """The numpy passes of :func:`reaction_product` (same contract; ``chunks`` is ignored)."""
    high = float(np.max(np.abs(field), initial=0.0)) if monitor else 0.0
    field *= mu
    return high


def _observe_numpy(m, speed2, gradient, offset, first, chunks=1):
    """The numpy passes of :func:`observe` (same contract; ``chunks`` is ignored)."""
    if offset.size:
        m += offset
    if first:
        np.multiply(gradient, gradient, out=speed2)
    else:
        speed2 += np.multiply(gradient, gradient, out=gradient)
    low = float(np.min(m, initial=math.inf))
    # numpy's own loop: a BLAS dot (np.dot, np.vdot) spins its threads against FFTW's
    total = float(np.einsum("i,i->", m, speed2))
    return low, total, float(np.max(speed2, initial=0.0))


def _observe_compiled(loop, m, speed2, gradient, offset, first, chunks):
    """:func:`observe` with the compiled ``loop`` (one pass) and the blocks' results combined; the
    extrema by numpy when the sum is NaN (so that a NaN reaches them, as numpy's do)."""
    partial = np.empty((chunks, 3))
    loop(m, speed2, gradient, offset, first, partial, chunks)
    total = float(np.sum(partial[:, 1]))
    if math.isnan(total):
        return float(np.min(m, initial=math.inf)), total, float(np.max(speed2, initial=0.0))
    return float(np.min(partial[:, 0])), total, float(np.max(partial[:, 2]))


def _flux_product_compiled(loop, work, mu, speed2, offset, scratch, first, last, monitor, chunks):
    """The flux product with the compiled ``loop`` (:func:`flux_product`: the product in one pass)
    and the monitor's reductions by numpy.

    Returns
    -------
    low : float
        min m over the grid at the first axis when monitoring (NaN if any m is NaN), else inf.
    high : float
        max |∇ψ|² = max Σ_i (∂_iψ)² at the last axis when monitoring (NaN propagates), else 0.
    """
    loop(work, mu, speed2, offset, scratch, first, last, monitor, chunks)
    if not monitor:
        return math.inf, 0.0
    low = float(np.min(mu, initial=math.inf)) if first else math.inf
    high = float(np.max(scratch, initial=0.0)) if last else 0.0
    return low, high


def _reaction_product_compiled(loop, field, mu, monitor, chunks):
    """:func:`reaction_product`'s contract with the compiled ``loop``: max |ψ| = max(max ψ, −min ψ)
    by numpy (NaN propagates) when monitoring, then R = m ψ in one pass."""
    high = float(np.maximum(np.max(field, initial=0.0), -np.min(field, initial=0.0))) if monitor else 0.0
    loop(field, mu, chunks)
    return high


# ============================================================================ loops for numba
def _loops(prange):
    """The compiled kernels' loops, with ``prange`` = ``range`` (one thread) or ``numba.prange``
    (compiled with ``parallel=True``: the ``chunks`` blocks run on numba's threads).

    Every kernel splits its index range into ``chunks`` contiguous blocks, the outer loop runs
    over the blocks; with ``range`` and one chunk it is the plain loop. The element-wise loops index
    each block through slices from 0 (see :func:`flux_product`); the row loops start at max(·, 0). The two variants are two
    closures of this function, so numba's disk cache keeps them apart (its key hashes the
    closure's cells)."""

    def flux_product(work, mu, speed2, offset, scratch, first, last, monitor, chunks):
        """F = m ∂_jψ in place of ``work`` = ∂_jψ, with m = μ − ν̄, and, when monitoring, the sums
        of squares S_j = Σ_{i≤j} (∂_iψ)² the monitor reduces (:func:`products` wraps this loop).

        Parameters
        ----------
        work : ndarray, 1-D float
            ∂_jψ on the padded grid (flattened); receives F_j = m ∂_jψ.
        mu : ndarray, 1-D float
            m = μ − ν̄ − (ν − ν̄) before the first axis when ``offset`` is given (then m ← m + offset),
            else m = μ − ν̄.
        speed2 : ndarray, 1-D float
            S_{j−1} from the previous axes; receives S_j unless ``last``.
        offset : ndarray, 1-D float
            ν − ν̄ on the padded grid, added to ``mu`` at the first axis (a non-uniform target), or
            an empty array (none).
        scratch : ndarray, 1-D float
            Receives S_j at the last axis when monitoring (``speed2`` is then left as it is).
        first, last : bool
            Whether j is the first or the last axis.
        monitor : bool
            Form S_j.
        chunks : int
            Blocks of the index range (threads of the parallel variant).

        Notes
        -----
        The loop has no reduction and no branch that depends on the data, so it vectorises; the
        monitor's min m and max S are numpy's reductions after it (which propagate NaN).
        """
        n = work.size
        add = first and offset.size > 0
        for c in prange(chunks):
            start, stop = c * n // chunks, (c + 1) * n // chunks
            # the block as slices, indexed from 0: known non-negative indices need no wraparound,
            # which would keep the loops from vectorising
            f, m = work[start:stop], mu[start:stop]
            s = (scratch if last else speed2)[start:stop]
            if not monitor:
                if add:
                    o = offset[start:stop]
                    for i in range(f.size):
                        v = m[i] + o[i]
                        m[i] = v
                        f[i] *= v
                else:
                    for i in range(f.size):
                        f[i] *= m[i]
            elif first and add:
                o = offset[start:stop]
                for i in range(f.size):
                    g, v = f[i], m[i] + o[i]
                    m[i] = v
                    s[i] = g * g
                    f[i] = g * v
            elif first:
                for i in range(f.size):
                    g = f[i]
                    s[i] = g * g
                    f[i] = g * m[i]
            else:
                previous = speed2[start:stop]
                for i in range(f.size):
                    g = f[i]
                    s[i] = previous[i] + g * g
                    f[i] = g * m[i]

    def observe_sums(m, speed2, gradient, offset, first, partial, chunks):
        """The reductions of the monitor and of D at the last axis, one pass (:func:`observe`):
        m ← m + offset (if given), S = S_{d−1} + (∂_dψ)² (alone if ``first``) in place of
        ``speed2``, and per block c: partial[c] = (min m, Σ m S, max S) (inf, 0, 0 if empty).

        Parameters
        ----------
        m : ndarray, 1-D float
            μ − ν̄ on the padded grid (flattened), or μ − ν̄ − (ν − ν̄) when ``offset`` is given.
        speed2 : ndarray, 1-D float
            S_{d−1} = Σ_{i<d} (∂_iψ)² from the previous axes; receives S.
        gradient : ndarray, 1-D float
            ∂_dψ of the last axis.
        offset : ndarray, 1-D float
            ν − ν̄, added to ``m``, or an empty array (none).
        first : bool
            Whether the last axis is also the first (1-D: S = (∂_1ψ)²).
        partial : ndarray, float, (chunks, 3)
            Receives the block's minimum, sum and maximum.
        chunks : int
            Blocks of the index range (threads of the parallel variant).

        Notes
        -----
        The comparisons skip NaN: the caller recomputes the extrema by numpy (which propagate NaN)
        when a sum is NaN, which any NaN in m or S makes it.
        """
        n = m.size
        add = offset.size > 0
        for c in prange(chunks):
            start, stop = c * n // chunks, (c + 1) * n // chunks
            x, s, g = m[start:stop], speed2[start:stop], gradient[start:stop]
            low, total, high = math.inf, 0.0, 0.0
            if add:
                o = offset[start:stop]
                for i in range(x.size):
                    x[i] += o[i]
            for i in range(x.size):
                v, a = x[i], g[i]
                q = a * a if first else s[i] + a * a
                s[i] = q
                total += v * q
                if v < low:
                    low = v
                if q > high:
                    high = q
            partial[c, 0], partial[c, 1], partial[c, 2] = low, total, high

    def reaction_product(field, mu, chunks):
        """R = m ψ in place of ``field`` = ψ (m = μ − ν̄), in ``chunks`` blocks."""
        n = field.size
        for c in prange(chunks):
            f, m = field[c * n // chunks:(c + 1) * n // chunks], mu[c * n // chunks:(c + 1) * n // chunks]
            for i in range(f.size):
                f[i] *= m[i]

    def embed(spec, f, weights, rows, ncols, kind, scale, row_k, col_k, chunks):
        """spec[p, q] ← c_{rq} w_{rq} f[r, q] with r = rows[p] ≥ 0 and q < ncols, else 0.

        The multiplier is c_{rq} = 1 (``kind`` COPY) or i g (IMAGINARY) with
        g = scale row_k[r] col_k[q]; complex arrays are passed as float views, (re, im) pairs.

        Parameters
        ----------
        spec : ndarray, float, (P, 2Q)
            The padded spectral array, every axis but the last flattened into rows.
        f : ndarray, float, (R, 2C)
            The coefficients on the unpadded layout, likewise flattened.
        weights : ndarray, float, (R, C) or (0, 0)
            Real weights w (the kernel's K̂), or none (w = 1).
        rows : ndarray of int, (P,)
            The row of ``f`` each padded row takes, or −1 (a padding row).
        ncols : int
            Complex columns taken (the rest of each padded row is padding).
        kind : int
            COPY or IMAGINARY.
        scale : float
        row_k, col_k : ndarray of float, (R,) and (C,)
            Row and column factors (wavenumbers, or ones).
        chunks : int
            Blocks of rows (threads of the parallel variant).
        """
        weighted = weights.size > 0
        total = spec.shape[0]
        for c in prange(chunks):
            for p in range(max(c * total // chunks, 0), (c + 1) * total // chunks):
                r = rows[p]
                if r < 0:  # a padding row
                    spec[p, :] = 0.0
                    continue
                spec[p, 2 * ncols:] = 0.0  # the padding columns
                a = scale * row_k[r]
                if kind == COPY and not weighted:
                    for q in range(2 * ncols):
                        spec[p, q] = f[r, q]
                elif kind == COPY:
                    for q in range(ncols):
                        w = weights[r, q]
                        spec[p, 2 * q] = w * f[r, 2 * q]
                        spec[p, 2 * q + 1] = w * f[r, 2 * q + 1]
                elif weighted:  # i g w f, as (w f) times i g
                    for q in range(ncols):
                        g = a * col_k[q]
                        w = weights[r, q]
                        spec[p, 2 * q] = -(g * (w * f[r, 2 * q + 1]))
                        spec[p, 2 * q + 1] = g * (w * f[r, 2 * q])
                else:
                    for q in range(ncols):
                        g = a * col_k[q]
                        spec[p, 2 * q] = -(g * f[r, 2 * q + 1])
                        spec[p, 2 * q + 1] = g * f[r, 2 * q]

    def extract(out, spec, rows, ncols, kind, scale, row_k, col_k, accumulate, chunks):
        """out[r, q] ← (out[r, q] +) c_{rq} spec[rows[r], q] for rows[r] ≥ 0 and q < ncols; the other
        entries ← 0 (left as they are when ``accumulate``).

        Parameters
        ----------
        out : ndarray, float, (R, 2C)
            Coefficients on the unpadded layout as (re, im) pairs, every axis but the last
            flattened into rows.
        spec : ndarray, float, (P, 2Q)
            The padded spectral array, likewise.
        rows : ndarray of int, (R,)
            The padded row each row of ``out`` takes, or −1 (an unresolved row).
        ncols : int
            Resolved complex columns.
        kind, scale, row_k, col_k
            The multiplier c_{rq} = i g (``kind`` IMAGINARY) or g (REAL, and COPY with scale 1),
            g = scale row_k[r] col_k[q].
        accumulate : bool
            Add to ``out`` instead of overwriting it.
        chunks : int
            Blocks of rows (threads of the parallel variant).
        """
        imaginary = kind == IMAGINARY  # else real: g (COPY is g = scale = 1)
        total = out.shape[0]
        for c in prange(chunks):
            for r in range(max(c * total // chunks, 0), (c + 1) * total // chunks):
                p = rows[r]
                if p < 0:  # an unresolved row
                    if not accumulate:
                        out[r, :] = 0.0
                    continue
                if not accumulate:
                    out[r, 2 * ncols:] = 0.0  # the unresolved columns
                a = scale * row_k[r]
                if imaginary and accumulate:
                    for q in range(ncols):
                        g = a * col_k[q]
                        re, im = spec[p, 2 * q], spec[p, 2 * q + 1]
                        out[r, 2 * q] += -(g * im)
                        out[r, 2 * q + 1] += g * re
                elif imaginary:
                    for q in range(ncols):
                        g = a * col_k[q]
                        re, im = spec[p, 2 * q], spec[p, 2 * q + 1]
                        out[r, 2 * q] = -(g * im)
                        out[r, 2 * q + 1] = g * re
                elif accumulate:
                    for q in range(ncols):
                        g = a * col_k[q]
                        out[r, 2 * q] += g * spec[p, 2 * q]
                        out[r, 2 * q + 1] += g * spec[p, 2 * q + 1]
                else:
                    for q in range(ncols):
                        g = a * col_k[q]
                        out[r, 2 * q] = g * spec[p, 2 * q]
                        out[r, 2 * q + 1] = g * spec[p, 2 * q + 1]

    def combine(out, base, coefs, terms, which, chunks):
        """out ← base + Σ_t coefs[t] terms[which[t]] in one pass (complex arrays as float views).

        The terms are added one after the other in the order of ``which``, as the numpy
        stepper's ``out += c x`` does, so the result is the same to the last bit.

        Parameters
        ----------
        out : ndarray, 1-D float
            Receives the combination (may be ``base`` itself).
        base : ndarray, 1-D float
            The first term, or an empty array (none: the sum starts at 0).
        coefs : ndarray, 1-D float
            Real coefficients, one per entry of ``which``.
        terms : ndarray, 2-D float
            Rows the combination takes (e.g. the stage slopes k_j of a Runge–Kutta step).
        which : ndarray of int
            The rows of ``terms`` taken, in order.
        chunks : int
            Blocks of the index range (threads of the parallel variant).
        """
        n = out.size
        based = base.size > 0
        for c in prange(chunks):
            start, stop = c * n // chunks, (c + 1) * n // chunks
            o, b, k = out[start:stop], base[start:stop] if based else base, terms[:, start:stop]
            for i in range(o.size):
                acc = b[i] if based else 0.0
                for t in range(which.size):
                    acc += coefs[t] * k[which[t], i]
                o[i] = acc

    def combine_indexed(out, base, base_table, first, first_table, terms, tables, which, index, base_last, chunks):
        """out ← B base + F first + Σ_t T_t terms[which[t]] in one pass, each real multiplier read
        from its values on the distinct values of L through ``index`` (complex arrays as float
        views; one entry of ``index`` per complex coefficient).

        The terms are added in the order written (with ``base_last``, B base after them), as the
        numpy passes of the exponential stepper add them, so the result is the same to the last
        bit.

        Parameters
        ----------
        out : ndarray, 1-D float
            Receives the combination (may be ``base`` itself).
        base : ndarray, 1-D float
            A term (the state u, or the sum so far), or an empty array (none).
        base_table : ndarray, 1-D float
            B on the distinct values of L (e.g. e^{c z}), or an empty array (B = 1).
        first : ndarray, 1-D float
            A term outside ``terms`` (N at the step's start), or an empty array (none).
        first_table : ndarray, 1-D float
            F on the distinct values.
        terms : ndarray, 2-D float
            Rows the combination takes (the stage N's).
        tables : ndarray, 2-D float
            T_t on the distinct values, one row per entry of ``which``.
        which : ndarray of int
            The rows of ``terms`` taken, in order.
        index : ndarray of uint32
            The position in the distinct values of each complex coefficient (unsigned: no
            wraparound of negative indices to check).
        base_last : bool
            Add B base after the other terms instead of starting from it.
        chunks : int
            Blocks of the index range (threads of the parallel variant).
        """
        size = index.size
        based, scaled, given = base.size > 0, base_table.size > 0, first.size > 0
        block = 512  # entries per sub-block: the sums are formed term after term on a block in L1
        for c in prange(chunks):
            for start in range(c * size // chunks, (c + 1) * size // chunks, block):
                stop = min(start + block, (c + 1) * size // chunks)
                where, o = index[start:stop], out[2 * start:2 * stop]
                m = where.size
                b = base[2 * start:2 * stop] if based else base
                if based and not base_last and scaled:
                    for q in range(m):
                        w = base_table[where[q]]
                        o[2 * q] = w * b[2 * q]
                        o[2 * q + 1] = w * b[2 * q + 1]
                elif based and not base_last:
                    for p in range(2 * m):
                        o[p] = b[p]
                else:
                    for p in range(2 * m):
                        o[p] = 0.0
                for t in range(-1 if given else 0, which.size):  # t = −1: F first
                    x = first[2 * start:2 * stop] if t < 0 else terms[which[t], 2 * start:2 * stop]
                    table = first_table if t < 0 else tables[t]
                    for q in range(m):
                        w = table[where[q]]
                        o[2 * q] += w * x[2 * q]
                        o[2 * q + 1] += w * x[2 * q + 1]
                if based and base_last and scaled:
                    for q in range(m):
                        w = base_table[where[q]]
                        o[2 * q] += w * b[2 * q]
                        o[2 * q + 1] += w * b[2 * q + 1]
                elif based and base_last:
                    for p in range(2 * m):
                        o[p] += b[p]

    def add_linear(out, linear, u, n, chunks):
        """out ← L u + n (or, with ``n`` empty, out ← out + L u) in one pass, L real and diagonal
        (one entry per complex coefficient), the complex arrays as float views (re, im) pairs."""
        size = linear.size
        given = n.size > 0
        for c in prange(chunks):
            start, stop = c * size // chunks, (c + 1) * size // chunks
            el, o, x = linear[start:stop], out[2 * start:2 * stop], u[2 * start:2 * stop]
            if given:
                y = n[2 * start:2 * stop]
                for k in range(el.size):
                    a = el[k]
                    o[2 * k] = a * x[2 * k] + y[2 * k]
                    o[2 * k + 1] = a * x[2 * k + 1] + y[2 * k + 1]
            else:
                for k in range(el.size):
                    a = el[k]
                    o[2 * k] += a * x[2 * k]
                    o[2 * k + 1] += a * x[2 * k + 1]

    def extend(out, derivative, u0, n0, u1, n1, linear, decay_step, decay, index, weights, chunks):
        """The continuous extension of a step of h (:meth:`sobolev_flow.solver.Solver._extend`) at
        θ in one pass, E(τ) = e^{τL} read from the exponentials of L's distinct values:

            v = u1 − E(h) u0,
            out = E(θh) u0 + h w10 n0 + h w11 n1 + (w01 + h w11 L) v,
            derivative = d10 n0 + d11 n1 + (d01/h + d11 L) v + L E(θh) u0,

        each sum in the order of the numpy passes of the solver (left to right as written), so the
        results are theirs to the last bit.

        Parameters
        ----------
        out, derivative : ndarray, 1-D float
            Receive the state and its time derivative (complex arrays as float views); an empty
            ``derivative``: none.
        u0, n0, u1, n1 : ndarray, 1-D float
            The states at both ends of the step and N there (float views).
        linear : ndarray, 1-D float
            L, one entry per complex coefficient.
        decay_step, decay : ndarray, 1-D float
            e^{hλ} and e^{θhλ} of the distinct values λ of L.
        index : ndarray of uint32
            The position in the distinct values of each entry of L (unsigned: no wraparound of
            negative indices to check).
        weights : ndarray, float, (7,)
            h w10, h w11, w01, h w11, d10, d11, d01/h (the cubic Hermite weights at θ and their
            derivatives, :func:`~sobolev_flow.solver.cubic_hermite_weights`).
        chunks : int
            Blocks of the index range (threads of the parallel variant).
        """
        size = linear.size
        given = derivative.size > 0
        a10, a11, w01, b11, d10, d11, d01 = (weights[0], weights[1], weights[2], weights[3], weights[4],
                                             weights[5], weights[6])
        for c in prange(chunks):
            start, stop = c * size // chunks, (c + 1) * size // chunks
            el, where = linear[start:stop], index[start:stop]
            x0, m0 = u0[2 * start:2 * stop], n0[2 * start:2 * stop]
            x1, m1, o = u1[2 * start:2 * stop], n1[2 * start:2 * stop], out[2 * start:2 * stop]
            if given:
                dv = derivative[2 * start:2 * stop]
                for k in range(el.size):
                    lam, i = el[k], where[k]
                    e, a = decay_step[i], decay[i]
                    g, gd, f = w01 + b11 * lam, d01 + d11 * lam, lam * a
                    re, im = 2 * k, 2 * k + 1
                    x, y = x0[re], x0[im]
                    v, w = x1[re] - e * x, x1[im] - e * y
                    o[re] = a * x + a10 * m0[re] + a11 * m1[re] + g * v
                    o[im] = a * y + a10 * m0[im] + a11 * m1[im] + g * w
                    dv[re] = d10 * m0[re] + d11 * m1[re] + gd * v + f * x
                    dv[im] = d10 * m0[im] + d11 * m1[im] + gd * w + f * y
            else:
                for k in range(el.size):
                    lam, i = el[k], where[k]
                    e, a = decay_step[i], decay[i]
                    g = w01 + b11 * lam
                    re, im = 2 * k, 2 * k + 1
                    x, y = x0[re], x0[im]
                    o[re] = a * x + a10 * m0[re] + a11 * m1[re] + g * (x1[re] - e * x)
                    o[im] = a * y + a10 * m0[im] + a11 * m1[im] + g * (x1[im] - e * y)

    return SimpleNamespace(flux_product=flux_product, reaction_product=reaction_product, observe_sums=observe_sums,
                           embed=embed, extract=extract, combine=combine, combine_indexed=combine_indexed,
                           add_linear=add_linear, extend=extend)


#: Multipliers of :func:`embed` and :func:`extract`: none, a real g, an imaginary i g.
COPY, REAL, IMAGINARY = 0, 1, 2

_serial_loops = _loops(range)
flux_product, reaction_product = _serial_loops.flux_product, _serial_loops.reaction_product
embed, extract = _serial_loops.embed, _serial_loops.extract


# ============================================================================ selection
@functools.cache
def _compiled(parallel=False) -> SimpleNamespace:
    """The loops above compiled by numba for their one signature each (on first call; cached on
    disk, so a later process loads them instead of compiling): one thread, or with ``parallel``
    the variant whose blocks run on numba's threads."""
    import numba
    from numba import boolean, float64, int64, uint32

    vector, matrix, rows, index = float64[::1], float64[:, ::1], int64[::1], uint32[::1]
    jit = functools.partial(numba.njit, cache=True, nogil=True, parallel=parallel)
    loops = _loops(numba.prange) if parallel else _serial_loops
    start = time.perf_counter()
    out = SimpleNamespace(
        flux_product=jit(numba.void(vector, vector, vector, vector, vector, boolean, boolean, boolean,
                                    int64))(loops.flux_product),
        reaction_product=jit(numba.void(vector, vector, int64))(loops.reaction_product),
        observe_sums=jit(numba.void(vector, vector, vector, vector, boolean, matrix, int64))(loops.observe_sums),
        embed=jit(numba.void(matrix, matrix, matrix, rows, int64, int64, float64, vector, vector, int64))(loops.embed),
        extract=jit(numba.void(matrix, matrix, rows, int64, int64, float64, vector, vector, boolean,
                               int64))(loops.extract),
        combine=jit(numba.void(vector, vector, vector, matrix, rows, int64))(loops.combine),
        add_linear=jit(numba.void(vector, vector, vector, vector, int64))(loops.add_linear),
        combine_indexed=jit(numba.void(vector, vector, vector, vector, vector, matrix, matrix, rows, index, boolean,
                                       int64))(loops.combine_indexed),
        extend=jit(numba.void(vector, vector, vector, vector, vector, vector, vector, vector, vector, index,
                              vector, int64))(loops.extend),
    )
    log.debug("fused kernels ready (numba %s%s) in %.2f s", numba.__version__, ", parallel" if parallel else "",
              time.perf_counter() - start)
    _no_colorama_exit_reset()
    return out


def _no_colorama_exit_reset():
    """Undo an exit handler numba's error formatting can leave behind.

    Compiling imports numba modules that format error messages through colorama, whose
    ``init`` registers an exit handler writing a terminal reset code to stdout when stdout is a
    terminal (as it is for every process under mpirun): the output of a run would end in
    stray bytes."""
    colorama = sys.modules.get("colorama.initialise")
    if colorama is not None:
        atexit.unregister(colorama.reset_all)


def products(kernels: str, threads: int = 1) -> SimpleNamespace:
    """``flux_product``, ``reaction_product`` and ``observe`` of an implementation ("numba" or
    "numpy", as :func:`select` returns), all taking flattened views and, last, the number of blocks
    ``chunks`` (ignored by numpy), which is given as the attribute ``chunks`` = ``threads``.

    With ``threads`` > 1 the compiled loops are the parallel variant: ``chunks`` blocks on
    numba's threads (at most ``threads`` of them busy, whatever numba's own thread count)."""
    if kernels == "numba":
        compiled = _compiled(threads > 1)
        return SimpleNamespace(flux_product=functools.partial(_flux_product_compiled, compiled.flux_product),
                               reaction_product=functools.partial(_reaction_product_compiled,
                                                                  compiled.reaction_product),
                               observe=functools.partial(_observe_compiled, compiled.observe_sums),
                               chunks=int(threads))
    return SimpleNamespace(flux_product=_flux_product_numpy, reaction_product=_reaction_product_numpy,
                           observe=_observe_numpy, chunks=1)


def spectral(threads: int = 1) -> SimpleNamespace:
    """The compiled ``embed`` and ``extract`` kernels (numba), parallel with ``threads`` > 1 (as
    :func:`products`), and ``chunks`` = ``threads``."""
    compiled = _compiled(threads > 1)
    return SimpleNamespace(embed=compiled.embed, extract=compiled.extract, chunks=int(threads))


def extension(threads: int = 1) -> SimpleNamespace:
    """The compiled ``extend`` kernel of the solver's continuous extension (numba), parallel with
    ``threads`` > 1 (as :func:`products`), and ``chunks`` = ``threads``."""
    compiled = _compiled(threads > 1)
    return SimpleNamespace(extend=compiled.extend, chunks=int(threads))


def stepping(threads: int = 1) -> SimpleNamespace:
    """The compiled ``combine``, ``combine_indexed`` and ``add_linear`` kernels of the Runge–Kutta
    stage combinations (numba), parallel with ``threads`` > 1 (as :func:`products`), and
    ``chunks`` = ``threads``."""
    compiled = _compiled(threads > 1)
    return SimpleNamespace(combine=compiled.combine, combine_indexed=compiled.combine_indexed,
                           add_linear=compiled.add_linear, chunks=int(threads))
