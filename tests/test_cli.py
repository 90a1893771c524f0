"""python -m sobolev_flow.run: configuration, the run file, restart, interruption, bad input."""

import hashlib
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from sobolev_flow import Torus, open_run
from sobolev_flow.config import resolve, schedule_times

ROOT = pathlib.Path(__file__).resolve().parents[1]
SMALL = ["--set", "grid.n=32", "time.t_end=20", "fft.threads=1"]


def env(tree=ROOT):
    """The environment with the source tree ``tree`` (this one by default) first on the path."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(tree) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def cli(*args, cwd, check=None, timeout=300):
    result = cli_module("run", *args, cwd=cwd, timeout=timeout)
    if check is not None:
        assert result.returncode == check, result.stderr
    return result


def cli_module(module, *args, cwd, timeout=300):
    """``python -m sobolev_flow.<module> args`` in ``cwd``, with this source tree first on the path."""
    return subprocess.run([sys.executable, "-m", f"sobolev_flow.{module}", *args], capture_output=True, text=True,
                          cwd=cwd, env=env(), timeout=timeout)


def digest(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def test_default_like_run_writes_the_documented_schema(tmp_path):
    result = cli(*SMALL, "--quiet", cwd=tmp_path, check=0)
    path = tmp_path / "sobolev_flow_run.h5"
    assert f"run file: {path.name}" in result.stdout
    assert "steps" in result.stdout and "rhs evaluations" in result.stdout and "final E" in result.stdout
    run = open_run(path)
    cfg = resolve({}, ["grid.n=32", "time.t_end=20", "fft.threads=1", f"output.path={json.dumps(path.name)}"])
    assert run.config == json.loads(json.dumps(cfg))
    # the default schedules written out: snapshots at 10^(i/4) ≤ 20 (i = 0..5: 1 … 17.8), diagnostics
    # at 10^(−2 + i/20) ≤ 20 (i = 0..66: 0.01 … 19.95), both with 0 and t_end = 20
    np.testing.assert_allclose(run.t, [0.0, *10 ** (np.arange(6) / 4), 20.0], rtol=1e-13)
    np.testing.assert_allclose(run.diagnostics["t"], [0.0, *10 ** (-2 + np.arange(67) / 20), 20.0], rtol=1e-13)
    assert run.mu.shape == (len(run.t), 32, 32)
    assert list(run.orders) == [-2.0, -1.0, 0.0, 1.0]
    d = run.diagnostics
    assert np.all(np.diff(d["energy"]) < 0) and np.all(np.diff(d["step"]) >= 0)
    np.testing.assert_allclose(d["sobolev_norms"][:, 0] ** 2 / 2, d["energy"], rtol=1e-12)
    assert np.max(np.abs(run.mu.mean(axis=(1, 2)) - 1)) < 1e-13
    with h5py.File(path, "r") as f:
        assert f["snapshots/mu"].dims[1][0].name == "/grid/x0"
        assert f["snapshots/mu"].compression == "gzip"
        assert json.loads(f.attrs["versions"])["sobolev_flow"]
        assert f.attrs["fft_backend"] in ("pyfftw", "numpy") and f.attrs["threads"] == 1
    # the default name is never reused: a second run gets a new file
    cli(*SMALL, "--quiet", cwd=tmp_path, check=0)
    assert (tmp_path / "sobolev_flow_run-1.h5").is_file()


def test_dry_run_prints_configuration_and_memory_without_writing(tmp_path):
    result = cli("--dry-run", "--set", "model.s=2.5", "grid.n=[64, 32]", cwd=tmp_path, check=0)
    assert "s = 2.5" in result.stdout and "n = [64, 32]" in result.stdout
    assert "# estimated working memory:" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_example_configs_validate(tmp_path):
    configs = sorted((ROOT / "runs").glob("*.toml"))
    assert len(configs) >= 4
    for config in configs:
        cli(str(config), "--dry-run", cwd=tmp_path, check=0)


# ---------------------------------------------------------------------------- bad input
def bad_input_cases(tmp_path):
    (tmp_path / "bad.toml").write_text("[grid]\nn = 32\n[model]\ns = = 2\n")
    (tmp_path / "typo.toml").write_text("[model]\nss = 2\n")
    (tmp_path / "type.toml").write_text("[fft]\nthreads = 'two'\n")
    (tmp_path / "range.toml").write_text("[time]\nrtol = -1e-6\n")
    np.save(tmp_path / "short.npy", np.ones(8))
    nan = np.ones((32, 32))
    nan[2, 3] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    neg = np.ones((32, 32))
    neg[1, 1] = -0.5
    np.save(tmp_path / "neg.npy", neg)
    (tmp_path / "config_dir").mkdir()
    np.save(tmp_path / "K_short.npy", np.ones(3))
    k_neg = np.ones((32, 17))
    k_neg[3, 2] = -0.5
    np.save(tmp_path / "K_neg.npy", k_neg)
    k_inf = np.ones((32, 17))
    k_inf[0, 1] = np.inf
    np.save(tmp_path / "K_inf.npy", k_inf)
    return {
        "dense schedule": (["--set", "output.snapshots={every=1e-9}"],
                           r"^error: output.snapshots=\{'every': 1e-09\}: 1e\+09 output times up to time.t_end=1.0, "
                           r"more than 1e\+06$"),
        "d out of range": (["--set", "grid.d=4"], r"^error: grid.d=4: expected one of 1, 2, 3$"),
        "d a float": (["--set", "grid.d=2.0"], r"^error: grid.d=2.0: expected one of 1, 2, 3$"),
        "d a string": (["--set", 'grid.d="2"'], r"^error: grid.d='2': expected one of 1, 2, 3; did you mean 2\?$"),
        "unknown kernel": (["--set", 'model.kernel="gausian"'],
                           r"^error: model.kernel='gausian': unknown kernel; did you mean 'gaussian'\? valid: sobolev, "
                           r"gaussian, relu, file$"),
        "unknown geometry": (["--set", 'model.geometry="wrf"'],
                             r"^error: model.geometry='wrf': unknown geometry; did you mean 'wfr'\? valid: wasserstein, wfr$"),
        "sigma <= 0": (["--set", 'model.kernel={name="gaussian", sigma=0}'],
                       r"^error: model.kernel.sigma=0: expected a finite number > 0$"),
        "alpha < 0": (["--set", 'model.geometry={name="wfr", alpha=-1}'],
                      r"^error: model.geometry.alpha=-1: expected a finite number >= 0$"),
        "relu in 2-D": (["--set", 'model.kernel="relu"'],
                        r"^error: model.kernel='relu': the ReLU kernel lives on the circle and needs grid.d=1, got grid.d=2$"),
        "weights shape": (["--set", 'model.kernel={name="file", path="K_short.npy"}'],
                          r"^error: model.kernel.path='K_short.npy': weights of shape \(3,\), expected \(32, 17\) "
                          r"\(the grid's spectral layout\)$"),
        "weights negative": (["--set", 'model.kernel={name="file", path="K_neg.npy"}'],
                             r"^error: model.kernel.path='K_neg.npy': weight -0.5 at index \(3, 2\) is negative; kernel "
                             r"weights must be finite and >= 0$"),
        "weights non-finite": (["--set", 'model.kernel={name="file", path="K_inf.npy"}'],
                               r"^error: model.kernel.path='K_inf.npy': weight inf at index \(0, 1\) is not finite"),
        "wfr option with wasserstein": (["--set", 'model.geometry={name="wasserstein", alpha=2.0}'],
                                        r"^error: model.geometry.alpha=2.0: a reaction coefficient needs the wfr geometry"),
        "kernel parameter": (["--set", 'model.kernel={name="gaussian", sigma=0.5, s=2}'],
                             r"^error: model.kernel.s=2: unknown parameter of the gaussian kernel"),
        "missing config": (["nope.toml"], r"^error: config='nope.toml': no such file$"),
        "unreadable config": (["config_dir"], r"^error: config='config_dir': cannot be read"),
        "invalid toml": (["bad.toml"], r"^error: config='bad.toml': invalid TOML: .*line 4"),
        "unknown key": (["typo.toml"], r"^error: model.ss: unknown key; did you mean model.s\? valid: "),
        "unknown override": (["--set", "time.rtl=1e-3"], r"^error: time.rtl: unknown key; did you mean time.rtol\?"),
        "wrong type": (["type.toml"], r"^error: fft.threads='two': expected an integer$"),
        "out of range": (["range.toml"], r"^error: time.rtol=-1e-06: expected a value >= 1e-13$"),
        "bad scheme": (["--set", "time.scheme=etdkr4"], r"^error: scheme='etdkr4': unknown scheme; did you mean 'etdrk4'\?"),
        "npy missing": (["--set", "initial.density=\"gone.npy\""], r"^error: initial.density='gone.npy': no such file$"),
        "npy shape": (["--set", "initial.density=\"short.npy\""], r"^error: initial.density='short.npy': shape \(8,\) does not match the grid \(32, 32\)$"),
        "npy nan": (["--set", "initial.density=\"nan.npy\""], r"^error: initial.density='nan.npy': holds a non-finite value \(nan at index \(2, 3\)\)$"),
        "npy negative": (["--set", "initial.density=\"neg.npy\""], r"^error: initial.density='neg.npy': holds a negative value \(-0.5 at index \(1, 1\)\)$"),
        "unwritable dir": (["--output", "/proc/sobolev_flow_test.h5"], r"^error: output.path='/proc/sobolev_flow_test.h5': the directory '/proc' is not writable"),
        "missing dir": (["--output", "no/such/dir/run.h5"], r"^error: output.path='no/such/dir/run.h5': the directory 'no/such/dir' does not exist$"),
    }


def test_bad_input_exits_2_with_one_line_and_touches_nothing(tmp_path):
    existing = tmp_path / "existing.h5"
    existing.write_bytes(b"precious")
    before = {p.name: digest(p) for p in tmp_path.iterdir() if p.is_file()}
    cases = bad_input_cases(tmp_path)
    before = {p.name: digest(p) for p in tmp_path.iterdir() if p.is_file()}
    import re

    for name, (args, pattern) in cases.items():
        result = cli(*args, "--set", "grid.n=32", "time.t_end=1", "--quiet", cwd=tmp_path)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (name, result.stderr)
        assert len(lines) == 1 and "Traceback" not in result.stderr, (name, result.stderr)
        assert re.search(pattern, lines[0]), (name, lines[0])
    after = {p.name: digest(p) for p in tmp_path.iterdir() if p.is_file()}
    assert after == before  # nothing written, nothing changed


def test_existing_output_needs_overwrite_or_restart(tmp_path):
    target = tmp_path / "run.h5"
    target.write_bytes(b"precious")
    result = cli(*SMALL, "--output", "run.h5", "--quiet", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: output.path='run.h5': the file exists; pass --overwrite to replace it "
                                     "or --restart to continue it")
    assert target.read_bytes() == b"precious"
    cli(*SMALL, "--output", "run.h5", "--overwrite", "--quiet", cwd=tmp_path, check=0)
    assert open_run(target).t[-1] == 20.0


def test_restart_with_a_different_grid_or_model_is_refused(tmp_path):
    cli(*SMALL, "--output", "run.h5", "--quiet", cwd=tmp_path, check=0)
    before = digest(tmp_path / "run.h5")
    for change, message in [("grid.n=64", "error: grid.n=64: the run file was made with grid.n=32; "),
                            ("model.s=3", "error: model.s=3.0: the run file was made with model.s=2.0; ")]:
        result = cli("--output", "run.h5", "--restart", "--set", change, "--quiet", cwd=tmp_path)
        assert result.returncode == 2
        assert result.stderr.startswith(message) and len(result.stderr.strip().splitlines()) == 1
    assert digest(tmp_path / "run.h5") == before


# ---------------------------------------------------------------------------- restart and interruption
def exact_times_config(tmp_path, t_end):
    config = tmp_path / "exact.toml"
    config.write_text(f"""
