"""The HDF5 run file: writer, checkpoints, and the reader :func:`open_run`.

Schema (all times in the units of the flow, densities relative to dm = dx/(2π)^d)::

    /                    attrs: format, format_version, config (JSON), versions (JSON),
                                fft_backend, threads, fft_effort, git_commit, created,
                                model (JSON: name, kernel, geometry, ...), theory (JSON:
                                {quantity: [kind, exponent]}, the model's predicted decay laws)
    /model/kernel_weights         the kernel's Fourier weights K̂ on the spectral layout
    /grid/x0 … x{d-1}    coordinates, dimension scales of the snapshot fields on the grid
    /snapshots/t         (n_snap,)                requested snapshot times, hit exactly
    /snapshots/<field>   (n_snap, *shape)         the model's declared snapshot fields
                                                  (grid densities: mu, μ on the grid)
    /diagnostics/t, step, dt, energy, dissipation, energy_balance, and the model's declared
                 series (grid densities: mass, min_mu, max_speed, [max_psi,] tail_fraction,
                 sobolev_norms (n_diag, n_q) with attribute ``orders`` = q), at the requested
                 diagnostic times; each dataset has attributes ``unit`` and ``description``
    /checkpoint/current  () int                   0: none, 1: slot a, 2: slot b
    /checkpoint/a, /checkpoint/b                  the model's arrays (grid densities: rho_hat,
                                                  the spectral state), t, dt_next, last_dt,
                                                  steps, rejected, evaluations, n_snapshots,
                                                  n_diagnostics, energy0, dissipated

Datasets are created from the declarations of the solver and the model
(:class:`~sobolev_flow.models.base.Series`), so a new diagnostic needs no change here.

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

__all__ = ["RunWriter", "NullWriter", "RunData", "open_run", "check_writable", "FORMAT"]

log = logging.getLogger(__name__)

FORMAT = "sobolev_flow run"
FORMAT_VERSION = 2

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
    def create(cls, path, model, series, config: dict, metadata: dict, arrays: dict, overwrite=False):
        """A new run file at ``path`` with every dataset of the schema; call :meth:`begin` next.

        ``series``: the declared diagnostics (the solver's and the model's,
        :attr:`~sobolev_flow.solver.Solver.series`); ``model`` supplies the snapshot fields, the
        checkpoint arrays, its description and its predictions; ``arrays`` (the model's
        :meth:`arrays`, gathered by every process of a distributed run) go into ``/model``.
        """
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
            f.attrs["model"] = json.dumps(model.describe())
            f.attrs["theory"] = json.dumps(model.predictions())
            for key, value in metadata.items():
                f.attrs[key] = value
            for name, array in arrays.items():
                f.create_dataset(f"model/{name}", data=array)
            scales = []
            for j, x in enumerate(model.grid.coordinates()):
                ds = f.create_dataset(f"grid/x{j}", data=x)
                ds.make_scale(f"x{j}")
                scales.append(ds)
            snaps = f.create_group("snapshots")
            t = snaps.create_dataset("t", shape=(0,), maxshape=(None,), dtype=float, chunks=(64,))
            t.make_scale("t")
            for field in model.snapshots:
                ds = snaps.create_dataset(field.name, shape=(0,) + field.shape, maxshape=(None,) + field.shape,
                                          dtype=field.dtype, chunks=(1,) + field.shape, compression="gzip",
                                          compression_opts=1, shuffle=True)
                _describe(ds, field)
                ds.dims[0].attach_scale(t)
                if field.on_grid:
                    for j, scale in enumerate(scales):
                        ds.dims[j + 1].attach_scale(scale)
            diag = f.create_group("diagnostics")
            for item in series:
                chunks = (256,) + tuple(max(1, n) for n in item.shape)
                ds = diag.create_dataset(item.name, shape=(0,) + item.shape, maxshape=(None,) + item.shape,
                                         dtype=item.dtype, chunks=chunks)
                _describe(ds, item)
            ckpt = f.create_group("checkpoint")
            ckpt.create_dataset("current", data=0)
            for slot in ("a", "b"):
                g = ckpt.create_group(slot)
                for name, (shape, dtype) in model.checkpoint_layout.items():
                    g.create_dataset(name, shape=shape, dtype=dtype)
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
            for group, rows in (("snapshots", checkpoint["n_snapshots"]), ("diagnostics", checkpoint["n_diagnostics"])):
                for ds in f[group].values():
                    ds.resize(rows, axis=0)
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

    def write_snapshot(self, t: float, fields: dict):
        """Append one snapshot: ``fields`` holds every declared snapshot field."""
        i = self.n_snapshots
        group = self.file["snapshots"]
        for name, value in fields.items():
            group[name].resize(i + 1, axis=0)
            group[name][i] = value
        # t last: a reader that trusts len(t) never sees a half-written row
        group["t"].resize((i + 1,))
        group["t"][i] = t
        self.file.flush()

    def write_diagnostics(self, values: dict):
        """Append one row; ``values`` holds every declared series (``t`` and ``step`` included)."""
        i = self.n_diagnostics
        group = self.file["diagnostics"]
        for name, ds in group.items():
            if name == "t":
                continue
            ds.resize(i + 1, axis=0)
            ds[i] = values[name]
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
        for name, ds in group.items():
            ds[()] = state[name]
        self.file.flush()
        ckpt["current"][()] = 2 if slot == "b" else 1
        self.file.flush()

    def record_summary(self, summary: dict):
        """The model's end-of-run report as the root attribute ``summary`` (JSON)."""
        self.file.attrs["summary"] = json.dumps(summary)
        self.file.flush()

    def close(self):
        if self.file.id.valid:
            self.file.close()


