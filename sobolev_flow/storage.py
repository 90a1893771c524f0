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
                                                  n_diagnostics, energy0, dissipated, energy,
                                                  digest (SHA-256 of the others, 32 uint8)

Format version 3 adds fletcher32 checksums on the chunked datasets and ``energy`` and
``digest`` in the checkpoint slots; files of version 2 are read without those checks.

Datasets are created from the declarations of the solver and the model
(:class:`~sobolev_flow.models.base.Series`), so a new diagnostic needs no change here.

The file is written in SWMR mode and flushed after every write, so another process can read
it while it runs (:func:`open_run` does). A checkpoint is written into the slot that is not
current and only then made current: an interrupted checkpoint write leaves the previous one
usable.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import hashlib
import json
import logging
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from .config import ConfigError

__all__ = ["RunWriter", "NullWriter", "RunData", "open_run", "check_writable", "FORMAT", "WriteError"]

log = logging.getLogger(__name__)

FORMAT = "sobolev_flow run"
#: 3: fletcher32 checksums on the snapshot and diagnostic chunks; each checkpoint slot keeps
#: ``energy`` and ``digest`` (files of version 2 are read without those checks).
FORMAT_VERSION = 3

_CHECKPOINT_SCALARS = ("t", "dt_next", "last_dt", "steps", "rejected", "evaluations", "n_snapshots", "n_diagnostics",
                       "energy0", "dissipated", "energy")
#: Bytes of a checkpoint's digest (SHA-256, :func:`checkpoint_digest`).
DIGEST_SIZE = 32

_FLOAT_SCALARS = ("t", "dt_next", "last_dt", "energy0", "dissipated", "energy")


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


class RunLock:
    """The exclusive right to write a run file: ``flock`` on the sidecar file ``<file>.lock``.

    HDF5's own file locking cannot be relied on here: it is off in some builds and released when
    a writer switches to SWMR mode (so that readers can open the file), and an ``--overwrite``
    writes a new file that replaces the old one by a rename. The sidecar lock is held by the
    writing process for the whole run (the kernel drops it when the process dies, also on
    SIGKILL); it records the holder's process id for the message, and is removed on release.
    """

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.fd = None

    def acquire(self) -> "RunLock":
        """Take the lock, or raise ConfigError naming the file (and the holder) if it is taken."""
        while True:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                os.close(fd)
                raise ConfigError(f"output.path={str(self.path)!r}: another run is writing it (process "
                                  f"{holder or '?'} holds {str(self.lock_path)!r}); wait for it to finish or "
                                  "stop it first") from None
            # the holder may have released and removed the file between our open and lock
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.lock_path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self):
        if self.fd is not None:
            self.lock_path.unlink(missing_ok=True)
            os.close(self.fd)
            self.fd = None


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


class WriteError(RuntimeError):
    """A write to the run file failed (no space left, file too large, I/O error).

    The message is one line naming the file, the cause and whether a checkpoint remains to
    continue from. The writer that raised it is *broken*: it makes no further HDF5 call on the
    file, not even to close it, since HDF5 may crash the process when it flushes or closes a
    file whose write failed. A program that gets it should leave promptly without closing the
    file (the command line exits with :func:`os._exit`); the file is then in the state of a
    killed writer, and ``--restart`` recovers it from its last complete checkpoint.
    """


#: Writers whose file HDF5 failed to write: kept referenced so that their file is never closed
#: (closing may crash the process); see :class:`WriteError`.
_ABANDONED: list = []


def write_cause(err: BaseException) -> str:
    """The operating system's reason behind an HDF5 write error, as one short phrase.

    HDF5 reports a failed ``write(2)`` as ``... errno = 27, error message = 'File too large' ...``
    inside a longer message; that phrase and its errno name are returned (``"File too large
    (EFBIG)"``), else the exception's errno, else the first line of its message.
    """
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    message = re.search(r"error message = '([^']*)'", text)
    number = re.search(r"errno = (\d+)", text)
    code = int(number.group(1)) if number else getattr(err, "errno", None)
    name = f" ({errno.errorcode[code]})" if code in errno.errorcode else ""
    if message:
        return message.group(1) + name
    if code in errno.errorcode:
        return os.strerror(code) + name
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__


