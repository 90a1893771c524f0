"""Distributed runs: how the spectral state is split across MPI processes, and the flow on it.

A *layout* says which part of a global spectral array (the half layout of
:mod:`sobolev_flow.grid`) this process holds and how per-process partial results combine:

- :class:`Serial`: one process holds everything; every reduction is the identity.
- :class:`Distributed`: the grid is decomposed by mpi4py-fft (slabs, or pencils in 3-D);
  each process holds a block of the spectral array and a block of the padded physical
  grid, and sums, maxima and the gathering of fields go through MPI.

The solver and its diagnostics are written once against this interface: element-wise work
(the steppers, the linear part, the exponential coefficients) acts on the local block
unchanged, and every global number (a norm, the energy, max|∇ψ|) is a local sum or maximum
followed by one reduction, so all processes take the same step-size decisions.

The transforms on a distributed layout are :class:`~sobolev_flow.transforms.DistributedTransform`
(mpi4py-fft's padded transforms); the physics written against them is the serial one.

Distributed runs are started with ``mpirun -n P python -m sobolev_flow.run ...``; they need
the ``mpi`` extra (mpi4py, mpi4py-fft) and a system MPI with the FFTW headers, see the user guide
(``docs/guide.md``).
"""

from __future__ import annotations

import os

import numpy as np

from .grid import Torus

__all__ = ["Serial", "Distributed", "SERIAL", "world", "DECOMPOSITIONS", "launched_processes",
           "launched_rank"]

#: How mpi4py-fft splits the grid: along one axis ("slab") or along d − 1 axes ("pencil", 3-D).
DECOMPOSITIONS = ("slab", "pencil")

#: Environment variables through which MPI launchers announce the number of processes.
_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE")


class Serial:
    """The layout of a single process: it holds every array whole."""

    size = 1
    rank = 0
    root = True
    comm = None
    owns_origin = True

    def local(self, spectral: np.ndarray) -> np.ndarray:
        """This process's block of a global spectral array (here: all of it)."""
        return spectral

    def sum(self, value: float) -> float:
        return value

    def max(self, value: float) -> float:
        return value

    def maxima(self, values) -> list:
        """The maxima over all processes of several numbers, in one reduction."""
        return list(values)

    def any(self, flag) -> bool:
        """Whether ``flag`` is true on any process (collective)."""
        return bool(flag)

    def gather(self, local: np.ndarray) -> np.ndarray:
        """The global spectral array, on every process."""
        return local

    def broadcast(self, obj):
        """``obj`` as the root process has it."""
        return obj

    def barrier(self):
        pass

    def describe(self) -> str:
        return "serial"


SERIAL = Serial()


def launched_processes() -> int:
    """The number of processes an MPI launcher started, read from its environment (1 if none)."""
    for name in _SIZE_VARIABLES:
        value = os.environ.get(name)
        if value and value.isdigit():
            return int(value)
    return 1


def launched_rank() -> int:
    """This process's rank as announced by an MPI launcher (0 if none)."""
    for name in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"):
        value = os.environ.get(name)
        if value and value.isdigit():
            return int(value)
    return 0


def world():
    """``MPI.COMM_WORLD`` when this process was started by an MPI launcher with more than one
    process, else None (without importing mpi4py).

    Raises
    ------
    ValueError
        Started under MPI but mpi4py or mpi4py-fft is missing.
    """
    processes = launched_processes()
    if processes <= 1:
        return None
    try:
        from mpi4py import MPI
        import mpi4py_fft  # noqa: F401
    except ImportError as err:
        raise ValueError(f"processes={processes}: distributed runs need mpi4py and mpi4py-fft "
                         f"(pip install 'sobolev_flow[mpi]'; {err})") from None
    return MPI.COMM_WORLD


class Distributed:
    """The grid decomposed over the processes of ``comm`` by mpi4py-fft.

    Parameters
    ----------
    grid : Torus
        d ≥ 2 (mpi4py-fft distributes all axes but the one transformed first).
    comm : mpi4py.MPI.Comm
    decomposition : {"slab", "pencil"}
    threads : int
        FFTW threads per process.
    effort : {"estimate", "measure", "patient", "exhaustive"}
        FFTW planner effort.

    Attributes
    ----------
    transform : mpi4py_fft.PFFT
        Real transforms between the padded physical grid (3/2 rule; the grid itself for 2/3
        truncation) and the unpadded half spectral layout.
    spectral_slice, padded_slice : tuple of slice
        This process's block of the global spectral array and of the padded grid.
    """

    def __init__(self, grid: Torus, comm, decomposition="slab", threads=1, effort="estimate"):
        if grid.d < 2:
            raise ValueError(f"d={grid.d}: distributed runs need a grid of dimension 2 or 3")
        if decomposition not in DECOMPOSITIONS:
            raise ValueError(f"decomposition={decomposition!r}: expected one of {', '.join(DECOMPOSITIONS)}")
        from mpi4py import MPI
        from mpi4py_fft import PFFT

        self._mpi = MPI
        self.comm, self.size, self.rank = comm, comm.Get_size(), comm.Get_rank()
        self.root = self.rank == 0
        self.grid = grid
        self.decomposition = decomposition
        self.threads, self.effort = int(threads), effort
        padding = False
        if grid.dealias == "3/2":
            # mpi4py-fft pads axis j to floor(n_j · factor) points: ask for exactly the serial padded size
            padding = [(m + 0.5) / n for m, n in zip(grid.padded_shape, grid.shape)]
        self.transform = PFFT(comm, grid.shape, axes=tuple(range(grid.d)), dtype=float, padding=padding,
                              backend="fftw", slab=decomposition == "slab", threads=self.threads,
                              planner_effort="FFTW_" + effort.upper())
        self.spectral_slice = self.transform.local_slice(True)
        self.padded_slice = self.transform.local_slice(False)
        self.owns_origin = all(s.start == 0 for s in self.spectral_slice)
        if self.transform.forward.input_array.shape != tuple(s.stop - s.start for s in self.padded_slice):
            raise RuntimeError("mpi4py-fft returned an unexpected padded layout")  # pragma: no cover

    def local(self, spectral: np.ndarray) -> np.ndarray:
        """This process's block of a global spectral array (leading batch axes kept)."""
        return np.ascontiguousarray(spectral[(Ellipsis,) + self.spectral_slice])

    def sum(self, value: float) -> float:
        return self.comm.allreduce(value, op=self._mpi.SUM)

    def max(self, value: float) -> float:
        return self.comm.allreduce(value, op=self._mpi.MAX)

    def maxima(self, values) -> list:
        values = np.array(values, dtype=float)
        self.comm.Allreduce(self._mpi.IN_PLACE, values, op=self._mpi.MAX)
        return values.tolist()

    def any(self, flag) -> bool:
        return bool(self.comm.allreduce(bool(flag), op=self._mpi.LOR))

    def gather(self, local: np.ndarray) -> np.ndarray:
        """The global spectral array assembled from every process's block, on every process."""
        full = np.empty(local.shape[:-self.grid.d] + self.grid.spectral_shape, dtype=local.dtype)
        for block, part in self.comm.allgather((self.spectral_slice, local)):
            full[(Ellipsis,) + block] = part
        return full

    def broadcast(self, obj):
        return self.comm.bcast(obj, root=0)

    def barrier(self):
        self.comm.Barrier()

    def describe(self) -> str:
        return f"{self.decomposition} x{self.size}"
