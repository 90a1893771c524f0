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

:class:`PrunedRealFFT` gives the same two transforms (FFTW only, d ≥ 2) for spectra that vanish
beyond the first columns of the last axis, as the zero-padded coefficients of a 3/2-padded grid
do: the complex transforms over the leading axes run on those columns alone.
"""

from __future__ import annotations

import logging
import math
import os
import pathlib
import pickle

import numpy as np

__all__ = ["RealFFT", "PrunedRealFFT", "BACKENDS", "EFFORTS", "resolve_backend", "resolve_threads",
           "default_threads", "wisdom_path", "export_wisdom", "import_wisdom"]

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


def resolve_effort(effort: str, processes: int = 1) -> str:
    """The FFTW planner effort a run's ``fft.effort`` names: one of :data:`EFFORTS`, or "auto",
    which is "measure" on one process and "estimate" on several.

    Measured plans cost their planning once per machine, shape and thread count (the wisdom
    cache keeps them, :func:`wisdom_path`) and a run file keeps the wisdom its plans came from,
    from which a restart on one process replays them bit for bit; under MPI the processes would
    plan apart and a restart could not replay them, so "auto" keeps the deterministic "estimate"
    there.

    Raises
    ------
    ValueError
        An unknown choice (one line naming ``fft.effort``).
    """
    if effort == "auto":
        return "measure" if processes <= 1 else "estimate"
    if effort not in EFFORTS:
        raise ValueError(f"fft.effort={effort!r}: expected one of auto, {', '.join(EFFORTS)}")
    return effort


def resolve_threads(shape, threads=None) -> int:
    """FFTW threads for transforms of ``shape``: ``threads``, or by default the available cores,
    or 1 for transforms of fewer than :data:`SMALL_TRANSFORM` points (FFTW's threads pay for their
    synchronisation only on larger transforms)."""
    if threads is None:
        threads = default_threads() if math.prod(shape) >= SMALL_TRANSFORM else 1
    if int(threads) < 1:
        raise ValueError(f"threads={threads}: expected a positive integer")
    return int(threads)


def wisdom_path(threads: int) -> pathlib.Path:
    """Where FFTW wisdom for ``threads`` threads is kept.

    ``$SOBOLEV_FLOW_CACHE`` if set, else ``$XDG_CACHE_HOME/sobolev_flow`` (default
    ``~/.cache/sobolev_flow``); the file name carries the pyfftw version and the thread count,
    since wisdom is only valid for the FFTW build and the threading it was measured with.
    """
    import pyfftw

    base = os.environ.get("SOBOLEV_FLOW_CACHE")
    if not base:
        base = pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache") / "sobolev_flow"
    return pathlib.Path(base) / f"fftw-wisdom-pyfftw{pyfftw.__version__}-threads{threads}.pickle"


def export_wisdom() -> bytes:
    """FFTW's current double-precision wisdom (b"" without pyfftw)."""
    try:
        import pyfftw
    except ImportError:
        return b""
    return pyfftw.export_wisdom()[0]


def import_wisdom(wisdom: bytes) -> bool:
    """Add double-precision wisdom (as from :func:`export_wisdom`) to FFTW's; False if rejected."""
    import pyfftw

    return bool(wisdom) and bool(pyfftw.import_wisdom((wisdom, b"", b""))[0])


def _import_wisdom(path: pathlib.Path) -> bool:
    """Load wisdom from ``path`` into FFTW; False (with a warning) if it cannot be used."""
    import pyfftw

    if not path.is_file():
        return False
    try:
        wisdom = pickle.loads(path.read_bytes())
        ok = pyfftw.import_wisdom(wisdom)[0]  # double precision, the one used here
    except Exception as err:  # a corrupt or foreign file must not stop a run
        log.warning("ignoring unreadable FFTW wisdom %s (%s)", path, err)
        return False
    if not ok:
        log.warning("FFTW rejected the wisdom in %s; planning from scratch", path)
    return bool(ok)


def _export_wisdom(path: pathlib.Path, unless=None):
    """Save FFTW's current wisdom to ``path`` atomically (best effort), unless it equals
    ``unless`` (the wisdom the cache gave before planning: the plans added nothing to save)."""
    import pyfftw

    wisdom = pyfftw.export_wisdom()
    if wisdom == unless:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(pickle.dumps(wisdom))
        os.replace(tmp, path)
    except OSError as err:
        # the run is unaffected (a later one plans again): not a warning, which a run under a full
        # disk or a file size limit would add to the one line of its own write error
        log.info("could not save FFTW wisdom to %s (%s)", path, err)
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


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