[grid]
n = 32
[model]
s = 2.0
[initial]
density = {{family = "powerlaw", p = 4, seed = 3}}
[time]
t_end = {t_end}
rtol = 1e-8
[output]
snapshots = [0.0, 5.0, 10.0, 40.0]
diagnostics = {{every = 1.0}}
checkpoint_steps = 7
[fft]
threads = 1
""")
    return config


MODELS = {
    "sobolev": [],
    "gaussian wfr": ['model.kernel={name="gaussian", sigma=0.5}', 'model.geometry={name="wfr", alpha=2.0}',
                     'model.target={family="bumps"}'],
}


@pytest.mark.parametrize("model", sorted(MODELS))
def test_restart_to_a_later_time_equals_an_uninterrupted_run(tmp_path, model):
    config = exact_times_config(tmp_path, 40.0)
    extra = ("--set", *MODELS[model]) if MODELS[model] else ()
    cli(str(config), "--output", "whole.h5", *extra, "--quiet", cwd=tmp_path, check=0)
    cli(str(config), "--output", "split.h5", *extra, "--set", "time.t_end=10.0", "--quiet", cwd=tmp_path, check=0)
    result = cli("--output", "split.h5", "--restart", "--set", "time.t_end=40.0", "--quiet", cwd=tmp_path, check=0)
    whole, split = open_run(tmp_path / "whole.h5"), open_run(tmp_path / "split.h5")
    assert np.array_equal(whole.t, split.t)
    assert np.array_equal(whole.mu, split.mu)  # bit for bit: deterministic plans, one thread
    for name in ("t", "energy", "dissipation", "step", "min_mu"):
        assert np.array_equal(whole.diagnostics[name], split.diagnostics[name]), name
    assert split.config["time"]["t_end"] == 40.0
    assert json.loads(split.attrs["restarts"])[0]["t"] == 10.0
    assert "t_end=40" in result.stdout
    for name, values in whole.diagnostics.items():  # every declared series, max_psi under WFR
        assert np.array_equal(values, split.diagnostics[name]), name


@pytest.mark.parametrize("overrides, kernel, geometry", [
    (["grid.d=1", 'model.kernel="relu"', 'model.geometry={name="wfr", alpha=2.0}',
      'initial.density={family="powerlaw", p=4.0, seed=1}'], "relu", "wfr"),
    (['model.kernel={name="gaussian", sigma=0.5}', 'model.geometry="wfr"', "model.target={family=\"bumps\"}"],
     "gaussian", "wfr"),
    (['model.kernel={name="sobolev", s=1.5}'], "sobolev", "wasserstein"),
], ids=["relu wfr 1-D", "gaussian wfr 2-D", "sobolev table"])
def test_every_kernel_and_geometry_runs_and_is_recorded(tmp_path, overrides, kernel, geometry):
    cli("--set", "grid.n=32", "time.t_end=20", "fft.threads=1", *overrides, "--output", "run.h5", "--quiet",
        cwd=tmp_path, check=0)
    run = open_run(tmp_path / "run.h5")
    assert run.model["kernel"]["name"] == kernel and run.model["geometry"]["name"] == geometry
    d = run.diagnostics
    assert np.all(np.diff(d["energy"]) <= 0) and np.all(d["dissipation"] >= 0)
    assert ("max_psi" in d) == (geometry == "wfr")
    with h5py.File(tmp_path / "run.h5", "r") as f:
        assert f["model/kernel_weights"].shape == Torus(run.mu.shape[1:]).spectral_shape
        assert f["diagnostics/energy"].attrs["description"]
    if kernel == "relu":  # E ~ t^-(p+3)/2 for s = 2 on the even modes, recorded for rates and plot
        assert run.theory == {"energy": ("power", 3.5)}
    rates = cli_module("rates", "run.h5", cwd=tmp_path)
    assert rates.returncode == 0 and "kernel " in rates.stdout and geometry in rates.stdout
    plot = cli_module("plot", "run.h5", "-o", "run.png", cwd=tmp_path)
    assert plot.returncode == 0, plot.stderr
    from matplotlib.image import imread

    image = imread(tmp_path / "run.png")  # at 120 dpi: 19 × 6.2 inches in 1-D (3 panels), else 16 × 11.5; not blank
    inches = (6.2, 19) if run.mu.ndim == 2 else (11.5, 16)
    assert image.shape[:2] == tuple(round(120 * side) for side in inches) and np.std(image[..., :3]) > 0.05


def test_restart_with_measured_plans_replays_the_stored_wisdom(tmp_path, monkeypatch):
    """fft.effort = "measure": the run file keeps the FFTW wisdom, and a restart in a process with
    an empty wisdom cache plans from it alone, so it continues bit for bit; a restart whose
    transforms the stored wisdom does not cover (another thread count) is refused, untouched."""
    config = exact_times_config(tmp_path, 40.0)
    measured = ["--quiet", "--set", "fft.effort=measure", "grid.n=48"]
    monkeypatch.setenv("SOBOLEV_FLOW_CACHE", str(tmp_path / "cache-a"))
    cli(str(config), *measured, "--output", "whole.h5", cwd=tmp_path, check=0)
    cli(str(config), *measured, "time.t_end=10.0", "--output", "split.h5", cwd=tmp_path, check=0)
    with h5py.File(tmp_path / "split.h5", "r") as f:
        assert b"fftw_wisdom" in np.asarray(f.attrs["fft_wisdom"]).tobytes()
    before = digest(tmp_path / "split.h5")
    monkeypatch.setenv("SOBOLEV_FLOW_CACHE", str(tmp_path / "cache-b"))
    refused = cli("--output", "split.h5", "--restart", "--set", "fft.threads=2", "time.t_end=40.0", cwd=tmp_path,
                  check=2)
    assert refused.stderr.startswith("error: fft.deterministic=true: the stored FFTW wisdom has no plan")
    assert len(refused.stderr.strip().splitlines()) == 1
    assert digest(tmp_path / "split.h5") == before
    monkeypatch.setenv("SOBOLEV_FLOW_CACHE", str(tmp_path / "cache-c"))
    cli("--output", "split.h5", "--restart", "--set", "time.t_end=40.0", "--quiet", cwd=tmp_path, check=0)
    whole, split = open_run(tmp_path / "whole.h5"), open_run(tmp_path / "split.h5")
    assert np.array_equal(whole.mu, split.mu)
    assert np.array_equal(whole.diagnostics["energy"], split.diagnostics["energy"])


def test_the_default_planner_effort_measures_on_one_process_and_estimates_under_mpi(tmp_path):
    """fft.effort = "auto" (the default) resolves to "measure" on one process, recorded with the
    wisdom of its plans in the run file (for the restart above), and to "estimate" on several,
    whose plans a restart could not replay; an unknown effort is refused in one line."""
    from sobolev_flow.fft import resolve_effort

    config = exact_times_config(tmp_path, 1.0)
    cli(str(config), "--quiet", "--output", "default.h5", cwd=tmp_path, check=0)
    with h5py.File(tmp_path / "default.h5", "r") as f:
        assert f.attrs["fft_effort"] == "measure"
        assert b"fftw_wisdom" in np.asarray(f.attrs["fft_wisdom"]).tobytes()
    assert [resolve_effort("auto", p) for p in (1, 2, 8)] == ["measure", "estimate", "estimate"]
    assert [resolve_effort(e, 4) for e in ("estimate", "measure", "patient")] == ["estimate", "measure", "patient"]
    with pytest.raises(ValueError, match=r"^fft\.effort='quick': expected one of auto, estimate, measure, patient, "
                                         r"exhaustive$"):
        resolve_effort("quick")


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_leaves_a_file_that_restarts_to_the_same_state(tmp_path, sig, code):
    config = exact_times_config(tmp_path, 40.0)
    slow = ["--set", "grid.n=96", "time.rtol=1e-10", "output.checkpoint_steps=1000000"]
    cli(str(config), *slow, "--output", "whole.h5", "--quiet", cwd=tmp_path, check=0)
    process = subprocess.Popen([sys.executable, "-m", "sobolev_flow.run", str(config), *slow, "--output", "cut.h5",
                                "--quiet"], cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until the run is under way, read while it is written
        time.sleep(0.05)
        try:
            if len(open_run(tmp_path / "cut.h5").diagnostics["t"]) >= 3:
                break
        except (OSError, KeyError):
            continue
    process.send_signal(sig)
    out, err = process.communicate(timeout=120)
    assert process.returncode == code, err
    assert "state saved" in err
    partial = open_run(tmp_path / "cut.h5")
    assert partial.diagnostics["t"][-1] < 40.0
    cli("--output", "cut.h5", "--restart", "--quiet", cwd=tmp_path, check=0)
    whole, cut = open_run(tmp_path / "whole.h5"), open_run(tmp_path / "cut.h5")
    assert np.array_equal(whole.t, cut.t)
    assert np.max(np.abs(whole.mu - cut.mu)) <= 1e-13
    assert np.array_equal(whole.diagnostics["t"], cut.diagnostics["t"])


CRASH_DURING_CHECKPOINT = """
import os, sys
from sobolev_flow import storage
from sobolev_flow.run import main