def _detach(file):
    """Point the descriptor HDF5 writes ``file`` through at /dev/null: what HDF5 still writes
    after a failed write (flushes when its objects are released, at the latest when the process
    exits) then goes nowhere, and the file on disk keeps the state of its last successful flush,
    as if its writer had been killed. Writing on to the real file after a failed write can crash
    the process."""
    try:
        fd = file.id.get_vfd_handle()
        null = os.open(os.devnull, os.O_RDWR)
    except (OSError, RuntimeError, ValueError):
        return
    os.dup2(null, fd)
    os.close(null)


#: Diagnostic rows are written in batches, at most this many seconds of wall time apart (a reader
#: of a running file sees them that much later), and always before a snapshot, a checkpoint, the
#: summary and the end of the run, so a checkpoint never counts a row the file lacks.
DIAGNOSTICS_FLUSH_SECONDS = 1.0


class RunWriter:
    """Writes one run file. Create with :meth:`create` or reopen with :meth:`reopen`.

    Every write goes through :meth:`_writing`: an HDF5 error, raised or only reported as
    "Exception ignored" while a temporary HDF5 object is released, becomes a
    :class:`WriteError`, and the writer stops touching the file. Diagnostic rows are kept and
    written in batches (:data:`DIAGNOSTICS_FLUSH_SECONDS`): one resize and one flush per batch
    instead of per row.
    """

    def __init__(self, file, path, replaces=None):
        self.file = file
        self.path = path  # where the file is now
        self.replaces = replaces  # the file it replaces after its first record (see create)
        self.lock = None  # the RunLock held while writing (released by close)
        self.broken = False
        self._rows = []  # diagnostic rows not yet written
        self._rows_written = time.monotonic()
        self.checkpoint_t = None  # the time of the last complete checkpoint written or found

    @contextlib.contextmanager
    def _writing(self, flush=True):
        """Run the enclosed writes and flush; turn any HDF5 failure into :class:`WriteError`."""
        if self.broken:
            raise WriteError(f"cannot write {str(self.path)!r}: an earlier write failed")
        # h5py reports a failure to release an object through both hooks (a traceback, then
        # "Exception ignored"): collected here instead of printed
        ignored = []
        hooks = sys.unraisablehook, sys.excepthook
        sys.unraisablehook = lambda unraisable: ignored.append(unraisable.exc_value)
        sys.excepthook = lambda kind, value, traceback: ignored.append(value)
        try:
            try:
                yield
                if flush:
                    self.file.flush()
            except (OSError, RuntimeError, KeyError) as err:
                if isinstance(err, KeyError) and "Unable to" not in str(err):
                    raise  # a missing key, not HDF5's report of damaged metadata
                ignored.insert(0, err)
        finally:
            sys.unraisablehook, sys.excepthook = hooks
        if ignored:
            self._abandon(ignored[0])

    def _abandon(self, err):
        self.broken = True
        _ABANDONED.append(self)
        _detach(self.file)
        where = ("it holds no checkpoint" if self.checkpoint_t is None
                 else f"its checkpoint at t={self.checkpoint_t:.6g} can be continued with --restart")
        name = self.path if self.replaces is None else self.replaces
        if self.replaces is not None:  # the new run never replaced the old file: drop it
            where = f"{str(name)!r} is unchanged"
            self.path.unlink(missing_ok=True)
        raise WriteError(f"cannot write {str(name)!r}: {write_cause(err)}; the run stops ({where})") from None

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(cls, path, model, series, config: dict, metadata: dict, arrays: dict, overwrite=False):
        """A new run file at ``path`` with every dataset of the schema; call :meth:`begin` next.

        With ``overwrite`` and an existing file at ``path``, the new run is written aside, to
        ``.<name>.new-<pid>`` in the same directory, and renamed over ``path`` once its first
        record (snapshot or diagnostics row) is written; a failure before that leaves the old
        file as it was.

        ``series``: the declared diagnostics (the solver's and the model's,
        :attr:`~sobolev_flow.solver.Solver.series`); ``model`` supplies the snapshot fields, the
        checkpoint arrays, its description and its predictions; ``arrays`` (the model's
        :meth:`arrays`, gathered by every process of a distributed run) go into ``/model``.
        """
        h5py = _h5py()
        path = pathlib.Path(path)
        replaces = None
        if overwrite and path.exists():
            replaces, path = path, path.with_name(f".{path.name}.new-{os.getpid()}")
        f = h5py.File(path, "w" if overwrite else "w-", libver="latest")
        writer = cls(f, path, replaces)
        try:
            with writer._writing():
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
                t = snaps.create_dataset("t", shape=(0,), maxshape=(None,), dtype=float, chunks=(64,),
                                         fletcher32=True)
                t.make_scale("t")
                for field in model.snapshots:
                    ds = snaps.create_dataset(field.name, shape=(0,) + field.shape, maxshape=(None,) + field.shape,
                                              dtype=field.dtype, chunks=(1,) + field.shape, compression="gzip",
                                              compression_opts=1, shuffle=True, fletcher32=True)
                    _describe(ds, field)
                    ds.dims[0].attach_scale(t)
                    if field.on_grid:
                        for j, scale in enumerate(scales):
                            ds.dims[j + 1].attach_scale(scale)
                diag = f.create_group("diagnostics")
                for item in series:
                    chunks = (256,) + tuple(max(1, n) for n in item.shape)
                    ds = diag.create_dataset(item.name, shape=(0,) + item.shape, maxshape=(None,) + item.shape,
                                             dtype=item.dtype, chunks=chunks, fletcher32=True)
                    _describe(ds, item)
                ckpt = f.create_group("checkpoint")
                ckpt.create_dataset("current", data=0)
                for slot in ("a", "b"):
                    g = ckpt.create_group(slot)
                    for name, (shape, dtype) in model.checkpoint_layout.items():
                        g.create_dataset(name, shape=shape, dtype=dtype)
                    for name in _CHECKPOINT_SCALARS:
                        g.create_dataset(name, data=0.0 if name in _FLOAT_SCALARS else 0)
                    g.create_dataset("digest", shape=(DIGEST_SIZE,), dtype="uint8")
        except WriteError:
            raise
        except BaseException:
            writer.close()
            raise
        return writer

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
            stored_eof = re.search(r"truncated file: eof = \d+, .*stored_eof = (\d+)", str(err))
            if "consistency flags" not in str(err) and stored_eof is None:
                raise ConfigError(f"output.path={str(path)!r}: not a readable run file ({err})") from None
            # the writer died without closing the file (the run's lock shows none is alive), or
            # stopped on a write error that left the file shorter than its recorded end
            log.warning("%s was not closed by its writer; recovering it by copying its contents", path)
            recover(path, None if stored_eof is None else int(stored_eof.group(1)))
            f = h5py.File(path, "r+", libver="latest")
        try:
            if f.attrs.get("format") != FORMAT:
                raise ConfigError(f"output.path={str(path)!r}: not a sobolev_flow run file")
            check_objects(f, path)
            checkpoint = read_checkpoint(f, path)
            if checkpoint is None:
                raise ConfigError(f"output.path={str(path)!r}: the file holds no checkpoint to restart from")
            config = json.loads(f.attrs["config"])
            writer = cls(f, path)
            writer.checkpoint_t = checkpoint["t"]
            with writer._writing():
                for group, rows in (("snapshots", checkpoint["n_snapshots"]),
                                    ("diagnostics", checkpoint["n_diagnostics"])):
                    for _, ds in members(f[group]):
                        ds.resize(rows, axis=0)
        except WriteError:
            raise
        except BaseException:
            f.close()
            raise
        return writer, config, checkpoint

    def begin(self, config: dict | None = None, note: dict | None = None):
        """Record a (continued) run's configuration, then switch to SWMR mode for writing.

        ``note`` (for instance the time and new t_end of a restart) is appended to the JSON
        list in the root attribute ``restarts``.
        """
        with self._writing():
            if config is not None:
                self.file.attrs["config"] = json.dumps(config)
            if note is not None:
                history = json.loads(self.file.attrs.get("restarts", "[]"))
                self.file.attrs["restarts"] = json.dumps(history + [note])
            self.file.swmr_mode = True

    # ------------------------------------------------------------------ writing
    @property
    def n_snapshots(self) -> int:
        return self.file["snapshots/t"].shape[0]

    @property
    def n_diagnostics(self) -> int:
        """Rows recorded, those still to be written included."""
        return self.file["diagnostics/t"].shape[0] + len(self._rows)

    def write_snapshot(self, t: float, fields: dict):
        """Append one snapshot: ``fields`` holds every declared snapshot field."""
        self.flush_diagnostics()
        with self._writing():
            i = self.n_snapshots
            group = self.file["snapshots"]
            for name, value in fields.items():
                group[name].resize(i + 1, axis=0)
                group[name][i] = value
            # t last: a reader that trusts len(t) never sees a half-written row
            group["t"].resize((i + 1,))
            group["t"][i] = t
        self._publish()

    def write_diagnostics(self, values: dict):
        """Append one row; ``values`` holds every declared series (``t`` and ``step`` included).
        Written with the rows before it once :data:`DIAGNOSTICS_FLUSH_SECONDS` have passed."""
        self._rows.append(values)
        if time.monotonic() - self._rows_written >= DIAGNOSTICS_FLUSH_SECONDS:
            self.flush_diagnostics()

    def flush_diagnostics(self):
        """Write the diagnostic rows kept so far."""
        if not self._rows or self.broken:
            return
        rows, self._rows = self._rows, []
        with self._writing():
            group = self.file["diagnostics"]
            i, k = group["t"].shape[0], len(rows)
            for name, ds in members(group):
                if name == "t":
                    continue
                ds.resize(i + k, axis=0)
                ds[i:i + k] = np.asarray([row[name] for row in rows], dtype=ds.dtype)
            # t last: a reader that trusts len(t) never sees a half-written row
            group["t"].resize((i + k,))
            group["t"][i:i + k] = [row["t"] for row in rows]
        self._rows_written = time.monotonic()
        self._publish()

    def _publish(self):
        """A new run written aside replaces the old file (atomically, by rename) after its first record."""
        if self.replaces is not None:
            os.replace(self.path, self.replaces)
            self.path, self.replaces = self.replaces, None

    def write_checkpoint(self, state: dict):
        """Write ``state`` (rho_hat and the scalars) into the spare slot, then make it current
        (after the diagnostic rows it counts)."""
        self.flush_diagnostics()
        with self._writing():
            ckpt = self.file["checkpoint"]
            current = int(ckpt["current"][()])
            slot = "b" if current == 1 else "a"
            group = ckpt[slot]
            values = {name: np.asarray(state[name], dtype=ds.dtype) for name, ds in members(group) if name != "digest"}
            for name, value in values.items():
                group[name][()] = value
            if "digest" in group:
                group["digest"][()] = np.frombuffer(checkpoint_digest(values), dtype="uint8")
        with self._writing():
            ckpt["current"][()] = 2 if slot == "b" else 1
        self.checkpoint_t = float(state["t"])

    def record_summary(self, summary: dict):
        """The model's end-of-run report as the root attribute ``summary`` (JSON)."""
        self.flush_diagnostics()
        with self._writing():
            self.file.attrs["summary"] = json.dumps(summary)

    def close(self):
        """Close the file, unless a write failed (then it is left open: see :class:`WriteError`);
        a new run that never replaced the old file is removed; the lock is released."""
        try:
            if not self.broken and self.file.id.valid:
                self.flush_diagnostics()
                with self._writing(flush=False):
                    self.file.close()
        finally:
            if self.replaces is not None:
                self.path.unlink(missing_ok=True)
            if self.lock is not None:
                self.lock.release()


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


