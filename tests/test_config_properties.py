"""Property-based tests over the configuration space (hypothesis): every configuration the run
accepts runs (a few steps on a tiny grid) or stops with a diagnosed one-line error; every one it
rejects gives one line — the same from --dry-run and from the run, exit 2 — and leaves an
existing output file byte-identical."""

import math
import pathlib

import numpy as np
from hypothesis import HealthCheck, event, given, settings, strategies as st

from sobolev_flow import open_run
from sobolev_flow.run import main, run, toml_value

#: The file every example starts from, given as the output with --overwrite.
PRECIOUS = b"an earlier run file that a rejected configuration must not touch"


def mixed(valid, invalid):
    """Mostly valid values, some invalid ones (wrong type, out of range, misspelt)."""
    return st.one_of(*[st.sampled_from(valid)] * 4, st.sampled_from(invalid))


SCHEDULES = mixed([[0.01], [0.0, 0.02], {"every": 0.01}, {"every": 0.5}, {"t0": 0.001, "ratio": 2.0}],
                  [{"every": 0}, {"every": -1.0}, [0.02, 0.01], {"t0": 0.001, "ratio": 1.0}, {"every": 1e-12},
                   "often", {"t0": 0.1}, [-0.5]])

KEYS = {
    "grid.d": mixed([1, 2, 3], [0, 4, 2.0, "2", True]),
    "grid.n": mixed([8, 16, [8, 16]], [7, 6, 0, 16.5, "16", [], [8, 8, 8, 8]]),
    "model.method": mixed(["grid", "particles"], ["spectral", 1]),
    "particles.init": mixed(["auto", "lattice", "sample"], ["quantiles", "grid", "gone.npy"]),
    "grid.dealias": mixed(["3/2", "2/3"], ["1/2", 1.5]),
    "model.s": st.one_of(st.floats(0.3, 3.0), st.sampled_from([0.0, -1.0, math.nan, math.inf, "two"])),
    "model.kernel": mixed(["sobolev", "gaussian", {"name": "gaussian", "sigma": 0.5}, {"name": "sobolev", "s": 1.5},
                           "relu"],
                          ["gausian", {"name": "gaussian", "sigma": -1.0}, {"name": "gaussian", "s": 2}, 3,
                           {"sigma": 0.5}]),
    "model.geometry": mixed(["wasserstein", "wfr", {"name": "wfr", "alpha": 1.0}],
                            ["wrf", {"name": "wfr", "alpha": -1.0}, {"name": "wasserstein", "alpha": 2.0}, 7]),
    "initial.density": mixed(["uniform", "bumps", "kink", {"family": "mode"}, {"family": "powerlaw", "p": 6.0},
                              {"family": "bumps", "kappa": 2.0}],
                             ["gone.npy", {"family": "powerlaw", "p": 1.0}, {"family": "mode", "k": [99]},
                              {"family": "bumps", "floor": 0}, {"family": "powerlaw"}, "nonsense", 5]),
    "time.scheme": mixed(["auto", "rk4", "etdrk4", "etdrk2", "ars222"], ["etdkr4", "euler", 4]),
    "time.rtol": st.one_of(st.floats(1e-8, 1e-2), st.sampled_from([0.0, -1e-6, "tight"])),
    "time.dt": mixed([None, 0.01, 0.004], [0.0, -0.01, 10.0, "small"]),
    "time.t_end": st.one_of(st.floats(0.005, 0.05), st.sampled_from([0.0, -1.0, math.inf, "soon"])),
    "output.snapshots": SCHEDULES,
    "output.diagnostics": SCHEDULES,
    "diagnostics.sobolev_orders": mixed([None, [], [0.0, 1.0]], ["all", [1, "x"]]),
}


@st.composite
def configurations(draw):
    """--set overrides: a random subset of KEYS with drawn values (None: the key left at its default)."""
    chosen = draw(st.lists(st.sampled_from(sorted(KEYS)), unique=True, max_size=7))
    overrides = []
    for key in chosen:
        value = draw(KEYS[key])
        if value is not None:
            overrides.append(f"{key}={toml_value(value)}")
    return overrides


#: Always: one FFT thread, a cap on the steps (a diagnosed error rather than a long run), few particles.
FIXED = ["fft.threads=1", "time.max_steps=400", "output.checkpoint_seconds=inf", "particles.n=24",
         "particles.modes=6"]


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(method=st.sampled_from(["grid", "grid", "particles"]), overrides=configurations())
def test_every_configuration_runs_or_is_refused_in_one_line(tmp_path_factory, method, overrides):
    tmp = tmp_path_factory.mktemp("config")
    output = tmp / "run.h5"
    output.write_bytes(PRECIOUS)
    # small unless drawn otherwise; a third of the examples with particles
    overrides = ["grid.n=8", "time.t_end=0.01", f'model.method="{method}"'] + overrides + FIXED
    try:
        path = run(overrides=overrides, output=output, overwrite=True)
    except ValueError as err:  # refused: one line, nothing touched, and the command line agrees
        message = str(err)
        event(f"refused: {message.split(':')[0].split('=')[0]}")
        assert message and "\n" not in message
        assert output.read_bytes() == PRECIOUS, message
        assert sorted(p.name for p in tmp.iterdir()) == ["run.h5"]
        for dry in (["--dry-run"], []):
            assert command(overrides, output, dry) == (2, [f"error: {message}"]), dry
        assert output.read_bytes() == PRECIOUS
        return
    except (RuntimeError, FloatingPointError) as err:  # the solver's diagnosis, one line
        event(f"stopped: {type(err).__name__}")
        assert str(err) and "\n" not in str(err)
        return
    # accepted: the dry run accepts it too, and the file holds a run that reached t_end
    data = open_run(path)
    event(f"ran: {data.config['model']['method']}")
    assert data.diagnostics["t"][-1] == data.config["time"]["t_end"]
    assert np.all(np.isfinite(data.diagnostics["energy"]))
    assert command(overrides, tmp / "other.h5", ["--dry-run"])[0] == 0


def command(overrides, output, extra):
    """(exit code, stderr lines) of the command line, in this process."""
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["--quiet", "--set", *overrides, "--output", str(pathlib.Path(output)), "--overwrite", *extra])
    return code, err.getvalue().splitlines()