original = storage.RunWriter.write_checkpoint
calls = []

def crashing(self, state):
    calls.append(state["t"])
    if len(calls) < 2:
        return original(self, state)
    # write the spare slot half-way, then die before it is made current
    slot = "b" if int(self.file["checkpoint/current"][()]) == 1 else "a"
    self.file["checkpoint"][slot]["rho_hat"][...] = 0.0
    self.file["checkpoint"][slot]["t"][()] = -1.0
    self.file.flush()
    os._exit(9)

storage.RunWriter.write_checkpoint = crashing
sys.exit(main(sys.argv[1:]))
"""


def test_crash_during_a_checkpoint_write_keeps_the_previous_checkpoint(tmp_path):
    config = exact_times_config(tmp_path, 40.0)
    cli(str(config), "--output", "whole.h5", "--quiet", cwd=tmp_path, check=0)
    crashed = subprocess.run([sys.executable, "-c", CRASH_DURING_CHECKPOINT, str(config), "--output", "crash.h5",
                              "--quiet"], cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
    assert crashed.returncode == 9, crashed.stderr
    with h5py.File(tmp_path / "crash.h5", "r", libver="latest", swmr=True) as f:  # flags of the dead writer
        first = f["checkpoint"]["a"]
        assert int(f["checkpoint/current"][()]) == 1 and first["t"][()] > 0 and first["steps"][()] == 7
    cli("--output", "crash.h5", "--restart", "--quiet", cwd=tmp_path, check=0)
    whole, crash = open_run(tmp_path / "whole.h5"), open_run(tmp_path / "crash.h5")
    assert np.array_equal(whole.mu, crash.mu)
    assert np.array_equal(whole.diagnostics["energy"], crash.diagnostics["energy"])


def test_open_run_gives_an_xarray_dataset(tmp_path):
    xr = pytest.importorskip("xarray")
    cli(*SMALL, "--output", "run.h5", "--quiet", cwd=tmp_path, check=0)
    ds = open_run(tmp_path / "run.h5").to_xarray()
    assert isinstance(ds, xr.Dataset) and ds["mu"].dims == ("t", "x0", "x1")
    assert float(ds["energy"][-1]) < float(ds["energy"][0])


def test_progress_is_logged_when_not_on_a_terminal(caplog):
    import logging

    from sobolev_flow import Solver, SpectralModel, Torus
    from sobolev_flow.trackers import ProgressTracker, drive

    ticks = iter(range(0, 10**6, 6))
    grid = Torus((16,))
    solver = Solver(SpectralModel(grid, 1 + 0.5 * np.cos(grid.mesh()[0]), s=2.0), dt=0.5)
    with caplog.at_level(logging.INFO, logger="sobolev_flow.trackers"):
        drive(solver, 5.0, [ProgressTracker(5.0, bar=False, interval=10.0, clock=lambda: next(ticks))])
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 5  # every second step at 6 s per step and a 10 s interval
    assert lines[0].startswith("t=1/5 step 2 dt=0.5 E=")


def test_restart_skips_a_time_reached_up_to_another_schedules_rounding():
    """The solver may land on one schedule's rounding of a time another schedule also asks for
    (10^0.5 as 0.01·(10^0.05)^50 and as (10^0.25)^2); a restart there must not record it again."""
    from types import SimpleNamespace

    from sobolev_flow.trackers import SnapshotTracker

    snapshots = schedule_times({"t0": 1.0, "ratio": 10**0.25}, 100.0)
    diagnostics = schedule_times({"t0": 0.01, "ratio": 10**0.05}, 100.0)
    t_snap = snapshots[np.argmin(np.abs(snapshots - 10**0.5))]
    t_diag = diagnostics[np.argmin(np.abs(diagnostics - 10**0.5))]
    assert t_snap != t_diag and abs(t_snap - t_diag) < 1e-13  # the case at hand
    landed = min(t_snap, t_diag)
    tracker = SnapshotTracker(snapshots, writer=None)
    tracker.start(SimpleNamespace(t=landed, steps=10))
    assert tracker.next_time() > 3.2


# ---------------------------------------------------------------------------- first contact
def test_set_accepts_the_configuration_file_after_the_overrides(tmp_path):
    config = str(ROOT / "runs" / "s2_polynomial.toml")
    after = cli("--dry-run", "--set", "grid.n=64", "time.t_end=10.0", config, cwd=tmp_path, check=0)
    before = cli(config, "--dry-run", "--set", "grid.n=64", "time.t_end=10.0", cwd=tmp_path, check=0)
    assert after.stdout == before.stdout
    assert "n = 64" in after.stdout and "t_end = 10.0" in after.stdout and '"kink"' in after.stdout
    two = cli(config, "--set", "grid.n=64", "other.toml", cwd=tmp_path, check=2)
    assert two.stderr == (f"error: --set 'other.toml': expected KEY=VALUE; 2 configuration files given ({config!r}, "
                          "'other.toml'); give one CONFIG.toml, before or after the --set overrides\n")
    assert list(tmp_path.iterdir()) == []


def test_the_header_comes_before_every_log_line_off_a_terminal(tmp_path):
    """Off a terminal stdout is block-buffered and the log goes to stderr unbuffered: the header
    is printed (and flushed) before the run, so it precedes the run's log lines in one stream."""
    cli(*SMALL, "time.t_end=2.0", "--output", "run.h5", "--quiet", cwd=tmp_path, check=0)
    merged = subprocess.run([sys.executable, "-m", "sobolev_flow.run", "--output", "run.h5", "--restart", "--set",
                             "time.t_end=4.0"], cwd=tmp_path, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=300)
    assert merged.returncode == 0, merged.stdout
    lines = merged.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("sobolev_flow "))
    restart = next(i for i, line in enumerate(lines) if "restarting" in line)
    assert header == 0 < restart
    assert lines[-1] == "run file: run.h5"