def recover(path: pathlib.Path, stored_eof: int | None = None):
    """Rewrite a run file whose writer died (its SWMR consistency flags still set).

    The file is read in SWMR-read mode, which ignores the flags, copied object by object into
    a new file next to it, and the copy replaces the original atomically. Dimension scales
    are attached anew in the copy. ``stored_eof``: the end of file HDF5 recorded, when a failed
    write (disk full, file size limit) left the file shorter; the copy is read from a padded
    duplicate (the bytes never written read as zeros), and the original is replaced only if the
    copy succeeds and its checkpoint passes :func:`verify_checkpoint`.
    """
    h5py = _h5py()
    tmp = path.with_name(path.name + ".recovering")
    source = path
    if stored_eof is not None:
        source = path.with_name(path.name + ".padded")
        shutil.copyfile(path, source)
        os.truncate(source, stored_eof)
    try:
        _copy_run(h5py, source, tmp)
        with h5py.File(tmp, "r", libver="latest") as f:
            read_checkpoint(f, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, (OSError, RuntimeError, KeyError)):
            raise ConfigError(f"output.path={str(path)!r}: cannot be recovered ({write_cause(err)})") from None
        raise
    finally:
        if source != path:
            source.unlink(missing_ok=True)
    os.replace(tmp, path)