class NullWriter:
    """Stands in for :class:`RunWriter` on the processes of a distributed run that do not
    write: they compute the same snapshots and checkpoints (collectively), and drop them."""

    n_snapshots = 0
    n_diagnostics = 0

    def write_snapshot(self, t, fields):
        pass

    def write_diagnostics(self, values):
        pass

    def write_checkpoint(self, state):
        pass

    def record_summary(self, summary):
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
        t = dst["snapshots/t"]
        grid = [dst[f"grid/x{j}"] for j in range(len(dst["grid"]))]
        fields = [ds for name, ds in dst["snapshots"].items() if name != "t"]
        for ds in fields + [t] + grid:
            for attr in ("DIMENSION_LIST", "REFERENCE_LIST"):
                if attr in ds.attrs:
                    del ds.attrs[attr]
        for ds in fields:
            ds.dims[0].attach_scale(t)
            if ds.shape[1:] == tuple(x.shape[0] for x in grid):
                for j, scale in enumerate(grid):
                    ds.dims[j + 1].attach_scale(scale)
    os.replace(tmp, path)


def read_wisdom(path) -> bytes:
    """The FFTW wisdom a run file keeps (root attribute ``fft_wisdom``; b"" if none)."""
    with _open_read(path) as f:
        value = f.attrs.get("fft_wisdom")
    return b"" if value is None else np.asarray(value).tobytes()


def checkpoint_time(path) -> float | None:
    """The time of a run file's current checkpoint, read without writing (None: no checkpoint)."""
    try:
        with _open_read(path) as f:
            checkpoint = read_checkpoint(f)
    except (OSError, KeyError) as err:
        raise ConfigError(f"output.path={str(path)!r}: not a readable run file ({err})") from None
    return None if checkpoint is None else checkpoint["t"]


def read_checkpoint(f) -> dict | None:
    """The current checkpoint of an open run file, or None."""
    current = int(f["checkpoint/current"][()])
    if current == 0:
        return None
    group = f["checkpoint"]["a" if current == 1 else "b"]
    out = {}
    for name, ds in group.items():
        if name in _CHECKPOINT_SCALARS:
            out[name] = float(ds[()]) if name in _FLOAT_SCALARS else int(ds[()])
        else:
            out[name] = ds[...]
    return out


# ============================================================================ reader
def _describe(ds, item):
    """Attach a declaration's unit, description and extra attributes to its dataset."""
    ds.attrs["unit"] = item.unit
    ds.attrs["description"] = item.description
    for key, value in item.attrs.items():
        ds.attrs[key] = value


@dataclass
class RunData:
    """The contents of a run file as numpy arrays.

    Attributes
    ----------
    t : ndarray (n_snap,)        snapshot times
    mu : ndarray (n_snap, *shape) densities (the snapshot field ``mu``)
    diagnostics : dict of ndarray  the /diagnostics series, with ``sobolev_norms`` (n_diag, n_q)
    orders : ndarray             the q of the Sobolev norms
    config : dict                the resolved configuration
    attrs : dict                 the other root attributes (versions, model and theory parsed
                                 from JSON)
    coordinates : list of ndarray
    snapshots : dict of ndarray  every snapshot field, ``mu`` included
    """

    t: np.ndarray
    mu: np.ndarray
    diagnostics: dict
    orders: np.ndarray
    config: dict
    attrs: dict
    coordinates: list
    snapshots: dict = None

    @property
    def model(self) -> dict:
        """The model's description as recorded (empty for files written before it was)."""
        return self.attrs.get("model", {})

    @property
    def theory(self) -> dict | None:
        """{quantity: (kind, exponent)} predicted by the model, as recorded (None if the file
        records no prediction: written before predictions were stored)."""
        theory = self.attrs.get("theory")
        return None if theory is None else {name: tuple(law) for name, law in theory.items()}

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
        for ds in list(f["snapshots"].values()) + list(f["diagnostics"].values()):
            if hasattr(ds, "refresh"):
                ds.refresh()
        n_snap = f["snapshots/t"].shape[0]
        t = f["snapshots/t"][:n_snap]
        snapshots = {name: ds[:n_snap] for name, ds in f["snapshots"].items() if name != "t"}
        mu = snapshots.get("mu")
        n_diag = f["diagnostics/t"].shape[0]
        diagnostics = {name: ds[:n_diag] for name, ds in f["diagnostics"].items()}
        norms = f["diagnostics"].get("sobolev_norms")
        orders = norms.attrs["orders"][...] if norms is not None else np.zeros(0)
        attrs = {k: v for k, v in f.attrs.items() if k != "config"}
        for key in ("versions", "model", "theory", "summary"):
            if key in attrs:
                attrs[key] = json.loads(attrs[key])
        config = json.loads(f.attrs["config"])
        coordinates = [f[f"grid/x{j}"][...] for j in range(len(f["grid"]))]
    return RunData(t=t, mu=mu, diagnostics=diagnostics, orders=orders, config=config, attrs=attrs,
                   coordinates=coordinates, snapshots=snapshots)