class _FakeSolver:
    """The state a ProgressTracker reads: t, steps, last_dt, energy."""

    def __init__(self):
        self.t, self.steps, self.last_dt, self.energy = 0.0, 0, 0.0, 1.0

    def step_to(self, t):
        self.last_dt, self.t, self.steps = t - self.t, t, self.steps + 1


def _progress(times, t_end, stop, schedule=None):
    """Step a fake solver through ``times`` (1 s of wall clock per step) up to step ``stop``;
    returns the tracker's estimate there."""
    from sobolev_flow.trackers import ProgressTracker

    ticks = iter(range(10**6))
    tracker = ProgressTracker(t_end, bar=False, interval=float("inf"), clock=lambda: next(ticks), schedule=schedule)
    solver = _FakeSolver()
    tracker.start(solver)
    for t in times[:stop]:
        solver.step_to(t)
        tracker.after_step(solver)
    return tracker.estimate(solver)


def test_progress_counts_the_work_left_from_the_step_sizes_not_from_t():
    # steps growing like t (a geometric schedule, a decaying flow): 200 steps from 1e-3 to 1e5, half
    # done at t = 10 with 100 s left; progress in t says 0.01 % done and 11 days left
    geometric = np.geomspace(1e-3, 1e5, 201)[1:]
    done, left = _progress(geometric, 1e5, 100)
    assert done == pytest.approx(0.5, abs=0.02) and left == pytest.approx(100, rel=0.05)
    naive = 100 * (1e5 - geometric[99]) / geometric[99]
    assert naive > 3e4
    # steps of constant size: the work is linear in t
    uniform = np.arange(1, 201) * 0.5
    done, left = _progress(uniform, 100.0, 50)
    assert done == pytest.approx(0.25, abs=0.01) and left == pytest.approx(150, rel=0.05)
    # early steps of constant size on a geometric schedule: the schedule says log t
    early = np.arange(1, 101) * 1e-3
    schedule = np.concatenate([[0.0], np.geomspace(1e-2, 1e5, 141)])
    _, blind = _progress(early, 1e5, 100)
    _, told = _progress(early, 1e5, 100, schedule=schedule)
    # blind: 1e8 steps of 1e-3; told: log(1e5/0.1) ≈ 14 over the recent dt/t of 0.01-0.03
    assert blind > 1e7 and 14 / 0.03 < told < 14 / 0.01