def _fftw_plans(transforms, shape, threads, effort, use_wisdom=True, wisdom_only=False) -> list:
    """FFTW plans of ``transforms``, a list of (input, output, axes, direction, destroy), for a
    ``shape`` grid (named in errors) on ``threads`` threads with the planner ``effort``.

    ``destroy``: the plan may overwrite its input (``FFTW_DESTROY_INPUT``). For efforts other
    than "estimate" the per-user wisdom cache (:func:`wisdom_path`) is imported before planning
    (``use_wisdom``) and saved afterwards; ``wisdom_only`` accepts only plans FFTW has wisdom for
    (``FFTW_WISDOM_ONLY``), else raises ValueError.
    """
    import pyfftw

    omp = os.environ.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and 0 < int(omp) < threads:
        log.warning("threads=%d but OMP_NUM_THREADS=%s: FFTW (built with OpenMP in pyFFTW) will use at most "
                    "%s thread(s)", threads, omp, omp)
    # planning with measurement is slow: reuse and extend the per-user wisdom cache
    wisdom = wisdom_path(threads) if effort != "estimate" and use_wisdom else None
    known = None  # the wisdom the cache gave, which the plans below may add to (None: save anyway)
    if wisdom is not None and _import_wisdom(wisdom):
        known = pyfftw.export_wisdom()
    flags = ("FFTW_" + effort.upper(),)
    if wisdom_only and effort != "estimate":
        flags += ("FFTW_WISDOM_ONLY",)
    try:
        plans = [pyfftw.FFTW(a, b, axes=axes, direction=direction,
                             flags=flags + (("FFTW_DESTROY_INPUT",) if destroy else ()), threads=threads)
                 for a, b, axes, direction, destroy in transforms]
    except RuntimeError as err:
        if "FFTW_WISDOM_ONLY" not in flags:
            raise
        raise ValueError(f"fft.deterministic=true: the stored FFTW wisdom has no plan for a {tuple(shape)} "
                         f"transform with threads={threads} ({err}); set fft.deterministic=false to "
                         "plan anew (results then agree to rounding, not bit for bit)") from None
    if wisdom is not None:
        _export_wisdom(wisdom, unless=known)
    return plans


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
        FFTW planner effort. "estimate" plans instantly and deterministically; the others time
        candidate plans (seconds to minutes for large grids) and may pick different plans in
        different processes, unless they share wisdom.
    use_wisdom : bool
        For efforts other than "estimate", import the per-user wisdom cache
        (:func:`wisdom_path`) before planning and save it afterwards, so that a size is
        measured once per machine and thread count and later processes get the same plans.
    physical, spectral : ndarray, optional
        Buffers to plan on instead of allocating new ones (for example a view into a larger
        buffer). Their contents are destroyed by planning.
    wisdom_only : bool
        Only accept plans FFTW already has wisdom for (``FFTW_WISDOM_ONLY``): a process that
        imported a run's wisdom then executes exactly that run's plans, or fails with a
        ValueError. Ignored for "estimate" (always deterministic) and by numpy.
    """

    def __init__(self, shape, batch=1, backend="auto", threads=None, effort="estimate", physical=None, spectral=None,
                 use_wisdom=True, wisdom_only=False):
        if effort not in EFFORTS:
            raise ValueError(f"fft_effort={effort!r}: expected one of {', '.join(EFFORTS)}")
        self.shape = tuple(shape)
        self.batch = batch
        self.backend = resolve_backend(backend)
        self.threads = resolve_threads(self.shape, threads)
        self.effort = effort
        spec = self.shape[:-1] + (self.shape[-1] // 2 + 1,)
        self.physical = empty_aligned((batch,) + self.shape, float) if physical is None else physical
        self.spectral = empty_aligned((batch,) + spec, complex) if spectral is None else spectral
        if self.physical.shape != (batch,) + self.shape or self.spectral.shape != (batch,) + spec:
            raise ValueError("buffer shapes do not match the transform")
        self.axes = tuple(range(1, len(self.shape) + 1))
        if self.backend == "pyfftw":
            self._forward, self._backward = _fftw_plans(
                [(self.physical, self.spectral, self.axes, "FFTW_FORWARD", True),
                 (self.spectral, self.physical, self.axes, "FFTW_BACKWARD", True)],
                self.shape, self.threads, effort, use_wisdom, wisdom_only)

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


class PrunedRealFFT:
    """r2c/c2r transforms of fields whose spectra vanish beyond the first ``columns`` columns of
    the last axis (and, optionally, outside some ``rows`` of the axis before it), skipping the
    zero columns (FFTW, d ≥ 2).

    With F the spectral buffer (shape ``shape[:-1] + (shape[-1] // 2 + 1,)``) and c = ``columns``,

        backward(i): f_i(x) = Σ_k F_k e^{ik·x}, as the c2c transforms over the axes 0 … d−2 of
                     F[..., :c] in place, then the c2r transforms along the last axis;
        forward(i):  the r2c transforms of f_i along the last axis into F, then the c2c
                     transforms over the axes 0 … d−2 of F[..., :c] in place,

    unnormalised, as :class:`RealFFT`'s. With ``rows`` (d = 3) the c2c transforms along axis 0
    run only on those rows of axis 1: in ``backward`` before the transforms along axis 1 (the
    other rows are zero), in ``forward`` after them (their other rows are not computed).

    ``backward`` requires F = 0 outside the first c columns (and the ``rows``) and destroys F;
    after ``forward`` F holds F_k in the first c columns (of the ``rows``), partial sums
    elsewhere; f_i may be destroyed. For a 3/2-padded grid (c = n/2 resolved columns of M/2 + 1,
    rows the n − 1 resolved rows of M) the complex transforms run on about a third of the
    columns they would in the full transform, those along axis 0 of a 3-D grid on two thirds of
    the rows besides.

    Parameters
    ----------
    shape : tuple of int
        Grid shape of one field (d ≥ 2).
    columns : int
        Columns c of the last spectral axis that may be nonzero.
    physical : list of ndarray
        The fields f_i, each of ``shape``, aligned (one c2r and one r2c plan each).
    spectral : ndarray
        The spectral buffer F, shared by the fields.
    rows : list of slice, optional
        Index ranges of axis d − 2 that may be nonzero (d = 3 only; default: all).
    threads, effort, use_wisdom, wisdom_only
        As for :class:`RealFFT` (``threads`` resolved by :func:`resolve_threads`).
    """

    backend = "pyfftw"

    def __init__(self, shape, columns, physical, spectral, rows=None, threads=None, effort="estimate",
                 use_wisdom=True, wisdom_only=False):
        if effort not in EFFORTS:
            raise ValueError(f"fft_effort={effort!r}: expected one of {', '.join(EFFORTS)}")
        self.shape, self.columns = tuple(shape), int(columns)
        d = len(self.shape)
        spec = self.shape[:-1] + (self.shape[-1] // 2 + 1,)
        if d < 2 or not 0 < self.columns <= spec[-1]:
            raise ValueError(f"columns={columns} of a {self.shape} transform: expected d >= 2 and 1 <= columns <= "
                             f"{spec[-1]}")
        if rows is not None and d != 3:
            raise ValueError(f"rows of a {self.shape} transform: only for d = 3")
        if spectral.shape != spec or any(f.shape != self.shape for f in physical):
            raise ValueError("buffer shapes do not match the transform")
        self.threads, self.effort = resolve_threads(self.shape, threads), effort
        self.physical, self.spectral = list(physical), spectral
        block = spectral[..., :self.columns]
        if rows is None:  # one c2c transform over the axes 0 … d − 2
            backward = forward = [(block, tuple(range(d - 1)))]
        else:  # along axis 0 on the rows of axis 1 (first backward, last forward), along axis 1 on all
            axis0, axis1 = [(block[:, r], (0,)) for r in rows], [(block, (1,))]
            backward, forward = axis0 + axis1, axis1 + axis0
        fields = len(self.physical)
        plans = _fftw_plans([(a, a, axes, "FFTW_BACKWARD", True) for a, axes in backward]
                            + [(a, a, axes, "FFTW_FORWARD", True) for a, axes in forward]
                            + [(spectral, f, (d - 1,), "FFTW_BACKWARD", True) for f in self.physical]
                            + [(f, spectral, (d - 1,), "FFTW_FORWARD", True) for f in self.physical],
                            self.shape, self.threads, effort, use_wisdom, wisdom_only)
        plans = [plan.execute for plan in plans]
        n = len(backward)
        self._c2c_backward, self._c2c_forward = plans[:n], plans[n:2 * n]
        self._c2r, self._r2c = plans[2 * n:2 * n + fields], plans[2 * n + fields:]

    def backward(self, i: int) -> np.ndarray:
        """Field ``i`` ← Σ_k F_k e^{ik·x} (F zero outside the first c columns and the rows); the
        spectral buffer is destroyed."""
        for c2c in self._c2c_backward:
            c2c()
        self._c2r[i]()
        return self.physical[i]

    def forward(self, i: int) -> np.ndarray:
        """F ← Σ_x f_i(x) e^{-ik·x} in the first c columns (and the rows); field ``i`` may be
        destroyed. Returns the spectral buffer."""
        self._r2c[i]()
        for c2c in self._c2c_forward:
            c2c()
        return self.spectral