def _copy_run(h5py, source, tmp):
    """Copy the run file ``source`` object by object into a new file ``tmp`` (see :func:`recover`)."""
    with _open_swmr(source) as src, h5py.File(tmp, "w", libver="latest") as dst:
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


def read_wisdom(path) -> bytes:
    """The FFTW wisdom a run file keeps (root attribute ``fft_wisdom``; b"" if none)."""
    with _open_read(path) as f:
        value = f.attrs.get("fft_wisdom")
    return b"" if value is None else np.asarray(value).tobytes()


def checkpoint_time(path) -> float:
    """The time of a run file's current checkpoint, read (and verified) without writing; a
    ConfigError if there is none or it is damaged, so that a refused restart leaves the file as
    it was (a file whose writer died is only recovered once it is known to hold a checkpoint)."""
    try:
        with _open_read(path) as f:
            checkpoint = read_checkpoint(f, path)
    except (OSError, KeyError) as err:
        raise ConfigError(f"output.path={str(path)!r}: not a readable run file ({err})") from None
    if checkpoint is None:
        raise ConfigError(f"output.path={str(path)!r}: the file holds no checkpoint to restart from")
    return checkpoint["t"]


def members(group) -> list:
    """(name, object) of a group's members. Unlike ``group.items()``, which gives None for a
    member HDF5 cannot open, a damaged member raises (KeyError or OSError)."""
    return [(name, group[name]) for name in group]


