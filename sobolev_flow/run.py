"""Command line: ``python -m sobolev_flow.run [CONFIG.toml] [--set KEY=VALUE ...] [options]``.

Without a configuration file it runs the embedded default (:data:`sobolev_flow.config.DEFAULTS`):
a 2-D flow with s = 2 from a random density with power-law spectrum |ρ_k|² ∝ |k|^{-6}, whose
energy decays like t^{-4} (the exponent (2s + p − d)/(2s − 2)) up to t = 200.

Started by an MPI launcher (``mpirun -n P python -m sobolev_flow.run ...``, d ≥ 2), the run is
distributed over the P processes with mpi4py-fft (:mod:`sobolev_flow.parallel`); the first
process writes the run file, which has the same schema as a serial run's.

Exit codes: 0 success, 1 numerical failure, blow-up or write error (one line on stderr), 2 bad
input, a damaged run file or a run file another run is writing (one line on stderr, no file
touched), 130 / 143 interrupted by SIGINT / SIGTERM (state checkpointed; continue with ``--restart``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import signal
import sys
import time

import numpy as np

from . import __version__
from .config import (ConfigError, boolean, choice, grid_shape, integer, load, positive, resolve, schedule_count,
                     schedule_times)
from .grid import Torus
from .initial import density, spectrum_exponent
from .kernels import make_kernel
from .models.network import (INITIALISATIONS as NETWORK_INITIALISATIONS, DensityTeacher, NetworkModel, NetworkTeacher,
                             initial_network, load_network, perturbation_spectrum)
from .models.particles import INITIALISATIONS, ParticleModel, lattice, quantiles, sample
from .models.spectral import SpectralModel, check_inputs, make_geometry, memory_estimate
from .solver import Solver, check_memory
from .steppers import get_scheme
from .fft import export_wisdom, import_wisdom, resolve_backend, resolve_effort
from .parallel import launched_processes, launched_rank, world
from .storage import (NullWriter, RunLock, RunWriter, WriteError, check_restored, check_writable, checkpoint_time,
                      read_config, read_wisdom)
from .trackers import (BlowUp, CheckpointTracker, DiagnosticsTracker, HealthTracker, InterruptTracker, Interrupted,
                       ProgressTracker, SnapshotTracker, drive)

log = logging.getLogger("sobolev_flow.run")

#: Sections that define the problem: a restart must not change them.
IDENTITY = ("grid", "model", "initial", "particles", "network")

#: The scheme ``time.scheme = "auto"`` stands for, per model.method.
AUTO_SCHEMES = {"grid": "etdrk4", "particles": "rk4", "network": "rk4"}


def parse(argv):
    parser = argparse.ArgumentParser(prog="python -m sobolev_flow.run",
                                     description="Simulate the Wasserstein (or Wasserstein-Fisher-Rao) gradient flow of a kernel mean "
                                                 "discrepancy, by default ½‖μ − ν‖²_{Ḣ^-s}, on T^d.")
    parser.add_argument("config", nargs="?", help="TOML configuration (default: the embedded default run); it may "
                                                  "also follow the --set overrides")
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override configuration keys, e.g. --set model.s=2.5 grid.n=256")
    parser.add_argument("--output", "-o", help="run file (overrides output.path)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run file")
    parser.add_argument("--restart", action="store_true", help="continue the run file from its last checkpoint")
    parser.add_argument("--dry-run", action="store_true", help="validate, print the configuration and memory estimate")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar, warnings only")
    parser.add_argument("--version", action="version", version=f"sobolev_flow {__version__}")
    args = parser.parse_args(argv)
    # --set takes every word up to the next option, so a configuration file given after the
    # overrides lands among them: a word without "=" that names a .toml or an existing file is it
    words = [word for word in args.overrides
             if "=" not in word and (word.endswith(".toml") or pathlib.Path(word).is_file())]
    if words:
        given = ([args.config] if args.config else []) + words
        if len(given) > 1:
            parser.exit(2, f"error: --set {words[-1]!r}: expected KEY=VALUE; {len(given)} configuration files given "
                           f"({', '.join(repr(g) for g in given)}); give one CONFIG.toml, before or after the --set "
                           "overrides\n")
        args.config = words[0]
        args.overrides = [word for word in args.overrides if word not in words]
    return args


def toml_value(v) -> str:
    """A configuration value as TOML source (also what ``--set`` parses): inline tables and arrays,
    quoted strings, and ``inf``, ``-inf``, ``nan`` as Python's repr spells them."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + "}"


