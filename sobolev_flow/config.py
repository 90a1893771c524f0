"""Run configuration: a TOML file plus ``--set`` overrides, validated once into a plain dict.

Sections and keys (defaults in brackets)::

    [grid]        d [2], n [128] (int or one per axis), dealias ["3/2"]
    [model]       s [2.0], kernel [the Sobolev kernel of order s] (a kernel spec), geometry
                  ["wasserstein"] (or {name = "wfr", alpha = 2.0}), target ["uniform"] (a density
                  spec), stabilisation [max ν]
    [initial]     density [powerlaw p=6] (a density spec), normalize [false]
    [particles]   n [1000], init ["auto": quantiles in 1-D, lattice otherwise; or "sample", or a
                  .npy path], seed [0], weights [none: equal; or a .npy path], modes [64],
                  evaluator ["auto"], tol [1e-9]   (used when model.method = "particles")
    [network]     width [256], d [1], teacher ["uniform": a density spec on the circle, a .npz of a, w, or
                  {family = "network", width, seed, scale, balanced}],
                  teacher_mass [1.0], init ["grid"; "random", "density" or a .npz], scale [1.0],
                  balanced [true], seed [0], prox_tol [1e-10]   (used when model.method = "network")
    [time]        t_end [200.0], scheme ["auto": etdrk4 on the grid, rk4 for particles and networks; gd, prox], rtol [1e-6], atol [1e-12], dt [adaptive],
                  cfl [0.9 of the scheme's measured stability limit], dt_max [inf], max_steps [none],
                  error_estimate ["embedded" or "doubling"]
    [output]      path ["sobolev_flow_run.h5"], snapshots [geometric], diagnostics [geometric, denser],
                  checkpoint_seconds [300.0], checkpoint_steps [none]
    [diagnostics] sobolev_orders [[-s, -1, 0, 1]]
    [fft]         backend ["auto"], threads [0 = automatic], effort ["auto": measure, estimate under MPI],
                  decomposition ["slab"] (for runs under MPI: "slab" or "pencil"), deterministic [true],
                  kernels ["auto": numba when installed and the padded grid has ≥ 2^17 points; "numba"
                  or "numpy"] (:mod:`sobolev_flow.fused`)

A kernel spec is a name ("sobolev", "gaussian", "relu", "file") or a table with a ``name`` and
the kernel's parameters, e.g. ``{name = "gaussian", sigma = 0.5}`` or ``{name = "file", path =
"K.npy"}`` (see :mod:`sobolev_flow.kernels`); it is checked against the grid when the run is
built. A density spec is a family name, a ``.npy`` path, or a table ``{family = "...", ...}`` (see
:mod:`sobolev_flow.initial`). A schedule is a list of times, ``{every = Δt}`` (uniform from 0)
or ``{t0 = t0, ratio = r}`` (geometric t0·r^i); t = 0 and t_end are always included.

Every error is a :class:`ConfigError` (a ValueError) whose one-line message names the key and
its value.
"""

from __future__ import annotations

import copy
import difflib
import math
import pathlib
import tomllib
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