def check_objects(f, path):
    """Open every object of a run file opened for writing, before it switches to SWMR mode.

    Outside SWMR mode HDF5 reads a metadata block whose checksum fails once and reports it; a
    SWMR writer would retry such a read for minutes. A damaged object is refused here with one
    line (ConfigError), before anything is written.
    """
    names, name = [], ""
    try:
        f.visit(names.append)
        for name in names:
            f[name]
    except (KeyError, OSError, RuntimeError) as err:
        where = f" at {name!r}" if name else ""
        raise ConfigError(f"output.path={str(path)!r}: the run file is damaged{where} ({write_cause(err)})") from None


def checkpoint_digest(values: dict) -> bytes:
    """SHA-256 of a checkpoint: its names and the bytes of its values (as stored), in name order."""
    h = hashlib.sha256()
    for name in sorted(values):
        h.update(name.encode())
        h.update(np.ascontiguousarray(values[name]).tobytes())
    return h.digest()


def read_checkpoint(f, path=None) -> dict | None:
    """The current checkpoint of an open run file, or None; verified by :func:`verify_checkpoint`."""
    current = int(f["checkpoint/current"][()])
    if current == 0:
        return None
    slot = "a" if current == 1 else "b"
    group = f["checkpoint"][slot]
    raw = {name: ds[()] for name, ds in members(group)}
    verify_checkpoint(raw, f"checkpoint {slot} of {str(path or f.filename)!r}")
    out = {}
    for name, value in raw.items():
        if name in _CHECKPOINT_SCALARS:
            out[name] = float(value) if name in _FLOAT_SCALARS else int(value)
        elif name != "digest":
            out[name] = np.asarray(value)
    return out


def verify_checkpoint(raw: dict, where: str):
    """Refuse a damaged checkpoint with one line: a digest that does not match its values (files
    of format 3), or a non-finite time, step size or energy. ``raw``: the slot's datasets as read.

    The model's arrays may hold non-finite markers (e.g. "positivity never lost"); the state
    itself is checked after it is restored, by recomputing its energy (:func:`check_restored`).
    """
    values = {name: np.asarray(value) for name, value in raw.items() if name != "digest"}
    if "digest" in raw and checkpoint_digest(values) != np.asarray(raw["digest"], dtype="uint8").tobytes():
        raise ConfigError(f"{where} is damaged: its checksum does not match its contents")
    for name in _FLOAT_SCALARS:
        if name in values and not np.isfinite(values[name]):
            raise ConfigError(f"{where} is damaged: {name}={float(values[name])!r} is not finite")


#: Relative difference allowed between the energy a checkpoint stored and the energy recomputed
#: from its restored state: the same sum over the same numbers agrees to rounding (the particle
#: model's evaluation is approximate to its tolerance, far below this).
RESTORED_ENERGY_RTOL = 1e-8