def to_toml(cfg: dict) -> str:
    """The resolved configuration as TOML (unset optional keys as comments)."""
    lines = []
    for section, keys in cfg.items():
        lines.append(f"[{section}]")
        for key, v in keys.items():
            lines.append(f"# {key} = (unset)" if v is None else f"{key} = {toml_value(v)}")
        lines.append("")
    return "\n".join(lines)


def configure(args) -> tuple[dict, pathlib.Path, dict | None]:
    """Resolve the configuration; for --restart, merge with the file's and check compatibility."""
    data = load(args.config) if args.config else {}
    overrides = list(args.overrides)
    explicit_path = args.output is not None or "path" in data.get("output", {}) or any(
        o.split("=", 1)[0].strip() == "output.path" for o in overrides)
    if args.output is not None:
        overrides.append(f"output.path={json.dumps(args.output)}")
    cfg = resolve(data, overrides)
    path = pathlib.Path(cfg["output"]["path"])
    stored = None
    if args.restart:
        if args.overwrite:
            raise ConfigError("--restart and --overwrite: choose one")
        check_writable(path, overwrite=False, restart=True)
        stored = read_config(path)
        if not args.config:  # continue the stored run, with the overrides on top
            cfg = resolve(stored, overrides)
        for section in IDENTITY:
            if section not in stored:  # written before the section existed: its defaults
                stored[section] = resolve({})[section]
            if cfg[section] != stored[section]:
                key, old, new = first_difference(section, stored[section], cfg[section])
                raise ConfigError(f"{key}={new!r}: the run file was made with {key}={old!r}; "
                                  "a restart cannot change the grid, model or initial data")
        # decided from a read-only look at the checkpoint, before the file is opened for writing
        t = checkpoint_time(path)
        t_end = cfg["time"]["t_end"]
        if t is not None and t_end < t:
            raise ConfigError(f"time.t_end={t_end!r}: the checkpoint is already at t={t!r}")
        if t is not None and t_end == t:
            raise NothingToDo(f"nothing to do: {str(path)!r} is at t={t!r} = time.t_end already; the file is "
                              "unchanged (raise time.t_end to continue)")
    elif not explicit_path:
        path = unused_path(path)
        cfg["output"]["path"] = str(path)
    if not args.dry_run:
        check_writable(path, overwrite=args.overwrite, restart=args.restart)
    return cfg, path, stored


class NothingToDo(Exception):
    """A restart whose run file already stands at time.t_end: nothing is run or written."""


def first_difference(section, old, new):
    for key in new:
        if old.get(key) != new.get(key):
            return f"{section}.{key}", old.get(key), new.get(key)
    return section, old, new


def unused_path(path: pathlib.Path) -> pathlib.Path:
    """``path`` if free, else the first free ``stem-1.h5``, ``stem-2.h5``, …"""
    candidate, i = path, 0
    while candidate.exists():
        i += 1
        candidate = path.with_name(f"{path.stem}-{i}{path.suffix}")
    return candidate


def problem(cfg, base_dir):
    """The checked ingredients of a run that need no transform: (grid, scheme, kernel, geometry).

    Raises ValueError (naming the key and value) on a bad grid, scheme, kernel or geometry, or a
    run whose estimated memory (:func:`run_memory`) exceeds the machine's; the kernel's weights
    are checked against the grid (e.g. ``relu`` needs d = 1).
    """
    grid, scheme, geometry = setting(cfg)
    # the memory estimate comes before any grid-sized array (the kernel's weights) is allocated;
    # a network's is checked once it is built (:func:`build`)
    if cfg["model"]["method"] != "network":
        check_memory(grid.shape, run_memory(cfg, grid, scheme, geometry), launched_processes())
    kernel = make_kernel(cfg["model"]["kernel"], cfg["model"]["s"], grid, base_dir=base_dir)
    return grid, scheme, kernel, geometry