__all__ = ["ConfigError", "DEFAULTS", "load", "resolve", "parse_override", "schedule_times"]


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key and value."""


@dataclass(frozen=True)
class Key:
    """One configuration key: its default, a converter that validates, and a description."""

    default: Any
    convert: Callable[[str, Any], Any]
    doc: str


# ----------------------------------------------------------------------------- converters
def _number(key, value, *, integer=False, low=None, high=None, low_open=False, allow_inf=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key}={value!r}: expected {'an integer' if integer else 'a number'}")
    if integer and not float(value).is_integer():
        raise ConfigError(f"{key}={value!r}: expected an integer")
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise ConfigError(f"{key}={value!r}: expected a finite number")
    if low is not None and (value <= low if low_open else value < low):
        raise ConfigError(f"{key}={value!r}: expected a value {'>' if low_open else '>='} {low:g}")
    if high is not None and value > high:
        raise ConfigError(f"{key}={value!r}: expected a value <= {high:g}")
    return int(value) if integer else float(value)


def positive(key, value):
    return _number(key, value, low=0, low_open=True)


def tolerance(key, value):
    """A relative tolerance of the error control: at least :data:`~sobolev_flow.solver.RTOL_MIN`."""
    from .solver import RTOL_MIN

    return _number(key, value, low=RTOL_MIN)


def positive_or_inf(key, value):
    return _number(key, value, low=0, low_open=True, allow_inf=True)


def optional(convert):
    def check(key, value):
        return None if value is None else convert(key, value)

    return check


def integer(low):
    def check(key, value):
        return _number(key, value, integer=True, low=low)

    return check


def kernel_choice(key, value):
    """One of :data:`sobolev_flow.fused.KERNELS`, and "numba" only when numba is installed."""
    from .fused import KERNELS, select

    choice(*KERNELS)(key, value)
    try:
        select(value, field=key)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return value


def choice(*options):
    """One of ``options``, of the same type (2.0 or "2" is not the integer 2; true is not 1)."""

    def check(key, value):
        if not any(value == option and type(value) is type(option) for option in options):
            names = [str(option) for option in options]
            close = difflib.get_close_matches(str(value), names, n=1)
            hint = f"; did you mean {options[names.index(close[0])]!r}?" if close else ""
            raise ConfigError(f"{key}={value!r}: expected one of {', '.join(names)}{hint}")
        return value

    return check


def boolean(key, value):
    if not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r}: expected true or false")
    return value


def string(key, value):
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key}={value!r}: expected a non-empty string")
    return value


def points(key, value):
    """n: one even integer ≥ 8, or a list of them (one per axis)."""
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ConfigError(f"{key}={value!r}: expected an integer or a list of integers")
    out = [_number(key, v, integer=True) for v in values]
    for v in out:
        if v < 8 or v % 2:
            raise ConfigError(f"{key}={value!r}: points per axis must be even and at least 8")
    return out if isinstance(value, list) else out[0]


def _name_or_table(key, value, field, expected):
    """A non-empty string, or a table whose ``field`` is a string (checked in full later)."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict) and isinstance(value.get(field), str):
        return dict(value)
    raise ConfigError(f"{key}={value!r}: expected {expected} or a table with a '{field}' key")


def density_spec(key, value):
    """A family name, a .npy path, or a table with a 'family' key."""
    return _name_or_table(key, value, "family", "a family name, a .npy path")


def named_table(what):
    """A name, or a table with a string 'name' key and parameters."""
    return lambda key, value: _name_or_table(key, value, "name", f"a {what} name")


def schedule(key, value):
    """A list of times, {every = Δt} or {t0 = t0, ratio = r}."""
    if isinstance(value, list):
        times = [_number(key, v, low=0) for v in value]
        if any(b < a for a, b in zip(times, times[1:])):
            raise ConfigError(f"{key}={value!r}: times must be non-decreasing")
        return times
    if isinstance(value, dict):
        if set(value) == {"every"}:
            return {"every": positive(f"{key}.every", value["every"])}
        if set(value) == {"t0", "ratio"}:
            ratio = _number(f"{key}.ratio", value["ratio"], low=1, low_open=True)
            return {"t0": positive(f"{key}.t0", value["t0"]), "ratio": ratio}
    raise ConfigError(f"{key}={value!r}: expected a list of times, {{every = dt}} or {{t0 = t0, ratio = r}}")


def orders(key, value):
    if value is None:
        return None
    if not isinstance(value, list):
        raise ConfigError(f"{key}={value!r}: expected a list of numbers")
    return [_number(key, v) for v in value]