def check_restored(stored: float | None, energy: float, where: str):
    """Refuse a restored state whose energy E differs from the checkpoint's stored E by more
    than :data:`RESTORED_ENERGY_RTOL` (relative), or is not finite (``stored`` None: a file of
    format 2, which stores none; only finiteness is checked)."""
    if not np.isfinite(energy):
        raise ConfigError(f"{where} is damaged: the energy of its state is {energy!r}")
    if stored is not None and not abs(energy - stored) <= RESTORED_ENERGY_RTOL * abs(stored):
        raise ConfigError(f"{where} is damaged: the energy of its state is {energy!r}, the stored energy {stored!r}")


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


#: Reads of a metadata block whose checksum fails before a SWMR reader gives up. A reader may
#: catch a block the writer is rewriting, so HDF5 retries (100 times by default, waiting longer
#: each time); on a damaged file those retries made an open hang for many minutes.
SWMR_READ_ATTEMPTS = 20


def _hdf5_function(name):
    """A C function of the HDF5 library h5py is linked with (via ctypes), or None if not found."""
    import ctypes

    try:
        maps = pathlib.Path("/proc/self/maps").read_text().split("\n")
    except OSError:
        return None
    libraries = {line.split()[-1] for line in maps if re.search(r"/libhdf5[-_.][^/]*$", line.strip())
                 and "hl" not in line.split()[-1].rsplit("/", 1)[-1]}
    for library in sorted(libraries):
        try:
            return getattr(ctypes.CDLL(library), name)
        except (OSError, AttributeError):
            continue
    return None


def _open_swmr(path):
    """Open ``path`` read-only in SWMR mode with at most :data:`SWMR_READ_ATTEMPTS` reads of a
    metadata block whose checksum fails (HDF5's default where the C setter is not reachable)."""
    import ctypes

    h5py = _h5py()
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_LATEST, h5py.h5f.LIBVER_LATEST)
    setter = _hdf5_function("H5Pset_metadata_read_attempts")
    if setter is not None:
        setter(ctypes.c_int64(fapl.id), ctypes.c_uint(SWMR_READ_ATTEMPTS))
    fid = h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDONLY | h5py.h5f.ACC_SWMR_READ, fapl=fapl)
    return h5py.File(fid)


def _open_read(path):
    """Open for reading in SWMR mode (works while a writer runs, or after it died), with
    bounded retries on damaged metadata (:func:`_open_swmr`)."""
    h5py = _h5py()
    try:
        return _open_swmr(path)
    except OSError as err:
        if "checksum" in str(err):
            raise
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


def open_run(path, snapshots=True) -> RunData:
    """Read a run file, also while another process is still writing it.

    Rows are read up to the length of the time datasets, which are written last, so a
    partially written row is never returned. ``snapshots=False`` reads the diagnostics and
    attributes only (``t`` is then empty, ``mu`` None): what the rate fits need, readable when a
    snapshot chunk is damaged.
    """
    path = pathlib.Path(path)
    with _open_read(path) as f:
        if f.attrs.get("format") != FORMAT:
            raise ValueError(f"path={str(path)!r}: not a sobolev_flow run file")
        groups = ("snapshots", "diagnostics") if snapshots else ("diagnostics",)
        for _, ds in [item for group in groups for item in members(f[group])]:
            if hasattr(ds, "refresh"):
                ds.refresh()
        t, fields = np.zeros(0), {}
        if snapshots:
            n_snap = f["snapshots/t"].shape[0]
            t = f["snapshots/t"][:n_snap]
            fields = {name: ds[:n_snap] for name, ds in members(f["snapshots"]) if name != "t"}
        mu = fields.get("mu")
        n_diag = f["diagnostics/t"].shape[0]
        diagnostics = {name: ds[:n_diag] for name, ds in members(f["diagnostics"])}
        norms = f["diagnostics"].get("sobolev_norms")
        orders = norms.attrs["orders"][...] if norms is not None else np.zeros(0)
        attrs = {k: v for k, v in f.attrs.items() if k != "config"}
        for key in ("versions", "model", "theory", "summary"):
            if key in attrs:
                attrs[key] = json.loads(attrs[key])
        config = json.loads(f.attrs["config"])
        coordinates = [f[f"grid/x{j}"][...] for j in range(len(f["grid"]))]
    return RunData(t=t, mu=mu, diagnostics=diagnostics, orders=orders, config=config, attrs=attrs,
                   coordinates=coordinates, snapshots=fields)