def setting(cfg):
    """(grid, scheme, geometry) of a configuration, checked; time.scheme = "auto" stands for the
    model's scheme (:data:`AUTO_SCHEMES`). Allocates nothing grid-sized."""
    name = cfg["time"]["scheme"]
    scheme = get_scheme(AUTO_SCHEMES[cfg["model"]["method"]] if name == "auto" else name)
    return Torus(grid_shape(cfg), dealias=cfg["grid"]["dealias"]), scheme, make_geometry(cfg["model"]["geometry"])


def run_memory(cfg, grid, scheme, geometry) -> int:
    """Bytes a run holds at once: the solver's working memory
    (:func:`~sobolev_flow.models.spectral.memory_estimate`) and the outputs' (:func:`output_memory`)."""
    return memory_estimate(grid, scheme, reaction=bool(geometry.alpha)) + output_memory(cfg, grid)


def output_memory(cfg, grid) -> int:
    """Bytes the outputs hold at once: μ0 and ν on the grid, the snapshot μ with its compressed
    chunk (2 grid arrays of float64), and the output times of both schedules and their union
    (3 float64 per time, at most :data:`~sobolev_flow.config.MAX_OUTPUT_TIMES` each)."""
    return int(8 * 4 * grid.size + 3 * 8 * output_times(cfg))


def output_times(cfg) -> float:
    """The output times of both schedules counted with 2 to spare each (:func:`output_memory`)."""
    t_end = cfg["time"]["t_end"]
    return sum(schedule_count(cfg["output"][name], t_end) + 2 for name in ("snapshots", "diagnostics"))


def network_memory(cfg, model, scheme) -> tuple[int, int]:
    """(working, outputs) bytes of a network run: the model's estimate (:meth:`NetworkModel.memory`)
    plus the outputs, the snapshot weights (m(d + 2) floats, and for d = 1 the density estimate on
    the grid) with their compressed chunk, and 3 float64 per output time (:func:`output_memory`)."""
    snapshot = model.width * (model.d + 2) + (model.grid.size if model.d == 1 else 0)
    outputs = int(2 * 8 * snapshot + 3 * 8 * output_times(cfg))
    return model.memory(scheme) + outputs, outputs