def test_progress_log_line_reports_the_share_done_and_the_time_left(caplog):
    import logging

    from sobolev_flow.trackers import ProgressTracker, format_duration

    ticks = iter(range(0, 10**6, 2))
    tracker = ProgressTracker(1e5, bar=False, interval=150.0, clock=lambda: next(ticks))
    solver = _FakeSolver()
    tracker.start(solver)
    with caplog.at_level(logging.INFO, logger="sobolev_flow.trackers"):
        for t in np.geomspace(1e-3, 1e5, 201)[1:101]:
            solver.step_to(t)
            tracker.after_step(solver)
    (line,) = [r.getMessage() for r in caplog.records]
    # 125 steps of 2 s each are left (the estimate: log(1e5/1)/(dt/t) = 131)
    assert line == "t=1/100000 step 75 dt=0.088 E=1.0000e+00; 36 % of the steps done, about 4 min 21 s left"
    assert [format_duration(s) for s in (None, 0.4, 42, 185, 7380)] == ["?", "<1 s", "42 s", "3 min 05 s", "2 h 03 min"]


# ---------------------------------------------------------------------------- notebooks outside the repository
def _setup_cell_notebook(show=True):
    """The markdown and setup cells of a_s1_exponential.ipynb (and a cell printing RUNS)."""
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(ROOT / "notebooks" / "a_s1_exponential.ipynb", as_version=4)
    first = next(i for i, cell in enumerate(nb.cells) if cell.cell_type == "code")
    nb.cells = nb.cells[:first + 1] + ([nbformat.v4.new_code_cell("print(RUNS)")] if show else [])
    return nb


