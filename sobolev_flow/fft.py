"""Batched real FFTs on fixed, aligned buffers, planned once.

A :class:`RealFFT` owns (or is handed) a physical buffer of shape ``(batch, *shape)`` and a
spectral buffer of shape ``(batch, *shape[:-1], shape[-1] // 2 + 1)`` and transforms
between them in place of those buffers, unnormalised:

    forward:  F_k = Σ_x f(x) e^{-ik·x}          (physical → spectral)
    backward: f(x) = Σ_k F_k e^{ik·x}           (spectral → physical; destroys the spectral buffer)

so that with coefficients normalised as in :mod:`sobolev_flow.grid` (f_k = F_k / size) the
backward transform of f_k yields grid values directly, on any grid at least as fine.

Back ends: ``"pyfftw"`` (FFTW plans built on the buffers at construction; the planner may
overwrite the buffers, so fill them afterwards) and ``"numpy"`` (``numpy.fft`` with
``out=``). ``"auto"`` picks pyfftw when it is importable.
"""

from __future__ import annotations

import logging
import math
import os

import numpy as np

__all__ = ["RealFFT", "BACKENDS", "EFFORTS", "resolve_backend", "default_threads"]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "pyfftw", "numpy")
EFFORTS = ("estimate", "measure", "patient", "exhaustive")

#: Points per field below which transforms default to one thread.
SMALL_TRANSFORM = 2**15


def default_threads() -> int:
    """Number of cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def resolve_backend(backend: str) -> str:
    """Map ``"auto"`` to the best available back end and check the others are usable."""
    if backend not in BACKENDS:
        raise ValueError(f"fft_backend={backend!r}: expected one of {', '.join(BACKENDS)}")
    if backend == "numpy":
        return backend
    try:
        import pyfftw  # noqa: F401
    except ImportError:
        if backend == "pyfftw":
            raise ValueError("fft_backend='pyfftw': pyfftw is not installed (pip install pyfftw)") from None
        log.info("pyfftw not importable; using numpy.fft")
        return "numpy"
    return "pyfftw"


def empty_aligned(shape, dtype) -> np.ndarray:
    """An uninitialised array aligned for SIMD (64 bytes)."""
    try:
        import pyfftw

        return pyfftw.empty_aligned(shape, dtype=dtype, n=64)
    except ImportError:
        return np.empty(shape, dtype=dtype)


class RealFFT:
    """Batched r2c/c2r transforms of ``batch`` fields over the last ``len(shape)`` axes.

    Parameters
    ----------
    shape : tuple of int
        Grid shape of one field.
    batch : int
        Number of fields transformed together.
    backend : {"auto", "pyfftw", "numpy"}
    threads : int, optional
        FFTW threads (default: the available cores, or 1 for transforms of fewer than
        2^15 points per field). Ignored by numpy.
    effort : {"estimate", "measure", "patient", "exhaustive"}
        FFTW planner effort. "estimate" plans instantly and deterministically.
    physical, spectral : ndarray, optional
        Buffers to plan on instead of allocating new ones (for example a view into a larger
        buffer). Their contents are destroyed by planning.
    """

    def __init__(self, shape, batch=1, backend="auto", threads=None, effort="estimate", physical=None, spectral=None):
        if effort not in EFFORTS:
            raise ValueError(f"fft_effort={effort!r}: expected one of {', '.join(EFFORTS)}")
        self.shape = tuple(shape)
        self.batch = batch
        self.backend = resolve_backend(backend)
        if threads is None:
            # FFTW's threads pay for their synchronisation only on larger transforms
            threads = default_threads() if math.prod(self.shape) >= SMALL_TRANSFORM else 1
        self.threads = int(threads)
        if self.threads < 1:
            raise ValueError(f"threads={threads}: expected a positive integer")
        self.effort = effort
        spec = self.shape[:-1] + (self.shape[-1] // 2 + 1,)
        self.physical = empty_aligned((batch,) + self.shape, float) if physical is None else physical
        self.spectral = empty_aligned((batch,) + spec, complex) if spectral is None else spectral
        if self.physical.shape != (batch,) + self.shape or self.spectral.shape != (batch,) + spec:
            raise ValueError("buffer shapes do not match the transform")
        self.axes = tuple(range(1, len(self.shape) + 1))
        if self.backend == "pyfftw":
            import pyfftw

            flags = ("FFTW_" + effort.upper(), "FFTW_DESTROY_INPUT")
            self._forward = pyfftw.FFTW(
                self.physical, self.spectral, axes=self.axes, direction="FFTW_FORWARD", flags=flags, threads=self.threads
            )
            self._backward = pyfftw.FFTW(
                self.spectral, self.physical, axes=self.axes, direction="FFTW_BACKWARD", flags=flags, threads=self.threads
            )

    def forward(self) -> np.ndarray:
        """``spectral`` ← Σ_x ``physical`` e^{-ik·x}; the physical buffer may be destroyed."""
        if self.backend == "pyfftw":
            self._forward.execute()
        else:
            np.fft.rfftn(self.physical, axes=self.axes, out=self.spectral)
        return self.spectral

    def backward(self) -> np.ndarray:
        """``physical`` ← Σ_k ``spectral`` e^{ik·x}; the spectral buffer is destroyed."""
        if self.backend == "pyfftw":
            self._backward.execute()
        else:
            np.fft.irfftn(self.spectral, s=self.shape, axes=self.axes, out=self.physical, norm="forward")
        return self.physical