def build(cfg, base_dir, comm=None, wisdom_only=False, check_only=False) -> Solver | NetworkModel | None:
    """Grid, kernel, densities, model and solver from a resolved configuration (ValueError on
    bad input, raised before any transform is planned or file touched).

    ``comm``: an MPI communicator to distribute the run over (see
    :class:`~sobolev_flow.models.spectral.SpectralModel`); ``wisdom_only``: plan from imported FFTW
    wisdom alone (see :func:`restore_plans`); ``check_only`` (``--dry-run``): make every check of
    the run and return None, without planning a transform — the densities are built and checked
    as the grid model checks them (:func:`~sobolev_flow.models.spectral.check_inputs`); particles
    are placed and their model, which plans nothing, is built with its scheme's stepper. A network's
    estimated memory (:func:`network_memory`) is checked against the machine's once it is built, and
    with ``check_only`` the network model is returned (for its estimate).
    """
    grid, scheme, kernel, geometry = problem(cfg, base_dir)
    particles = cfg["model"]["method"] == "particles"
    if particles and comm is not None and comm.Get_size() > 1:
        raise ConfigError(f"model.method='particles': runs on one process (started with {comm.Get_size()})")
    mu0 = density(cfg["initial"]["density"], grid, name="initial.density", base_dir=base_dir)
    target = cfg["model"]["target"]
    nu = None if target == "uniform" else density(target, grid, name="model.target", base_dir=base_dir)
    t, fft = cfg["time"], cfg["fft"]
    if particles:
        model = particle_model(cfg, grid, kernel, geometry, mu0, nu, base_dir)
    elif cfg["model"]["method"] == "network":
        model = network_model(cfg, base_dir)
        check_memory((model.width, model.d + 2), network_memory(cfg, model, scheme)[0])
    elif check_only:
        check_inputs(grid, mu0, nu, kernel, geometry.alpha, cfg["initial"]["normalize"])
        return None
    else:
        model = SpectralModel(grid, mu0, nu, kernel=kernel, geometry=geometry, stabilisation=cfg["model"]["stabilisation"],
                              normalize=cfg["initial"]["normalize"], orders=sobolev_orders(cfg),
                              spectrum=spectrum_exponent(cfg["initial"]["density"], grid.d), comm=comm,
                              decomposition=fft["decomposition"], fft_backend=fft["backend"],
                              threads=fft["threads"] or None,
                              fft_effort=resolve_effort(fft["effort"], 1 if comm is None else comm.Get_size()),
                              fft_wisdom_only=wisdom_only,
                              kernels=fft["kernels"])
    if check_only:  # particles and networks plan nothing; an exponential or IMEX scheme needs a linear part
        scheme.stepper(model)
        return model if isinstance(model, NetworkModel) else None
    return Solver(model, scheme=scheme.name, rtol=t["rtol"], atol=t["atol"], dt=t["dt"], cfl=t["cfl"],
                  dt_max=t["dt_max"], max_steps=t["max_steps"], error_estimate=t["error_estimate"])


def particle_model(cfg, grid, kernel, geometry, mu0, nu, base_dir) -> ParticleModel:
    """The particles of ``[particles]``: placed from μ0 (quantiles in 1-D, a weighted lattice or
    i.i.d. samples) or read from a .npy file of positions (and optionally of weights)."""
    p = cfg["particles"]
    init = p["init"]
    if init == "auto":
        init = "quantiles" if grid.d == 1 else "lattice"
    weights = None
    if init == "quantiles":
        positions = quantiles(grid, mu0, p["n"])
    elif init == "lattice":
        positions, weights = lattice(grid, mu0, p["n"])
    elif init == "sample":
        positions = sample(grid, mu0, p["n"], p["seed"])
    elif init.endswith(".npy"):
        positions = load_array("particles.init", init, base_dir)
    else:
        raise ConfigError(f"particles.init={init!r}: expected one of auto, {', '.join(INITIALISATIONS)} or a .npy path")
    if p["weights"] is not None:
        weights = load_array("particles.weights", p["weights"], base_dir)
    if weights is None and init in ("quantiles", "sample"):  # μ0's mass, shared equally
        weights = np.full(len(positions), float(np.mean(mu0)) / len(positions))
    return ParticleModel(grid, positions, weights, nu, kernel=kernel, geometry=geometry, evaluator=p["evaluator"],
                         modes=p["modes"], tol=p["tol"], normalize=cfg["initial"]["normalize"],
                         threads=cfg["fft"]["threads"] or 1)