# ----------------------------------------------------------------------------- the schema
SCHEMA: dict[str, dict[str, Key]] = {
    "grid": {
        "d": Key(2, choice(1, 2, 3), "dimension of the torus"),
        "n": Key(128, points, "points per axis (even, >= 8), or a list with one per axis"),
        "dealias": Key("3/2", choice("3/2", "2/3"), "3/2 padding or 2/3 truncation"),
    },
    "model": {
        "method": Key("grid", choice("grid", "particles", "network"), "a density on the grid, particles, or a network"),
        "s": Key(2.0, positive, "Sobolev order s of the energy ½‖μ − ν‖²_{Ḣ^{-s}}"),
        "kernel": Key(None, optional(named_table("kernel")), "kernel of the discrepancy (default: Sobolev, order s)"),
        "geometry": Key("wasserstein", named_table("geometry"), "wasserstein, or {name = \"wfr\", alpha = 2.0}"),
        "target": Key("uniform", density_spec, "target density ν"),
        "stabilisation": Key(None, optional(positive), "ν̄ of the linear part (default max ν)"),
    },
    "initial": {
        "density": Key({"family": "powerlaw", "p": 6.0, "seed": 1}, density_spec, "initial density μ0"),
        "normalize": Key(False, boolean, "rescale μ0 to the mass of ν"),
    },
    "particles": {
        "n": Key(1000, integer(1), "number of particles"),
        "init": Key("auto", string, "quantiles (1-D), lattice (weighted by μ0), sample (i.i.d.), or a .npy path"),
        "seed": Key(0, integer(0), "seed of init = sample"),
        "weights": Key(None, optional(string), "a .npy of weights (default: the target's mass shared equally)"),
        "modes": Key(64, integer(1), "mode cut-off K of the NUFFT evaluator (|k_j| <= K)"),
        "evaluator": Key("auto", choice("auto", "nufft", "direct", "sorted"), "how ψ and ∇ψ are evaluated"),
        "tol": Key(1e-9, positive, "NUFFT tolerance"),
    },
    "network": {
        "width": Key(256, integer(1), "number m of neurons"),
        "d": Key(1, choice(1, 2), "inputs uniform on the sphere S^d"),
        "teacher": Key("uniform", density_spec, "a density spec on the circle (d = 1; on the [grid] of n points), "
                                                "a .npz with arrays a (m*,) and w (m*, d + 1), or a random network "
                                                "{family = \"network\", width, seed, scale, balanced}"),
        "teacher_mass": Key(1.0, positive, "mass M* of a density teacher: ν* = M* × the (mean-1) density"),
        "init": Key("grid", string, "directions on a grid, random, density (d = 1: |w_i|² = μ0(θ_i) from "
                                    "initial.density), or a .npz with a (m,) and w (m, d + 1)"),
        "scale": Key(1.0, positive, "|w_i| at t = 0 (for init = density: a factor of μ0)"),
        "balanced": Key(True, boolean, "a_i = |w_i| (else a_i = scale × N(0, 1))"),
        "seed": Key(0, integer(0), "seed of init = random and of unbalanced output weights"),
        "prox_tol": Key(1e-10, positive, "tolerance of the proximal step's inner solver (time.scheme = prox)"),
    },
    "time": {
        "t_end": Key(200.0, positive, "final time"),
        "scheme": Key("auto", string, "time-stepping scheme (auto: etdrk4 on the grid, rk4 for particles)"),
        "rtol": Key(1e-6, tolerance, "relative local error tolerance (>= 1e-13)"),
        "atol": Key(1e-12, lambda k, v: _number(k, v, low=0), "absolute local error tolerance"),
        "dt": Key(None, optional(positive), "fixed step size (default: adaptive)"),
        "cfl": Key(None, optional(positive), "CFL number in units of min(dx)/max|∇ψ| (default: 0.9 of "
                                              "the scheme's measured stability limit)"),
        "error_estimate": Key("embedded", choice("embedded", "doubling"),
                              "local error estimate of adaptive steps: the scheme's embedded pair or step doubling"),
        "dt_max": Key(math.inf, positive_or_inf, "largest step"),
        "max_steps": Key(None, optional(integer(1)), "give up after this many steps"),
    },
    "output": {
        "path": Key("sobolev_flow_run.h5", string, "HDF5 run file"),
        "snapshots": Key({"t0": 1.0, "ratio": 10 ** 0.25}, schedule, "snapshot times"),
        "diagnostics": Key({"t0": 0.01, "ratio": 10 ** 0.05}, schedule, "diagnostic times"),
        "checkpoint_seconds": Key(300.0, positive_or_inf, "wall time between checkpoints"),
        "checkpoint_steps": Key(None, optional(integer(1)), "steps between checkpoints"),
    },
    "diagnostics": {
        "sobolev_orders": Key(None, orders, "orders q of ‖μ − ν‖_{Ḣ^q} (default −s, −1, 0, 1)"),
    },
    "fft": {
        "backend": Key("auto", choice("auto", "pyfftw", "numpy"), "FFT back end"),
        "threads": Key(0, integer(0), "FFT threads (0: automatic)"),
        "effort": Key("auto", choice("auto", "estimate", "measure", "patient", "exhaustive"),
                      "FFTW planner effort; auto: measure on one process (timed once per machine, shape and "
                      "threads, kept in the wisdom cache), estimate under MPI"),
        "decomposition": Key("slab", choice("slab", "pencil"), "how mpi4py-fft splits the grid in a run under MPI"),
        "deterministic": Key(True, boolean, "a restart re-creates the run's measured FFTW plans from the run file"),
        "kernels": Key("auto", kernel_choice, "element-wise work of the grid right-hand side: numba (fused, the "
                       "fast extra), numpy, or auto (numba when installed and the padded grid has ≥ 2^17 points)"),
    },
}