def _execute(nb, cwd, environment):
    import nbclient

    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                                     resources={"metadata": {"path": str(cwd)}})
    client.execute(env=environment)
    return [output for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs]


def test_notebooks_share_one_setup_that_locates_the_configurations():
    nbformat = pytest.importorskip("nbformat")
    setups = []
    for path in sorted((ROOT / "notebooks").glob("[a-f]_*.ipynb")):
        source = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code").source
        setups.append(source.split("class SetupError", 1)[1].split("import numpy as np", 1)[0])
        assert "RUNS / config" in source and "next(" not in source
    assert len(setups) == 6 and len(set(setups)) == 1


def test_a_notebook_copied_out_of_the_repository_finds_its_configurations_or_says_why(tmp_path):
    nb = _setup_cell_notebook()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    environment = {k: v for k, v in os.environ.items() if k not in ("SOBOLEV_FLOW_RUNS", "PYTHONPATH")}
    # found through the package's source tree (an editable install or a checkout on the path)
    environment["PYTHONPATH"] = str(ROOT)
    outputs = _execute(nb, outside, dict(environment, SOBOLEV_FLOW_NOTEBOOK_SHORT="1"))
    assert [o.get("text", "").strip() for o in outputs if o.output_type == "stream"][-1] == str(ROOT / "runs")
    # a package installed without its checkout around it: one line, no traceback
    fake = tmp_path / "site" / "sobolev_flow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    outputs = _execute(_setup_cell_notebook(show=False), outside, dict(environment, PYTHONPATH=str(fake.parent)))
    (error,) = [o for o in outputs if o.output_type == "error"]
    assert len(error.traceback) == 1, error.traceback
    assert error.traceback[0].startswith("SetupError: no runs/ folder of study configurations in the working "
                                         "directory") and "set SOBOLEV_FLOW_RUNS" in error.traceback[0]