def network_model(cfg, base_dir) -> NetworkModel:
    """The network of ``[network]``: a teacher (a density on the circle of ``grid.n`` points, or a
    .npz network) and initial weights (a grid or random directions, μ0 for init = density, or a .npz),
    with the spectrum of the initial perturbation its predictions need (:func:`perturbation_spectrum`).
    The density estimate of ν for d = 1 is written on the same 1-D grid."""
    p = cfg["network"]
    d, width = p["d"], p["width"]
    n = cfg["grid"]["n"]
    circle = Torus((n[0] if isinstance(n, list) else n,))
    threads = cfg["fft"]["threads"] or 1
    try:
        if isinstance(p["teacher"], str) and p["teacher"].endswith(".npz"):
            teacher = NetworkTeacher(*load_network("network.teacher", _path(p["teacher"], base_dir), d=d,
                                                   label=p["teacher"]), threads=threads)
        elif isinstance(p["teacher"], dict) and p["teacher"]["family"] == "network":
            teacher = NetworkTeacher(*initial_network(d=d, **random_teacher(p["teacher"])), threads=threads)
        elif d != 1:
            raise ConfigError(f"network.teacher={p['teacher']!r}: a density teacher lives on the circle and needs "
                              f"network.d=1, got network.d={d}; give a .npz network")
        else:
            nu = p["teacher_mass"] * density(p["teacher"], circle, name="network.teacher", base_dir=base_dir)
            teacher = DensityTeacher(circle, nu)
        init = p["init"]
        spectrum = None
        if init.endswith(".npz"):
            a, w = load_network("network.init", _path(init, base_dir), d=d, width=width, label=init)
        elif init in NETWORK_INITIALISATIONS:
            mu0 = None
            if init == "density":
                if d != 1:
                    raise ConfigError(f"network.init='density': needs network.d=1, got network.d={d}")
                mu0 = density(cfg["initial"]["density"], circle, name="initial.density", base_dir=base_dir)
            a, w = initial_network(width, d, init, scale=p["scale"], balanced=p["balanced"], seed=p["seed"],
                                   mu0=mu0, grid=circle)
            spectrum = perturbation_spectrum(init, d, p["balanced"], cfg["initial"]["density"])
        else:
            raise ConfigError(f"network.init={init!r}: expected one of {', '.join(NETWORK_INITIALISATIONS)} or a .npz path")
        return NetworkModel(a, w, teacher, grid=circle, threads=threads, prox_tol=p["prox_tol"], spectrum=spectrum)
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(str(err)) from None


#: Parameters of a random teacher network, ``network.teacher = {family = "network", ...}``.
TEACHER_NETWORK = {"width": (10, integer(1)), "seed": (0, integer(0)), "scale": (1.0, positive),
                   "balanced": (True, boolean), "init": ("random", choice("random", "grid"))}


def random_teacher(spec) -> dict:
    """The checked keyword arguments of :func:`initial_network` for a teacher network: random
    directions (``init = "random"``, the default) or a grid of them (``"grid"``: equispaced on the
    circle, the Fibonacci lattice on S², a uniform teacher up to its discreteness), |w*_j| = scale,
    a*_j = |w*_j| (balanced) or scale × N(0, 1)."""
    unknown = sorted(set(spec) - set(TEACHER_NETWORK) - {"family"})
    if unknown:
        raise ConfigError(f"network.teacher.{unknown[0]}: unknown parameter of the network family; valid: "
                          f"{', '.join(TEACHER_NETWORK)}")
    out = {name: convert(f"network.teacher.{name}", spec.get(name, default))
           for name, (default, convert) in TEACHER_NETWORK.items()}
    return out


def _path(path, base_dir) -> pathlib.Path:
    """``path``, relative to ``base_dir`` unless it is absolute."""
    return pathlib.Path(path) if pathlib.Path(path).is_absolute() else pathlib.Path(base_dir) / path


def load_array(key, path, base_dir) -> np.ndarray:
    """A .npy file (relative to ``base_dir``) as an array; one-line errors name the key."""
    full = _path(path, base_dir)
    try:
        return np.load(full, allow_pickle=False)
    except FileNotFoundError:
        raise ConfigError(f"{key}={path!r}: no such file") from None
    except (OSError, ValueError) as err:
        raise ConfigError(f"{key}={path!r}: cannot be read ({err})") from None