DEFAULTS = {section: {name: copy.deepcopy(key.default) for name, key in keys.items()} for section, keys in SCHEMA.items()}


# ----------------------------------------------------------------------------- loading
def load(path) -> dict:
    """Read a TOML file; errors name the file (and the line, for invalid TOML)."""
    path = pathlib.Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config={str(path)!r}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"config={str(path)!r}: cannot be read ({err.__class__.__name__}: {err})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config={str(path)!r}: invalid TOML: {err}") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``section.key=value`` → (["section", "key"], value), the value parsed as a TOML value
    (so 2 is an int, 2.5 a float, [1, 2] a list, true a bool) or else taken as a string."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. model.s=2.5")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. model.s=2.5")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.split("."), value


def resolve(data: dict | None = None, overrides=()) -> dict:
    """Merge a parsed TOML dict and overrides over the defaults, and validate every key.

    Returns a new nested dict holding only plain values (JSON-serialisable).
    """
    data = copy.deepcopy(data or {})
    for text in overrides:
        path, value = parse_override(text)
        if len(path) not in (2, 3):
            raise ConfigError(f"--set {text!r}: keys have the form section.key or section.key.parameter")
        section = data.setdefault(path[0], {})
        if not isinstance(section, dict):
            raise ConfigError(f"--set {text!r}: {path[0]} is not a table")
        if len(path) == 2:
            section[path[1]] = value
            continue
        # section.key.parameter, e.g. initial.density.p=3: edit (a copy of) the table
        default = SCHEMA.get(path[0], {}).get(path[1])
        table = section.get(path[1], copy.deepcopy(default.default) if default else None)
        if table is None and default is not None:  # an unset optional table (model.kernel): a new one
            table = {}
        if isinstance(table, str):
            table = {"name" if path[1] in ("kernel", "geometry") else "family": table}
        if not isinstance(table, dict):
            raise ConfigError(f"--set {text!r}: {path[0]}.{path[1]} is not a table")
        section[path[1]] = {**table, path[2]: value}
    out = {}
    for section, values in data.items():
        if section not in SCHEMA:
            raise ConfigError(f"{section}: unknown section{_suggest(section, SCHEMA)}")
        if not isinstance(values, dict):
            raise ConfigError(f"{section}={values!r}: expected a table [{section}]")
        for name in values:
            if name not in SCHEMA[section]:
                raise ConfigError(f"{section}.{name}: unknown key{_suggest(name, SCHEMA[section], section)}")
    for section, keys in SCHEMA.items():
        given = data.get(section, {})
        out[section] = {}
        for name, key in keys.items():
            value = given[name] if name in given else copy.deepcopy(key.default)
            out[section][name] = key.convert(f"{section}.{name}", value) if value is not None else None
    _cross_check(out)
    return out


