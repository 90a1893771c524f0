"""The HDF5 run file: writer, checkpoints, and the reader :func:`open_run`.

Schema (all times in the units of the flow, densities relative to dm = dx/(2π)^d)::

    /                    attrs: format, format_version, config (JSON), versions (JSON),
                                fft_backend, threads, fft_effort, git_commit, created
    /grid/x0 … x{d-1}    coordinates, dimension scales of /snapshots/mu
    /snapshots/t         (n_snap,)                requested snapshot times, hit exactly
    /snapshots/mu        (n_snap, *grid.shape)    μ on the grid
    /diagnostics/t, step, dt, energy, dissipation, mass, min_mu, max_speed, tail_fraction,
                 energy_balance  (n_diag,)        at the requested diagnostic times
    /diagnostics/sobolev_norms  (n_diag, n_q)     ‖μ − ν‖_{Ḣ^q}, attribute ``orders`` = q
    /checkpoint/current  () int                   0: none, 1: slot a, 2: slot b
    /checkpoint/a, /checkpoint/b                  rho_hat (spectral state), t, dt_next, last_dt,
                                                  steps, rejected, evaluations, n_snapshots,
                                                  n_diagnostics, energy0, dissipated

The file is written in SWMR mode and flushed after every write, so another process can read
it while it runs (:func:`open_run` does). A checkpoint is written into the slot that is not
current and only then made current: an interrupted checkpoint write leaves the previous one
usable.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import pathlib
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np

from .config import ConfigError

__all__ = ["RunWriter", "NullWriter", "RunData", "open_run", "check_writable", "DIAGNOSTIC_SERIES", "FORMAT"]

log = logging.getLogger(__name__)

FORMAT = "sobolev_flow run"
FORMAT_VERSION = 1

#: Scalar diagnostic series, in the order of :meth:`Solver.diagnostics` plus ``step``.
DIAGNOSTIC_SERIES = ("t", "dt", "energy", "dissipation", "mass", "min_mu", "max_speed", "tail_fraction",
                     "energy_balance")

_CHECKPOINT_SCALARS = ("t", "dt_next", "last_dt", "steps", "rejected", "evaluations", "n_snapshots", "n_diagnostics",
                       "energy0", "dissipated")
_FLOAT_SCALARS = ("t", "dt_next", "last_dt", "energy0", "dissipated")


def _h5py():
    import h5py

    return h5py


def check_writable(path: pathlib.Path, overwrite: bool, restart: bool):
    """Refuse an existing file without ``overwrite``/``restart`` and an unwritable directory."""
    key = f"output.path={str(path)!r}"
    if restart:
        if not path.is_file():
            raise ConfigError(f"{key}: no run file to restart from")
        if not os.access(path, os.W_OK):
            raise ConfigError(f"{key}: the run file is not writable")
        return
    if path.exists() and not overwrite:
        raise ConfigError(f"{key}: the file exists; pass --overwrite to replace it or --restart to continue it")
    if path.exists() and not path.is_file():
        raise ConfigError(f"{key}: exists and is not a file")
    parent = path.parent if str(path.parent) else pathlib.Path(".")
    if not parent.is_dir():
        raise ConfigError(f"{key}: the directory {str(parent)!r} does not exist")
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".sobolev_flow_probe_"):
            pass
    except OSError as err:
        raise ConfigError(f"{key}: the directory {str(parent)!r} is not writable ({err.strerror})") from None


def versions() -> dict:
    """Versions of the package and of the libraries that shape its numbers."""
    from importlib.metadata import PackageNotFoundError, version

    from . import __version__

    out = {"sobolev_flow": __version__}
    for name in ("numpy", "scipy", "pyfftw", "h5py"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str:
    """The commit of the source tree the package was imported from, or '' outside git."""
    here = pathlib.Path(__file__).resolve().parent
    try:
        result = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


class RunWriter:
    """Writes one run file. Create with :meth:`create` or reopen with :meth:`reopen`."""

    def __init__(self, file, path):
        self.file = file
        self.path = path

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(cls, path, grid, spectral_shape, config: dict, metadata: dict, orders, overwrite=False):
        """A new run file at ``path`` with every dataset of the schema; call :meth:`begin` next."""
        h5py = _h5py()
        path = pathlib.Path(path)
        f = h5py.File(path, "w" if overwrite else "w-", libver="latest")
        try:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["config"] = json.dumps(config)
            f.attrs["versions"] = json.dumps(versions())
            f.attrs["git_commit"] = git_commit()
            f.attrs["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            for key, value in metadata.items():
                f.attrs[key] = value
            scales = []
            for j, x in enumerate(grid.coordinates()):
                ds = f.create_dataset(f"grid/x{j}", data=x)
                ds.make_scale(f"x{j}")
                scales.append(ds)
            snaps = f.create_group("snapshots")
            t = snaps.create_dataset("t", shape=(0,), maxshape=(None,), dtype=float, chunks=(64,))
            t.make_scale("t")
            mu = snaps.create_dataset("mu", shape=(0,) + grid.shape, maxshape=(None,) + grid.shape, dtype=float,
                                      chunks=(1,) + grid.shape, compression="gzip", compression_opts=1, shuffle=True)
            mu.dims[0].attach_scale(t)
            for j, scale in enumerate(scales):
                mu.dims[j + 1].attach_scale(scale)
            diag = f.create_group("diagnostics")
            for name in DIAGNOSTIC_SERIES + ("step",):
                diag.create_dataset(name, shape=(0,), maxshape=(None,), dtype=int if name == "step" else float,
                                    chunks=(256,))
            norms = diag.create_dataset("sobolev_norms", shape=(0, len(orders)), maxshape=(None, len(orders)),
                                        dtype=float, chunks=(256, max(1, len(orders))))
            norms.attrs["orders"] = np.asarray(orders, dtype=float)
            ckpt = f.create_group("checkpoint")
            ckpt.create_dataset("current", data=0)
            for slot in ("a", "b"):
                g = ckpt.create_group(slot)
                g.create_dataset("rho_hat", shape=spectral_shape, dtype=complex)
                for name in _CHECKPOINT_SCALARS:
                    g.create_dataset(name, data=0.0 if name in _FLOAT_SCALARS else 0)
            f.flush()
        except BaseException:
            f.close()
            raise
        return cls(f, path)

    @classmethod
    def reopen(cls, path):
        """Open an existing run file to continue it: returns (writer, config, checkpoint).

        Rows written after the last checkpoint are dropped, so the file again ends where the
        checkpoint's state is. Call :meth:`begin` next.
        """
        h5py = _h5py()
        path = pathlib.Path(path)
        try:
            f = h5py.File(path, "r+", libver="latest")
        except OSError as err:
            if "consistency flags" not in str(err):
                raise ConfigError(f"output.path={str(path)!r}: not a readable run file ({err})") from None
            # the writer died without closing the file (a live writer would hold its lock)
            log.warning("%s was not closed by its writer; recovering it by copying its contents", path)
            recover(path)
            f = h5py.File(path, "r+", libver="latest")
        try:
            if f.attrs.get("format") != FORMAT:
                raise ConfigError(f"output.path={str(path)!r}: not a sobolev_flow run file")
            checkpoint = read_checkpoint(f)
            if checkpoint is None:
                raise ConfigError(f"output.path={str(path)!r}: the file holds no checkpoint to restart from")
            config = json.loads(f.attrs["config"])
            f["snapshots/t"].resize((checkpoint["n_snapshots"],))
            f["snapshots/mu"].resize(checkpoint["n_snapshots"], axis=0)
            for name in DIAGNOSTIC_SERIES + ("step",):
                f["diagnostics"][name].resize((checkpoint["n_diagnostics"],))
            f["diagnostics/sobolev_norms"].resize(checkpoint["n_diagnostics"], axis=0)
        except BaseException:
            f.close()
            raise
        return cls(f, path), config, checkpoint

    def begin(self, config: dict | None = None, note: dict | None = None):
        """Record a (continued) run's configuration, then switch to SWMR mode for writing.

        ``note`` (for instance the time and new t_end of a restart) is appended to the JSON
        list in the root attribute ``restarts``.
        """
        if config is not None:
            self.file.attrs["config"] = json.dumps(config)
        if note is not None:
            history = json.loads(self.file.attrs.get("restarts", "[]"))
            self.file.attrs["restarts"] = json.dumps(history + [note])
        self.file.swmr_mode = True
        self.file.flush()

    # ------------------------------------------------------------------ writing
    @property
    def n_snapshots(self) -> int:
        return self.file["snapshots/t"].shape[0]

    @property
    def n_diagnostics(self) -> int:
        return self.file["diagnostics/t"].shape[0]

    def write_snapshot(self, t: float, mu: np.ndarray):
        i = self.n_snapshots
        self.file["snapshots/mu"].resize(i + 1, axis=0)
        self.file["snapshots/mu"][i] = mu
        self.file["snapshots/t"].resize((i + 1,))
        self.file["snapshots/t"][i] = t
        self.file.flush()

    def write_diagnostics(self, values: dict, norms):
        """Append one row; ``values`` holds every name of the diagnostics group but the norms."""
        i = self.n_diagnostics
        group = self.file["diagnostics"]
        for name in DIAGNOSTIC_SERIES + ("step",):
            if name == "t":
                continue
            group[name].resize((i + 1,))
            group[name][i] = values[name]
        group["sobolev_norms"].resize(i + 1, axis=0)
        group["sobolev_norms"][i] = norms
        # t last: a reader that trusts len(t) never sees a half-written row
        group["t"].resize((i + 1,))
        group["t"][i] = values["t"]
        self.file.flush()

    def write_checkpoint(self, state: dict):
        """Write ``state`` (rho_hat and the scalars) into the spare slot, then make it current."""
        ckpt = self.file["checkpoint"]
        current = int(ckpt["current"][()])
        slot = "b" if current == 1 else "a"
        group = ckpt[slot]
        group["rho_hat"][...] = state["rho_hat"]
        for name in _CHECKPOINT_SCALARS:
            group[name][()] = state[name]
        self.file.flush()
        ckpt["current"][()] = 2 if slot == "b" else 1
        self.file.flush()

    def close(self):
        if self.file.id.valid:
            self.file.close()


class NullWriter:
    """Stands in for :class:`RunWriter` on the processes of a distributed run that do not
    write: they compute the same snapshots and checkpoints (collectively), and drop them."""

    n_snapshots = 0
    n_diagnostics = 0

    def write_snapshot(self, t, mu):
        pass

    def write_diagnostics(self, values, norms):
        pass

    def write_checkpoint(self, state):
        pass

    def close(self):
        pass


def recover(path: pathlib.Path):
    """Rewrite a run file whose writer died (its SWMR consistency flags still set).

    The file is read in SWMR-read mode, which ignores the flags, copied object by object into
    a new file next to it, and the copy replaces the original atomically. Dimension scales
    are attached anew in the copy.
    """
    h5py = _h5py()
    tmp = path.with_name(path.name + ".recovering")
    with h5py.File(path, "r", libver="latest", swmr=True) as src, h5py.File(tmp, "w", libver="latest") as dst:
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        for name in src:
            src.copy(src[name], dst, name=name)
        mu = dst["snapshots/mu"]
        scales = [dst["snapshots/t"]] + [dst[f"grid/x{j}"] for j in range(mu.ndim - 1)]
        for ds in [mu] + scales:
            for attr in ("DIMENSION_LIST", "REFERENCE_LIST"):
                if attr in ds.attrs:
                    del ds.attrs[attr]
        for dim, scale in enumerate(scales):
            mu.dims[dim].attach_scale(scale)
    os.replace(tmp, path)


def read_wisdom(path) -> bytes:
    """The FFTW wisdom a run file keeps (root attribute ``fft_wisdom``; b"" if none)."""
    with _open_read(path) as f:
        value = f.attrs.get("fft_wisdom")
    return b"" if value is None else np.asarray(value).tobytes()


def read_checkpoint(f) -> dict | None:
    """The current checkpoint of an open run file, or None."""
    current = int(f["checkpoint/current"][()])
    if current == 0:
        return None
    group = f["checkpoint"]["a" if current == 1 else "b"]
    out = {"rho_hat": group["rho_hat"][...]}
    for name in _CHECKPOINT_SCALARS:
        value = group[name][()]
        out[name] = float(value) if name in _FLOAT_SCALARS else int(value)
    return out


# ============================================================================ reader
@dataclass
class RunData:
    """The contents of a run file as numpy arrays.

    Attributes
    ----------
    t : ndarray (n_snap,)        snapshot times
    mu : ndarray (n_snap, *shape) densities
    diagnostics : dict of ndarray  the /diagnostics series, with ``sobolev_norms`` (n_diag, n_q)
    orders : ndarray             the q of the Sobolev norms
    config : dict                the resolved configuration
    attrs : dict                 the other root attributes (versions parsed from JSON)
    coordinates : list of ndarray
    """

    t: np.ndarray
    mu: np.ndarray
    diagnostics: dict
    orders: np.ndarray
    config: dict
    attrs: dict
    coordinates: list

    def to_xarray(self):
        """An ``xarray.Dataset`` of the snapshots and diagnostics (requires xarray)."""
        try:
            import xarray as xr
        except ImportError:
            raise ImportError("to_xarray needs xarray: pip install xarray") from None
        dims = [f"x{j}" for j in range(len(self.coordinates))]
        data = {"mu": (["t"] + dims, self.mu)}
        for name, values in self.diagnostics.items():
            if name == "sobolev_norms":
                data[name] = (["t_diag", "q"], values)
            elif name != "t":
                data[name] = (["t_diag"], values)
        coords = {"t": self.t, "t_diag": self.diagnostics["t"], "q": self.orders}
        coords.update({dim: x for dim, x in zip(dims, self.coordinates)})
        return xr.Dataset(data, coords=coords, attrs={"config": json.dumps(self.config)})


def _open_read(path):
    """Open for reading in SWMR mode (works while a writer runs, or after it died)."""
    h5py = _h5py()
    try:
        return h5py.File(path, "r", libver="latest", swmr=True)
    except OSError:
        return h5py.File(path, "r", locking=False)


def read_config(path) -> dict:
    """The resolved configuration stored in a run file."""
    try:
        with _open_read(path) as f:
            if f.attrs.get("format") != FORMAT:
                raise ValueError("no sobolev_flow format attribute")
            return json.loads(f.attrs["config"])
    except (OSError, KeyError, ValueError) as err:
        raise ConfigError(f"output.path={str(path)!r}: not a sobolev_flow run file ({err})") from None


def open_run(path) -> RunData:
    """Read a run file, also while another process is still writing it.

    Rows are read up to the length of the time datasets, which are written last, so a
    partially written row is never returned.
    """
    path = pathlib.Path(path)
    with _open_read(path) as f:
        if f.attrs.get("format") != FORMAT:
            raise ValueError(f"path={str(path)!r}: not a sobolev_flow run file")
        for name in ("snapshots/t", "snapshots/mu", "diagnostics/t"):
            if hasattr(f[name], "refresh"):
                f[name].refresh()
        n_snap = f["snapshots/t"].shape[0]
        t = f["snapshots/t"][:n_snap]
        mu = f["snapshots/mu"][:n_snap]
        n_diag = f["diagnostics/t"].shape[0]
        diagnostics = {}
        for name, ds in f["diagnostics"].items():
            if hasattr(ds, "refresh"):
                ds.refresh()
            diagnostics[name] = ds[:n_diag]
        orders = f["diagnostics/sobolev_norms"].attrs["orders"][...]
        attrs = {k: v for k, v in f.attrs.items() if k != "config"}
        if "versions" in attrs:
            attrs["versions"] = json.loads(attrs["versions"])
        config = json.loads(f.attrs["config"])
        coordinates = [f[f"grid/x{j}"][...] for j in range(len(f["grid"]))]
    return RunData(t=t, mu=mu, diagnostics=diagnostics, orders=orders, config=config, attrs=attrs,
                   coordinates=coordinates)