def restore_plans(cfg, path, restart: bool) -> bool:
    """Before a restart with measured plans and ``fft.deterministic``: import the FFTW wisdom the
    run file keeps, so that the continued run executes the same plans and continues bit for bit.

    Returns whether planning must use that wisdom alone (False when there is nothing to restore:
    "estimate" planning, which is deterministic anyway, "auto" under MPI, which is "estimate", or a
    file without stored wisdom).
    """
    fft = cfg["fft"]
    if not (restart and fft["deterministic"] and resolve_effort(fft["effort"], launched_processes()) != "estimate"):
        return False
    if resolve_backend(fft["backend"]) != "pyfftw" or launched_processes() > 1:
        return False
    wisdom = read_wisdom(path)
    if not wisdom:
        log.warning("%s keeps no FFTW wisdom: the restart plans anew and agrees with an uninterrupted run to "
                    "rounding, not bit for bit", path)
        return False
    if not import_wisdom(wisdom):
        raise ConfigError(f"fft.deterministic=true: FFTW rejects the wisdom stored in {str(path)!r} (another FFTW "
                          "build?); set fft.deterministic=false to plan anew")
    return True


def sobolev_orders(cfg):
    orders = cfg["diagnostics"]["sobolev_orders"]
    return [-cfg["model"]["s"], -1.0, 0.0, 1.0] if orders is None else orders


def run(config=None, overrides=(), output=None, overwrite=False, restart=False) -> pathlib.Path:
    """Run a configuration and return the path of its run file (the library entry point).

    Parameters
    ----------
    config : str or path, optional
        A TOML file; None runs the embedded default.
    overrides : sequence of str
        ``KEY=VALUE`` overrides, as with ``--set``.
    output, overwrite, restart
        As the command-line options of the same names.

    Raises
    ------
    ValueError
        Bad input (a :class:`~sobolev_flow.config.ConfigError` names the key and value).
    RuntimeError, FloatingPointError
        The solver failed (step-size underflow, non-finite state, a blow-up the health checks
        caught: :class:`~sobolev_flow.trackers.BlowUp`).
    ~sobolev_flow.storage.WriteError
        Writing the run file failed (a full disk, a file-size limit): the file is left unclosed,
        since HDF5 can crash closing it, and ``--restart`` recovers it. A program that catches this
        error should end with ``os._exit`` (as the command line does), not a normal exit, during
        which HDF5 may still try to close it.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from sobolev_flow import open_run
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = run(overrides=["grid.n=16", "time.t_end=1.0"], output=pathlib.Path(tmp) / "run.h5")
    ...     energy = open_run(path).diagnostics["energy"]
    >>> bool(energy[-1] < energy[0])
    True
    """
    args = argparse.Namespace(config=None if config is None else str(config), overrides=list(overrides),
                              output=None if output is None else str(output), overwrite=overwrite, restart=restart,
                              dry_run=False, quiet=True)
    cfg, path, _ = configure(args)
    solver = build(cfg, pathlib.Path(args.config).parent if args.config else pathlib.Path("."),
                   wisdom_only=restore_plans(cfg, path, restart))
    simulate(cfg, path, solver, restart=restart, overwrite=overwrite)
    return path