def _suggest(name, valid, section=None) -> str:
    close = difflib.get_close_matches(name, list(valid), n=1)
    prefix = f"{section}." if section else ""
    hint = f"; did you mean {prefix}{close[0]}?" if close else ";"
    return f"{hint} valid: {', '.join(prefix + v for v in valid)}"


def _cross_check(cfg):
    from .models.spectral import make_geometry

    try:
        make_geometry(cfg["model"]["geometry"])
    except ValueError as err:
        raise ConfigError(str(err)) from None
    grid = cfg["grid"]
    if isinstance(grid["n"], list) and len(grid["n"]) != grid["d"]:
        raise ConfigError(f"grid.n={grid['n']!r}: expected {grid['d']} entries (grid.d={grid['d']})")
    if cfg["time"]["scheme"] in ("gd", "prox") and cfg["time"]["dt"] is None:
        raise ConfigError(f"time.scheme={cfg['time']['scheme']!r}: needs the learning rate time.dt > 0")
    if cfg["time"]["dt"] is not None and cfg["time"]["dt"] > cfg["time"]["t_end"]:
        raise ConfigError(f"time.dt={cfg['time']['dt']!r}: larger than time.t_end={cfg['time']['t_end']!r}")
    for name in ("snapshots", "diagnostics"):
        count = schedule_count(cfg["output"][name], cfg["time"]["t_end"])
        if count > MAX_OUTPUT_TIMES:
            raise ConfigError(f"output.{name}={cfg['output'][name]!r}: {count:.3g} output times up to "
                              f"time.t_end={cfg['time']['t_end']!r}, more than {MAX_OUTPUT_TIMES:.0e}")


#: Most output times a schedule may ask for (each is a row of the run file and a landing of the solver).
MAX_OUTPUT_TIMES = 10**6


def schedule_count(spec, t_end: float) -> float:
    """How many times a schedule asks for in [0, t_end], counted without listing them."""
    if isinstance(spec, list):
        return len(spec)
    if "every" in spec:
        return t_end / spec["every"]
    return max(0.0, math.log(t_end / spec["t0"]) / math.log(spec["ratio"])) if t_end >= spec["t0"] else 0.0


def grid_shape(cfg) -> tuple[int, ...]:
    n, d = cfg["grid"]["n"], cfg["grid"]["d"]
    return tuple(n) if isinstance(n, list) else (n,) * d


def schedule_times(spec, t_end: float) -> np.ndarray:
    """The times of a schedule within [0, t_end], with 0 and t_end always included."""
    if isinstance(spec, list):
        times = np.asarray(spec, dtype=float)
    elif "every" in spec:
        times = np.arange(0.0, t_end, spec["every"])
    else:
        count = math.floor(math.log(t_end / spec["t0"]) / math.log(spec["ratio"]) + 1e-9) + 1 if t_end >= spec["t0"] else 0
        times = spec["t0"] * spec["ratio"] ** np.arange(count)
    times = times[times < t_end * (1 - 1e-12)]  # t_end itself is added exactly
    return np.unique(np.concatenate([[0.0], times, [t_end]]))