def test_the_notebook_setup_names_a_wrong_sobolev_flow_runs(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    source = next(c for c in nbformat.read(ROOT / "notebooks" / "a_s1_exponential.ipynb", as_version=4).cells
                  if c.cell_type == "code").source
    code = "class SetupError" + source.split("class SetupError", 1)[1].split("RUNS = find_runs()", 1)[0]
    namespace = {"os": os, "pathlib": pathlib}
    exec(code, namespace)
    monkeypatch.setenv("SOBOLEV_FLOW_RUNS", str(ROOT / "runs"))
    assert namespace["find_runs"]() == ROOT / "runs"
    monkeypatch.setenv("SOBOLEV_FLOW_RUNS", str(tmp_path))
    with pytest.raises(namespace["SetupError"]) as error:
        namespace["find_runs"]()
    assert error.value._render_traceback_() == [f"SetupError: SOBOLEV_FLOW_RUNS={str(tmp_path)!r} holds no *.toml "
                                                "configurations; point it to the runs/ folder of a sobolev_flow "
                                                "checkout"]


def test_a_restart_with_nothing_to_do_or_refused_leaves_the_file_untouched(tmp_path):
    """A restart at t_end changes nothing (exit 0, one line); one to an earlier t_end is refused
    (exit 2, one line); either way the file keeps its bytes and its modification time."""
    cli(*SMALL, "--output", "run.h5", "--quiet", cwd=tmp_path, check=0)
    path = tmp_path / "run.h5"
    before, mtime = digest(path), path.stat().st_mtime_ns
    time.sleep(0.05)
    done = cli("--output", "run.h5", "--restart", "--quiet", cwd=tmp_path, check=0)
    assert done.stdout.strip() == ("nothing to do: 'run.h5' is at t=20.0 = time.t_end already; the file is unchanged "
                                   "(raise time.t_end to continue)")
    refused = cli("--output", "run.h5", "--restart", "--set", "time.t_end=10", "--quiet", cwd=tmp_path, check=2)
    assert refused.stderr.strip() == "error: time.t_end=10.0: the checkpoint is already at t=20.0"
    assert digest(path) == before and path.stat().st_mtime_ns == mtime


def test_a_restart_reports_totals_and_this_runs_counts(tmp_path):
    cli(*SMALL, "--set", "time.t_end=5", "--output", "run.h5", "--quiet", cwd=tmp_path, check=0)
    first = open_run(tmp_path / "run.h5").diagnostics["step"][-1]
    result = cli("--output", "run.h5", "--restart", "--set", "time.t_end=20", "--quiet", cwd=tmp_path, check=0)
    total = open_run(tmp_path / "run.h5").diagnostics["step"][-1]
    line = next(line for line in result.stdout.splitlines() if line.startswith("t_end=20:"))
    assert f"steps {total} in all, {total - first} in this run (rejected " in line
    assert "rhs evaluations" in line and "in this run" in line


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry run"])
def test_a_grid_too_large_for_memory_is_refused_before_anything_is_allocated(tmp_path, dry_run):
    result = cli("--set", "grid.d=3", "grid.n=100000", *(["--dry-run"] if dry_run else []), "--quiet", cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: shape=(100000, 100000, 100000): the run needs an estimated ")
    assert lines[0].endswith(" of this machine") and list(tmp_path.iterdir()) == []


def test_no_sobolev_orders_records_no_norms(tmp_path):
    cli(*SMALL, "--set", "diagnostics.sobolev_orders=[]", "--output", "run.h5", "--quiet", cwd=tmp_path, check=0)
    run = open_run(tmp_path / "run.h5")
    assert "sobolev_norms" not in run.diagnostics and len(run.orders) == 0
    assert len(run.diagnostics["energy"]) == len(run.diagnostics["t"]) > 2


def test_the_dense_default_diagnostic_schedule_shortens_no_step_of_a_run(tmp_path):
    """Through the command line with all its trackers (snapshots, diagnostics, health checks,
    checkpoints): the default geometric diagnostic schedule (40 times in [0.01, 1]) and one at t_end
    alone give the same steps and the same final density."""
    common = ["--set", "grid.d=2", "grid.n=64", "model.s=2", 'initial.density="bumps"', "time.t_end=1",
              "time.rtol=1e-2", "fft.threads=1"]
    runs = {}
    for name, extra in (("dense", []), ("sparse", ["output.diagnostics=[1.0]"])):
        result = cli(*common, *extra, f'output.path="{name}.h5"', "--quiet", cwd=tmp_path, check=0)
        steps = re.search(r"steps (\d+) \(rejected (\d+)\)", result.stdout).groups()
        with h5py.File(tmp_path / f"{name}.h5", "r") as f:
            runs[name] = steps, f["snapshots/mu"][-1], len(f["diagnostics/t"])
    (steps_dense, mu_dense, rows_dense), (steps_sparse, mu_sparse, rows_sparse) = runs["dense"], runs["sparse"]
    assert rows_dense > 40 and rows_sparse == 2
    assert steps_dense == steps_sparse
    np.testing.assert_array_equal(mu_dense, mu_sparse)