def main(argv=None) -> int:
    args = parse(argv)
    root = launched_rank() == 0
    logging.basicConfig(level=logging.WARNING if args.quiet or not root else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    say = print if root else _silent
    try:
        comm = world()
        try:
            cfg, path, _ = configure(args)
        except NothingToDo as done:
            say(str(done))
            return 0
        base_dir = pathlib.Path(args.config).parent if args.config else pathlib.Path(".")
        if args.dry_run:  # every check of the real run, in the same order, and no file opened
            network = build(cfg, base_dir, comm, wisdom_only=restore_plans(cfg, path, args.restart), check_only=True)
            grid, scheme, geometry = setting(cfg)
            if network is not None:
                need, outputs = network_memory(cfg, network, scheme)
                where = f"network: width {network.width}, d = {network.d}, scheme {scheme.name}"
            else:
                need, outputs = run_memory(cfg, grid, scheme, geometry), output_memory(cfg, grid)
                where = f"grid {grid.shape}, padded {grid.padded_shape}"
            say(to_toml(cfg))
            say(f"# estimated working memory: {need / 2**20:.1f} MiB, outputs {outputs / 2**20:.1f} MiB of it ({where})")
            return 0
        solver = build(cfg, base_dir, comm, wisdom_only=restore_plans(cfg, path, args.restart))
    except ValueError as err:  # ConfigError is a ValueError; so are the solver's input checks
        say(f"error: {err}", file=sys.stderr)
        return 2
    model = solver.model
    # the header comes first, before any log line of the run (stdout is block-buffered off a terminal)
    say(f"sobolev_flow {__version__}: d={model.grid.d}, shape={model.grid.shape}, kernel {model.kernel}, "
        f"{model.geometry}, scheme={solver.scheme.name}, fft={model.fft['fft_backend']} x{model.fft['threads']}"
        + ("" if solver.layout.size == 1 else f", processes {solver.layout.describe()}"), flush=True)
    flag: dict = {}
    previous = {sig: signal.signal(sig, _handler(flag)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        summary = simulate(cfg, path, solver, restart=args.restart, overwrite=args.overwrite,
                           bar=root and not args.quiet and sys.stderr.isatty(), interrupt=flag)
    except Interrupted as stop:
        say(f"interrupted at t={solver.t:.6g} (step {solver.steps}); state saved in {path}; "
              "continue with --restart", file=sys.stderr)
        return 128 + stop.signum
    except ValueError as err:
        say(f"error: {err}", file=sys.stderr)
        return 2
    except WriteError as err:  # leave without closing the file HDF5 failed to write: that can crash
        say(f"error: {err}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
    except (RuntimeError, FloatingPointError) as err:
        say(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not root:
        return 0
    if args.restart:  # totals of the whole run and this run's share, each labelled
        counts = (f"steps {solver.steps} in all, {summary['steps']} in this run (rejected {solver.rejected} in all, "
                  f"{summary['rejected']} in this run), rhs evaluations {summary['rhs_evaluations']} in this run, "
                  f"wall time {summary['wall_time']:.2f} s in this run")
    else:
        counts = (f"steps {solver.steps} (rejected {solver.rejected}), rhs evaluations {summary['rhs_evaluations']}, "
                  f"wall time {summary['wall_time']:.2f} s")
    print(f"t_end={solver.t:g}: {counts}, final E {summary['energy']:.4e}")
    if "positivity_lost_at" in summary:
        print(f"warning: mu went negative at t={summary['positivity_lost_at']:.6g} (lowest min mu "
              f"{summary['worst_min_mu']:.3g}): the grid cannot follow this solution; the particle method "
              '(model.method = "particles") keeps positivity')
    line = energy_rate_line(path)
    if line:
        print(line)
    print(f"run file: {path}")
    return 0


def energy_rate_line(path) -> str:
    """One line with the fitted energy decay law and the theory's, or '' if there is none."""
    from .rates import format_estimate, rate_table
    from .storage import open_run

    try:
        row = rate_table(open_run(path, snapshots=False))[0]
    except (OSError, KeyError, ValueError):
        return ""
    fit = row["fit"]
    if fit is None:
        return ""
    law = "t^-a" if fit.kind == "power" else "exp(-a t)"
    half = (fit.ci[1] - fit.ci[0]) / 2
    theory = "" if row["predicted"] is None else f" (theory a = {row['predicted']:.4g})"
    return (f"energy ~ {law}: a = {format_estimate(fit.exponent, half)} (95 % CI) over t in "
            f"[{fit.window[0]:.3g}, {fit.window[1]:.3g}]{theory}")


def simulate(cfg, path, solver, restart=False, overwrite=False, bar=False, interrupt=None) -> dict:
    """Open the run file, drive the solver with its trackers to t_end, close the file.

    On :class:`~sobolev_flow.trackers.Interrupted` (a signal noted in ``interrupt``) a
    checkpoint is written before the exception propagates. Returns the wall time, the
    right-hand-side evaluations of this call and the final energy.
    """
    t_end = cfg["time"]["t_end"]
    layout = solver.layout
    metadata = {**solver.model.fft, "processes": layout.size}
    if metadata["fft_effort"] != "estimate" and metadata["fft_backend"] == "pyfftw":
        metadata["fft_wisdom"] = np.void(export_wisdom())  # the plans, for a deterministic restart
    arrays = solver.model.arrays()  # collective: gathered on every process
    layout.barrier()  # every process has checked the output path before the first one creates it

    def open_file():
        lock = RunLock(path).acquire()  # one writer per run file, for the whole run
        try:
            if restart:
                writer, _, checkpoint = RunWriter.reopen(path)
                writer.lock = lock
                if t_end < checkpoint["t"]:
                    writer.close()
                    raise ConfigError(f"time.t_end={t_end!r}: the checkpoint is already at t={checkpoint['t']!r}")
                writer.begin(cfg, note={"t": checkpoint["t"], "t_end": t_end,
                                        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
                return writer, checkpoint
            writer = RunWriter.create(path, solver.model, solver.series, cfg, metadata, arrays, overwrite=overwrite)
            writer.file["diagnostics"].attrs["method"] = DiagnosticsTracker.METHOD
        except BaseException:
            lock.release()
            raise
        writer.lock = lock
        writer.begin()
        return writer, None

    writer, checkpoint = on_root(layout, open_file, NullWriter())
    if restart:
        solver.restore(checkpoint)
        check_restored(checkpoint.get("energy"), solver.energy, f"the checkpoint of {str(path)!r}")
        log.info("restarting %s from t=%.6g (step %d)", path, solver.t, solver.steps)
    snapshot_times = schedule_times(cfg["output"]["snapshots"], t_end)  # the times the solver lands on
    diagnostic_times = schedule_times(cfg["output"]["diagnostics"], t_end)  # these do not shorten steps
    health = HealthTracker(diagnostic_times)
    checkpointer = CheckpointTracker(writer, seconds=cfg["output"]["checkpoint_seconds"],
                                     steps=cfg["output"]["checkpoint_steps"], first=snapshot_times, health=health.check)
    progress = ProgressTracker(t_end, bar=bar, schedule=snapshot_times)
    trackers = [
        health,
        SnapshotTracker(snapshot_times, writer),
        DiagnosticsTracker(diagnostic_times, writer),
        checkpointer,
        progress,
        InterruptTracker(interrupt if interrupt is not None else {}),
    ]
    start = time.perf_counter()
    evaluations0, steps0, rejected0 = solver.model.evaluations, solver.steps, solver.rejected
    try:
        drive(solver, t_end, trackers)
        writer.record_summary(solver.model.summary())
    except BlowUp as err:
        t = getattr(writer, "checkpoint_t", None)
        raise BlowUp(f"{err}; " + ("no state was checkpointed" if t is None else
                                   f"the last good checkpoint at t={t:.6g} stays; continue it with --restart and a "
                                   "smaller time.dt, time.cfl or time.rtol")) from None
    except Interrupted:
        checkpointer.save(solver)
        progress.finish(solver)
        raise
    finally:
        writer.close()
    return {"wall_time": time.perf_counter() - start, "rhs_evaluations": solver.model.evaluations - evaluations0,
            "steps": solver.steps - steps0, "rejected": solver.rejected - rejected0, "energy": solver.energy,
            **solver.model.summary()}


def on_root(layout, action, elsewhere):
    """``action()`` → (writer, state) on the root process; (``elsewhere``, the root's state) on the
    others. An input or file error on the root is raised on every process, so all stop together."""
    result, outcome = None, None
    if layout.root:
        try:
            result = action()
            outcome = ("ok", result[1])
        except (ValueError, OSError, WriteError) as err:
            outcome = ("error", err)
            if layout.size == 1:
                raise
    kind, value = layout.broadcast(outcome)
    if kind == "error":
        raise value
    return result if layout.root else (elsewhere, value)


def _silent(*args, **kwargs):
    pass


def _handler(flag):
    def handle(signum, frame):
        if flag.get("signum"):  # a second signal: stop now
            raise KeyboardInterrupt
        flag["signum"] = signum

    return handle


if __name__ == "__main__":
    sys.exit(main())
